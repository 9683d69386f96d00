"""Value rules of a recipe: the ranges and shapes that its loader, which judges types, cannot check.

A program lists its rules as one table, dotted key -> (rule, what the value must be), in the order
they are checked; ``broken_rule`` finds the first value that breaks its rule, and the program words
the error (each program's messages are its own).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

Rule = tuple[Callable[[Any], bool], str]


def is_int(value) -> bool:
    """An int that is not a bool (YAML's true is no count)."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value) -> bool:
    """An int or float that is not a bool."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def at_least(bound, note: str = "") -> Rule:
    """``value >= bound``, said as ``>= bound`` and the note (what the bound itself means, say)."""
    return (lambda value: value >= bound), f">= {bound}{f' ({note})' if note else ''}"


def above(bound) -> Rule:
    return (lambda value: value > bound), f"> {bound}"


def broken_rule(values: Mapping, rules: Mapping[str, Rule]) -> tuple[str, Any, str] | None:
    """``(dotted key, value, expected)`` of the first rule its value breaks; keys absent from
    ``values`` are not checked (an optional per-task setting, say)."""
    for dotted, (ok, expected) in rules.items():
        node = values
        for part in dotted.split("."):
            if not isinstance(node, Mapping) or part not in node:
                break
            node = node[part]
        else:
            if not ok(node):
                return dotted, node, expected
    return None
