"""A plain ``pip install .`` carries the bundled models, samples and configs, and finds them.

Why: the repository keeps trained_models/, resources/ and configs/ at its top level, and the
package used to find them beside its own folder, which only a checkout has. An install without
them opens no study pair and fails only on a clinician's PC, so one is built and probed here.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path


from medkd_desktop import paths

REPO = Path(__file__).resolve().parents[1]
#: What the build reads; copied first, so the build's own build/ and egg-info stay out of the
#: checkout (and stale files there cannot end up in the install).
BUILD_INPUTS = ("pyproject.toml", "README.md", "medkd_desktop", "trained_models", "resources", "configs")
TASKS = ("brain-tumor-mri", "cxr-covid", "fmri-asd", "histo-lc25000", "skin-ham10000")

PROBE = r"""
import json, os, sys
sys.path.insert(0, sys.argv[1])
import medkd_desktop
from medkd_desktop import paths
from medkd_desktop.distill.config import TrainConfig
from medkd_desktop.distill.trainer import default_out_dir, resolve_bundled
from medkd_desktop.models.registry import BUNDLED_DIR, ModelRegistry, user_models_dir
from medkd_desktop.studies import open_study

registry = ModelRegistry([BUNDLED_DIR])
cards = {f"{c.task}/{c.role}": str(c.weights_path) for c in registry.cards.values()}
fmri = registry.card("fmri-asd", "baseline")
registry.load(fmri)  # its sha256 is checked: the weights arrived intact
study = open_study(paths.SAMPLES_DIR / "chest_xray_cr_pa_nema.dcm")
series = open_study(paths.SAMPLES_DIR / "mr_brain_epi_mosaic_series")
cfg = TrainConfig.from_toml(paths.CONFIGS_DIR / "fmri-asd-student.toml")
print(json.dumps({
    "package": medkd_desktop.__file__,
    "in_checkout": paths.IN_CHECKOUT,
    "default_roots": [str(r) for r in ModelRegistry().roots[:2]],
    "user_models": str(user_models_dir()),
    "cards": cards,
    "frames": [study.n_frames, series.n_frames],
    "teacher": str(resolve_bundled(cfg.teacher)),
    "teacher_exists": resolve_bundled(cfg.teacher).is_file(),
    "out_dir": str(default_out_dir(cfg.task)),
    "style": (paths.RESOURCES_DIR / "style.qss").is_file(),
    "shared_data": str(paths.shared_data_dir()),
}))
"""


def test_a_checkout_reads_the_top_level_folders():
    assert paths.IN_CHECKOUT
    assert paths.BUNDLED_MODELS_DIR == REPO / "trained_models"
    assert (paths.RESOURCES_DIR, paths.CONFIGS_DIR) == (REPO / "resources", REPO / "configs")
    assert paths.SAMPLES_DIR.is_dir()


def test_a_plain_install_finds_its_bundled_models_samples_and_configs(tmp_path):
    src, site, elsewhere = tmp_path / "src", tmp_path / "site", tmp_path / "elsewhere"
    src.mkdir()
    for name in BUILD_INPUTS:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(REPO / name, src / name)
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index",
                    "--disable-pip-version-check", "-q", "--target", str(site), str(src)],
                   check=True, capture_output=True, text=True, timeout=600)
    shutil.rmtree(src)
    installed = site / "medkd_desktop"

    # Every module of the checkout is in the install: the package list in pyproject.toml is complete.
    modules = {p.relative_to(REPO).as_posix() for p in (REPO / "medkd_desktop").rglob("*.py")}
    assert modules - {p.relative_to(site).as_posix() for p in installed.rglob("*.py")} == set()

    # A fresh interpreter outside the repository: -I drops PYTHONPATH, the user site and the
    # current folder, and the probe puts the install first, ahead of any editable checkout.
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("MEDKD_MODEL_DIRS", "MEDKD_SHARED_DATA")}
    out = subprocess.run([sys.executable, "-I", "-c", PROBE, str(site)], cwd=elsewhere, env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout.strip().splitlines()[-1])

    bundle = installed / "_bundled"
    assert Path(got["package"]).parent == installed
    assert got["in_checkout"] is False
    assert got["default_roots"][0] == str(bundle / "trained_models")
    assert sorted(got["cards"]) == sorted(f"{t}/{r}" for t in TASKS for r in ("baseline", "student", "teacher"))
    assert all(Path(w).is_file() and Path(w).is_relative_to(bundle) for w in got["cards"].values())
    assert got["frames"][0] >= 1 and got["frames"][1] >= 1
    assert got["teacher_exists"] and Path(got["teacher"]).is_relative_to(bundle)
    assert got["out_dir"].startswith(got["user_models"])  # new models never go into site-packages
    assert got["style"]
    assert got["shared_data"] == str(tmp_path / "shared" / "data")
