#!/usr/bin/env bash
# The GPU check (docs/bench_gpu.md): the one command a session with a lent GPU runs. It installs the
# carried wheels, runs scripts/bench_gpu.py under a timeout and copies what it wrote to $OUT.
#
#   device tool: run  command="bash scripts/gpu_check.sh"  carry=[".whl"]  timeout_s=600
#
# Then copy bench_gpu.json and bench_gpu.md from the returned files over docs/ and commit them.
#
# The GPU machine has no network. Its image has torch 2.11+cu130, transformers 5.17, accelerate 1.15,
# huggingface_hub 1.33, tokenizers, safetensors, pandas, scikit-learn, tensorboard, but neither
# datasets nor evaluate. So, once, on a machine with pip and network, from the repository root (the
# wheels go to .whl/, which git ignores; they travel with `carry`):
#
#   mkdir -p .git/info && echo /.whl/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
#       --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .whl \
#       datasets==5.2.0 evaluate==0.4.6 dill==0.4.1 multiprocess==0.70.19 pyarrow==26.0.1
#
# datasets 5.2 needs dill < 0.4.2, multiprocess < 0.70.20 and pyarrow >= 24 (the versions of this
# project's .venv). pyarrow (55 MB of the 64 MiB a call may carry) is installed only where the image's
# is older than 24; if the tree grows past 64 MiB, drop its wheel. transformers is not carried: the
# code runs on the image's 5.17 (bench_gpu.py --smoke passed with transformers 5.17.0, accelerate
# 1.15.0 and huggingface_hub 1.33.0 in place of the .venv's 5.25 / 1.16 / 2.4, 2026-12-06).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-runs/gpu_check_out}
mkdir -p "$OUT"
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1

wheels=()
for wheel in .whl/*.whl; do
    [ -e "$wheel" ] || continue
    case "$wheel" in
    */pyarrow-*)
        if python3 -c 'import sys, pyarrow; sys.exit(int(pyarrow.__version__.split(".")[0]) < 24)' 2>/dev/null; then
            continue # the image's pyarrow is new enough: keep it
        fi
        ;;
    esac
    wheels+=("$wheel")
done
if [ ${#wheels[@]} -gt 0 ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
        "${wheels[@]}" || exit 1
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi

{
    nvidia-smi
    python3 -c 'import torch, transformers, accelerate, datasets, evaluate, pyarrow, huggingface_hub as h
print("torch", torch.__version__, "cuda", torch.version.cuda, "gpu", torch.cuda.is_available() and torch.cuda.get_device_name(0))
print("transformers", transformers.__version__, "accelerate", accelerate.__version__, "datasets",
      datasets.__version__, "evaluate", evaluate.__version__, "pyarrow", pyarrow.__version__, "hub", h.__version__)'
} 2>&1 | tee "$OUT/versions.txt"

# bench_gpu.py keeps to its own --budget-s (parts that no longer fit are skipped and said so); the
# timeout is the backstop that still leaves the copy below inside the call's 600 s
timeout -s KILL 540 python3 scripts/bench_gpu.py --budget-s 460 \
    --out "$OUT/bench_gpu.json" --markdown "$OUT/bench_gpu.md" 2>&1 | tee "$OUT/bench_gpu.log"
status=${PIPESTATUS[0]}
tar czf "$OUT/logs.tar.gz" -C runs/bench_gpu logs 2>/dev/null
echo "bench_gpu.py exit status $status"
exit "$status"
