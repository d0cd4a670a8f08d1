"""The two image viewers, Teacher | Student, kept in lock-step.

Why two synchronised viewers rather than one with a toggle: the question a reader asks is
"does the small student look where the trusted teacher looks?", which is answered by seeing
both heatmaps on the same anatomy at the same zoom at the same time. So pan and zoom are one
(linked pyqtgraph ViewBoxes), the slice is one (a single slider writing ``ViewState.slice``),
and the crosshair and pixel readout follow the mouse in both viewers at once.

Gray images are drawn in modality units with the window applied as ImageItem levels, so
window/level by right-drag and the presets never recompute pixels; the heatmap is a second
ImageItem stretched over the same rectangle whatever its own resolution, so it stays aligned
with the anatomy at every zoom.

Length: over 500 lines because the single viewer and the synchronised pair share the
same items, transforms and window/level logic; the pair is what keeps them in lock-step.
"""
from __future__ import annotations

import logging
import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QFont, QTransform
from PySide6.QtWidgets import (
    QCheckBox,
    QGraphicsRectItem,
    QComboBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSizePolicy,
    QSlider,
    QVBoxLayout,
    QWidget,
)

from ..explain.overlay import colormap_color, overlay_lut
from ..inference.view_state import ViewState
from ..models.geometry import PlacedMap, fit
from ..studies.study import DisplayWindow, Study, auto_window

log = logging.getLogger(__name__)

pg.setConfigOptions(imageAxisOrder="row-major", antialias=True)

#: CT presets in Hounsfield units (center, width), as on most PACS workstations.
CT_PRESETS: dict[str, tuple[float, float]] = {
    "Lung": (-600.0, 1500.0),
    "Mediastinum": (50.0, 350.0),
    "Soft tissue": (40.0, 400.0),
    "Bone": (400.0, 1800.0),
    "Brain": (40.0, 80.0),
    "Subdural": (75.0, 215.0),
}
#: MR has no absolute units; offer a narrow "brain" preset relative to the auto window.
PRESET_DEFAULT = "Study default"
PRESET_AUTO = "Auto (0.5–99.5 %)"
PRESET_FULL = "Full range"

#: How fast right-drag changes the window: fraction of the current width per screen pixel.
WL_SENSITIVITY = 0.004
#: A heatmap is drawn on a grid of at most this many pixels a side over the image (it is smooth,
#: and the exporters draw the same colours from the same renderer at their own size).
DISPLAY_MAX_SIDE = 1024
CONTOUR_MAX_SIZE = 192  # the contour is traced on a heatmap no larger than this (it is smooth anyway)


def _num(v: float) -> str:
    """A window value as a reader expects it: whole units when large, a few digits when small."""
    return f"{v:.0f}" if abs(v) >= 100 else f"{v:.3g}"


def window_presets(study: Study | None) -> dict[str, DisplayWindow | None]:
    """Presets for the study's modality; values None are computed from the frame (default, auto, full)."""
    if study is None or study.is_rgb:
        return {}
    presets: dict[str, DisplayWindow | None] = {PRESET_DEFAULT: None, PRESET_AUTO: None, PRESET_FULL: None}
    if study.modality == "CT":
        presets.update({k: DisplayWindow(c, w) for k, (c, w) in CT_PRESETS.items()})
    return presets


def resolve_preset(name: str, study: Study, volume: int, slice_: int) -> DisplayWindow | None:
    """The window a preset means for the shown frame."""
    frame = study.frame(volume, slice_)
    if name == PRESET_DEFAULT:
        return frame.window or auto_window(frame.pixels)
    if name == PRESET_AUTO:
        return auto_window(frame.pixels)
    if name == PRESET_FULL:
        lo, hi = float(np.nanmin(frame.pixels)), float(np.nanmax(frame.pixels))
        return DisplayWindow((lo + hi) / 2.0, max(hi - lo, 1e-3))
    if name in CT_PRESETS:
        c, w = CT_PRESETS[name]
        return DisplayWindow(c, w)
    raise KeyError(name)


