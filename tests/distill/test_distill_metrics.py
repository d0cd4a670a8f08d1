"""Metrics on hand-checkable predictions."""
from __future__ import annotations

import numpy as np

from medkd_desktop.distill.metrics import classification_metrics


def test_known_predictions():
    y = [0, 0, 1, 1, 2, 2]
    prob = np.array([[.9, .05, .05], [.2, .7, .1], [.1, .8, .1], [.1, .6, .3], [.1, .1, .8], [.3, .3, .4]])
    m = classification_metrics(y, prob, ["a", "b", "c"], sources=["s1", "s1", "s1", "s2", "s2", "s2"])
    assert m["n"] == 6 and m["accuracy"] == 5 / 6
    assert m["confusion"]["matrix"] == [[1, 1, 0], [0, 2, 0], [0, 0, 2]]
    assert m["per_class"]["a"] == {"precision": 1.0, "recall": 0.5, "f1": 2 / 3, "support": 2}
    assert abs(m["macro_f1"] - np.mean([2 / 3, 0.8, 1.0])) < 1e-9
    assert m["by_source"] == {"s1": {"n": 3, "accuracy": 2 / 3}, "s2": {"n": 3, "accuracy": 1.0}}
    lo, hi = m["ci"]["accuracy"]
    assert lo <= m["accuracy"] <= hi and 0 <= lo and hi <= 1


def test_perfect_ranking_has_auc_one_and_subsets_are_reported():
    y = [0, 1, 0, 1]
    prob = np.array([[.8, .2], [.4, .6], [.6, .4], [.1, .9]])
    m = classification_metrics(y, prob, ["neg", "pos"], subsets={"first_two": np.array([1, 1, 0, 0], bool)})
    assert m["auc"] == 1.0
    assert m["subsets"]["first_two"]["n"] == 2 and m["subsets"]["first_two"]["accuracy"] == 1.0


def test_fast_formulas_agree_with_scikit_learn():
    from sklearn.metrics import f1_score, roc_auc_score

    rng = np.random.default_rng(1)
    y = rng.integers(0, 4, 300)
    logits = rng.normal(size=(300, 4)) + 1.5 * np.eye(4)[y]
    prob = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    m = classification_metrics(y, prob, list("abcd"), n_boot=0)
    assert abs(m["macro_f1"] - f1_score(y, prob.argmax(1), average="macro")) < 1e-12
    assert abs(m["auc"] - roc_auc_score(y, prob, multi_class="ovr", average="macro")) < 1e-12
    assert m["ci"] == {}


def test_paired_difference_of_a_model_with_itself_is_exactly_zero_and_a_better_model_is_positive():
    from medkd_desktop.distill.metrics import paired_difference

    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 200)
    good = np.eye(3)[y] * 0.8 + 0.1
    noisy = np.eye(3)[np.where(rng.random(200) < 0.7, y, (y + 1) % 3)] * 0.8 + 0.1
    same = paired_difference(y, good, good, n_boot=200)
    assert same["accuracy"] == 0 and same["accuracy_ci"] == [0.0, 0.0]
    better = paired_difference(y, good, noisy, n_boot=500)
    assert better["accuracy"] > 0.2 and better["accuracy_ci"][0] > 0
