"""The GPU check: one prepared script that a session with a lent GPU runs once (scripts/gpu_check.sh).

    python scripts/bench_gpu.py                     # on one GPU: about 7.5 minutes on an H100
    python scripts/bench_gpu.py --smoke             # anywhere: a 2 x 64 model in fp32, minutes on a CPU
    python scripts/bench_gpu.py --parts speed --steps 100   # one part, longer

Everything runs through the programs themselves (``python -m pretrain``, ``python -m finetune``), on
the bundled sample corpus (the demo's: configs/pretrain/demo.yaml) with the model and optimizer of
configs/pretrain/crammed-bert.yaml (16 x 768 crammed encoder, global batch 288, bf16):

0. peak: the bf16 matmul FLOP/s of this GPU (a loop of 8192^3 products), what MFU is measured against.
1. speed: tokens/s and MFU of GELU, ReLU and HeLU (helu:alpha=0.05), eager and ``train.compile=true``,
   a short run each; the steady-state steps are timed from the run's own log (metrics.jsonl: steps
   and training seconds, after the first ``--timed-from`` steps), MFU = model matmul FLOPs
   (bert_helu.models.flops, sparse MLM head) per second over the peak.
2. loss: a 2-minute run (the recipe's time-driven one-cycle schedule over a 2-minute budget): the
   training loss must fall.
3. resume: the same step-driven run twice: once straight through, once SIGKILLed after its first
   checkpoint and started again with the same command; both must end at the same step with the same
   loss (bitwise the same weights on a CPU; on a GPU non-deterministic kernels may leave a small
   difference, which is reported).
4. glue: SST-2 (the sample's 400 training rows) fine-tuned from the 2-minute model with
   ``python -m finetune``.

A time budget (``--budget-s``) bounds the whole script: a part that no longer fits is skipped and
said so, and the JSON and the page are rewritten after every part, so a run cut short still reports
what it measured. ``--smoke`` shrinks everything (tiny model via overrides, a few steps, fp32) so it
runs end to end on a CPU; tests/scripts/test_bench_gpu.py runs it at its smallest. The page is written
by bert_helu.analysis.bench_gpu_page.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # this checkout's bert_helu, whatever is installed
from bert_helu.analysis import bench_gpu_page  # noqa: E402

RECIPE = "configs/pretrain/crammed-bert.yaml"
DEMO_RECIPE = REPO / "configs" / "pretrain" / "demo.yaml"
GLUE_DIR = "bert_helu/sample_data/glue_data"
ACTIVATIONS = ("gelu", "relu", "helu:alpha=0.05")
PARTS = ("speed", "loss", "resume", "glue")
MODES = ("eager", "compiled")


@dataclass
class Mode:
    """Sizes of one kind of run: the GPU check, or the CPU smoke run."""

    name: str
    precision: str  # train.mixed_precision
    overrides: list[str]  # model and batch overrides on top of the recipe
    peak_dtype: str
    peak_n: int
    speed_steps: int
    timed_from: int  # steps before this one are warm-up (compilation, allocator, cuDNN choices)
    speed_log_every: int
    loss_seconds: float
    loss_log_every: int
    loss_eval_every: int
    loss_must_fall: float  # the last logged losses below the first ones by at least this much
    resume_steps: int
    resume_every: int
    glue: list[str] = field(default_factory=list)
    budget_s: float = 460.0


GPU = Mode(
    name="gpu",
    precision="bf16",
    overrides=[],
    peak_dtype="bfloat16",
    peak_n=8192,
    speed_steps=60,
    timed_from=20,
    speed_log_every=10,
    loss_seconds=120.0,
    loss_log_every=25,
    loss_eval_every=250,
    loss_must_fall=1.0,
    resume_steps=60,  # the kill comes after step 15: most of the run is left to redo
    resume_every=10,
    glue=["train.epochs=3", "train.batch_size=32"],
)

SMOKE = Mode(
    name="smoke",
    precision="no",
    overrides=[
        "model.hidden_size=64",
        "model.num_hidden_layers=2",
        "model.num_attention_heads=2",
        "model.intermediate_size=128",
        "data.vocab_size=2048",
        "data.num_proc=2",
        "train.global_batch_size=16",
        "train.micro_batch_size=16",
        "train.lr=2.0e-3",  # the demo's: the recipe's 1e-4 moves a tiny model too little in seconds
        "train.cpu_threads=1",
    ],
    peak_dtype="float32",
    peak_n=1024,
    speed_steps=8,
    timed_from=4,
    speed_log_every=2,
    loss_seconds=15.0,
    loss_log_every=5,
    loss_eval_every=20,
    loss_must_fall=0.05,  # a few seconds of a tiny model: the loss starts to fall, no more
    resume_steps=24,
    resume_every=4,
    glue=["train.epochs=1", "train.max_train_examples=64", "train.max_eval_examples=32", "torch_threads=1"],
    budget_s=900.0,
)


# ------------------------------------------------------------------------------- running programs


class Clock:
    """The script's time budget: what is left, and the timeout a program may have."""

    def __init__(self, budget_s: float):
        self.start = time.monotonic()
        self.budget_s = budget_s

    def left(self) -> float:
        return self.budget_s - (time.monotonic() - self.start)

    def allows(self, needed_s: float) -> bool:
        return self.left() >= needed_s


