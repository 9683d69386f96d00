"""Model cards: the ``README.md`` of every pretrained ``runs/<name>/final/`` and fine-tuned model.

A card is in the Hugging Face format (YAML metadata from huggingface_hub's ``ModelCardData``, then
Markdown), so the Hub shows it as is. It says what the model is, which activation it was trained with
and what a stock ``transformers`` loader sees instead, the recipe's key values, what training
reached, and the lines that load it. ``bert_helu.models.encoders.save_model`` writes it inside the
checkpoint's atomic write.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from bert_helu.glue.tasks import HUB_DATASET, GlueTask
from bert_helu.models.encoders import activation_of, architecture_of, stock_hidden_act
from bert_helu.runtime.paths import display_path

LICENSE = "mit"  # the project's; the training text keeps its own (the card's Data line says which)
PROJECT_TAG = "bert-helu"
CARD_FILE = "README.md"

_ARCHITECTURES = {
    "bert": "stock BERT (post-LayerNorm, biases, learned absolute positions)",
    "modernbert": "a crammed encoder (pre-LayerNorm, no biases, gated FFN, rotary positions; "
    "transformers' ModernBERT classes)",
}


def pretrained_card(
    model,
    cfg,
    *,
    name: str,
    location: str,
    steps: int,
    tokens_seen: int,
    validation_loss: float | None,
    train_seconds: float,
    precision: str,
) -> str:
    """The card of a pretraining run's final checkpoint (``location``: where it is loaded from)."""
    activation = activation_of(model)
    tr, data = cfg["train"], cfg["data"]
    hub_sources = [s["name"] for s in data.get("sources") or [] if s.get("type") == "hub"]
    meta = ModelCardData(
        library_name="transformers",
        license=LICENSE,
        tags=_tags(activation, "fill-mask", model),
        datasets=hub_sources or None,
        pipeline_tag="fill-mask",
    )
    budget = (
        f"{tr['budget_hours'] * 60:g} min of training (wall clock)"
        if tr.get("budget_hours")
        else f"{tr['max_steps']} optimizer steps"
    )
    loss = "n/a" if validation_loss is None or math.isnan(validation_loss) else f"{validation_loss:.4f}"
    recipe = [
        ("budget", budget),
        ("optimizer steps", f"{steps:,}"),
        ("tokens seen", f"{tokens_seen:,} ({steps:,} steps x {tr['global_batch_size']} x {data['seq_len']})"),
        (
            "training time",
            f"{train_seconds:.0f} s" if train_seconds < 120 else f"{train_seconds / 60:.1f} min",
        ),
        ("validation MLM loss", loss),
        ("global batch", f"{tr['global_batch_size']} sequences of {data['seq_len']} tokens"),
        ("learning rate", f"{tr['lr']:g}, {tr.get('scheduler', '?')} schedule"),
        ("weight decay", f"{tr.get('weight_decay', 0):g}"),
        ("masking", f"{100 * tr.get('mlm_probability', 0.15):g}% of the tokens"),
        ("precision", "fp32" if precision == "no" else precision),
        ("seed", str(cfg.get("seed", "?"))),
        ("data", _sources(data.get("sources") or [])),
    ]
    body = [
        f"# {name}: a {_shape(model)} encoder pretrained with {activation}",
        "",
        "A masked language model pretrained with bert-helu (`python -m pretrain`) under a fixed compute "
        "budget, to compare FFN activations.",
        "",
        *_model_section(model, activation),
        "## Training",
        "",
        "| | |",
        "|---|---|",
        *(f"| {key} | {value} |" for key, value in recipe),
        "",
        f"The weights are under the project's {LICENSE.upper()} license; the training text keeps its own "
        "licenses (Wikipedia's, for one, is CC BY-SA).",
        "",
        "## GLUE",
        "",
        "Not measured by pretraining. Fine-tune this folder on GLUE with bert-helu "
        "(`python -m finetune --checkpoints <folder> --tasks all --output-dir results/`), then compare "
        "(`python -m glue_eval table results/`): each fine-tuned model gets a card with its dev results.",
        "",
        *_use_section(location, activation, "AutoModelForMaskedLM"),
    ]
    return _card(meta, body)


