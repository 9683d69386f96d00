#!/usr/bin/env bash
# CPU-scale replication of the HeLU paper's comparison on real data (../shared/data), with replicates:
# every activation is pretrained with several seeds on the same budget, each checkpoint is fine-tuned,
# and the tables say which differences survive a paired bootstrap.
#
#   bash scripts/replicate_cpu.sh                 # everything; rerun the same line after an interruption
#   WORKERS=2 bash scripts/replicate_cpu.sh       # two models at a time, one CPU core each
#   STAGES="tables" bash scripts/replicate_cpu.sh # only rebuild the tables from the results so far
#
# Units of work are (pretraining seed, activation): pretrain, then fine-tune that checkpoint on TASKS.
# They run seed by seed, so an interrupted study still has balanced rows. A unit whose fine-tuning
# results are all in $RESULTS is skipped, so keeping $RESULTS (small JSON + per-example predictions)
# is enough to resume on another day or machine; the checkpoints in $OUT may be deleted once a unit is
# done. Pretraining resumes from its last checkpoint when $OUT is kept.
#
# Knobs (environment): OUT (runs), RESULTS (fine-tuning results), SEEDS (pretraining seeds, one row
# replicate each), FT_SEED (fine-tuning seed), ACTIVATIONS ("name=spec ..."), BASELINE (row the others are
# tested against), TASKS, STEPS (optimizer steps per model: equal tokens for every model, the fair budget
# on a machine shared with other jobs) or BUDGET_HOURS (Cramming's wall-clock budget; set STEPS= to use
# it), WORKERS (parallel units, each pinned to one core with one thread), RESAMPLES, PRETRAIN_OVERRIDES
# (dotted recipe overrides for every pretraining, e.g. the model size), FINETUNE (names of the activations
# whose checkpoints are fine-tuned; default: all; the others are pretrained only), RUNS_RECORD (where each
# finished pretraining's summary.json and metrics.jsonl are copied: small files that keep the study's
# pretraining results when $OUT is gone), TABLES (where the tables stage writes; default $OUT/tables).
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PY:-.venv/bin/python}
OUT=${OUT:-runs/replicate_cpu}
RESULTS=${RESULTS:-$OUT/glue}
SEEDS=${SEEDS:-"42 43 44"}
FT_SEED=${FT_SEED:-42}
ACTIVATIONS=${ACTIVATIONS:-"gelu=gelu relu=relu helu-0.05=helu:alpha=0.05"}
BASELINE=${BASELINE:-relu}
TASKS=${TASKS:-cola,sst2,mrpc,stsb,rte,wnli}
# 1700 x 32 x 128 = 7.0M tokens per model of cpu-tiny's 4x128: the compute of 300 steps (2.5M tokens) of
# the earlier 4x256 recipe, which took 20-24 min per model on one core in fp32 (whole study ~3.5 h on 2 cores)
STEPS=${STEPS-1700}
BUDGET_HOURS=${BUDGET_HOURS:-0.25}
WORKERS=${WORKERS:-2}
RESAMPLES=${RESAMPLES:-10000}
STAGES=${STAGES:-"corpus units tables stats"}
FINETUNE=${FINETUNE-}
RUNS_RECORD=${RUNS_RECORD:-$OUT/record}
GLUE_DIR=${GLUE_DIR:-../shared/data/glue_data}
PRETRAIN_CONFIG=${PRETRAIN_CONFIG:-configs/pretrain/cpu-tiny.yaml}
FINETUNE_CONFIG=${FINETUNE_CONFIG:-configs/finetune/cpu-crammed.yaml}
read -r -a pretrain_overrides <<<"${PRETRAIN_OVERRIDES:-}"
export HF_HUB_OFFLINE=${HF_HUB_OFFLINE:-1}

has_stage() { [[ " $STAGES " == *" $1 "* ]]; }
say() { printf '\n== %s  (%s)\n' "$*" "$(date -u +%H:%M:%S)"; }
n_tasks=$(tr ',' '\n' <<<"$TASKS" | grep -c .)

if [[ -n $STEPS ]]; then
  budget=(train.max_steps="$STEPS" train.schedule_progress=steps train.budget_hours=0)
else
  budget=(train.budget_hours="$BUDGET_HOURS" train.schedule_progress=time train.max_steps=0)
fi

finetuned() {  # is activation $1 fine-tuned?
  [[ -z $FINETUNE || " $FINETUNE " == *" $1 "* ]]
}

unit_done() {  # checkpoint $1 (activation $2) is pretrained, recorded and, if asked for, fine-tuned
  local found
  [[ -f $RUNS_RECORD/$1/summary.json ]] || return 1
  finetuned "$2" || return 0
  found=$(find "$RESULTS/$1" -name results.json -path "*/seed$FT_SEED/*" 2>/dev/null | wc -l)
  ((found >= n_tasks))
}

