"""Everything a pretraining run writes to its output directory, and how it is resumed.

``<run>/`` holds ``checkpoints/step-*/`` (bert_helu.checkpoint), ``metrics.jsonl`` (one JSON object
per logged step / validation / telemetry window), ``tensorboard/``, ``telemetry/`` (pre-activation
histograms), ``final/`` and ``summary.json``. Only the main process writes (it holds the run's lock,
bert_helu.locks); collective calls (loss reduction, RNG gathering) are made by every process at the
same steps, decided from agreed values only (bert_helu.agreement).
"""

from __future__ import annotations

import contextlib
import json
import math
import signal
import time
from pathlib import Path

from accelerate.utils import gather_object
from tqdm.auto import tqdm

from bert_helu import checkpoint as ckpt
from bert_helu.agreement import on_main
from bert_helu.atomic import atomic_write_json
from bert_helu.errors import UserError
from bert_helu.identity import check_identity
from bert_helu.storage import check_free_space


def tracker_names(logging: dict, run_dir: Path | None = None) -> list:
    """accelerate trackers for ``Accelerator(log_with=...)`` (TensorBoard by default, W&B optional).

    With ``run_dir``, TensorBoard writes to ``<run_dir>/tensorboard/`` whatever the W&B project is called
    (accelerate would otherwise name its folder after the project given to ``init_trackers``).
    """
    import importlib.util

    if logging["wandb"] and importlib.util.find_spec("wandb") is None:
        raise UserError("logging.wandb is true but wandb is not installed (pip install 'bert-helu[wandb]')")
    trackers = []
    if logging["tensorboard"]:
        if run_dir is None:
            trackers.append("tensorboard")
        else:
            from accelerate.tracking import TensorBoardTracker

            trackers.append(TensorBoardTracker("tensorboard", run_dir))
    return trackers + (["wandb"] if logging["wandb"] else [])


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


class Telemetry:
    """FFN activation statistics on a window of ``window`` steps every ``every`` steps.

    The hooks (bert_helu.telemetry.FFNMonitor) exist only during a window, so steps outside it pay
    nothing. Per-process statistics; the main process's are written.
    """

    def __init__(self, model, cfg: dict, activation: str, write):
        self.model, self.cfg, self.write, self.monitor = model, cfg, write, None
        self.alpha = None
        if activation.startswith("helu"):
            self.alpha = float(getattr(_first_act(model), "alpha", 0.05))
        self.last_summary = None

    @contextlib.contextmanager
    def window(self, step: int):
        every, length = self.cfg["every"], self.cfg["window"]
        active = self.cfg["enabled"] and every > 0 and step % every < length
        if active and self.monitor is None:
            from bert_helu.modeling import encoder_of
            from bert_helu.telemetry import FFNMonitor

            hist_every = self.cfg["histogram_every"]
            self.window_start = step
            self.monitor = FFNMonitor(
                encoder_of(self.model),  # what SparseMLM calls (with attention_mask as keyword)
                collect_histograms=bool(hist_every) and step % hist_every < length,
                band_alpha=self.alpha,
            )
        yield
        if self.monitor is not None and (not active or step % every == length - 1):
            self.close(step + 1)

    def close(self, step: int) -> None:
        if self.monitor is None:
            return
        summary = self.monitor.summary()
        self.monitor.remove()
        self.monitor = None
        self.last_summary = {"step": step, "window_start": self.window_start, **summary}
        self.write(self.last_summary)


def _first_act(model):
    from bert_helu.modeling import ffn_activation_sites

    owner, attr = ffn_activation_sites(model)[0]
    return getattr(owner, attr)


