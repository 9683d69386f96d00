#!/usr/bin/env bash
# Every comparison table of a fine-tuning batch: Table 2 under the three average conventions (md), as
# CSV and LaTeX, and Table 3's INT8 deltas. Used by replicate_cpu.sh and replicate_paper.sh.
#
#   bash scripts/glue_tables.sh <finetune output dir> <tables dir>
#   BASELINE=gelu bash scripts/glue_tables.sh ...   # also: significance marks against that row, and compare
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
results=$1 tables=$2

mkdir -p "$tables"
for average in paper glue cramming; do
  $PY -m glue_eval table "$results" --format md --average "$average" --output "$tables/glue-$average.md"
done
$PY -m glue_eval table "$results" --format csv --average paper --output "$tables/glue-paper.csv"
$PY -m glue_eval table "$results" --format latex --average paper --output "$tables/glue-paper.tex"
$PY -m glue_eval table "$results" --format md --delta int8 --output "$tables/int8-delta.md"
if [[ -n ${BASELINE:-} ]]; then
  $PY -m glue_eval table "$results" --format md --significance --baseline "$BASELINE" \
    --output "$tables/glue-paper-significance.md"
  $PY -m glue_eval table "$results" --format md --delta int8 --significance --output "$tables/int8-delta-significance.md"
  $PY -m glue_eval compare "$results" --baseline "$BASELINE" --output "$tables/compare.md" --plot "$tables/compare.png"
  $PY -m glue_eval compare "$results" --baseline "$BASELINE" --format json --output "$tables/compare.json"
fi
