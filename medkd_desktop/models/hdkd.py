"""HDKD's CNN teacher and hybrid CNN+transformer student (paper 004, §3.3–3.4, Table 1).

Why these two models are written by hand: HDKD's point is that the teacher and the student
share the *same* convolutional hierarchy, so the stage-weighted feature MSE of Eq. 7 compares
teacher and student feature maps directly, with no alignment layer. No library ships that
pair; the generic pieces (layers, attention kernel, init) come from torch.

Stage layout, followed from §3.4 ("These shared stages include a stem block in the first stage
and MBCSA blocks in the second and third stages. Each stage reduces the input spatial
dimension with a factor of 2") and Fig. 5 (stage-3 maps are 28×28 for a 224×224 input):

=====  =====================================  ================  ======================
stage  blocks (teacher / student, Table 1)    channels           size for a 224 input
=====  =====================================  ================  ======================
1      6 / 2 stem blocks (3×3 conv-BN-GELU)   64                112 (stride 2 stem)
2      6 / 2 MBCSA blocks                      96 (see below)    56
3      9 / 3 MBCSA blocks                      192               28
4      student only: DFLT, 3 layers, 256-d    256 tokens        14×14 tokens (patch 2)
=====  =====================================  ================  ======================

Teacher stage *j* aligns with student stage *j* for j = 1, 2, 3 (``HDKD_ALIGNED_STAGES``):
same channels, same resolution, as long as both are built with the same ``channels``,
``stem_stride`` and ``in_chans`` (``check_hdkd_pair`` verifies it). Eq. 7 sums over these
N − 1 = 3 shared stages; the student's 4th (DFLT) stage has no teacher counterpart.

Note on Table 1's channels: the table prints [64, 128, 192], but the paper's own parameter
and FLOP counts (Tables 1, 2, 5, 10, 12) are reproduced only with [64, 96, 192], which is also
what the authors' public code uses: teacher 3.95 M params / 5.94 GMACs (paper: 3.95 M /
5.88 G), student 3.73 M (paper: 3.73 M; 3.69 M and 3.68 M at stem stride 4 and 8, as in
Table 12). With [64, 128, 192] they would be 4.41 M / 3.89 M. The defaults therefore use 96;
``channels=(64, 128, 192)`` builds the printed variant.

Length: over 500 lines because the teacher, the student and the blocks they share
(MBCSA, DFLT) are one paper's architecture; split apart, the shared hierarchy that Eq. 7 relies
on would be spread over files that must change together.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from medkd_desktop.models.hooks import HookedStages, capture_outputs
from medkd_desktop.models.outputs import ModelOutput

#: (teacher stage index, student stage index) pairs that Eq. 7 compares, 0-based into
#: ``features`` / ``stage_names``. Fixed by the design: the first three stages are shared.
HDKD_ALIGNED_STAGES: tuple[tuple[int, int], ...] = ((0, 0), (1, 1), (2, 2))


# --------------------------------------------------------------------------------------
# Convolutional part (§3.3)
# --------------------------------------------------------------------------------------


class StemBlock(nn.Sequential):
    """3×3 convolution, batch norm, GELU — §3.4: "The stem block consists of a convolutional
    layer with a 3×3 kernel, followed by batch normalization and GeLU activation"."""

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1) -> None:
        super().__init__(
            nn.Conv2d(in_ch, out_ch, 3, stride, 1, bias=False),
            nn.BatchNorm2d(out_ch),
            nn.GELU(),
        )


class ChannelAttention(nn.Module):
    """Eq. 4: M_C(F) = σ(MLP(AvgPool(F)) + MLP(MaxPool(F))), MLP = Linear–GELU–Linear.

    §3.3 replaces CBAM's ReLU with GELU. The shrink factor r is not given in the paper, so
    CBAM's own default r = 16 is used (floored at 1 hidden unit for narrow reduced models).
    """

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        hidden = max(1, channels // reduction)
        self.mlp = nn.Sequential(nn.Linear(channels, hidden), nn.GELU(), nn.Linear(hidden, channels))

    def forward(self, x: Tensor) -> Tensor:
        avg = self.mlp(x.mean(dim=(2, 3)))
        mx = self.mlp(x.amax(dim=(2, 3)))
        return torch.sigmoid(avg + mx)[:, :, None, None]


class SpatialAttention(nn.Module):
    """Eq. 5: M_S(F) = σ(Conv7×7(Concat(AvgPool_c(F), MaxPool_c(F)))), one 7×7 filter."""

    def __init__(self, kernel_size: int = 7) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        pooled = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)
        return torch.sigmoid(self.conv(pooled))