class RunFiles:
    def __init__(self, directory: Path, accelerator, cfg):
        self.dir, self.acc, self.cfg = Path(directory), accelerator, cfg
        self.main = accelerator.is_main_process
        self.ckpt_root = self.dir / "checkpoints"
        self.bar = None
        self.metrics = None
        self.last_train_loss = None
        self.last_val_loss, self.last_val_step = float("nan"), -1
        self.last_saved_step, self.last_saved_elapsed = -1, 0.0
        self.tokens_at_start, self.window = 0, None
        self.trackers = False
        self.plan = None
        self.data_position = None  # position -> what a checkpoint saves of the data's state

    # --------------------------------------------------------------------------- messages

    def print(self, message: str) -> None:
        if self.main:
            (tqdm.write if self.bar is not None else print)(message)

    def warn(self, message: str) -> None:
        self.print(f"warning: {message}")

    # ------------------------------------------------------------------------ resume logic

    def finished(self, identity: dict) -> bool:
        """A completed run of the same identity is not redone; one of another identity is refused."""
        summary_path = self.dir / "summary.json"
        if not summary_path.is_file():
            return False
        try:
            found = json.loads(summary_path.read_text())["identity"]
        except (OSError, ValueError, KeyError, TypeError):
            raise UserError(f"{summary_path}: exists but is not a bert_helu pretraining summary") from None
        check_identity(found, identity, summary_path)
        self.print(f"{self.dir} already holds this finished run (summary.json); nothing to do")
        return True

    def resume(self, identity: dict, model, optimizer) -> dict | None:
        """Load the newest readable checkpoint of this run; an unreadable one (a disk that lost
        it, a file cut short) is skipped with a warning in favour of the one before."""
        candidates = ckpt.list_checkpoints(self.ckpt_root)[::-1]
        for i, path in enumerate(candidates):
            try:
                loaded = ckpt.load_checkpoint(path)
                check_identity(loaded.state["identity"], identity, path)
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
                self.warn(f"{err}; falling back to {candidates[i + 1].name}")
                continue
            return self._restore(path, loaded)
        return None

    def _restore(self, path, loaded) -> dict:
        rank = self.acc.process_index
        if rank in loaded.rng:
            ckpt.restore_rng(loaded.rng[rank])
        else:
            self.warn(f"checkpoint has no RNG state for process {rank}; dropout masks will differ")
        scaler = getattr(self.acc, "scaler", None)
        if scaler is not None and loaded.state.get("grad_scaler"):
            scaler.load_state_dict(loaded.state["grad_scaler"])
        state = loaded.state
        self.last_saved_step, self.last_saved_elapsed = state["step"], state["elapsed"]
        self.tokens_at_start = state["position"]
        self.print(
            f"resumed from {path} (step {state['step']}, {state['elapsed'] / 60:.1f} min of budget used)"
        )
        return state

    def check_space(self, model) -> None:
        """Refuse to start a run whose checkpoints will not fit (checked by the process that writes)."""
        tr = self.cfg["train"]
        weights = sum(p.numel() * p.element_size() for p in model.parameters())
        # a checkpoint is the weights and two Adam moments; keep_checkpoints of them plus the one
        # being written, and final/
        needed = weights * (3 * (tr["keep_checkpoints"] + 1) + 1)
        on_main(
            self.acc,
            lambda: check_free_space(
                self.dir, needed, "--output-dir", f"{tr['keep_checkpoints']} checkpoint(s) and final/"
            ),
        )

    # ----------------------------------------------------------------------------- logging

    def start(self, activation: str, model, plan, step: int, precision: str) -> None:
        tr = self.cfg["train"]
        self.plan = plan
        self.position_unit = self.cfg["data"]["seq_len"]
        self.window = (time.perf_counter(), step, 0)
        n_params = sum(p.numel() for p in model.parameters())
        self.print(
            f"model: {type(model).__name__} {model.config.num_hidden_layers}x{model.config.hidden_size}, "
            f"{n_params / 1e6:.1f}M parameters, activation {activation}\n"
            f"batch: {plan.describe()}; precision {precision}; device {self.acc.device}"
        )
        if not self.main:
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        self.metrics = open(self.dir / "metrics.jsonl", "a")  # noqa: SIM115 - open for the whole run
        if self.acc.log_with:
            logging = self.cfg["logging"]
            self.acc.init_trackers(
                logging["wandb_project"] if logging["wandb"] else "tensorboard",
                config=tracker_hparams(self.cfg),
                init_kwargs={"wandb": {"name": self.dir.name}} if logging["wandb"] else {},
            )
            self.trackers = True
        if self.cfg["logging"]["progress_bar"]:
            total = tr["max_steps"] or None
            self.bar = tqdm(total=total, initial=step, desc="pretrain", dynamic_ncols=True, smoothing=0.1)

    def _record(self, row: dict, step: int) -> None:
        if not self.main:
            return
        self.metrics.write(json.dumps(row) + "\n")
        self.metrics.flush()
        if self.trackers:
            scalars = {k: v for k, v in row.items() if isinstance(v, (int, float)) and k != "step"}
            self.acc.log(scalars, step=step)

    def log_step(self, step: int, result, masked: int, lr: float, plan, elapsed: float, budget_s) -> None:
        tr = self.cfg["train"]
        if self.bar is not None:
            self.bar.update(1)
        if step % tr["log_every_steps"] and not (tr["max_steps"] and step >= tr["max_steps"]):
            return
        loss = self.acc.reduce(result.loss_sum.detach().clone(), reduction="sum")  # every process calls
        loss = float(loss) / max(masked, 1)
        t0, step0, _ = self.window
        now = time.perf_counter()
        tokens_per_s = (step - step0) * plan.global_batch * self.position_unit / max(now - t0, 1e-9)
        self.window = (now, step, 0)
        self.last_train_loss = loss
        row = {
            "step": step,
            "train/loss": loss,
            "train/lr": lr,
            "train/grad_norm": result.grad_norm,
            "train/tokens_per_s": tokens_per_s,
            "train/elapsed_s": elapsed,
        }
        self._record(row, step)
        if self.bar is not None:
            postfix = {"loss": f"{loss:.3f}", "lr": f"{lr:.2e}", "tok/s": f"{tokens_per_s:,.0f}"}
            if budget_s:
                postfix["budget left"] = f"{max(0.0, budget_s - elapsed) / 60:.1f}min"
            self.bar.set_postfix(postfix, refresh=False)

    def log_validation(self, step: int, loss: float) -> None:
        if step == self.last_val_step:
            return
        self.last_val_loss, self.last_val_step = loss, step
        self._record({"step": step, "val/loss": loss}, step)
        self.print(f"step {step}: validation MLM loss {loss:.4f}")

    def telemetry(self, model) -> Telemetry:
        from bert_helu.modeling import activation_of

        def write(summary: dict) -> None:
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

        return Telemetry(model, self.cfg["telemetry"], activation_of(model), write)

    # --------------------------------------------------------------------------- checkpoints

    def save_data_position_with(self, data_position) -> None:
        self.data_position = data_position

    def checkpoint_due(self, step: int, elapsed: float) -> bool:
        """``elapsed`` must be the agreed clock (bert_helu.agreement.step_values): every process then
        compares it with the same ``last_saved_elapsed`` and reaches the same verdict."""
        tr = self.cfg["train"]
        by_steps = tr["checkpoint_every_steps"] and step % tr["checkpoint_every_steps"] == 0
        by_time = (
            tr["checkpoint_every_minutes"]
            and elapsed - self.last_saved_elapsed >= 60 * tr["checkpoint_every_minutes"]
        )
        return bool(by_steps or by_time)

    def save_checkpoint(
        self, step, position, elapsed, counters, identity, model, optimizer, agreed_elapsed=None
    ) -> None:
        """Collective: every process calls it at the same step. ``elapsed`` (the main process's
        clock) is saved; ``agreed_elapsed`` is the clock the next ``checkpoint_due`` counts from."""
        if step == self.last_saved_step:
            return
        rng = (
            gather_object([(self.acc.process_index, ckpt.capture_rng())])
            if self.acc.num_processes > 1
            else [(0, ckpt.capture_rng())]
        )

        def write() -> None:
            scaler = getattr(self.acc, "scaler", None)
            state = {
                "step": step,
                "position": position,
                "elapsed": elapsed,
                "counters": counters,
                "identity": identity,
                "num_processes": self.acc.num_processes,
                "grad_scaler": scaler.state_dict() if scaler is not None else None,
                "config": self.cfg,
                "data": self.data_position(position) if self.data_position else None,
            }
            path = ckpt.checkpoint_dir(self.ckpt_root, step)
            try:
                ckpt.save_checkpoint(path, model, optimizer, dict(rng), state)
            except OSError as err:
                raise UserError(f"cannot write checkpoint {path} ({err.strerror or err})") from None
            ckpt.prune_checkpoints(self.ckpt_root, self.cfg["train"]["keep_checkpoints"])

        on_main(self.acc, write)  # a failed write stops every process, not only the main one
        self.last_saved_step = step
        self.last_saved_elapsed = elapsed if agreed_elapsed is None else agreed_elapsed

    # ------------------------------------------------------------------------------- finish

    def finish(self, identity, step, position, elapsed, val_loss, counters, monitor, wall_time) -> dict:
        monitor.close(step)
        summary = {
            "activation": identity["activation"],
            "identity": identity,
            "steps": step,
            "tokens_seen": position * self.position_unit,
            "sequences_seen": position,
            "train_time_s": elapsed,
            "wall_time_s": wall_time,
            "final_train_loss": self.last_train_loss,
            "final_validation_loss": None if math.isnan(val_loss) else val_loss,
            "tokens_per_s": position * self.position_unit / elapsed if elapsed > 0 else None,
            "num_processes": self.acc.num_processes,
            "mixed_precision": self.acc.mixed_precision,
            "skipped_steps": counters["skipped_steps"],
            "overflow_steps": counters.get("overflow_steps", 0),
            "global_batch_size": self.cfg["train"]["global_batch_size"],
            "batch_plan": self.plan.as_dict() if self.plan else None,
            "seq_len": self.position_unit,
            "final_dir": str(self.dir / "final"),
            "telemetry": monitor.last_summary["mean"] if monitor.last_summary else None,
            "config": self.cfg,
        }
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        if self.main:
            atomic_write_json(self.dir / "summary.json", summary)
            self.metrics.close()
            if self.trackers:
                self.acc.end_training()
            self.print(
                f"done: {step} steps, {summary['tokens_seen']:,} tokens, validation MLM loss "
                f"{summary['final_validation_loss']}; model in {self.dir / 'final'}"
            )
        return summary


