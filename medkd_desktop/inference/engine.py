"""The engine: one study frame through a teacher and its student, with explanations and timings.

Why one engine for the GUI and the CLI: the window, ``medkd analyze`` and the exported reports
must show the same numbers for the same frame, so every step lives here, without Qt, and the
result is the typed :class:`~medkd_desktop.inference.analysis.Analysis`.

Design choices a reader of the results needs to know:

* **One preprocessing path.** Each card's own :class:`InputSpec` (teacher and student may differ)
  goes through :func:`model_input_image` and :func:`preprocess`, exactly as in training.
* **Heatmaps stay at model resolution** with the box of the analysed image (the frame the
  clinician sees, or the glass-brain image for fMRI cards) that the model saw
  (:class:`~medkd_desktop.models.geometry.PlacedMap`). The viewers and the exporters draw them
  onto the frame at the size they need; outside the box a drawn map is 0, so an overlay never
  claims evidence from pixels the model did not look at.
* **Tiled fields** (large H&E images, ``Study.tiles``) run every tile through both models
  (batched), average the tile probabilities into one field prediction, and explain the *field's*
  predicted class (or the requested target) in every tile. Each tile's map is scaled by that
  tile's probability for the class before being pasted into a mosaic of the whole field (at the
  models' resolution, at most :data:`MOSAIC_MAX_SIDE` px), so tiles that do not show the class
  stay dim instead of each tile lighting up its own "hottest" spot.
* **Latency** is one timed batch-1 forward pass per model (``torch.inference_mode``, CUDA
  synchronised), i.e. what this analysis cost, not a benchmark median (see ``medkd bench
  inference`` for that). For tiled fields it is the time of all tile forwards together.
* **Agreement** (Pearson r, SSIM, top-20 % IoU) is ``explain.metrics.map_agreement``: the one
  function and grid (the region both models saw, at the maps' own resolution, at most 256 px)
  behind every agreement figure the app, ``medkd explain`` and ``medkd bench explain`` report.
* **Out of distribution.** Each model's result carries an :class:`OodResult`: the study-level gate
  (``pairing.mismatch_warning``: modality, body part, colour) and, when the card has OOD statistics
  (``trust.ood``), the feature score read from the prediction's own forward pass.
* With ``faithfulness=True`` each map also gets deletion and insertion AUC against its own model
  (``explain.metrics``, the benchmark's code) on the model input it explains.
* Models load once per device through the registry's cache; a lock serialises analyses so two
  threads never hook (Grad-CAM) the same module at once. The first :meth:`Engine.load_pair` also
  runs one throw-away Grad-CAM, because the first CAM of a process pays seconds of imports.
* The **layer strip** (``feature_maps``, paper 002) costs one more forward pass per model, about
  a third of a 2-D analysis; ``strip=False`` skips it where nothing shows it (the CLI).
* ``cancel()`` is polled between steps (and between tiles); ``on_progress(fraction, message)``
  is called after each step. Failures surface as :class:`AnalysisError` subclasses whose text
  is one sentence for the user; the library's text goes to ``detail`` and the log.

Length: over 500 lines because it is the one orchestrator: each step of an analysis
(load, preprocess, forward, explain, tiles, agreement, strip) is a short method here, so the order
of the steps and their progress and cancel points read top to bottom in one file.
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

from ..models.card import ModelCard
from ..models.features import logits_and_features
from ..models.geometry import Box, PlacedMap, fit, input_box, resize_map, whole
from ..models.preprocess import model_input_image, preprocess
from ..models.registry import ModelPair, ModelRegistry
from ..models.weights import ModelLoadError
from ..studies.errors import StudyLoadError
from ..studies.study import DisplayWindow, Study, StudyKind, windows_like
from ..trust.ood import OodDetector, OodStatsError
from .analysis import Analysis, HeatmapAgreement, ModelResult, OodResult
from .errors import AnalysisCancelled, AnalysisError, IncompatibleStudyError, ModelUnavailableError
from .pairing import mismatch_warning
from .view_state import STRIP_METHOD

log = logging.getLogger(__name__)

__all__ = [
    "AnalysisCancelled",
    "AnalysisError",
    "Engine",
    "IncompatibleStudyError",
    "ModelUnavailableError",
    "default_device",
]

#: Tiles per forward batch for tiled fields (bounded memory: 16 x 3 x 224 x 224 floats = 10 MB).
TILE_BATCH = 16
#: A tiled field's heatmap mosaic is at most this many pixels on its longer side.
MOSAIC_MAX_SIDE = 2048


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


def _run_explain(model: torch.nn.Module, inputs: _Inputs, index: int, method: str, target: int | None) -> Any:
    """``explain`` on one input, its ExplainError (method does not apply...) as a typed analysis error."""
    module = _explain_module()
    try:
        return module.explain(model, inputs.tensor[index:index + 1], method, target=target, card=inputs.card)
    except module.ExplainError as exc:
        raise IncompatibleStudyError(f"{inputs.card.role.capitalize()} model: {exc}", detail=str(exc)) from None


# --------------------------------------------------------------------------------- engine


ProgressFn = Callable[[float, str], Any]
CancelFn = Callable[[], bool]


@dataclass
class _Inputs:
    """A model's tensors and where each one lies in the analysed image."""

    tensor: torch.Tensor  # (N, C, S, S) normalised; N = 1, or the number of tiles
    boxes: list[Box]  # per input: the region of the analysed image it covers
    image: np.ndarray  # the analysed image this model's inputs came from ([0, 1], gray or RGB)
    card: ModelCard  # its per-method target layers reach the explainers

    @property
    def shape(self) -> tuple[int, int]:
        return self.image.shape[:2]


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
        self._detectors: dict[tuple[str, str], OodDetector] = {}

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
            raise ModelUnavailableError(str(exc), detail=exc.detail or str(exc)) from None

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
                raise ModelUnavailableError(str(exc), detail=exc.detail or str(exc)) from None
            except (ValueError, RuntimeError, OSError) as exc:  # architecture or device problems
                log.warning("model load failed: %s: %s", type(exc).__name__, exc)
                raise ModelUnavailableError(
                    "A model of the chosen pair could not be built on this device; the log has details.",
                    detail=f"{type(exc).__name__}: {exc}",
                ) from None
            for card in (pair.teacher, pair.student):
                self.detector(card)
            if not self._warm:
                self._warm_up(models[1], pair.student)
            return models

    def detector(self, card: ModelCard) -> OodDetector | None:
        """The card's OOD statistics (verified against its sha256), cached; None when it has none."""
        if not card.ood:
            return None
        key = (card.id, card.ood.get("sha256", ""))
        if key not in self._detectors:
            try:
                self._detectors[key] = OodDetector.load(card.ood_path, card.ood.get("sha256"))
            except OodStatsError as exc:
                raise ModelUnavailableError(f"Model {card.id}: {exc}", detail=exc.detail or str(exc)) from None
        return self._detectors[key]

    def methods_for(self, pair: ModelPair | str) -> list[str]:
        """Explanation methods that apply to both models of the pair (attention needs a transformer)."""
        teacher, student = self.load_pair(pair)
        methods = _explain_module().list_methods
        return [m for m in methods(teacher) if m in methods(student)]

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
        *,
        skip_inapplicable: bool = False,
        faithfulness: bool = False,
        steps: int = 20,
    ) -> Analysis:
        """Analyse the frame (*volume*, *slice_*) of *study* (slice None: the middle one, as shown).

        *methods*: explanation methods (``explain`` names). *strip* (default True) also fills each
        model's layer strip (``feature_maps``' stages); it costs one more forward pass per model
        (about a third of a 2-D analysis) unless ``feature_maps`` is among *methods*, so callers
        that never show it (the CLI) turn it off. *target*: a class name both models
        explain, or None for each model's own prediction. *skip_inapplicable*: a method that does
        not apply to a model (attention on a CNN) is listed in ``ModelResult.skipped`` instead of
        failing the analysis. *faithfulness*: deletion/insertion AUC per map (*steps* each).
        Raises only :class:`AnalysisError` subclasses (:class:`AnalysisCancelled` when
        *cancel()* turned true).
        """
        with self._lock:
            try:
                return self._analyze(study, self._resolve_pair(pair), list(methods), target, volume, slice_,
                                     _Steps(0, on_progress, cancel, self._sync), strip,
                                     skip_inapplicable, steps if faithfulness else 0)
            except AnalysisError:
                raise
            except ModelLoadError as exc:
                raise ModelUnavailableError(str(exc), detail=exc.detail or str(exc)) from None
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

    def analyze_frame(self, image: np.ndarray, pair: ModelPair | str, methods: Sequence[str] = ("gradcam",),
                      target: str | None = None, modality: str = "OT", **kwargs: Any) -> Analysis:
        """Analyse a bare displayed image ([0, 1], gray (H, W) or RGB (H, W, 3)), e.g. a screenshot."""
        img = np.clip(np.asarray(image, dtype=np.float32), 0.0, 1.0)
        if img.ndim not in (2, 3) or (img.ndim == 3 and img.shape[-1] != 3):
            raise IncompatibleStudyError("The image must be grey (H, W) or colour (H, W, 3).")
        pixels = img[None, None]
        window = None if img.ndim == 3 else DisplayWindow(0.5, 1.0)  # identity window on [0, 1]
        study = Study(kind=StudyKind.IMAGE, modality=modality, pixels=pixels, windows=windows_like(pixels, window),
                      source=Path("<frame>"))
        return self.analyze(study, pair, methods, target, 0, 0, **kwargs)

    # -- the steps ----------------------------------------------------------------------

    def _analyze(self, study: Study, pair: ModelPair, methods: list[str], target: str | None, volume: int,
                 slice_: int | None, steps: _Steps, strip: bool, lenient: bool, faithful_steps: int) -> Analysis:
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

        # load, preprocess, two forwards, each method for both models, agreement, (strip)
        steps.total = 5 + 2 * len(overlay_methods) + int(strip)
        warnings = self._warnings(study, pair)
        gate = mismatch_warning(study, pair.task, self.registry)

        teacher, student = steps.run("load_models", "models loaded", lambda: self.load_pair(pair))
        t_in, s_in = steps.run("preprocess", "image prepared",
                               lambda: (self._inputs(study, t_card, volume, z, tiled),
                                        self._inputs(study, s_card, volume, z, tiled)))
        image = t_in.image
        if s_in.shape != t_in.shape:
            warnings.append("Teacher and student see differently rendered images; the student's heatmaps are "
                            "placed on the teacher's image.")
        t_probs, t_raw, t_ms, t_ood = steps.run("teacher_forward", "teacher prediction",
                                                lambda: self._forward(teacher, t_in, steps, gate))
        s_probs, s_raw, s_ms, s_ood = steps.run("student_forward", "student prediction",
                                                lambda: self._forward(student, s_in, steps, gate))

        t_res = self._result("teacher", t_card, t_probs, t_raw, t_ms, t_ood)
        s_res = self._result("student", s_card, s_probs, s_raw, s_ms, s_ood)
        runs = ((teacher, t_in, t_res, t_probs), (student, s_in, s_res, s_probs))
        applies = _explain_module().list_methods
        for method in overlay_methods:
            for model, inputs, res, tile_probs in runs:
                if lenient and method not in applies(model):
                    res.skipped[method] = f"{method} does not apply to {inputs.card.architecture}"
                    steps.done += 1
                    continue
                cls = res.classes.index(target) if target is not None else res.predicted_index
                placed, seconds, quality, stages = steps.run(
                    f"{method}_{res.role}", f"{method} of the {res.role}",
                    lambda model=model, inputs=inputs, cls=cls, tile_probs=tile_probs: self._explain(
                        model, inputs, method, cls, tile_probs, tiled, faithful_steps, steps),
                )
                if placed.image_shape != image.shape[:2]:  # the student's rendering differs: onto the teacher's
                    placed = PlacedMap(placed.map, placed.box.scaled(placed.image_shape, image.shape[:2]),
                                       image.shape[:2])
                res.heatmaps[method] = placed
                res.explain_seconds[method] = seconds
                if stages:
                    res.stages[method] = stages
                if quality:
                    res.faithfulness[method] = quality
                if placed.empty:
                    warnings.append(f"The {res.role}'s {method} map is empty: no region of the image raises its score "
                                    f"for {res.classes[cls]}, so there is nothing to show.")

        both = [m for m in overlay_methods if m in t_res.heatmaps and m in s_res.heatmaps]
        agreement = steps.run("agreement", "heatmap agreement",
                              lambda: {m: self._agree(t_res.heatmaps[m], s_res.heatmaps[m]) for m in both})
        if strip and (tiled or STRIP_METHOD not in overlay_methods):
            steps.run("feature_maps", "layer strips",
                      lambda: self._strips(((teacher, t_in, t_res), (student, s_in, s_res)), tiled, steps))
        elif strip:  # the strip is the explained feature maps' stages
            for res in (t_res, s_res):
                res.feature_maps = [(name, m.map) for name, m in res.stages.get(STRIP_METHOD, [])]

        steps.timings["total"] = (time.perf_counter() - t_start) * 1000.0
        log.info("analysis of a %s study with %s done in %.0f ms on %s", study.kind.value, pair.task,
                 steps.timings["total"], self.device)
        return Analysis(
            task=pair.task, image=image, frame_index=(volume, z), teacher=t_res, student=s_res, target=target,
            agreement=agreement, timings_ms=steps.timings, device=self.device, warnings=warnings,
            n_tiles=len(t_in.boxes) if tiled else 1,
        )

    def _check_methods(self, methods: list[str]) -> list[str]:
        known = known_methods()
        unknown = [m for m in methods if m not in known]
        if unknown:
            raise IncompatibleStudyError(
                f"Unknown explanation method {unknown[0]!r}; choose one of: {', '.join(known)}."
            )
        return list(dict.fromkeys(methods))

    def _warnings(self, study: Study, pair: ModelPair) -> list[str]:
        warnings = [mismatch_warning(study, pair.task, self.registry)]
        warnings += [fmri_map_warning(study, card.input.fmri_map) for card in (pair.teacher, pair.student)]
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
            tiles = [Box(*b) for b in study.tiles.boxes]
            tensor = torch.stack([preprocess(image[t.slices], spec) for t in tiles])
            # Within a tile the model sees its own input box; record that box in field coordinates.
            boxes = [input_box(t.shape, spec).shifted(t.y0, t.x0) for t in tiles]
        else:
            tensor = preprocess(image, spec)[None]
            boxes = [input_box(image.shape[:2], spec)]
        return _Inputs(tensor=tensor.to(self._device), boxes=boxes, image=image, card=card)

    def _forward(self, model: torch.nn.Module, inputs: _Inputs, steps: _Steps, gate: str | None
                 ) -> tuple[np.ndarray, np.ndarray, float, OodResult]:
        """Calibrated probabilities softmax(logits / T) of every input (T: the card's temperature,
        Guo et al. 2017; 1 for an uncalibrated card), the plain softmax(logits), the forward time
        in ms (batch 1 or tile batches) and the OOD result. T never changes the predicted class.

        With OOD statistics the pass is ``forward_train`` (the same forward, with the stage outputs
        hooked), so the score costs no second pass; a tiled field scores the mean over its tiles."""
        card = inputs.card
        detector = self.detector(card)
        probs, raw, scores = [], [], []
        elapsed = 0.0
        with torch.inference_mode():
            for i in range(0, inputs.tensor.shape[0], TILE_BATCH):
                steps.check()
                batch = inputs.tensor[i:i + TILE_BATCH]
                self._sync()
                t0 = time.perf_counter()
                if detector is None:
                    logits = model(batch)
                else:
                    logits, feats = logits_and_features(model, batch, detector.stages, detector.thumbnail,
                                                        card.input)
                self._sync()
                elapsed += time.perf_counter() - t0
                logits = logits.float()
                probs.append(torch.softmax(logits / card.temperature, dim=1).cpu().numpy())
                raw.append(torch.softmax(logits, dim=1).cpu().numpy())
                if detector is not None:
                    scores.append(detector.score([f.cpu().numpy() for f in feats]))
        ood = OodResult(score=float(np.concatenate(scores).mean()) if scores else None,
                        threshold=None if detector is None else detector.threshold, gate=gate)
        return np.concatenate(probs, axis=0), np.concatenate(raw, axis=0), elapsed * 1000.0, ood

    @staticmethod
    def _result(role: str, card: ModelCard, tile_probs: np.ndarray, tile_raw: np.ndarray, ms: float,
                ood: OodResult) -> ModelResult:
        def field(p: np.ndarray) -> np.ndarray:  # a tiled field: the mean over its tiles
            mean = p.mean(axis=0).astype(np.float64)
            return mean / mean.sum()

        return ModelResult(role=role, card_id=card.id, name=card.name or card.id, classes=list(card.classes),
                           probabilities=field(tile_probs), latency_ms=ms, test_accuracy=card.test_accuracy,
                           probabilities_uncalibrated=field(tile_raw), calibrated=card.calibrated,
                           temperature=card.temperature, ood=ood, at_chance=card.at_chance)

    @staticmethod
    def _mosaic_shape(inputs: _Inputs, map_shape: tuple[int, int]) -> tuple[int, int]:
        """A tiled field's mosaic grid: the field at the models' own resolution, capped."""
        density = map_shape[0] / inputs.boxes[0].height
        h, w = inputs.shape
        return fit((max(1, round(h * density)), max(1, round(w * density))), MOSAIC_MAX_SIDE)

    def _explain(self, model: torch.nn.Module, inputs: _Inputs, method: str, cls: int, tile_probs: np.ndarray,
                 tiled: bool, faithful_steps: int, steps: _Steps
                 ) -> tuple[PlacedMap, float, dict[str, float], list[tuple[str, PlacedMap]]]:
        """Explain class *cls* in every input: one placed map (a mosaic for tiled fields), the
        seconds it took, its faithfulness figures and its per-stage maps (single inputs only)."""
        if not tiled:
            heat = _run_explain(model, inputs, 0, method, cls)
            quality = self._faithfulness(model, inputs.tensor[:1], heat, faithful_steps)
            place = lambda m: PlacedMap(_heatmap_array(m), inputs.boxes[0], inputs.shape)  # noqa: E731
            return place(heat.map), heat.seconds, quality, [(n, place(m)) for n, m in _stage_maps(heat)]
        mosaic = weight = None
        seconds = 0.0
        for i in range(inputs.tensor.shape[0]):
            steps.check()
            heat = _run_explain(model, inputs, i, method, cls)
            seconds += heat.seconds
            m = _heatmap_array(heat.map)
            if mosaic is None:
                shape = self._mosaic_shape(inputs, m.shape)
                mosaic, weight = np.zeros(shape, np.float32), np.zeros(shape, np.float32)
            box = inputs.boxes[i].scaled(inputs.shape, mosaic.shape)
            # scaled by the tile's probability of the class; averaged where tiles overlap
            mosaic[box.slices] += resize_map(m, box.shape) * float(tile_probs[i, cls])
            weight[box.slices] += 1.0
        np.divide(mosaic, weight, out=mosaic, where=weight > 0)
        return PlacedMap(np.clip(mosaic, 0.0, 1.0), whole(inputs.shape), inputs.shape), seconds, {}, []

    @staticmethod
    def _faithfulness(model: torch.nn.Module, x: torch.Tensor, heat: Any, n_steps: int) -> dict[str, float]:
        """Deletion and insertion AUC of a map against its own model (explain.metrics, as the benchmark)."""
        if not n_steps:
            return {}
        from ..explain.metrics import deletion_auc, insertion_auc

        return {"deletion_auc": deletion_auc(model, x[0], heat, heat.target, steps=n_steps),
                "insertion_auc": insertion_auc(model, x[0], heat, heat.target, steps=n_steps)}

    @staticmethod
    def _agree(t: PlacedMap, s: PlacedMap) -> HeatmapAgreement:
        """explain.metrics' three figures on its one grid; NaN where undefined (a flat, constant map)."""
        from ..explain.metrics import map_agreement

        a = map_agreement(t, s)
        return HeatmapAgreement(pearson=a["pearson"], ssim=a["ssim"], iou_top20=a["iou_top20"])

    def _strips(self, models: Sequence[tuple[torch.nn.Module, _Inputs, ModelResult]], tiled: bool,
                steps: _Steps) -> None:
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
            hw = inputs.shape
            for k, (name, first) in enumerate(per_input[0]):
                scale = first.shape[0] / max(1, inputs.boxes[0].height)  # this stage's pixels per field pixel
                grid = (max(1, math.ceil(hw[0] * scale)), max(1, math.ceil(hw[1] * scale)))
                canvas = np.zeros(grid, dtype=np.float32)
                count = np.zeros(grid, dtype=np.float32)
                for i, maps in enumerate(per_input):
                    box = inputs.boxes[i].scaled(hw, grid)
                    canvas[box.slices] += resize_map(maps[k][1], box.shape)
                    count[box.slices] += 1.0
                np.divide(canvas, count, out=canvas, where=count > 0)
                stages.append((name, canvas))
            res.feature_maps = stages
