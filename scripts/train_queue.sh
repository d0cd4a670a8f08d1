#!/usr/bin/env bash
# Train the bundled models in order, in the background, resuming where a killed run stopped.
# A model whose card already exists in trained_models/ is skipped; MEDKD_THREADS=N sets torch threads. Usage:
#   nohup scripts/train_queue.sh configs/histo-lc25000-teacher.toml ... > runs/queue.log 2>&1 &
set -u
cd "$(dirname "$0")/.."
mkdir -p runs/logs
export OMP_WAIT_POLICY=PASSIVE  # threads sleep instead of spinning when the 2 cores are shared
for cfg in "$@"; do
  name=$(basename "$cfg" .toml)               # e.g. histo-lc25000-teacher
  task=$(sed -n 's/^task = "\(.*\)"/\1/p' "$cfg")
  role=$(sed -n 's/^role = "\(.*\)"/\1/p' "$cfg")
  if [ -f "trained_models/$task/$role.json" ]; then echo "skip $name (card exists)"; continue; fi
  echo "$(date -u +%FT%TZ) start $name"
  .venv/bin/medkd train --config "$cfg" ${MEDKD_THREADS:+--threads "$MEDKD_THREADS"} >> "runs/logs/$name.jsonl" 2>> "runs/logs/$name.err" \
    && echo "$(date -u +%FT%TZ) done $name" || echo "$(date -u +%FT%TZ) FAILED $name"
done
