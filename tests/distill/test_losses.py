"""The distillation losses against hand-computed values, their gradients, and one real optimisation.

Each test states what would go wrong for a user if it failed: a student trained with a loss
that silently differs from the paper's equation, a teacher that drifts during distillation,
or a DFKD student that never learns where to look because its mask has no gradient.
"""
from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F
from model_factory import blob_features
from torch import nn

from medkd_desktop.distill.losses import DistillLoss, create_loss, list_losses, sigmoid_mse, soft_kl
from medkd_desktop.explain.dfs_masks import dfs_ex_masks
from medkd_desktop.models.outputs import ModelOutput

ALL = ["ce", "dfkd", "fbce", "fbce_mse", "hdkd", "kd_kl"]


pytestmark = pytest.mark.usefixtures("one_thread")


def out(logits, features=(), cls=None, dist=None) -> ModelOutput:
    return ModelOutput(logits=logits, features=list(features), cls_logits=cls, dist_logits=dist)


# --------------------------------------------------------------------------- registry


def test_registry_lists_all_six_and_refuses_unknown_names():
    assert list_losses() == ALL
    with pytest.raises(ValueError, match="unknown distillation loss 'kd_kll'.*kd_kl"):
        create_loss("kd_kll")


@pytest.mark.parametrize("name", ALL)
def test_config_is_json_and_rebuilds_the_same_loss(name):
    loss = create_loss(name)
    assert isinstance(loss, DistillLoss) and loss.name == name
    card = json.loads(json.dumps(loss.config()))
    again = create_loss(card["name"], **card["params"])
    assert again.config() == loss.config()


def test_flags_tell_the_trainer_what_to_run():
    flags = {n: (create_loss(n).needs_teacher, create_loss(n).needs_features) for n in ALL}
    assert flags == {
        "ce": (False, False), "fbce": (False, False), "kd_kl": (True, False),
        "fbce_mse": (True, False), "dfkd": (True, True), "hdkd": (True, True),
    }


@pytest.mark.parametrize(
    "name, params",
    [("kd_kl", {"alpha": 1.5}), ("kd_kl", {"temperature": 0}), ("dfkd", {"alpha": 0.6, "beta": 0.5}),
     ("fbce", {"gamma": -1}), ("hdkd", {"adapter": "conv1x1"}), ("hdkd", {"stage_weights": [1.0]})],
)
def test_bad_hyper_parameters_are_refused(name, params):
    with pytest.raises(ValueError):
        create_loss(name, **params)


def test_distilling_losses_refuse_a_missing_teacher_and_bad_labels():
    s = out(torch.randn(3, 4))
    with pytest.raises(ValueError, match="teacher"):
        create_loss("kd_kl")(s, None, torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="outside"):
        create_loss("ce")(s, None, torch.tensor([0, 1, 4]))


# --------------------------------------------------------------------------- ce / fbce


def test_ce_matches_torch_with_smoothing_and_weights():
    logits, y = torch.randn(6, 3), torch.tensor([0, 1, 2, 2, 1, 0])
    loss, parts = create_loss("ce", label_smoothing=0.1, class_weights=[1.0, 2.0, 0.5])(out(logits), None, y)
    ref = F.cross_entropy(logits, y, weight=torch.tensor([1.0, 2.0, 0.5]), label_smoothing=0.1)
    assert torch.allclose(loss, ref) and parts["ce"] == pytest.approx(float(ref))


def test_fbce_with_gamma_0_is_bce_on_one_hot_targets():
    logits, y = torch.randn(8, 5) * 3, torch.randint(0, 5, (8,))
    loss, _ = create_loss("fbce", gamma=0.0)(out(logits), None, y)
    ref = F.binary_cross_entropy_with_logits(logits, F.one_hot(y, 5).float())
    assert torch.allclose(loss, ref, atol=1e-6)


def test_fbce_follows_eq4_and_down_weights_easy_examples():
    # one sample, classes (true, other): p = sigmoid(z)
    z, y, g = torch.tensor([[2.0, -1.0]]), torch.tensor([0]), 2.0
    p1, p0 = 1 / (1 + math.exp(-2.0)), 1 / (1 + math.exp(1.0))
    hand = (-(1 - p1) ** g * math.log(p1) - p0 ** g * math.log(1 - p0)) / 2
    loss, _ = create_loss("fbce", gamma=g)(out(z), None, y)
    assert float(loss) == pytest.approx(hand, rel=1e-6)
    bce, _ = create_loss("fbce", gamma=0.0)(out(z), None, y)
    assert float(loss) < float(bce) / 4  # a well-classified sample counts far less
    # confident logits stay finite (logs are taken as logsigmoid)
    big, _ = create_loss("fbce")(out(torch.tensor([[-100.0, 100.0]])), None, y)
    assert math.isfinite(float(big)) and float(big) > 40


