"""The engine on real studies with small real-architecture models (random weights, written to tmp).

What a user would notice if these failed: probabilities that do not add up, an overlay that
does not line up with the frame (wrong size, or heat painted where the model never looked),
a tiled field of which only part was analysed, a Cancel that does nothing, or a timing /
agreement figure missing from the predictions panel.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from testdata import SAMPLES, shared_path
from model_factory import write_random_model
from PIL import Image

from medkd_desktop.explain import explain
from medkd_desktop.inference.analysis import Analysis
from medkd_desktop.inference.engine import (
    AnalysisCancelled,
    Engine,
    IncompatibleStudyError,
    ModelUnavailableError,
)
from medkd_desktop.models.preprocess import InputSpec, preprocess
from medkd_desktop.models.registry import ModelRegistry
from medkd_desktop.studies import StudyKind, open_study

torch.set_num_threads(1)

CXR = ["covid", "pneumonia", "normal"]
MRI = ["glioma", "meningioma", "notumor", "pituitary"]
HISTO = ["lung_aca", "lung_scc", "lung_n", "colon_aca", "colon_n"]
ASD = ["ASD", "TC"]
SMALL_CNN5 = {"channels": [8, 16, 16, 32, 32]}
GREY1 = InputSpec(size=48, channels=1, mean=(0.5,), std=(0.25,))
RGB64 = InputSpec(size=64, channels=3)


def write_model(root, task, role, arch, kwargs, classes, spec, seed=0):
    return write_random_model(root, task, role, arch, classes, spec, arch_kwargs=kwargs, seed=seed)


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    # Teacher and student differ in architecture, input size and channels, as real pairs may.
    write_model(root, "cxr-covid", "teacher", "timm:resnet10t", {}, CXR, RGB64)
    write_model(root, "cxr-covid", "student", "cnn5", SMALL_CNN5, CXR, GREY1, seed=1)
    write_model(root, "brain-tumor-mri", "teacher", "timm:resnet10t", {}, MRI, RGB64)
    write_model(root, "brain-tumor-mri", "student", "cnn5", SMALL_CNN5, MRI, GREY1, seed=1)
    write_model(root, "histo-lc25000", "teacher", "timm:resnet10t", {}, HISTO, RGB64)
    write_model(root, "histo-lc25000", "student", "cnn5", SMALL_CNN5, HISTO, RGB64, seed=1)
    fmri = InputSpec(size=64, channels=3, fmri_map="amplitude")
    write_model(root, "fmri-asd", "teacher", "timm:resnet10t", {}, ASD, fmri)
    write_model(root, "fmri-asd", "student", "cnn5", SMALL_CNN5, ASD, fmri, seed=1)
    return ModelRegistry([root])


@pytest.fixture(scope="module")
def engine(registry):
    return Engine(registry, device="cpu")


def check_analysis(a: Analysis, methods=("gradcam",)) -> None:
    """What every analysis must satisfy for the panels and the overlays to be right."""
    hw = a.image.shape[:2]
    for res in (a.teacher, a.student):
        assert res.probabilities.shape == (len(res.classes),)
        assert abs(float(res.probabilities.sum()) - 1.0) < 1e-5
        assert res.latency_ms > 0
        for m in methods:
            heat = res.heatmaps[m].on_grid()  # drawn on the analysed image, as the viewers and reports do
            assert heat.shape == hw and heat.dtype == np.float32
            assert 0.0 <= float(heat.min()) and float(heat.max()) <= 1.0 and float(heat.max()) > 0
            assert res.explain_seconds[m] > 0
        assert len(res.feature_maps) >= 3  # the layer strip, shallow -> deep
        assert all(0.0 <= float(fm.min()) and float(fm.max()) <= 1.0 for _, fm in res.feature_maps)
    for m in methods:
        agr = a.agreement[m]
        assert -1.0 <= agr.pearson <= 1.0 and -1.0 <= agr.ssim <= 1.0 and 0.0 <= agr.iou_top20 <= 1.0
        assert {f"{m}_teacher", f"{m}_student"} <= a.timings_ms.keys()
    assert {"load_models", "preprocess", "teacher_forward", "student_forward", "agreement",
            "total"} <= a.timings_ms.keys()
    assert "feature_maps" in a.timings_ms or "feature_maps_teacher" in a.timings_ms  # the strip's own pass, or none
    assert all(v >= 0 for v in a.timings_ms.values())
    assert a.timings_ms["total"] >= a.timings_ms["teacher_forward"] + a.timings_ms["student_forward"]


def test_chest_dicom_heatmap_sits_in_the_centre_square_the_models_saw(engine):
    study = open_study(SAMPLES / "chest_xray_cr_pa_nema.dcm")  # 1955 x 1841, MONOCHROME1
    progress: list[tuple[float, str]] = []
    a = engine.analyze(study, "cxr-covid", ["gradcam++"], on_progress=lambda f, msg: progress.append((f, msg)))
    check_analysis(a, ("gradcam++",))
    assert a.image.shape == (1955, 1841)
    np.testing.assert_array_equal(a.image, study.frame().display())  # the displayed frame, inverted as shown
    y0 = (1955 - 1841) // 2
    for res in (a.teacher, a.student):
        assert res.heatmaps["gradcam++"].box.as_tuple() == (y0, 0, y0 + 1841, 1841)
        heat = res.heatmaps["gradcam++"].on_grid()
        assert heat[:y0].max() == 0 and heat[y0 + 1841:].max() == 0  # never seen: no heat
        assert heat[y0:y0 + 1841].max() > 0.5
    fractions = [f for f, _ in progress]
    assert fractions == sorted(fractions) and fractions[-1] == pytest.approx(1.0) and len(fractions) >= 7
    assert a.warnings == [] and a.n_tiles == 1 and a.device == "cpu"


def test_probabilities_are_the_models_own_on_the_card_preprocessing(engine, registry):
    study = open_study(SAMPLES / "chest_xray_cr_pa_nema.dcm")
    a = engine.analyze(study, "cxr-covid", ["gradcam"])
    for res, card in ((a.teacher, registry.card("cxr-covid", "teacher")), (a.student, registry.card("cxr-covid", "student"))):
        model = registry.load(card, "cpu")
        with torch.no_grad():
            expected = torch.softmax(model(preprocess(study.frame().display(), card.input)[None]), 1)[0].numpy()
        np.testing.assert_allclose(res.probabilities, expected, atol=1e-5)
        assert not res.calibrated  # no temperature in the card: the plain softmax, as before calibration
        np.testing.assert_allclose(res.probabilities_uncalibrated, res.probabilities)


def test_target_class_is_explained_by_both_models(engine, registry):
    study = open_study(SAMPLES / "chest_xray_cr_pa_nema.dcm")
    own = engine.analyze(study, "cxr-covid", ["gradcam++"])
    other = next(c for c in CXR if c != own.teacher.predicted)
    forced = engine.analyze(study, "cxr-covid", ["gradcam++"], target=other)
    assert forced.target == other
    card = registry.card("cxr-covid", "teacher")
    x = preprocess(study.frame().display(), card.input)
    want = explain(registry.load(card, "cpu"), x, "gradcam++", target=CXR.index(other), card=card)
    want = want.to_frame((1955, 1841), card.input)
    np.testing.assert_allclose(forced.teacher.heatmaps["gradcam++"].on_grid(), want.map, atol=2e-3)
    assert not np.allclose(forced.teacher.heatmaps["gradcam++"].map, own.teacher.heatmaps["gradcam++"].map, atol=1e-2)
    with pytest.raises(IncompatibleStudyError, match="no class 'melanoma'"):
        engine.analyze(study, "cxr-covid", ["gradcam"], target="melanoma")


def test_mr_series_analyses_the_middle_slice(engine):
    study = open_study(SAMPLES / "mr_brain_epi_mosaic_series")
    a = engine.analyze(study, "brain-tumor-mri", ["layercam", "feature_maps"])
    check_analysis(a, ("layercam",))
    assert a.frame_index == (0, study.n_slices // 2)
    assert list(a.teacher.heatmaps) == ["layercam", "feature_maps"]
    # the layer strip is the explained feature maps' stages, not a second pass
    assert [n for n, _ in a.teacher.stages["feature_maps"]] == [n for n, _ in a.teacher.feature_maps]
    np.testing.assert_array_equal(a.image, study.frame(0, study.n_slices // 2).display())
    b = engine.analyze(study, "brain-tumor-mri", ["gradcam"], volume=1, slice_=3)
    assert b.frame_index == (1, 3)
    with pytest.raises(IncompatibleStudyError, match="no slice"):
        engine.analyze(study, "brain-tumor-mri", ["gradcam"], slice_=study.n_slices)


def test_histology_tile_with_several_methods(engine):
    study = open_study(SAMPLES / "histology_lung_adenocarcinoma_lc25000.jpg")
    a = engine.analyze(study, "histo-lc25000", ["gradcam++", "eigencam"])
    check_analysis(a, ("gradcam++", "eigencam"))
    assert a.image.shape == (224, 224, 3)
    quick = engine.analyze(study, "histo-lc25000", ["gradcam++"], strip=False)  # the CLI's choice
    assert quick.teacher.feature_maps == [] and "feature_maps" not in quick.timings_ms
    np.testing.assert_array_equal(quick.teacher.heatmaps["gradcam++"].map, a.teacher.heatmaps["gradcam++"].map)
    frame = engine.analyze_frame(study.frame().display(), "histo-lc25000", ["gradcam++"], strip=False)
    np.testing.assert_allclose(frame.teacher.probabilities, a.teacher.probabilities, atol=1e-6)
    with pytest.raises(IncompatibleStudyError, match="Unknown explanation method"):
        engine.analyze(study, "histo-lc25000", ["saliency-magic"])


def test_fmri_amplitude_map_is_analysed_on_its_glass_brain(engine):
    study = open_study(SAMPLES / "fmri_amplitude_map_abide_nyu_0050957.nii.gz")
    a = engine.analyze(study, "fmri-asd", ["layercam"])
    check_analysis(a, ("layercam",))
    assert a.image.ndim == 3 and a.image.shape[2] == 3 and a.image.shape[:2] != study.shape[:2]
    assert not any("map" in w for w in a.warnings)  # the header names it an amplitude map: what the card reads
    other = open_study(SAMPLES / "histology_lung_adenocarcinoma_lc25000.jpg")
    with pytest.raises(IncompatibleStudyError, match="fMRI summary maps"):
        engine.analyze(other, "fmri-asd", ["gradcam"])


def test_a_degree_map_given_to_amplitude_models_is_warned_about_once(engine):
    study = open_study(shared_path("fmri-asd", "degree", "NYU_0050957_cc200_degree.nii.gz"))
    a = engine.analyze(study, "fmri-asd", ["gradcam"])
    assert [w for w in a.warnings if "map" in w] == [
        "This is a degree map, but the models were trained on amplitude maps: "
        "their predictions and heatmaps for it are not meaningful."]


def test_cancel_stops_between_steps(engine):
    study = open_study(SAMPLES / "histology_lung_adenocarcinoma_lc25000.jpg")
    calls = {"n": 0}

    def cancel() -> bool:
        calls["n"] += 1
        return calls["n"] > 3  # lets the first steps run, then asks to stop

    seen: list[str] = []
    with pytest.raises(AnalysisCancelled):
        engine.analyze(study, "histo-lc25000", ["gradcam"], on_progress=lambda f, m: seen.append(m), cancel=cancel)
    assert 0 < len(seen) < 8  # it stopped part-way, not before starting and not at the end


def test_models_load_once_and_missing_pairs_are_typed_errors(engine, registry):
    t1, s1 = engine.load_pair("histo-lc25000")
    t2, s2 = engine.load_pair(registry.pair("histo-lc25000"))
    assert t1 is t2 and s1 is s2
    with pytest.raises(ModelUnavailableError, match="No teacher model"):
        engine.analyze(open_study(SAMPLES / "histology_lung_adenocarcinoma_lc25000.jpg"), "skin-ham10000")


def test_an_empty_heatmap_is_reported_not_silently_drawn(tmp_path):
    card = write_model(tmp_path, "histo-lc25000", "teacher", "timm:resnet10t", {}, HISTO, RGB64)
    write_model(tmp_path, "histo-lc25000", "student", "cnn5", SMALL_CNN5, HISTO, RGB64)
    student = tmp_path / "histo-lc25000" / "student.safetensors"
    from safetensors.torch import load_file

    state = load_file(student)
    state["head.weight"].zero_()  # a head that ignores the image: no pixel can raise any class score
    state["head.bias"].zero_()
    registry = ModelRegistry([tmp_path])
    student_card = registry.card("histo-lc25000", "student")
    student_card.sha256 = save_state(state, student)
    student_card.save(student_card.path)
    registry.refresh()
    a = Engine(registry, "cpu").analyze(open_study(SAMPLES / "histology_lung_adenocarcinoma_lc25000.jpg"),
                                        "histo-lc25000", ["gradcam"])
    np.testing.assert_allclose(a.student.probabilities, 1 / len(HISTO), atol=1e-6)
    assert a.student.heatmaps["gradcam"].empty
    assert any(w.startswith("The student's gradcam map is empty") for w in a.warnings)
    assert card.id == a.teacher.card_id


def save_state(state, path):
    from safetensors.torch import save_file

    from medkd_desktop.models.weights import sha256_file

    save_file(state, str(path))
    return sha256_file(path)


def _lc25000_field(tmp_path, size=(3000, 4000), tile=768):
    """A 4000 x 3000 H&E field of real LC25000 tiles, each at the 768 px scale it was cut at."""
    manifest = shared_path("histo-lc25000", "manifest.csv")
    rows = [line.split(",")[0] for line in manifest.read_text().splitlines()[1:]]
    lung = [r for r in rows if r.startswith("images/lung_aca/")][:24]
    h, w = size
    field = Image.new("RGB", (w, h), "white")
    for i, rel in enumerate(lung):
        r, c = divmod(i, 6)
        img = Image.open(manifest.parent / rel).convert("RGB").resize((tile, tile), Image.Resampling.BICUBIC)
        field.paste(img, (c * tile, r * tile))
    path = tmp_path / "field.jpg"
    field.save(path, quality=90)
    return path


def test_tiled_field_analyses_every_tile_into_a_full_field_heatmap(engine, registry, tmp_path):
    study = open_study(_lc25000_field(tmp_path))
    assert study.kind is StudyKind.TILED_IMAGE and study.tiles is not None
    grid = study.tiles
    assert (grid.n_rows, grid.n_cols) == (4, 6)
    a = engine.analyze(study, "histo-lc25000", ["layercam"])
    check_analysis(a, ("layercam",))
    assert a.n_tiles == 24 and a.image.shape == (3000, 4000, 3)
    card = registry.card("histo-lc25000", "teacher")
    model = registry.load(card, "cpu")
    image = study.frame().display()
    x = torch.stack([preprocess(grid.tile(image, r, c), card.input) for r in range(4) for c in range(6)])
    with torch.no_grad():
        tile_probs = torch.softmax(model(x), 1).numpy()
    np.testing.assert_allclose(a.teacher.probabilities, tile_probs.mean(0), atol=1e-5)  # field = mean of tiles
    placed = a.teacher.heatmaps["layercam"]
    assert max(placed.map.shape) <= 2048 < max(a.image.shape)  # a mosaic at the models' resolution, not 12 Mpx
    heat = placed.on_grid()
    for y0, x0, y1, x1 in grid.boxes:  # every tile was explained
        assert heat[y0:y1, x0:x1].max() > 0
    # The top-left tile (no overlap) holds that tile's own map of the field's class, scaled by its probability.
    cls = a.teacher.predicted_index
    own = explain(model, x[0], "layercam", target=cls, card=card).to_frame((768, 768), card.input).map
    np.testing.assert_allclose(heat[:700, :700], own[:700, :700] * tile_probs[0, cls], atol=3e-3)
    assert a.teacher.feature_maps[0][1].shape[1] > a.teacher.feature_maps[0][1].shape[0]  # strip is the field, 4:3


def test_a_card_temperature_scales_the_logits_before_the_softmax(tmp_path):
    """Guo et al. 2017: the window, reports and JSON show softmax(logits / T); the plain softmax
    stays in the result for the JSON. A card without calibration is tested above (T = 1)."""
    t = 2.5
    for role, seed in (("teacher", 0), ("student", 1)):
        card = write_model(tmp_path, "brain-tumor-mri", role, "cnn5", SMALL_CNN5, MRI, GREY1, seed=seed)
        if role == "student":
            card.calibration = {"temperature": t, "fitted_on": "val", "n": 1}
            card.save(card.path)
    registry = ModelRegistry([tmp_path])
    study = open_study(SAMPLES / "chest_xray_cr_pa_nema.dcm")
    a = Engine(registry, "cpu").analyze(study, "brain-tumor-mri", [], strip=False)
    card = registry.card("brain-tumor-mri", "student")
    with torch.no_grad():
        logits = registry.load(card, "cpu")(preprocess(study.frame().display(), card.input)[None])[0]
    np.testing.assert_allclose(a.student.probabilities, torch.softmax(logits / t, 0).numpy(), atol=1e-5)
    np.testing.assert_allclose(a.student.probabilities_uncalibrated, torch.softmax(logits, 0).numpy(), atol=1e-5)
    assert a.student.calibrated and a.student.temperature == t
    assert not a.teacher.calibrated and a.teacher.temperature == 1.0
    np.testing.assert_allclose(a.teacher.probabilities, a.teacher.probabilities_uncalibrated)
    d = a.to_dict()
    assert d["student"]["calibrated"] is True and d["teacher"]["calibrated"] is False
    assert set(d["student"]["probabilities_uncalibrated"]) == set(MRI)
