"""Sparse-FFN inference vs dense: correctness, FLOPs skipped and wall time at batch 1 and 32.

    python scripts/bench_sparse_ffn.py --checkpoints relufied-minilm=results/relufy/checkpoints/relu \\
        helu-tiny=runs/helu/final --glue-dir ../shared/data/glue_data --task sst2 \\
        --output-dir results/sparse_ffn

For each ReLU-forward checkpoint and batch size, real GLUE dev sentences go through the model twice per
repeat, dense then sparse (order alternating), with the same inputs. Also one synthetic case per model:
a single token (batch 1, length 1), the regime where skipping rows is cheapest relative to the matmul.
Reported per case: max |sparse - dense| of the last hidden state, share of the FFN output-projection
MACs skipped, that share of all linear+attention MACs, and the dense/sparse time ratio.
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bert_helu.analysis.ffn_stats import batches  # noqa: E402
from bert_helu.analysis.inputs import load_encoder, load_texts, quiet_transformers, usable_length  # noqa: E402
from bert_helu.analysis.plots import plot_grouped_bars  # noqa: E402
from bert_helu.analysis.reports import machine, markdown_table, write_outputs  # noqa: E402
from bert_helu.analysis.timing import paired_ratio, summarize, time_interleaved  # noqa: E402
from bert_helu.models.encoders import activation_of  # noqa: E402
from bert_helu.models.sparse_ffn import count_skipped_flops, densify_ffn, sparsify_ffn  # noqa: E402
from bert_helu.runtime.errors import cli_entry  # noqa: E402
from bert_helu.runtime.named_checkpoints import parse_checkpoints  # noqa: E402
from bert_helu.runtime.paths import display_options  # noqa: E402


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoints", nargs="+", required=True, metavar="NAME=DIR")
    parser.add_argument("--glue-dir", required=True)
    parser.add_argument("--task", default="sst2", help="GLUE dev set whose sentences are the inputs")
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[1, 32])
    parser.add_argument("--modes", nargs="+", default=["per_token", "union"], help="sparse modes to time")
    parser.add_argument("--batches", type=int, default=8, help="distinct input batches per case")
    parser.add_argument("--repeats", type=int, default=3, help="timed passes over those batches")
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--threads", type=int)
    parser.add_argument("--output-dir", default="results/sparse_ffn")
    return parser.parse_args(argv)


def linear_and_attention_macs(model, inputs: list[dict]) -> int:
    """MACs of every nn.Linear plus attention's two T x T matmuls, over ``inputs`` (dense path)."""
    total = 0

    def count(module, args, output):
        nonlocal total
        total += args[0].numel() // args[0].shape[-1] * module.in_features * module.out_features

    handles = [m.register_forward_hook(count) for m in model.modules() if isinstance(m, torch.nn.Linear)]
    with torch.inference_mode():
        for batch in inputs:
            model(**batch)
    for handle in handles:
        handle.remove()
    cfg = model.config
    for batch in inputs:
        b, t = batch["input_ids"].shape
        total += cfg.num_hidden_layers * 2 * b * t * t * cfg.hidden_size
    return total


def bench_case(model, inputs: list[dict], mode: str, repeats: int) -> dict:
    """``model`` is dense; a sparsified copy runs beside it on the same inputs."""
    sparse_model = copy.deepcopy(model)
    sparsify_ffn(sparse_model, mode)
    with torch.inference_mode():
        diff = max(
            (sparse_model(**b).last_hidden_state - model(**b).last_hidden_state).abs().max().item()
            for b in inputs
        )
    flops = count_skipped_flops(sparse_model, lambda: [sparse_model(**batch) for batch in inputs])
    all_macs = linear_and_attention_macs(model, inputs)

    def dense_pass():
        for batch in inputs:
            model(**batch)

    def sparse_pass():
        for batch in inputs:
            sparse_model(**batch)

    times = time_interleaved({"dense": dense_pass, "sparse": sparse_pass}, repeats, warmup=1)
    saved = flops["output_projection_macs_dense"] - flops["output_projection_macs_used"]
    return {
        "mode": mode,
        "max_abs_diff": diff,
        **flops,
        "all_macs_dense": all_macs,
        "saved_fraction_of_all_macs": saved / all_macs,
        "dense_seconds": times["dense"],
        "sparse_seconds": times["sparse"],
        "dense": summarize(times["dense"]),
        "sparse": summarize(times["sparse"]),
        "speedup": paired_ratio(times["dense"], times["sparse"]),  # > 1: sparse is faster
    }


