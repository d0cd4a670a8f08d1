"""The study header: what is open (modality, size, frames, spacing), the identifiers when asked
for, and the disclaimer.

Privacy: the patient's name, ID and birth date appear only here and only while the session's
``show_identifiers`` is on; it is off at every start and is not remembered.
"""
from __future__ import annotations

import html

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QHBoxLayout, QLabel, QWidget

from ..inference.session import ReviewSession
from ..report.common import DISCLAIMER


class StudyHeader(QWidget):
    def __init__(self, session: ReviewSession) -> None:
        super().__init__()
        self.session = session
        self.header = QLabel("")
        self.header.setObjectName("studyHeader")
        self.header.setTextFormat(Qt.TextFormat.RichText)
        self.identifiers_label = QLabel("")
        self.identifiers_label.setObjectName("identifiers")
        self.identifiers_label.setVisible(False)
        self.disclaimer = QLabel(DISCLAIMER)
        self.disclaimer.setObjectName("disclaimer")
        head = QHBoxLayout(self)
        head.setContentsMargins(8, 4, 8, 2)
        head.addWidget(self.header, 1)
        head.addWidget(self.identifiers_label)
        head.addWidget(self.disclaimer)
        session.events.study.connect(lambda _s: self.update_header())
        session.events.show_identifiers.connect(self._show_identifiers)
        self.update_header()

    def update_header(self) -> None:
        study = self.session.study
        if study is None:
            self.header.setText("<b>No study open</b>")
            self._show_identifiers(self.session.show_identifiers)
            return
        md = study.metadata
        parts = [f"<b>{html.escape(study.modality or 'unknown modality')}</b>"]
        for value in (md.body_part, md.view_position, md.series_description):
            if value:
                parts.append(html.escape(value))
        shape = study.shape
        parts.append(f"{shape[1]} × {shape[0]} px" + (" RGB" if study.is_rgb else ""))
        if study.n_frames > 1:
            parts.append(f"{study.n_volumes} vol × {study.n_slices} slices" if study.n_volumes > 1
                         else f"{study.n_slices} slices")
        if study.pixel_spacing:
            parts.append(f"{study.pixel_spacing[1]:g} × {study.pixel_spacing[0]:g} mm")
        if study.tiles is not None:
            parts.append(f"{study.tiles.n_rows} × {study.tiles.n_cols} tiles")
        parts.append(html.escape(study.kind.value))
        self.header.setText(" · ".join(parts))
        self.header.setToolTip(study.orientation)
        self._show_identifiers(self.session.show_identifiers)

    def _show_identifiers(self, on: bool) -> None:
        study = self.session.study
        ids = None if study is None else study.identifiers
        if not on or ids is None:
            self.identifiers_label.setText("")
            self.identifiers_label.setVisible(False)
            return
        born = ids.birth_date
        if len(born) == 8 and born.isdigit():  # DICOM DA: YYYYMMDD
            born = f"{born[:4]}-{born[4:6]}-{born[6:]}"
        fields = [("Patient", ids.name.replace("^", " ").strip()), ("ID", ids.patient_id), ("Born", born)]
        text = " · ".join(f"{k}: <b>{html.escape(v)}</b>" for k, v in fields if v) or "No identifiers in this study"
        self.identifiers_label.setText(text)
        self.identifiers_label.setVisible(True)
