"""BERT with a registry activation in its feed-forward blocks; save/load rules.

Rules for checkpoints (``save_model`` / ``load_model``):

- The training-time activation spec is stored in the config as ``bert_helu_activation``.
- ``hidden_act`` holds the stock ``transformers`` name of the *inference* function: ``relu`` for
  relu and helu (HeLU's forward is ReLU), ``gelu`` for gelu, ... so stock ``transformers`` loads the
  checkpoint with no project code and computes the same outputs.
- An activation with no stock equivalent is saved as ``hidden_act: "bert_helu:<spec>"``: stock
  ``transformers`` then refuses it with a KeyError naming bert_helu; ``bert_helu.load_model`` loads it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from torch import nn
from transformers import (
    AutoConfig,
    AutoModelForMaskedLM,
    AutoModelForSequenceClassification,
    BertConfig,
    BertForMaskedLM,
    BertForSequenceClassification,
    PretrainedConfig,
    PreTrainedModel,
)

from bert_helu.activations import build_activation, parse_spec
from bert_helu.atomic import atomic_dir
from bert_helu.errors import UserError

SPEC_KEY = "bert_helu_activation"
_PROJECT_PREFIX = "bert_helu:"

# Where each architecture keeps its feed-forward activation: (module class name, attribute).
_FFN_SITES = {
    "BertIntermediate": "intermediate_act_fn",
    "RobertaIntermediate": "intermediate_act_fn",
    "ElectraIntermediate": "intermediate_act_fn",
    "GPT2MLP": "act",
    "XLNetFeedForward": "activation_function",
}


def stock_hidden_act(spec: str) -> str:
    """The ``hidden_act`` value stock transformers needs to compute this activation's forward."""
    module = build_activation(spec)
    if getattr(module, "relu_forward", False):
        return "relu"
    return getattr(module, "stock_name", None) or _PROJECT_PREFIX + str(parse_spec(spec))


def bert_config(model_cfg: dict, activation: str, vocab_size: int, **extra) -> BertConfig:
    """A BertConfig of the sizes in ``model_cfg`` (BertConfig field names) that records ``activation``."""
    spec = str(parse_spec(activation))
    config = BertConfig(vocab_size=vocab_size, **model_cfg, **extra)
    config.hidden_act = stock_hidden_act(spec)
    setattr(config, SPEC_KEY, spec)
    return config


def ffn_activation_sites(model: nn.Module) -> list[tuple[nn.Module, str]]:
    """Every (module, attribute) that holds a feed-forward activation, in layer order."""
    return [
        (module, _FFN_SITES[type(module).__name__])
        for module in model.modules()
        if type(module).__name__ in _FFN_SITES
    ]


def set_activation(model: PreTrainedModel, activation: str) -> PreTrainedModel:
    """Swap every FFN activation of ``model`` for ``activation`` and record it in the config."""
    spec = str(parse_spec(activation))
    sites = ffn_activation_sites(model)
    if not sites:
        raise UserError(
            f"{type(model).__name__} has no feed-forward block bert_helu knows "
            f"(known: {', '.join(sorted(_FFN_SITES))})"
        )
    for module, attr in sites:
        setattr(module, attr, build_activation(spec))
    setattr(model.config, SPEC_KEY, spec)
    if hasattr(model.config, "hidden_act"):
        model.config.hidden_act = stock_hidden_act(spec)
    return model


def activation_of(model_or_config) -> str:
    """The training activation spec of a model or config (the stock one if the project never saw it)."""
    config = getattr(model_or_config, "config", model_or_config)
    spec = getattr(config, SPEC_KEY, None)
    if spec:
        return spec
    act = getattr(config, "hidden_act", None) or getattr(config, "activation_function", None)
    return {"gelu_pytorch_tanh": "gelu_tanh", "gelu_new": "gelu_tanh", "swish": "silu"}.get(act, act)


def build_mlm_model(config: BertConfig) -> BertForMaskedLM:
    model = BertForMaskedLM(_constructible(config))
    return set_activation(model, getattr(config, SPEC_KEY))


def build_classifier(config: BertConfig, num_labels: int) -> BertForSequenceClassification:
    config = _constructible(config)
    config.num_labels = num_labels
    return set_activation(BertForSequenceClassification(config), getattr(config, SPEC_KEY))


def _constructible(config: PretrainedConfig) -> PretrainedConfig:
    """A copy of ``config`` stock transformers can build; our activation is put in afterwards."""
    config = config.__class__.from_dict(config.to_dict())
    if str(getattr(config, "hidden_act", "")).startswith(_PROJECT_PREFIX):
        config.hidden_act = "relu"
    return config


def load_config(path: str | os.PathLike) -> PretrainedConfig:
    path = Path(path)
    if not (path / "config.json").is_file():
        raise UserError(f"{path}: not a model checkpoint (no config.json)")
    try:
        raw = json.loads((path / "config.json").read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise UserError(f"{path / 'config.json'}: unreadable ({err})") from None
    if not isinstance(raw, dict):
        raise UserError(f"{path / 'config.json'}: not a model config (a JSON object expected)")
    act = str(raw.get("hidden_act", ""))
    if act.startswith(_PROJECT_PREFIX):
        raw["hidden_act"] = "relu"  # placeholder; set_activation restores the real one
    try:
        return AutoConfig.for_model(**raw) if "model_type" in raw else BertConfig.from_dict(raw)
    except (ValueError, KeyError, TypeError) as err:
        raise UserError(f"{path / 'config.json'}: not a config transformers understands ({err})") from None


def load_model(path: str | os.PathLike, task: str = "mlm", **kwargs) -> PreTrainedModel:
    """Load a checkpoint for ``task`` ("mlm" or "classification") with its training activation.

    Keyword arguments go to ``from_pretrained`` (e.g. ``num_labels``). A checkpoint without an MLM
    or classification head (e.g. a sentence-embedding BERT) gets a freshly initialised one.
    """
    path = Path(path)
    config = load_config(path)
    for key, value in kwargs.items():
        setattr(config, key, value)
    auto = {"mlm": AutoModelForMaskedLM, "classification": AutoModelForSequenceClassification}[task]
    weights = list(path.glob("*.safetensors"))
    if not weights:
        raise UserError(f"{path}: no *.safetensors weights (bert_helu never loads pickled .bin files)")
    try:
        model = auto.from_pretrained(path, config=config, use_safetensors=True)
    except Exception as err:  # safetensors, torch and transformers each raise their own types
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UserError(f"{path}: cannot load model weights ({first})") from None
    spec = activation_of(config)
    if spec and getattr(config, SPEC_KEY, None):
        set_activation(model, spec)
    return model


def save_model(model: PreTrainedModel, path: str | os.PathLike, tokenizer=None) -> Path:
    """Write a stock-loadable checkpoint (safetensors + config [+ tokenizer]) atomically."""
    path = Path(path)
    with atomic_dir(path) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        if tokenizer is not None:
            tokenizer.save_pretrained(tmp)
    return path
