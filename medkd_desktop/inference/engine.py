"""The engine: one study frame through a teacher and its student, with explanations and timings.

Why one engine for the GUI and the CLI: the window, ``medkd analyze`` and the exported reports
must show the same numbers for the same frame, so every step lives here, without Qt, and the
result is the typed :class:`~medkd_desktop.inference.analysis.Analysis`.

Design choices a reader of the results needs to know:

* **One preprocessing path.** Each card's own :class:`InputSpec` (teacher and student may differ)
  goes through :func:`model_input_image` and :func:`preprocess`, exactly as in training.
* **Heatmaps live on the analysed image**, i.e. the frame the clinician sees (or the glass-brain
  image for fMRI cards), not on the 224 px model input: a centre-square crop is mapped back into
  its square of the full frame and the parts the model never saw stay 0, so an overlay never
  claims evidence from pixels the model did not look at.
* **Tiled fields** (large H&E images, ``Study.tiles``) run every tile through both models
  (batched), average the tile probabilities into one field prediction, and explain the *field's*
  predicted class (or the requested target) in every tile. Each tile's map is scaled by that
  tile's probability for the class before being pasted into the full-field map, so tiles that
  do not show the class stay dim instead of each tile lighting up its own "hottest" spot.
* **Latency** is one timed batch-1 forward pass per model (``torch.inference_mode``, CUDA
  synchronised), i.e. what this analysis cost, not a benchmark median (see ``medkd bench
  inference`` for that). For tiled fields it is the time of all tile forwards together.
* **Agreement** (Pearson r, SSIM, top-20 % IoU from ``explain.metrics``) is computed on the two
  heatmaps over the region both models saw, resampled to a common grid of at most
  :data:`AGREEMENT_MAX_SIDE` px, so the figure does not depend on the display resolution.
* Models load once per device through the registry's cache; a lock serialises analyses so two
  threads never hook (Grad-CAM) the same module at once. The first :meth:`Engine.load_pair` also
  runs one throw-away Grad-CAM, because the first CAM of a process pays seconds of imports.
* The **layer strip** (``feature_maps``, paper 002) costs one more forward pass per model, about
  a third of a 2-D analysis; ``strip=False`` skips it where nothing shows it (the CLI).
* ``cancel()`` is polled between steps (and between tiles); ``on_progress(fraction, message)``
  is called after each step. Failures surface as :class:`AnalysisError` subclasses whose text
  is one sentence for the user; the library's text goes to ``detail`` and the log.
"""
from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..models.card import ModelCard
from ..models.preprocess import InputSpec, model_input_image, preprocess
from ..models.registry import TASK_BY_MODALITY, ModelPair, ModelRegistry, propose_task
from ..models.weights import ModelLoadError
from ..studies.errors import StudyLoadError
from ..studies.study import Study, StudyKind, windows_like
from .analysis import Analysis, HeatmapAgreement, ModelResult

log = logging.getLogger(__name__)

__all__ = [
    "AGREEMENT_MAX_SIDE",
    "AnalysisCancelled",
    "AnalysisError",
    "Engine",
    "IncompatibleStudyError",
    "ModelUnavailableError",
    "TASK_DESCRIPTIONS",
    "default_device",
    "propose_pair",
    "task_mismatch_warning",
]

#: Heatmaps are compared on a grid whose longer side is at most this many pixels.
AGREEMENT_MAX_SIDE = 256
#: Tiles per forward batch for tiled fields (bounded memory: 16 x 3 x 224 x 224 floats = 10 MB).
TILE_BATCH = 16
#: The method that fills the layer-by-layer strip (not an overlay).
STRIP_METHOD = "feature_maps"