# --------------------------------------------------------------------------- kd_kl


def test_kd_kl_soft_term_is_zero_for_equal_logits_and_positive_otherwise():
    s = torch.randn(5, 4)
    assert float(soft_kl(s, s.clone(), 10.0)) == pytest.approx(0.0, abs=1e-6)
    _, parts = create_loss("kd_kl")(out(s), out(s.clone()), torch.randint(0, 4, (5,)))
    assert parts["kl"] == pytest.approx(0.0, abs=1e-6)
    _, parts = create_loss("kd_kl")(out(s), out(s + torch.randn(5, 4)), torch.randint(0, 4, (5,)))
    assert parts["kl"] > 1e-4


def test_kd_kl_on_a_hand_computed_two_class_example():
    # teacher at T=2 gives softmax([ln 3, 0]) = (0.75, 0.25); the student is uniform (0.5, 0.5)
    t, T = 2.0, 2.0
    teacher = torch.tensor([[T * math.log(3.0), 0.0]])
    student = torch.tensor([[0.0, 0.0]])
    kl = 0.75 * math.log(0.75 / 0.5) + 0.25 * math.log(0.25 / 0.5)  # 0.1308...
    loss, parts = create_loss("kd_kl", alpha=0.4, temperature=t)(out(student), out(teacher), torch.tensor([1]))
    assert parts["kl"] == pytest.approx(T * T * kl, rel=1e-6)
    assert parts["ce"] == pytest.approx(math.log(2.0), rel=1e-6)
    assert float(loss) == pytest.approx(0.4 * math.log(2.0) + 0.6 * T * T * kl, rel=1e-6)


# --------------------------------------------------------------------------- fbce_mse


def test_fbce_mse_with_gamma_0_and_alpha_1_is_the_bce_formula():
    s, t, y = torch.tensor([[1.5, -0.5, 0.2]]), torch.randn(1, 3), torch.tensor([2])
    loss, _ = create_loss("fbce_mse", alpha=1.0, gamma=0.0)(out(s), out(t), y)
    p = [1 / (1 + math.exp(-v)) for v in (1.5, -0.5, 0.2)]
    hand = -(math.log(1 - p[0]) + math.log(1 - p[1]) + math.log(p[2])) / 3  # Eq. 2, one-hot y
    assert float(loss) == pytest.approx(hand, rel=1e-6)


def test_fbce_mse_soft_term_is_zero_for_equal_logits_and_matches_eq5():
    s = torch.randn(4, 3)
    _, parts = create_loss("fbce_mse")(out(s), out(s.clone()), torch.zeros(4, dtype=torch.long))
    assert parts["mse"] == 0.0
    # Eq. 5 by hand: n = 2 labels, T = 2
    sig = lambda v: 1 / (1 + math.exp(-v))  # noqa: E731
    T = 2.0
    hand = T**2 / 2 * ((sig(0 / T) - sig(2 / T)) ** 2 + (sig(2 / T) - sig(0 / T)) ** 2)
    got = sigmoid_mse(torch.tensor([[0.0, 2.0]]), torch.tensor([[2.0, 0.0]]), T)
    assert float(got) == pytest.approx(hand, rel=1e-6)
    loss, parts = create_loss("fbce_mse", temperature=T, alpha=0.5)(
        out(torch.tensor([[0.0, 2.0]])), out(torch.tensor([[2.0, 0.0]])), torch.tensor([1])
    )
    assert parts["mse"] == pytest.approx(hand, rel=1e-6)
    assert float(loss) == pytest.approx(0.5 * parts["fbce"] + 0.5 * hand, rel=1e-6)


# --------------------------------------------------------------------------- dfkd / DFS-Ex


def test_dfkd_feature_term_is_zero_for_identical_features():
    feats = [blob_features(8, 16, "tl"), blob_features(32, 4, "br")]
    logits = torch.randn(2, 2)
    _, parts = create_loss("dfkd")(out(logits, feats), out(logits.clone(), [f.clone() for f in feats]),
                                   torch.tensor([0, 1]))
    assert parts["sal"] == 0.0 and parts["soft"] == pytest.approx(0.0, abs=1e-6)


