"""The out-of-distribution banner: says the image is not the models' kind, and holds the
"show the prediction anyway" switch.

Why its own banner (not a line of the yellow warnings banner): when a model flags the input, the
prediction is withheld, and the clinician needs one obvious place that says why and lets them
reveal it on purpose. It binds to the view state (``analysis``, ``reveal``) like every view.
"""
from __future__ import annotations

from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QWidget

from ..inference.trust_notes import notes, withheld
from ..inference.view_state import ViewState


class TrustBanner(QFrame):
    def __init__(self, state: ViewState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.setObjectName("oodBanner")
        self.text = QLabel("")
        self.text.setObjectName("oodText")
        self.text.setWordWrap(True)
        self.button = QPushButton("Show the prediction anyway")
        self.button.setObjectName("revealButton")
        self.button.clicked.connect(lambda: setattr(self.state, "reveal", not self.state.reveal))
        layout = QHBoxLayout(self)
        layout.setContentsMargins(8, 6, 8, 6)
        layout.addWidget(self.text, 1)
        layout.addWidget(self.button)
        state.events.analysis.connect(lambda _: self.refresh())
        state.events.reveal.connect(lambda _: self.refresh())
        self.refresh()

    def refresh(self) -> None:
        a = self.state.analysis
        if a is None or not withheld(a):
            self.setVisible(False)
            return
        self.text.setText("⚠ " + next(n.text for n in notes(a) if n.kind == "ood"))
        self.button.setText("Hide the prediction" if self.state.reveal else "Show the prediction anyway")
        self.setVisible(True)