#: What each bundled task's models were trained on, in a clinician's words (mismatch warnings).
TASK_DESCRIPTIONS: dict[str, str] = {
    "cxr-covid": "chest radiographs",
    "brain-tumor-mri": "brain MR slices",
    "histo-lc25000": "H&E histology tiles of lung and colon",
    "skin-ham10000": "dermoscopy images of skin lesions",
    "fmri-asd": "resting-state fMRI summary maps (glass-brain images)",
}
_MODALITY_WORDS: dict[str, str] = {
    "CR": "radiograph (CR)",
    "DX": "radiograph (DX)",
    "MR": "MR",
    "CT": "CT",
    "US": "ultrasound",
    "NM": "nuclear medicine",
    "PT": "PET",
    "XA": "angiography",
    "fMRI": "fMRI map",
    "histology": "histology",
    "dermoscopy": "dermoscopy",
    "photo": "colour photograph",
    "OT": "grey-scale image",
}
_COLOUR_TASKS = {"histo-lc25000", "skin-ham10000"}


# --------------------------------------------------------------------------------- errors


class AnalysisError(Exception):
    """The analysis could not be done; ``str()`` is one sentence for the user, ``detail`` for the log."""

    message = "The analysis could not be completed."

    def __init__(self, message: str | None = None, *, detail: str = "") -> None:
        self.detail = detail
        super().__init__(message or self.message)


class AnalysisCancelled(AnalysisError):
    message = "The analysis was cancelled."


class IncompatibleStudyError(AnalysisError):
    """The chosen models cannot read this study (e.g. an fMRI model on a radiograph), or a bad option."""

    message = "The chosen models cannot analyse this study."


class ModelUnavailableError(AnalysisError):
    """A model of the pair is not installed, or its weights are missing or damaged."""

    message = "A model of the chosen pair could not be loaded."


# --------------------------------------------------------------------------------- pairing


def default_device() -> str:
    """CUDA when a GPU is usable, else the CPU (a setting may override it)."""
    return "cuda" if torch.cuda.is_available() else "cpu"


def _parse_device(device: str | torch.device | None) -> torch.device:
    """A torch device from a setting ("cpu", "cuda", "cuda:1"; None: the default), or a typed error."""
    if device is None:
        return torch.device(default_device())
    try:
        return torch.device(device)
    except (RuntimeError, ValueError, TypeError):
        raise AnalysisError(f"The device {device!r} is not known; use cpu or cuda.") from None


def _modality_words(modality: str) -> str:
    return _MODALITY_WORDS.get(modality, modality or "unknown")


def fmri_map_warning(study: Study, wanted: str | None) -> str | None:
    """A model reading *wanted* (e.g. amplitude) maps, given a 3-D map of another or unknown kind."""
    if not wanted or wanted in study.maps or "input" not in study.maps:
        return None
    other = study.maps["input"].name
    if other != "input":
        article = "an" if other[0] in "aeiou" else "a"
        return (f"This is {article} {other} map, but the models were trained on {wanted} maps: "
                f"their predictions and heatmaps for it are not meaningful.")
    return (f"The models were trained on {wanted} maps; the file does not say which map it holds, "
            f"so make sure it is a {wanted} map.")


def task_mismatch_warning(study: Study, task: str) -> str | None:
    """A sentence when *task*'s models were not trained on studies like this one, else None.

    Why only a warning: the modality hint can be missing or wrong (a radiograph saved as JPEG
    reads as a plain grey image), so the user may override; but a chest model on an MR must
    never run silently, because its confident-looking output would be meaningless.
    """
    trained_on = TASK_DESCRIPTIONS.get(task, f"the {task} data")
    expected = TASK_BY_MODALITY.get(study.modality)
    if expected is not None:
        if expected == task:
            return None
        return (f"This is a {_modality_words(study.modality)} study, but the {task} models were trained on "
                f"{trained_on}; their output means nothing for it.")
    # No task is known for this modality (plain grey JPEG, CT, photo): judge by colour only.
    if task in _COLOUR_TASKS and not study.is_rgb:
        return f"This is a grey-scale image, but the {task} models were trained on colour {trained_on}."
    if task not in _COLOUR_TASKS and task in TASK_DESCRIPTIONS and study.is_rgb and task != "fmri-asd":
        return f"This is a colour image, but the {task} models were trained on grey-scale {trained_on}."
    if study.modality not in ("OT", ""):
        return (f"MedKD has no model for {_modality_words(study.modality)} studies; the {task} models were "
                f"trained on {trained_on}.")
    return None


