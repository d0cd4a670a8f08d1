"""Temperature scaling (trust.calibration) and the calibration metrics (distill.metrics).

What a user would notice if these failed: a probability in the window or the report that claims
more (or less) certainty than the model has earned on held-out images, or a card whose stored
temperature is lost on the way to the engine.
"""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from medkd_desktop.distill.metrics import (
    brier_score,
    calibration_metrics,
    expected_calibration_error,
    negative_log_likelihood,
)
from medkd_desktop.models.card import ModelCard
from medkd_desktop.models.input_spec import InputSpec
from medkd_desktop.models.registry import BUNDLED_DIR
from medkd_desktop.trust.calibration import T_MAX, apply_temperature, fit_temperature, softmax


def test_ece_by_hand_over_two_occupied_bins():
    # Bin (0.933, 1]: three at 0.95 confidence, two right -> |2/3 - 0.95| weighted 3/5.
    # Bin (0.533, 0.6]: two at 0.55, both right -> |1 - 0.55| weighted 2/5.
    prob = np.array([[0.95, 0.05], [0.95, 0.05], [0.05, 0.95], [0.55, 0.45], [0.45, 0.55]])
    y = np.array([0, 1, 1, 0, 1])
    expected = 3 / 5 * abs(2 / 3 - 0.95) + 2 / 5 * abs(1 - 0.55)
    assert expected_calibration_error(y, prob) == pytest.approx(expected)  # 0.35
    assert expected_calibration_error(y, prob, n_bins=1) == pytest.approx(abs(4 / 5 - (3 * 0.95 + 2 * 0.55) / 5))


def test_ece_is_zero_when_confidence_matches_accuracy():
    prob = np.array([[0.75, 0.25]] * 4)
    assert expected_calibration_error([0, 0, 0, 1], prob) == pytest.approx(0.0)


def test_nll_and_brier_by_hand():
    prob = np.array([[0.5, 0.5], [0.25, 0.75]])
    y = np.array([0, 1])
    assert negative_log_likelihood(y, prob) == pytest.approx((math.log(2) + math.log(4 / 3)) / 2)
    assert brier_score(y, prob) == pytest.approx((0.5 + 0.125) / 2)
    assert brier_score([0], np.array([[0.0, 1.0]])) == pytest.approx(2.0)  # confidently wrong: the maximum
    m = calibration_metrics(y, prob, prob)
    assert m["ece"] == m["ece_uncalibrated"] and m["nll"] == m["nll_uncalibrated"]


def _synthetic(n=4000, k=4, seed=0):
    """Labels drawn from softmax(z): z are calibrated logits by construction."""
    rng = np.random.default_rng(seed)
    z = 2.0 * rng.normal(size=(n, k))
    p = softmax(z)
    y = (rng.random(n)[:, None] > np.cumsum(p, 1)).sum(1)
    return z, y


def test_fit_recovers_a_known_temperature():
    z, y = _synthetic()
    assert fit_temperature(3.0 * z, y) == pytest.approx(3.0, rel=0.1)  # over-confident by 3
    assert fit_temperature(z / 2.0, y) == pytest.approx(0.5, rel=0.1)  # under-confident
    assert fit_temperature(z, y) == pytest.approx(1.0, rel=0.1)


def test_fitted_temperature_lowers_nll_and_ece_and_keeps_predictions():
    z, y = _synthetic(seed=1)
    logits = 3.0 * z
    t = fit_temperature(logits, y)
    before, after = softmax(logits), apply_temperature(logits, t)
    assert negative_log_likelihood(y, after) < negative_log_likelihood(y, before)
    assert expected_calibration_error(y, after) < expected_calibration_error(y, before)
    np.testing.assert_array_equal(after.argmax(1), before.argmax(1))


def test_fit_stays_bounded_and_rejects_bad_input():
    logits = np.array([[10.0, 0.0], [0.0, 10.0]])
    assert 0 < fit_temperature(logits, np.array([0, 1])) <= T_MAX  # all right: T shrinks to the bound
    assert fit_temperature(logits, np.array([1, 0])) <= T_MAX  # all wrong: T grows to the bound
    with pytest.raises(ValueError):
        fit_temperature(logits, np.array([0]))
    with pytest.raises(ValueError):
        apply_temperature(logits, 0.0)


def _card(**fields):
    return ModelCard(id="t/student", task="t", role="student", architecture="cnn5", arch_kwargs={}, classes=["a", "b"],
                     input=InputSpec(size=32, channels=1), weights_file="student.safetensors", sha256="0" * 64, **fields)


def test_card_round_trips_its_calibration(tmp_path):
    cal = {"temperature": 1.7, "fitted_on": "val", "n": 12, "nll_before": 0.6, "nll_after": 0.5,
           "ece_before": 0.1, "ece_after": 0.05}
    _card(calibration=cal).save(tmp_path / "student.json")
    card = ModelCard.load(tmp_path / "student.json")
    assert card.calibration == cal and card.temperature == 1.7 and card.calibrated
    d = json.loads((tmp_path / "student.json").read_text())
    del d["calibration"]  # a card written before calibration existed
    (tmp_path / "old.json").write_text(json.dumps(d))
    old = ModelCard.load(tmp_path / "old.json")
    assert old.calibration == {} and old.temperature == 1.0 and not old.calibrated
    with pytest.raises(ValueError):
        _ = _card(calibration={"temperature": -1.0}).temperature


def test_every_bundled_card_holds_a_temperature_fitted_on_val():
    cards = [ModelCard.load(p) for p in sorted(BUNDLED_DIR.glob("*/*.json"))]
    assert cards
    for card in cards:
        cal = card.calibration
        assert cal.get("fitted_on") == "val" and card.temperature > 0, card.id
        assert cal["nll_after"] <= cal["nll_before"] + 1e-9, card.id  # T = 1 is among the candidates


def test_a_temperature_is_kept_only_when_it_helps_held_out_images():
    from medkd_desktop.trust.calibration import fit_checked

    z, y = _synthetic()
    t, gain = fit_checked(3.0 * z, y)  # over-confident by 3: both halves agree, T is kept
    assert gain > 0 and t == pytest.approx(3.0, rel=0.1)
    # One confident error in 300 (the histology student's val split has 2): the half without it
    # pulls T to its lower bound, and the half with it pays for that.
    rng = np.random.default_rng(0)
    y2 = rng.integers(0, 4, 300)
    logits = 4.0 * np.eye(4)[y2] + 0.3 * rng.normal(size=(300, 4))
    logits[0] = 3.0 * np.eye(4)[(y2[0] + 1) % 4]
    assert fit_temperature(logits, y2) < 0.6  # what the plain fit would store: sharper than the data supports
    t2, gain2 = fit_checked(logits, y2)
    assert gain2 < 0 and t2 == 1.0
