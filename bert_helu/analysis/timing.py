"""Wall-clock inference timing: precisions, interleaved repeats, and the models of paper Figure 5.

Models compared against each other are timed *interleaved* in one loop (A B, B A, A B, ...), so a
slow phase of a shared machine hits both alike; their ratio is the number to trust, not the absolutes.
"""

from __future__ import annotations

import copy
import statistics
import time
from collections.abc import Callable

import torch
from torch import nn

from bert_helu.models.int8 import quantize_int8
from bert_helu.runtime.errors import UserError

CPU_PRECISIONS = ("fp32", "bf16", "qint8")


def available_precisions() -> list[tuple[str, str]]:
    """(device, precision) pairs this machine can run: fp16 on a GPU when there is one."""
    pairs = [("cpu", p) for p in CPU_PRECISIONS]
    if torch.cuda.is_available():
        pairs.append(("cuda", "fp16"))
    return pairs


def prepare(model: nn.Module, device: str, precision: str) -> nn.Module:
    """A copy of ``model`` in ``precision`` on ``device``, in eval mode."""
    if precision == "qint8":
        if device != "cpu":
            raise UserError("dynamic QINT8 runs on CPU only")
        return quantize_int8(model)
    model = copy.deepcopy(model).eval()
    if precision == "fp32":
        return model.float().to(device)
    if precision == "bf16":
        return model.to(device=device, dtype=torch.bfloat16)
    if precision == "fp16":
        if device == "cpu":
            raise UserError("fp16 inference is for GPUs; on CPU use bf16")
        return model.to(device=device, dtype=torch.float16)
    raise UserError(f"unknown precision {precision!r} (fp32, bf16, fp16, qint8)")


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def time_interleaved(
    runs: dict[str, Callable[[], object]], repeats: int, warmup: int = 1, device: str = "cpu"
) -> dict[str, list[float]]:
    """Seconds per call of each ``runs`` entry, ``repeats`` times, alternating the order every repeat."""
    names = list(runs)
    with torch.inference_mode():
        for _ in range(warmup):
            for name in names:
                runs[name]()
        times: dict[str, list[float]] = {name: [] for name in names}
        for repeat in range(repeats):
            for name in names if repeat % 2 == 0 else reversed(names):
                _sync(device)
                start = time.perf_counter()
                runs[name]()
                _sync(device)
                times[name].append(time.perf_counter() - start)
    return times


def summarize(seconds: list[float]) -> dict:
    return {
        "mean": statistics.fmean(seconds),
        "std": statistics.stdev(seconds) if len(seconds) > 1 else 0.0,
        "median": statistics.median(seconds),
        "min": min(seconds),
        "n": len(seconds),
    }


def paired_ratio(numerator: list[float], denominator: list[float]) -> dict:
    """Per-repeat ratio of two interleaved series (each pair ran back to back), summarised."""
    return summarize([a / b for a, b in zip(numerator, denominator, strict=True)])


# ------------------------------------------------------------------------- Figure 5 models


def reference_configs() -> dict[str, tuple[object, str]]:
    """Base-sized configs of the five Figure 5 architectures, and the activation each ships with.

    transformers' config defaults are base sizes except XLNet's (xlnet-large); it gets xlnet-base-cased's.
    """
    from transformers import BertConfig, ElectraConfig, GPT2Config, RobertaConfig, XLNetConfig

    return {
        "BERT": (BertConfig(), "gelu"),
        "RoBERTa": (RobertaConfig(), "gelu"),
        "XLNet": (XLNetConfig(d_model=768, n_layer=12, n_head=12, d_inner=3072), "gelu"),
        "GPT-2": (GPT2Config(), "gelu_tanh"),  # gelu_new
        "ELECTRA": (ElectraConfig(), "gelu"),  # the default is ELECTRA-small's discriminator
    }


HUB_NAMES = {
    "BERT": "bert-base-uncased",
    "RoBERTa": "roberta-base",
    "XLNet": "xlnet-base-cased",
    "GPT-2": "gpt2",
    "ELECTRA": "google/electra-small-discriminator",
}


def reference_model(name: str, pretrained: bool) -> tuple[nn.Module, str]:
    """(model, where its weights came from): the hub's pretrained weights when asked and reachable,
    else random initialisation from the config (timing of dense inference does not depend on values)."""
    from transformers import AutoModel

    config, _ = reference_configs()[name]
    if pretrained:
        try:
            return AutoModel.from_pretrained(HUB_NAMES[name]).eval(), f"pretrained {HUB_NAMES[name]}"
        except Exception as err:  # offline, or the hub refuses: fall back, and say so in the results
            reason = type(err).__name__
            torch.manual_seed(0)
            return AutoModel.from_config(config).eval(), f"random init (hub unavailable: {reason})"
    torch.manual_seed(0)
    return AutoModel.from_config(config).eval(), "random init from config"


def random_inputs(model: nn.Module, batch: int, length: int, seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    vocab = model.config.vocab_size
    ids = torch.randint(5, vocab, (batch, length), generator=generator)
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
