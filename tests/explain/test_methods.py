"""Every explanation method on every architecture family, on maps whose right answer is known.

No trained weights: the families are built with ``create_arch`` at random initialisation
(fixed seed) in reduced sizes, and the "where should the heat be" checks use ``QuadrantNet``,
whose classes provably depend on one image quadrant each.
"""
from __future__ import annotations

import gc
import sys
import tracemalloc
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from pytorch_grad_cam import GradCAM, GradCAMPlusPlus, LayerCAM, ScoreCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from torch import nn

from medkd_desktop.explain import ExplainError, Heatmap, explain, list_methods, pearson, target_layers
from medkd_desktop.explain.cam import (
    BATCH_CANDIDATES,
    _batch_cache,
    scorecam_batch_size,
    top_variance_channels,
    tuned_batch_size,
)
from medkd_desktop.explain.dfs_ex import attention_modules
from medkd_desktop.models.architectures import create_arch
from medkd_desktop.models.card import ModelCard
from medkd_desktop.models.hooks import capture_outputs
from medkd_desktop.models.preprocess import InputSpec

sys.path.insert(0, str(Path(__file__).parent))
from quadrant import QuadrantNet, quadrant_share  # noqa: E402


SMALL = {"channels": (16, 24, 32), "stem_stride": 2}
SMALL_TEACHER = {**SMALL, "depths": (1, 1, 2)}
SMALL_STUDENT = {**SMALL, "depths": (1, 1, 1), "embed_dim": 32, "dflt_depth": 2, "num_heads": 2, "head_dim": 16,
                 "img_size": 64}

# (family, arch, kwargs, in_chans, side, methods that must NOT apply)
FAMILIES = [
    ("timm-cnn", "timm:resnet18", {}, 3, 48, {"attention"}),
    ("timm-densenet", "timm:densenet121", {}, 1, 64, {"attention"}),
    ("timm-mobilenet", "timm:mobilenetv3_small_050", {}, 3, 64, {"attention"}),  # the bundled fMRI student
    ("timm-transformer", "timm:visformer_tiny", {"img_size": 64}, 3, 64, set()),
    ("cnn5", "cnn5", {"channels": (8, 16, 16, 32, 32)}, 1, 64, {"attention"}),
    ("hdkd-teacher", "hdkd_teacher", SMALL_TEACHER, 3, 64, {"attention"}),
    ("hdkd-student", "hdkd_student", SMALL_STUDENT, 1, 64, set()),
]
ALL_METHODS = {"gradcam", "gradcam++", "scorecam", "layercam", "eigencam", "feature_maps", "dfs_ex", "attention",
               "hdkd_stage"}


def _build(arch: str, kwargs: dict, in_chans: int, n_classes: int = 3) -> nn.Module:
    torch.manual_seed(0)
    return create_arch(arch, num_classes=n_classes, in_chans=in_chans, **kwargs).eval()


def _hook_count(model: nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks)
               + len(getattr(m, "_backward_pre_hooks", {})) for m in model.modules())


def test_registry_names_the_issue_methods():
    assert set(list_methods()) == ALL_METHODS


@pytest.mark.parametrize(("family", "arch", "kwargs", "in_chans", "side", "not_applicable"), FAMILIES,
                         ids=[f[0] for f in FAMILIES])
def test_every_method_gives_a_sane_deterministic_map(family, arch, kwargs, in_chans, side, not_applicable):
    model = _build(arch, kwargs, in_chans)
    assert set(list_methods(model)) == ALL_METHODS - not_applicable
    torch.manual_seed(1)
    x = torch.randn(in_chans, side, side)
    with torch.no_grad():
        predicted = int(model(x[None]).argmax())
    switches = {name: getattr(m, "fused_attn", None) for name, m in attention_modules(model)}
    for method in list_methods(model):
        h = explain(model, x, method)
        # Score-CAM on the 384-512-channel timm stages costs seconds per call; its determinism
        # is checked on the other families (same code path).
        again = h if (method == "scorecam" and arch.startswith("timm:")) else explain(model, x, method)
        assert isinstance(h, Heatmap) and h.method == method
        assert h.map.shape == (side, side) and h.map.dtype == np.float32, method
        assert np.isfinite(h.map).all() and h.map.min() >= 0.0 and h.map.max() <= 1.0, method
        np.testing.assert_array_equal(h.map, again.map, err_msg=f"{family} {method} is not deterministic")
        assert h.target == predicted and h.predicted == predicted, method
        assert h.layers and h.seconds > 0, method
        assert _hook_count(model) == 0, f"{method} left hooks on {family}"
    # Attention capture switched everything back: timm's fused kernel setting, HDKD's keep_attn.
    for name, m in attention_modules(model):
        assert getattr(m, "fused_attn", None) == switches[name], name
        assert not getattr(m, "keep_attn", False) and not isinstance(getattr(m, "attn", None), torch.Tensor), name
    for method in not_applicable:
        with pytest.raises(ExplainError, match="does not apply"):
            explain(model, x, method)