class CBAM(nn.Module):
    """Eq. 3, read as CBAM's sequential form: F' = M_C(F)⊗F, then F'' = M_S(F')⊗F'.

    Eq. 3 is printed as ``M_S(M_C(F)⊗F)⊗F``; §3.3 says the module "integrates" CBAM [58], whose
    definition multiplies the spatial map into the channel-refined F', so that is followed.
    (The authors' public code also adds an identity skip around CBAM; the paper does not, and
    the MBCSA block already has its own residual, so it is left out.)
    """

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        self.channel = ChannelAttention(channels, reduction)
        self.spatial = SpatialAttention(7)

    def forward(self, x: Tensor) -> Tensor:
        x = self.channel(x) * x
        return self.spatial(x) * x


class MBCSA(nn.Module):
    """Mobile Channel-Spatial Attention block (§3.3, Fig. 1b): MBConv with CBAM in place of SE.

    §3.1: 1×1 expansion (×``expansion`` of the *input* channels) → 3×3 depthwise → attention
    (here CBAM) → 1×1 projection, with a residual connection. Activations are GELU, as in the
    stem and the channel attention. The paper does not say how a stage's first block halves
    the resolution; the depthwise conv takes stride 2 as in MobileNetV2 [24], which §3.1
    cites, and the residual path gets a 3×3/2 max-pool plus a 1×1 projection (the CoAtNet-style
    shortcut the authors' code uses) so that every block keeps its residual connection.
    """

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1, expansion: int = 4, reduction: int = 16) -> None:
        super().__init__()
        hidden = in_ch * expansion
        self.expand = nn.Sequential(nn.Conv2d(in_ch, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.GELU())
        self.dw = nn.Sequential(
            nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False), nn.BatchNorm2d(hidden), nn.GELU()
        )
        self.attn = CBAM(hidden, reduction)
        self.project = nn.Sequential(nn.Conv2d(hidden, out_ch, 1, bias=False), nn.BatchNorm2d(out_ch))
        shortcut: list[nn.Module] = []
        if stride != 1:
            shortcut.append(nn.MaxPool2d(3, stride, 1))
        if in_ch != out_ch:
            shortcut.append(nn.Conv2d(in_ch, out_ch, 1, bias=False))
        self.shortcut = nn.Sequential(*shortcut) if shortcut else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        return self.shortcut(x) + self.project(self.attn(self.dw(self.expand(x))))


def _conv_stages(
    in_chans: int, channels: Sequence[int], depths: Sequence[int], stem_stride: int, expansion: int, reduction: int
) -> tuple[nn.Sequential, nn.Sequential, nn.Sequential]:
    """The three stages the teacher and the student share (§3.4). Built by one function so the
    two models cannot drift apart: any change here changes both, keeping Eq. 7 alignment."""
    if len(channels) != 3 or len(depths) != 3:
        raise ValueError(f"HDKD has three convolutional stages: got channels={list(channels)}, depths={list(depths)}")
    if min(depths) < 1 or min(channels) < 1:
        raise ValueError("every HDKD stage needs at least one block and one channel")
    c1, c2, c3 = channels
    stage1 = nn.Sequential(
        StemBlock(in_chans, c1, stem_stride), *[StemBlock(c1, c1) for _ in range(depths[0] - 1)]
    )
    stage2 = nn.Sequential(
        MBCSA(c1, c2, 2, expansion, reduction), *[MBCSA(c2, c2, 1, expansion, reduction) for _ in range(depths[1] - 1)]
    )
    stage3 = nn.Sequential(
        MBCSA(c2, c3, 2, expansion, reduction), *[MBCSA(c3, c3, 1, expansion, reduction) for _ in range(depths[2] - 1)]
    )
    return stage1, stage2, stage3


# --------------------------------------------------------------------------------------
# Transformer part: DFLT (§3.2, §3.4)
# --------------------------------------------------------------------------------------


