#!/usr/bin/env bash
# CPU-scale replication of the HeLU paper's comparison on real data (../shared/data), in resumable stages.
#
#   bash scripts/replicate_cpu.sh            # all stages; rerun after any interruption to continue
#   STAGES="pretrain" bash scripts/replicate_cpu.sh      # one stage (corpus pretrain finetune tables stats)
#
# Every stage skips what is already done: pretraining resumes from its last checkpoint (same output dir),
# fine-tuning skips runs whose results.json exists, tables and stats are cheap and always rewritten.
# Knobs (environment): OUT, BUDGET_HOURS (wall clock per model, the same for every activation),
# SEEDS, TASKS, MAX_TRAIN (fine-tuning examples per task), ACTIVATIONS ("name=spec ..."), and STEPS: when
# set, every model trains exactly STEPS steps with a step-driven schedule instead of the wall-clock budget
# (the fair choice on a machine shared with other jobs, where a wall-clock budget buys different compute).
# To share a machine fairly, pin the whole study to cores of its own, e.g.
#   OMP_NUM_THREADS=1 taskset -c 0 bash scripts/replicate_cpu.sh
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PY:-.venv/bin/python}
OUT=${OUT:-runs/replicate_cpu}
BUDGET_HOURS=${BUDGET_HOURS:-0.25}
SEEDS=${SEEDS:-"42 43 44"}
TASKS=${TASKS:-cola,sst2,mrpc,stsb,rte,wnli}
MAX_TRAIN=${MAX_TRAIN:-1000}
GLUE_DIR=${GLUE_DIR:-../shared/data/glue_data}
ACTIVATIONS=${ACTIVATIONS:-"gelu=gelu relu=relu helu-0.05=helu:alpha=0.05 helu-1=helu:alpha=1"}
STAGES=${STAGES:-"corpus pretrain finetune tables stats"}
PRETRAIN_CONFIG=configs/pretrain/cpu-tiny.yaml
export HF_HUB_OFFLINE=${HF_HUB_OFFLINE:-1}

has_stage() { [[ " $STAGES " == *" $1 "* ]]; }
say() { printf '\n== %s  (%s)\n' "$*" "$(date -u +%H:%M:%S)"; }
checkpoints=()
for pair in $ACTIVATIONS; do checkpoints+=("${pair%%=*}=$OUT/${pair%%=*}/final"); done

if has_stage corpus; then
  say "corpus: clean, dedup, WordPiece, pack (cached after the first run)"
  $PY -m pretrain --config "$PRETRAIN_CONFIG" --prepare-only
fi

if has_stage pretrain; then
  for pair in $ACTIVATIONS; do
    name=${pair%%=*}; spec=${pair#*=}
    if [[ -f $OUT/$name/summary.json ]]; then echo "pretrain $name: done"; continue; fi
    say "pretrain $name ($spec), budget ${STEPS:-} steps / ${BUDGET_HOURS} h"
    if [[ -n ${STEPS:-} ]]; then
      budget=(train.max_steps="$STEPS" train.schedule_progress=steps train.budget_hours=0)
    else
      budget=(train.budget_hours="$BUDGET_HOURS")
    fi
    $PY -m pretrain --config "$PRETRAIN_CONFIG" --activation "$spec" --output-dir "$OUT/$name" \
      "${budget[@]}" logging.progress_bar=false
  done
fi

if has_stage finetune; then
  say "fine-tune ${TASKS} x seeds ${SEEDS} (+ dynamic INT8 evaluation)"
  # shellcheck disable=SC2086
  $PY -m finetune --config configs/finetune/cpu-fast.yaml --tasks "$TASKS" --seeds $SEEDS \
    --glue-dir "$GLUE_DIR" --output-dir "$OUT/glue" --int8 \
    train.max_train_examples="$MAX_TRAIN" train.epochs=3 --checkpoints "${checkpoints[@]}"
fi

if has_stage tables; then
  say "tables"
  PY=$PY bash scripts/glue_tables.sh "$OUT/glue" "$OUT/tables"
  $PY scripts/plot_pretraining.py "$OUT" --output "$OUT/tables/pretraining.png"
fi

if has_stage stats; then
  say "activation statistics on SST-2 dev"
  $PY -m glue_eval stats --checkpoint "${checkpoints[@]}" --data sst2 --glue-dir "$GLUE_DIR" \
    --max-samples 512 --output-dir "$OUT/stats"
fi
say "done: tables in $OUT/tables, stats in $OUT/stats"