def test_layer_rules_per_architecture():
    student = _build("hdkd_student", SMALL_STUDENT, 1)
    teacher = _build("hdkd_teacher", SMALL_TEACHER, 1)
    cnn5 = _build("cnn5", {"channels": (8, 8, 8, 8, 8)}, 1)
    # Grad-CAM family: the last stage; for the hybrid student the DFLT tokens (reshape transform).
    assert target_layers(student, "gradcam") == [f"dflt.blocks.{SMALL_STUDENT['dflt_depth'] - 1}.norm1"]
    assert target_layers(cnn5, "scorecam") == ["block5.act"]
    assert target_layers(teacher, "hdkd_stage") == target_layers(student, "hdkd_stage") == ["stage3"]
    assert target_layers(cnn5, "dfs_ex") == ["block1.act", "block5.act"]
    assert target_layers(cnn5, "feature_maps") == cnn5.stage_names
    x = torch.randn(1, 64, 64)
    # Not an HDKD model: the stage at 1/8 of the input stands in for stage 3 (block4 of CNN5).
    assert explain(cnn5, x, "hdkd_stage").layers == ["block4.act"]
    # DFS-Ex on the hybrid student reads its shape saliency from attention (003 Eq. 3).
    assert explain(student, x, "dfs_ex").layers[1].startswith("attention dflt.blocks.")
    # A card can name the layer per method; it wins over the rule.
    card = ModelCard(id="t/s", task="t", role="student", architecture="cnn5", arch_kwargs={}, classes=["a", "b", "c"],
                     input=InputSpec(size=64, channels=1), weights_file="w", sha256="0",
                     target_layers={"stages": cnn5.stage_names, "gradcam": "block3.act"})
    assert explain(cnn5, x, "gradcam", card=card).layers == ["block3.act"]


def test_scorecam_on_mobilenet_reads_the_narrow_input_of_its_pointwise_head():
    net = _build("timm:mobilenetv3_small_100", {}, 3)
    # blocks.5 is one 1x1 conv 96 -> 576 on the same 1/32 grid: Score-CAM runs 96 forwards, not 576.
    assert target_layers(net, "gradcam") == ["model.blocks.5"]
    assert target_layers(net, "scorecam") == ["model.blocks.4"]
    x = torch.rand(3, 64, 64)
    with capture_outputs(net, ["model.blocks.4", "model.blocks.5"]) as feats:
        net(x[None])
    grid = dict(zip(["model.blocks.4", "model.blocks.5"], (f.shape for f in feats)))
    assert grid["model.blocks.4"][1] == 96 and grid["model.blocks.5"][1] == 576
    assert grid["model.blocks.4"][-2:] == grid["model.blocks.5"][-2:]
    assert explain(net, x, "scorecam").layers == ["model.blocks.4"]
    # A network whose last stage is not a lone pointwise conv keeps the generic rule.
    assert target_layers(_build("timm:resnet18", {}, 3), "scorecam") == ["model.layer4"]


def test_feature_maps_are_an_ordered_strip_of_every_stage():
    model = _build("hdkd_student", SMALL_STUDENT, 1)
    h = explain(model, torch.randn(1, 64, 64), "feature_maps")
    assert h.stage_names == model.stage_names
    assert len(h.stages) == len(model.stage_names)
    for s in h.stages:
        assert s.shape == (64, 64) and s.min() >= 0 and s.max() <= 1
    np.testing.assert_array_equal(h.map, h.stages[-1])
    # The token stage is averaged on its residual stream, not on the LayerNorm output (which
    # averages to ~0 over channels and would give a blank map).
    assert not np.allclose(h.stages[-1], h.stages[-1].mean())


