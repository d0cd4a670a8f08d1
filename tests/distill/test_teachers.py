"""Soft targets from a teacher with TTA or an ensemble: logits are the mean over views and
cards, feature maps stay the primary teacher's, and mismatched cards are refused."""
from __future__ import annotations

import pytest
import torch
from model_factory import write_random_model

from medkd_desktop.distill.teachers import Teacher, load_teacher
from medkd_desktop.models.architectures import create_arch
from medkd_desktop.models.preprocess import InputSpec

CLASSES = ["a", "b", "c"]
SMALL = {"channels": [4, 4, 8, 8, 8]}


pytestmark = pytest.mark.usefixtures("one_thread")


def _cnn(seed):
    torch.manual_seed(seed)
    return create_arch("cnn5", num_classes=3, in_chans=1, **SMALL).eval()


def _x():
    return torch.rand(4, 1, 32, 32, generator=torch.Generator().manual_seed(0))


def test_one_teacher_without_tta_is_the_teacher_itself():
    m, x = _cnn(0), _x()
    out, stage = Teacher([m])(x)
    ref = m.forward_train(x)
    assert stage is None and torch.equal(out.logits, ref.logits)
    assert all(torch.equal(a, b) for a, b in zip(out.features, ref.features))


def test_hflip_tta_averages_the_logits_of_the_image_and_its_mirror():
    m, x = _cnn(0), _x()
    out, stage = Teacher([m], tta="hflip")(x, -1)
    with torch.no_grad():
        expected = (m(x) + m(x.flip(-1))) / 2
        ref = m.forward_train(x)
    assert torch.allclose(out.logits, expected, atol=1e-6)
    assert torch.equal(out.features[-1], ref.features[-1]) and torch.equal(stage, ref.features[-1])  # unflipped


def test_an_ensemble_averages_the_cards_logits_over_every_view():
    a, b, x = _cnn(0), _cnn(1), _x()
    out, _ = Teacher([a, b])(x)
    with torch.no_grad():
        assert torch.allclose(out.logits, (a(x) + b(x)) / 2, atol=1e-6)
        assert torch.equal(out.features[0], a.forward_train(x).features[0])  # the primary's maps
        out2, _ = Teacher([a, b], tta="hflip")(x)
        expected = (a(x) + a(x.flip(-1)) + b(x) + b(x.flip(-1))) / 4
    assert torch.allclose(out2.logits, expected, atol=1e-6)


def test_no_gradient_reaches_a_teacher():
    out, _ = Teacher([_cnn(0)], tta="hflip")(_x())
    assert not out.logits.requires_grad


def test_load_teacher_refuses_cards_of_other_classes_or_input(tmp_path):
    spec = InputSpec(size=32, channels=1, mean=(0.5,), std=(0.25,))
    t = write_random_model(tmp_path / "t", "demo", "teacher", "cnn5", CLASSES, spec, arch_kwargs=SMALL)
    b = write_random_model(tmp_path / "b", "demo", "baseline", "cnn5", CLASSES, spec, arch_kwargs=SMALL, seed=1)
    other = write_random_model(tmp_path / "o", "demo", "baseline", "cnn5", ["a", "c", "b"], spec, arch_kwargs=SMALL)
    big = write_random_model(tmp_path / "g", "demo", "baseline", "cnn5", CLASSES, InputSpec(size=48, channels=1,
                             mean=(0.5,), std=(0.25,)), arch_kwargs=SMALL)
    dev = torch.device("cpu")
    teacher = load_teacher(str(t.path), [str(b.path)], "hflip", dev, classes=CLASSES, channels_last=True,
                           student_input=spec)
    assert len(teacher.members) == 2 and teacher.tta == "hflip"
    assert not any(p.requires_grad for p in teacher.parameters())
    with pytest.raises(ValueError, match="has classes"):
        load_teacher(str(t.path), [str(other.path)], "none", dev, classes=CLASSES, channels_last=False,
                     student_input=spec)
    with pytest.raises(ValueError, match="different input"):
        load_teacher(str(t.path), [str(big.path)], "none", dev, classes=CLASSES, channels_last=False,
                     student_input=spec)


def test_a_larger_teacher_sees_the_student_batch_at_its_own_size(tmp_path):
    """A 48-px teacher distilling a 32-px student: its logits are those of the batch resized to 48 px,
    and a teacher with other normalisation, or a feature-matching loss across sizes, is refused."""
    small = InputSpec(size=32, channels=1, mean=(0.5,), std=(0.25,))
    big = write_random_model(tmp_path / "g", "demo", "teacher", "cnn5", CLASSES, InputSpec(size=48, channels=1,
                             mean=(0.5,), std=(0.25,)), arch_kwargs=SMALL)
    dev = torch.device("cpu")
    teacher = load_teacher(str(big.path), [], "none", dev, classes=CLASSES, channels_last=False, student_input=small)
    assert teacher.size == 48
    x = _x()
    out, _ = teacher(x)
    resized = torch.nn.functional.interpolate(x, size=(48, 48), mode="bilinear", align_corners=False)
    assert torch.allclose(out.logits, teacher.primary(resized), atol=1e-6)
    assert not torch.allclose(out.logits, teacher.primary(x), atol=1e-3)
    with pytest.raises(ValueError, match="feature maps"):
        load_teacher(str(big.path), [], "none", dev, classes=CLASSES, channels_last=False, student_input=small,
                     feature_loss=True)
    other_norm = InputSpec(size=48, channels=1, mean=(0.4,), std=(0.25,))
    with pytest.raises(ValueError, match="only the size may differ"):
        load_teacher(str(big.path), [], "none", dev, classes=CLASSES, channels_last=False, student_input=other_norm)
