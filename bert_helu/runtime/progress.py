"""Progress where a person reads it: a redrawn bar on a terminal, plain lines in a file.

A job's log file is not a terminal, and a bar redrawn there is thousands of redraws joined by
carriage returns; both programs print plain lines there instead (pretraining per logging step,
fine-tuning per finished run), and keep ``datasets``' own bars (corpus preparation draws many) out.
"""

from __future__ import annotations

import sys


def progress_as_lines() -> bool:
    """Whether stderr goes to a file or a pipe rather than a terminal."""
    return not sys.stderr.isatty()


def quiet_dataset_bars_off_terminal() -> None:
    if progress_as_lines():
        import datasets

        datasets.disable_progress_bars()
