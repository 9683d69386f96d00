"""Encoders of stock ``transformers`` classes with a registry activation in their FFNs; save/load rules.

Two architectures (``model.architecture`` in a pretraining recipe):

- ``bert``: stock BERT (``BertForMaskedLM``): post-LayerNorm, biases, learned absolute positions,
  FFN ``W2 act(W1 x)``.
- ``modernbert``: the crammed-encoder family (``ModernBertForMaskedLM``): pre-LayerNorm with a final
  norm, no biases in the linear layers, rotary positions, tied embeddings, and a gated FFN
  ``Wo (act(x Wi_a) * (x Wi_b))`` whose ``intermediate_size`` counts the activations per token (the
  input projection ``Wi`` is twice that wide). Global attention in every layer unless the recipe
  says otherwise.

Rules for checkpoints (``save_model`` / ``load_model``):

- The training-time activation spec is stored in the config as ``bert_helu_activation``.
- The config's activation field (``hidden_act`` for BERT, ``hidden_activation`` for ModernBERT) holds
  the stock ``transformers`` name of the *inference* function: ``relu`` for relu and helu (HeLU's
  forward is ReLU), ``gelu`` for gelu, ... so stock ``transformers`` loads the checkpoint with no
  project code and computes the same outputs.
- An activation with no stock equivalent is saved as ``"bert_helu:<spec>"`` there: stock
  ``transformers`` then refuses it with a KeyError naming bert_helu; ``bert_helu.load_model`` loads it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from torch import nn
from transformers import (
    AutoConfig,
    AutoModelForMaskedLM,
    AutoModelForSequenceClassification,
    BertConfig,
    BertForMaskedLM,
    BertForSequenceClassification,
    ModernBertConfig,
    ModernBertForMaskedLM,
    ModernBertForSequenceClassification,
    PretrainedConfig,
    PreTrainedModel,
)

from bert_helu.activations import build_activation, parse_spec
from bert_helu.pretraining.recipe import ARCHITECTURES
from bert_helu.runtime.atomic import atomic_dir
from bert_helu.runtime.errors import UserError, first_line

SPEC_KEY = "bert_helu_activation"
_PROJECT_PREFIX = "bert_helu:"

# Where each architecture keeps its feed-forward activation: (module class name, attribute).
_FFN_SITES = {
    "BertIntermediate": "intermediate_act_fn",
    "ModernBertMLP": "act",
    "RobertaIntermediate": "intermediate_act_fn",
    "ElectraIntermediate": "intermediate_act_fn",
    "GPT2MLP": "act",
    "XLNetFeedForward": "activation_function",
}


# The config field that names the FFN activation, per config class.
_ACT_FIELDS = ("hidden_act", "hidden_activation", "activation_function")


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


def modernbert_config(model_cfg: dict, activation: str, vocab_size: int, **extra) -> ModernBertConfig:
    """A ModernBertConfig from recipe keys (BERT's names, as every recipe uses) recording ``activation``.

    ``hidden_dropout_prob`` sets ModernBERT's embedding and MLP dropouts, ``attention_probs_dropout_prob``
    its attention dropout. ``extra`` takes ModernBertConfig fields, e.g. the tokenizer's special ids.
    """
    cfg = dict(model_cfg)
    hidden_dropout = cfg.pop("hidden_dropout_prob", 0.0)
    attention_dropout = cfg.pop("attention_probs_dropout_prob", 0.0)
    spec = str(parse_spec(activation))
    act = stock_hidden_act(spec)
    config = ModernBertConfig(
        vocab_size=vocab_size,
        hidden_activation=act,
        # the MLM/classifier head keeps the activation's stock forward (GELU where there is none)
        classifier_activation="gelu" if act.startswith(_PROJECT_PREFIX) else act,
        classifier_pooling="mean",  # Cramming's downstream pooler averages the tokens
        embedding_dropout=hidden_dropout,
        mlp_dropout=hidden_dropout,
        attention_dropout=attention_dropout,
        **cfg,
        **extra,
    )
    setattr(config, SPEC_KEY, spec)
    return config


def special_token_ids(tokenizer) -> dict:
    """The token ids a fresh model's config needs from the tokenizer it will read."""
    return {name: getattr(tokenizer, name) for name in ("pad_token_id", "cls_token_id", "sep_token_id")}


def model_config(
    model_cfg: dict, activation: str, vocab_size: int, special_ids: dict | None = None
) -> PretrainedConfig:
    """The config of a fresh encoder from a recipe's ``model`` section (``architecture`` picks the class).

    Keys of the other architecture (``global_attn_every_n_layers`` and ``local_attention`` are
    ModernBERT's) are ignored, so one recipe can switch with ``model.architecture=...``.
    """
    cfg = {k: v for k, v in model_cfg.items() if k != "init_from"}
    architecture = cfg.pop("architecture", "bert")
    modern_only = {"global_attn_every_n_layers": 1}  # ModernBERT's own default is 3 (local in between)
    modern_only.update({k: cfg.pop(k) for k in ("global_attn_every_n_layers", "local_attention") if k in cfg})
    special_ids = dict(special_ids or {})
    if architecture == "bert":
        return bert_config(cfg, activation, vocab_size, pad_token_id=special_ids.get("pad_token_id", 0))
    if architecture == "modernbert":
        if special_ids:  # ModernBERT's defaults are its own tokenizer's ids, far outside a small vocab
            special_ids.setdefault("bos_token_id", special_ids.get("cls_token_id"))
            special_ids.setdefault("eos_token_id", special_ids.get("sep_token_id"))
        return modernbert_config(cfg, activation, vocab_size, **modern_only, **special_ids)
    raise UserError(f"model.architecture must be one of {', '.join(ARCHITECTURES)}, got {architecture!r}")


def architecture_of(model_or_config) -> str:
    config = getattr(model_or_config, "config", model_or_config)
    return "modernbert" if isinstance(config, ModernBertConfig) else "bert"


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
    for field_name in _ACT_FIELDS:
        if hasattr(model.config, field_name):
            setattr(model.config, field_name, stock_hidden_act(spec))
    return model


def activation_of(model_or_config) -> str:
    """The training activation spec of a model or config (the stock one if the project never saw it)."""
    config = getattr(model_or_config, "config", model_or_config)
    spec = getattr(config, SPEC_KEY, None)
    if spec:
        return spec
    act = next((getattr(config, f) for f in _ACT_FIELDS if getattr(config, f, None)), None)
    return {"gelu_pytorch_tanh": "gelu_tanh", "gelu_new": "gelu_tanh", "swish": "silu"}.get(act, act)


def build_mlm_model(config: PretrainedConfig) -> PreTrainedModel:
    mlm_class = ModernBertForMaskedLM if isinstance(config, ModernBertConfig) else BertForMaskedLM
    return set_activation(mlm_class(_constructible(config)), getattr(config, SPEC_KEY))


def build_classifier(config: PretrainedConfig, num_labels: int) -> PreTrainedModel:
    config = _constructible(config)
    config.num_labels = num_labels
    classifier = (
        ModernBertForSequenceClassification
        if isinstance(config, ModernBertConfig)
        else BertForSequenceClassification
    )
    return set_activation(classifier(config), getattr(config, SPEC_KEY))


def _constructible(config: PretrainedConfig) -> PretrainedConfig:
    """A copy of ``config`` stock transformers can build; our activation is put in afterwards."""
    config = config.__class__.from_dict(config.to_dict())
    for field_name in _ACT_FIELDS:
        if str(getattr(config, field_name, "")).startswith(_PROJECT_PREFIX):
            setattr(config, field_name, "relu")
    return config


# ---------------------------------------------------------------- parts the loop and analysis use


def encoder_of(model: PreTrainedModel) -> nn.Module:
    """The encoder body (``.bert`` of BERT, ``.model`` of ModernBERT): embeddings + layers."""
    return model.base_model


def masked_lm_logits(mlm_model: PreTrainedModel, hidden: torch.Tensor) -> torch.Tensor:
    """The MLM head on selected hidden states only (sparse prediction: the masked positions)."""
    if isinstance(mlm_model, ModernBertForMaskedLM):
        return mlm_model.decoder(mlm_model.head(hidden))
    if isinstance(mlm_model, BertForMaskedLM):
        return mlm_model.cls(hidden)
    raise UserError(
        f"{type(mlm_model).__name__}: no MLM head bert_helu knows (BertForMaskedLM, ModernBertForMaskedLM)"
    )


def ffn_blocks(model: nn.Module) -> list[tuple[nn.Module, nn.Module, str]]:
    """(activation, module owning the FFN output projection, its attribute name), in layer order.

    The output projection is the matmul whose input is the activation's output (times the gate in a
    gated FFN): an exactly-zero activation makes the matching input feature of it exactly zero.
    """
    activations = {id(owner): getattr(owner, attr) for owner, attr in ffn_activation_sites(model)}
    blocks = []
    for module in model.modules():
        if type(module).__name__ == "ModernBertMLP" and id(module) in activations:
            blocks.append((activations[id(module)], module, "Wo"))
        intermediate, output = getattr(module, "intermediate", None), getattr(module, "output", None)
        if id(intermediate) in activations and hasattr(output, "dense"):
            blocks.append((activations[id(intermediate)], output, "dense"))
    return blocks


def load_model_config(path: str | os.PathLike) -> PretrainedConfig:
    """The ``PretrainedConfig`` of a checkpoint (a UserError when there is no usable config.json)."""
    path = Path(path)
    if not (path / "config.json").is_file():
        raise UserError(f"{path}: not a model checkpoint (no config.json)")
    try:
        raw = json.loads((path / "config.json").read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise UserError(f"{path / 'config.json'}: unreadable ({err})") from None
    if not isinstance(raw, dict):
        raise UserError(f"{path / 'config.json'}: not a model config (a JSON object expected)")
    for field_name in _ACT_FIELDS:
        if str(raw.get(field_name, "")).startswith(_PROJECT_PREFIX):
            raw[field_name] = "relu"  # placeholder; set_activation restores the real one
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
    config = load_model_config(path)
    for key, value in kwargs.items():
        setattr(config, key, value)
    auto = {"mlm": AutoModelForMaskedLM, "classification": AutoModelForSequenceClassification}[task]
    weights = list(path.glob("*.safetensors"))
    if not weights:
        raise UserError(f"{path}: no *.safetensors weights (bert_helu never loads pickled .bin files)")
    try:
        model = auto.from_pretrained(path, config=config, use_safetensors=True)
    except Exception as err:  # safetensors, torch and transformers each raise their own types
        raise UserError(f"{path}: cannot load model weights ({first_line(err)})") from None
    spec = activation_of(config)
    if spec and getattr(config, SPEC_KEY, None):
        set_activation(model, spec)
    return model


def save_model(
    model: PreTrainedModel, path: str | os.PathLike, tokenizer=None, card: str | None = None
) -> Path:
    """Write a stock-loadable checkpoint (safetensors + config [+ tokenizer] [+ ``card``, the model
    card, as README.md: bert_helu.models.card]) atomically."""
    path = Path(path)
    with atomic_dir(path) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        if tokenizer is not None:
            tokenizer.save_pretrained(tmp)
        if card is not None:
            (Path(tmp) / "README.md").write_text(card)
    return path