def test_cam_adapters_reproduce_pytorch_grad_cam_exactly():
    model = _build("hdkd_student", {**SMALL_STUDENT, "dflt_depth": 1}, 1)
    x = torch.randn(1, 1, 64, 64)
    layer = dict(model.named_modules())[model.stage_names[-1]]
    for method, cls in (("gradcam", GradCAM), ("gradcam++", GradCAMPlusPlus), ("layercam", LayerCAM), ("scorecam", ScoreCAM)):
        for t in (0, 2):
            with cls(model, [layer], reshape_transform=model.reshape_transform) as cam:
                reference = cam(x, [ClassifierOutputTarget(t)])[0]
            # Score-CAM at the library's default batch: batch size changes float rounding (1e-4).
            opts = {"batch_size": 16} if method == "scorecam" else {}
            np.testing.assert_allclose(explain(model, x, method, target=t, **opts).map, reference, atol=1e-6,
                                       err_msg=method)


def test_attention_map_is_the_eq3_mean_of_the_students_attention():
    model = _build("hdkd_student", {**SMALL_STUDENT, "dflt_depth": 3}, 1)
    x = torch.randn(1, 1, 64, 64)
    h = explain(model, x, "attention")
    with torch.no_grad():
        layers = model.attention_maps(x)  # the model's own API: (B, heads, T, T) per DFLT layer
    w = torch.stack(layers).mean(0).mean(1)[0]  # Eq. 3 over layers, then heads
    p = model.num_prefix_tokens
    gh, gw = model.dflt.last_grid
    expected = w[:p, p:].mean(0).reshape(gh, gw)[None, None]
    expected = torch.nn.functional.interpolate(expected, size=(64, 64), mode="bilinear", align_corners=False)[0, 0]
    assert pearson(h.map, expected.numpy()) > 0.999
    assert h.layers == [f"dflt.blocks.{i}.attn" for i in range(3)]
    assert all(not blk.attn.keep_attn and blk.attn.attn is None for blk in model.dflt.blocks)


QUADRANT_X = torch.rand(1, 1, 48, 48, generator=torch.Generator().manual_seed(3)) * 2 - 0.5


@pytest.mark.parametrize("method", sorted(ALL_METHODS - {"attention"}))
def test_heat_lands_in_the_only_quadrant_the_logits_read(method):
    model = QuadrantNet(((0, 0), (0, 0))).eval()
    h = explain(model, QUADRANT_X, method)
    assert not h.flat
    share = quadrant_share(h.map, 0, 0)
    assert share > 0.6, f"{method}: only {share:.0%} of the heat in the top-left quadrant (25% of the image)"


@pytest.mark.parametrize("method", ["gradcam", "gradcam++", "scorecam", "layercam"])
def test_asking_for_another_class_moves_the_heat_to_its_quadrant(method):
    model = QuadrantNet(((0, 0), (1, 1))).eval()  # class 0 reads top-left, class 1 bottom-right
    maps = {t: explain(model, QUADRANT_X, method, target=t) for t in (0, 1)}
    assert maps[0].target == 0 and maps[1].target == 1
    assert quadrant_share(maps[0].map, 0, 0) > 0.6 and quadrant_share(maps[0].map, 1, 1) < 0.1
    assert quadrant_share(maps[1].map, 1, 1) > 0.6 and quadrant_share(maps[1].map, 0, 0) < 0.1


def test_class_agnostic_methods_say_so_and_report_the_asked_target():
    model = QuadrantNet(((0, 0), (1, 1))).eval()
    a, b = explain(model, QUADRANT_X, "feature_maps", target=0), explain(model, QUADRANT_X, "feature_maps", target=1)
    assert not a.class_specific and (a.target, b.target) == (0, 1)
    np.testing.assert_array_equal(a.map, b.map)
    assert explain(model, QUADRANT_X, "gradcam").class_specific


