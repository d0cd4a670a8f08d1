"""Where things live: the repository's resources and the shared real-data folder."""
from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_DIR = PACKAGE_DIR.parent
RESOURCES_DIR = REPO_DIR / "resources"
SAMPLES_DIR = RESOURCES_DIR / "samples"


def shared_data_dir() -> Path:
    """The real public datasets (``../shared/data`` beside the checkout), overridable by MEDKD_SHARED_DATA."""
    env = os.environ.get("MEDKD_SHARED_DATA")
    return Path(env) if env else REPO_DIR.parent / "shared" / "data"
