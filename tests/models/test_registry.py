"""Model cards and the registry: verified loading, and refusal of anything tampered with."""
from __future__ import annotations

import pytest
import torch

from medkd_desktop.models.architectures import create_arch
from medkd_desktop.models.card import ModelCard
from medkd_desktop.models.preprocess import InputSpec
from medkd_desktop.models.registry import ModelRegistry
from medkd_desktop.errors import MedKDError
from medkd_desktop.models.weights import ModelIntegrityError, load_verified_state, save_weights, sha256_file


def _write_model(folder, role="student", task="demo"):
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    model = create_arch("cnn5", num_classes=3, in_chans=1).eval()
    sha = save_weights(model, folder / f"{role}.safetensors")
    card = ModelCard(id=f"{task}/{role}", task=task, role=role, architecture="cnn5", arch_kwargs={},
                     classes=["a", "b", "c"], input=InputSpec(size=64, channels=1, mean=(0.5,), std=(0.25,)),
                     weights_file=f"{role}.safetensors", sha256=sha)
    card.save(folder / f"{role}.json")
    return model, card


def test_card_roundtrip_and_verified_load_gives_the_same_predictions(tmp_path):
    model, card = _write_model(tmp_path / "demo")
    again = ModelCard.load(card.path)
    assert again.to_dict() == card.to_dict()
    reg = ModelRegistry([tmp_path])
    loaded = reg.load(reg.card("demo", "student"))
    x = torch.randn(2, 1, 64, 64)
    with torch.no_grad():
        assert torch.allclose(loaded(x), model(x), atol=1e-6)
    assert reg.load(reg.card("demo", "student")) is loaded  # cached


def test_tampered_weights_are_refused_naming_the_model(tmp_path):
    _, card = _write_model(tmp_path / "demo")
    data = bytearray(card.weights_path.read_bytes())
    data[-10] ^= 0xFF  # one flipped byte deep inside a tensor
    card.weights_path.write_bytes(bytes(data))
    with pytest.raises(ModelIntegrityError, match="demo/student.*changed or damaged"):
        ModelRegistry([tmp_path]).load(card)


def test_missing_weights_are_refused(tmp_path):
    _, card = _write_model(tmp_path / "demo")
    card.weights_path.unlink()
    with pytest.raises(ModelIntegrityError, match="missing"):
        ModelRegistry([tmp_path]).load(card)


def test_a_file_that_is_not_safetensors_is_refused_with_the_library_text_in_detail_only(tmp_path):
    """The hash can match a file that was never valid (a card written for a broken export): the
    user reads one sentence, the parser's own message goes to the log through ``detail``."""
    path = tmp_path / "student.safetensors"
    path.write_bytes(b"not a safetensors file at all")
    with pytest.raises(ModelIntegrityError) as info:
        load_verified_state(path, sha256_file(path), "demo/student")
    assert isinstance(info.value, MedKDError)
    assert str(info.value) == "Model demo/student: weights file student.safetensors is damaged (not valid safetensors)."
    assert info.value.detail and info.value.detail not in str(info.value)


def test_pair_and_user_override(tmp_path):
    _write_model(tmp_path / "bundled" / "demo", role="teacher")
    _write_model(tmp_path / "bundled" / "demo", role="student")
    reg = ModelRegistry([tmp_path / "bundled"])
    pair = reg.pair("demo")
    assert (pair.teacher.role, pair.student.role) == ("teacher", "student")
    assert reg.tasks() == ["demo"]
    with pytest.raises(Exception, match="No baseline model"):
        reg.card("demo", "baseline")
