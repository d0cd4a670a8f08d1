"""The review window's "Check faithfulness" action, without Qt: what it runs, what it shows, when.

Why a check on request: the agreement figures say whether the student's map looks like the
teacher's, not whether either map shows what drives its model. Deletion and insertion AUC
(``explain.metrics``) answer that, at the cost of 2 x (steps + 1) more forward passes per model,
so the window computes them only when asked.

* **One implementation.** The check is the engine's own ``faithfulness=True`` path
  (``Engine.analyze``, the code behind ``medkd explain --faithfulness`` and ``medkd bench
  explain``) on the shown study, frame, method and target: the same figures the benchmarks report.
  It re-runs the analysis without the layer strip; the explanation methods are deterministic, so
  its maps are the shown ones. :func:`merge` verifies that before it copies the figures in.
* **Cached with the analysis.** The figures go into the shown :class:`Analysis` itself (its
  ``ModelResult.faithfulness``), which is the object the session caches for that (study, frame,
  method, target): re-showing them costs nothing, a change of any of the four shows another
  analysis (without figures), "Analyse again" replaces it, and the JSON export carries them.
* **Cost.** The faithfulness step's time per model goes into ``Analysis.timings_ms`` as
  ``<method>_faithfulness_<role>``: the engine's explain step with faithfulness on, minus the
  explanation's own time. ``scripts/bench_faithfulness.py`` measures it per task.

:class:`FaithfulnessCheck` is the model the Qt panel binds to (napari style): it knows whether a
check may start, which analysis it is for, and its progress and outcome; the panel runs the
:func:`check` on the worker and feeds the outcome back.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np

from .analysis import Analysis
from .session import AnalysisJob, ReviewSession
from .view_state import _Events

log = logging.getLogger(__name__)

#: Perturbation steps per curve, as ``medkd bench explain`` (its ``--steps`` default).
STEPS = 20
ROLES = ("teacher", "student")
#: (key in ``ModelResult.faithfulness``, label, which way is better)
FIGURES = (("deletion_auc", "Deletion AUC", "lower is better"),
           ("insertion_auc", "Insertion AUC", "higher is better"))
#: The one sentence under the figures (the window, and any report that shows them).
HOW_TO_READ = ("Deletion AUC: lower is better (the model's score falls fast as the most-highlighted pixels "
               "are removed); insertion AUC: higher is better (it rises fast as they are added back to a "
               "blurred image).")
#: Largest difference between the check's map and the shown one that still counts as the same map.
MAP_TOLERANCE = 1e-3


def check(engine: Any, job: AnalysisJob, *, steps: int = STEPS, on_progress: Callable[[float, str], Any] | None = None,
          cancel: Callable[[], bool] | None = None) -> Analysis:
    """The check itself: the engine's faithfulness path on the job's frame, method and target."""
    return engine.analyze(**job.kwargs(), strip=False, faithfulness=True, steps=steps,
                          on_progress=on_progress, cancel=cancel)


def timing_key(method: str, role: str) -> str:
    return f"{method}_faithfulness_{role}"


def step_ms(checked: Analysis, method: str) -> dict[str, float]:
    """Per model, the ms the faithfulness step of *checked* took (its explain step minus the map)."""
    out = {}
    for role in ROLES:
        res = checked.result(role)
        step = checked.timings_ms.get(f"{method}_{role}")
        if step is not None and method in res.explain_seconds:
            out[role] = max(0.0, step - 1000.0 * res.explain_seconds[method])
    return out


def figures(analysis: Analysis | None, method: str) -> dict[str, dict[str, float]] | None:
    """Both models' ``{"deletion_auc", "insertion_auc"}`` for *method*, or None until checked."""
    if analysis is None:
        return None
    both = {role: analysis.result(role).faithfulness.get(method) for role in ROLES}
    return both if all(both.values()) else None  # type: ignore[return-value]


def costs(analysis: Analysis | None, method: str) -> dict[str, float]:
    """The faithfulness step's ms per model, as recorded by :func:`merge` (empty: not checked)."""
    if analysis is None:
        return {}
    return {role: analysis.timings_ms[timing_key(method, role)] for role in ROLES
            if timing_key(method, role) in analysis.timings_ms}


def unavailable(analysis: Analysis | None, method: str) -> str | None:
    """Why the shown analysis cannot be checked (one sentence), or None when it can."""
    if analysis is None:
        return "Available once both heatmaps are shown."
    if analysis.n_tiles > 1:
        return ("Not available for a tiled field: each tile has its own map; the benchmark measures "
                "faithfulness on single tiles.")
    missing = [role for role in ROLES if method not in analysis.result(role).heatmaps]
    if missing:
        return f"The {' and '.join(missing)} has no map for this method."
    return None


