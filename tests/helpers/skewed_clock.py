"""``python -m pretrain`` with the clock of process 1 running 3x fast (run it under torchrun).

A test of the rule that processes decide together: with time-based checkpoints, a process that
trusted its own clock would save when the others do not, and the run would hang.
"""

import os
import sys
import time
from pathlib import Path

if int(os.environ.get("RANK", "0")) == 1:
    _real, _origin = time.perf_counter, time.perf_counter()
    time.perf_counter = lambda: _origin + 3.0 * (_real() - _origin)  # before bert_helu reads it

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # this checkout's code, not an installed one

from pretrain.__main__ import main  # noqa: E402

sys.exit(main(sys.argv[1:]))
