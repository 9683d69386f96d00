"""What a pretraining run reports: console messages and progress bar, ``metrics.jsonl`` (one JSON
object per logged step, validation and telemetry window), the trackers (bert_helu.runtime.trackers),
``telemetry/`` histograms and, at the end, ``summary.json``. Only the main process writes."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

from tqdm.auto import tqdm

from bert_helu.pretraining.state import RunState
from bert_helu.runtime.atomic import atomic_write_json
from bert_helu.runtime.paths import display_path
from bert_helu.runtime.progress import progress_as_lines
from bert_helu.runtime.trackers import add_histograms, tracker_hparams


class RunLog:
    def __init__(self, run_dir: Path, accelerator, cfg: dict, identity: dict):
        self.dir, self.acc, self.cfg, self.identity = Path(run_dir), accelerator, cfg, identity
        self.main = accelerator.is_main_process
        self.seq_len = cfg["data"]["seq_len"]
        self.bar = self.metrics = self.plan = None
        self.trackers = self.lines = False
        self.last_train_loss = None
        self.last_validation = (-1, float("nan"))  # (step, loss)
        self.window = (time.perf_counter(), 0)  # (time, step) of the last logged step: tokens/s

    # --------------------------------------------------------------------------- messages

    def print(self, message: str) -> None:
        if self.main:
            (tqdm.write if self.bar is not None else print)(message)

    def warn(self, message: str) -> None:
        self.print(f"warning: {message}")

    # ----------------------------------------------------------------------------- records

    def preamble(self, corpus_summary: dict, plan) -> None:
        """What the run trains on, and how its batch was split over the processes."""
        from bert_helu.data import format_summary

        self.print(format_summary(corpus_summary))
        if plan.lowered:
            self.print(
                f"batch: micro-batch lowered from {plan.recipe_micro_batch} to {plan.micro_batch} so that "
                f"the global batch {plan.global_batch} splits evenly over {plan.world_size} process(es)"
            )

    def start(self, model, plan, step: int) -> None:
        """Describe the run, then open metrics.jsonl, the trackers and the progress bar."""
        self.plan = plan
        self.window = (time.perf_counter(), step)
        n_params = sum(p.numel() for p in model.parameters())
        self.print(
            f"model: {type(model).__name__} {model.config.num_hidden_layers}x{model.config.hidden_size}, "
            f"{n_params / 1e6:.1f}M parameters, activation {self.identity['activation']}\n"
            f"batch: {plan.describe()}; precision {self.acc.mixed_precision}; device {self.acc.device}"
        )
        if not self.main:
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        self.metrics = open(self.dir / "metrics.jsonl", "a")  # noqa: SIM115 - open for the whole run
        logging = self.cfg["logging"]
        if self.acc.log_with:
            self.acc.init_trackers(
                logging["wandb_project"] if logging["wandb"] else "tensorboard",
                config=tracker_hparams(self.cfg),
                init_kwargs={"wandb": {"name": self.dir.name}} if logging["wandb"] else {},
            )
            self.trackers = True
        # A redrawn bar in a file (a cluster job's log) is thousands of redraws joined by carriage
        # returns: there, each logging step prints one plain line instead (``step``).
        self.lines = logging["progress_bar"] and progress_as_lines()
        if logging["progress_bar"] and not self.lines:
            total = self.cfg["train"]["max_steps"] or None
            self.bar = tqdm(total=total, initial=step, desc="pretrain", dynamic_ncols=True, smoothing=0.1)

    def _record(self, row: dict, step: int) -> None:
        if not self.main:
            return
        self.metrics.write(json.dumps(row) + "\n")
        self.metrics.flush()
        if self.trackers:
            scalars = {k: v for k, v in row.items() if isinstance(v, (int, float)) and k != "step"}
            self.acc.log(scalars, step=step)

    def logging_step(self, step: int) -> bool:
        """Whether step ``step`` (counted once it ran) logs a row: every ``log_every_steps``, and the last."""
        tr = self.cfg["train"]
        return not step % tr["log_every_steps"] or bool(tr["max_steps"] and step >= tr["max_steps"])

    def step(self, state: RunState, result, masked: int, lr: float, budget_s: float | None) -> None:
        """After each optimizer step; on logging steps a row, whose loss and gradient norm are the
        only values of the step read back from the device (the loss is already summed over processes)."""
        step = state.step
        if self.bar is not None:
            self.bar.update(1)
        if not self.logging_step(step):
            return
        loss = float(result.loss_sum) / max(masked, 1)
        t0, step0 = self.window
        now = time.perf_counter()
        tokens_per_s = (step - step0) * self.plan.global_batch * self.seq_len / max(now - t0, 1e-9)
        self.window = (now, step)
        self.last_train_loss = loss
        row = {
            "step": step,
            "train/loss": loss,
            "train/lr": lr,
            "train/grad_norm": float(result.grad_norm),
            "train/tokens_per_s": tokens_per_s,
            "train/elapsed_s": state.elapsed,
        }
        self._record(row, step)
        shown = {"loss": f"{loss:.3f}", "lr": f"{lr:.2e}", "tok/s": f"{tokens_per_s:,.0f}"}
        if budget_s:
            shown["budget left"] = f"{max(0.0, budget_s - state.elapsed) / 60:.1f} min"
        if self.bar is not None:
            self.bar.set_postfix(shown, refresh=False)
        elif self.lines:
            total = self.cfg["train"]["max_steps"]
            self.print(
                " | ".join(
                    [f"step {step}" + (f"/{total}" if total else "")] + [f"{k} {v}" for k, v in shown.items()]
                )
            )

    def validation(self, step: int, loss: float) -> None:
        if step == self.last_validation[0]:
            return
        self.last_validation = (step, loss)
        self._record({"step": step, "val/loss": loss}, step)
        self.print(f"step {step}: validation MLM loss {loss:.4f}")

    def validation_at(self, step: int) -> float | None:
        """The validation loss logged at ``step``, if one was."""
        logged_step, loss = self.last_validation
        return loss if logged_step == step else None

    def telemetry(self, summary: dict) -> None:
        """A closed telemetry window (bert_helu.pretraining.telemetry.TelemetryWindows): its row, and its
        histograms as a JSON file and in TensorBoard."""
        if not self.main:
            return
        layers = summary["layers"]
        histograms = {layer["layer"]: layer.pop("histogram") for layer in layers if "histogram" in layer}
        if histograms:
            atomic_write_json(
                self.dir / "telemetry" / f"histograms-step{summary['window_start']:08d}.json",
                {"step": summary["window_start"], "layers": histograms},
            )
            if self.trackers and self.cfg["logging"]["tensorboard"]:
                writer = self.acc.get_tracker("tensorboard", unwrap=True)
                add_histograms(writer, histograms, summary["window_start"])
        row = {"step": summary["step"], "telemetry": summary}
        for key, value in summary["mean"].items():
            if value is not None:
                row[f"telemetry/{key}"] = value
        self._record(row, summary["step"])

    # ------------------------------------------------------------------------------- finish

    def finish(self, state: RunState, val_loss: float, telemetry: dict | None, wall_time: float) -> dict:
        """Write ``summary.json`` (the finished run) and close the files and trackers."""
        summary = {
            "activation": self.identity["activation"],
            "identity": self.identity,
            "steps": state.step,
            "tokens_seen": state.samples_seen * self.seq_len,
            "sequences_seen": state.samples_seen,
            "train_time_s": state.elapsed,
            "wall_time_s": wall_time,
            "final_train_loss": self.last_train_loss,
            "final_validation_loss": None if math.isnan(val_loss) else val_loss,
            "tokens_per_s": state.samples_seen * self.seq_len / state.elapsed if state.elapsed > 0 else None,
            "num_processes": self.acc.num_processes,
            "mixed_precision": self.acc.mixed_precision,
            "skipped_steps": state.skipped_steps,
            "overflow_steps": state.overflow_steps,
            "global_batch_size": self.cfg["train"]["global_batch_size"],
            "batch_plan": self.plan.as_dict() if self.plan else None,
            "seq_len": self.seq_len,
            "final_dir": display_path(self.dir / "final"),
            "telemetry": telemetry["mean"] if telemetry else None,
            "config": self.cfg,
        }
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        if self.main:
            atomic_write_json(self.dir / "summary.json", summary)
            self.metrics.close()
            if self.trackers:
                # the trackers only: accelerate's end_training would also tear down the process group
                # here, on the main process alone, while the others still talk to it
                for tracker in self.acc.trackers:
                    tracker.finish()
            self.print(
                f"done: {state.step} steps, {summary['tokens_seen']:,} tokens, validation MLM loss "
                f"{summary['final_validation_loss']}; model in {self.dir / 'final'}"
            )
        return summary