run_unit() {  # pretrain seed $1 with activation $2=$3, then fine-tune it (on core $4 with one thread)
  local seed=$1 name=$2-s$1 spec=$3 core=$4
  if unit_done "$name" "$2"; then echo "$name: done"; return; fi
  local pin=(env OMP_NUM_THREADS=1 taskset -c "$core")
  say "$name: pretrain ($spec, seed $seed) on core $core"
  "${pin[@]}" $PY -m pretrain --config "$PRETRAIN_CONFIG" --activation "$spec" --output-dir "$OUT/$name" \
    seed="$seed" "${budget[@]}" "${pretrain_overrides[@]}" train.cpu_threads=1 logging.progress_bar=false \
    || return 1
  mkdir -p "$RUNS_RECORD/$name"
  cp "$OUT/$name/summary.json" "$OUT/$name/metrics.jsonl" "$RUNS_RECORD/$name/"
  finetuned "$2" || return 0
  say "$name: fine-tune on $TASKS"
  "${pin[@]}" $PY -m finetune --config "$FINETUNE_CONFIG" --checkpoints "$name=$OUT/$name/final" \
    --tasks "$TASKS" --seeds "$FT_SEED" --glue-dir "$GLUE_DIR" --output-dir "$RESULTS" --int8 torch_threads=1
}

if has_stage corpus; then
  say "corpus: clean, dedup, WordPiece, pack (cached after the first run)"
  $PY -m pretrain --config "$PRETRAIN_CONFIG" --prepare-only "${pretrain_overrides[@]}"
fi

if has_stage units; then
  mkdir -p "$OUT/logs"
  units=()
  for seed in $SEEDS; do
    for pair in $ACTIVATIONS; do units+=("$seed ${pair%%=*} ${pair#*=}"); done
  done
  # WORKERS queues, unit i on queue i % WORKERS, queue w pinned to core w
  for ((w = 0; w < WORKERS; w++)); do
    (
      for ((i = w; i < ${#units[@]}; i += WORKERS)); do
        read -r seed name spec <<<"${units[$i]}"
        run_unit "$seed" "$name" "$spec" "$w" >>"$OUT/logs/$name-s$seed.log" 2>&1 \
          || echo "unit $name-s$seed failed: see $OUT/logs/$name-s$seed.log"
        echo "$(date -u +%H:%M:%S) $name-s$seed finished (worker $w)"
      done
    ) &
  done
  wait
fi

if has_stage tables; then
  tables=${TABLES:-$OUT/tables}
  say "tables: replicates grouped by recipe, paired bootstrap against $BASELINE"
  mkdir -p "$tables"
  sig=(--significance --baseline "$BASELINE" --resamples "$RESAMPLES")
  for average in paper glue cramming; do
    $PY -m glue_eval table "$RESULTS" --format md --average "$average" "${sig[@]}" --output "$tables/glue-$average.md"
  done
  $PY -m glue_eval table "$RESULTS" --format csv --average paper "${sig[@]}" --output "$tables/glue-paper.csv"
  $PY -m glue_eval table "$RESULTS" --format latex --average paper "${sig[@]}" --output "$tables/glue-paper.tex"
  $PY -m glue_eval table "$RESULTS" --format md --delta int8 --significance --resamples "$RESAMPLES" \
    --output "$tables/int8-delta.md"
  $PY -m glue_eval compare "$RESULTS" --baseline "$BASELINE" --resamples "$RESAMPLES" --output "$tables/compare.md" \
    --plot "$tables/compare.png"
  baseline_spec=$BASELINE  # the activation of the baseline row, for the pretraining-loss comparison
  for pair in $ACTIVATIONS; do [[ ${pair%%=*} == "$BASELINE" ]] && baseline_spec=${pair#*=}; done
  $PY scripts/plot_pretraining.py "$RUNS_RECORD" --output "$tables/pretraining.png" --baseline "$baseline_spec"
fi

if has_stage stats; then
  first_seed=${SEEDS%% *}
  checkpoints=()
  for pair in $ACTIVATIONS; do
    dir=$OUT/${pair%%=*}-s$first_seed/final
    [[ -d $dir ]] && checkpoints+=("${pair%%=*}=$dir")
  done
  if ((${#checkpoints[@]})); then
    say "activation statistics on SST-2 dev (seed $first_seed checkpoints)"
    $PY -m glue_eval stats --checkpoint "${checkpoints[@]}" --data sst2 --glue-dir "$GLUE_DIR" \
      --max-samples 512 --output-dir "$OUT/stats"
  fi
fi
say "done: tables in $OUT/tables"
