"""The Qt review window (PySide6 + pyqtgraph). The only package that imports Qt; the core never does."""