def propose_pair(study: Study, registry: ModelRegistry, chosen: str | None = None) -> tuple[str | None, str | None]:
    """The task to use for *study* and a warning to show (either may be None).

    Without *chosen*: the task the study's modality suggests when its models are installed
    (``registry.propose_task`` rule), else ``(None, reason)``. With *chosen* (the user's pick):
    ``(chosen, mismatch warning or None)``.
    """
    available = registry.paired_tasks()
    if chosen is not None:
        if chosen not in available:
            listing = ", ".join(available) or "none installed"
            return None, f"No models are installed for task {chosen!r} (installed: {listing})."
        return chosen, task_mismatch_warning(study, chosen)
    task = propose_task(study.modality, available)
    if task is not None:
        return task, None
    listing = ", ".join(available) or "none installed"
    wanted = TASK_BY_MODALITY.get(study.modality)
    if wanted is not None:
        return None, f"The {wanted} models for {_modality_words(study.modality)} studies are not installed; choose a task ({listing})."
    return None, f"No model is proposed for a {_modality_words(study.modality)} study; choose a task ({listing})."


# --------------------------------------------------------------------------------- explain glue


def _explain_module():
    """``medkd_desktop.explain``, imported on first use (it pulls in grad-cam and friends)."""
    from .. import explain as module

    return module


def known_methods() -> tuple[str, ...]:
    """Explanation methods ``explain`` offers (the strip method included)."""
    return tuple(_explain_module().list_methods())


def _heatmap_array(arr: Any) -> np.ndarray:
    if isinstance(arr, torch.Tensor):
        arr = arr.detach().cpu().numpy()
    return np.asarray(arr, dtype=np.float32)


def _stage_maps(heatmap: Any) -> list[tuple[str, np.ndarray]]:
    """Per-stage maps of a ``feature_maps`` result, as (stage name, (h, w) float32 in [0, 1])."""
    names = list(heatmap.stage_names) or [f"stage {i + 1}" for i in range(len(heatmap.stages))]
    return [(str(n), _heatmap_array(m)) for n, m in zip(names, heatmap.stages, strict=False)]


def _run_explain(model: torch.nn.Module, inputs: Any, index: int, method: str, target: int | None) -> Any:
    """``explain`` on one input, its ExplainError (method does not apply...) as a typed analysis error."""
    module = _explain_module()
    try:
        return module.explain(model, inputs.tensor[index:index + 1], method, target=target, card=inputs.card)
    except module.ExplainError as exc:
        raise IncompatibleStudyError(f"{inputs.card.role.capitalize()} model: {exc}", detail=str(exc)) from None


def _agreement(t: np.ndarray, s: np.ndarray) -> HeatmapAgreement:
    """explain.metrics' three figures; NaN where undefined (a flat, constant map)."""
    from ..explain.metrics import iou_topk, pearson, ssim

    return HeatmapAgreement(pearson=pearson(t, s), ssim=ssim(t, s), iou_top20=iou_topk(t, s, 20.0))


# --------------------------------------------------------------------------------- geometry


def _crop_box(shape: tuple[int, int], spec: InputSpec) -> tuple[int, int, int, int]:
    """(y0, x0, y1, x1) of the part of an (H, W) image a model of *spec* sees (preprocess's crop)."""
    h, w = shape
    if spec.crop == "center_square":
        s = min(h, w)
        y0, x0 = (h - s) // 2, (w - s) // 2
        return y0, x0, y0 + s, x0 + s
    return 0, 0, h, w