def test_dfkd_penalises_saliency_in_another_region_across_different_widths_and_sizes():
    y, logits = torch.tensor([0, 1]), torch.randn(2, 2)
    teacher = out(logits, [blob_features(64, 32, "tl"), blob_features(256, 8, "tl")])
    # the student has fewer channels and coarser maps, as real students do
    same = out(logits, [blob_features(16, 16, "tl", seed=1), blob_features(48, 4, "tl", seed=1)])
    moved = out(logits, [blob_features(16, 16, "br", seed=1), blob_features(48, 4, "br", seed=1)])
    loss = create_loss("dfkd")
    sal_same = loss(same, teacher, y)[1]["sal"]
    sal_moved = loss(moved, teacher, y)[1]["sal"]
    assert sal_moved > 0.2 and sal_moved > 20 * sal_same


def test_dfkd_sum_reduction_is_eq6_verbatim():
    y, logits = torch.tensor([0, 1]), torch.randn(2, 2)
    teacher = out(logits, [blob_features(8, 16, "tl"), blob_features(16, 4, "tl")])
    student = out(logits, [blob_features(8, 16, "br"), blob_features(16, 4, "br")])
    mean = create_loss("dfkd")(student, teacher, y)[1]["sal"]
    total = create_loss("dfkd", sal_reduction="sum")(student, teacher, y)[1]["sal"]
    assert total == pytest.approx(16 * 16 * mean, rel=1e-5)


def test_dfkd_soft_masks_let_a_student_move_its_saliency():
    """Gradient descent on the saliency term alone drags the student's hard mask onto the teacher's."""
    y = torch.tensor([0, 1])
    t_feats = [blob_features(32, 16, "tl"), blob_features(64, 4, "tl")]
    s_feats = [blob_features(8, 16, "br", seed=2).requires_grad_(), blob_features(16, 4, "br", seed=2).requires_grad_()]
    logits = torch.randn(2, 2)
    loss = create_loss("dfkd", alpha=1.0, beta=0.0)
    first, _ = loss(out(logits, s_feats), out(logits, t_feats), y)
    first.backward()
    assert all(f.grad is not None and f.grad.abs().sum() > 0 for f in s_feats)
    opt = torch.optim.Adam(s_feats, lr=0.2)
    # max over channels sends each position's gradient to one channel, so switching off a
    # region of 8 equally strong channels takes a few dozen steps
    for _ in range(100):
        opt.zero_grad()
        value, _ = loss(out(logits, s_feats), out(logits, t_feats), y)
        value.backward()
        opt.step()
    assert float(value.detach()) < 0.1 * float(first.detach())
    hard_s = dfs_ex_masks([f.detach() for f in s_feats]).fused
    hard_t = dfs_ex_masks(t_feats, size=(16, 16)).fused
    assert (hard_s == hard_t).float().mean() > 0.95


def test_dfkd_says_which_model_lacks_feature_maps():
    with pytest.raises(ValueError, match="student"):
        create_loss("dfkd")(out(torch.randn(2, 2)), out(torch.randn(2, 2), [torch.randn(2, 4, 4, 4)]),
                            torch.tensor([0, 1]))


# --------------------------------------------------------------------------- hdkd


def hdkd_pair(batch=2, classes=3):
    shapes = [(8, 16, 16), (16, 8, 8), (24, 4, 4)]
    s_feats = [torch.zeros(batch, *s) for s in shapes] + [torch.randn(batch, 32, 2, 2)]  # + DFLT stage
    t_feats = [torch.full((batch, *s), v) for s, v in zip(shapes, (1.0, 2.0, 0.5))]
    student = out(torch.randn(batch, classes), s_feats, cls=torch.randn(batch, classes), dist=torch.randn(batch, classes))
    return student, out(torch.randn(batch, classes), t_feats)


def test_hdkd_feature_term_is_lambda_times_stage_weighted_mse():
    student, teacher = hdkd_pair()
    y = torch.tensor([0, 2])
    loss, parts = create_loss("hdkd")(student, teacher, y)
    # MSEs 1, 4, 0.25 with weights j^1 = 1, 2, 3 (004 Eq. 7, alpha = 1)
    assert parts["feat"] == pytest.approx(1 * 1.0 + 2 * 4.0 + 3 * 0.25)
    assert float(loss) == pytest.approx(0.5 * parts["ce"] + 0.5 * parts["kl"] + 10 * 9.75, rel=1e-6)
    _, parts = create_loss("hdkd", stage_weights=[0.0, 1.0, 0.0], lambda_feat=2.0)(student, teacher, y)
    assert parts["feat"] == pytest.approx(4.0)


