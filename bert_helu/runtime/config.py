"""Recipes: program defaults <- YAML file <- ``dotted.key=value`` command-line overrides.

Every program declares its defaults as a nested dict; a key the defaults do not have is a typo and
is refused, as is a value whose type does not match the default's (ints are accepted for floats).
A default of ``None`` accepts any value; a default that is a list accepts any list; a default of
``{}`` is an open mapping (per-task settings, say) whose keys the program checks itself: the file and
the command line both add to it (``tasks.sst2.epochs=2`` keeps the file's other sst2 keys).

YAML is read with YAML 1.2's booleans (only ``true``/``false``): ``mixed_precision: no`` is the
string "no", as the user meant, not False. A boolean key still accepts yes/no/on/off. Floats
must be finite (``budget_hours=inf`` is refused, as is nan).
"""

from __future__ import annotations

import contextlib
import copy
import math
import re
from pathlib import Path

import yaml

from bert_helu.runtime.errors import UserError, first_line


class _Yaml12Loader(yaml.SafeLoader):
    """safe_load, except that yes/no/on/off are strings (YAML 1.2), so ``no`` means "no"."""


_Yaml12Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
_WORD_BOOLEANS = {"yes": True, "on": True, "no": False, "off": False}


def read_yaml(text: str):
    """Parse recipe YAML (YAML 1.2 booleans); raises yaml.YAMLError."""
    return yaml.load(text, Loader=_Yaml12Loader)  # noqa: S506 - a SafeLoader subclass


class Config(dict):
    """A nested dict with attribute access (``cfg.train.lr``), JSON-serialisable as is."""

    def __getattr__(self, key):
        try:
            return self[key]
        except KeyError:
            raise AttributeError(key) from None

    def __setattr__(self, key, value):
        self[key] = value


def _wrap(value):
    if isinstance(value, dict):
        return Config({k: _wrap(v) for k, v in value.items()})
    return value


def load_config(defaults: dict, path: str | Path | None = None, overrides: list[str] = ()) -> Config:
    cfg = copy.deepcopy(defaults)
    open_mappings = _open_mappings(defaults)
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise UserError(f"config file not found: {path}")
        try:
            loaded = read_yaml(path.read_text()) or {}
        except yaml.YAMLError as err:
            raise UserError(f"{path}: not valid YAML ({first_line(err)})") from None
        if not isinstance(loaded, dict):
            raise UserError(f"{path}: a recipe must be a mapping of keys to values")
        _merge(cfg, loaded, str(path), open_mappings)
    for item in overrides:
        key, eq, raw = item.partition("=")
        if not eq or not key:
            raise UserError(f"override {item!r} must be written dotted.key=value")
        nested: dict = {}
        node = nested
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        try:
            node[parts[-1]] = read_yaml(raw) if raw.strip() else ""
        except yaml.YAMLError:
            raise UserError(f"override {item!r}: not a valid value (quote it if it is text)") from None
        _merge(cfg, nested, "command line", open_mappings)
    return _wrap(cfg)


def _open_mappings(defaults: dict, prefix: str = "") -> set[str]:
    names = set()
    for key, value in defaults.items():
        if isinstance(value, dict):
            names |= {f"{prefix}{key}"} if not value else _open_mappings(value, f"{prefix}{key}.")
    return names


def _merge(base: dict, new: dict, source: str, open_mappings: set[str], prefix: str = "") -> None:
    for key, value in new.items():
        name = f"{prefix}{key}"
        if name in open_mappings:
            if not isinstance(value, dict):
                raise UserError(f"{source}: {name!r} must be a mapping")
            _deep_update(base[key], value)
            continue
        if key not in base:
            known = ", ".join(sorted(f"{prefix}{k}" for k in base))
            raise UserError(f"{source}: unknown config key {name!r} (known here: {known})")
        default = base[key]
        if isinstance(default, dict) and default:
            if not isinstance(value, dict):
                raise UserError(f"{source}: {name!r} must be a mapping")
            _merge(default, value, source, open_mappings, prefix=f"{name}.")
            continue
        base[key] = coerce(name, default, value, source)


def _deep_update(base: dict, new: dict) -> None:
    for key, value in new.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _deep_update(base[key], value)
        else:
            base[key] = copy.deepcopy(value)


def coerce(name: str, default, value, source: str):
    """``value`` as the type of ``default`` (as a recipe key of that default gets it), or a UserError."""
    return _coerce(name, default, value, source)


def _coerce(name: str, default, value, source: str):
    if default is None or value is None or isinstance(default, dict):
        return value
    if isinstance(default, bool):
        if isinstance(value, str) and value.lower() in _WORD_BOOLEANS:
            return _WORD_BOOLEANS[value.lower()]
        if not isinstance(value, bool):
            raise UserError(f"{source}: {name!r} must be true or false, got {value!r}")
        return value
    if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(default, float) and isinstance(value, str):
        with contextlib.suppress(ValueError):  # YAML reads 5e-5 (no dot) as a string
            value = float(value)
    if isinstance(default, float) and isinstance(value, float) and not math.isfinite(value):
        raise UserError(f"{source}: {name!r} must be a finite number, got {value!r}")
    if isinstance(default, list):
        if not isinstance(value, list):
            value = [value]
        return value
    if not isinstance(value, type(default)) or isinstance(value, bool) != isinstance(default, bool):
        raise UserError(
            f"{source}: {name!r} must be {type(default).__name__}, got {value!r} ({type(value).__name__})"
        )
    return value


def plain(value):
    """``value`` with every Config turned back into a dict (for YAML and JSON writers)."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def recipe_yaml(cfg: dict, sources: str) -> str:
    """The resolved recipe as YAML that ``--config`` reads back as is."""
    body = yaml.safe_dump(plain(cfg), sort_keys=False, default_flow_style=False, width=100)
    return f"# resolved recipe: {sources}\n{body}"