def merge(shown: Analysis, checked: Analysis, method: str, atol: float = MAP_TOLERANCE) -> bool:
    """Copy *checked*'s figures and costs for *method* into *shown* when both runs explained the
    same maps; False (and *shown* untouched) when a map differs or a figure is missing."""
    if figures(checked, method) is None:
        return False
    for role in ROLES:
        a, b = shown.result(role).heatmaps.get(method), checked.result(role).heatmaps.get(method)
        if a is None or b is None or a.box != b.box or a.map.shape != b.map.shape or \
                not np.allclose(a.map, b.map, atol=atol, rtol=0.0):
            log.warning("faithfulness check: the %s's %s map was not reproduced; figures not shown", role, method)
            return False
    ms = step_ms(checked, method)
    for role in ROLES:
        shown.result(role).faithfulness[method] = dict(checked.result(role).faithfulness[method])
        if role in ms:
            shown.timings_ms[timing_key(method, role)] = ms[role]
    return True


class FaithfulnessCheck:
    """What the "Check faithfulness" control shows for the session's shown analysis.

    ``events.changed`` fires (with this object) when the figures, the running state, the progress
    or the outcome message change. The view starts a check with :meth:`start` (which returns the
    engine job), runs :func:`check` in the background, and reports back through :meth:`progress`,
    :meth:`finish`, :meth:`cancelled` or :meth:`failed`. A check belongs to the analysis shown when
    it started; once another analysis is shown, the check is dropped and ``events.abandoned`` fires
    so that the view cancels its job.
    """

    def __init__(self, session: ReviewSession) -> None:
        self.session = session
        self.events = _Events(["changed", "abandoned"])
        self.running = False
        self.fraction = -1.0
        self.step = ""
        self.message = ""  # the last outcome worth a line ("Cancelled.", a failure)
        self._target: Analysis | None = None
        self._job: AnalysisJob | None = None
        session.events.analysis.connect(self._shown_changed)
        session.events.method.connect(self._shown_changed)

    # -- what is shown ------------------------------------------------------------------
    @property
    def method(self) -> str:
        return self.session.method

    @property
    def figures(self) -> dict[str, dict[str, float]] | None:
        return figures(self.session.analysis, self.method)

    @property
    def costs(self) -> dict[str, float]:
        return costs(self.session.analysis, self.method)

    @property
    def reason(self) -> str | None:
        """Why no check can start now (None: it can)."""
        if self.running:
            return "A check is running."
        return unavailable(self.session.analysis, self.method)

    @property
    def can_check(self) -> bool:
        return self.reason is None and self.figures is None

    @property
    def stale(self) -> bool:
        """A check is running, but its analysis is no longer the shown one."""
        return self.running and (self._target is not self.session.analysis or self._job is None
                                 or self._job.key != self.session.key)

    # -- the check's life ---------------------------------------------------------------
    def start(self) -> AnalysisJob | None:
        """Begin a check of the shown analysis; returns the engine job, or None when none may start."""
        job = self.session.job() if self.can_check else None
        if job is None:
            return None
        self.running, self.fraction, self.step, self.message = True, 0.0, "starting", ""
        self._target, self._job = self.session.analysis, job
        self._emit()
        return job

    def progress(self, fraction: float, step: str) -> None:
        if self.running:
            self.fraction, self.step = fraction, step
            self._emit()

    def finish(self, checked: Analysis) -> bool:
        """The check's result: its figures join the analysis it was started for. Returns whether
        they did (not when the maps were not reproduced; a check whose analysis is no longer shown
        was already dropped)."""
        if not self.running or self._target is None or self._job is None:
            return False
        target, method = self._target, self._job.methods[0]
        self._stop()
        ok = merge(target, checked, method)
        if not ok:
            self.message = "The check could not reproduce the shown heatmaps, so no figures are shown."
        self._emit()
        return ok

    def cancelled(self) -> None:
        if self.running:
            self._stop()
            self.message = "Faithfulness check cancelled."
            self._emit()

    def failed(self, message: str) -> None:
        if self.running:
            self._stop()
            self.message = f"Faithfulness check failed: {message}"
            self._emit()

    # -- plumbing -----------------------------------------------------------------------
    def _stop(self) -> None:
        self.running, self.fraction, self.step = False, -1.0, ""
        self._target = self._job = None

    def _shown_changed(self, _value: Any) -> None:
        """Another analysis, frame, method or target is shown: a running check is dropped (its
        figures would describe a map no longer on screen) and ``events.abandoned`` tells the view
        to cancel its job; a previous outcome message no longer applies."""
        self.message = ""
        if self.stale:
            self._stop()
            self.events.abandoned.emit(self)
        self._emit()

    def _emit(self) -> None:
        self.events.changed.emit(self)