class WindowLevelViewBox(pg.ViewBox):
    """A ViewBox where the left button pans, the wheel zooms and the right button does window/level.

    pyqtgraph's own right-drag zooms and its right-click opens a menu; in a reading room the
    right button is window/level, so both are replaced.
    """

    def __init__(self, on_window_drag, **kwargs) -> None:
        super().__init__(**kwargs)
        self._on_window_drag = on_window_drag
        self.setMenuEnabled(False)
        self.setAspectLocked(True)
        self.invertY(True)  # row 0 at the top of the screen

    def mouseDragEvent(self, ev, axis=None) -> None:  # noqa: N802 - Qt naming
        if ev.button() == Qt.MouseButton.RightButton:
            ev.accept()
            delta = ev.screenPos() - ev.lastScreenPos()
            self._on_window_drag(float(delta.x()), float(delta.y()), ev.isStart(), ev.isFinish())
            return
        super().mouseDragEvent(ev, axis)

    def mouseClickEvent(self, ev) -> None:  # noqa: N802
        if ev.button() == Qt.MouseButton.RightButton:
            ev.accept()  # no context menu
            return
        super().mouseClickEvent(ev)


class ImageViewer(QWidget):
    """One viewer: the image, its heatmap overlay (filled or contour), a crosshair and a readout."""

    #: image (x, y) under the mouse, or None when it leaves the image
    cursor_moved = Signal(object)
    #: (dx, dy) screen pixels of a right-drag
    window_dragged = Signal(float, float)

    def __init__(self, role: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.role = role
        self.setObjectName(f"viewer_{role}")
        self.title = QLabel(role.capitalize())
        self.title.setObjectName("viewerTitle")
        self.title.setTextFormat(Qt.TextFormat.RichText)
        self.readout = QLabel(" ")
        self.readout.setObjectName("readout")
        self.readout.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        self.view = pg.GraphicsView()
        self.view.setBackground(QColor(10, 10, 12))
        self.vb = WindowLevelViewBox(lambda dx, dy, *_: self.window_dragged.emit(dx, dy))
        self.view.setCentralItem(self.vb)
        self.view.setMinimumSize(240, 240)
        self.view.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)

        self.image_item = pg.ImageItem(autoDownsample=True)
        self.overlay_item = pg.ImageItem(autoDownsample=True)
        self.overlay_item.setZValue(10)
        self.contour_item = pg.IsocurveItem(level=0.5, pen=pg.mkPen(QColor(255, 220, 0), width=2, cosmetic=True))
        self.contour_item.setZValue(11)
        pen = pg.mkPen(QColor(0, 255, 180, 150), width=1, style=Qt.PenStyle.DashLine, cosmetic=True)
        self.vline = pg.InfiniteLine(angle=90, movable=False, pen=pen)
        self.hline = pg.InfiniteLine(angle=0, movable=False, pen=pen)
        for item in (self.image_item, self.overlay_item, self.contour_item, self.vline, self.hline):
            self.vb.addItem(item, ignoreBounds=item in (self.vline, self.hline, self.contour_item))
        self.vline.setZValue(20)
        self.hline.setZValue(20)
        self.vline.hide()
        self.hline.hide()
        # The part of the image the models actually saw (a centre-square crop of a wide image):
        # heat outside it is not "no evidence" but "not looked at", and the reader must see that.
        self.region_item = QGraphicsRectItem()
        self.region_item.setPen(pg.mkPen(QColor(160, 200, 255, 170), width=1, style=Qt.PenStyle.DashLine, cosmetic=True))
        self.region_item.setZValue(15)
        self.region_item.setToolTip("Region the models analysed (their centre-square input)")
        self.vb.addItem(self.region_item, ignoreBounds=True)
        self.region_label = pg.TextItem("analysed region", color=(160, 200, 255), anchor=(0, 0))
        self.region_label.setZValue(15)
        self.vb.addItem(self.region_label, ignoreBounds=True)
        self._region: tuple[int, int, int, int] | None = None
        self.set_region(None)
        self.placeholder = pg.TextItem("", color=(170, 170, 180), anchor=(0.5, 0.5))
        self.placeholder.setFont(QFont(self.font().family(), 11))
        self.vb.addItem(self.placeholder, ignoreBounds=True)
        self.placeholder.setZValue(30)

        self._image: np.ndarray | None = None  # modality units (H, W) or RGB (H, W, 3)
        self._placed: PlacedMap | None = None
        self._heat: np.ndarray | None = None  # the placed map drawn over the image, at display size
        self._aspect = 1.0  # column spacing / row spacing
        self._contour_mode = False
        self._contour_shape: tuple[int, int] | None = None
        self.view.scene().sigMouseMoved.connect(self._mouse_moved)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addWidget(self.title)
        layout.addWidget(self.view, 1)
        layout.addWidget(self.readout)

    # -- image ----------------------------------------------------------------------------
    @property
    def image(self) -> np.ndarray | None:
        return self._image

    @property
    def heatmap(self) -> PlacedMap | None:
        """The heatmap shown now (None when there is none)."""
        return self._placed

    def image_rect(self) -> QRectF:
        if self._image is None:
            return QRectF(0, 0, 1, 1)
        h, w = self._image.shape[:2]
        return QRectF(0.0, 0.0, w * self._aspect, float(h))

    def set_image(self, image: np.ndarray | None, *, window: DisplayWindow | None = None,
                  invert: bool = False, aspect: float = 1.0) -> None:
        """Show *image*: gray in modality units (windowed by *window*) or RGB in [0, 1]."""
        first = self._image is None or image is None or self._image.shape[:2] != image.shape[:2] or aspect != self._aspect
        self._image = image
        self._aspect = aspect
        if image is None:
            self.image_item.clear()
            self.set_heatmap(None)
            return
        if image.ndim == 3:
            self.image_item.setImage(image, levels=(0.0, 1.0), autoLevels=False, lut=None)
        else:
            self.image_item.setImage(image, autoLevels=False)
            self.set_window(window, invert)
        self.image_item.setRect(self.image_rect())
        self.overlay_item.setRect(self.image_rect())
        self._place_contour()
        self.set_region(self._region)
        if first:
            self.reset_zoom()

    def set_window(self, window: DisplayWindow | None, invert: bool) -> None:
        if self._image is None or self._image.ndim == 3:
            return
        if window is None:
            window = auto_window(self._image)
        self.image_item.setLevels((window.low, window.high))
        ramp = np.arange(256, dtype=np.uint8)
        self.image_item.setLookupTable(ramp[::-1] if invert else ramp)

    def reset_zoom(self) -> None:
        self.vb.autoRange(padding=0.02)

    # -- overlay --------------------------------------------------------------------------
    def set_heatmap(self, placed: PlacedMap | None) -> None:
        """Draw *placed* over the image: 0 outside the box its model saw, coloured by the LUT."""
        self._placed = placed
        self._heat = None if placed is None else placed.on_grid(fit(placed.image_shape, DISPLAY_MAX_SIDE))
        if placed is None:
            self.overlay_item.clear()
            self.contour_item.setData(None)
            return
        self.overlay_item.setImage(self._heat, levels=(0.0, 1.0), autoLevels=False)
        self.overlay_item.setRect(self.image_rect())
        self._update_contour_data()

    def set_overlay_style(self, *, colormap: str, opacity: float, threshold: float, contour: bool, visible: bool) -> None:
        self.overlay_item.setLookupTable(overlay_lut(colormap, threshold))
        self.overlay_item.setOpacity(opacity)
        self._contour_mode = contour
        self.overlay_item.setVisible(visible and not contour)
        self.contour_item.setVisible(visible and contour)
        color = QColor(*colormap_color(colormap, 0.85))
        self.contour_item.setPen(pg.mkPen(color, width=2, cosmetic=True))
        self.contour_item.setLevel(threshold if threshold > 0 else 0.5)
        self._update_contour_data()

    def _update_contour_data(self) -> None:
        if self._heat is None or not self._contour_mode:
            self.contour_item.setData(None)
            return
        heat = self._heat
        step = max(1, int(math.ceil(max(heat.shape) / CONTOUR_MAX_SIZE)))
        small = heat[::step, ::step]
        self.contour_item.setData(small)
        self._contour_shape = small.shape
        self._place_contour()

    def _place_contour(self) -> None:
        shape = self._contour_shape
        if shape is None or self._image is None:
            return
        r = self.image_rect()
        # isocurve vertices are at sample centres; map sample i -> (i + 0.5) * cell
        sx, sy = r.width() / shape[1], r.height() / shape[0]
        t = QTransform()
        t.translate(sx / 2.0, sy / 2.0)
        t.scale(sx, sy)
        self.contour_item.setTransform(t)

    def set_region(self, box: tuple[int, int, int, int] | None) -> None:
        """Outline (y0, x0, y1, x1) in image pixels as the analysed region; None hides it."""
        self._region = box
        visible = box is not None and self._image is not None
        self.region_item.setVisible(visible)
        self.region_label.setVisible(visible)
        if not visible:
            return
        y0, x0, y1, x1 = box
        self.region_item.setRect(QRectF(x0 * self._aspect, y0, (x1 - x0) * self._aspect, y1 - y0))
        self.region_label.setPos(x0 * self._aspect, y0)

    # -- placeholder text -----------------------------------------------------------------
    def set_placeholder(self, text: str) -> None:
        self.placeholder.setText(text)
        r = self.image_rect() if self._image is not None else self.vb.viewRect()
        self.placeholder.setPos(r.center())
        self.placeholder.setVisible(bool(text))

    # -- crosshair ------------------------------------------------------------------------
    def _mouse_moved(self, pos: QPointF) -> None:
        if self._image is None or not self.vb.sceneBoundingRect().contains(pos):
            return
        p = self.vb.mapSceneToView(pos)
        x, y = p.x() / self._aspect, p.y()
        h, w = self._image.shape[:2]
        self.cursor_moved.emit((x, y) if 0 <= x < w and 0 <= y < h else None)

    def set_cursor(self, cursor: tuple[float, float] | None) -> None:
        if cursor is None or self._image is None:
            self.vline.hide()
            self.hline.hide()
            self.readout.setText(" ")
            return
        x, y = cursor
        self.vline.setPos(x * self._aspect)
        self.hline.setPos(y)
        self.vline.show()
        self.hline.show()
        self.readout.setText(self.readout_text(x, y))

    def readout_text(self, x: float, y: float) -> str:
        """The pixel under the cursor in modality units (or RGB) and this model's heat there."""
        img = self._image
        col, row = int(x), int(y)
        if img is None or not (0 <= row < img.shape[0] and 0 <= col < img.shape[1]):
            return " "
        if img.ndim == 3:
            r, g, b = (int(round(float(v) * 255)) for v in img[row, col])
            value = f"RGB {r} {g} {b}"
        else:
            value = f"value {float(img[row, col]):.6g}"
        text = f"x {col}  y {row}   {value}"
        heat = self._heat
        if heat is not None:
            hy = min(int(row * heat.shape[0] / img.shape[0]), heat.shape[0] - 1)
            hx = min(int(col * heat.shape[1] / img.shape[1]), heat.shape[1] - 1)
            text += f"   heat {float(heat[hy, hx]):.2f}"
        return text