def test_hooks_switches_and_memory_do_not_grow_over_200_calls():
    models = [QuadrantNet(((0, 0), (1, 1))).eval(), _build("hdkd_student", {**SMALL_STUDENT, "embed_dim": 16}, 1)]
    x = torch.rand(1, 1, 32, 32)
    calls = [(m, meth) for m in models for meth in list_methods(m)]

    def run(n: int) -> None:
        for i in range(n):
            model, method = calls[i % len(calls)]
            explain(model, x, method)

    def live_tensors() -> int:
        gc.collect()
        with warnings.catch_warnings():  # isinstance over every object touches deprecated torch aliases
            warnings.simplefilter("ignore")
            return sum(isinstance(o, torch.Tensor) for o in gc.get_objects())

    run(len(calls))  # warm-up: caches, lazy imports
    tensors_before = live_tensors()
    run(100)
    # Python-side memory in steady state, traced over the next 100 calls (tracing is slow).
    tracemalloc.start()
    snap = tracemalloc.take_snapshot()
    run(100)
    gc.collect()
    growth = sum(s.size_diff for s in tracemalloc.take_snapshot().compare_to(snap, "filename"))
    tracemalloc.stop()
    tensors_after = live_tensors()
    assert tensors_after <= tensors_before, f"{tensors_after - tensors_before} tensors leaked"
    assert growth < 100_000, f"Python memory grew by {growth} bytes over 100 explanations"
    for model in models:
        assert _hook_count(model) == 0
        assert all(p.requires_grad and p.grad is None for p in model.parameters())
    assert all(not blk.attn.keep_attn for blk in models[1].dflt.blocks)


@pytest.mark.parametrize("method", ["gradcam", "scorecam", "eigencam"])
def test_hooks_are_released_even_when_the_explanation_fails(method):
    model = QuadrantNet(((0, 0), (1, 1))).eval()
    model.config = {}  # class count unknown up front: the bad class fails inside the CAM's forward
    with pytest.raises(ExplainError, match="Class 7 does not exist") as failure:
        explain(model, QUADRANT_X, method, target=7)
    # The error (and through its context, the failed call's frames) is still alive here; the
    # CAM object with it. Its hooks must already be gone.
    assert failure.value is not None and _hook_count(model) == 0
    assert all(p.requires_grad and p.grad is None for p in model.parameters())


def test_a_training_model_is_explained_in_eval_mode_and_left_training():
    model = _build("cnn5", {"channels": (8, 8, 8, 8, 8)}, 1).train()
    x = torch.randn(1, 64, 64)
    h = explain(model, x, "gradcam")
    assert model.training
    np.testing.assert_array_equal(h.map, explain(model.eval(), x, "gradcam").map)


def test_gradient_methods_work_inside_inference_mode():
    model = QuadrantNet().eval()
    with torch.inference_mode():
        x = QUADRANT_X.clone()  # an inference tensor, as the engine's worker makes them
        h = explain(model, x, "gradcam")
    assert quadrant_share(h.map, 0, 0) > 0.6


def test_bad_requests_raise_one_plain_explain_error():
    model = QuadrantNet().eval()
    with pytest.raises(ExplainError, match="Unknown explanation method 'shap'"):
        explain(model, QUADRANT_X, "shap")
    with pytest.raises(ExplainError, match="Class 5 does not exist"):
        explain(model, QUADRANT_X, "gradcam", target=5)
    with pytest.raises(ExplainError, match="one image"):
        explain(model, QUADRANT_X.repeat(2, 1, 1, 1), "gradcam")
    with pytest.raises(ExplainError, match="does not apply"):
        explain(model, QUADRANT_X, "attention")
    with pytest.raises(ExplainError, match="gradcam method has no option batch_size"):
        explain(model, QUADRANT_X, "gradcam", batch_size=4)


def test_to_frame_undoes_the_centre_square_crop():
    m = np.zeros((8, 8), np.float32)
    m[:, :4] = 1.0  # heat on the left half of what the model saw
    h = Heatmap(map=m, method="gradcam", target=0, layers=["x"], seconds=0.0, stages=[m])
    framed = h.to_frame((40, 100), InputSpec(size=8, crop="center_square"))
    assert framed.map.shape == (40, 100) and framed.stages[0].shape == (40, 100)
    assert framed.map[:, :30].max() == 0 and framed.map[:, 70:].max() == 0  # outside the centred 40x40
    assert framed.map[:, 30:48].mean() > 0.9 and framed.map[:, 52:70].mean() < 0.1
    stretched = h.to_frame((40, 100), InputSpec(size=8, crop="stretch"))
    assert stretched.map[:, :45].mean() > 0.9 and stretched.map[:, 55:].mean() < 0.1


