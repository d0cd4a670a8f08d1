#!/usr/bin/env python
"""Write docs/PACS.md: how fast MedKD retrieves a 150-image series from a PACS, and how to point it at one.

Why a measured page: "retrieval is fast enough" is only a claim until it is compared with what the
PACS itself and the reference DICOM toolkit achieve on the same series, on the same machine, in the
same run. This starts a throwaway Orthanc on loopback the way the tests do (tests/orthanc_server.py:
own config, free ports, temporary storage), builds 150-file series by copying real DICOM files with
new UIDs (pydicom), uploads them, and times, interleaved round by round (bench.timing):

- MedKD's C-GET (``DimseClient.retrieve``: IMAGE-level listing, then C-GET, files into a folder);
- MedKD's C-MOVE (our short-lived storage SCP) and DICOMweb WADO-RS (``DicomWebClient.retrieve``);
- Orthanc's own REST archive download of the series (``GET /series/{id}/archive``, a zip to disk);
- DCMTK's ``getscu`` when installed (a process per retrieval, as a user runs it).

Orthanc's DICOM stack (DCMTK) keeps Nagle's algorithm on unless ``TCP_NODELAY=1`` is in its
environment; every DIMSE request-response then waits for the peer's delayed ACK (~40 ms). Both
server settings are measured, since a hospital PACS may run either way.

Usage: ``.venv/bin/python scripts/bench_pacs.py [--repeat 5] [--json-only]`` (raw JSON in docs/bench/pacs.json).
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # the Orthanc launcher the tests use

from medkd_desktop.bench.timing import CpuSteal, time_interleaved  # noqa: E402
from medkd_desktop.pacs import DicomWebClient, DimseClient, PacsSettings  # noqa: E402
from orthanc_server import OUR_AET, OrthancUnavailable, copy_as_new_series, start_orthanc  # noqa: E402
from testdata import SHARED_DATA  # noqa: E402

N_FILES = 150
#: Real files copied into 150-file series: a tiny MR slice (per-instance overhead dominates) and
#: a full 512 x 512 CT slice (bytes dominate: 150 of them are about a CT series' size).
SOURCES = {
    "MR 64x64 (10 KB/file)": SHARED_DATA / "dicom/misc/single/pydicom_MR_small.dcm",
    "CT 512x512 (514 KB/file)": SHARED_DATA / "dicom/misc/single/dwv_dicompyler-ct.0.dcm",
}


def getscu_command(orthanc, study_uid: str, series_uid: str, out: Path) -> list[str] | None:
    binary = shutil.which("getscu")
    if binary is None:
        return None
    return [binary, "-aet", OUR_AET, "-aec", "ORTHANC", "-S", "-k", "QueryRetrieveLevel=SERIES",
            "-k", f"StudyInstanceUID={study_uid}", "-k", f"SeriesInstanceUID={series_uid}", "-od", str(out),
            "127.0.0.1", str(orthanc.dicom_port)]


def bench_server(nodelay: bool, repeat: int, work: Path) -> dict[str, Any]:
    orthanc = start_orthanc(work / ("orthanc-nodelay" if nodelay else "orthanc-default"), nodelay=nodelay)
    try:
        series = {}
        for label, source in SOURCES.items():
            files = copy_as_new_series(source, work / "series" / label.split()[0], N_FILES)
            for f in files:
                orthanc.upload(f)
            import pydicom

            ds = pydicom.dcmread(files[0], stop_before_pixels=True)
            series[label] = (str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID),
                             sum(f.stat().st_size for f in files))
        settings = PacsSettings(ae_title=OUR_AET, idle_timeout=60, total_timeout=None, move_port=orthanc.move_port,
                                move_bind="127.0.0.1")
        dimse = DimseClient(orthanc.server(), settings)
        web = DicomWebClient(orthanc.dicomweb_server(), settings) if orthanc.has_dicomweb else None
        results: dict[str, Any] = {"tcp_nodelay": nodelay, "series": {}}
        # getscu is DCMTK too: the same Nagle setting as the server (MedKD sets TCP_NODELAY on its sockets).
        dcmtk_env = {**os.environ, "TCP_NODELAY": "1"} if nodelay else {
            k: v for k, v in os.environ.items() if k != "TCP_NODELAY"}
        counter = iter(range(10 ** 6))

        def fresh(kind: str) -> Path:
            path = work / "out" / f"{kind}-{next(counter)}"
            path.mkdir(parents=True)
            return path

        for label, (study_uid, series_uid, nbytes) in series.items():
            orthanc_id = orthanc.lookup(series_uid)

            def medkd_get() -> None:
                r = dimse.retrieve(study_uid, series_uid, dest=fresh("get"))
                assert r.complete and r.received == N_FILES, r.problem

            def medkd_move() -> None:
                r = dimse.retrieve(study_uid, series_uid, method="move", dest=fresh("move"))
                assert r.complete and r.received == N_FILES, r.problem

            def medkd_wado() -> None:
                r = web.retrieve(study_uid, series_uid, dest=fresh("wado"))
                assert r.complete and r.received == N_FILES, r.problem

            def rest_archive() -> None:
                data = orthanc.rest("GET", f"/series/{orthanc_id}/archive", raw=True)
                (fresh("zip") / "series.zip").write_bytes(data)

            fns = {"medkd_cget": medkd_get, "orthanc_rest_archive": rest_archive, "medkd_cmove": medkd_move}
            if web is not None:
                fns["medkd_wado_rs"] = medkd_wado
            if getscu_command(orthanc, study_uid, series_uid, work) is not None:
                def getscu() -> None:
                    out = fresh("getscu")
                    subprocess.run(getscu_command(orthanc, study_uid, series_uid, out), check=True,
                                   capture_output=True, timeout=300, env=dcmtk_env)
                    assert len(list(out.iterdir())) == N_FILES
                fns["dcmtk_getscu"] = getscu
            timings = time_interleaved(fns, repeat=repeat, warmup=1)
            shutil.rmtree(work / "out", ignore_errors=True)
            get_ms = timings["medkd_cget"]["median_ms"]
            results["series"][label] = {
                "files": N_FILES, "bytes": nbytes, "timings": timings,
                "ratio_cget_to_rest_archive": round(get_ms / timings["orthanc_rest_archive"]["median_ms"], 2),
                "ratio_cget_to_getscu": (round(get_ms / timings["dcmtk_getscu"]["median_ms"], 2)
                                         if "dcmtk_getscu" in timings else None),
            }
        return results
    finally:
        orthanc.stop()


LABELS = {"medkd_cget": "MedKD C-GET", "orthanc_rest_archive": "Orthanc REST archive (zip)",
          "dcmtk_getscu": "DCMTK getscu", "medkd_cmove": "MedKD C-MOVE", "medkd_wado_rs": "MedKD WADO-RS"}

HOWTO = """\
## How to point MedKD at a PACS

