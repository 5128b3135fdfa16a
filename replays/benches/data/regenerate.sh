#!/usr/bin/env bash
# Regenerates the benchmark logs of this folder with vehicle-sim (byte-identical on any machine).
# They live outside replays/logs/ because that folder is validated as a whole against per-log
# criteria, and these logs are for measuring speed, not for pass/fail checks.
#
#   replays/benches/data/regenerate.sh
set -euo pipefail
cd "$(dirname "$0")/../../.."
cargo build -q -p vehicle-sim
BIN="${CARGO_TARGET_DIR:-target}/debug/vehicle-sim"
# The validation-speed goal's shape: about 200 participants at once, ground truth at 10 Hz, 10 s;
# the congested intersection thinned to 200 participants (7 sensors at 10 Hz, as every log).
"$BIN" record --scenario congested-intersection --seed 1 --duration 10 --truth-hz 10 \
  --max-participants 200 --out replays/benches/data/dense-200.mcap
ls -l replays/benches/data/*.mcap
