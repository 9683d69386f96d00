"""How long a pretraining step waits for its data: the host-side share of a step, before and after
batches are built ahead of the step (``BatchPrefetcher``).

    python scripts/bench_host.py                       # crammed-bert's batch shape, a tiny model
    python scripts/bench_host.py --threads 2 --steps 20

The batch has the shape of ``configs/pretrain/crammed-bert.yaml`` (288 sequences of 128 tokens, in
micro-batches of 96), the model is tiny so that the host side shows (on a GPU the model's step is
short against masking 288 rows). Three ways of feeding the same steps, in turn:

- ``per-row masking, inline``: every row masked with its own generator and all of BERT's rule
  row by row, between the steps (the loop as it was);
- ``vectorised masking, inline``: the random draws per row, the rule over the whole batch;
- ``prefetched``: the same built in a background thread, ``depth`` steps ahead.

"Waiting" is the time from the end of one step to the start of the next: fetching the batches
and counting their masked tokens. The page keeps a section per CPU kind (bert_helu.runtime.precision).
"""

from __future__ import annotations

import argparse
import shlex
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's bert_helu
from bert_helu.analysis.reports import machine, markdown_table, write_per_cpu_kind  # noqa: E402
from bert_helu.data import MLMMasker, prepare_corpus  # noqa: E402
from bert_helu.models.encoders import build_mlm_model, model_config, special_token_ids  # noqa: E402
from bert_helu.models.optimizer import make_optimizer
from bert_helu.models.sparse_mlm import SparseMLM
from bert_helu.pretraining.batches import BatchPrefetcher, GlobalBatches, count_masked, plan_batches
from bert_helu.pretraining.recipe import load_recipe  # noqa: E402
from bert_helu.pretraining.step import train_step
from bert_helu.runtime.precision import reset_accelerate_state  # noqa: E402

MODES = ("per-row masking, inline", "vectorised masking, inline", "prefetched")


class PerRowBatches(GlobalBatches):
    """The masking as it was: BERT's whole rule applied row by row, each with its generator."""

    def _mask(self, ids, step, first_row):
        from bert_helu.pretraining.batches import _seed_of

        rows = [
            self.masker(ids[i : i + 1], torch.Generator().manual_seed(_seed_of(self.seed, step, row)))
            for i, row in enumerate(range(first_row, first_row + len(ids)))
        ]
        return torch.cat([m for m, _ in rows]), torch.cat([lab for _, lab in rows])


class Feeder:
    """One way of feeding the loop, with its own model and optimizer (the same seed for all)."""

    def __init__(self, mode: str, corpus, recipe, args):
        from accelerate import Accelerator

        torch.manual_seed(recipe.seed)
        cfg = {**recipe.model, "hidden_size": args.hidden, "num_hidden_layers": args.layers}
        cfg.update(num_attention_heads=max(1, args.hidden // 64), intermediate_size=args.hidden * 2)
        tokenizer = corpus.tokenizer
        model = build_mlm_model(model_config(cfg, "relu", len(tokenizer), special_token_ids(tokenizer)))
        self.accelerator = Accelerator(cpu=True, mixed_precision=args.precision)
        self.model, self.optimizer = self.accelerator.prepare(
            SparseMLM(model), make_optimizer(model, recipe.train)
        )
        self.plan = plan_batches(args.batch, args.micro_batch, 1)
        kind = PerRowBatches if mode.startswith("per-row") else GlobalBatches
        masker = MLMMasker(tokenizer, recipe.train.mlm_probability)
        self.batches = kind(corpus.train, masker, self.plan, 0, recipe.seed, tokenizer.pad_token_id)
        self.ahead = BatchPrefetcher(self.batches, 0, 0) if mode == "prefetched" else None
        self.mode, self.grad_clip, self.step = mode, recipe.train.grad_clip, 0
        self.waits, self.totals = [], []

    def run_step(self, timed: bool) -> None:
        t0 = time.perf_counter()
        position = self.step * self.plan.global_batch
        if self.ahead:
            micro = self.ahead.next(self.step, position)
        else:
            micro = self.batches.step_batches(self.step, position)
        masked = count_masked(micro)
        t1 = time.perf_counter()
        train_step(self.accelerator, self.model, self.optimizer, micro, masked, self.grad_clip)
        t2 = time.perf_counter()
        self.step += 1
        if timed:
            self.waits.append(t1 - t0)
            self.totals.append(t2 - t0)

    def result(self, seq_len: int) -> dict:
        if self.ahead:
            self.ahead.close()
        return {
            "mode": self.mode,
            "median_step_s": statistics.median(self.totals),
            "median_wait_s": statistics.median(self.waits),
            "wait_share": sum(self.waits) / sum(self.totals),
            "tokens_per_s": self.plan.global_batch * seq_len * len(self.totals) / sum(self.totals),
        }


def render(results: dict) -> str:
    m, a = results["machine"], results["args"]
    rows = [
        [r["mode"], f"{r['median_step_s'] * 1e3:.0f}", f"{r['median_wait_s'] * 1e3:.1f}",
         f"{100 * r['wait_share']:.1f}%", f"{r['tokens_per_s']:,.0f}"]
        for r in results["rows"]
    ]  # fmt: skip
    return (
        f"Command: `{results['command']}`\n\n"
        f"Machine: {m['cpu']}, CPU flags {', '.join(m['cpu_flags']) or 'none'}, {m['threads']} torch "
        f"thread(s), torch {m['torch']}, precision {a['precision']}, measured {m['time_utc']}. Model: "
        f"crammed encoder {a['layers']} x {a['hidden']}; step: {a['batch']} x 128 tokens in micro-batches "
        f"of {a['micro_batch']}; {a['steps']} timed steps per mode after {a['warmup']} untimed, the "
        "modes taking turns step by step.\n\n"
        + markdown_table(["feeding", "step (ms)", "waiting (ms)", "waiting, share of step", "tokens/s"], rows)
    )


TITLE = """# How long a pretraining step waits for its data

The time a step of `python -m pretrain` spends outside forward, backward and the optimizer: building
the batch (reading rows, masking) and counting its masked tokens. Measured with a model small enough
that this shows; on a GPU the model's step is short and the host work is what is left."""


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", default="configs/pretrain/demo.yaml", help="recipe of the corpus")
    parser.add_argument("--batch", type=int, default=288, help="global batch (crammed-bert's)")
    parser.add_argument("--micro-batch", type=int, default=96, help="micro-batch (crammed-bert's)")
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--precision", default="no", choices=["no", "bf16"])
    parser.add_argument("--out", default="docs/bench_host.json")
    parser.add_argument("--markdown", default="docs/bench_host.md")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    recipe = load_recipe(args.config)
    corpus = prepare_corpus(recipe.data)
    reset_accelerate_state()
    feeders = [Feeder(mode, corpus, recipe, args) for mode in MODES]
    for step in range(args.warmup + args.steps):  # the modes take turns, step by step: same load
        for feeder in feeders:
            feeder.run_step(timed=step >= args.warmup)
    rows = [feeder.result(recipe.data.seq_len) for feeder in feeders]
    command = ["python", "scripts/bench_host.py", *(sys.argv[1:] if argv is None else argv)]
    results = {"command": shlex.join(command), "args": vars(args), "machine": machine(), "rows": rows}
    write_per_cpu_kind(args.out, args.markdown, results, render, TITLE)
    print(render(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
