"""Decisions that every process of a data-parallel run must take alike, and how they are taken.

One process deciding differently from the others (to save a checkpoint, evaluate, stop, abort)
deadlocks the run: the others wait in a collective call it never makes. So a decision is only
taken from values every process holds bit for bit: gathered from all processes (each then
computes the same function of the same numbers), or decided by the main process and broadcast.
Local clocks, local losses and local file checks never decide anything on their own.

A stop request (SIGTERM/SIGINT, ``StopSignals``) reaches each process on its own; it becomes a
decision through ``StepValues``, so that all processes checkpoint and leave at the same step.
"""

from __future__ import annotations

import signal

import torch
import torch.distributed as dist
from accelerate.utils import broadcast_object_list, gather_object

from bert_helu.runtime.errors import UserError


class StepValues:
    """Per step: the global batch's masked-token count (the loss normaliser), whether any process
    was asked to stop (a signal may reach them at different steps), and the budget clock -- the
    main process's, the one its checkpoints save and every process restarts from.

    These are host values, agreed over a CPU (gloo) group: one small all-reduce per step that never
    waits for the GPU, where a collective on the GPU's stream would wait for the step queued before it.
    """

    def __init__(self, accelerator):
        self.processes, self.main = accelerator.num_processes, accelerator.is_main_process
        self.group = None
        if self.processes > 1 and dist.get_backend() != "gloo":
            self.group = dist.new_group(backend="gloo")  # every process creates it, at the same point

    def __call__(self, masked: int, stop: bool, elapsed: float) -> tuple[int, bool, float]:
        if self.processes == 1:
            return masked, stop, elapsed
        mine = torch.tensor([masked, float(stop), elapsed if self.main else 0.0], dtype=torch.float64)
        dist.all_reduce(mine, group=self.group)  # a sum: the counts add up, only the main clock is non-zero
        return int(mine[0]), bool(mine[1] > 0), float(mine[2])


def any_process(accelerator, *flags: bool) -> tuple[bool, ...]:
    """Each flag, true if it is true on any process."""
    if accelerator.num_processes == 1:
        return tuple(bool(f) for f in flags)
    mine = torch.tensor([[float(f) for f in flags]], dtype=torch.float64, device=accelerator.device)
    return tuple(bool(v > 0) for v in accelerator.gather(mine).amax(dim=0))


def on_main(accelerator, work):
    """Run ``work`` on the main process only (a check, a write); what it returns, or the UserError
    it raises, is every process's."""
    return _on_main_then_others(accelerator, work, others_too=False)


def main_first(accelerator, work):
    """``work`` on the main process, then on the others (it builds a cache they reuse).

    A failure on the main process is raised on every process at once, instead of leaving the
    others waiting for it at a barrier; a failure on any other process is raised everywhere too.
    """
    return _on_main_then_others(accelerator, work, others_too=True)


def _on_main_then_others(accelerator, work, others_too: bool):
    if accelerator.num_processes == 1:
        return work()
    result, error, failure = None, None, None
    if accelerator.is_main_process:
        result, error, failure = _attempt(work)
    box = [error if failure is None else f"the main process failed: {type(failure).__name__}: {failure}"]
    broadcast_object_list(box)
    if failure is not None:
        raise failure
    if box[0] is not None:
        raise UserError(box[0])
    if not others_too:
        box = [result]
        broadcast_object_list(box)
        return box[0]
    if not accelerator.is_main_process:
        result, error, failure = _attempt(work)
    if failure is not None:
        error = f"process {accelerator.process_index} failed: {type(failure).__name__}: {failure}"
    errors = [e for e in gather_object([error]) if e is not None]
    if failure is not None:
        raise failure
    if errors:
        raise UserError(errors[0])
    return result


def _attempt(work):
    """(result, UserError message, other exception)"""
    try:
        return work(), None, None
    except UserError as err:
        return None, str(err), None
    except Exception as err:  # re-raised where it happened, reported to the other processes
        return None, None, err


class StopSignals:
    """SIGTERM/SIGINT ask the loop to checkpoint and exit; a second SIGINT exits at once."""

    def __init__(self):
        self.requested, self.name, self.number = False, None, 0
        self.previous = {sig: signal.signal(sig, self._handle) for sig in (signal.SIGTERM, signal.SIGINT)}

    def __enter__(self) -> StopSignals:
        return self

    def __exit__(self, *exc) -> None:
        # give the signals back (the program may run inside another, e.g. a test session)
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)

    def _handle(self, number, frame):
        if self.requested and number == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested, self.name, self.number = True, signal.Signals(number).name, number


def leave_together(accelerator, code: int) -> int:
    """``code``, once every process of a multi-process run has got here: a process that exits while
    another still talks to it aborts that one ("terminate called without an active exception" from
    gloo's threads). The process group is left to the interpreter's exit: destroying it here, under
    the DDP model that still holds it, can deadlock its threads against the GIL."""
    if dist.is_initialized():
        accelerator.wait_for_everyone()
    return code
