"""A pretraining run's checkpoints: when to save, saving, and resuming (``<run>/checkpoints/step-*/``).

A checkpoint is the run's ``RunState`` plus weights, optimizer moments and every process's RNG
(bert_helu.pretraining.checkpoint_files writes it atomically). Its identity
(bert_helu.runtime.identity) must match the run's
to be resumed: a changed recipe is refused rather than silently continued. Saving is collective
(every process calls it at the same step, decided from agreed values: bert_helu.runtime.agreement); only
the main process writes.
"""

from __future__ import annotations

import json
from pathlib import Path

from accelerate.utils import gather_object

from bert_helu.pretraining import checkpoint_files as ckpt
from bert_helu.pretraining.state import RunState
from bert_helu.runtime.agreement import on_main
from bert_helu.runtime.errors import UserError
from bert_helu.runtime.identity import check_identity
from bert_helu.runtime.storage import check_free_space


class RunCheckpoints:
    def __init__(self, run_dir: Path, accelerator, cfg: dict, identity: dict, log):
        self.dir, self.acc, self.cfg, self.identity = Path(run_dir), accelerator, cfg, identity
        self.train_cfg = cfg["train"]
        self.log = log  # bert_helu.pretraining.log.RunLog: messages
        self.root = self.dir / "checkpoints"
        self.saved_step, self.saved_elapsed = -1, 0.0  # the last save, which ``due`` counts from

    def finished(self) -> bool:
        """A completed run of the same identity is not redone; one of another identity is refused."""
        summary_path = self.dir / "summary.json"
        if not summary_path.is_file():
            return False
        try:
            found = json.loads(summary_path.read_text())["identity"]
        except (OSError, ValueError, KeyError, TypeError):
            raise UserError(f"{summary_path}: exists but is not a bert_helu pretraining summary") from None
        check_identity(found, self.identity, summary_path)
        self.log.print(f"{self.dir} already holds this finished run (summary.json); nothing to do")
        return True

    def check_space(self, model) -> None:
        """Refuse to start a run whose checkpoints will not fit (checked by the process that writes)."""
        keep = self.train_cfg["keep_checkpoints"]
        weights = sum(p.numel() * p.element_size() for p in model.parameters())
        # a checkpoint is the weights and two Adam moments; keep of them plus the one being
        # written, and final/
        needed = weights * (3 * (keep + 1) + 1)
        on_main(
            self.acc,
            lambda: check_free_space(self.dir, needed, "--output-dir", f"{keep} checkpoint(s) and final/"),
        )

    def resume(self, model, optimizer) -> RunState | None:
        """Load the newest readable checkpoint of this run into ``model`` and ``optimizer``; an
        unreadable one (a disk that lost it, a file cut short) is skipped with a warning in favour
        of the one before. None when there is none."""
        candidates = ckpt.list_checkpoints(self.root)[::-1]
        for i, path in enumerate(candidates):
            try:
                loaded = ckpt.load_checkpoint(path)
                check_identity(loaded.state["identity"], self.identity, path)
                loaded.load_model_weights(model)
                try:
                    optimizer.load_state_dict(loaded.optimizer_state)
                except (ValueError, KeyError, RuntimeError) as err:
                    raise ckpt.CorruptCheckpoint(
                        f"{path}: corrupt checkpoint, optimizer state does not fit ({err})"
                    ) from None
            except ckpt.CorruptCheckpoint as err:
                if i + 1 == len(candidates):
                    raise
                self.log.warn(f"{err}; falling back to {candidates[i + 1].name}")
                continue
            return self._restore(path, loaded)
        return None

    def _restore(self, path: Path, loaded) -> RunState:
        rank = self.acc.process_index
        if rank in loaded.rng:
            ckpt.restore_rng(loaded.rng[rank])
        else:
            self.log.warn(f"checkpoint has no RNG state for process {rank}; dropout masks will differ")
        scaler = getattr(self.acc, "scaler", None)
        if scaler is not None and loaded.state.get("grad_scaler"):
            scaler.load_state_dict(loaded.state["grad_scaler"])
        state = RunState.from_checkpoint(loaded.state)
        self.saved_step, self.saved_elapsed = state.step, state.elapsed
        self.log.print(
            f"resumed from {path} (step {state.step}, {state.elapsed / 60:.1f} min of budget used)"
        )
        return state

    def due(self, step: int, agreed_elapsed: float) -> bool:
        """``agreed_elapsed`` must be the agreed clock (bert_helu.runtime.agreement.StepValues): every process
        then compares it with the same ``saved_elapsed`` and reaches the same verdict."""
        every_steps, every_minutes = (
            self.train_cfg[k] for k in ("checkpoint_every_steps", "checkpoint_every_minutes")
        )
        by_steps = every_steps and step % every_steps == 0
        by_time = every_minutes and agreed_elapsed - self.saved_elapsed >= 60 * every_minutes
        return bool(by_steps or by_time)

    def save(self, state: RunState, model, optimizer, agreed_elapsed: float | None = None) -> None:
        """Collective: every process calls it at the same step. ``state.elapsed`` (the main process's
        clock) is saved; ``agreed_elapsed`` is the clock the next ``due`` counts from."""
        if state.step == self.saved_step:
            return
        rng = (
            gather_object([(self.acc.process_index, ckpt.capture_rng())])
            if self.acc.num_processes > 1
            else [(0, ckpt.capture_rng())]
        )

        def write() -> None:
            scaler = getattr(self.acc, "scaler", None)
            saved = {
                **state.to_checkpoint(),
                "num_processes": self.acc.num_processes,
                "grad_scaler": scaler.state_dict() if scaler is not None else None,
                "config": self.cfg,
            }
            path = ckpt.checkpoint_dir(self.root, state.step)
            try:
                ckpt.save_checkpoint(path, model, optimizer, dict(rng), saved)
            except OSError as err:
                raise UserError(f"cannot write checkpoint {path} ({err.strerror or err})") from None
            ckpt.prune_checkpoints(self.root, self.train_cfg["keep_checkpoints"])

        on_main(self.acc, write)  # a failed write stops every process, not only the main one
        self.saved_step = state.step
        self.saved_elapsed = state.elapsed if agreed_elapsed is None else agreed_elapsed
