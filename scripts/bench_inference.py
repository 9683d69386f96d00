"""Inference benchmark (paper Figures 4 and 5); the same as ``python -m glue_eval bench-inference``.

    python scripts/bench_inference.py --glue-dir ../shared/data/glue_data --samples 128 --batch-size 64 \\
        --repeats 3 --output-dir results/bench_inference

The logic lives in glue_eval/bench_inference.py; this wrapper only forwards the arguments.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from glue_eval.__main__ import main  # noqa: E402

if __name__ == "__main__":
    main(["bench-inference", *sys.argv[1:]])
