"""Model cards, the registry over bundled and user models, architectures and preprocessing."""
