"""Activation registry, and HeLU.

An activation is named by a *spec*: ``name`` or ``name:key=value,...`` (``helu:alpha=0.05``,
``leaky_relu:negative_slope=0.01``). ``build_activation(spec)`` returns an ``nn.Module``;
``register_activation(name)`` adds a new one from user code (its ``__init__`` raises ValueError for
values it refuses; the spec is then a one-line error)::

    @register_activation("my_act")
    class MyAct(nn.Module):
        def __init__(self, beta: float = 1.0, gated: bool = False, mode: str = "fast"): ...

A parameter's value is read as its annotation (or else its default) says: a number, ``true``/``false``,
an integer or a string; a parameter with neither takes a number, ``true``/``false`` or else a string.

Activations also come from installed packages: each entry point of the group ``bert_helu.activations``
names either a module (importing it registers its activations) or an ``nn.Module`` class (registered
under the entry point's name). They are loaded the first time a name is not found, and by
``list_activations``.

Every registered class may declare two class attributes that decide how a checkpoint is saved:

- ``relu_forward = True``: the forward pass is exactly ReLU, so the model *is* a ReLU model at
  inference and is saved with ``hidden_act: relu`` (HeLU is the reason this exists).
- ``stock_name``: the name stock ``transformers`` gives an identical function (``ACT2FN`` key).
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass, field
from importlib.metadata import entry_points

from torch import nn

from bert_helu.runtime.errors import UserError

ENTRY_POINT_GROUP = "bert_helu.activations"


PLUGIN_HINT = (
    "to add your own, pass --import MODULE or install a package with a bert_helu.activations entry point"
)


ParamValue = float | int | bool | str


_REGISTRY: dict[str, type[nn.Module]] = {}


_entry_points_loaded = False


def register_activation(name: str):
    """Class decorator: make ``name`` buildable by ``build_activation``."""

    def decorate(cls: type[nn.Module]) -> type[nn.Module]:
        if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
            raise TypeError(f"activation {name!r} must be an nn.Module subclass")
        if any(c in name for c in ":,= "):
            raise ValueError(f"activation name {name!r} may not contain ':', ',', '=' or spaces")
        _REGISTRY[name] = cls
        return cls

    return decorate


def load_entry_points() -> None:
    """Register the activations of installed packages (group ``bert_helu.activations``), once."""
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    for point in entry_points(group=ENTRY_POINT_GROUP):
        try:
            loaded = point.load()
        except Exception as err:  # a broken plugin names itself instead of failing deep inside a run
            raise UserError(
                f"activation plugin {point.name} = {point.value} ({ENTRY_POINT_GROUP}) failed to load: "
                f"{type(err).__name__}: {err}"
            ) from None
        if isinstance(loaded, type) and issubclass(loaded, nn.Module) and point.name not in _REGISTRY:
            register_activation(point.name)(loaded)


def list_activations() -> list[str]:
    load_entry_points()
    return sorted(_REGISTRY)


def _lookup(name: str) -> type[nn.Module]:
    if name not in _REGISTRY:
        load_entry_points()
    if name not in _REGISTRY:
        raise UserError(
            f"unknown activation {name!r}; registered: {', '.join(list_activations())}; {PLUGIN_HINT}"
        )
    return _REGISTRY[name]


@dataclass(frozen=True)
class ActivationSpec:
    name: str
    params: dict[str, ParamValue] = field(default_factory=dict)

    def __str__(self) -> str:
        if not self.params:
            return self.name
        return self.name + ":" + ",".join(f"{k}={format_value(v)}" for k, v in sorted(self.params.items()))


def format_value(value: ParamValue) -> str:
    """A parameter value as a spec writes it; parsing the text gives the value back."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        short = f"{value:g}"  # 0.05 rather than 0.05000000000000000277
        return short if float(short) == value else repr(value)
    return str(value)


@dataclass(frozen=True)
class Parameter:
    name: str
    kind: str  # float | int | bool | str | any
    default: ParamValue | None  # None: required

    def __str__(self) -> str:
        return (
            f"{self.name}={format_value(self.default)}"
            if self.default is not None
            else f"{self.name} (required)"
        )


def parameters(cls: type[nn.Module]) -> list[Parameter]:
    """The constructor parameters of a registered class, with the kind of value each one takes."""
    out = []
    for p in list(inspect.signature(cls.__init__).parameters.values())[1:]:
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        default = None if p.default is p.empty else p.default
        annotation = p.annotation if isinstance(p.annotation, str) else getattr(p.annotation, "__name__", "")
        if annotation in ("float", "int", "bool", "str"):
            kind = annotation
        elif isinstance(default, bool | str):
            kind = type(default).__name__
        elif isinstance(default, int | float):
            kind = "float"  # an unannotated number default takes any number, as before types existed
        else:
            kind = "any"
        out.append(Parameter(p.name, kind, default))
    return out


def parse_spec(spec: str | ActivationSpec) -> ActivationSpec:
    """Parse and validate ``name:key=value,...`` against the registered class's signature."""
    if isinstance(spec, ActivationSpec):
        return spec
    name, _, rest = str(spec).strip().partition(":")
    name = name.strip()
    accepted = {p.name: p for p in parameters(_lookup(name))}
    params: dict[str, ParamValue] = {}
    for item in filter(None, (p.strip() for p in rest.split(","))):
        key, eq, raw = item.partition("=")
        key = key.strip()
        if not eq:
            raise UserError(f"activation {name!r}: parameter {item!r} must be written key=value")
        if key not in accepted:
            known = ", ".join(accepted) or "none"
            raise UserError(f"activation {name!r}: unknown parameter {key!r} (accepted: {known})")
        params[key] = _parse_value(raw.strip(), accepted[key].kind, f"activation {name!r}: parameter {key!r}")
    try:  # the class judges its own values (HeLU: alpha > 0); a ValueError names the rule
        _REGISTRY[name](**params)
    except ValueError as err:
        raise UserError(f"activation {name!r}: {err}") from None
    return ActivationSpec(name, params)


_BOOLS = {"true": True, "false": False}


def _parse_value(raw: str, kind: str, where: str) -> ParamValue:
    if kind == "str":
        if not raw:
            raise UserError(f"{where} must not be empty")
        return raw
    if kind == "bool" or (kind == "any" and raw.lower() in _BOOLS):
        if raw.lower() not in _BOOLS:
            raise UserError(f"{where} must be true or false, got {raw!r}")
        return _BOOLS[raw.lower()]
    if kind == "int":
        try:
            return int(raw)
        except ValueError:
            raise UserError(f"{where} must be an integer, got {raw!r}") from None
    try:
        value = float(raw)
    except ValueError:
        if kind == "any" and raw:
            return raw
        raise UserError(f"{where} must be a number, got {raw!r}") from None
    if not math.isfinite(value):
        raise UserError(f"{where} must be finite, got {raw!r}")
    return value


def build_activation(spec: str | ActivationSpec) -> nn.Module:
    parsed = parse_spec(spec)
    module = _lookup(parsed.name)(**parsed.params)
    module.spec = str(parsed)  # kept on the module so a model can report what it was built with
    return module


def activation_class(spec: str | ActivationSpec) -> type[nn.Module]:
    return _lookup(parse_spec(spec).name)


# The built-in activations register themselves on import; they need register_activation above.
from bert_helu.activations import helu, standard  # noqa: E402, F401, I001