class Attention(nn.Module):
    """Multi-head self-attention, Eq. 1: softmax(QKᵀ/√d_k)V.

    Set ``keep_attn = True`` and the next forward stores the per-head attention probabilities
    (B, heads, T, T) in ``self.attn``, still attached to the autograd graph so that an
    attention-based saliency (e.g. 003's Eq. 3 average of attention weights) can also be used
    inside a loss. Off by default so inference uses the fused kernel and holds no extra memory.
    """

    def __init__(self, dim: int, num_heads: int, head_dim: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = head_dim
        inner = num_heads * head_dim
        self.qkv = nn.Linear(dim, inner * 3)
        self.proj = nn.Linear(inner, dim)
        self.keep_attn = False
        self.attn: Tensor | None = None

    def forward(self, x: Tensor) -> Tensor:
        b, t, _ = x.shape
        qkv = self.qkv(x).reshape(b, t, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        if self.keep_attn:
            attn = (q @ k.transpose(-2, -1)) * self.head_dim**-0.5
            attn = attn.softmax(dim=-1)
            self.attn = attn
            out = attn @ v
        else:
            out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(b, t, -1))


class Mlp(nn.Module):
    """Eq. 2: MLP(X) = Conv(GeLU(Conv(LN(X)))), two 1×1 convolutions with ×4 expansion.

    On a token sequence a 1×1 convolution is exactly a linear layer, so ``nn.Linear`` is used.
    The LayerNorm of Eq. 2 lives in ``TransformerBlock.norm2`` (pre-norm, as in DeiT).
    """

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(x)))


