"""The review window's view state, kept free of Qt (napari's model/view split).

Why a separate model: two viewers, the overlay controls, the predictions panel and the
exports all show the *same* frame, method, target and overlay settings. If each widget kept
its own copy they would drift apart (the teacher showing slice 12 while the student shows 13).
Instead every widget subscribes to this object's events and writes back through its
property setters; a setter that does not change the value emits nothing, so a widget that
echoes a value back cannot start a feedback loop. Being Qt-free, the state is testable
without a display and could drive a different front end.
"""
from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import numpy as np

from ..explain.overlay import DEFAULT_COLORMAP, DEFAULT_OPACITY, OverlayStyle
from ..models.geometry import PlacedMap
from ..studies.study import DisplayWindow, Study

log = logging.getLogger(__name__)

T = TypeVar("T")

#: The method the window opens with (the explainers' labels live in their registry).
DEFAULT_METHOD = "gradcam"
#: The method whose stages fill the layer-by-layer strip (paper 002), not an overlay in the window.
STRIP_METHOD = "feature_maps"


class Event(Generic[T]):
    """A list of callbacks called with the new value (the smallest thing napari's EventEmitter does)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._callbacks: list[Callable[[T], Any]] = []

    def connect(self, callback: Callable[[T], Any]) -> Callable[[T], Any]:
        if callback not in self._callbacks:
            self._callbacks.append(callback)
        return callback

    def disconnect(self, callback: Callable[[T], Any]) -> None:
        if callback in self._callbacks:
            self._callbacks.remove(callback)

    def emit(self, value: T) -> None:
        # Copy: a callback may connect or disconnect others while we iterate.
        for cb in list(self._callbacks):
            cb(value)


class _Events:
    """Attribute access to one :class:`Event` per state field (``state.events.opacity``)."""

    def __init__(self, names: list[str]) -> None:
        for n in names:
            setattr(self, n, Event(n))


def _same(a: Any, b: Any) -> bool:
    """Value equality that treats arrays and studies by identity (comparing pixels would be slow)."""
    if a is b:
        return True
    if isinstance(a, (np.ndarray, Study)) or isinstance(b, (np.ndarray, Study)):
        return False
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    try:
        return bool(a == b)
    except Exception:  # noqa: BLE001 - objects whose == is not boolean are "different"
        return False


class ViewState:
    """Everything the review window shows, as plain values with change events.

    Fields: ``study``, ``volume``, ``slice``, ``task``, ``method``, ``target`` (None: each
    model's predicted class), ``opacity``, ``colormap``, ``threshold``, ``contour``,
    ``overlay_visible``, ``window`` (the gray window/level now applied), ``invert`` (the user's
    inversion toggle, on top of the study's own MONOCHROME1 inversion), ``cursor`` (image
    x, y under the mouse), ``show_identifiers``, ``analysis`` (the result for the shown
    frame), ``strip_role`` (whose feature maps the layer strip shows) and ``reveal`` (the user
    asked to see predictions withheld because the image looks out of distribution; reset with
    every new analysis).
    """

    FIELDS = (
        "study", "volume", "slice", "task", "method", "target", "opacity", "colormap", "threshold",
        "contour", "overlay_visible", "window", "invert", "cursor", "show_identifiers", "analysis",
        "strip_role", "reveal",
    )

    def __init__(self) -> None:
        self.events = _Events(list(self.FIELDS))
        self._v: dict[str, Any] = {
            "study": None, "volume": 0, "slice": 0, "task": None, "method": DEFAULT_METHOD, "target": None,
            "opacity": DEFAULT_OPACITY, "colormap": DEFAULT_COLORMAP, "threshold": 0.0, "contour": False,
            "overlay_visible": True, "window": None, "invert": False, "cursor": None,
            "show_identifiers": False, "analysis": None, "strip_role": "teacher",
            "reveal": False,
        }

    # -- plumbing -------------------------------------------------------------------------
    def _set(self, name: str, value: Any) -> bool:
        if _same(self._v[name], value):
            return False
        self._v[name] = value
        getattr(self.events, name).emit(value)
        return True

    def get(self, name: str) -> Any:
        return self._v[name]

    # -- study and frame ------------------------------------------------------------------
    @property
    def study(self) -> Study | None:
        return self._v["study"]

    @study.setter
    def study(self, study: Study | None) -> None:
        """A new study resets the frame to the one a viewer opens on (the middle slice), the
        window to the study's own and drops the previous analysis, which belonged to other pixels."""
        if study is self._v["study"]:
            return
        self._v["analysis"] = None
        self._v["cursor"] = None
        self._v["volume"] = 0
        self._v["slice"] = 0 if study is None else study.n_slices // 2
        self._v["window"] = None if study is None else study.frame(0, self._v["slice"]).window
        self._v["invert"] = False
        self._v["study"] = study
        # The frame fields first, the study last: a subscriber that redraws on "study" then
        # draws once, with every field already consistent with the new study.
        for name in ("volume", "slice", "window", "invert", "cursor", "analysis"):
            getattr(self.events, name).emit(self._v[name])
        self.events.study.emit(study)

    @property
    def volume(self) -> int:
        return self._v["volume"]

    @volume.setter
    def volume(self, value: int) -> None:
        n = self.study.n_volumes if self.study is not None else 1
        self._set("volume", int(min(max(int(value), 0), n - 1)))

    @property
    def slice(self) -> int:
        return self._v["slice"]

    @slice.setter
    def slice(self, value: int) -> None:
        n = self.study.n_slices if self.study is not None else 1
        self._set("slice", int(min(max(int(value), 0), n - 1)))

    @property
    def frame_index(self) -> tuple[int, int]:
        return (self.volume, self.slice)

    def default_window(self) -> DisplayWindow | None:
        """The study's own window for the shown frame (what "Default" and "Reset" return to)."""
        if self.study is None or self.study.is_rgb:
            return None
        return self.study.frame(self.volume, self.slice).window

    # -- models and overlay ---------------------------------------------------------------
    @property
    def task(self) -> str | None:
        return self._v["task"]

    @task.setter
    def task(self, value: str | None) -> None:
        if self._set("task", value):
            # The old target names another task's class; fall back to "predicted".
            self.target = None

    @property
    def method(self) -> str:
        return self._v["method"]

    @method.setter
    def method(self, value: str) -> None:
        self._set("method", str(value))

    @property
    def target(self) -> str | None:
        return self._v["target"]

    @target.setter
    def target(self, value: str | None) -> None:
        self._set("target", value or None)

    @property
    def opacity(self) -> float:
        return self._v["opacity"]

    @opacity.setter
    def opacity(self, value: float) -> None:
        self._set("opacity", float(min(max(float(value), 0.0), 1.0)))

    @property
    def colormap(self) -> str:
        return self._v["colormap"]

    @colormap.setter
    def colormap(self, value: str) -> None:
        self._set("colormap", str(value))

    @property
    def overlay_style(self) -> OverlayStyle:
        """The overlay as drawn on screen, for the exporters (so a report looks like the screen)."""
        return OverlayStyle(colormap=self.colormap, opacity=self.opacity, threshold=self.threshold)

    @property
    def threshold(self) -> float:
        return self._v["threshold"]

    @threshold.setter
    def threshold(self, value: float) -> None:
        self._set("threshold", float(min(max(float(value), 0.0), 0.99)))

    @property
    def contour(self) -> bool:
        return self._v["contour"]

    @contour.setter
    def contour(self, value: bool) -> None:
        self._set("contour", bool(value))

    @property
    def overlay_visible(self) -> bool:
        return self._v["overlay_visible"]

    @overlay_visible.setter
    def overlay_visible(self, value: bool) -> None:
        self._set("overlay_visible", bool(value))

    # -- display --------------------------------------------------------------------------
    @property
    def window(self) -> DisplayWindow | None:
        return self._v["window"]

    @window.setter
    def window(self, value: DisplayWindow | None) -> None:
        if value is not None and value.width <= 0:
            value = DisplayWindow(value.center, 1e-3)
        self._set("window", value)

    @property
    def invert(self) -> bool:
        return self._v["invert"]

    @invert.setter
    def invert(self, value: bool) -> None:
        self._set("invert", bool(value))

    @property
    def cursor(self) -> tuple[float, float] | None:
        return self._v["cursor"]

    @cursor.setter
    def cursor(self, value: tuple[float, float] | None) -> None:
        self._set("cursor", None if value is None else (float(value[0]), float(value[1])))

    @property
    def show_identifiers(self) -> bool:
        return self._v["show_identifiers"]

    @show_identifiers.setter
    def show_identifiers(self, value: bool) -> None:
        self._set("show_identifiers", bool(value))

    @property
    def strip_role(self) -> str:
        return self._v["strip_role"]

    @strip_role.setter
    def strip_role(self, value: str) -> None:
        if value not in ("teacher", "student"):
            raise ValueError(f"strip_role must be teacher or student, got {value!r}")
        self._set("strip_role", value)

    # -- results --------------------------------------------------------------------------
    @property
    def analysis(self):  # -> Analysis | None (imported lazily: inference pulls numpy only, but keep ui light)
        return self._v["analysis"]

    @analysis.setter
    def analysis(self, value) -> None:
        if value is not self._v["analysis"]:
            self._set("reveal", False)  # a withheld prediction is revealed for one analysis only
        self._set("analysis", value)

    @property
    def reveal(self) -> bool:
        return self._v["reveal"]

    @reveal.setter
    def reveal(self, value: bool) -> None:
        self._set("reveal", bool(value))

    def heatmap(self, role: str) -> PlacedMap | None:
        """The shown method's heatmap of *role*, or None when there is none yet.

        The window controller replaces ``analysis`` whenever the frame changes (with the cached
        result for the new frame, or None), so the analysis held here is always the shown one's.
        """
        a = self.analysis
        if a is None:
            return None
        result = a.teacher if role == "teacher" else a.student
        return result.heatmaps.get(self.method)

    def reset_display(self) -> None:
        """Window back to the study's own, inversion off (the "Reset view" button's gray half)."""
        self.window = self.default_window()
        self.invert = False
