"""The "Check faithfulness" model without Qt: the engine's own figures, cached with the analysis.

What a user would notice if these failed: figures that differ from ``medkd explain
--faithfulness`` / the benchmarks for the same image, figures shown beside a heatmap they do not
describe (after a change of method, frame or target), a check that cannot be started again after a
cancel, or a JSON export without the figures the window showed.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from model_factory import write_random_model
from testdata import SAMPLES

from medkd_desktop.inference import faithfulness as fa
from medkd_desktop.inference.engine import Engine
from medkd_desktop.inference.session import ReviewSession
from medkd_desktop.models.preprocess import InputSpec
from medkd_desktop.models.registry import ModelRegistry
from medkd_desktop.studies import open_study

torch.set_num_threads(1)

CXR = ["covid", "normal", "pneumonia"]
GREY = InputSpec(size=48, channels=1, mean=(0.5,), std=(0.25,))
CHEST = SAMPLES / "chest_xray_cr_pa_nema.dcm"


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    for seed, role in ((1, "teacher"), (2, "student")):
        # Non-negative class weights: every class has positive Grad-CAM evidence (a non-empty map).
        write_random_model(root, "cxr-covid", role, "cnn5", CXR, GREY, arch_kwargs={"channels": [8, 8, 16, 16, 32]},
                           seed=seed, prepare=lambda m: m.head.weight.abs_())
    return ModelRegistry([root])


@pytest.fixture(scope="module")
def engine(registry):
    return Engine(registry, device="cpu")


@pytest.fixture
def session(registry, engine):
    """A session showing the chest sample's analysis, as the window does after opening it."""
    s = ReviewSession(registry)
    s.study = open_study(CHEST)
    s.propose()
    job = s.job()
    analysis = engine.analyze(**job.kwargs())
    s.remember(job.key, analysis)
    s.analysis = analysis
    return s


def test_the_check_is_the_engines_faithfulness_path_and_joins_the_shown_analysis(session, engine):
    check = fa.FaithfulnessCheck(session)
    assert check.can_check and check.figures is None and check.reason is None
    shown = session.analysis
    job = check.start()
    assert job is not None and check.running and not check.can_check
    assert check.start() is None  # one check at a time
    checked = fa.check(engine, job)
    assert check.finish(checked) and not check.running

    # The same figures as Engine.analyze(faithfulness=True) on the same frame, method and target.
    direct = engine.analyze(**job.kwargs(), faithfulness=True, steps=fa.STEPS)
    figures = check.figures
    for role in fa.ROLES:
        assert figures[role] == pytest.approx(direct.result(role).faithfulness["gradcam"], abs=1e-6)
        assert set(figures[role]) == {"deletion_auc", "insertion_auc"}
        assert all(0.0 <= v <= 1.0 for v in figures[role].values())
    # Cached with the analysis: the session's cache holds the very object, figures and costs included.
    assert session.cached() is shown and fa.figures(shown, "gradcam") == figures
    assert set(check.costs) == set(fa.ROLES) and all(ms > 0 for ms in check.costs.values())
    assert not check.can_check  # nothing left to check for this analysis
    # The JSON export (Analysis.to_dict) carries the figures, and the cost under timings_ms.
    d = shown.to_dict()
    for role in fa.ROLES:
        assert d[role]["faithfulness"]["gradcam"] == {k: round(v, 4) for k, v in figures[role].items()}
        assert fa.timing_key("gradcam", role) in d["timings_ms"]


def test_a_change_of_method_drops_a_running_check_and_shows_no_figures(session, engine):
    check = fa.FaithfulnessCheck(session)
    abandoned = []
    check.events.abandoned.connect(abandoned.append)
    shown = session.analysis
    job = check.start()
    checked = fa.check(engine, job)
    session.method = "gradcam++"  # the window then clears the analysis and asks for the new one
    session.analysis = None
    assert abandoned == [check] and not check.running
    assert not check.finish(checked)  # a late result is dropped...
    assert fa.figures(shown, "gradcam") is None  # ...and never attached to the old analysis either
    assert check.figures is None and not check.can_check  # no analysis shown: nothing to check
    assert check.reason == "Available once both heatmaps are shown."


def test_cancel_leaves_no_figures_and_the_check_can_start_again(session):
    check = fa.FaithfulnessCheck(session)
    seen = []
    check.events.changed.connect(lambda c: seen.append((c.running, c.fraction)))
    assert check.start() is not None
    check.progress(0.4, "teacher prediction")
    check.cancelled()
    assert not check.running and check.figures is None
    assert check.message == "Faithfulness check cancelled."
    assert check.can_check
    assert seen[0] == (True, 0.0) and (True, 0.4) in seen and seen[-1][0] is False


def test_merge_refuses_figures_for_a_map_that_differs_from_the_shown_one(session, engine):
    shown = session.analysis
    job = session.job()
    checked = fa.check(engine, job)
    other = dataclasses.replace(shown.student, heatmaps=dict(shown.student.heatmaps), faithfulness={})
    pm = other.heatmaps["gradcam"]
    other.heatmaps["gradcam"] = dataclasses.replace(pm, map=np.flipud(pm.map).copy())
    altered = dataclasses.replace(shown, student=other)
    assert not fa.merge(altered, checked, "gradcam")
    assert fa.figures(altered, "gradcam") is None and not shown.teacher.faithfulness
    assert fa.merge(shown, checked, "gradcam")


def test_a_tiled_field_says_why_it_cannot_be_checked(session):
    a = session.analysis
    assert fa.unavailable(a, "gradcam") is None
    assert "tiled field" in fa.unavailable(dataclasses.replace(a, n_tiles=12), "gradcam")
    assert "no map" in fa.unavailable(a, "scorecam")
    assert fa.unavailable(None, "gradcam") is not None
