#!/usr/bin/env bash
# Screenshots of the review window on each bundled sample, for docs/screenshots/ (issue #5).
# Each one is the real window, rendered offscreen after the worker's analysis finished:
#   scripts/make_screenshots.sh [method]      (default: gradcam)
# A task without a bundled teacher/student pair is reported and skipped.
set -u
cd "$(dirname "$0")/.."
method=${1:-gradcam}
mkdir -p docs/screenshots
shoot() {  # shoot TASK SAMPLE
  if [ ! -f "trained_models/$1/teacher.json" ] || [ ! -f "trained_models/$1/student.json" ]; then
    echo "skip $1: no bundled pair"; return
  fi
  QT_QPA_PLATFORM=offscreen .venv/bin/medkd-desktop "resources/samples/$2" --task "$1" --method "$method" \
    --screenshot "docs/screenshots/$1.png" && echo "wrote docs/screenshots/$1.png"
}
shoot cxr-covid chest_xray_cr_pa_nema.dcm
shoot histo-lc25000 histology_lung_adenocarcinoma_lc25000.jpg
shoot brain-tumor-mri mr_brain_epi_mosaic_series
shoot skin-ham10000 dermoscopy_melanoma_ham10000.jpg
shoot fmri-asd fmri_amplitude_map_abide_nyu_0050957.nii.gz