def finetuned_card(
    model,
    *,
    base: Path,
    task: GlueTask,
    seed: int,
    location: str,
    train: dict,
    dev_metrics: dict,
    int8_metrics: dict | None,
    train_examples: int,
) -> str:
    """The card of a fine-tuned model: its dev metrics per reported split, and where it came from."""
    activation = activation_of(model)
    pretty = _GLUE_NAMES.get(task.name, task.name.upper())
    meta = ModelCardData(
        library_name="transformers",
        license=LICENSE,
        tags=[*_tags(activation, "text-classification", model), "glue"],
        datasets=[HUB_DATASET],
        pipeline_tag="text-classification",
        model_name=f"{base.parent.name if base.name == 'final' else base.name}-{task.name}-seed{seed}",
        eval_results=[
            EvalResult(
                task_type="text-classification",
                dataset_type=HUB_DATASET,
                dataset_name=f"GLUE {_GLUE_NAMES.get(split, split)}",
                dataset_config=task.name,
                dataset_split=_split_of(task, split),
                metric_type=metric,
                metric_value=value,
            )
            for split, metrics in dev_metrics.items()
            for metric, value in metrics.items()
        ],
    )
    rows = [
        f"| {_GLUE_NAMES.get(split, split)} | {metric} | {100 * value:.2f} |"
        + (f" {100 * int8_metrics[split][metric]:.2f} |" if int8_metrics else "")
        for split, metrics in dev_metrics.items()
        for metric, value in metrics.items()
    ]
    labels = (
        "a score from 0 to 5 (regression)"
        if task.is_regression
        else ", ".join(f"{i} = {label}" for i, label in enumerate(task.labels))
    )
    base_facts = _base_facts(base)
    body = [
        f"# {meta.model_name}: a {_shape(model)} encoder ({activation}) fine-tuned on GLUE {pretty}",
        "",
        f"Fine-tuned with bert-helu (`python -m finetune`) from `{display_path(base)}`"
        + (f" ({base_facts})" if base_facts else "")
        + ".",
        "",
        *_model_section(model, activation),
        "## Fine-tuning",
        "",
        "| | |",
        "|---|---|",
        f"| task | GLUE {pretty}; labels: {labels} |",
        f"| training examples | {train_examples:,} |",
        f"| epochs | {train['epochs']} |",
        f"| batch size | {train['batch_size']} |",
        f"| learning rate | {train['lr']:g}, {train['scheduler']} schedule, "
        f"warm-up {train['warmup_ratio']:g} of the steps |",
        f"| weight decay | {train['weight_decay']:g} |",
        f"| max length | {train['max_length']} tokens |",
        f"| seed | {seed} |",
        "",
        "## GLUE dev results",
        "",
        "After the last epoch, in percent"
        + (" (INT8: after dynamic INT8 quantisation of the linear layers)" if int8_metrics else "")
        + ":",
        "",
        "| dev set | metric | value |" + (" INT8 |" if int8_metrics else ""),
        "|---|---|---|" + ("---|" if int8_metrics else ""),
        *rows,
        "",
        *_use_section(location, activation, "AutoModelForSequenceClassification"),
    ]
    return _card(meta, body)


def for_hub(card: str, repo_id: str) -> str:
    """The card as the Hub shows it: its loading lines name ``repo_id``, not the folder it was saved in
    (which may have moved since)."""
    return _LOADED_FROM.sub(lambda m: m.group(1) + json.dumps(repo_id), card)


# the first argument of the Use section's calls: a JSON-quoted string
_LOADED_FROM = re.compile(r'((?:from_pretrained|load_model)\()"(?:[^"\\]|\\.)*"')


# ----------------------------------------------------------------------------------- pieces

_GLUE_NAMES = {
    "cola": "CoLA", "sst2": "SST-2", "mrpc": "MRPC", "stsb": "STS-B", "qqp": "QQP", "mnli": "MNLI-m",
    "mnli_mismatched": "MNLI-mm", "qnli": "QNLI", "rte": "RTE", "wnli": "WNLI",
}  # fmt: skip


# Why an activation saved under a stock name still trained differently.
_TRAINING_ONLY = {"helu": "HeLU's gradient passes where x > -alpha, ReLU's only where x > 0"}