def _resize(arr: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of a 2-D map (area-averaged when shrinking), float32."""
    if tuple(arr.shape) == tuple(shape):
        return arr.astype(np.float32, copy=False)
    t = torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32))[None, None]
    shrink = shape[0] < arr.shape[0] or shape[1] < arr.shape[1]
    out = F.interpolate(t, size=tuple(int(s) for s in shape), mode="bilinear", align_corners=False, antialias=shrink)
    return out[0, 0].clamp_(0.0, 1.0).numpy()


def _fit(shape: tuple[int, int], max_side: int) -> tuple[int, int]:
    h, w = shape
    scale = min(1.0, max_side / max(h, w))
    return max(1, round(h * scale)), max(1, round(w * scale))


# --------------------------------------------------------------------------------- engine


ProgressFn = Callable[[float, str], Any]
CancelFn = Callable[[], bool]


@dataclass
class _Inputs:
    """A model's tensors and where each one lies in the analysed image."""

    tensor: torch.Tensor  # (N, C, S, S) normalised; N = 1, or the number of tiles
    boxes: list[tuple[int, int, int, int]]  # per input: region of the analysed image it covers
    image: np.ndarray  # the analysed image this model's inputs came from ([0, 1], gray or RGB)
    card: ModelCard  # its per-method target layers reach the explainers


class _Steps:
    """Progress, cancellation and per-step timings of one analysis."""

    def __init__(self, total: int, on_progress: ProgressFn | None, cancel: CancelFn | None, sync: Callable[[], None]) -> None:
        self.total = max(1, total)
        self.done = 0
        self.on_progress = on_progress
        self.cancel = cancel
        self.sync = sync
        self.timings: dict[str, float] = {}

    def check(self) -> None:
        if self.cancel is not None and self.cancel():
            raise AnalysisCancelled()

    def run(self, key: str, message: str, fn: Callable[[], Any]) -> Any:
        self.check()
        t0 = time.perf_counter()
        out = fn()
        self.sync()
        self.timings[key] = self.timings.get(key, 0.0) + (time.perf_counter() - t0) * 1000.0
        self.done += 1
        if self.on_progress is not None:
            self.on_progress(min(1.0, self.done / self.total), message)
        return out


class Engine:
    """Runs teacher/student analyses on one device with models cached by the registry."""

    def __init__(self, registry: ModelRegistry | None = None, device: str | torch.device | None = None) -> None:
        self.registry = registry if registry is not None else ModelRegistry()
        self._device = _parse_device(device)
        self._lock = threading.RLock()
        self._warm = False

    # -- device and models --------------------------------------------------------------

    @property
    def device(self) -> str:
        return str(self._device)

    def set_device(self, device: str | torch.device | None) -> None:
        """Switch device (None: CUDA if present); models load again on first use there."""
        with self._lock:
            self._device = _parse_device(device)

    def _resolve_pair(self, pair: ModelPair | str) -> ModelPair:
        if isinstance(pair, ModelPair):
            return pair
        try:
            return self.registry.pair(pair)
        except ModelLoadError as exc:
            raise ModelUnavailableError(str(exc), detail=str(exc)) from None

    def load_pair(self, pair: ModelPair | str) -> tuple[torch.nn.Module, torch.nn.Module]:
        """Load (or fetch from the cache) both models on this engine's device.

        The first call also warms the explainers up (see :meth:`_warm_up`), so that the first
        analysis after a study opens costs what every later one costs.
        """
        pair = self._resolve_pair(pair)
        with self._lock:
            _explain_module()  # import (and register) the explainers now, not inside the first analysis
            try:
                models = self.registry.load(pair.teacher, self._device), self.registry.load(pair.student, self._device)
            except ModelLoadError as exc:
                raise ModelUnavailableError(str(exc), detail=str(exc)) from None
            except (ValueError, RuntimeError, OSError) as exc:  # architecture or device problems
                log.warning("model load failed: %s: %s", type(exc).__name__, exc)
                raise ModelUnavailableError(
                    "A model of the chosen pair could not be built on this device; the log has details.",
                    detail=f"{type(exc).__name__}: {exc}",
                ) from None
            if not self._warm:
                self._warm_up(models[1], pair.student)
            return models

    def _warm_up(self, model: torch.nn.Module, card: ModelCard) -> None:
        """One throw-away Grad-CAM of the student on a blank input.

        Why: the first CAM in a process imports pytorch-grad-cam's dependencies (scikit-learn,
        torchvision: measured 4-7 s on the shared 2-core machine) and sets up autograd. Paying that
        while models load in the background keeps "open a study -> overlays" short.
        """
        t0 = time.perf_counter()
        spec = card.input
        x = torch.zeros(1, spec.channels, spec.size, spec.size, device=self._device)
        module = _explain_module()
        try:
            module.explain(model, x, "gradcam", card=card)
        except module.ExplainError as exc:  # a model Grad-CAM cannot read: its analyses will say so
            log.debug("explainer warm-up skipped: %s", exc)
        self._warm = True
        log.debug("explainers warmed up in %.0f ms", (time.perf_counter() - t0) * 1000)

    preload = load_pair

    def _sync(self) -> None:
        if self._device.type == "cuda":
            torch.cuda.synchronize(self._device)

    # -- public analysis ----------------------------------------------------------------

    def analyze(
        self,
        study: Study,
        pair: ModelPair | str,
        methods: Sequence[str] = ("gradcam",),
        target: str | None = None,
        volume: int = 0,
        slice_: int | None = None,
        on_progress: ProgressFn | None = None,
        cancel: CancelFn | None = None,
        strip: bool = True,
    ) -> Analysis:
        """Analyse the frame (*volume*, *slice_*) of *study* (slice None: the middle one, as shown).

        *methods*: explanation methods (``explain`` names); ``"feature_maps"`` among them is not an
        overlay but asks for each model's layer strip. *strip* (default True) computes the strip
        anyway; it costs one more forward pass per model (about a third of a 2-D analysis), so
        callers that never show it (the CLI) turn it off. *target*: a class name both models
        explain, or None for each model's own prediction. Raises only :class:`AnalysisError`
        subclasses (:class:`AnalysisCancelled` when *cancel()* turned true).
        """
        with self._lock:
            try:
                return self._analyze(study, self._resolve_pair(pair), list(methods), target, volume, slice_,
                                     on_progress, cancel, strip or STRIP_METHOD in methods)
            except AnalysisError:
                raise
            except ModelLoadError as exc:
                raise ModelUnavailableError(str(exc), detail=str(exc)) from None
            except (MemoryError, torch.cuda.OutOfMemoryError) as exc:
                raise AnalysisError(
                    "The analysis ran out of memory; close other studies or switch the device to CPU.",
                    detail=type(exc).__name__,
                ) from None
            except Exception as exc:  # a library or model failure: still one typed, readable error
                log.warning("analysis failed: %s: %s", type(exc).__name__, exc)
                raise AnalysisError(
                    "The analysis failed because of an unexpected error; the log has details.",
                    detail=f"{type(exc).__name__}: {exc}",
                ) from None

    def analyze_frame(
        self,
        image: np.ndarray,
        pair: ModelPair | str,
        methods: Sequence[str] = ("gradcam",),
        target: str | None = None,
        modality: str = "OT",
        on_progress: ProgressFn | None = None,
        cancel: CancelFn | None = None,
        strip: bool = True,
    ) -> Analysis:
        """Analyse a bare displayed image ([0, 1], gray (H, W) or RGB (H, W, 3)), e.g. a screenshot."""
        img = np.clip(np.asarray(image, dtype=np.float32), 0.0, 1.0)
        if img.ndim not in (2, 3) or (img.ndim == 3 and img.shape[-1] != 3):
            raise IncompatibleStudyError("The image must be grey (H, W) or colour (H, W, 3).")
        pixels = img[None, None]
        from ..studies.study import DisplayWindow

        window = None if img.ndim == 3 else DisplayWindow(0.5, 1.0)  # identity window on [0, 1]
        study = Study(kind=StudyKind.IMAGE, modality=modality, pixels=pixels, windows=windows_like(pixels, window),
                      source=Path("<frame>"))
        return self.analyze(study, pair, methods, target, 0, 0, on_progress, cancel, strip)

    # -- the steps ----------------------------------------------------------------------

    def _analyze(self, study: Study, pair: ModelPair, methods: list[str], target: str | None, volume: int,
                 slice_: int | None, on_progress: ProgressFn | None, cancel: CancelFn | None,
                 strip: bool) -> Analysis:
        t_start = time.perf_counter()
        t_card, s_card = pair.teacher, pair.student
        for card in (t_card, s_card):
            if target is not None and target not in card.classes:
                raise IncompatibleStudyError(
                    f"The {card.role} model has no class {target!r} (its classes: {', '.join(card.classes)})."
                )
        overlay_methods = self._check_methods(methods)
        if not 0 <= volume < study.n_volumes:
            raise IncompatibleStudyError(f"The study has no volume {volume + 1} (it has {study.n_volumes}).")
        if slice_ is not None and not 0 <= slice_ < study.n_slices:
            raise IncompatibleStudyError(f"The study has no slice {slice_ + 1} (it has {study.n_slices}).")
        z = study.n_slices // 2 if slice_ is None else slice_
        tiled = study.tiles is not None and not (t_card.input.fmri_map or s_card.input.fmri_map)
        n_tiles = len(study.tiles.boxes) if tiled and study.tiles is not None else 1

        # load, preprocess, two forwards, each method for both models, agreement, (strip)
        n_steps = 5 + 2 * len(overlay_methods) + int(strip)
        steps = _Steps(n_steps, on_progress, cancel, self._sync)
        warnings = self._warnings(study, pair)

        teacher, student = steps.run("load_models", "models loaded", lambda: self.load_pair(pair))
        t_in, s_in = steps.run("preprocess", "image prepared",
                               lambda: (self._inputs(study, t_card, volume, z, tiled),
                                        self._inputs(study, s_card, volume, z, tiled)))
        image = t_in.image
        if s_in.image.shape[:2] != image.shape[:2]:
            warnings.append("Teacher and student see differently rendered images; the student's heatmaps are "
                            "resampled onto the teacher's image.")
        t_probs, t_ms = steps.run("teacher_forward", "teacher prediction", lambda: self._forward(teacher, t_in, steps))
        s_probs, s_ms = steps.run("student_forward", "student prediction", lambda: self._forward(student, s_in, steps))

        t_res = self._result("teacher", t_card, t_probs, t_ms)
        s_res = self._result("student", s_card, s_probs, s_ms)
        tile_probs = {"teacher": t_probs, "student": s_probs}
        t_target = t_card.classes.index(target) if target is not None else t_res.predicted_index
        s_target = s_card.classes.index(target) if target is not None else s_res.predicted_index

        hw = image.shape[:2]
        for method in overlay_methods:
            for model, inputs, res, cls in ((teacher, t_in, t_res, t_target), (student, s_in, s_res, s_target)):
                heat, seconds = steps.run(
                    f"{method}_{res.role}", f"{method} of the {res.role}",
                    lambda model=model, inputs=inputs, res=res, cls=cls: self._explain(
                        model, inputs, method, cls, tile_probs[res.role], hw, steps),
                )
                res.heatmaps[method] = heat
                res.explain_seconds[method] = seconds
                if float(heat.max()) <= 0.0:
                    warnings.append(f"The {res.role}'s {method} map is empty: no region of the image raises its score "
                                    f"for {res.classes[cls]}, so there is nothing to show.")

        region = self._common_region(hw, t_card.input, s_card.input, tiled)
        agreement = steps.run("agreement", "heatmap agreement",
                              lambda: {m: self._agree(t_res.heatmaps[m], s_res.heatmaps[m], region) for m in overlay_methods})
        if strip:
            steps.run("feature_maps", "layer strips",
                      lambda: self._strips(((teacher, t_in, t_res), (student, s_in, s_res)), hw, tiled, steps))

        steps.timings["total"] = (time.perf_counter() - t_start) * 1000.0
        log.info("analysis of a %s study with %s done in %.0f ms on %s", study.kind.value, pair.task,
                 steps.timings["total"], self.device)
        return Analysis(
            task=pair.task, image=image, frame_index=(volume, z), teacher=t_res, student=s_res, target=target,
            agreement=agreement, timings_ms=steps.timings, device=self.device, warnings=warnings, n_tiles=n_tiles,
        )

    def _check_methods(self, methods: list[str]) -> list[str]:
        known = known_methods()
        unknown = [m for m in methods if m not in known]
        if unknown:
            raise IncompatibleStudyError(
                f"Unknown explanation method {unknown[0]!r}; choose one of: {', '.join(known)}."
            )
        out: list[str] = []
        for m in methods:
            if m != STRIP_METHOD and m not in out:
                out.append(m)
        return out

    def _warnings(self, study: Study, pair: ModelPair) -> list[str]:
        warnings: list[str] = []
        mismatch = task_mismatch_warning(study, pair.task)
        if mismatch:
            warnings.append(mismatch)
        for card in (pair.teacher, pair.student):
            warnings.append(fmri_map_warning(study, card.input.fmri_map))
        return [w for w in dict.fromkeys(warnings) if w]

    def _inputs(self, study: Study, card: ModelCard, volume: int, z: int, tiled: bool) -> _Inputs:
        spec = card.input
        try:
            image = model_input_image(study, spec, volume, z)
        except ValueError as exc:
            raise IncompatibleStudyError(
                f"The {card.role} model reads fMRI summary maps, and this study has none.", detail=str(exc)
            ) from None
        except StudyLoadError as exc:  # the glass brain could not be rendered from the map
            raise IncompatibleStudyError(str(exc), detail=exc.detail) from None
        if tiled and study.tiles is not None:
            grid = study.tiles
            boxes = list(grid.boxes)
            tensor = torch.stack([preprocess(image[y0:y1, x0:x1], spec) for (y0, x0, y1, x1) in boxes])
            # Within a tile the model sees its (square) crop; record that crop in field coordinates.
            boxes = [(y0 + a, x0 + b, y0 + c, x0 + d)
                     for (y0, x0, y1, x1) in boxes
                     for (a, b, c, d) in [_crop_box((y1 - y0, x1 - x0), spec)]]
        else:
            tensor = preprocess(image, spec)[None]
            boxes = [_crop_box(image.shape[:2], spec)]
        return _Inputs(tensor=tensor.to(self._device), boxes=boxes, image=image, card=card)

    def _forward(self, model: torch.nn.Module, inputs: _Inputs, steps: _Steps) -> tuple[np.ndarray, float]:
        """Softmax probabilities of every input and the forward time in ms (batch 1 or tile batches)."""
        probs = []
        elapsed = 0.0
        with torch.inference_mode():
            for i in range(0, inputs.tensor.shape[0], TILE_BATCH):
                steps.check()
                batch = inputs.tensor[i:i + TILE_BATCH]
                self._sync()
                t0 = time.perf_counter()
                logits = model(batch)
                self._sync()
                elapsed += time.perf_counter() - t0
                probs.append(torch.softmax(logits.float(), dim=1).cpu().numpy())
        return np.concatenate(probs, axis=0), elapsed * 1000.0

    @staticmethod
    def _result(role: str, card: ModelCard, tile_probs: np.ndarray, ms: float) -> ModelResult:
        mean = tile_probs.mean(axis=0).astype(np.float64)
        mean = mean / mean.sum()
        return ModelResult(role=role, card_id=card.id, name=card.name or card.id, classes=list(card.classes),
                           probabilities=mean, latency_ms=ms, test_accuracy=card.test_accuracy)

    def _explain(self, model: torch.nn.Module, inputs: _Inputs, method: str, cls: int, tile_probs: np.ndarray,
                 hw: tuple[int, int], steps: _Steps) -> tuple[np.ndarray, float]:
        """Explain class *cls* in every input and paste the maps onto the analysed image's grid."""
        n = inputs.tensor.shape[0]
        out = np.zeros(hw, dtype=np.float32)
        weight = np.zeros(hw, dtype=np.float32) if n > 1 else None
        seconds = 0.0
        for i in range(n):
            steps.check()
            heat = _run_explain(model, inputs, i, method, cls)
            seconds += heat.seconds
            y0, x0, y1, x1 = self._scaled_box(inputs.boxes[i], inputs.image.shape[:2], hw)
            patch = _resize(_heatmap_array(heat.map), (y1 - y0, x1 - x0))
            if weight is None:
                out[y0:y1, x0:x1] = patch
            else:  # tiles: scale by the tile's probability of the class; average where tiles overlap
                out[y0:y1, x0:x1] += patch * float(tile_probs[i, cls])
                weight[y0:y1, x0:x1] += 1.0
        if weight is not None:
            np.divide(out, weight, out=out, where=weight > 0)
        return np.clip(out, 0.0, 1.0), seconds

    @staticmethod
    def _scaled_box(box: tuple[int, int, int, int], src: tuple[int, int], dst: tuple[int, int]) -> tuple[int, int, int, int]:
        """A box on an image of shape *src* expressed on a grid of shape *dst* (same picture)."""
        if src == dst:
            return box
        sy, sx = dst[0] / src[0], dst[1] / src[1]
        y0, x0, y1, x1 = box
        ny0, nx0 = int(round(y0 * sy)), int(round(x0 * sx))
        return ny0, nx0, max(ny0 + 1, int(round(y1 * sy))), max(nx0 + 1, int(round(x1 * sx)))

    @staticmethod
    def _common_region(hw: tuple[int, int], t_spec: InputSpec, s_spec: InputSpec, tiled: bool) -> tuple[int, int, int, int]:
        if tiled:
            return 0, 0, hw[0], hw[1]
        a, b = _crop_box(hw, t_spec), _crop_box(hw, s_spec)
        return a if a == b else (0, 0, hw[0], hw[1])

    @staticmethod
    def _agree(t: np.ndarray, s: np.ndarray, region: tuple[int, int, int, int]) -> HeatmapAgreement:
        y0, x0, y1, x1 = region
        shape = _fit((y1 - y0, x1 - x0), AGREEMENT_MAX_SIDE)
        return _agreement(_resize(t[y0:y1, x0:x1], shape), _resize(s[y0:y1, x0:x1], shape))

    def _strips(self, models: Sequence[tuple[torch.nn.Module, _Inputs, ModelResult]], hw: tuple[int, int],
                tiled: bool, steps: _Steps) -> None:
        """Fill each model's layer strip; for tiled fields every stage is assembled as a tile grid."""
        for model, inputs, res in models:
            per_input = []
            for i in range(inputs.tensor.shape[0]):
                steps.check()
                per_input.append(_stage_maps(_run_explain(model, inputs, i, STRIP_METHOD, None)))
            if not per_input or not per_input[0]:
                continue
            if not tiled:
                res.feature_maps = per_input[0]
                continue
            stages = []
            tile = max(1, inputs.boxes[0][2] - inputs.boxes[0][0])
            for k, (name, first) in enumerate(per_input[0]):
                scale = first.shape[0] / tile  # this stage's pixels per field pixel
                grid = (max(1, math.ceil(hw[0] * scale)), max(1, math.ceil(hw[1] * scale)))
                canvas = np.zeros(grid, dtype=np.float32)
                count = np.zeros(grid, dtype=np.float32)
                for i, maps in enumerate(per_input):
                    y0, x0, y1, x1 = self._scaled_box(inputs.boxes[i], hw, grid)
                    canvas[y0:y1, x0:x1] += _resize(maps[k][1], (y1 - y0, x1 - x0))
                    count[y0:y1, x0:x1] += 1.0
                np.divide(canvas, count, out=canvas, where=count > 0)
                stages.append((name, canvas))
            res.feature_maps = stages
