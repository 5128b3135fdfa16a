#!/usr/bin/env bash
# Regenerates the committed scenario replays (one per catalogued scenario but v2x-spoofing, seed 1) with
# vehicle-sim. The same command gives byte-identical files; CI can check that with
# `git diff --exit-code replays/logs` after running it.
#
#   replays/logs/regenerate.sh            # all scenarios
#   replays/logs/regenerate.sh NAME...    # only these
set -euo pipefail
cd "$(dirname "$0")/../.."
SEED=1
declare -A DURATION_S=(
  [bus-pedestrian]=15
  [occluded-cross-traffic]=14
  [left-turn-oncoming]=14
  [stopped-vehicle]=15
  [emergency-vehicle]=16
  [shuttle-loop]=20
  [congested-intersection]=8
  [lidar-failure]=14
  [camera-night]=12
  [tunnel-exit-gnss]=20
)
cargo build -q --workspace
BIN="${CARGO_TARGET_DIR:-target}/debug/vehicle-sim"
names=("$@")
if [ ${#names[@]} -eq 0 ]; then
  # v2x-spoofing is left out: the committed logs are honest traffic (replays/tests/misbehaviour.rs
  # asserts no vehicle in them is flagged); the spoofing scenario is run by its own test.
  mapfile -t names < <("$BIN" scenarios | awk '{print $1}' | grep -vx v2x-spoofing)
fi
for name in "${names[@]}"; do
  "$BIN" record --scenario "$name" --seed "$SEED" --duration "${DURATION_S[$name]:-15}" \
    --out "replays/logs/$name.mcap"
done
ls -l replays/logs/*.mcap