def _card(meta: ModelCardData, body: list[str]) -> str:
    card = ModelCard(f"---\n{meta.to_yaml()}\n---\n\n" + "\n".join(body).rstrip() + "\n")
    return str(card)


def _tags(activation: str, task_tag: str, model) -> list[str]:
    name = activation.split(":")[0]
    return [PROJECT_TAG, name, task_tag, architecture_of(model)]


def _shape(model) -> str:
    c = model.config
    kind = {"bert": "BERT", "modernbert": "crammed"}[architecture_of(model)]
    return f"{c.num_hidden_layers} x {c.hidden_size} {kind}"


def _model_section(model, activation: str) -> list[str]:
    c = model.config
    saved = stock_hidden_act(activation)
    params = sum(p.numel() for p in model.parameters())
    if saved.startswith("bert_helu:"):
        seen = (
            f"`config.json` names it `{saved}`, which stock `transformers` does not know: load this "
            "model with `bert_helu.load_model` (with `--import` of the module that registers it)."
        )
    elif saved != activation.split(":")[0]:
        how = _TRAINING_ONLY.get(activation.split(":")[0], "its backward pass")
        seen = (
            f"A stock `transformers` loader sees `{saved}` in `config.json` and computes identical "
            f"outputs: {activation.split(':')[0]}'s forward pass *is* {saved}; it differs in training "
            f"only ({how}). The training activation is kept in `config.json` as `bert_helu_activation`."
        )
    else:
        seen = f"A stock `transformers` loader sees `{saved}` in `config.json`: the same function."
    return [
        "## Model",
        "",
        f"- architecture: {_ARCHITECTURES[architecture_of(model)]}, `{type(model).__name__}`",
        f"- size: {c.num_hidden_layers} layers x {c.hidden_size} hidden, {c.num_attention_heads} heads, "
        f"FFN {c.intermediate_size}, {params / 1e6:.2f}M parameters",
        f"- vocabulary: {c.vocab_size:,} tokens; up to {c.max_position_embeddings} positions",
        f"- training activation: `{activation}`",
        f"- what a stock loader sees: {seen}",
        "",
    ]


def _use_section(location: str, activation: str, auto_class: str) -> list[str]:
    where = json.dumps(location)
    if stock_hidden_act(activation).startswith("bert_helu:"):
        task = "classification" if "Sequence" in auto_class else "mlm"
        return [
            "## Use",
            "",
            "```python",
            "from bert_helu import load_model  # pip install bert-helu; its activation is not a stock one",
            f"from transformers import AutoTokenizer; tokenizer = AutoTokenizer.from_pretrained({where})",
            f'model = load_model({where}, task="{task}")',
            "```",
        ]
    return [
        "## Use",
        "",
        "With stock `transformers`, no bert-helu code:",
        "",
        "```python",
        f"from transformers import {auto_class}, AutoTokenizer",
        f"tokenizer = AutoTokenizer.from_pretrained({where})",
        f"model = {auto_class}.from_pretrained({where})",
        "```",
    ]


def _sources(sources: list[dict]) -> str:
    described = []
    for s in sources:
        if s.get("type") == "hub":
            described.append(
                f"{s['name']}" + (f" ({s['config']})" if s.get("config") else "") + " from the Hub"
            )
        else:
            described.append(f"`{s.get('path')}` ({s.get('type')})")
    return "; ".join(described) or "?"


def _split_of(task: GlueTask, reported: str) -> str:
    return next((split for name, _, split in task.eval_splits if name == reported), "validation")


def _base_facts(base: Path) -> str:
    """What the pretraining run of ``base`` reached, when its summary.json sits beside it."""
    summary = base.parent / "summary.json"
    try:
        facts = json.loads(summary.read_text())
    except (OSError, ValueError):
        return ""
    parts = []
    if isinstance(facts.get("tokens_seen"), int):
        parts.append(f"{facts['tokens_seen']:,} tokens of pretraining")
    if isinstance(facts.get("final_validation_loss"), float):
        parts.append(f"validation MLM loss {facts['final_validation_loss']:.4f}")
    return ", ".join(parts)
