#!/usr/bin/env bash
# Screenshots of the review window on each bundled sample, for docs/screenshots/ (issue #5).
# Each one is the real window, rendered offscreen after the worker's analysis finished:
#   scripts/make_screenshots.sh [method]      (default: gradcam)
# A task without a bundled teacher/student pair is reported and skipped.
set -u
cd "$(dirname "$0")/.."
method=${1:-gradcam}
mkdir -p docs/screenshots
shoot() {  # shoot TASK STUDY_PATH [NAME [extra medkd-desktop options]]
  if [ ! -f "trained_models/$1/teacher.json" ] || [ ! -f "trained_models/$1/student.json" ]; then
    echo "skip $1: no bundled pair"; return
  fi
  local task=$1 study=$2 name=${3:-$1}
  shift $(( $# < 3 ? $# : 3 ))
  QT_QPA_PLATFORM=offscreen .venv/bin/medkd-desktop "$study" --task "$task" --method "$method" "$@" \
    --screenshot "docs/screenshots/$name.png" && echo "wrote docs/screenshots/$name.png"
}
samples=resources/samples
# The bundled MR sample is an EPI mosaic series (a loader sample), not the contrast-enhanced slice
# the tumour models read; the shared data's first glioma test slice shows the model on its own kind.
brain=$samples/mr_brain_epi_mosaic_series
data=../shared/data/brain-tumor-mri
if [ -f "$data/manifest.csv" ]; then
  brain="$data/$(grep -m1 ',glioma,.*,test,' "$data/manifest.csv" | cut -d, -f1)"
fi
shoot cxr-covid $samples/chest_xray_cr_pa_nema.dcm
shoot histo-lc25000 $samples/histology_lung_adenocarcinoma_lc25000.jpg
shoot brain-tumor-mri "$brain"
shoot skin-ham10000 $samples/dermoscopy_melanoma_ham10000.jpg
shoot fmri-asd $samples/fmri_amplitude_map_abide_nyu_0050957.nii.gz
# Models ▸ Check faithfulness run before the shot: deletion/insertion AUC under the agreement figures.
shoot brain-tumor-mri "$brain" faithfulness-brain-tumor-mri --faithfulness
# Trust (issue #18): a chest film read by the brain models: the OOD banner, the prediction withheld.
# (fmri-asd.png above shows the chance-level label.)
shoot brain-tumor-mri $samples/chest_xray_covid_hannover.jpg ood-banner