def test_scorecam_batch_size_is_measured_once_per_model_and_bounded_by_memory():
    assert scorecam_batch_size(16 * 64 * 64) == 64  # MobileNetV3-Small's widest stage at 3x128
    assert scorecam_batch_size(10**9) == 1  # a batch that would not fit: one image at a time
    model = _build("cnn5", {"channels": (8, 8, 8, 8, 8)}, 1)
    x = torch.randn(1, 1, 32, 32)
    with torch.inference_mode():
        b = tuned_batch_size(model, x)
        assert b in BATCH_CANDIDATES
        _batch_cache[model][(tuple(x.shape[1:]), torch.get_num_threads(), "cpu")] = 4
        assert tuned_batch_size(model, x) == 4  # cached: not timed again
    # The batch size changes the speed, never the map.
    np.testing.assert_allclose(explain(model, x, "scorecam", batch_size=1).map,
                               explain(model, x, "scorecam", batch_size=16).map, atol=1e-5)


def test_scorecam_channel_limit_scores_only_the_most_varied_channels():
    model = _build("cnn5", {"channels": (8, 8, 8, 8, 16)}, 1)
    x = torch.randn(1, 1, 32, 32, generator=torch.Generator().manual_seed(1))
    layer = dict(model.named_modules())["block5.act"]
    with torch.no_grad(), capture_outputs(model, ["block5.act"]) as feats:
        model(x)
    acts = feats[0].numpy()
    keep = top_variance_channels(acts, 4)
    variance = acts[0].reshape(16, -1).var(axis=1)
    assert len(keep) == 4 and variance[keep].min() >= np.delete(variance, keep).max()
    assert top_variance_channels(acts, 16) is None and top_variance_channels(acts, None) is None

    # The limited map is the library's Score-CAM with the other channels' weights set to 0.
    with ScoreCAM(model, [layer]) as cam:
        cam.get_cam_weights = lambda inp, tl, targets, a, g: _zero_outside(
            ScoreCAM.get_cam_weights(cam, inp, tl, targets, a[:, keep], g), keep, a.shape[:2])
        reference = cam(x, [ClassifierOutputTarget(1)])[0]
    np.testing.assert_allclose(explain(model, x, "scorecam", target=1, max_channels=4, batch_size=16).map, reference,
                               atol=1e-6)
    # The architecture's default applies unless the caller asks otherwise.
    model.scorecam_max_channels = 4
    np.testing.assert_allclose(explain(model, x, "scorecam", target=1, batch_size=16).map, reference, atol=1e-6)
    assert not np.allclose(explain(model, x, "scorecam", target=1, max_channels=0).map, reference, atol=1e-3)


def _zero_outside(weights: np.ndarray, keep: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    full = np.zeros(shape, dtype=np.float32)
    full[:, keep] = weights
    return full


def test_dfs_ex_uses_the_dfkd_settings_a_student_was_trained_with():
    model = _build("cnn5", {"channels": (8, 16, 16, 32, 32)}, 1)
    x = torch.randn(1, 64, 64)

    def card(training: dict) -> ModelCard:
        return ModelCard(id="t/s", task="t", role="student", architecture="cnn5", arch_kwargs={}, classes=["a", "b", "c"],
                         input=InputSpec(size=64, channels=1), weights_file="w", sha256="0", training=training)

    trained = card({"method": "dfkd", "loss_params": {"kappa": 2.5, "eta": 0.8}})
    np.testing.assert_array_equal(explain(model, x, "dfs_ex", card=trained).map,
                                  explain(model, x, "dfs_ex", kappa=2.5, eta=0.8).map)
    levels = np.unique(explain(model, x, "dfs_ex", card=trained).map)
    assert np.isclose(levels[:, None], [0.0, 0.2, 0.8, 1.0]).any(axis=1).all()  # G's levels with eta = 0.8
    plain = card({"method": "ce"})
    np.testing.assert_array_equal(explain(model, x, "dfs_ex", card=plain).map, explain(model, x, "dfs_ex").map)


def test_numpy_blas_runs_on_one_thread_inside_an_explainer_and_is_restored_after():
    """Explainers limit numpy's BLAS pool (it fought torch's threads for the cores); the limit
    must not outlive the call, or every later numpy operation of the app would stay single-threaded."""
    from threadpoolctl import threadpool_info

    def blas_threads() -> list[int]:
        return [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]

    before = blas_threads()
    seen = []

    class Probe(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(1, 4, 3, padding=1)
            self.stage_names = ["conv"]

        def forward(self, x):
            seen.append(blas_threads())
            return self.conv(x).mean(dim=(2, 3))[:, :2]

    explain(Probe().eval(), torch.rand(1, 1, 16, 16), "gradcam")
    assert seen and all(t == [1] * len(before) for t in seen)
    assert blas_threads() == before
