"""The installer pieces that can be checked without the multi-GB build: the .deb's layout and
control file (on a dummy bundle), the menu entry and MIME types, the NSIS script (compiled by
Linux's makensis on a dummy payload), and the frozen entry script's dispatch.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGING = REPO / "packaging"
DESKTOP = PACKAGING / "deb" / "medkd-desktop.desktop"
MIME = PACKAGING / "deb" / "medkd-desktop-mime.xml"


def desktop_fields() -> dict[str, str]:
    return dict(line.split("=", 1) for line in DESKTOP.read_text().splitlines() if "=" in line)


def test_menu_entry_starts_the_installed_window_and_opens_studies():
    fields = desktop_fields()
    assert fields["Exec"].split()[0] == "/opt/medkd-desktop/medkd-desktop"
    assert "%f" in fields["Exec"] and fields["Terminal"] == "false" and fields["Icon"] == "medkd-desktop"
    declared = {t.get("type") for t in ET.parse(MIME).getroot()}
    assert set(filter(None, fields["MimeType"].split(";"))) == declared == {"application/dicom", "application/x-nifti"}
    globs = {g.get("pattern") for t in ET.parse(MIME).getroot() for g in t if g.tag.endswith("glob")}
    assert {"*.dcm", "*.nii.gz"} <= globs


@pytest.mark.skipif(not shutil.which("desktop-file-validate"), reason="desktop-file-validate not installed "
                    "(apt-get install desktop-file-utils)")
def test_menu_entry_is_valid():
    proc = subprocess.run(["desktop-file-validate", str(DESKTOP)], capture_output=True, text=True)
    assert proc.returncode == 0 and not proc.stdout.strip(), proc.stdout


@pytest.mark.skipif(not shutil.which("dpkg-deb"), reason="dpkg-deb not installed (Debian tools)")
def test_deb_layout_on_a_dummy_bundle(tmp_path):
    bundle = tmp_path / "medkd-desktop"
    (bundle / "_internal").mkdir(parents=True)
    for exe in ("medkd-desktop", "medkd"):
        (bundle / exe).write_text("#!/bin/sh\necho dummy\n")
        (bundle / exe).chmod(0o755)
    deb = tmp_path / "out" / "medkd-desktop_9.9.9_amd64.deb"
    deb.parent.mkdir()
    subprocess.run([str(PACKAGING / "deb" / "build_deb.sh"), str(bundle), "9.9.9", str(deb), "1"], check=True,
                   capture_output=True)
    info = subprocess.run(["dpkg-deb", "-f", str(deb)], capture_output=True, text=True, check=True).stdout
    assert "Package: medkd-desktop" in info and "Version: 9.9.9" in info and "Architecture: amd64" in info
    assert "libxcb-cursor0" in info and "@VERSION@" not in info and "@DEPENDS@" not in info
    files = subprocess.run(["dpkg-deb", "-c", str(deb)], capture_output=True, text=True, check=True).stdout
    for path in ("./opt/medkd-desktop/medkd-desktop", "./opt/medkd-desktop/medkd",
                 "./usr/share/applications/medkd-desktop.desktop", "./usr/share/mime/packages/medkd-desktop.xml",
                 "./usr/share/icons/hicolor/256x256/apps/medkd-desktop.png", "./usr/bin/medkd -> /opt/medkd-desktop/medkd"):
        assert path in files
    assert "root/root" in files and not list(deb.parent.glob(".deb-stage*"))  # staged tree cleaned up
    scripts = subprocess.run(["dpkg-deb", "-I", str(deb)], capture_output=True, text=True, check=True).stdout
    assert "postinst" in scripts and "postrm" in scripts


@pytest.mark.skipif(not shutil.which("makensis"), reason="makensis not installed (apt-get install nsis)")
def test_windows_installer_script_compiles(tmp_path):
    out = tmp_path / "medkd-desktop-0.0.0-installer.exe"  # NSIS warns about names with "setup" alone
    proc = subprocess.run([str(PACKAGING / "windows" / "check_nsis.sh")], env={"PATH": "/usr/bin:/bin", "OUT": str(out)},
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert out.read_bytes()[:2] == b"MZ" and out.stat().st_size > 50_000


def test_nsis_script_offers_silent_install_start_menu_and_uninstaller():
    text = (PACKAGING / "windows" / "medkd-desktop.nsi").read_text()
    assert "RequestExecutionLevel admin" in text and "$PROGRAMFILES64" in text
    assert "WriteUninstaller" in text and "QuietUninstallString" in text and "$SMPROGRAMS" in text


def test_entry_script_runs_the_window_main_under_its_name():
    """From source the executable is python, so the entry script starts the window's main:
    its --help names the self-test."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}  # this checkout's package, whatever the venv's install points to
    proc = subprocess.run([sys.executable, str(PACKAGING / "entry.py"), "--help"], capture_output=True, text=True,
                          cwd=REPO, env=env, timeout=120)
    assert proc.returncode == 0 and "--selftest" in proc.stdout and "medkd-desktop" in proc.stdout
