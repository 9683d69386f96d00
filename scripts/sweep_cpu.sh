#!/usr/bin/env bash
# The alpha sweep on a CPU: does HeLU's alpha matter, and which of the paper's claims hold?
#
#   bash scripts/sweep_cpu.sh                   # everything; rerun the same line to resume (any day)
#   STAGES="tables claims" bash scripts/sweep_cpu.sh   # only the tables and the claims from what is done
#
# relu, gelu and HeLU alpha in {0.01, 0.05, 0.5, 1, 2}, 3 pretraining seeds each, on cpu-tiny.yaml at
# 1,200 optimizer steps (32 x 128 tokens: 4.9M tokens per model, past the unigram plateau: ReLU ends at
# validation MLM loss ~5.2, the plateau is ~6.6). relu, gelu and alpha 0.05, 1 and 2 (the paper's GLUE
# rows) are fine-tuned on STS-B, SST-2, CoLA, MRPC and RTE (cpu-crammed.yaml, INT8 included). Each unit (seed, activation) is
# pretrained, recorded (docs/replication/sweep/runs: summary + metrics) and fine-tuned (docs/replication/
# sweep/glue: results + per-example predictions); a unit whose records are there is skipped, so keeping
# docs/replication/sweep is enough to resume elsewhere. A unit takes 8-27 min of pretraining and ~6 min of
# fine-tuning on one core (the spread is other jobs on the machine): the whole sweep is 3-5 h on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
SWEEP=${SWEEP:-docs/replication/sweep}
STAGES=${STAGES:-"corpus units tables claims"}
has_stage() { [[ " $STAGES " == *" $1 "* ]]; }
export OUT=${OUT:-runs/sweep} RESULTS=$SWEEP/glue RUNS_RECORD=$SWEEP/runs TABLES=$SWEEP/tables STEPS=${STEPS:-1200}
export ACTIVATIONS="relu=relu gelu=gelu helu-0.05=helu:alpha=0.05 helu-1=helu:alpha=1 helu-0.01=helu:alpha=0.01 helu-0.5=helu:alpha=0.5 helu-2=helu:alpha=2"
export FINETUNE="relu gelu helu-0.05 helu-1 helu-2" TASKS=stsb,sst2,cola,mrpc,rte BASELINE=relu WORKERS=${WORKERS:-2}
others=${STAGES//claims/}
if [[ -n ${others// /} ]]; then  # replicate_cpu.sh takes an empty STAGES as "every stage"
  STAGES="$others" bash scripts/replicate_cpu.sh
fi
if has_stage claims; then
  PY=${PY:-.venv/bin/python}
  $PY -m glue_eval compare "$RESULTS" --baseline relu --format json --output "$TABLES/compare.json" >/dev/null
  $PY -m glue_eval compare "$RESULTS" --delta int8 --format json --output "$TABLES/int8-delta.json" >/dev/null
  $PY -m glue_eval plan "$RESULTS" --baseline relu --pretrain-seeds 2 3 10 --runs "$RUNS_RECORD" --format json \
    --output "$TABLES/plan.json" >/dev/null
  $PY scripts/paper_claims.py --compare "$TABLES/compare.json" --int8 "$TABLES/int8-delta.json" \
    --plan "$TABLES/plan.json" --runs "$RUNS_RECORD" --results "$RESULTS" --output "$TABLES/claims.md"
fi
