"""Overlay controls shared by both viewers: method, target class, opacity, colour map, threshold.

Why one set of controls for two viewers: a teacher/student comparison is only fair when both
heatmaps are drawn the same way. The controls write to :class:`ViewState`; both viewers read
from it, so they cannot be set differently by mistake.
"""
from __future__ import annotations

from collections.abc import Iterable

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QSlider,
    QWidget,
)

from ..explain.overlay import COLORMAPS
from ..inference.view_state import ViewState
from .labels import method_label

PREDICTED = "Predicted class"


def _percent_slider(maximum: int = 100) -> QSlider:
    s = QSlider(Qt.Orientation.Horizontal)
    s.setRange(0, maximum)
    s.setSingleStep(1)
    s.setPageStep(10)
    return s


class OverlayControls(QWidget):
    """Form of overlay settings; every change goes through the state's setters."""

    def __init__(self, state: ViewState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self._ready = False  # set_methods/set_classes sync from state only once every widget exists
        self.method_combo = QComboBox()
        self.method_combo.setObjectName("methodCombo")
        self.set_methods([])  # the engine's methods arrive when it has started (explainers import torch)
        self.target_combo = QComboBox()
        self.target_combo.setObjectName("targetCombo")
        self.target_combo.setToolTip("Which class the heatmaps explain: each model's own prediction, or one class for both")
        self.set_classes([])
        self.opacity_slider = _percent_slider()
        self.opacity_value = QLabel()
        self.colormap_combo = QComboBox()
        for name, label in COLORMAPS.items():
            self.colormap_combo.addItem(label, name)
        self.threshold_slider = _percent_slider(95)
        self.threshold_slider.setToolTip("Hide heat below this level (each heatmap is scaled from 0 to 1)")
        self.threshold_value = QLabel()
        self.contour_check = QCheckBox("Contour")
        self.contour_check.setToolTip("Draw the outline of the region above the threshold instead of filling it")
        self.visible_check = QCheckBox("Show overlay")
        self.visible_check.setShortcut("H")

        form = QFormLayout(self)
        form.setContentsMargins(6, 4, 6, 4)
        form.setLabelAlignment(Qt.AlignmentFlag.AlignRight)
        form.addRow("Method", self.method_combo)
        form.addRow("Explain", self.target_combo)
        form.addRow("Opacity", self._with_value(self.opacity_slider, self.opacity_value))
        form.addRow("Colours", self.colormap_combo)
        form.addRow("Threshold", self._with_value(self.threshold_slider, self.threshold_value))
        toggles = QHBoxLayout()
        toggles.addWidget(self.contour_check)
        toggles.addWidget(self.visible_check)
        toggles.addStretch(1)
        form.addRow("", toggles)

        # widgets -> state
        self.method_combo.activated.connect(lambda i: setattr(state, "method", self.method_combo.itemData(i)))
        self.target_combo.activated.connect(lambda i: setattr(state, "target", self.target_combo.itemData(i)))
        self.opacity_slider.valueChanged.connect(lambda v: setattr(state, "opacity", v / 100.0))
        self.colormap_combo.activated.connect(lambda i: setattr(state, "colormap", self.colormap_combo.itemData(i)))
        self.threshold_slider.valueChanged.connect(lambda v: setattr(state, "threshold", v / 100.0))
        self.contour_check.toggled.connect(lambda on: setattr(state, "contour", on))
        self.visible_check.toggled.connect(lambda on: setattr(state, "overlay_visible", on))

        # state -> widgets
        self._ready = True
        ev = state.events
        for name in ("method", "target", "opacity", "colormap", "threshold", "contour", "overlay_visible"):
            getattr(ev, name).connect(lambda _: self.sync_from_state())
        self.sync_from_state()

    @staticmethod
    def _with_value(slider: QSlider, label: QLabel) -> QWidget:
        w = QWidget()
        row = QHBoxLayout(w)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(slider, 1)
        label.setMinimumWidth(36)
        label.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        row.addWidget(label)
        return w

    def set_methods(self, methods: Iterable[str]) -> None:
        """Offer *methods* (engine names), labelled for people; keeps the state's method if offered."""
        methods = list(methods)
        self.method_combo.blockSignals(True)
        self.method_combo.clear()
        if methods:
            for m in methods:
                self.method_combo.addItem(method_label(m), m)
        else:
            self.method_combo.addItem("Loading…", self.state.method)
        self.method_combo.setEnabled(bool(methods))
        self.method_combo.blockSignals(False)
        if self._ready:
            self.sync_from_state()

    def set_classes(self, classes: Iterable[str]) -> None:
        """Offer "predicted" and every class of the current task."""
        self.target_combo.blockSignals(True)
        self.target_combo.clear()
        self.target_combo.addItem(PREDICTED, None)
        for c in classes:
            self.target_combo.addItem(c, c)
        self.target_combo.blockSignals(False)
        if self._ready:
            self.sync_from_state()

    def sync_from_state(self) -> None:
        s = self.state
        widgets = (self.method_combo, self.target_combo, self.opacity_slider, self.colormap_combo,
                   self.threshold_slider, self.contour_check, self.visible_check)
        for w in widgets:
            w.blockSignals(True)
        try:
            i = self.method_combo.findData(s.method)
            if i >= 0:
                self.method_combo.setCurrentIndex(i)
            i = self.target_combo.findData(s.target)
            self.target_combo.setCurrentIndex(max(i, 0))
            self.opacity_slider.setValue(round(s.opacity * 100))
            self.opacity_value.setText(f"{round(s.opacity * 100)} %")
            i = self.colormap_combo.findData(s.colormap)
            if i >= 0:
                self.colormap_combo.setCurrentIndex(i)
            self.threshold_slider.setValue(round(s.threshold * 100))
            self.threshold_value.setText(f"{round(s.threshold * 100)} %")
            self.contour_check.setChecked(s.contour)
            self.visible_check.setChecked(s.overlay_visible)
        finally:
            for w in widgets:
                w.blockSignals(False)
