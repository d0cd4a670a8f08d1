#!/usr/bin/env bash
# `make package-nsis`: compile medkd-desktop.nsi with Linux's makensis on a dummy payload.
# Why: PyInstaller cannot cross-build the Windows bundle, but the installer script's syntax,
# includes, icon and pages can be checked here; a real Windows build uses the same script.
# Prints the setup .exe written (in a temporary folder unless OUT is given).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
command -v makensis >/dev/null || { echo "makensis not found: apt-get install nsis" >&2; exit 2; }
WORK=$(mktemp -d)
trap 'rm -rf "$WORK/payload"' EXIT
mkdir -p "$WORK/payload/_internal/medkd_desktop"
printf 'MZ dummy GUI\n' > "$WORK/payload/medkd-desktop.exe"
printf 'MZ dummy console\n' > "$WORK/payload/medkd.exe"
printf '{"version": "0.0.0"}\n' > "$WORK/payload/BUILD-INFO.json"
printf 'dummy\n' > "$WORK/payload/_internal/medkd_desktop/__init__.pyc"
OUT=${OUT:-$WORK/medkd-desktop-0.0.0-setup.exe}
cd "$HERE"
makensis -V2 -WX -DVERSION=0.0.0 "-DPAYLOAD_DIR=$WORK/payload" "-DOUTFILE=$OUT" medkd-desktop.nsi
echo "$OUT"
