"""The inference engine: teacher and student on one frame, with explanations (no Qt)."""
