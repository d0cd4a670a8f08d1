"""`make package-test`: the built bundle, tarball and .deb, run the way a hospital PC runs them.

Run by the system Python (/usr/bin/python3, standard library only), never the build venv: every
frozen executable starts with an empty environment (``PATH=/usr/bin:/bin``, a fresh ``HOME``,
nothing else: the ``env -i`` of the issue), from a neutral folder. Scenarios:

* ``offscreen``: ``medkd-desktop --selftest --json`` with Qt's offscreen platform, then the frozen
  ``medkd analyze`` on a real chest radiograph from ../shared/data (JPEG baseline DICOM), JSON checked.
* ``xcb``: the same under ``xvfb-run`` with the real X11 platform plugin, plus a screenshot of the
  frozen window on the demo study (build/package-test/frozen-xcb.png).
* ``portable``: the tarball unpacked into ``/tmp/Prüfung MedKD/`` (space, non-ASCII), made
  read-only (``chmod -R a-w``), run with the network cut (``unshare -n``, as root) and a fresh
  HOME; afterwards every file written under HOME must lie in MedKD's per-user folders.
* ``deb`` (root with dpkg only): ``dpkg -i``, the menu entry's command starts the window under
  ``xvfb-run`` (seen with xwininfo), ``dpkg -r`` leaves nothing behind.

Results (per step: ok, seconds, detail) go to build/package-test/report.json; exit 0 only if every
scenario that ran passed. ``--only offscreen,xcb`` picks scenarios.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DIST = REPO / "dist"
BUNDLE = DIST / "medkd-desktop"
OUT = REPO / "build" / "package-test"
DEMO = REPO / "resources" / "samples" / "chest_xray_cr_pa_nema.dcm"
PORTABLE_ROOT = Path("/tmp/Prüfung MedKD")
#: Folders under a fresh HOME that MedKD may write (platformdirs data, cache, state/log; Qt settings).
ALLOWED_HOME = (".local/share/medkd-desktop", ".cache/medkd-desktop", ".local/state/medkd-desktop",
                ".config/MedKD", ".config/medkd-desktop")
TIMEOUT_S = 900
#: dpkg runs its maintainer scripts and ldconfig from the sbin folders.
ROOT_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}


def shared_study() -> Path:
    data = Path(os.environ.get("MEDKD_SHARED_DATA") or REPO.parent / "shared" / "data")
    return data / "dicom" / "chest" / "cr_chest_pa_siim_nih_jpeg_baseline.dcm"


class Steps:
    def __init__(self) -> None:
        self.results: list[dict] = []

    def run(self, name: str, fn, *args) -> bool:
        t0 = time.perf_counter()
        try:
            detail, ok = fn(*args), True
        except Exception as exc:  # noqa: BLE001 - report every failure and go on with the next step
            detail, ok = f"{type(exc).__name__}: {exc}", False
        seconds = round(time.perf_counter() - t0, 1)
        self.results.append({"step": name, "ok": ok, "seconds": seconds, "detail": detail})
        print(f"{'PASS' if ok else 'FAIL'}  {name:<28} {seconds:7.1f} s  {detail}", flush=True)
        return ok


def clean_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment of a fresh login: no venv, no PYTHONPATH, no LD_LIBRARY_PATH."""
    return {"PATH": "/usr/bin:/bin", "HOME": str(home), "LANG": "C.UTF-8", **extra}


def run(cmd: list[str], env: dict[str, str], cwd: Path, timeout: int = TIMEOUT_S) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-8:]
        raise RuntimeError(f"exit {proc.returncode}: {' | '.join(tail)}")
    return proc


def xvfb(cmd: list[str]) -> list[str]:
    return ["xvfb-run", "-a", "-s", "-screen 0 1920x1080x24", *cmd]


