"""The papers' training and distillation losses behind one registry.

Why a registry (timm's ``register_model`` / ``create_model`` pattern): the training config and
every model card name the loss by a string plus JSON keyword arguments (``loss = "dfkd"``,
``loss_params = {...}``), so a card alone is enough to re-run the training that made a model.
``create_loss(card["loss"], **card["loss_params"])`` rebuilds it; ``loss.config()`` writes it.

Every loss has one signature, ``forward(student, teacher, target) -> (loss, parts)``: the
trainer does not need to know which parts of a ``ModelOutput`` a loss reads, only the class
flags ``needs_teacher`` (run the teacher at all) and ``needs_features`` (ask the models for
their stage maps). ``parts`` holds the named, unweighted terms for the progress log, so a user
watching a run can see which term moves.

Conventions shared by all losses:

* Teacher tensors are detached inside the loss. A teacher must never be trained by the
  student's loss, even if a caller forgot ``torch.no_grad()``.
* Logits are cast to float32 before softmax / log / exp: the trainer autocasts to bf16, whose
  8-bit mantissa makes KL terms of near-equal distributions noise.
* Targets are class indices (B,) in [0, n_classes). Multi-label targets are out of scope: all
  the project's tasks are single-label, and 001's "multi-label" wording describes one-hot
  targets with per-class sigmoids (Eq. 2-4), which is what ``fbce`` does.
* Every term is a mean over the batch, so a loss value does not depend on the batch size.
* KL terms are Hinton's ``KL(p_teacher || p_student)`` (the gradient-equivalent of his
  cross-entropy with soft targets), whatever argument order a paper prints; see ``soft_kl``.

Length: over 500 lines because it is one registry of the papers' losses; each loss is a
small class citing its equations, and they share the same checks and soft-target helpers.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..explain.dfs_masks import DFSExMasks, Stats, dfs_ex_masks
from ..models.outputs import ModelOutput

__all__ = [
    "DistillLoss",
    "register_loss",
    "create_loss",
    "list_losses",
    "soft_kl",
    "focal_bce",
    "sigmoid_mse",
    "CrossEntropyLoss",
    "FocalBCELoss",
    "HintonKDLoss",
    "FBCEMSELoss",
    "DFKDLoss",
    "HDKDLoss",
]

# --------------------------------------------------------------------------- registry

_REGISTRY: dict[str, type[DistillLoss]] = {}


def register_loss(name: str) -> Callable[[type[DistillLoss]], type[DistillLoss]]:
    """Class decorator: make a loss creatable by *name* (the string configs and cards hold)."""

    def deco(cls: type[DistillLoss]) -> type[DistillLoss]:
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError(f"a distillation loss named {name!r} is already registered")
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return deco


def list_losses() -> list[str]:
    """Names ``create_loss`` accepts, sorted."""
    return sorted(_REGISTRY)


def create_loss(name: str, **params: Any) -> DistillLoss:
    """Build the loss *name* with its hyper-parameters; unknown names are refused by name."""
    try:
        cls = _REGISTRY[name]
    except KeyError:
        raise ValueError(
            f"unknown distillation loss {name!r}; known losses: {', '.join(list_losses())}"
        ) from None
    return cls(**params)


# --------------------------------------------------------------------------- base class


class DistillLoss(nn.Module):
    """A training objective: ``forward(student, teacher, target) -> (scalar loss, parts)``."""

    #: Registry name; set by ``register_loss``.
    name: ClassVar[str] = ""
    #: Whether ``forward`` reads the teacher's output (the trainer skips the teacher if not).
    needs_teacher: ClassVar[bool] = False
    #: Whether ``forward`` reads ``ModelOutput.features`` (the trainer asks models for them).
    needs_features: ClassVar[bool] = False

    def __init__(self) -> None:
        super().__init__()
        #: Constructor kwargs, JSON-serialisable; ``create_loss(name, **params)`` rebuilds the loss.
        self.params: dict[str, Any] = {}

    def config(self) -> dict[str, Any]:
        """What a model card records: ``{"name": ..., "params": {...}}``."""
        return {"name": self.name, "params": dict(self.params)}

    def forward(  # pragma: no cover - abstract
        self, student: ModelOutput, teacher: ModelOutput | None, target: Tensor
    ) -> tuple[Tensor, dict[str, float]]:
        raise NotImplementedError

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self.params.items())

    # helpers for subclasses -------------------------------------------------------------
    def _require_teacher(self, teacher: ModelOutput | None) -> ModelOutput:
        if teacher is None:
            raise ValueError(f"the {self.name!r} loss distils from a teacher, but no teacher output was given")
        return teacher


def _parts(**terms: Tensor) -> dict[str, float]:
    return {k: float(v.detach()) for k, v in terms.items()}


def _check_unit(name: str, value: float) -> float:
    value = float(value)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must lie in [0, 1], got {value}")
    return value


def _check_positive(name: str, value: float, *, allow_zero: bool = False) -> float:
    value = float(value)
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        raise ValueError(f"{name} must be {'>= 0' if allow_zero else '> 0'}, got {value}")
    return value


def _check_target(logits: Tensor, target: Tensor) -> None:
    """Fail with a readable message instead of a CUDA device-side assert on a bad label."""
    if logits.ndim != 2:
        raise ValueError(f"logits must be (batch, classes), got shape {tuple(logits.shape)}")
    if target.ndim != 1 or target.shape[0] != logits.shape[0]:
        raise ValueError(
            f"target must be class indices of shape ({logits.shape[0]},), got shape {tuple(target.shape)}"
        )
    if target.dtype.is_floating_point or target.dtype == torch.bool:
        raise ValueError(f"target must hold integer class indices, got dtype {target.dtype}")
    if target.numel() and (int(target.min()) < 0 or int(target.max()) >= logits.shape[1]):
        raise ValueError(
            f"target holds a class index outside [0, {logits.shape[1]}): "
            f"min {int(target.min())}, max {int(target.max())}"
        )


def _check_pair(what: str, s: Tensor, t: Tensor) -> None:
    if s.shape != t.shape:
        raise ValueError(f"student and teacher {what} differ in shape: {tuple(s.shape)} vs {tuple(t.shape)}")


# --------------------------------------------------------------------------- shared terms


def soft_kl(
    student_logits: Tensor,
    teacher_logits: Tensor,
    temperature: float,
    *,
    reduction: Literal["batchmean", "numel"] = "batchmean",
) -> Tensor:
    """Hinton's soft term ``T^2 * KL(softmax(t/T) || softmax(s/T))`` (002; 003 Eq. 5; 004 Eq. 6).

    The T^2 factor keeps the gradient's size independent of T (Hinton et al. 2015, §2).
    ``reduction="batchmean"`` is the KL of each sample averaged over the batch, the quantity
    the equations define. ``"numel"`` divides the summed KL by batch x classes instead, as the
    DeiT / HDKD reference code does (``reduction='sum' ... / outputs_kd.numel()``), which
    shrinks the term by the number of classes; it exists only to reproduce that code.
    """
    _check_pair("logits", student_logits, teacher_logits)
    t = float(temperature)
    log_ps = F.log_softmax(student_logits.float() / t, dim=1)
    log_pt = F.log_softmax(teacher_logits.detach().float() / t, dim=1)
    kl = F.kl_div(log_ps, log_pt, reduction="sum", log_target=True)
    denom = student_logits.shape[0] if reduction == "batchmean" else student_logits.numel()
    return kl * (t * t) / max(denom, 1)


def focal_bce(logits: Tensor, target: Tensor, gamma: float) -> Tensor:
    """001 Eq. 4 on one-hot targets, averaged over batch and classes.

    ``-(1-p)^g log p`` for the true class and ``-p^g log(1-p)`` for the others, with
    ``p = sigmoid(z)``. Logs are taken as ``logsigmoid(+-z)`` so that confident logits do not
    produce ``log(0)``; with ``gamma = 0`` this is exactly ``binary_cross_entropy_with_logits``.
    """
    z = logits.float()
    y = F.one_hot(target, num_classes=z.shape[1]).to(z.dtype)
    log_p, log_1mp = F.logsigmoid(z), F.logsigmoid(-z)
    if gamma == 0:
        loss = -(y * log_p + (1 - y) * log_1mp)
    else:
        p = torch.sigmoid(z)
        loss = -(y * (1 - p).pow(gamma) * log_p + (1 - y) * p.pow(gamma) * log_1mp)
    return loss.mean()


def sigmoid_mse(student_logits: Tensor, teacher_logits: Tensor, temperature: float) -> Tensor:
    """001 Eq. 5: ``(T^2 / n) * sum_i (sigmoid(s_i/T) - sigmoid(t_i/T))^2``, batch-averaged."""
    _check_pair("logits", student_logits, teacher_logits)
    t = float(temperature)
    ps = torch.sigmoid(student_logits.float() / t)
    pt = torch.sigmoid(teacher_logits.detach().float() / t)
    return (t * t) * (ps - pt).pow(2).mean()


# --------------------------------------------------------------------------- the losses


@register_loss("ce")
class CrossEntropyLoss(DistillLoss):
    """Plain cross-entropy: the baseline students and the teachers of 003 and 004.

    003 Eq. 1 trains its teachers with binary cross-entropy on one sigmoid output; for our
    (B, 2) softmax heads, cross-entropy is the same objective (the softmax of two logits is
    the sigmoid of their difference). 004 §3.5 trains its teacher "using cross-entropy (CE)
    loss only". ``label_smoothing`` and ``class_weights`` are the torch options, for
    imbalanced sets such as HAM10000; both default off, as in the papers.
    """

    def __init__(self, label_smoothing: float = 0.0, class_weights: Sequence[float] | None = None) -> None:
        super().__init__()
        self.label_smoothing = _check_unit("label_smoothing", label_smoothing)
        weights = None if class_weights is None else [float(w) for w in class_weights]
        if weights is not None and (not weights or any(w < 0 or not math.isfinite(w) for w in weights)):
            raise ValueError("class_weights must be a non-empty list of finite weights >= 0")
        self.register_buffer(
            "class_weights", None if weights is None else torch.tensor(weights), persistent=False
        )
        self.params = {"label_smoothing": self.label_smoothing, "class_weights": weights}

    def forward(
        self, student: ModelOutput, teacher: ModelOutput | None, target: Tensor
    ) -> tuple[Tensor, dict[str, float]]:
        _check_target(student.logits, target)
        w = self.class_weights
        if w is not None and w.numel() != student.logits.shape[1]:
            raise ValueError(f"{w.numel()} class weights given for {student.logits.shape[1]} classes")
        ce = F.cross_entropy(student.logits.float(), target, weight=w, label_smoothing=self.label_smoothing)
        return ce, _parts(ce=ce)


@register_loss("fbce")
class FocalBCELoss(DistillLoss):
    """Focal binary cross-entropy on one-hot targets (001 Eq. 4), how 001 trains its teachers.

    001 §II-C says the teachers are trained "using Binary Cross-Entropy (BCE) loss" and
    §II-D replaces BCE with FBCE against class imbalance; ``gamma = 0`` gives BCE back (Eq. 2).
    ``gamma = 2`` is the default of Lin et al. 2017 (001's reference [7]); 001 names no value.
    No alpha-balancing factor: Eq. 4 has none.
    """

    def __init__(self, gamma: float = 2.0) -> None:
        super().__init__()
        self.gamma = _check_positive("gamma", gamma, allow_zero=True)
        self.params = {"gamma": self.gamma}

    def forward(
        self, student: ModelOutput, teacher: ModelOutput | None, target: Tensor
    ) -> tuple[Tensor, dict[str, float]]:
        _check_target(student.logits, target)
        loss = focal_bce(student.logits, target, self.gamma)
        return loss, _parts(fbce=loss)


@register_loss("kd_kl")
class HintonKDLoss(DistillLoss):
    """Hinton KD: ``alpha * CE(y, s) + (1 - alpha) * T^2 * KL(softmax(t/T) || softmax(s/T))``.

    002's ``L_distill = alpha * l_HL + (1 - alpha) * l_SL`` (hard-label CE plus soft-label KL
    on the temperature-softened teacher), with Hinton's T^2 factor, which 002's text leaves
    implicit; 004 Eq. 6 is the same form with alpha on the other term. Defaults alpha = 0.7,
    T = 10: 002 grid-searched alpha in {0.4, 0.7} x T in {5, 10, 15}; the copy of 002 in
    ``papers/`` (a summary) does not print the winning cell, and (0.7, 10) is the
    configuration it gives for reproducing the paper's brain-tumour result.
    """

    needs_teacher = True

    def __init__(self, alpha: float = 0.7, temperature: float = 10.0) -> None:
        super().__init__()
        self.alpha = _check_unit("alpha", alpha)
        self.temperature = _check_positive("temperature", temperature)
        self.params = {"alpha": self.alpha, "temperature": self.temperature}

    def forward(
        self, student: ModelOutput, teacher: ModelOutput | None, target: Tensor
    ) -> tuple[Tensor, dict[str, float]]:
        teacher = self._require_teacher(teacher)
        _check_target(student.logits, target)
        ce = F.cross_entropy(student.logits.float(), target)
        kl = soft_kl(student.logits, teacher.logits, self.temperature)
        total = self.alpha * ce + (1.0 - self.alpha) * kl
        return total, _parts(ce=ce, kl=kl)


@register_loss("fbce_mse")
class FBCEMSELoss(DistillLoss):
    """001's hybrid loss: ``alpha * FBCE(s, y) + (1 - alpha) * (T^2/n) sum (sig(s/T) - sig(t/T))^2``.

    Eq. 4 (FBCE on the student's raw logits), Eq. 5 (temperature-scaled sigmoid MSE against the
    teacher), Eq. 6 / Algorithm 1 (the mix); alpha = 0.5 as 001 §II-D sets it.
    001 gives neither T nor gamma. gamma = 2 is Lin et al.'s default (001's focal-loss
    reference). T = 4: for large T, sig(z/T) ~ 1/2 + z/(4T), so T^2 * (difference)^2 tends
    to (s - t)^2 / 16 and the term becomes plain logit matching (Hinton's limit); T = 4 keeps
    teacher logits up to about +-8 (probabilities 0.0003-0.9997 at T = 1) in the sigmoid's
    graded range, so the student is told how confident the teacher is, not only which side
    of 0.5 it is on, while staying in the middle of Hinton's usual range 2-10.
    Eq. 1 of 001 (a KL form) describes the same setup in general terms; Eq. 4-6 and
    Algorithm 1 are what is implemented.
    """

    needs_teacher = True

    def __init__(self, alpha: float = 0.5, temperature: float = 4.0, gamma: float = 2.0) -> None:
        super().__init__()
        self.alpha = _check_unit("alpha", alpha)
        self.temperature = _check_positive("temperature", temperature)
        self.gamma = _check_positive("gamma", gamma, allow_zero=True)
        self.params = {"alpha": self.alpha, "temperature": self.temperature, "gamma": self.gamma}

    def forward(
        self, student: ModelOutput, teacher: ModelOutput | None, target: Tensor
    ) -> tuple[Tensor, dict[str, float]]:
        teacher = self._require_teacher(teacher)
        _check_target(student.logits, target)
        fbce = focal_bce(student.logits, target, self.gamma)
        mse = sigmoid_mse(student.logits, teacher.logits, self.temperature)
        total = self.alpha * fbce + (1.0 - self.alpha) * mse
        return total, _parts(fbce=fbce, mse=mse)


@register_loss("dfkd")
class DFKDLoss(DistillLoss):
    """Dual-feature KD (003 Eq. 2-7): ``alpha * L_sal + beta * L_soft + (1 - alpha - beta) * L_cls``.

    * ``L_sal`` (Eq. 6): squared L2 distance between the teacher's and the student's fused DFS-Ex
      masks G (Eq. 4) of a texture layer and a shape layer (Eq. 2), batch-averaged.
    * ``L_soft`` (Eq. 5): ``T^2 * KL`` of the temperature-softened logits, see ``soft_kl``.
    * ``L_cls``: cross-entropy with the labels (003 Eq. 1 is BCE on one sigmoid output; for a
      two-logit softmax head CE is the same objective).

    Defaults alpha = 0.4, beta = 0.3, T = 6 are 003 §3.2's. Deviations, all documented:

    * **Soft masks.** Eq. 2's threshold has zero gradient almost everywhere, so the loss uses
      ``sigmoid(z / mask_temperature)`` with z the margin over the paper's own threshold
      ``mu + kappa * sigma`` measured in units of sigma (``explain.dfs_masks.saliency_margin``). As
      ``mask_temperature -> 0`` it is Eq. 2. 0.5 sigma gives a pixel 2 sigma from the threshold
      a mask of 0.98 and still some gradient; the explainer draws the hard mask from the same
      function.
    * **kappa = 1, eta = 0.5**: 003 gives no values (kappa "adjusted based on architecture",
      eta "balances" the two). eta = 0.5 weighs texture and shape equally. ``stats`` selects
      where mu and sigma come from (see ``explain.dfs_masks.Stats``); the default is the paper's.
    * **Mask size.** 003 does not say how masks of different resolutions are combined; both
      models' masks are resized to ``mask_size`` (default: the larger of the two texture
      layers' resolutions), so teacher and student may differ in channels and resolution.
    * **``sal_reduction = "mean"``** averages the squared difference over pixels instead of
      summing it (Eq. 6). The sum grows with the mask size, which the paper leaves open, and
      at 56 x 56 would outweigh the other terms by three orders of magnitude; ``"sum"`` is
      Eq. 6 verbatim.
    * **No attention maps.** Eq. 3 (transformer attention averaged over blocks) is not used:
      ``ModelOutput.features`` holds token maps reshaped to (B, C, H, W), to which Eq. 2 applies
      as to any CNN map.
    * **KL direction**: 003 Eq. 5 prints ``D_KL[softmax(z_S/T) || softmax(z_T/T)]`` while
      following Hinton; Hinton's ``KL(teacher || student)`` is used, as in every other loss here.

    ``texture_index`` / ``shape_index`` pick the stages in ``ModelOutput.features`` (default the
    first and the last); ``teacher_texture_index`` / ``teacher_shape_index`` override them for
    the teacher when its stages are numbered differently.
    """

    needs_teacher = True
    needs_features = True

    def __init__(
        self,
        alpha: float = 0.4,
        beta: float = 0.3,
        temperature: float = 6.0,
        texture_index: int = 0,
        shape_index: int = -1,
        teacher_texture_index: int | None = None,
        teacher_shape_index: int | None = None,
        kappa: float = 1.0,
        eta: float = 0.5,
        mask_temperature: float = 0.5,
        stats: Stats = "activations",
        mask_size: int | Sequence[int] | None = None,
        sal_reduction: Literal["mean", "sum"] = "mean",
    ) -> None:
        super().__init__()
        self.alpha = _check_unit("alpha", alpha)
        self.beta = _check_unit("beta", beta)
        if self.alpha + self.beta > 1.0 + 1e-9:
            raise ValueError(f"alpha + beta must not exceed 1 (Eq. 7), got {self.alpha} + {self.beta}")
        self.temperature = _check_positive("temperature", temperature)
        self.kappa = float(kappa)
        self.eta = _check_unit("eta", eta)
        self.mask_temperature = _check_positive("mask_temperature", mask_temperature)
        if stats not in ("activations", "channel_max"):
            raise ValueError(f"stats must be 'activations' or 'channel_max', not {stats!r}")
        if sal_reduction not in ("mean", "sum"):
            raise ValueError(f"sal_reduction must be 'mean' or 'sum', not {sal_reduction!r}")
        self.stats, self.sal_reduction = stats, sal_reduction
        self.texture_index, self.shape_index = int(texture_index), int(shape_index)
        self.teacher_texture_index = self.texture_index if teacher_texture_index is None else int(teacher_texture_index)
        self.teacher_shape_index = self.shape_index if teacher_shape_index is None else int(teacher_shape_index)
        if mask_size is None:
            self.mask_size = None
        else:
            ms = [int(mask_size)] * 2 if isinstance(mask_size, (int, float)) else [int(v) for v in mask_size]
            if len(ms) != 2 or min(ms) < 1:
                raise ValueError(f"mask_size must be a positive int or [height, width], got {mask_size!r}")
            self.mask_size = (ms[0], ms[1])
        self.params = {
            "alpha": self.alpha,
            "beta": self.beta,
            "temperature": self.temperature,
            "texture_index": self.texture_index,
            "shape_index": self.shape_index,
            "teacher_texture_index": teacher_texture_index,
            "teacher_shape_index": teacher_shape_index,
            "kappa": self.kappa,
            "eta": self.eta,
            "mask_temperature": self.mask_temperature,
            "stats": self.stats,
            "mask_size": None if self.mask_size is None else list(self.mask_size),
            "sal_reduction": self.sal_reduction,
        }

    def masks(self, output: ModelOutput, *, teacher: bool, size: tuple[int, int]) -> DFSExMasks:
        """The soft DFS-Ex masks this loss compares, for one model."""
        tex = self.teacher_texture_index if teacher else self.texture_index
        shp = self.teacher_shape_index if teacher else self.shape_index
        feats = [f.detach() for f in output.features] if teacher else output.features
        who = "teacher" if teacher else "student"
        if not feats:
            raise ValueError(f"the dfkd loss needs the {who}'s feature maps, but its output has none")
        try:
            return dfs_ex_masks(
                feats, tex, shp, kappa=self.kappa, eta=self.eta, size=size, soft=True,
                temperature=self.mask_temperature, stats=self.stats,
            )
        except ValueError as exc:
            raise ValueError(f"dfkd, {who}: {exc}") from None

    def _size(self, student: ModelOutput, teacher: ModelOutput) -> tuple[int, int]:
        if self.mask_size is not None:
            return self.mask_size
        n_s, n_t = len(student.features), len(teacher.features)
        sizes = []
        if n_s and -n_s <= self.texture_index < n_s:
            sizes.append(tuple(student.features[self.texture_index].shape[-2:]))
        if n_t and -n_t <= self.teacher_texture_index < n_t:
            sizes.append(tuple(teacher.features[self.teacher_texture_index].shape[-2:]))
        return max(sizes, key=lambda hw: hw[0] * hw[1]) if sizes else (1, 1)

    def forward(
        self, student: ModelOutput, teacher: ModelOutput | None, target: Tensor
    ) -> tuple[Tensor, dict[str, float]]:
        teacher = self._require_teacher(teacher)
        _check_target(student.logits, target)
        size = self._size(student, teacher)
        g_s = self.masks(student, teacher=False, size=size).fused
        g_t = self.masks(teacher, teacher=True, size=size).fused
        if g_s.shape[0] != g_t.shape[0]:
            raise ValueError(f"student and teacher batch sizes differ: {g_s.shape[0]} vs {g_t.shape[0]}")
        sq = (g_t - g_s).pow(2).flatten(1)
        sal = (sq.mean(dim=1) if self.sal_reduction == "mean" else sq.sum(dim=1)).mean()
        soft = soft_kl(student.logits, teacher.logits, self.temperature)
        cls = F.cross_entropy(student.logits.float(), target)
        total = self.alpha * sal + self.beta * soft + (1.0 - self.alpha - self.beta) * cls
        return total, _parts(sal=sal, soft=soft, cls=cls)


@register_loss("hdkd")
class HDKDLoss(DistillLoss):
    """HDKD (004 Eq. 6-8): ``l_cls + lambda * l_feat``.

    * Eq. 6, ``l_cls = (1 - alpha) * CE(softmax(z_cls), y) + alpha * t^2 * KL(...)``, alpha = 0.5,
      t = 1 (004 §3.5). As in DeiT and 004 §3.4 ("the CLS and Distillation tokens ... are
      optimized to match the actual label and teacher logits, respectively"), the CE reads the
      student's class-token head (``cls_logits``) and the KL its distillation-token head
      (``dist_logits``); at inference the model averages the two (``ModelOutput.logits``).
    * Eq. 7, ``l_feat = sum_j j^a * ||psi_j^T - psi_j^S||^2 / (H_j W_j C_j)`` over the shared
      stages j = 1..N-1 (the three convolutional stages of the four-stage student), a = 1, i.e.
      stage weights 1, 2, 3: later stages weigh more. Batch-averaged MSE, as 004's code
      (``nn.MSELoss()(t, s) * pow(i + 1, alpha)``).
    * Eq. 8, lambda = 10.

    ``stages`` are indices into both models' ``features`` (default 0, 1, 2); ``stage_weights``
    overrides the j^a weights. ``kl_reduction="numel"`` reproduces 004's code, which divides the
    summed KL by batch x classes rather than by batch (see ``soft_kl``); the default follows
    Eq. 6. Stage maps must match in shape, as HDKD pairs are designed to (004 §3.4); otherwise
    the loss stops with an error unless ``adapter`` is "resize" (parameter-free bilinear resize
    of the student map to the teacher's height and width; channels must still match) or
    "conv1x1" (a learnable 1x1 convolution on every listed stage, FitNets-style, from
    ``adapter_channels`` = [[student_C, teacher_C], ...], then resize; its parameters live in
    this module and the trainer must optimise ``loss.parameters()`` with the student's).
    """

    needs_teacher = True
    needs_features = True

    def __init__(
        self,
        alpha: float = 0.5,
        temperature: float = 1.0,
        lambda_feat: float = 10.0,
        stages: Sequence[int] = (0, 1, 2),
        stage_exponent: float = 1.0,
        stage_weights: Sequence[float] | None = None,
        kl_reduction: Literal["batchmean", "numel"] = "batchmean",
        adapter: Literal["none", "resize", "conv1x1"] = "none",
        adapter_channels: Sequence[Sequence[int]] | None = None,
    ) -> None:
        super().__init__()
        self.alpha = _check_unit("alpha", alpha)
        self.temperature = _check_positive("temperature", temperature)
        self.lambda_feat = _check_positive("lambda_feat", lambda_feat, allow_zero=True)
        self.stages = [int(s) for s in stages]
        self.stage_exponent = float(stage_exponent)
        if stage_weights is None:
            self.weights = [float((j + 1) ** self.stage_exponent) for j in range(len(self.stages))]
        else:
            self.weights = [float(w) for w in stage_weights]
            if len(self.weights) != len(self.stages):
                raise ValueError(f"{len(self.weights)} stage weights given for {len(self.stages)} stages")
        if kl_reduction not in ("batchmean", "numel"):
            raise ValueError(f"kl_reduction must be 'batchmean' or 'numel', not {kl_reduction!r}")
        if adapter not in ("none", "resize", "conv1x1"):
            raise ValueError(f"adapter must be 'none', 'resize' or 'conv1x1', not {adapter!r}")
        self.kl_reduction, self.adapter = kl_reduction, adapter
        chans = None if adapter_channels is None else [[int(c) for c in pair] for pair in adapter_channels]
        self.projections: nn.ModuleList | None = None
        if adapter == "conv1x1":
            if chans is None or len(chans) != len(self.stages) or any(len(p) != 2 for p in chans):
                raise ValueError(
                    "adapter='conv1x1' needs adapter_channels = [[student_C, teacher_C], ...], one pair per stage"
                )
            self.projections = nn.ModuleList(nn.Conv2d(cs, ct, kernel_size=1) for cs, ct in chans)
        self.params = {
            "alpha": self.alpha,
            "temperature": self.temperature,
            "lambda_feat": self.lambda_feat,
            "stages": list(self.stages),
            "stage_exponent": self.stage_exponent,
            "stage_weights": None if stage_weights is None else list(self.weights),
            "kl_reduction": self.kl_reduction,
            "adapter": self.adapter,
            "adapter_channels": chans,
        }

    def _align(self, k: int, s: Tensor, t: Tensor) -> Tensor:
        stage = self.stages[k]
        if s.ndim != 4 or t.ndim != 4:
            raise ValueError(f"hdkd stage {stage}: feature maps must be (B, C, H, W)")
        if s.shape == t.shape and self.projections is None:
            return s
        if s.shape[0] != t.shape[0]:
            raise ValueError(f"hdkd stage {stage}: batch sizes differ ({s.shape[0]} vs {t.shape[0]})")
        if self.adapter == "none":  # shapes differ and no adapter: stop, do not guess
            raise ValueError(
                f"hdkd stage {stage}: the student's feature map {tuple(s.shape[1:])} (C, H, W) does not match "
                f"the teacher's {tuple(t.shape[1:])}. HDKD pairs share their convolutional stages (004 §3.4); "
                "choose matching stages, or set adapter='resize' (height/width) or adapter='conv1x1' (channels)."
            )
        if self.projections is not None:
            conv = self.projections[k]
            if s.shape[1] != conv.in_channels or t.shape[1] != conv.out_channels:
                raise ValueError(
                    f"hdkd stage {stage}: adapter expects {conv.in_channels} -> {conv.out_channels} channels, "
                    f"got student {s.shape[1]} and teacher {t.shape[1]}"
                )
            s = conv(s.to(conv.weight.dtype))
        elif s.shape[1] != t.shape[1]:
            raise ValueError(
                f"hdkd stage {stage}: channel counts differ ({s.shape[1]} vs {t.shape[1]}); "
                "adapter='resize' only fixes height and width, use adapter='conv1x1'"
            )
        if s.shape[-2:] != t.shape[-2:]:
            shrinking = s.shape[-2] > t.shape[-2] or s.shape[-1] > t.shape[-1]
            s = F.interpolate(s, size=t.shape[-2:], mode="bilinear", align_corners=False, antialias=shrinking)
        return s

    def feature_term(self, student: ModelOutput, teacher: ModelOutput) -> Tensor:
        """``sum_j w_j * MSE(F_s,j, F_t,j)`` (Eq. 7 without lambda)."""
        need = max((s if s >= 0 else -s - 1) for s in self.stages) + 1 if self.stages else 0
        for who, out in (("student", student), ("teacher", teacher)):
            if len(out.features) < need:
                raise ValueError(
                    f"hdkd needs {who} feature maps for stages {self.stages}, but the {who} returned "
                    f"{len(out.features)}"
                )
        total = student.logits.new_zeros((), dtype=torch.float32)
        for k, (stage, w) in enumerate(zip(self.stages, self.weights)):
            t = teacher.features[stage].detach()
            s = self._align(k, student.features[stage], t)
            total = total + w * F.mse_loss(s.float(), t.float())
        return total

    def forward(
        self, student: ModelOutput, teacher: ModelOutput | None, target: Tensor
    ) -> tuple[Tensor, dict[str, float]]:
        teacher = self._require_teacher(teacher)
        if student.cls_logits is None or student.dist_logits is None:
            raise ValueError(
                "the hdkd loss needs a student with a distillation token (ModelOutput.cls_logits and "
                "dist_logits); use kd_kl for students without one"
            )
        _check_target(student.cls_logits, target)
        ce = F.cross_entropy(student.cls_logits.float(), target)
        kl = soft_kl(student.dist_logits, teacher.logits, self.temperature, reduction=self.kl_reduction)
        feat = self.feature_term(student, teacher)
        total = (1.0 - self.alpha) * ce + self.alpha * kl + self.lambda_feat * feat
        return total, _parts(ce=ce, kl=kl, feat=feat)
