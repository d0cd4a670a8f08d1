# MedKD Desktop: the Windows build (PowerShell, on a Windows 10/11 x64 build machine).
# PyInstaller cannot cross-build: run this on Windows, from the repository root:
#     powershell -ExecutionPolicy Bypass -File packaging\windows\build.ps1
# Needs: Python 3.11 x64 (python.org installer, "py" launcher), NSIS 3 (makensis on PATH), git.
# Writes dist\medkd-desktop\ (onedir bundle, the same spec as Linux) and
# dist\medkd-desktop-<version>-setup.exe (per-machine installer; /S installs silently).
$ErrorActionPreference = "Stop"
Set-Location (Join-Path $PSScriptRoot "..\..")
$venv = "build\package-venv"
if (-not (Test-Path "$venv\Scripts\python.exe")) {
    py -3.11 -m venv $venv
    & "$venv\Scripts\python.exe" -m pip install --upgrade pip
}
# On Windows, torch from PyPI is the CPU build (no CUDA libraries to carry).
& "$venv\Scripts\python.exe" -m pip install ".[package]"
& "$venv\Scripts\python.exe" -m pip install --no-deps --force-reinstall .
$version = & "$venv\Scripts\python.exe" -c "from importlib.metadata import version; print(version('medkd-desktop'))"
& "$venv\Scripts\pyinstaller.exe" --noconfirm --distpath dist --workpath build\pyinstaller packaging\medkd-desktop.spec
if ($LASTEXITCODE -ne 0) { throw "PyInstaller failed" }
# The bundle checks itself before it is wrapped (console executable: the window has no stdout).
& "dist\medkd-desktop\medkd.exe" selftest
if ($LASTEXITCODE -ne 0) { throw "the self-test failed" }
$payload = (Resolve-Path "dist\medkd-desktop").Path
$out = Join-Path (Resolve-Path "dist").Path "medkd-desktop-$version-setup.exe"
makensis /V2 "/DVERSION=$version" "/DPAYLOAD_DIR=$payload" "/DOUTFILE=$out" packaging\windows\medkd-desktop.nsi
if ($LASTEXITCODE -ne 0) { throw "makensis failed" }
Write-Host "wrote $out"