def selftest(bundle: Path, home: Path, platform: str, wrap=lambda c: c) -> str:
    env = clean_env(home, QT_QPA_PLATFORM=platform)
    proc = run(wrap([str(bundle / "medkd-desktop"), "--selftest", "--json"]), env, home)
    report = json.loads(proc.stdout)
    failed = [f"{c['name']}: {c['detail']}" for c in report["checks"] if not c["ok"]]
    if failed or not report["ok"]:
        raise RuntimeError("; ".join(failed) or "not ok")
    if not report["frozen"]:
        raise RuntimeError("the self-test did not run frozen")
    window = next(c["detail"] for c in report["checks"] if c["name"] == "qt_window")
    if f"platform {platform}" not in window:
        raise RuntimeError(f"Qt ran on another platform: {window}")
    slow = sorted(report["checks"], key=lambda c: -c["seconds"])[:2]
    return f"{len(report['checks'])} checks passed ({window}; slowest {', '.join(c['name'] + ' ' + str(c['seconds']) + ' s' for c in slow)})"


def analyze(bundle: Path, home: Path, wrap=lambda c: c) -> str:
    study = shared_study()
    if not study.is_file():
        raise RuntimeError(f"the real study is missing: {study} (set MEDKD_SHARED_DATA)")
    out = home / "analysis out"
    proc = run(wrap([str(bundle / "medkd"), "analyze", str(study), "--out", str(out), "--json"]), clean_env(home), home)
    data = json.loads(proc.stdout)
    if data.get("task") != "cxr-covid":
        raise RuntimeError(f"task {data.get('task')!r}, expected cxr-covid")
    for role in ("teacher", "student"):
        probs = data[role]["probabilities"]
        if data[role]["predicted"] not in probs or abs(sum(probs.values()) - 1) > 1e-3:
            raise RuntimeError(f"{role}: no valid prediction")
    if data.get("errors"):
        raise RuntimeError(f"export errors: {data['errors']}")
    for kind in ("png", "pdf", "dicom", "json"):
        if not Path(data["files"][kind]).is_file():
            raise RuntimeError(f"no {kind} file")
    return (f"{data['task']}: teacher {data['teacher']['predicted']}, student {data['student']['predicted']}; "
            f"png, pdf, dicom, json written")


def screenshot(bundle: Path, home: Path, target: Path) -> str:
    target.parent.mkdir(parents=True, exist_ok=True)
    env = clean_env(home, QT_QPA_PLATFORM="xcb")
    run(xvfb([str(bundle / "medkd-desktop"), str(DEMO), "--screenshot", str(target)]), env, home)
    if not target.is_file() or target.stat().st_size < 20_000:
        raise RuntimeError("no screenshot written")
    return f"{target.relative_to(REPO)} ({target.stat().st_size // 1024} kB)"


def home_writes(home: Path, ignore: tuple[str, ...] = ()) -> str:
    """Every file the app wrote under HOME lies in MedKD's per-user folders."""
    stray = []
    count = 0
    for path in home.rglob("*"):
        if not path.is_file():
            continue
        rel = path.relative_to(home).as_posix()
        if rel.startswith(ignore):
            continue
        count += 1
        if not rel.startswith(ALLOWED_HOME):
            stray.append(rel)
    if stray:
        raise RuntimeError(f"written outside the per-user folders: {', '.join(stray[:8])}")
    return f"{count} files, all in {', '.join(sorted({'/'.join(p.split('/')[:3]) for p in ALLOWED_HOME}))}"


# ------------------------------------------------------------------------------------ scenarios


def scenario_offscreen(steps: Steps, work: Path) -> None:
    home = work / "home-offscreen"
    home.mkdir()
    steps.run("offscreen: selftest", selftest, BUNDLE, home, "offscreen")
    steps.run("offscreen: analyze", analyze, BUNDLE, home)
    steps.run("offscreen: home writes", home_writes, home, ("analysis out/",))


def scenario_xcb(steps: Steps, work: Path) -> None:
    home = work / "home-xcb"
    home.mkdir()
    steps.run("xcb: selftest", selftest, BUNDLE, home, "xcb", xvfb)
    steps.run("xcb: analyze", analyze, BUNDLE, home, xvfb)
    steps.run("xcb: screenshot", screenshot, BUNDLE, home, OUT / "frozen-xcb.png")


