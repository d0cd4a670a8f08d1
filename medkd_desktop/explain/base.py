"""One interface for every explanation method: ``explain(model, tensor, method) -> Heatmap``.

Why one interface: the GUI shows the teacher's and the student's heatmaps side by side and
computes how far they agree; the CLI, the benchmark and the report do the same. They must all
get the *same* kind of object — a float32 map in [0, 1] at the input's resolution, with the
method, the class explained, the layer(s) read and the time it took — whatever the method and
whatever the architecture. Methods register themselves by name (timm's decorator-registry
pattern), so a new method is one module and the CLI/GUI pick it up from ``list_methods()``.

Why target layers are chosen here and not by callers: a call site that hard-codes
``model.layer4`` breaks on the next architecture. Each method declares a *rule* ("the last
stage", "every stage", "first and last stage"...), applied to the model card's
``target_layers`` (which may name a layer per method) or the model's own ``stage_names``.
"""
from __future__ import annotations

import functools
import inspect
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor, nn

from ..models.geometry import PlacedMap, input_box, resize_map

#: How an explainer picks its layers from the stage list (see ``target_layers``).
LayerRule = Literal["last", "all", "texture_shape", "stage3", "attention"]


class ExplainError(ValueError):
    """The method cannot explain this model or input; the message is one plain sentence."""