def test_hdkd_reads_the_class_head_for_ce_and_the_distillation_head_for_kl():
    student, teacher = hdkd_pair()
    y = torch.tensor([1, 0])
    _, parts = create_loss("hdkd")(student, teacher, y)
    assert parts["ce"] == pytest.approx(float(F.cross_entropy(student.cls_logits, y)))
    kl = F.kl_div(F.log_softmax(student.dist_logits, 1), F.softmax(teacher.logits, 1), reduction="batchmean")
    assert parts["kl"] == pytest.approx(float(kl), rel=1e-5)
    student.dist_logits = teacher.logits.clone()
    assert create_loss("hdkd")(student, teacher, y)[1]["kl"] == pytest.approx(0.0, abs=1e-6)


def test_hdkd_refuses_mismatched_stages_unless_an_adapter_is_set():
    student, teacher = hdkd_pair()
    teacher.features[1] = torch.ones(2, 16, 4, 4)  # half the student's resolution
    with pytest.raises(ValueError, match=r"stage 1.*does not match"):
        create_loss("hdkd")(student, teacher, torch.tensor([0, 1]))
    _, parts = create_loss("hdkd", adapter="resize")(student, teacher, torch.tensor([0, 1]))
    assert parts["feat"] == pytest.approx(1.0 + 2 * 1.0 + 3 * 0.25)  # zeros resized are zeros
    teacher.features[2] = torch.ones(2, 40, 4, 4)  # other channel count
    with pytest.raises(ValueError, match="conv1x1"):
        create_loss("hdkd", adapter="resize")(student, teacher, torch.tensor([0, 1]))
    loss = create_loss("hdkd", adapter="conv1x1", adapter_channels=[[8, 8], [16, 16], [24, 40]])
    value, _ = loss(student, teacher, torch.tensor([0, 1]))
    value.backward()
    assert all(p.grad is not None for p in loss.parameters())


def test_hdkd_needs_a_distillation_token():
    student, teacher = hdkd_pair()
    student.dist_logits = None
    with pytest.raises(ValueError, match="distillation token"):
        create_loss("hdkd")(student, teacher, torch.tensor([0, 1]))


# --------------------------------------------------------------------------- gradients


def leafs(*shapes):
    return [torch.randn(*s, requires_grad=True) for s in shapes]


@pytest.mark.parametrize("name", ALL)
def test_gradients_reach_the_student_and_never_the_teacher(name):
    B, C = 4, 3
    shapes = [(B, 8, 16, 16), (B, 16, 8, 8), (B, 24, 4, 4)]
    s_logits, s_cls, s_dist = leafs((B, C), (B, C), (B, C))
    s_feats = leafs(*shapes, (B, 32, 2, 2))
    t_logits, = leafs((B, C))
    t_feats = leafs(*shapes)
    student = out(s_logits, s_feats, cls=s_cls, dist=s_dist)
    teacher = out(t_logits, t_feats)
    loss = create_loss(name)
    value, parts = loss(student, teacher, torch.randint(0, C, (B,)))
    assert value.ndim == 0 and math.isfinite(float(value.detach())) and all(isinstance(v, float) for v in parts.values())
    value.backward()
    assert t_logits.grad is None and all(f.grad is None for f in t_feats)
    used = {
        "ce": [s_logits], "fbce": [s_logits], "kd_kl": [s_logits], "fbce_mse": [s_logits],
        "dfkd": [s_logits, s_feats[0], s_feats[-1]],
        "hdkd": [s_cls, s_dist, *s_feats[:3]],
    }[name]
    for tensor in used:
        assert tensor.grad is not None and tensor.grad.abs().sum() > 0


# --------------------------------------------------------------------------- does it teach


@pytest.mark.parametrize("alpha", [0.7, 0.0])  # the default mix, and the soft term alone
def test_kd_kl_teaches_a_small_student_to_mimic_a_fixed_teacher(alpha):
    torch.manual_seed(1)
    teacher = nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 4)).requires_grad_(False)
    student = nn.Sequential(nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 4))
    x_train, x_val = torch.randn(256, 16), torch.randn(256, 16)
    with torch.no_grad():
        # scaled so the teacher is fairly sure (mean top probability about 0.7), as trained ones are
        t_train, t_val = teacher(x_train) * 10, teacher(x_val) * 10
    y_train = t_train.argmax(1)

    def val_kl() -> float:
        with torch.no_grad():
            return float(soft_kl(student(x_val), t_val, 1.0))

    before = val_kl()
    loss = create_loss("kd_kl", alpha=alpha)
    opt = torch.optim.Adam(student.parameters(), lr=1e-2)
    for _ in range(50):
        opt.zero_grad()
        value, _ = loss(out(student(x_train)), out(t_train), y_train)
        value.backward()
        opt.step()
    after = val_kl()
    assert after < 0.5 * before, (before, after)
    with torch.no_grad():
        agree = (student(x_val).argmax(1) == t_val.argmax(1)).float().mean()
    assert agree > 0.6  # chance is 0.25
