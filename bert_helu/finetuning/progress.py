"""A fine-tuning batch's progress on stderr: on a terminal a bar of this process's runs (done of
all, the time left); elsewhere (a job's log file) one plain line per finished run saying the same."""

from __future__ import annotations

import sys
import time
from datetime import timedelta

from tqdm.auto import tqdm

from bert_helu.runtime.progress import progress_as_lines


class BatchProgress:
    def __init__(self, total: int, already_done: int, processes):
        self.total, self.count = total, already_done
        self.ran = 0  # runs this process trained: the rate the time left is estimated from
        self.prefix = f"[{processes}] " if processes.count > 1 else ""
        self.started = time.perf_counter()
        self.lines = progress_as_lines()
        self.bar = None
        if not self.lines:
            self.bar = tqdm(
                total=total,
                initial=already_done,
                unit="run",
                desc="fine-tuning",
                disable=not processes.is_main,
            )

    def starting(self, run) -> None:
        if self.bar is not None:
            self.bar.set_postfix_str(str(run))

    def skipped(self) -> None:
        """A run finished meanwhile by another batch on the same output dir."""
        self.count += 1
        if self.bar is not None:
            self.bar.update(1)

    def ended(self, message: str) -> None:
        """A run trained to its end or failed; ``message`` says which run and how it ended."""
        self.count += 1
        self.ran += 1
        if self.bar is not None:
            self.bar.write(self.prefix + message)
            self.bar.update(1)
            return
        elapsed = time.perf_counter() - self.started
        left = elapsed / self.ran * (self.total - self.count)
        print(
            f"{self.prefix}{message} | run {self.count} of {self.total}, {_clock(elapsed)} elapsed, "
            f"about {_clock(left)} left",
            file=sys.stderr,
            flush=True,
        )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _clock(seconds: float) -> str:
    return str(timedelta(seconds=round(seconds)))