@cli_entry
def main(argv=None):
    args = parse_args(argv)
    quiet_transformers()
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = []
    for checkpoint in parse_checkpoints(args.checkpoints):
        name = checkpoint.name
        model, tokenizer = load_encoder(checkpoint.path)
        sparsify_ffn(model)  # refuses a model without exact zeros before any timing
        densify_ffn(model)
        length = usable_length(model, args.max_length)
        for batch_size in args.batch_sizes:
            texts = load_texts(args.task, args.glue_dir, batch_size * args.batches, seed=1)
            inputs = [dict(b) for b in batches(texts, tokenizer, batch_size, length)]
            inputs = [{k: v for k, v in b.items() if k != "token_type_ids"} for b in inputs]
            single = [{"input_ids": b["input_ids"][:1, :1], "attention_mask": b["attention_mask"][:1, :1]}
                      for b in inputs]  # fmt: skip
            cases = [(f"batch {batch_size}", inputs)] + ([("1 token", single)] if batch_size == 1 else [])
            for label, case_inputs in cases:
                for mode in args.modes:
                    result = bench_case(model, case_inputs, mode, args.repeats)
                    tokens = sum(int(b["attention_mask"].sum()) for b in case_inputs)
                    rows.append({"model": name, "activation": activation_of(model), "case": label,
                                 "batch_size": batch_size, "tokens": tokens, **result})  # fmt: skip
                    skipped = result["output_projection_saved_fraction"]
                    speedup = result["speedup"]["mean"]
                    print(f"{name} {label} {mode}: W2 MACs skipped {skipped:.1%}, speedup {speedup:.2f}x, "
                          f"max diff {result['max_abs_diff']:.1e}")  # fmt: skip
    out = Path(args.output_dir)
    headers = ["model", "case", "mode", "tokens", "W2 MACs skipped", "of all MACs", "max |diff|",
               "dense ms", "sparse ms", "speedup (dense/sparse)"]  # fmt: skip
    table = [[r["model"], r["case"], r["mode"], r["tokens"], f"{r['output_projection_saved_fraction']:.1%}",
              f"{r['saved_fraction_of_all_macs']:.1%}", f"{r['max_abs_diff']:.1e}",
              f"{1000 * r['dense']['mean']:.1f}", f"{1000 * r['sparse']['mean']:.1f}",
              f"{r['speedup']['mean']:.2f} ± {r['speedup']['std']:.2f}"] for r in rows]  # fmt: skip
    report = {"machine": machine(), "settings": display_options(vars(args)), "rows": rows}
    markdown = "# Sparse-FFN inference vs dense\n\n" + markdown_table(headers, table)
    paths = write_outputs(out, "bench_sparse_ffn", report, markdown)
    for row in rows:
        row["label"] = f"{row['model']}\n{row['case']}"
        row["speedup_mean"], row["speedup_std"] = row["speedup"]["mean"], row["speedup"]["std"]
    title = "Sparse FFN speedup over dense (>1 = faster)"
    plot = plot_grouped_bars(
        rows,
        "label",
        "mode",
        "speedup_mean",
        "speedup_std",
        out / "speedup.png",
        title,
        "dense time / sparse time",
    )
    print(markdown)
    print(f"wrote {paths['json']}, {paths['markdown']}, {plot}")


if __name__ == "__main__":
    main()