@dataclass
class Heatmap:
    """An explanation ready to draw: ``map`` is float32 (H, W) in [0, 1] at the input's size.

    ``target`` is the class the map explains. For class-agnostic methods (``class_specific``
    False: feature maps, Eigen-CAM, DFS-Ex, attention, HDKD stage maps) the map does not depend
    on it; it is then the class that was asked for or, by default, the predicted one.
    ``stages`` holds the per-layer maps of multi-layer methods (the layer-by-layer strip of
    average feature maps; DFS-Ex's texture and shape masks), named in ``stage_names``.
    """

    map: np.ndarray
    method: str
    target: int
    layers: list[str]
    seconds: float
    predicted: int | None = None
    class_specific: bool = True
    stages: list[np.ndarray] = field(default_factory=list)
    stage_names: list[str] = field(default_factory=list)

    @property
    def flat(self) -> bool:
        """True when the map carries no spatial information (constant), e.g. a Grad-CAM whose
        gradients are all negative; the GUI should say so rather than draw an empty overlay."""
        return bool(self.map.size == 0 or float(self.map.max() - self.map.min()) < 1e-6)

    def to_frame(self, frame_shape: Sequence[int], spec: Any) -> Heatmap:
        """The same heatmap placed on the displayed frame (H, W) that the model input came from.

        Undoes the card's geometry (``spec.crop``): with ``center_square`` the model saw only
        the centred square, so the map is resized to that square and the rest of the frame is
        0 (nothing there was explained); with ``stretch`` the map is resized to the whole frame.
        """
        shape = (int(frame_shape[0]), int(frame_shape[1]))
        box = input_box(shape, spec)
        convert = lambda m: PlacedMap(m, box, shape).on_grid()  # noqa: E731
        return replace(self, map=convert(self.map), stages=[convert(s) for s in self.stages])

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description without the pixel arrays (for logs, CLI and reports)."""
        return {
            "method": self.method,
            "target": self.target,
            "predicted": self.predicted,
            "class_specific": self.class_specific,
            "layers": list(self.layers),
            "seconds": round(self.seconds, 6),
            "shape": list(self.map.shape),
            "flat": self.flat,
            "stage_names": list(self.stage_names),
        }


@dataclass
class RawMap:
    """What an explainer function returns before ``explain`` normalises and resizes it.

    ``normalized`` says the map is already in [0, 1] and must keep its values (pytorch-grad-cam
    maps; DFS-Ex's G with its levels {0, eta, 1-eta, 1}); otherwise it is min-max scaled.
    ``interpolation`` "nearest" keeps hard masks hard when upsampled.
    """

    map: Tensor | np.ndarray
    layers: list[str]
    logits: Tensor | None = None
    target: int | None = None
    stages: list[tuple[str, Tensor | np.ndarray]] = field(default_factory=list)
    normalized: bool = False
    interpolation: Literal["bilinear", "nearest"] = "bilinear"


#: ``fn(model, x, target, layers, **opts) -> RawMap``; x is (1, C, H, W) on the model's device.
ExplainFn = Callable[..., RawMap]


@dataclass(frozen=True)
class ExplainerInfo:
    name: str
    label: str  # what a user reads: menus, report captions, CLI output
    fn: ExplainFn
    class_specific: bool
    layer_rule: LayerRule
    needs_grad: bool
    supports: Callable[[nn.Module], bool]
    summary: str
    card_opts: Callable[[Any], dict[str, Any]] | None = None
    setup: Callable[[nn.Module, Tensor], Any] | None = None


_EXPLAINERS: dict[str, ExplainerInfo] = {}


def register_explainer(
    name: str,
    *,
    label: str,
    class_specific: bool,
    layers: LayerRule,
    needs_grad: bool = False,
    supports: Callable[[nn.Module], bool] | None = None,
    card_opts: Callable[[Any], dict[str, Any]] | None = None,
    setup: Callable[[nn.Module, Tensor], Any] | None = None,
) -> Callable[[ExplainFn], ExplainFn]:
    """Decorator: make ``fn`` callable as ``explain(model, x, name)``.

    ``supports(model)`` says whether the method applies (``attention`` needs attention layers);
    ``needs_grad`` makes ``explain`` run it with autograd on, even inside ``inference_mode``;
    ``card_opts(card)`` gives default options read from the model card (caller's opts win);
    ``setup(model, x)`` runs before the clock starts: one-time costs (a lazy library import,
    Score-CAM's batch-size calibration) are not explanation time.
    """

    def deco(fn: ExplainFn) -> ExplainFn:
        if name in _EXPLAINERS:
            raise ValueError(f"explainer {name!r} is already registered")
        summary = (fn.__doc__ or "").strip().splitlines()[0] if fn.__doc__ else name
        _EXPLAINERS[name] = ExplainerInfo(
            name, label, fn, class_specific, layers, needs_grad, supports or (lambda _m: True), summary, card_opts, setup
        )
        return fn

    return deco


#: The modules that register the built-in methods, in the order menus list them.
_METHOD_MODULES = ("cam", "feature_maps", "dfs_ex", "hdkd_stage")


@functools.cache
def _load_methods() -> None:
    """Import the built-in explainers (each registers itself) the first time the registry is read."""
    from importlib import import_module

    for name in _METHOD_MODULES:
        import_module(f"{__package__}.{name}")


def list_methods(model: nn.Module | None = None) -> list[str]:
    """Registered method names in registration order; with *model*, only those that apply to it."""
    _load_methods()
    return [n for n, info in _EXPLAINERS.items() if model is None or info.supports(model)]


def method_label(method: str) -> str:
    """The name a user reads for *method* (the method name itself when it is not registered)."""
    _load_methods()
    info = _EXPLAINERS.get(method)
    return info.label if info is not None else method


def explainer_info(method: str) -> ExplainerInfo:
    _load_methods()
    try:
        return _EXPLAINERS[method]
    except KeyError:
        raise ExplainError(f"Unknown explanation method {method!r}; choose one of: {', '.join(_EXPLAINERS)}.") from None


# --------------------------------------------------------------------------------------
# Target layers
# --------------------------------------------------------------------------------------


def stage_names(model: nn.Module, card: Any = None) -> list[str]:
    """The model's stages shallow -> deep: the card's ``target_layers["stages"]`` or ``model.stage_names``."""
    names = list((getattr(card, "target_layers", None) or {}).get("stages") or getattr(model, "stage_names", []) or [])
    if not names:
        raise ExplainError(f"{type(model).__name__} does not list its stages, so no layer can be explained.")
    return names


def target_layers(model: nn.Module, method: str, card: Any = None) -> list[str]:
    """The layer names *method* reads on *model*.

    The card may name them per method (``target_layers = {"gradcam": "model.blocks.5"}``), then
    the architecture (``model.method_layers``, e.g. Score-CAM on the input of MobileNetV3's
    pointwise head conv); otherwise the method's rule applies to the stage list:

    * ``last`` (Grad-CAM, Grad-CAM++, Score-CAM, Layer-CAM, Eigen-CAM): the deepest stage, the
      last spatial map the head reads. For the HDKD student that is the DFLT token stage, read
      through ``model.reshape_transform``.
    * ``all`` (average feature maps, 002): every stage, for the layer-by-layer strip.
    * ``texture_shape`` (DFS-Ex, 003 §2.2): the first stage (texture) and the last (shape).
    * ``stage3`` (HDKD stage map, 004 Fig. 5): ``stage3`` when the model has it; otherwise every
      stage, and the explainer keeps the one nearest 1/8 of the input size (HDKD's stage 3).
    * ``attention``: the model's attention layers, found at run time.
    """
    info = explainer_info(method)
    override = (getattr(card, "target_layers", None) or {}).get(method) or getattr(model, "method_layers", {}).get(method)
    if override:
        return [override] if isinstance(override, str) else list(override)
    if info.layer_rule == "attention":
        return []
    stages = stage_names(model, card)
    if info.layer_rule == "last":
        return [stages[-1]]
    if info.layer_rule == "texture_shape":
        return [stages[0], stages[-1]]
    if info.layer_rule == "stage3" and "stage3" in stages:
        return ["stage3"]
    return stages


# --------------------------------------------------------------------------------------
# Hook helpers shared by the activation-based methods
# --------------------------------------------------------------------------------------


def resolve_modules(model: nn.Module, names: Sequence[str]) -> list[nn.Module]:
    modules = dict(model.named_modules())
    missing = [n for n in names if n not in modules]
    if missing:
        raise ExplainError(f"{type(model).__name__} has no layer(s) named {', '.join(missing)}.")
    return [modules[n] for n in names]


@contextmanager
def capture_stage_maps(model: nn.Module, names: Sequence[str]) -> Iterator[list[Tensor | None]]:
    """Like ``models.hooks.capture_outputs``, but a LayerNorm stage yields its *input*.

    Why: a LayerNorm output has zero mean over channels by construction, so averaging it
    (002) or thresholding its channel maximum (003 Eq. 2) shows only the norm's affine
    parameters. Its input is the transformer's residual stream, which carries the signal.
    (Grad-CAM-style methods keep hooking the module output: its *gradient* is informative.)
    Hooks are removed in ``finally``, so nothing is left behind when a forward fails.
    """
    modules = resolve_modules(model, names)
    captured: list[Tensor | None] = [None] * len(names)
    handles = []

    def make_hook(i: int, use_input: bool):
        def hook(_m: nn.Module, inputs: tuple, output: Tensor) -> None:
            captured[i] = inputs[0] if use_input else output

        return hook

    try:
        for i, m in enumerate(modules):
            handles.append(m.register_forward_hook(make_hook(i, isinstance(m, nn.LayerNorm))))
        yield captured
    finally:
        for h in handles:
            h.remove()


def as_spatial(model: nn.Module, t: Tensor) -> Tensor:
    """A stage output as (B, C, h, w): token sequences go through the model's reshape transform."""
    if t.dim() == 4:
        return t
    reshape = getattr(model, "reshape_transform", None)
    if t.dim() == 3 and reshape is not None:
        return reshape(t)
    raise ExplainError(f"a {t.dim()}-D layer output cannot be shown as a map for {type(model).__name__}.")


def minmax(t: Tensor) -> Tensor:
    """Scale to [0, 1]; a constant map becomes all zeros (no spatial information)."""
    t = t.float()
    lo, hi = t.min(), t.max()
    if float(hi - lo) < 1e-12:
        return torch.zeros_like(t)
    return (t - lo) / (hi - lo)


# --------------------------------------------------------------------------------------
# explain()
# --------------------------------------------------------------------------------------


def _finish(m: Tensor | np.ndarray, size: tuple[int, int], normalized: bool, mode: str) -> np.ndarray:
    if not normalized:
        m = minmax(torch.as_tensor(m).detach().float().cpu())
    out = resize_map(m, size, mode)
    out[~np.isfinite(out)] = 0.0
    return np.ascontiguousarray(out)


def _num_classes(model: nn.Module) -> int | None:
    n = (getattr(model, "config", None) or {}).get("num_classes")
    return int(n) if n is not None else None


@contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    """Explanations are of the deployed (eval-mode) model; a training model is put back after."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


@functools.cache
def _blas_controller() -> Any:
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def _one_blas_thread() -> Any:
    """numpy's BLAS on one thread while an explainer runs.

    Why: the explainers' numpy work is small (Eigen-CAM's SVD of a 16-64 x 128-1024 activation,
    CAM weighting), and OpenBLAS's own thread pool then fights torch's OpenMP threads for the
    same cores. Measured on 2 cores with 2 torch threads, 25 Eigen-CAMs each, quiet machine:
    HDKD teacher median 31.7 -> 12.7 ms (p90 114 -> 15), HDKD student 13.0 -> 6.8 ms (p90 101 -> 10).
    """
    return _blas_controller().limit(limits=1, user_api="blas")


def explain(
    model: nn.Module,
    tensor: Tensor,
    method: str,
    target: int | None = None,
    *,
    card: Any = None,
    layers: Sequence[str] | None = None,
    **opts: Any,
) -> Heatmap:
    """Explain *model*'s output on one preprocessed input with *method*.

    *tensor* is the card's preprocessed input, (C, H, W) or (1, C, H, W). *target* is a class
    index (default: the predicted class). *card* supplies per-method target layers; *layers*
    overrides everything. *opts* go to the method (e.g. ``batch_size`` for Score-CAM,
    ``kappa``/``eta`` for DFS-Ex). The map is at the tensor's (H, W); use
    ``Heatmap.to_frame`` to place it on the displayed frame.
    """
    info = explainer_info(method)
    if not info.supports(model):
        raise ExplainError(f"The {method} method does not apply to {type(model).__name__} (it has no suitable layers).")
    x = tensor if tensor.dim() == 4 else tensor.unsqueeze(0)
    if x.dim() != 4 or x.shape[0] != 1:
        raise ExplainError(f"explain takes one image (C, H, W) or (1, C, H, W), got shape {tuple(tensor.shape)}.")
    n_classes = _num_classes(model)
    if target is not None and (target < 0 or (n_classes is not None and target >= n_classes)):
        raise ExplainError(f"Class {target} does not exist for this model ({n_classes} classes).")
    names = list(layers) if layers else target_layers(model, method, card)
    if card is not None and info.card_opts is not None:
        opts = {**info.card_opts(card), **opts}
    known = list(inspect.signature(info.fn).parameters)[4:]
    unknown = sorted(set(opts) - set(known))
    if unknown:
        raise ExplainError(f"The {method} method has no option {', '.join(unknown)} (options: {', '.join(known) or 'none'}).")
    try:
        device = next(model.parameters()).device
    except StopIteration:
        device = torch.device("cpu")
    size = (int(x.shape[-2]), int(x.shape[-1]))
    with torch.inference_mode(False), _eval_mode(model), _one_blas_thread():
        # A clone made outside inference mode: inputs created under inference_mode cannot
        # take part in the backward pass the gradient methods need.
        x = x.detach().to(device, torch.float32).clone()
        if info.setup is not None:
            info.setup(model, x)
        grad_ctx = torch.enable_grad() if info.needs_grad else torch.inference_mode()
        t0 = time.perf_counter()
        with grad_ctx:
            try:
                raw = info.fn(model, x, target, names, **opts)
            except IndexError as exc:  # a class index the head does not have
                if target is None:
                    raise
                raise ExplainError(f"Class {target} does not exist for this model: {exc}") from None
        heat = _finish(raw.map, size, raw.normalized, raw.interpolation)
        stages = [_finish(m, size, raw.normalized, raw.interpolation) for _, m in raw.stages]
        seconds = time.perf_counter() - t0
    if raw.logits is not None and target is not None and target >= raw.logits.shape[-1]:
        raise ExplainError(f"Class {target} does not exist for this model ({raw.logits.shape[-1]} classes).")
    predicted = int(raw.logits.argmax(dim=-1)[0]) if raw.logits is not None else None
    used = raw.target if raw.target is not None else target
    if used is None:
        used = predicted if predicted is not None else 0
    return Heatmap(
        map=heat, method=method, target=int(used), layers=list(raw.layers), seconds=seconds,
        predicted=predicted, class_specific=info.class_specific,
        stages=stages, stage_names=[n for n, _ in raw.stages],
    )