def _no_network() -> tuple[list[str], str]:
    if os.geteuid() == 0 and shutil.which("unshare") and subprocess.run(["unshare", "-n", "true"]).returncode == 0:
        return ["unshare", "-n"], "network cut (unshare -n)"
    return [], "network NOT cut (unshare -n needs root)"


def scenario_portable(steps: Steps, work: Path) -> None:
    tarballs = sorted(DIST.glob("medkd-desktop-*-linux-x86_64.tar.gz"))
    if not tarballs:
        steps.results.append({"step": "portable", "ok": True, "seconds": 0, "detail": "skipped: no tarball built"})
        print("SKIP  portable: no tarball in dist/")
        return
    tarball = tarballs[-1]

    def unpack() -> str:
        if PORTABLE_ROOT.exists():
            subprocess.run(["chmod", "-R", "u+w", str(PORTABLE_ROOT)], check=True)
            shutil.rmtree(PORTABLE_ROOT)
        PORTABLE_ROOT.mkdir(parents=True)
        subprocess.run(["tar", "-xzf", str(tarball), "-C", str(PORTABLE_ROOT)], check=True)
        subprocess.run(["chmod", "-R", "a-w", str(PORTABLE_ROOT)], check=True)
        return f"{tarball.name} -> {PORTABLE_ROOT}, read-only"

    if not steps.run("portable: unpack", unpack):
        return
    bundle = next(PORTABLE_ROOT.glob("medkd-desktop-*"))
    home = work / "home-portable Ä"
    home.mkdir()
    prefix, note = _no_network()
    wrap = lambda c: [*prefix, *c]  # noqa: E731
    try:
        steps.run(f"portable: selftest ({note})", selftest, bundle, home, "offscreen", wrap)
        steps.run("portable: analyze", analyze, bundle, home, wrap)
        steps.run("portable: home writes", home_writes, home, ("analysis out/",))
    finally:
        subprocess.run(["chmod", "-R", "u+w", str(PORTABLE_ROOT)], check=False)
        shutil.rmtree(PORTABLE_ROOT, ignore_errors=True)