def program_env() -> dict:
    env = dict(os.environ)
    # the checkout first, then whatever the caller put there (gpu_check.sh: carried wheels)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    env.setdefault("HF_HUB_OFFLINE", "1")  # everything is local: a hub lookup would only wait
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    env["PYTHONUNBUFFERED"] = "1"
    return env


def start(argv: list[str], log: Path) -> subprocess.Popen:
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as out:
        out.write("$ " + shlex.join(argv) + "\n")
        out.flush()
        # a session of its own: a kill reaches the program's own workers too
        return subprocess.Popen(
            argv, cwd=REPO, env=program_env(), stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def finish(process: subprocess.Popen, timeout_s: float) -> int | None:
    """The exit status, or None when the program ran out of time (it is killed then)."""
    try:
        return process.wait(timeout=max(1.0, timeout_s))
    except subprocess.TimeoutExpired:
        kill(process)
        return None


def kill(process: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def run(argv: list[str], log: Path, clock: Clock, reserve_s: float = 5.0) -> dict:
    """Run a program to its end within the budget: {"status", "seconds", "log"}."""
    t0 = time.monotonic()
    code = finish(start(argv, log), clock.left() - reserve_s)
    seconds = round(time.monotonic() - t0, 1)
    status = "ok" if code == 0 else ("out of time" if code is None else f"exit {code}")
    return {"status": status, "seconds": seconds, "log": shown(log)}


def shown(path: str | Path) -> str:
    """A path as the page shows it: from the repository root when inside it."""
    return str(path).replace(f"{REPO}{os.sep}", "")


def tail(log: str | Path, lines: int = 5) -> str:
    try:
        return "\n".join((REPO / log).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


# ------------------------------------------------------------------------------------ the runs


class Bench:
    def __init__(self, mode: Mode, work: Path, clock: Clock, args):
        self.mode, self.work, self.clock = mode, work, clock
        self.speed_steps = args.steps or mode.speed_steps
        self.loss_seconds = args.loss_seconds or mode.loss_seconds
        demo = yaml.safe_load(DEMO_RECIPE.read_text())["data"]
        self.common = [
            f"data.sources={json.dumps(demo['sources'])}",  # the demo's corpus: the bundled sample
            f"data.validation_fraction={demo['validation_fraction']}",
            f"data.max_validation_sequences={demo['max_validation_sequences']}",
            f"data.cache_dir={work / 'cache'}",
            f"train.mixed_precision={mode.precision}",
            "train.checkpoint_every_minutes=0",
            "train.eval_batches=4",
            "telemetry.enabled=false",  # its windows run the eager model: they would blur the timings
            "logging.tensorboard=false",
            "logging.progress_bar=false",
            *mode.overrides,
        ]

    def pretrain(self, out: Path, activation: str, *extra: str) -> list[str]:
        return [
            sys.executable,
            "-m",
            "pretrain",
            "--config",
            RECIPE,
            "--activation",
            activation,
            "--output-dir",
            str(out),
            *self.common,
            *extra,
        ]

    def steps_run(self, steps: int, log_every: int) -> list[str]:
        """A run of ``steps`` steps whose schedule follows the steps: the same on every rerun."""
        return [
            f"train.max_steps={steps}",
            "train.budget_hours=0",
            "train.schedule_progress=steps",
            f"train.log_every_steps={log_every}",
            "train.eval_every_steps=0",
        ]

    # ---------------------------------------------------------------------------------- parts

    def prepare(self) -> dict:
        argv = [sys.executable, "-m", "pretrain", "--config", RECIPE, "--prepare-only", *self.common]
        return run(argv, self.work / "logs" / "prepare.log", self.clock)

    def speed(self, activation: str, compiled: bool) -> dict:
        name = f"{activation.split(':')[0]}-{'compiled' if compiled else 'eager'}"
        out = self.work / "speed" / name
        argv = self.pretrain(
            out,
            activation,
            *self.steps_run(self.speed_steps, self.mode.speed_log_every),
            f"train.compile={str(compiled).lower()}",
        )
        row = {
            "activation": activation,
            "compile": compiled,
            **run(argv, self.work / "logs" / f"speed-{name}.log", self.clock),
        }
        if row["status"] == "ok":
            # a compiled model may recompile once more shapes were seen (the masked tokens' count
            # varies): its second half is timed
            start = max(self.mode.timed_from, self.speed_steps // 2) if compiled else self.mode.timed_from
            row.update(steady_speed(out, start))
        return row

    def loss(self) -> dict:
        out = self.work / "loss"
        extra = [
            f"train.budget_hours={self.loss_seconds / 3600}",
            "train.max_steps=0",
            f"train.log_every_steps={self.mode.loss_log_every}",
            f"train.eval_every_steps={self.mode.loss_eval_every}",
        ]
        result = run(
            self.pretrain(out, "helu:alpha=0.05", *extra), self.work / "logs" / "loss.log", self.clock
        )
        result["budget_s"] = self.loss_seconds
        if result["status"] == "ok":
            result.update(loss_curve(out, self.mode.loss_must_fall))
            result["checkpoint"] = shown(out / "final")
        return result

    def resume(self) -> dict:
        steps, every = self.mode.resume_steps, self.mode.resume_every
        extra = [
            *self.steps_run(steps, max(1, every // 2)),
            f"train.checkpoint_every_steps={every}",
            "train.keep_checkpoints=10",
        ]
        straight, killed = self.work / "resume" / "straight", self.work / "resume" / "killed"
        logs = self.work / "logs"
        result = {"steps": steps, "checkpoint_every": every}
        result["straight"] = run(
            self.pretrain(straight, "helu:alpha=0.05", *extra), logs / "resume-straight.log", self.clock
        )
        if result["straight"]["status"] != "ok":
            return {**result, "status": "the uninterrupted run failed"}
        argv = self.pretrain(killed, "helu:alpha=0.05", *extra)
        result["killed_at"] = kill_after_checkpoint(
            argv, killed, every, logs / "resume-killed.log", self.clock
        )
        if not result["killed_at"].get("killed"):
            return {**result, "status": "not killed midway: " + result["killed_at"]["why"]}
        if (killed / "summary.json").exists():
            return {**result, "status": "not killed midway: it had finished"}
        result["resumed"] = run(argv, logs / "resume-resumed.log", self.clock)
        if result["resumed"]["status"] != "ok":
            return {**result, "status": "the resumed run failed"}
        result["resumed_from"] = resumed_from(logs / "resume-resumed.log")
        result.update(same_end(straight, killed))
        return result

    def glue(self, checkpoint: Path) -> dict:
        out = self.work / "glue"
        argv = [
            sys.executable,
            "-m",
            "finetune",
            "--checkpoints",
            f"bench={checkpoint}",
            "--tasks",
            "sst2",
            "--seeds",
            "42",
            "--glue-dir",
            GLUE_DIR,
            "--output-dir",
            str(out),
            *self.mode.glue,
        ]
        result = run(argv, self.work / "logs" / "glue.log", self.clock)
        found = sorted(out.rglob("results.json"))
        if result["status"] == "ok" and found:
            res = json.loads(found[0].read_text())
            result.update(
                {
                    key: res.get(key)
                    for key in (
                        "task",
                        "metrics",
                        "history",
                        "num_train_examples",
                        "num_eval_examples",
                        "train_seconds",
                        "train_examples_per_second",
                        "optimizer_steps",
                        "mixed_precision",
                        "activation",
                    )
                }
            )
        return result


def metrics_lines(run_dir: Path) -> list[dict]:
    path = run_dir / "metrics.jsonl"
    return (
        [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []
    )


def steady_speed(run_dir: Path, timed_from: int) -> dict:
    """tokens/s and MFU of the logged steps after ``timed_from``, from the run's own log."""
    from transformers import AutoConfig

    from bert_helu.models.flops import flops_per_step

    summary = json.loads((run_dir / "summary.json").read_text())
    logged = [m for m in metrics_lines(run_dir) if "train/elapsed_s" in m]
    timed = [m for m in logged if m["step"] >= timed_from]
    batch, seq_len = summary["global_batch_size"], summary["seq_len"]
    if len(timed) >= 2:
        first, last = timed[0], timed[-1]
        steps, span = last["step"] - first["step"], f"{first['step']}-{last['step']}"
        seconds = last["train/elapsed_s"] - first["train/elapsed_s"]
    elif summary.get("train_time_s"):  # a log without step times: the whole run, warm-up included
        steps, span, seconds = summary["steps"], "all", summary["train_time_s"]
    else:
        return {"status": f"too few logged steps after step {timed_from} to time"}
    config = AutoConfig.from_pretrained(str(run_dir / "final"))
    masked = summary["config"]["train"]["mlm_probability"] * batch * seq_len  # the sparse head's tokens
    flops = flops_per_step(config, batch, seq_len, masked)
    return {
        "timed_steps": span,
        "s_per_step": seconds / steps,
        "tokens_per_s": steps * batch * seq_len / seconds,
        "model_flops_per_step": flops,
        "achieved_tflops": flops * steps / seconds / 1e12,
        "warmup_s": logged[0]["train/elapsed_s"] if logged else None,  # compilation shows here
        "warmup_steps": logged[0]["step"] if logged else None,
        "final_train_loss": summary.get("final_train_loss"),
        "model": f"{config.num_hidden_layers} x {config.hidden_size}, vocabulary {config.vocab_size}",
        "global_batch": batch,
        "seq_len": seq_len,
        "micro_batch": summary["batch_plan"]["micro_batch_size"],
    }


def loss_curve(run_dir: Path, must_fall: float) -> dict:
    lines = metrics_lines(run_dir)
    train = [(m["step"], m["train/loss"]) for m in lines if "train/loss" in m]
    val = [(m["step"], m["val/loss"]) for m in lines if "val/loss" in m]
    summary = json.loads((run_dir / "summary.json").read_text())
    if len(train) < 4:
        return {"status": "too few logged losses", "train": train, "validation": val}
    k = max(1, min(3, len(train) // 4))
    first = sum(loss for _, loss in train[:k]) / k
    last = sum(loss for _, loss in train[-k:]) / k
    falls = last <= first - must_fall
    every = max(1, len(train) // 12)  # the page shows about a dozen points
    return {
        "status": "ok" if falls else f"the loss did not fall by {must_fall}",
        "steps": summary["steps"],
        "train_time_s": summary.get("train_time_s"),
        "tokens_seen": summary.get("tokens_seen"),
        "first_loss": first,
        "last_loss": last,
        "must_fall_by": must_fall,
        "falls": falls,
        "final_validation_loss": summary.get("final_validation_loss"),
        "train": train[::every] + ([train[-1]] if (len(train) - 1) % every else []),
        "validation": val,
    }


def kill_after_checkpoint(argv, run_dir: Path, every: int, log: Path, clock: Clock) -> dict:
    """Start the run, SIGKILL it once its first checkpoint is written and it has trained on past it."""
    process = start(argv, log)
    checkpoint = run_dir / "checkpoints" / f"step-{every:08d}"  # published by a rename: whole when there
    t0 = time.monotonic()
    while process.poll() is None and clock.left() > 10:
        if checkpoint.is_dir():
            steps = [m["step"] for m in metrics_lines(run_dir) if "step" in m]
            if steps and max(steps) > every:  # midway to the next checkpoint
                kill(process)
                return {"killed": True, "after_step": max(steps), "seconds": round(time.monotonic() - t0, 1)}
        time.sleep(0.02)
    if process.poll() is None:
        kill(process)
        return {"killed": False, "why": "out of time before its first checkpoint"}
    return {"killed": False, "why": f"it ended first (exit {process.returncode}): {tail(log, 2)}"}


def resumed_from(log: Path) -> str | None:
    for line in Path(log).read_text(errors="replace").splitlines():
        if "resumed from" in line:
            return shown(line.strip())
    return None


def same_end(a: Path, b: Path) -> dict:
    """Whether two runs ended at the same place: step, losses, weights."""
    import torch
    from safetensors.torch import load_file

    sa, sb = (json.loads((d / "summary.json").read_text()) for d in (a, b))
    wa, wb = (load_file(str(d / "final" / "model.safetensors")) for d in (a, b))
    same_keys = wa.keys() == wb.keys()
    diff = (
        max((float((wa[k].float() - wb[k].float()).abs().max()) for k in wa), default=0.0)
        if same_keys
        else None
    )
    bitwise = same_keys and all(torch.equal(wa[k], wb[k]) for k in wa)
    keys = ("steps", "final_train_loss", "final_validation_loss")
    loss_gap = abs(sa["final_validation_loss"] - sb["final_validation_loss"])
    close = sa["steps"] == sb["steps"] and loss_gap <= 0.01 * abs(sa["final_validation_loss"])
    return {
        "status": "ok" if bitwise or close else "the resumed run ended elsewhere",
        "uninterrupted": {k: sa.get(k) for k in keys},
        "resumed_run": {k: sb.get(k) for k in keys},
        "weights_bitwise_equal": bitwise,
        "weights_max_abs_difference": diff,
        "validation_loss_difference": loss_gap,
    }


# ------------------------------------------------------------------------------- the machine


def matmul_peak(dtype_name: str, n: int, seconds: float = 2.0) -> dict:
    """FLOP/s of a loop of n x n x n matmuls (best of several timed batches), on the GPU if any."""
    import torch

    dtype = getattr(torch, dtype_name)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    a, b = (torch.randn(n, n, device=device).to(dtype) for _ in range(2))

    def batch(count: int) -> float:
        if device == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(count):
            torch.mm(a, b)
        if device == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t0

    batch(3)  # warm-up: kernel choice, clocks up
    count = 1
    while batch(count) < seconds / 10 and count < 4096:
        count *= 2
    best = min(batch(count) for _ in range(5))
    return {
        "device": device,
        "dtype": dtype_name,
        "n": n,
        "products": count,
        "flops": 2 * n**3 * count / best,
    }


def machine(mode: Mode) -> dict:
    import accelerate
    import torch
    import transformers

    from bert_helu.runtime.precision import cpu_info

    info = {
        **cpu_info(),
        "cores": os.cpu_count(),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "transformers": transformers.__version__,
        "accelerate": accelerate.__version__,
        "mode": mode.name,
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "load_average_at_start": round(os.getloadavg()[0], 2),  # other jobs on the machine show here
    }
    try:
        import datasets

        info["datasets"] = datasets.__version__
    except ImportError:
        info["datasets"] = None
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        info.update(
            gpu=props.name,
            gpu_memory_gib=round(props.total_memory / 2**30, 1),
            gpu_capability=f"{props.major}.{props.minor}",
            gpu_count=torch.cuda.device_count(),
        )
        try:
            smi = subprocess.run(
                ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                capture_output=True,
                text=True,
                timeout=20,
            )
            info["driver"] = smi.stdout.strip().splitlines()[0] if smi.returncode == 0 else None
        except (OSError, subprocess.TimeoutExpired, IndexError):
            info["driver"] = None
    else:
        info["gpu"] = None
    return info


# ------------------------------------------------------------------------------------ main


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--smoke", action="store_true", help="tiny model, fp32, few steps: runs on a CPU")
    parser.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated, of {','.join(PARTS)}")
    parser.add_argument("--steps", type=int, help="steps of each speed run (default: 60; smoke 8)")
    parser.add_argument(
        "--activations", default=",".join(ACTIVATIONS), help="comma-separated, for the speed runs"
    )
    parser.add_argument("--loss-seconds", type=float, help="the loss run's budget (default 120; smoke 15)")
    parser.add_argument(
        "--modes",
        help="the speed runs' modes, comma-separated, of eager,compiled (default: both on a GPU, eager with "
        "--smoke: inductor's C++ build takes minutes on a CPU)",
    )
    parser.add_argument("--budget-s", type=float, help="time for the whole script (default 460; smoke 900)")
    parser.add_argument(
        "--work-dir",
        type=Path,
        default=REPO / "runs" / "bench_gpu",
        help="where the runs go (default runs/bench_gpu; emptied first)",
    )
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "bench_gpu.json")
    parser.add_argument("--markdown", type=Path, default=REPO / "docs" / "bench_gpu.md")
    args = parser.parse_args(argv)
    args.parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    args.activations = [a.strip() for a in args.activations.split(",") if a.strip()]
    modes = args.modes or ("eager" if args.smoke else "eager,compiled")
    args.modes = [m.strip() for m in modes.split(",") if m.strip()]
    for option, given, known in (("--parts", args.parts, PARTS), ("--modes", args.modes, MODES)):
        unknown = set(given) - set(known)
        if unknown:
            parser.exit(
                2, f"error: {option}: unknown {', '.join(sorted(unknown))} (known: {', '.join(known)})\n"
            )
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    import shutil

    import torch

    mode = SMOKE if args.smoke else GPU
    if not args.smoke and not torch.cuda.is_available():
        print("error: no GPU here: run with --smoke for the CPU smoke run", file=sys.stderr)
        return 2
    clock = Clock(args.budget_s or mode.budget_s)
    shutil.rmtree(args.work_dir, ignore_errors=True)
    args.work_dir.mkdir(parents=True)
    bench = Bench(mode, args.work_dir, clock, args)
    command = "python scripts/bench_gpu.py" + "".join(
        f" {shlex.quote(a)}" for a in (argv if argv is not None else sys.argv[1:])
    )
    results = {
        "command": command,
        "machine": machine(mode),
        "precision": mode.precision,
        "budget_s": clock.budget_s,
        "skipped": [],
    }

    def save() -> None:
        results["total_s"] = round(time.monotonic() - clock.start, 1)
        results["machine"]["load_average_at_end"] = round(os.getloadavg()[0], 2)
        for path, text in (
            (args.out, json.dumps(results, indent=2) + "\n"),
            (args.markdown, bench_gpu_page.markdown(results)),
        ):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)

    def say(text: str) -> None:
        print(f"[{time.monotonic() - clock.start:6.1f} s] {text}", flush=True)

    results["peak"] = matmul_peak(mode.peak_dtype, mode.peak_n)
    say(f"matmul peak {results['peak']['flops'] / 1e12:.2f} TFLOP/s ({mode.peak_dtype})")
    results["prepare"] = bench.prepare()
    say(f"corpus: {results['prepare']['status']} in {results['prepare']['seconds']} s")
    save()
    if results["prepare"]["status"] != "ok":
        results["skipped"].append(
            f"everything: the corpus could not be prepared ({tail(results['prepare']['log'], 3)})"
        )
        save()
        return 1
    # what a part needs at least, to start it (a bigger model's runs start slower)
    needs = {"speed": 30, "loss": bench.loss_seconds + 45, "resume": 75, "glue": 40}
    speed = "speed" in args.parts
    plan = [("speed", False, a) for a in args.activations] if speed and "eager" in args.modes else []
    plan += [(p, None, None) for p in ("loss", "resume", "glue") if p in args.parts]
    if speed and "compiled" in args.modes:
        plan += [("speed", True, a) for a in args.activations]  # last: the compile time is the least known
    results["speed"] = []
    for part, compiled, activation in plan:
        label = f"speed {activation} {'compiled' if compiled else 'eager'}" if part == "speed" else part
        if not clock.allows(needs[part]):
            results["skipped"].append(
                f"{label}: {clock.left():.0f} s left of the budget, it needs about {needs[part]:.0f}"
            )
            say(f"skipped {label}: out of time")
            continue
        if part == "speed":
            row = bench.speed(activation, compiled)
            results["speed"].append(row)
            say(f"{label}: {row['status']}, {bench_gpu_page.fmt(row.get('tokens_per_s'), 0)} tokens/s")
        elif part == "loss":
            results["loss"] = bench.loss()
            say(f"loss: {results['loss']['status']}")
        elif part == "resume":
            results["resume"] = bench.resume()
            say(f"resume: {results['resume'].get('status')}")
        elif part == "glue":
            # the loss run's model, or else the resume check's (paths are shown from the repo root)
            checkpoint = REPO / (
                results.get("loss", {}).get("checkpoint") or args.work_dir / "resume" / "straight" / "final"
            )
            if not (checkpoint / "config.json").is_file():
                results["skipped"].append(
                    "glue: no pretrained checkpoint (the loss and resume parts did not finish)"
                )
                continue
            results["glue"] = bench.glue(checkpoint)
            say(f"glue: {results['glue']['status']} {results['glue'].get('metrics')}")
        save()
    save()
    failed = [r for r in results["speed"] if r["status"] != "ok"]
    failed += [
        results[p] for p in ("loss", "resume", "glue") if p in results and results[p].get("status") != "ok"
    ]
    say(f"done: {len(failed)} part(s) not ok; {args.out}, {args.markdown}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
