#!/usr/bin/env bash
# make demo: assess the bundled example courses and grade the example cohort.
# Each step prints what it does; outputs go to demo-output/ (git-ignored).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
OUT=${DEMO_DIR:-demo-output}
mkdir -p "$OUT"

echo "== 1. Assess the review's three cases (examples/review-case-*.json)"
for n in 1 2 3; do
  $BIN/cart-cytopenia assess "examples/review-case-$n.json" --day 60
  $BIN/cart-cytopenia assess "examples/review-case-$n.json" --format json > "$OUT/assessment-review-case-$n.json"
done

echo "== 2. Grade the example cohort (examples/cohort/*.csv) -> $OUT/grades.csv"
$BIN/cart-cytopenia grade --labs examples/cohort/labs.csv --patients examples/cohort/patients.csv \
  --events examples/cohort/events.csv --out "$OUT/grades.csv"