MedKD talks to a PACS in one of two ways; the PACS administrator says which.

**Classic DICOM (DIMSE).** You need the PACS's **AE title**, **host** (name or IP address) and
**port**, written as `AET@HOST:PORT` (for example `PACS@10.0.0.5:104`). MedKD introduces itself
with its own AE title, `MEDKD` by default (`--aet` on the command line). Ask the administrator to:

1. register MedKD's AE title (and this computer's address) on the PACS, allowing query (C-FIND)
   and retrieve (C-GET); many PACS refuse unknown AE titles;
2. if the PACS cannot send by C-GET (some only "move"), also register MedKD as a **C-MOVE
   destination**: AE title `MEDKD`, this computer's IP address, and a receiving port (11112 by
   default, `--port`); that port must be reachable from the PACS (firewall). MedKD listens on it
   only while a retrieval runs;
3. allow storage (C-STORE) from MedKD if the overlays (DICOM Secondary Capture) should go back
   into the patient's study.

**DICOMweb.** You need the service's base URL, usually ending in `/dicom-web`
(for example `https://pacs.hospital.org/dicom-web`). MedKD searches with QIDO-RS, retrieves with
WADO-RS (files as stored) and stores with STOW-RS.

**Check the connection** before anything else: `medkd pacs echo --server PACS@10.0.0.5:104`. When
it fails the message names the setting to fix:

| message says | likely fix |
|---|---|
| "does not answer to the AE title 'X'" | the PACS's AE title is wrong (it is case-sensitive) |
| "does not know MedKD's AE title" / "rejected the connection" | the administrator must register MedKD's AE title |
| "refused the connection" | wrong port, or the PACS's DICOM service is not running |
| "host name could not be found" | typo in the host name; try the IP address |
| "did not answer within N s" | PACS down, unreachable (network, firewall), or the address is not a DICOM service |
| "could not send the images to MedKD's AE title" | C-MOVE: MedKD is not registered as a destination, or the PACS cannot reach its port |
| "could not listen for images on port N" | C-MOVE: another program uses the receiving port; pick another and tell the administrator |

