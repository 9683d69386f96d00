"""Where a checkpoint came from: its pretraining seed and recipe, for grouping replicates.

Checkpoints pretrained with the same recipe and activation but different seeds are replicates of one
experiment; ``glue_eval`` puts them in one row. A run's ``summary.json`` (beside ``final/``) holds its
whole recipe; the fingerprint hashes it without the seed, the activation (a row key of its own) and the
settings that only change how a run is operated or measured, not what it learns
(bert_helu.runtime.identity.NOT_IN_MODEL). results.json files
written by earlier versions keep the 12-digit fingerprint of another key list: results of one
checkpoint fine-tuned before and after the change form two rows.
"""

from __future__ import annotations

import json
from pathlib import Path

from bert_helu.runtime.hashing import json_digest
from bert_helu.runtime.identity import NOT_IN_MODEL, without
from bert_helu.runtime.paths import display_path

# Replicates differ in their seed, and a row is one activation: neither is part of the recipe they
# share, nor is what does not change the trained model.
NOT_IN_RECIPE = ("seed", "activation", *NOT_IN_MODEL)

UNKNOWN = {"seed": None, "recipe": None, "summary": None}


def recipe_fingerprint(config: dict) -> str:
    """32 hex digits identifying a pretraining recipe, the same for every seed and activation."""
    return json_digest(without(config, NOT_IN_RECIPE))


def summary_path(checkpoint: str | Path) -> Path | None:
    """``runs/<name>/summary.json`` for ``runs/<name>/final`` (or a summary inside the checkpoint)."""
    checkpoint = Path(checkpoint)
    for candidate in (checkpoint.parent / "summary.json", checkpoint / "summary.json"):
        if candidate.is_file():
            return candidate
    return None


def pretraining_provenance(checkpoint: str | Path, activation: str | None = None) -> dict:
    """``{"seed", "recipe", "summary"}`` of a checkpoint of ours; all None for a stock one (MiniLM, ...).

    With ``activation``, a summary of another activation is not this checkpoint's (a stock checkpoint
    copied into someone's run dir, say) and is ignored.
    """
    path = summary_path(checkpoint)
    if path is None:
        return dict(UNKNOWN)
    try:
        summary = json.loads(path.read_text())
        config = summary["config"]
        seed = config["seed"]
    except (OSError, ValueError, KeyError, TypeError):
        return dict(UNKNOWN)  # not a pretraining summary of ours
    if activation is not None and summary.get("activation", config.get("activation")) != activation:
        return dict(UNKNOWN)
    return {"seed": seed, "recipe": recipe_fingerprint(config), "summary": display_path(path)}
