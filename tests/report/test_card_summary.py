"""The model-card summary the report prints and the window's card dialog shows, from real cards."""
from __future__ import annotations

from pathlib import Path

import pytest

from medkd_desktop.models.card import INTENDED_USE, ModelCard
from medkd_desktop.models.card_summary import card_summary, chance_note
from medkd_desktop.models.preprocess import InputSpec
from medkd_desktop.report import report_figures

BUNDLED = Path(__file__).resolve().parents[2] / "trained_models"


def bundled(card_id: str) -> ModelCard:
    path = BUNDLED / f"{card_id}.json"
    if not path.is_file():
        pytest.skip(f"bundled card {card_id} not found")
    return ModelCard.load(path)


def test_a_bundled_card_says_what_a_clinician_must_read():
    card = bundled("cxr-covid/student")
    s = card_summary(card)
    labels = [k for k, _ in s.rows]
    assert labels[:6] == ["Model", "Role", "Task", "Architecture", "Input", "Classes"]
    for needed in ("Test accuracy", "Test macro-F1", "Size", "Training", "Data", "Licence", "Intended use", "Card"):
        assert needed in labels, needed
    lo, hi = card.metrics["ci"]["accuracy"]
    assert s.value("Test accuracy") == f"{card.metrics['accuracy']:.3f} (95% CI {lo:.3f} to {hi:.3f}, n = {card.metrics['n']})"
    assert s.value("Test accuracy, adult only").startswith(f"{card.metrics['subsets']['adult_only']['accuracy']:.3f}")
    assert "CPU latency" in s.value("Size") and "M parameters" in s.value("Size")
    assert s.value("Card").startswith("cxr-covid/student") and card.sha256[:16] in s.value("Card")
    assert s.caveats == card.caveats and s.value("Near chance") is None
    pairs = s.pairs()  # caveats come after the figures and before how the model was made
    caveat_rows = [i for i, (k, _) in enumerate(pairs) if k == "Caveat"]
    assert len(caveat_rows) == len(card.caveats)
    assert caveat_rows[0] > [k for k, _ in pairs].index("Size")
    assert caveat_rows[-1] < [k for k, _ in pairs].index("Training")


def test_a_chance_level_model_is_labelled_so():
    s = card_summary(bundled("fmri-asd/student"))
    note = s.value("Near chance")
    assert note and "most common class" in note and "50.6%" in note


def test_a_card_without_figures_shows_what_it_has_and_invents_nothing():
    card = ModelCard(id="t/student", task="t", role="student", architecture="cnn5", arch_kwargs={}, classes=["a", "b"],
                     input=InputSpec(size=48, channels=1), weights_file="w.safetensors", sha256="")
    s = card_summary(card)
    assert s.title == "t/student"
    assert s.value("Test metrics") == "none recorded"
    assert s.value("Size") is None and s.value("Licence") is None and s.value("Near chance") is None
    assert s.value("Intended use") == INTENDED_USE and s.value("Card") == "t/student"
    assert chance_note({"accuracy": 0.9, "confusion": {"matrix": "broken"}}) is None


def test_the_pdf_card_page_prints_the_summary(histology, registry):
    study, analysis = histology
    pair = registry.pair("histo-lc25000")
    figures = report_figures(analysis, study, pair, "gradcam++")
    for fig, card in zip(figures[-2:], (pair.teacher, pair.student)):
        text = " ".join(t.get_text() for t in fig.texts)
        for label, value in card_summary(card).pairs():
            if label != "Model":  # the page's heading
                assert value.split()[0] in text, (label, value)