Then search and retrieve:

```
medkd pacs find --server PACS@10.0.0.5:104 --patient-id 12345 --date 20240101-20240331 --modality CR
medkd pacs get  --server PACS@10.0.0.5:104 --study-uid 1.2.840... --out ~/pacs      # C-GET
medkd pacs get  --server PACS@10.0.0.5:104 --study-uid 1.2.840... --move --port 11112  # C-MOVE
medkd info ~/pacs/1.2.840...                                                          # opens like any folder
medkd analyze ~/pacs/1.2.840... --out report/ --send-to PACS@10.0.0.5:104             # overlay back to the PACS
```

Without `--out`, studies go to the per-user cache (`~/.cache/medkd-desktop/pacs` on Linux), one
folder per study and series: `<StudyInstanceUID>/<SeriesInstanceUID>/<SOPInstanceUID>.dcm`.
Reports, presentation states and key-object selections (no pixel data) are kept in
`<study>/non-image/`. A retrieval that the PACS cuts short says how many instances arrived and
which are missing (`--json`: `missing`, exit status 3). `find` prints patient names and IDs: that is
its purpose; they never appear in MedKD's log or error messages.

Time-outs: `--timeout` (default 30 s) is how long MedKD waits for any answer; `--total-timeout`
(default 3600 s) bounds a whole command. In the window, every PACS operation can be cancelled.
"""


def how_to_read(result: dict[str, Any]) -> str:
    """The prose under the tables, with its figures taken from *result*."""
    by_mode = {s["tcp_nodelay"]: s["series"] for s in result["servers"]}
    fast, slow = by_mode.get(True), by_mode.get(False)
    small = next(iter(SOURCES))

    def per_file(series: dict[str, Any], tool: str) -> str:
        t = series[small]["timings"].get(tool)
        return "–" if t is None else f"{t['median_ms'] / N_FILES:.1f} ms"

    text = ("How to read it: a ratio above 1 means MedKD's C-GET took longer than the other tool. Over DIMSE every "
            "instance is one C-STORE request and response on the association. ")
    if fast:
        text += (f"With Nagle's algorithm off, the small-file series shows the per-instance cost: {per_file(fast, 'medkd_cget')} "
                 f"per instance for MedKD's C-GET against {per_file(fast, 'dcmtk_getscu')} for DCMTK's getscu (C++). "
                 "MedKD's cost is pynetdicom's (Python threads that hand each PDU over through queues and 1 ms polling "
                 "loops, the sub-operation decoded into a dataset) plus writing each file atomically and reporting it "
                 "to the caller's thread; MedKD's WADO-RS over the same server is faster than its C-GET, since one "
                 "HTTP stream carries all instances. ")
    if slow:
        text += (f"With Nagle's algorithm on (Orthanc as packaged), each instance waits for a delayed ACK: "
                 f"{per_file(slow, 'medkd_cget')} per instance for MedKD, {per_file(slow, 'dcmtk_getscu')} for getscu, "
                 "which keeps Nagle on at its own end too (MedKD sets TCP_NODELAY on its sockets). Large images "
                 "hide this, as the data keeps the ACKs flowing. ")
    text += ("Orthanc's REST archive is one request answered with one zip stream: unbeatable for many tiny files, "
             "slower for large ones because Orthanc deflates the zip; it is Orthanc's own API, which a hospital PACS "
             "does not offer. For a PACS that runs with Nagle on, ask its administrator about TCP_NODELAY (DCMTK-based "
             "servers read it from their environment).")
    return text


def render(result: dict[str, Any]) -> str:
    lines = ["# PACS: retrieval speed, and how to point MedKD at a PACS", "",
             f"_Generated by `scripts/bench_pacs.py` on {result['date']} ({result['machine']}); raw JSON in "
             f"`docs/bench/pacs.json`. CPU steal during the run: {result['cpu_steal_pct']}%._", "",
             "## Retrieving a 150-image series on loopback", "",
             f"Orthanc {result['orthanc_version']} (Debian package, on this machine, loopback), "
             f"{N_FILES}-file series made by copying one real DICOM file with new UIDs; each retrieval writes into "
             f"a fresh folder. Medians of {result['repeat']} rounds, the tools interleaved round by round (one "
             "warm-up round). MedKD's figures include its IMAGE-level listing (a C-FIND / QIDO-RS before the "
             "transfer) and two associations; getscu's include starting the process; the REST archive is one "
             "HTTP request answered with a zip, written to disk as it came (not extracted).", ""]
    for server in result["servers"]:
        mode = ("with `TCP_NODELAY=1` in Orthanc's environment (Nagle off)" if server["tcp_nodelay"]
                else "as the package runs it (DCMTK's default: Nagle's algorithm on)")
        lines += [f"### Orthanc {mode}", ""]
        tools = list(next(iter(server["series"].values()))["timings"])
        lines += ["| series | " + " | ".join(LABELS[t] for t in tools) + " | C-GET / REST archive | C-GET / getscu |",
                  "|---|" + "---|" * (len(tools) + 2)]
        for label, s in server["series"].items():
            cells = [f"{s['timings'][t]['median_ms'] / 1000:.2f} s" for t in tools]
            getscu = s["ratio_cget_to_getscu"]
            lines.append(f"| {label}, {s['bytes'] / 1e6:.1f} MB | " + " | ".join(cells) +
                         f" | {s['ratio_cget_to_rest_archive']:.2f}× | {'–' if getscu is None else f'{getscu:.2f}×'} |")
        lines.append("")
    lines += how_to_read(result), ""
    lines += window_section()
    return "\n".join(lines) + "\n" + HOWTO


def window_section() -> list[str]:
    """"Retrieve" to both overlays in the review window, from scripts/bench_pacs_window.py's JSON."""
    path = ROOT / "docs" / "bench" / "pacs_window.json"
    if not path.is_file():
        return []
    w = json.loads(path.read_text())
    rows = [f"| {key.replace('_', ' ')} | {ms:.0f} ms | ≤ {w['targets_ms'][key]} ms | "
            f"{'met' if ms <= w['targets_ms'][key] else '**NOT met**'} | {', '.join(f'{r:.0f}' for r in w['runs_ms'][key])} |"
            for key, ms in w["retrieve_to_overlays_ms"].items()]
    return ["## From \"Retrieve\" to both overlays in the window", "",
            "`scripts/bench_pacs_window.py`: the offscreen review window with the bundled models, File ▸ Open from PACS… "
            "against a throwaway Orthanc on loopback (Nagle off), driven as a user would: search, select the study, "
            "\"Retrieve and open\"; timed until the teacher's and the student's overlays are applied, each run into an "
            f"empty cache; median of {w['repeat']} runs, {w['cpu_count']} cores, CPU steal {w['cpu_steal_pct']}%. "
            "The radiograph is the real CR chest film (cxr-covid pair); the series is 150 copies of a real 64 × 64 MR "
            "slice (brain-tumor-mri pair, the middle slice analysed). The first run of each also loads that pair's "
            "models (seconds); the median is what a radiologist waits once the window has been used.", "",
            "| study | median | target | verdict | runs (ms) |", "|---|---|---|---|---|", *rows, "",
            "![The PACS dialog](screenshots/pacs-dialog.png)", ""]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json-only", action="store_true", help="print the JSON, write no files")
    parser.add_argument("--from-json", action="store_true", help="re-render docs/PACS.md from docs/bench/pacs.json")
    args = parser.parse_args()
    if args.from_json:
        (ROOT / "docs" / "PACS.md").write_text(render(json.loads((ROOT / "docs" / "bench" / "pacs.json").read_text())))
        return 0
    missing = [p for p in SOURCES.values() if not p.is_file()]
    if missing:
        print(f"error: real data not found: {missing[0]} (set MEDKD_SHARED_DATA)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="medkd-bench-pacs-") as tmp, CpuSteal() as steal:
        try:
            servers = [bench_server(nodelay, args.repeat if nodelay else max(2, args.repeat // 2), Path(tmp))
                       for nodelay in (True, False)]
        except OrthancUnavailable as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    version = subprocess.run([shutil.which("Orthanc") or "/usr/sbin/Orthanc", "--version"], capture_output=True,
                             text=True).stdout.split("\n")[0].split()[-1]
    result = {"date": dt.date.today().isoformat(), "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
              "cpu_steal_pct": steal.pct, "repeat": args.repeat, "orthanc_version": version,
              "getscu": shutil.which("getscu") is not None, "servers": servers}
    if args.json_only:
        print(json.dumps(result, indent=2))
        return 0
    (ROOT / "docs" / "bench").mkdir(parents=True, exist_ok=True)
    (ROOT / "docs" / "bench" / "pacs.json").write_text(json.dumps(result, indent=2) + "\n")
    (ROOT / "docs" / "PACS.md").write_text(render(result))
    print(render(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
