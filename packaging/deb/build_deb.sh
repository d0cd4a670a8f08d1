#!/usr/bin/env bash
# build_deb.sh BUNDLE VERSION OUT.deb [GZIP_LEVEL]: the .deb around the onedir bundle.
# DEB_STEP=stage only lays out the staging tree, DEB_STEP=pack only compresses it (default: both):
# packaging/build.sh stages first, because hard-linking the bundle changes its files' ctime, which
# would make a tar of the bundle running at the same time fail ("file changed as we read it").
#
# Layout: /opt/medkd-desktop (the bundle as built), /usr/bin/medkd and /usr/bin/medkd-desktop
# (symlinks), the menu entry, the icon and the MIME types for .dcm / .nii.gz. The staging tree hard
# links the bundle instead of copying its gigabytes. Depends lists the system libraries the bundle
# does not carry (PyInstaller leaves out the C library, OpenGL/EGL, X11/xcb, fontconfig and the
# like on purpose: they must match the machine's own drivers and display server); see
# depends.txt (measured with packaging/deb/system_deps.py: ldd of every ELF file in the bundle).
set -euo pipefail
BUNDLE=$1 VERSION=$2 OUT=$3 LEVEL=${4:-1}
HERE=$(cd "$(dirname "$0")" && pwd)
# Staged beside OUT (same file system, so the bundle can be hard-linked rather than copied).
STAGE=$(cd "$(dirname "$OUT")" && pwd)/.deb-stage
STEP=${DEB_STEP:-all}
if [ "$STEP" = pack ]; then
  trap 'rm -rf "$STAGE"' EXIT
  dpkg-deb --root-owner-group -Zgzip -z"$LEVEL" --build "$STAGE" "$OUT"
  exit 0
fi
[ "$STEP" = all ] && trap 'rm -rf "$STAGE"' EXIT
rm -rf "$STAGE" && mkdir -p "$STAGE/DEBIAN" "$STAGE/opt" "$STAGE/usr/bin" "$STAGE/usr/share/applications" \
  "$STAGE/usr/share/mime/packages" "$STAGE/usr/share/doc/medkd-desktop"
for px in 48 128 256; do
  mkdir -p "$STAGE/usr/share/icons/hicolor/${px}x${px}/apps"
  cp "$HERE/../icons/medkd-desktop-$px.png" "$STAGE/usr/share/icons/hicolor/${px}x${px}/apps/medkd-desktop.png"
done
cp -al "$(cd "$BUNDLE" && pwd)" "$STAGE/opt/medkd-desktop" 2>/dev/null || cp -a "$BUNDLE" "$STAGE/opt/medkd-desktop"
ln -s /opt/medkd-desktop/medkd "$STAGE/usr/bin/medkd"
ln -s /opt/medkd-desktop/medkd-desktop "$STAGE/usr/bin/medkd-desktop"
install -m 644 "$HERE/medkd-desktop.desktop" "$STAGE/usr/share/applications/medkd-desktop.desktop"
install -m 644 "$HERE/medkd-desktop-mime.xml" "$STAGE/usr/share/mime/packages/medkd-desktop.xml"
install -m 755 "$HERE/postinst" "$HERE/postrm" "$STAGE/DEBIAN/"
DEPENDS=$(grep -v '^#' "$HERE/depends.txt" | sed '/^$/d' | paste -sd, | sed 's/,/, /g')
SIZE_KB=$(du -sk --apparent-size "$STAGE" | cut -f1)
sed -e "s/@VERSION@/$VERSION/" -e "s/@INSTALLED_SIZE@/$SIZE_KB/" -e "s/@DEPENDS@/$DEPENDS/" \
  "$HERE/control.in" > "$STAGE/DEBIAN/control"
cat > "$STAGE/usr/share/doc/medkd-desktop/copyright" <<'TXT'
MedKD Desktop: Apache-2.0. The bundle in /opt/medkd-desktop carries third-party components
under their own licences (Python, PyTorch, NVIDIA CUDA libraries, Qt for Python (LGPL-3.0),
pydicom, nilearn, ...): see the *.dist-info folders in /opt/medkd-desktop/_internal.
The sample studies' licences: /opt/medkd-desktop/_internal/medkd_desktop/_bundled/resources/samples/SOURCES.md
TXT
[ "$STEP" = stage ] && exit 0
dpkg-deb --root-owner-group -Zgzip -z"$LEVEL" --build "$STAGE" "$OUT"