def add_histograms(writer, histograms: dict, step: int) -> None:
    """Telemetry histograms (counts over fixed bins) as TensorBoard histograms, one per FFN layer.

    TensorBoard draws the bucket counts; the sum and sum of squares it also stores are estimated from
    bin centres. Values outside the binned range go in one bucket on each side.
    """
    for layer, hist in histograms.items():
        edges, counts = hist["edges"], hist["counts"]
        limits, buckets = list(edges[1:]), list(counts)
        if hist["below"]:
            limits, buckets = [edges[0], *limits], [hist["below"], *buckets]
        if hist["above"]:
            limits, buckets = [*limits, max(hist["max"] or edges[-1], edges[-1])], [*buckets, hist["above"]]
        centres = [(a + b) / 2 for a, b in zip(edges[:-1], edges[1:], strict=True)]
        total = sum(buckets)
        if not total:
            continue
        writer.add_histogram_raw(
            f"telemetry/preactivation/layer{layer}",
            min=hist["min"] if hist["min"] is not None else edges[0],
            max=hist["max"] if hist["max"] is not None else edges[-1],
            num=total,
            sum=sum(c * x for c, x in zip(counts, centres, strict=True)),
            sum_squares=sum(c * x * x for c, x in zip(counts, centres, strict=True)),
            bucket_limits=limits,
            bucket_counts=buckets,
            global_step=step,
        )


def tracker_hparams(cfg: dict, prefix: str = "") -> dict:
    """Scalars only, as TensorBoard's hparams want them; lists and null as JSON text."""
    out = {}
    for key, value in cfg.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(tracker_hparams(value, f"{name}."))
        elif isinstance(value, (int, float, str, bool)):
            out[name] = value
        else:
            out[name] = json.dumps(value)
    return out
