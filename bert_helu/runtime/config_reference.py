"""docs/config.md, generated from the code: every recipe key with its default, type and meaning.

The defaults are the programs' own (``PRETRAIN_DEFAULTS``, ``finetune_recipe.DEFAULTS``) and each key's
meaning sits next to its default (``*_KEY_HELP``), so the page cannot drift from the code:
``scripts/make_config_docs.py`` rewrites it, and a test fails when a key has no description or the
committed page is out of date.
"""

from __future__ import annotations

from dataclasses import dataclass

import yaml

TYPE_NAMES = {bool: "boolean", int: "integer", float: "number", str: "string", list: "list"}


@dataclass(frozen=True)
class Recipe:
    program: str
    defaults: dict
    descriptions: dict[str, str]
    example: str


def recipes() -> list[Recipe]:
    from bert_helu.finetuning.recipe import DEFAULTS, FINETUNE_KEY_HELP
    from bert_helu.pretraining.recipe import PRETRAIN_DEFAULTS, PRETRAIN_KEY_HELP

    return [
        Recipe("python -m pretrain", PRETRAIN_DEFAULTS, PRETRAIN_KEY_HELP, "configs/pretrain/cpu-tiny.yaml"),
        Recipe("python -m finetune", DEFAULTS, FINETUNE_KEY_HELP, "configs/finetune/cpu-fast.yaml"),
    ]


def leaf_keys(defaults: dict, prefix: str = "") -> dict[str, object]:
    """Dotted key -> default, for every key a recipe sets (an empty mapping is one key: an open mapping)."""
    out = {}
    for key, value in defaults.items():
        if isinstance(value, dict) and value:
            out.update(leaf_keys(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def undocumented(recipe: Recipe) -> list[str]:
    return [key for key in leaf_keys(recipe.defaults) if not recipe.descriptions.get(key, "").strip()]


def stale(recipe: Recipe) -> list[str]:
    """Descriptions of keys the defaults no longer have."""
    return sorted(set(recipe.descriptions) - set(leaf_keys(recipe.defaults)))


def type_name(default) -> str:
    if default is None:
        return "any (null)"
    if isinstance(default, dict):
        return "mapping"
    return TYPE_NAMES[type(default)]


def _inline(value) -> str:
    text = yaml.safe_dump(value, default_flow_style=True, sort_keys=False, width=10_000).strip()
    return text.removesuffix("\n...").removesuffix("...").strip()


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _table(recipe: Recipe) -> list[str]:
    lines = []
    section = None
    for key, default in leaf_keys(recipe.defaults).items():
        top = key.split(".")[0] if "." in key else ""
        if top != section:
            section = top
            lines += ["", f"### `{top}.*`" if top else "### top level", ""]
            lines += ["| key | default | type | meaning |", "|---|---|---|---|"]
        meaning = recipe.descriptions.get(key, "")
        lines.append(f"| `{key}` | `{_cell(_inline(default))}` | {type_name(default)} | {_cell(meaning)} |")
    return lines


INTRO = """# Recipe reference

Every setting of `python -m pretrain` and `python -m finetune`, with its default, its type and what it
does. This page is generated from the defaults in the code (`python scripts/make_config_docs.py`), so
it lists exactly the keys the programs accept.

## Setting a key

A setting comes from, in this order (later wins):

1. the program's default (the tables below);
2. the recipe file given with `--config` (YAML, nested like the tables: `train:` then `lr: 2.0e-3`);
3. `dotted.key=value` words on the command line (`train.lr=2e-3 'train.betas=[0.9, 0.98]'`; the value
   is read as YAML);
4. for a few keys, a flag: `--activation` (pretrain), `--int8` and `--save-models` (finetune).

A key the program does not know, or a value of the wrong type, stops the program with one line naming
it (exit status 2). To see what a command will run with, add `--print-config`: it prints the resolved
recipe as YAML and exits, and that output is itself a recipe `--config` accepts:

```bash
python -m pretrain --config configs/pretrain/cpu-tiny.yaml --print-config train.budget_hours=0.5
python -m finetune --config configs/finetune/cpu-fast.yaml --print-config train.epochs=3
```

`python -m glue_eval` takes no recipe: its commands are set by their options (`--help`).

Types: a number accepts an integer too; `any (null)` means the default is null (off, or "use the
checkpoint's own") and the meaning says what else the key takes.
"""

TRACKERS = """## Trackers: TensorBoard and Weights & Biases

Both programs log through the same `logging.*` keys. TensorBoard is on by default:

```bash
tensorboard --logdir runs/       # pretraining: loss, lr, grad norm, tokens/s, validation loss,
                                 # FFN telemetry and pre-activation histograms
tensorboard --logdir results/    # fine-tuning: loss and lr per step, dev metrics per epoch, per run
```

Weights & Biases is optional: `pip install 'bert-helu[wandb]'`, `wandb login` (or `WANDB_MODE=offline`
to log to disk and `wandb sync` later), then add `logging.wandb=true` (and
`logging.wandb_project=<name>`) to the command. A pretraining run is named after its output directory;
each fine-tuning run is named `<run name>/<task>/seed<seed>` and grouped by run name.
"""


def render() -> str:
    from bert_helu.data.sources import SOURCE_KEY_HELP

    lines = [INTRO.rstrip()]
    for recipe in recipes():
        lines += ["", f"## `{recipe.program}`", "", f"Example recipe: `{recipe.example}`."]
        lines += _table(recipe)
        if recipe.program.endswith("pretrain"):
            lines += ["", "### Corpus sources (each entry of `data.sources`)", ""]
            lines += [
                "Example: `'data.sources=[{type: jsonl, path: \"my/*.jsonl\", text_field: body}]'`; "
                "see also [data.md](data.md).",
                "",
                "| key | meaning |",
                "|---|---|",
            ]
            lines += [f"| `{key}` | {_cell(text)} |" for key, text in SOURCE_KEY_HELP.items()]
    lines += ["", TRACKERS.rstrip(), ""]
    return "\n".join(lines)
