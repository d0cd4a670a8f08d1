"""`medkd-desktop --screenshot`: the headless path the docs, CI and `make run` rely on."""
from __future__ import annotations

import numpy as np
from testdata import SAMPLES
from PIL import Image

from medkd_desktop.ui.app import main


def test_screenshot_renders_the_analysed_window_at_its_default_size(qtbot, model_root, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MEDKD_MODEL_DIRS", str(model_root))
    out = tmp_path / "shot.png"
    rc = main([str(SAMPLES / "dermoscopy_melanoma_ham10000.jpg"), "--screenshot", str(out), "--device", "cpu"])
    assert rc == 0, capsys.readouterr().err
    img = np.asarray(Image.open(out).convert("RGB"))
    assert img.shape[1] >= 1280 and img.shape[0] >= 800
    # Both viewer halves show a picture (many distinct colours), not an empty dark canvas.
    left, right = img[150:650, 20:500], img[150:650, 540:1020]
    for half in (left, right):
        assert len(np.unique(half.reshape(-1, 3), axis=0)) > 500


def test_screenshot_with_faithfulness_runs_the_check_first(qtbot, model_root, tmp_path, monkeypatch, capsys):
    """``--faithfulness``: the check runs to its figures before the shot (a failed check exits 2)."""
    monkeypatch.setenv("MEDKD_MODEL_DIRS", str(model_root))
    out = tmp_path / "shot.png"
    rc = main([str(SAMPLES / "chest_xray_cr_pa_nema.dcm"), "--screenshot", str(out), "--device", "cpu",
               "--faithfulness"])
    assert rc == 0, capsys.readouterr().err
    assert out.is_file()


def test_screenshot_of_a_corrupt_file_exits_2_with_one_line(qtbot, model_root, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MEDKD_MODEL_DIRS", str(model_root))
    broken = tmp_path / "broken.dcm"
    broken.write_bytes((SAMPLES / "chest_xray_cr_pa_nema.dcm").read_bytes()[:4000])
    rc = main([str(broken), "--screenshot", str(tmp_path / "x.png")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and not (tmp_path / "x.png").exists()
    assert len([line for line in err if line.startswith("error:")]) == 1 and "Traceback" not in "\n".join(err)


def test_screenshot_needs_a_path():
    assert main(["--screenshot", "x.png"]) == 2
