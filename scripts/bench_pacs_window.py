#!/usr/bin/env python
"""Time "Retrieve" to both overlays in the review window, from a live Orthanc, and shoot the dialog.

Why a script of its own: it needs the real window, the bundled models and a PACS; it starts a
throwaway Orthanc on loopback as the tests do (tests/orthanc_server.py), uploads the real CR chest
radiograph and a 150-image MR series (copies of a real slice with new UIDs), then, in an offscreen
window with the bundled models, drives File ▸ Open from PACS… as a user would: search, select,
"Retrieve and open", and measures until both overlays are applied (median of --repeat runs, each
into an empty cache). Writes docs/bench/pacs_window.json and docs/screenshots/pacs-dialog.png.

Usage: ``.venv/bin/python scripts/bench_pacs_window.py [--repeat 3]``, then
``.venv/bin/python scripts/bench_pacs.py --from-json`` to render docs/PACS.md with it.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # the Orthanc launcher the tests use

from orthanc_server import SHARED_DATA, copy_as_new_series, start_orthanc  # noqa: E402
from PySide6.QtCore import QEventLoop, QTimer  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from medkd_desktop.bench.timing import CpuSteal  # noqa: E402
from medkd_desktop.ui.main_window import MainWindow  # noqa: E402
from medkd_desktop.ui.settings import Settings  # noqa: E402

N_SERIES = 150


def wait(signal, timeout_s: float = 300.0) -> list:
    """Run the event loop until *signal* fires; its arguments."""
    loop, got = QEventLoop(), []

    def on(*args):
        got.append(args)
        loop.quit()

    signal.connect(on)
    QTimer.singleShot(int(timeout_s * 1000), loop.quit)
    loop.exec()
    signal.disconnect(on)
    if not got:
        raise TimeoutError("no answer in time")
    return list(got[0])


def retrieve_to_overlays(window, dialog, patient_id: str) -> float:
    """Search *patient_id*, select its study and time Retrieve -> both overlays applied (ms)."""
    dialog.patient_id_edit.setText(patient_id)
    dialog.search_button.click()
    wait(dialog.finished_call)
    dialog.study_table.selectRow(0)
    wait(dialog.finished_call)  # the series listing
    t0 = time.perf_counter()
    dialog.retrieve_button.click()
    wait(window.analysis_applied)
    return (time.perf_counter() - t0) * 1000.0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    app = QApplication.instance() or QApplication([])
    from medkd_desktop.ui.app import load_style

    load_style(app)  # the window's look, as the app starts it
    with tempfile.TemporaryDirectory(prefix="medkd-pacs-window-") as tmp_dir:
        tmp = Path(tmp_dir)
        orthanc = start_orthanc(tmp / "orthanc")
        try:
            orthanc.fill({"cr_chest": [SHARED_DATA / "dicom/chest/cr_chest_pa_siim_nih_jpeg_baseline.dcm"]})
            mr = copy_as_new_series(SHARED_DATA / "dicom/misc/single/pydicom_MR_small.dcm", tmp / "mr150", N_SERIES)
            for path in mr:
                orthanc.upload(path)
            import pydicom

            mr_patient = str(pydicom.dcmread(mr[0], stop_before_pixels=True).PatientID)
            window = MainWindow(settings=Settings(tmp / "settings.ini"), device="cpu")
            window.error_sink = lambda title, text: print(f"{title}: {text}", file=sys.stderr)
            window.show()
            wait(window.engine_ready)
            dialog = window.open_pacs_dialog()
            dialog.add_server("Radiology PACS", orthanc.address())
            runs: dict[str, list[float]] = {"cr_radiograph": [], f"mr_series_{N_SERIES}": []}
            with CpuSteal() as steal:
                for i in range(args.repeat):
                    for key, patient in (("cr_radiograph", orthanc.item("cr_chest").patient_id),
                                         (f"mr_series_{N_SERIES}", mr_patient)):
                        os.environ["XDG_CACHE_HOME"] = str(tmp / f"cache-{key}-{i}")  # an empty cache each time
                        window.open_pacs_dialog()
                        runs[key].append(round(retrieve_to_overlays(window, dialog, patient), 1))
                        print(f"{key} run {i + 1}: {runs[key][-1]:.0f} ms", file=sys.stderr)
            # The screenshot: the dialog after a search, the CR study selected, its series listed.
            window.open_pacs_dialog()
            dialog.patient_id_edit.setText("")
            dialog.search_button.click()
            wait(dialog.finished_call)
            dialog.study_table.selectRow(0)
            wait(dialog.finished_call)
            shots = ROOT / "docs" / "screenshots"
            shots.mkdir(parents=True, exist_ok=True)
            dialog.grab().save(str(shots / "pacs-dialog.png"))
            window.close()
        finally:
            orthanc.stop()
    result = {"retrieve_to_overlays_ms": {k: statistics.median(v) for k, v in runs.items()}, "runs_ms": runs,
              "targets_ms": {"cr_radiograph": 1000, f"mr_series_{N_SERIES}": 5000}, "cpu_steal_pct": steal.pct,
              "repeat": args.repeat, "device": "cpu", "cpu_count": os.cpu_count()}
    out = ROOT / "docs" / "bench" / "pacs_window.json"
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result["retrieve_to_overlays_ms"]))
    app.quit()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
