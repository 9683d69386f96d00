"""``RunState``: where a pretraining run is, exactly what a checkpoint stores besides the tensors
(weights, optimizer moments, RNG states: bert_helu.pretraining.checkpoint_files) and what resuming
restores."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class RunState:
    identity: dict  # what makes the run's result (bert_helu.runtime.identity.pretrain_identity)
    step: int = 0  # optimizer steps taken
    samples_seen: int = 0  # sequences consumed: the position in the data order
    elapsed: float = 0.0  # training seconds of the budget used (validation and saving not counted)
    skipped_steps: int = 0  # updates skipped for a non-finite loss or gradient
    overflow_steps: int = 0  # fp16 updates skipped by the loss scaler
    data: dict | None = None  # a streamed corpus's cursor at samples_seen (bert_helu.data.stream_cursor)

    def advance(self, global_batch: int) -> None:
        """One optimizer step over one global batch."""
        self.step += 1
        self.samples_seen += global_batch

    def to_checkpoint(self) -> dict:
        """The JSON fields of ``state.json`` (their names are the checkpoint format's)."""
        return {
            "step": self.step,
            "position": self.samples_seen,
            "elapsed": self.elapsed,
            "counters": {"skipped_steps": self.skipped_steps, "overflow_steps": self.overflow_steps},
            "identity": self.identity,
            "data": self.data,
        }

    @classmethod
    def from_checkpoint(cls, saved: dict) -> RunState:
        counters = saved.get("counters") or {}
        return cls(
            identity=saved["identity"],
            step=saved["step"],
            samples_seen=saved["position"],
            elapsed=saved["elapsed"],
            skipped_steps=counters.get("skipped_steps", 0),
            overflow_steps=counters.get("overflow_steps", 0),
            data=saved.get("data"),
        )