class SyncedViewers(QWidget):
    """Teacher | Student viewers plus the shared navigation bar, bound to a :class:`ViewState`.

    ``use_analysis_image`` switches the base image from the study's frame to the analysed image
    (fMRI models read a glass-brain projection of the whole map, which is what must be shown
    under their heatmaps).
    """

    def __init__(self, state: ViewState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.teacher = ImageViewer("teacher")
        self.student = ImageViewer("student")
        self.viewers = (self.teacher, self.student)
        self.student.vb.setXLink(self.teacher.vb)
        self.student.vb.setYLink(self.teacher.vb)
        self._use_analysis_image = False
        self._frame_default: DisplayWindow | None = None
        self._study_shown: Study | None = None

        # navigation bar --------------------------------------------------------------------
        self.slice_label = QLabel("Slice")
        self.slice_slider = QSlider(Qt.Orientation.Horizontal)
        self.slice_slider.setObjectName("sliceSlider")
        self.slice_value = QLabel("")
        self.slice_value.setMinimumWidth(56)
        self.volume_label = QLabel("Volume")
        self.volume_slider = QSlider(Qt.Orientation.Horizontal)
        self.volume_slider.setObjectName("volumeSlider")
        self.volume_value = QLabel("")
        self.volume_value.setMinimumWidth(44)
        for s in (self.slice_slider, self.volume_slider):
            s.setPageStep(1)
            s.setMinimumWidth(120)
        self.preset_combo = QComboBox()
        self.preset_combo.setToolTip("Window presets (right-drag on the image adjusts window and level)")
        self.window_label = QLabel("")
        self.window_label.setObjectName("windowLabel")
        self.invert_check = QCheckBox("Invert")
        self.reset_button = QPushButton("Reset view")
        self.reset_button.setToolTip("Fit the image, study window, no inversion")

        nav = QHBoxLayout()
        nav.setContentsMargins(4, 2, 4, 2)
        for w in (self.slice_label, self.slice_slider, self.slice_value, self.volume_label, self.volume_slider,
                  self.volume_value):
            nav.addWidget(w)
        nav.addStretch(1)
        self.wl_label = QLabel("W/L")
        nav.addWidget(self.wl_label)
        nav.addWidget(self.preset_combo)
        nav.addWidget(self.window_label)
        nav.addWidget(self.invert_check)
        nav.addWidget(self.reset_button)

        pair = QHBoxLayout()
        pair.setSpacing(6)
        pair.addWidget(self.teacher, 1)
        pair.addWidget(self.student, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addLayout(pair, 1)
        layout.addLayout(nav)

        # widgets -> state ------------------------------------------------------------------
        self.slice_slider.valueChanged.connect(lambda v: setattr(state, "slice", v))
        self.volume_slider.valueChanged.connect(lambda v: setattr(state, "volume", v))
        self.invert_check.toggled.connect(lambda on: setattr(state, "invert", on))
        self.reset_button.clicked.connect(self.reset_view)
        self.preset_combo.activated.connect(self._preset_chosen)
        for v in self.viewers:
            v.cursor_moved.connect(lambda c: setattr(state, "cursor", c))
            v.window_dragged.connect(self._window_drag)

        # state -> widgets ------------------------------------------------------------------
        ev = state.events
        ev.study.connect(self._on_study)
        ev.slice.connect(lambda _: self._on_frame())
        ev.volume.connect(lambda _: self._on_frame())
        ev.window.connect(lambda _: self._apply_window())
        ev.invert.connect(self._on_invert)
        ev.cursor.connect(self._on_cursor)
        ev.analysis.connect(lambda _: self._on_analysis())
        ev.method.connect(lambda _: self._apply_heatmaps())
        for name in ("opacity", "colormap", "threshold", "contour", "overlay_visible"):
            getattr(ev, name).connect(lambda _: self._apply_style())
        self._apply_style()
        self._on_study(state.study)

    # -- state handlers -------------------------------------------------------------------
    def _on_study(self, study: Study | None) -> None:
        self._study_shown = study
        self._use_analysis_image = False
        self._frame_default = self.state.default_window()
        self.preset_combo.blockSignals(True)
        self.preset_combo.clear()
        self.preset_combo.addItems(list(window_presets(study)))
        self.preset_combo.blockSignals(False)
        self.invert_check.blockSignals(True)
        self.invert_check.setChecked(False)
        self.invert_check.blockSignals(False)
        self._update_nav()
        self._show_frame(reset_zoom=True)
        if study is None:
            for v in self.viewers:
                v.set_placeholder("Open a study: File ▸ Open, or drop a file here")

    def _update_nav(self) -> None:
        study = self.state.study
        n_slices = study.n_slices if study is not None and not self._use_analysis_image else 1
        n_vols = study.n_volumes if study is not None and not self._use_analysis_image else 1
        for slider, label, value, n, cur in (
            (self.slice_slider, self.slice_label, self.slice_value, n_slices, self.state.slice),
            (self.volume_slider, self.volume_label, self.volume_value, n_vols, self.state.volume),
        ):
            slider.blockSignals(True)
            slider.setRange(0, max(n - 1, 0))
            slider.setValue(cur)
            slider.blockSignals(False)
            for w in (slider, label, value):
                w.setVisible(n > 1)
            value.setText(f"{cur + 1} / {n}")
        # Window/level applies to gray study pixels only (not RGB, not the fMRI glass brain).
        gray = study is not None and not study.is_rgb and not self._use_analysis_image
        for w in (self.preset_combo, self.invert_check, self.window_label, self.wl_label):
            w.setVisible(gray)

    def _on_frame(self) -> None:
        """Slice or volume changed: follow the new frame's own window unless the user set one."""
        if self.state.study is not self._study_shown:
            return  # part of a study change; _on_study draws once when it arrives
        new_default = self.state.default_window()
        if self.state.window == self._frame_default and new_default is not None:
            self._frame_default = new_default
            self.state.window = new_default
        self._frame_default = new_default
        self._update_nav()
        self._show_frame(reset_zoom=False)

    def _aspect(self) -> float:
        study = self.state.study
        if study is None or not study.pixel_spacing or self._use_analysis_image:
            return 1.0
        row, col = study.pixel_spacing
        return float(col / row) if row > 0 and col > 0 else 1.0

    def _base_image(self) -> np.ndarray | None:
        study = self.state.study
        if study is None:
            return None
        if self._use_analysis_image and self.state.analysis is not None:
            return self.state.analysis.image
        return study.pixels[self.state.volume, self.state.slice]

    def _show_frame(self, *, reset_zoom: bool) -> None:
        image = self._base_image()
        invert = self._effective_invert()
        for v in self.viewers:
            v.set_placeholder("")
            v.set_image(image, window=self.state.window, invert=invert, aspect=self._aspect())
        self._apply_heatmaps()
        self._update_window_label()
        if reset_zoom and image is not None:
            self.teacher.reset_zoom()

    def _effective_invert(self) -> bool:
        study = self.state.study
        base = bool(study.invert) if study is not None and not self._use_analysis_image else False
        return base != self.state.invert

    def _apply_window(self) -> None:
        if self.state.study is not self._study_shown:
            return
        for v in self.viewers:
            v.set_window(self.state.window, self._effective_invert())
        self._update_window_label()

    def _on_invert(self, on: bool) -> None:
        self.invert_check.blockSignals(True)
        self.invert_check.setChecked(on)
        self.invert_check.blockSignals(False)
        self._apply_window()

    def _update_window_label(self) -> None:
        w = self.state.window
        self.window_label.setText(f"C {_num(w.center)}  W {_num(w.width)}" if w is not None else "")

    def _on_cursor(self, cursor) -> None:
        for v in self.viewers:
            v.set_cursor(cursor)

    def _on_analysis(self) -> None:
        if self.state.study is not self._study_shown:
            return
        if self._use_analysis_image:
            self._show_frame(reset_zoom=False)
        else:
            self._apply_heatmaps()

    def set_use_analysis_image(self, on: bool) -> None:
        """Show the analysed image (fMRI glass brain) instead of the study's slice under the overlays."""
        if on == self._use_analysis_image:
            return
        self._use_analysis_image = on
        self._update_nav()
        self._show_frame(reset_zoom=True)

    def set_model_region(self, box: tuple[int, int, int, int] | None) -> None:
        """Outline the models' input region on both viewers (None: they saw the whole image)."""
        for v in self.viewers:
            v.set_region(box)

    @property
    def use_analysis_image(self) -> bool:
        return self._use_analysis_image

    def _apply_heatmaps(self) -> None:
        if self._use_analysis_image and self.state.analysis is not None:
            img = self.state.analysis.image
            if self.teacher.image is not img:
                self._show_frame(reset_zoom=True)
                return
        for v in self.viewers:
            v.set_heatmap(self.state.heatmap(v.role))
        self._on_cursor(self.state.cursor)

    def _apply_style(self) -> None:
        s = self.state
        for v in self.viewers:
            v.set_overlay_style(colormap=s.colormap, opacity=s.opacity, threshold=s.threshold,
                                contour=s.contour, visible=s.overlay_visible)

    # -- user actions ---------------------------------------------------------------------
    def _preset_chosen(self, index: int) -> None:
        study = self.state.study
        if study is None or study.is_rgb:
            return
        name = self.preset_combo.itemText(index)
        self.state.window = resolve_preset(name, study, self.state.volume, self.state.slice)

    def _window_drag(self, dx: float, dy: float) -> None:
        """Right-drag: horizontal changes the width, vertical the level (down = brighter window centre up)."""
        study = self.state.study
        if study is None or study.is_rgb or self._use_analysis_image:
            return
        w = self.state.window or resolve_preset(PRESET_DEFAULT, study, self.state.volume, self.state.slice)
        width = max(w.width * math.exp(dx * WL_SENSITIVITY), 1e-3)
        center = w.center + dy * w.width * WL_SENSITIVITY
        self.state.window = DisplayWindow(center, width)

    def reset_view(self) -> None:
        self.state.reset_display()
        self.preset_combo.setCurrentIndex(0)
        self.teacher.reset_zoom()

    def view_range(self) -> list[list[float]]:
        return self.teacher.vb.viewRange()
