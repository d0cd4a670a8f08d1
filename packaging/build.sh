#!/usr/bin/env bash
# `make package`: the onedir bundle, the portable tarball and the .deb, from a fresh build venv.
#
#   packaging/build.sh            venv (if missing) + bundle + tarball + .deb
#   packaging/build.sh bundle     venv + bundle only
#
# Why a venv of its own (build/package-venv, git-ignored): the bundle must contain exactly the
# project's declared dependencies, never what a developer's .venv has picked up (test tools, an
# editable checkout). The project is installed non-editable, so the models and samples are package
# data (medkd_desktop/_bundled) as in any installed copy.
#
# Environment: PYTHON (default python3.11), NICE (default "nice -n 10": the build machine is
# shared), PACKAGE_VENV, GZIP_LEVEL (default 1: CUDA libraries barely compress further, and the
# level-6 tarball took minutes more on 2 cores for a few % of size).
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
PYTHON=${PYTHON:-$(command -v python3.11 || command -v python3)}
NICE=${NICE:-nice -n 10}
VENV=${PACKAGE_VENV:-build/package-venv}
GZIP_LEVEL=${GZIP_LEVEL:-1}
WHAT=${1:-all}
DIST=dist
BUNDLE=$DIST/medkd-desktop

step() { printf '\n== %s (%s)\n' "$*" "$(date +%T)"; }

# ------------------------------------------------------------------------------------- venv
if [ ! -x "$VENV/bin/python" ]; then
  step "creating the build venv $VENV"
  $PYTHON -m venv "$VENV"
  $VENV/bin/python -m pip install -q --upgrade pip
fi
if [ ! -f "$VENV/.deps-installed" ] || [ pyproject.toml -nt "$VENV/.deps-installed" ]; then
  step "installing the dependencies and the package extra into $VENV"
  $NICE $VENV/bin/python -m pip install -q '.[package]'
  touch "$VENV/.deps-installed"
fi
step "installing this checkout into $VENV (non-editable)"
$NICE $VENV/bin/python -m pip install -q --no-deps --force-reinstall .

# The Linux bundle carries CUDA torch (and so its nvidia libraries): refuse a CPU-only wheel that
# a local wheel folder might have offered instead.
if [ "$(uname -s)" = Linux ]; then
  $VENV/bin/python - <<'EOF'
import sys, torch
if torch.version.cuda is None:
    sys.exit(f"error: torch {torch.__version__} in the build venv is a CPU-only build; "
             "the Linux bundle must carry the CUDA build (pip install --force-reinstall torch from the index)")
print(f"torch {torch.__version__} (CUDA {torch.version.cuda})")
EOF
fi
VERSION=$($VENV/bin/python -c 'from importlib.metadata import version; print(version("medkd-desktop"))')

# ----------------------------------------------------------------------------------- bundle
step "PyInstaller: $BUNDLE (version $VERSION)"
rm -rf "$BUNDLE"  # build/pyinstaller (the work folder) is kept: PyInstaller reuses what did not change
$NICE $VENV/bin/pyinstaller --noconfirm --log-level WARN --distpath "$DIST" --workpath build/pyinstaller \
  packaging/medkd-desktop.spec
$VENV/bin/python - "$BUNDLE" "$VERSION" <<'EOF'
import json, subprocess, sys, time, torch
bundle, version = sys.argv[1:]
try:
    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip() or None
except OSError:
    commit = None
info = {"version": version, "commit": commit, "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "python": sys.version.split()[0], "torch": torch.__version__, "cuda": torch.version.cuda,
        "platform": sys.platform}
with open(f"{bundle}/BUILD-INFO.json", "w") as fh:
    json.dump(info, fh, indent=2)
EOF
cp packaging/icons/medkd-desktop-256.png "$BUNDLE/medkd-desktop.png"
du -sh "$BUNDLE"
[ "$WHAT" = bundle ] && exit 0

# ---------------------------------------------------------------------- tarball and .deb
# The two are compressed at the same time: each compressor is single-threaded.
TARBALL=$DIST/medkd-desktop-$VERSION-linux-x86_64.tar.gz
DEB=$DIST/medkd-desktop_${VERSION}_amd64.deb
step "tarball $TARBALL and package $DEB"
rm -f "$TARBALL" "$DEB"
DEB_STEP=stage packaging/deb/build_deb.sh "$BUNDLE" "$VERSION" "$DEB"  # hard links first (see build_deb.sh)
GZ="gzip -$GZIP_LEVEL"
command -v pigz >/dev/null && GZ="pigz -$GZIP_LEVEL"
( tar -C "$DIST" --owner=0 --group=0 --numeric-owner --transform "s,^medkd-desktop,medkd-desktop-$VERSION," \
    -cf - medkd-desktop | $NICE $GZ > "$TARBALL.part" && mv "$TARBALL.part" "$TARBALL" ) &
TAR_PID=$!
DEB_STEP=pack $NICE packaging/deb/build_deb.sh "$BUNDLE" "$VERSION" "$DEB" "$GZIP_LEVEL"
wait $TAR_PID
ls -l "$TARBALL" "$DEB"
