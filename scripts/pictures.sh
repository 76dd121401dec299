#!/usr/bin/env bash
# README's pictures, drawn by the simulator's replay (deterministic: the same seed gives
# the same bytes; sim/tests/picture.rs checks the committed files against it).
#   docs/timeline-consistency.svg: a consistency failover, one primary at a time;
#   docs/timeline-uptime.svg: an uptime failover, the overlap the mode accepts.
set -euo pipefail
cd "$(dirname "$0")/.."
for mode in consistency uptime; do
  scripts/sim.sh replay --seed 7 --faults none --mode "$mode" --hooks off \
    --svg "docs/timeline-$mode.svg" > /dev/null
  echo "docs/timeline-$mode.svg"
done
