#!/usr/bin/env bash
# make demo: assess the bundled example courses, grade the example cohort, then load the review
# cases and a synthetic cohort into the web app's embedded store and serve it on localhost.
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

echo "== 2b. A synthetic cohort (2,000 patients) and its report -> $OUT/synthetic-cohort, $OUT/cohort-report.html"
$BIN/cart-cytopenia cohort generate --patients "${DEMO_COHORT:-2000}" --seed 1 --out "$OUT/synthetic-cohort"
$BIN/cart-cytopenia cohort report "$OUT/synthetic-cohort" --out "$OUT/cohort-report.html"

echo "== 2c. A sample OMOP CDM extract (500 synthetic patients) graded as an EHR extract would be -> $OUT/omop-extract, $OUT/omop-grades.csv"
$BIN/cart-cytopenia cohort generate --patients "${DEMO_OMOP:-500}" --seed 2 --omop "$OUT/omop-extract"
$BIN/cart-cytopenia cohort omop "$OUT/omop-extract" --out "$OUT/omop-grades.csv"

echo "== 3. The web app: the review cases and a synthetic cohort in the embedded store ($OUT/webapp)"
export CART_CYTOPENIA_ENVIRONMENT=development   # demo data only; production needs its own secret
export CART_CYTOPENIA_DATA_DIR="$(cd "$OUT" && pwd)/webapp"
$BIN/cart-cytopenia db upgrade
$BIN/cart-cytopenia demo load --reset --n "${DEMO_PATIENTS:-24}"
PORT=${DEMO_PORT:-8000}
echo "== 4. Serving on http://127.0.0.1:$PORT — sign in with the demo account above (Ctrl+C stops)"
exec $BIN/cart-cytopenia serve --host 127.0.0.1 --port "$PORT"