def scenario_deb(steps: Steps, work: Path) -> None:
    debs = sorted(DIST.glob("medkd-desktop_*_amd64.deb"))
    if os.geteuid() != 0 or not shutil.which("dpkg") or not debs:
        why = "no .deb built" if not debs else "needs root and dpkg"
        steps.results.append({"step": "deb", "ok": True, "seconds": 0, "detail": f"skipped: {why}"})
        print(f"SKIP  deb: {why}")
        return
    deb = debs[-1]
    desktop = Path("/usr/share/applications/medkd-desktop.desktop")

    def install() -> str:
        run(["dpkg", "-i", str(deb)], ROOT_ENV, work)
        if not Path("/opt/medkd-desktop/medkd-desktop").is_file() or not desktop.is_file():
            raise RuntimeError("installed files missing")
        mime = subprocess.run(["grep", "-rl", "application/x-nifti", "/usr/share/mime/application/"],
                              capture_output=True, text=True).stdout.strip()
        return f"{deb.name} installed; MIME database knows application/x-nifti: {bool(mime)}"

    def menu_entry() -> str:
        fields = dict(line.split("=", 1) for line in desktop.read_text().splitlines() if "=" in line)
        cmd = fields["Exec"].replace("%f", f"'{DEMO}'")
        home = work / "home-deb"
        home.mkdir(exist_ok=True)
        # The main window: WM_CLASS ("medkd-desktop" "MedKD Desktop"), as the .desktop file's
        # StartupWMClass says, and a real size (Qt's 1x1 leader window has the title but no class).
        main = "'\\(\"medkd-desktop\" \"MedKD Desktop\"\\) +[0-9]{3,}x[0-9]{3,}'"
        script = (f"{cmd} & pid=$!; for i in $(seq 180); do "
                  f"if xwininfo -root -tree | grep -Eq {main}; then "
                  f"xwininfo -root -tree | grep -Em1 {main}; kill $pid; wait $pid; exit 0; fi; "
                  "kill -0 $pid 2>/dev/null || exit 3; sleep 1; done; kill $pid; exit 4")
        proc = run(xvfb(["sh", "-c", script]), clean_env(home, QT_QPA_PLATFORM="xcb"), home)
        return f"Exec={fields['Exec']}: window mapped: {proc.stdout.strip()[:120]}"

    def remove() -> str:
        run(["dpkg", "-r", "medkd-desktop"], ROOT_ENV, work)
        left = [p for p in (Path("/opt/medkd-desktop"), desktop, Path("/usr/bin/medkd"),
                            Path("/usr/share/mime/packages/medkd-desktop.xml")) if p.exists() or p.is_symlink()]
        if left:
            raise RuntimeError(f"left behind: {', '.join(map(str, left))}")
        # dpkg keeps a removed package that has maintainer scripts as "config-files" until purged
        run(["dpkg", "--purge", "medkd-desktop"], ROOT_ENV, work)
        if subprocess.run(["dpkg-query", "-W", "medkd-desktop"], capture_output=True).returncode == 0:
            raise RuntimeError("dpkg still lists medkd-desktop after --purge")
        return ("removed: /opt/medkd-desktop, menu entry, MIME types and /usr/bin links are gone; "
                "purged from dpkg's database")

    def upgrade() -> str:
        """A newer version over the installed one (dpkg's upgrade path: the old postrm, the new
        postinst), and the upgraded app runs. The newer .deb is the same bundle, uncompressed."""
        version = subprocess.run(["dpkg-deb", "-f", str(deb), "Version"], capture_output=True, text=True,
                                 check=True).stdout.strip()
        newer = work / f"medkd-desktop_{version}+upgradetest_amd64.deb"
        run([str(REPO / "packaging" / "deb" / "build_deb.sh"), str(BUNDLE), f"{version}+upgradetest", str(newer), "0"],
            ROOT_ENV, work)
        try:
            run(["dpkg", "-i", str(newer)], ROOT_ENV, work)
        finally:
            newer.unlink(missing_ok=True)
        installed = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", "medkd-desktop"], capture_output=True,
                                   text=True).stdout
        if installed != f"{version}+upgradetest":
            raise RuntimeError(f"installed version {installed!r} after the upgrade")
        proc = run(["/opt/medkd-desktop/medkd", "info", str(DEMO), "--json"], clean_env(work), work)
        return f"{version} -> {installed}; the upgraded medkd runs ({json.loads(proc.stdout)['modality']})"

    if steps.run("deb: dpkg -i", install):
        steps.run("deb: menu entry starts window", menu_entry)
        steps.run("deb: upgrade", upgrade)
        steps.run("deb: dpkg -r, --purge", remove)


SCENARIOS = {"offscreen": scenario_offscreen, "xcb": scenario_xcb, "portable": scenario_portable, "deb": scenario_deb}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help=f"comma-separated scenarios (default all: {','.join(SCENARIOS)})")
    args = parser.parse_args()
    if not (BUNDLE / "medkd-desktop").is_file():
        print(f"error: no bundle at {BUNDLE}: run make package first", file=sys.stderr)
        return 2
    names = args.only.split(",") if args.only else list(SCENARIOS)
    OUT.mkdir(parents=True, exist_ok=True)
    steps = Steps()
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="medkd-package-test-") as tmp:
        for name in names:
            SCENARIOS[name](steps, Path(tmp))
    total = round(time.perf_counter() - t0, 1)
    ok = all(r["ok"] for r in steps.results)
    (OUT / "report.json").write_text(json.dumps({"ok": ok, "seconds": total, "steps": steps.results}, indent=2,
                                                ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"{'package-test passed' if ok else 'package-test FAILED'} in {total} s; {OUT.relative_to(REPO)}/report.json")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
