"""What the analysis tools feed a model: an encoder from any checkpoint, and texts from GLUE or a corpus."""

from __future__ import annotations

import gzip
import random
from pathlib import Path

from torch import nn

from bert_helu.models.encoders import (
    SPEC_KEY,
    activation_of,
    ffn_activation_sites,
    load_model_config,
    set_activation,
)
from bert_helu.runtime.errors import UserError, first_line


def quiet_transformers() -> None:
    """No load reports ("pooler newly initialised") or progress bars: the command prints its own story."""
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()


def load_encoder(path: str | Path) -> tuple[nn.Module, object]:
    """The base model (no task head) of any project or stock checkpoint, with its tokenizer.

    The base model is enough for FFN statistics and timing, and every architecture has one
    (a sentence-embedding BERT such as MiniLM has no MLM head to load).
    """
    from transformers import AutoModel, AutoTokenizer

    path = Path(path)
    config = load_model_config(path)  # UserError when there is no usable config.json
    if not list(path.glob("*.safetensors")):
        raise UserError(f"{path}: no *.safetensors weights")
    try:
        model = AutoModel.from_pretrained(path, config=config, use_safetensors=True)
    except Exception as err:  # transformers/safetensors raise many types; the first line says enough
        raise UserError(f"{path}: cannot load model weights ({first_line(err)})") from None
    if getattr(config, SPEC_KEY, None):
        set_activation(model, getattr(config, SPEC_KEY))  # the project activation (forward identical)
    if not ffn_activation_sites(model):
        raise UserError(f"{path}: {type(model).__name__} has no feed-forward block the analysis understands")
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
    except Exception as err:
        raise UserError(f"{path}: no tokenizer saved with the checkpoint ({type(err).__name__})") from None
    return model.eval(), tokenizer


def usable_length(model: nn.Module, requested: int) -> int:
    """``requested`` tokens, or fewer when the model has fewer positions (a tiny test model has 64)."""
    positions = getattr(model.config, "max_position_embeddings", None)
    return min(requested, positions) if isinstance(positions, int) and positions > 0 else requested


def describe(model: nn.Module) -> dict:
    config = model.config
    return {
        "architecture": type(model).__name__,
        "activation": activation_of(model),
        "layers": len(ffn_activation_sites(model)),
        "hidden_size": getattr(config, "hidden_size", None),
        "intermediate_size": getattr(config, "intermediate_size", None),
    }


def load_texts(
    data: str, glue_dir: str | Path | None = None, max_samples: int = 1024, seed: int = 0
) -> list[tuple[str, str | None]]:
    """``data`` is a GLUE task name (dev set, needs ``glue_dir``) or a text file / folder of them.

    Returns up to ``max_samples`` (text_a, text_b) pairs, a seeded random subset when there are more.
    """
    path = Path(data)
    if path.exists():
        texts = [(line, None) for line in _corpus_lines(path)]
    else:
        texts = glue_dev_texts(data, glue_dir)
    if not texts:
        raise UserError(f"{data}: no text found")
    if len(texts) > max_samples:
        texts = random.Random(seed).sample(texts, max_samples)
    return texts


def glue_dev_texts(task_name: str, glue_dir: str | Path | None) -> list[tuple[str, str | None]]:
    if glue_dir is None:
        raise UserError(f"{task_name!r} is neither a file nor a folder; for a GLUE task give --glue-dir")
    from bert_helu.glue.tasks import read_tsv, resolve_tasks  # imports datasets: only when GLUE is read

    task = resolve_tasks(task_name)[0]
    _, dev_file, _ = task.eval_splits[0]
    dev = Path(glue_dir) / task.dir_name / dev_file
    if not dev.is_file():
        raise UserError(f"{dev}: GLUE dev set not found")
    rows = read_tsv(dev, task)
    return list(zip(rows["text_a"], rows["text_b"], strict=True))


def _corpus_lines(path: Path, min_chars: int = 20) -> list[str]:
    """Non-trivial lines of a text file, gzip file or folder of them; WikiExtractor tags dropped."""
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    lines: list[str] = []
    for file in files:
        with file.open("rb") as probe:
            gz = probe.read(2) == b"\x1f\x8b"
        opener = gzip.open if gz else open
        try:
            with opener(file, "rt", encoding="utf-8-sig", errors="strict") as f:
                for line in f:
                    line = line.strip()
                    if len(line) >= min_chars and not line.startswith(("<doc", "</doc")):
                        lines.append(line)
        except (UnicodeDecodeError, OSError, EOFError) as err:
            raise UserError(f"{file}: not readable text ({type(err).__name__})") from None
        if len(lines) > 200_000:  # plenty to sample from; do not read a whole corpus for statistics
            break
    return lines
