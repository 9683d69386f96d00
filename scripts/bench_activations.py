"""Forward+backward time and saved-for-backward memory of FFN activations, HeLU against ReLU.

    .venv/bin/python scripts/bench_activations.py --out docs/bench_activations

Compares torch.relu, bert-helu's HeLU (bool mask), the HeLU paper's reference formulation (saves the
input, backward with torch.where), and GELU, on FFN-shaped tensors in fp32 and bf16. Writes
``<out>.json`` (raw timings) and ``<out>.md`` (median times and ratios to ReLU, same run).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from bert_helu import build_activation


class PaperHeLU(torch.autograd.Function):
    """The formulation of the authors' reference code: saves the full input tensor."""

    @staticmethod
    def forward(ctx, x, alpha):
        ctx.save_for_backward(x)
        ctx.alpha = alpha
        return torch.relu(x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return torch.where(x > -ctx.alpha, grad, torch.zeros_like(grad)), None


ours = build_activation("helu:alpha=0.05")
CANDIDATES = {
    "relu": torch.relu,
    "helu (bert-helu)": ours,
    "helu (paper ref.)": lambda x: PaperHeLU.apply(x, 0.05),
    "gelu": F.gelu,
}


def saved_bytes(fn, x) -> int:
    """Bytes the activation itself keeps for backward (its output is not counted: the next layer keeps it)."""
    y = fn(x)
    out_ptr = y.untyped_storage().data_ptr()
    node = y.grad_fn
    saved = list(getattr(node, "saved_tensors", ()))  # custom autograd Functions
    saved += [getattr(node, a) for a in dir(node) if a.startswith("_saved_")]  # built-in ops
    return sum(
        t.numel() * t.element_size()
        for t in saved
        if isinstance(t, torch.Tensor) and t.untyped_storage().data_ptr() != out_ptr
    )


def time_fwd_bwd(fn, x, repeats: int, inner: int) -> list[float]:
    grad = torch.randn_like(x)

    def step():
        (gx,) = torch.autograd.grad(fn(x), x, grad)
        return gx

    for _ in range(3):
        step()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(inner):
            step()
        samples.append((time.perf_counter() - start) / inner)
    return samples


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", default="docs/bench_activations")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--inner", type=int, default=5)
    # tokens x intermediate size: a micro-batch of 32 x 128 tokens at BERT-base width, and a tiny model's
    parser.add_argument("--shapes", default="4096x3072,4096x1024")
    args = parser.parse_args()
    torch.manual_seed(0)
    rows = []
    for shape_text in args.shapes.split(","):
        shape = tuple(int(s) for s in shape_text.split("x"))
        for dtype in (torch.float32, torch.bfloat16):
            x = torch.randn(*shape, dtype=dtype, requires_grad=True)
            for name, fn in CANDIDATES.items():
                samples = time_fwd_bwd(fn, x, args.repeats, args.inner)
                rows.append(
                    dict(
                        activation=name,
                        shape=shape_text,
                        dtype=str(dtype).removeprefix("torch."),
                        median_ms=statistics.median(samples) * 1e3,
                        samples_ms=[s * 1e3 for s in samples],
                        saved_bytes=saved_bytes(fn, x),
                    )
                )
                print(f"{shape_text} {rows[-1]['dtype']:8s} {name:18s} {rows[-1]['median_ms']:8.2f} ms")
    relu = {(r["shape"], r["dtype"]): r["median_ms"] for r in rows if r["activation"] == "relu"}
    for r in rows:
        r["ratio_to_relu"] = r["median_ms"] / relu[(r["shape"], r["dtype"])]
    meta = dict(
        torch=torch.__version__,
        threads=torch.get_num_threads(),
        machine=platform.processor() or platform.machine(),
        repeats=args.repeats,
        inner=args.inner,
    )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(dict(meta=meta, rows=rows), indent=2))
    lines = [
        "# Activation forward+backward benchmark",
        "",
        f"Command: `.venv/bin/python scripts/bench_activations.py --out {args.out}`  ",
        f"torch {meta['torch']}, {meta['threads']} threads, median of {args.repeats} x {args.inner} steps.",
        "",
        "| shape (tokens x d_ff) | dtype | activation | fwd+bwd ms | x ReLU | saved for backward |",
        "|---|---|---|---:|---:|---:|",
    ]
    for r in rows:
        mb = r["saved_bytes"] / 2**20
        lines.append(
            f"| {r['shape']} | {r['dtype']} | {r['activation']} | {r['median_ms']:.2f} | "
            f"{r['ratio_to_relu']:.2f} | {mb:.1f} MiB |"
        )
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print(f"wrote {out.with_suffix('.json')} and {out.with_suffix('.md')}")


if __name__ == "__main__":
    main()