class TransformerBlock(nn.Module):
    """Pre-norm transformer layer as in DeiT [10], which §3.4 says DFLT is built upon."""

    def __init__(self, dim: int, num_heads: int, head_dim: int, mlp_ratio: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, num_heads, head_dim)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class DFLT(nn.Module):
    """Distilled Feature-Level Transformer (§3.4): DeiT on the stage-3 feature map, not pixels.

    The map is cut into ``patch_size``×``patch_size`` patches (Table 1: 2×2) by a strided
    convolution — the same linear patch projection ViT/DeiT use — then a class token and (for
    HDKD) a distillation token are prepended, learned position embeddings added, and
    ``depth`` layers applied. Token order: [cls, dist, patches row-major]. Position embeddings
    are learned for ``grid`` (the patch grid of an ``img_size`` input) and bicubically resized
    for other input sizes, as DeiT does when fine-tuning at a new resolution.
    """

    def __init__(
        self,
        in_ch: int,
        dim: int,
        depth: int,
        num_heads: int,
        head_dim: int,
        mlp_ratio: float,
        patch_size: int,
        grid: tuple[int, int],
        use_dist_token: bool,
    ) -> None:
        super().__init__()
        self.patch_embed = nn.Conv2d(in_ch, dim, patch_size, patch_size)
        self.num_prefix_tokens = 2 if use_dist_token else 1
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.dist_token = nn.Parameter(torch.zeros(1, 1, dim)) if use_dist_token else None
        self.grid = grid
        self.pos_embed = nn.Parameter(torch.zeros(1, self.num_prefix_tokens + grid[0] * grid[1], dim))
        self.blocks = nn.ModuleList(TransformerBlock(dim, num_heads, head_dim, mlp_ratio) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        self.last_grid: tuple[int, int] = grid

    def _pos_embed(self, h: int, w: int) -> Tensor:
        if (h, w) == self.grid:
            return self.pos_embed
        n = self.num_prefix_tokens
        prefix, patches = self.pos_embed[:, :n], self.pos_embed[:, n:]
        gh, gw = self.grid
        patches = patches.reshape(1, gh, gw, -1).permute(0, 3, 1, 2)
        patches = F.interpolate(patches, size=(h, w), mode="bicubic", align_corners=False)
        return torch.cat([prefix, patches.flatten(2).transpose(1, 2)], dim=1)

    def forward(self, x: Tensor) -> Tensor:
        """Return the final normalised token sequence (B, prefix + h·w, dim)."""
        x = self.patch_embed(x)
        b, _, h, w = x.shape
        if h < 1 or w < 1:
            raise ValueError("input image too small for the DFLT patch grid")
        self.last_grid = (h, w)
        tokens = [self.cls_token.expand(b, -1, -1)]
        if self.dist_token is not None:
            tokens.append(self.dist_token.expand(b, -1, -1))
        x = torch.cat([*tokens, x.flatten(2).transpose(1, 2)], dim=1) + self._pos_embed(h, w)
        for blk in self.blocks:
            x = blk(x)
        return self.norm(x)


# --------------------------------------------------------------------------------------
# The two models
# --------------------------------------------------------------------------------------


def _as_list(values: Sequence[int]) -> list[int]:
    return [int(v) for v in values]


class HDKDTeacher(HookedStages, nn.Module):
    """HDKD teacher: a pure CNN of three stages, then pooling and fully connected layers (§3.4).

    ``stage_names`` = ``["stage1", "stage2", "stage3"]``; each stage's output is its last
    block's output, i.e. ψ_j^T of Eq. 7. The head is global average pooling, a
    ``head_hidden``-wide linear layer and the classifier ("pooling and fully connected layers",
    plural; the authors' code uses 128 units without an activation in between, kept here so the
    parameter count matches; ``head_hidden=0`` gives a single linear layer).

    Scaling for CPU training: ``channels`` and ``depths`` shrink width and depth (keep
    ``channels`` equal to the student's); ``stem_stride`` 4 or 8 is the paper's own ablation
    (Table 12), cutting FLOPs about 4× or 16× at some accuracy cost.
    """

    def __init__(
        self,
        num_classes: int,
        in_chans: int = 3,
        channels: Sequence[int] = (64, 96, 192),
        depths: Sequence[int] = (6, 6, 9),
        stem_stride: int = 2,
        expansion: int = 4,
        cbam_reduction: int = 16,
        head_hidden: int = 128,
    ) -> None:
        super().__init__()
        self.config = {
            "num_classes": int(num_classes),
            "in_chans": int(in_chans),
            "channels": _as_list(channels),
            "depths": _as_list(depths),
            "stem_stride": int(stem_stride),
            "expansion": int(expansion),
            "cbam_reduction": int(cbam_reduction),
            "head_hidden": int(head_hidden),
        }
        self.stage1, self.stage2, self.stage3 = _conv_stages(
            in_chans, channels, depths, stem_stride, expansion, cbam_reduction
        )
        c3 = channels[2]
        self.pool = nn.AdaptiveAvgPool2d(1)
        if head_hidden > 0:
            self.head = nn.Sequential(nn.Linear(c3, head_hidden), nn.Linear(head_hidden, num_classes))
        else:
            self.head = nn.Linear(c3, num_classes)
        self.stage_names: list[str] = ["stage1", "stage2", "stage3"]

    def forward(self, x: Tensor) -> Tensor:
        x = self.stage3(self.stage2(self.stage1(x)))
        return self.head(self.pool(x).flatten(1))


class HDKDStudent(nn.Module):
    """HDKD hybrid student: the teacher's three stages (fewer blocks), then DFLT (§3.4).

    Two linear heads read the class token and the distillation token; ``forward`` returns
    their average ("During inference, predictions are made using the student model by
    averaging the class (CLS) logits and distillation logits", §3.4). ``forward_train`` also
    returns both heads separately: CE uses ``cls_logits``, the KL to the teacher uses
    ``dist_logits`` (§3.4: "optimized to match the actual label and teacher logits,
    respectively"). ``use_dist_token=False`` gives Table 2's "student w/o distillation".

    Stages: ``stage1``..``stage3`` are maps identical in shape to the teacher's (see
    ``HDKD_ALIGNED_STAGES``). The 4th, DFLT stage is represented by
    ``dflt.blocks.<last>.norm1``: the (normalised) tokens entering the last transformer layer.
    Not the final tokens, because the final *patch* tokens never reach the two heads (only
    the cls/dist tokens do), so their gradient is zero and Grad-CAM there would be blank;
    pytorch-grad-cam recommends this same layer for DeiT. Its output is a token sequence:
    ``forward_train`` reshapes it to (B, embed_dim, h, w), and explainers hooking it must pass
    ``model.reshape_transform``.

    Scaling: ``channels``/``depths``/``stem_stride`` as for the teacher (must match its
    ``channels``, ``stem_stride`` and ``in_chans``); ``embed_dim``, ``dflt_depth``,
    ``num_heads``, ``head_dim`` shrink the DFLT. ``img_size`` only fixes the grid the position
    embeddings are learned on; other input sizes work through interpolation.
    """

    def __init__(
        self,
        num_classes: int,
        in_chans: int = 3,
        channels: Sequence[int] = (64, 96, 192),
        depths: Sequence[int] = (2, 2, 3),
        stem_stride: int = 2,
        expansion: int = 4,
        cbam_reduction: int = 16,
        embed_dim: int = 256,
        dflt_depth: int = 3,
        num_heads: int = 8,
        head_dim: int = 32,
        mlp_ratio: float = 4.0,
        patch_size: int = 2,
        img_size: int = 224,
        use_dist_token: bool = True,
    ) -> None:
        super().__init__()
        if dflt_depth < 1:
            raise ValueError("the DFLT module needs at least one transformer layer")
        self.config = {
            "num_classes": int(num_classes),
            "in_chans": int(in_chans),
            "channels": _as_list(channels),
            "depths": _as_list(depths),
            "stem_stride": int(stem_stride),
            "expansion": int(expansion),
            "cbam_reduction": int(cbam_reduction),
            "embed_dim": int(embed_dim),
            "dflt_depth": int(dflt_depth),
            "num_heads": int(num_heads),
            "head_dim": int(head_dim),
            "mlp_ratio": float(mlp_ratio),
            "patch_size": int(patch_size),
            "img_size": int(img_size),
            "use_dist_token": bool(use_dist_token),
        }
        self.stage1, self.stage2, self.stage3 = _conv_stages(
            in_chans, channels, depths, stem_stride, expansion, cbam_reduction
        )
        # Stage-3 resolution is img_size / (stem_stride * 4): the stem plus two halvings.
        side = math.ceil(math.ceil(math.ceil(img_size / stem_stride) / 2) / 2) // patch_size
        self.dflt = DFLT(
            channels[2], embed_dim, dflt_depth, num_heads, head_dim, mlp_ratio, patch_size, (side, side), use_dist_token
        )
        self.head_cls = nn.Linear(embed_dim, num_classes)
        self.head_dist = nn.Linear(embed_dim, num_classes) if use_dist_token else None
        self.stage_names: list[str] = ["stage1", "stage2", "stage3", f"dflt.blocks.{dflt_depth - 1}.norm1"]
        self._init_transformer()

    def _init_transformer(self) -> None:
        """DeiT's initialisation: truncated normal (std 0.02) for tokens, position embeddings
        and linear layers; it keeps early attention close to uniform so training starts stably."""
        for p in (self.dflt.cls_token, self.dflt.dist_token, self.dflt.pos_embed):
            if p is not None:
                nn.init.trunc_normal_(p, std=0.02)
        for m in [*self.dflt.blocks.modules(), self.head_cls, self.head_dist]:
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)

    @property
    def num_prefix_tokens(self) -> int:
        """Tokens before the patch tokens: cls (and dist). Attention maps index them first."""
        return self.dflt.num_prefix_tokens

    def _heads(self, x: Tensor) -> tuple[Tensor, Tensor | None]:
        tokens = self.dflt(self.stage3(self.stage2(self.stage1(x))))
        cls = self.head_cls(tokens[:, 0])
        dist = self.head_dist(tokens[:, 1]) if self.head_dist is not None else None
        return cls, dist

    def forward(self, x: Tensor) -> Tensor:
        cls, dist = self._heads(x)
        return cls if dist is None else (cls + dist) / 2

    def forward_train(self, x: Tensor) -> ModelOutput:
        with capture_outputs(self, self.stage_names) as feats:
            cls, dist = self._heads(x)
        logits = cls if dist is None else (cls + dist) / 2
        features = [f if f.dim() == 4 else self.reshape_transform(f) for f in feats]
        return ModelOutput(logits=logits, features=features, cls_logits=cls, dist_logits=dist)

    def reshape_transform(self, x: Tensor) -> Tensor:
        """Tokens (B, prefix + h·w, C) → map (B, C, h, w), dropping the cls/dist tokens.

        Maps pass through unchanged, so it can be given to pytorch-grad-cam for any stage. The
        grid (h, w) is the one of the latest forward pass, so call it right after that pass
        (which is what pytorch-grad-cam does) and not across threads sharing the model.
        """
        if x.dim() == 4:
            return x
        patches = x[:, self.num_prefix_tokens :]
        b, n, c = patches.shape
        h, w = self.dflt.last_grid
        if h * w != n:
            raise ValueError(f"{n} patch tokens do not match the last forward's {h}x{w} grid")
        return patches.transpose(1, 2).reshape(b, c, h, w)

    def attention_maps(self, x: Tensor) -> list[Tensor]:
        """Per-layer attention probabilities of the DFLT, each (B, heads, T, T).

        T = ``num_prefix_tokens`` + h·w; token 0 is cls, token 1 the distillation token (when
        present), then the patch grid row-major (``dflt.last_grid`` after this call). Runs under
        the caller's grad mode, so the maps can be used in a loss or, under ``torch.no_grad()``,
        cheaply for display (attention rollout, 003 Eq. 3).
        """
        attns = [blk.attn for blk in self.dflt.blocks]
        for a in attns:
            a.keep_attn = True
        try:
            self.forward(x)
            maps = [a.attn for a in attns]
        finally:
            for a in attns:
                a.keep_attn = False
                a.attn = None
        return maps  # type: ignore[return-value]


def check_hdkd_pair(teacher: HDKDTeacher, student: HDKDStudent) -> None:
    """Raise ``ValueError`` if the pair cannot be compared stage by stage (Eq. 7).

    Why check configs rather than run a forward: a trainer should refuse a mismatched pair
    before spending an epoch; shapes depend only on these three settings.
    """
    keys = ("in_chans", "channels", "stem_stride")
    diff = {k: (teacher.config[k], student.config[k]) for k in keys if teacher.config[k] != student.config[k]}
    if diff:
        raise ValueError(f"HDKD teacher and student stages do not align; (teacher, student) differ in: {diff}")
