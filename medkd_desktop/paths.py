"""Where things live: the bundled models, configs and resources, and the shared real-data folder.

Why two places for the bundled folders: the repository keeps ``trained_models/``,
``resources/`` and ``configs/`` at its top level, where a checkout (or an editable install
of one) reads them. A plain ``pip install .`` has no repository beside the package, so
pyproject.toml maps those folders into it as package data, ``medkd_desktop/_bundled/<name>``.
The installed copy is looked for first; a checkout never has one. The lookup uses the
package's own folder rather than ``importlib.resources`` because every caller needs real
paths (weights are memory-mapped, cards globbed, samples handed to readers and subprocesses).
"""
from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
#: The folder holding the package: the repository in a checkout or an editable install,
#: site-packages (or a ``--target`` folder) in a plain install. A subprocess started there
#: imports this very copy of the package.
REPO_DIR = PACKAGE_DIR.parent
_INSTALLED_BUNDLE = PACKAGE_DIR / "_bundled"
#: Running from a source checkout: the bundled folders are the repository's own, so the
#: trainer may add models to them and ``../shared/data`` sits beside the repository.
IN_CHECKOUT = not _INSTALLED_BUNDLE.is_dir()


def bundled_dir(name: str) -> Path:
    """The bundled top-level folder *name* (``trained_models``, ``resources``, ``configs``)."""
    return REPO_DIR / name if IN_CHECKOUT else _INSTALLED_BUNDLE / name


BUNDLED_MODELS_DIR = bundled_dir("trained_models")
CONFIGS_DIR = bundled_dir("configs")
RESOURCES_DIR = bundled_dir("resources")
SAMPLES_DIR = RESOURCES_DIR / "samples"


def shared_data_dir() -> Path:
    """The real public datasets: ``$MEDKD_SHARED_DATA`` if set, else ``../shared/data`` beside the
    checkout. An installed copy has no checkout to stand beside, so it takes ``../shared/data``
    from the current folder: run from a project folder next to ``shared/``, as in a checkout."""
    env = os.environ.get("MEDKD_SHARED_DATA")
    if env:
        return Path(env)
    return (REPO_DIR if IN_CHECKOUT else Path.cwd()).parent / "shared" / "data"
