"""Which results form one row of a table: checkpoints that replicate one experiment.

Checkpoints pretrained with the same recipe and activation, differing only in the pretraining seed
(``runs/gelu-s42``, ``runs/gelu-s43``, ...), are replicates: one row, with the spread across them.
Where a result says nothing of its pretraining (a stock checkpoint such as MiniLM, or a result
written before results.json recorded it and whose run dir is gone) the checkpoint is a row of its own.
``--group-by`` overrides the rule.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from bert_helu.models.provenance import pretraining_provenance
from bert_helu.runtime.errors import UserError

GROUP_BY_HELP = (
    "how checkpoints form rows: 'recipe' (default: checkpoints of the same pretraining recipe and "
    "activation, differing in pretraining seed, are replicates in one row; stock checkpoints and "
    "results without pretraining information are rows of their own), 'activation' (one row per "
    "activation), 'checkpoint' (one row per checkpoint), or 'pattern:REGEX' "
    "(rows named by the run name with REGEX removed, e.g. 'pattern:-s[0-9]+$' puts gelu-s42 and "
    "gelu-s43 in row 'gelu')"
)
CENTER_HELP = "a row's value across its replicates: mean (default) or median; the spread is the std"


@dataclass(frozen=True)
class Member:
    """One checkpoint (pretraining run) of a row."""

    run: str
    activation: str
    seed: int | None  # pretraining seed, None if unknown
    recipe: str | None  # pretraining recipe fingerprint (bert_helu.models.provenance), None if unknown


@dataclass
class Group:
    label: str
    activation: str
    members: list[Member] = field(default_factory=list)
    records: list[dict] = field(default_factory=list)
    by_activation: bool = False

    @property
    def name(self) -> str:
        return self.activation if self.by_activation else f"{self.label} ({self.activation})"


def check_group_by(spec: str) -> str:
    if spec in ("recipe", "activation", "checkpoint"):
        return spec
    if spec.startswith("pattern:"):
        try:
            re.compile(spec.removeprefix("pattern:"))
        except re.error as err:
            raise UserError(f"--group-by {spec!r}: not a regular expression ({err})") from None
        return spec
    raise UserError(f"--group-by {spec!r}: expected recipe, activation, checkpoint or pattern:REGEX")


def pretraining_of(record: dict, cache: dict | None = None) -> dict:
    """The record's pretraining seed and recipe; for results written before results.json kept them,
    looked up from the checkpoint's run dir if it is still where the result says."""
    if isinstance(record.get("pretraining"), dict):
        return record["pretraining"]
    key = (str(record["checkpoint"]), str(record["activation"]))
    if cache is None or key not in cache:
        found = pretraining_provenance(record["checkpoint"], activation=str(record["activation"]))
        if cache is None:
            return found
        cache[key] = found
    return cache[key]


def group_records(records: list[dict], group_by: str = "recipe") -> list[Group]:
    """Rows in order of first appearance, each with its member checkpoints and records."""
    group_by = check_group_by(group_by)
    groups: dict[tuple, Group] = {}
    lookups: dict = {}
    for record in records:
        run, activation = str(record["run"]), str(record["activation"])
        pretraining = pretraining_of(record, lookups)
        member = Member(run, activation, pretraining.get("seed"), pretraining.get("recipe"))
        key = _key(member, group_by)
        group = groups.setdefault(key, Group("", "", by_activation=group_by == "activation"))
        if member.run not in {m.run for m in group.members}:
            group.members.append(member)
        group.records.append(record)
    for key, group in groups.items():
        activations = sorted({m.activation for m in group.members})
        group.activation = ", ".join(activations)
        group.label = _label(key, group, group_by)
    _disambiguate(list(groups.values()))
    return list(groups.values())


def _key(member: Member, group_by: str) -> tuple:
    if group_by == "activation":
        return ("activation", member.activation)
    if group_by.startswith("pattern:"):
        stripped = re.sub(group_by.removeprefix("pattern:"), "", member.run)
        return ("pattern", stripped or member.run)
    if group_by == "recipe" and member.recipe is not None:
        return ("recipe", member.recipe, member.activation)
    return ("checkpoint", member.run, member.activation)


def _label(key: tuple, group: Group, group_by: str) -> str:
    if key[0] in ("activation", "pattern"):
        return key[1]
    runs = [m.run for m in group.members]
    if len(runs) == 1:
        return runs[0]
    # gelu-s42, gelu-s43 -> gelu-s*: each run name with its own pretraining seed starred
    templates = {
        re.sub(rf"(?<!\d){m.seed}(?!\d)", "*", m.run) if m.seed is not None else m.run for m in group.members
    }
    if len(templates) == 1 and "*" in next(iter(templates)):
        return templates.pop()
    return "+".join(runs)


def _disambiguate(groups: list[Group]) -> None:
    """Two rows of the same name (the same run names under two recipes, say) get their recipe added."""
    names: dict[str, list[Group]] = {}
    for group in groups:
        names.setdefault(group.name, []).append(group)
    for same in names.values():
        if len(same) > 1:
            for group in same:
                recipes = sorted({m.recipe or "unknown" for m in group.members})
                group.label += f" [recipe {', '.join(r[:6] for r in recipes)}]"


def grouping_notes(rows, group_by: str) -> list[str]:
    """What the rows are (``rows``: Groups, or table rows with ``name`` and ``members``): the rule and
    the members of every row of several checkpoints. Nothing when every row is one checkpoint under
    the default rule: the row names say it all."""
    if group_by == "recipe" and all(len(r.members) < 2 for r in rows):
        return []
    rule = {
        "recipe": "checkpoints of one pretraining recipe and activation are replicates of one row "
        "(a checkpoint without pretraining information is a row of its own)",
        "activation": "one row per activation",
        "checkpoint": "one row per checkpoint",
    }.get(group_by, f"by run name with {group_by.removeprefix('pattern:')!r} removed")
    notes = [f"Rows (--group-by {group_by}): {rule}."]
    for row in rows:
        if len(row.members) < 2:
            continue
        seeds = [m.seed for m in row.members]
        shown = ", ".join("?" if s is None else str(s) for s in seeds)
        text = f"{row.name} = {', '.join(m.run for m in row.members)} (pretraining seeds {shown})"
        known = [s for s in seeds if s is not None]
        if len(set(known)) < len(known):
            text += "; some share a pretraining seed, so they are not independent replicates"
        notes.append(text + ".")
    return notes
