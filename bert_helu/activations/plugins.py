"""Your own activations in the programs, without a launcher: ``--import MODULE`` and ``--list-activations``.

``--import`` takes a module name (``examples.my_activation``, found from the current directory or
anywhere on ``sys.path``) or a path to a ``.py`` file; importing it runs its ``@register_activation``
decorators. Installed packages can skip the flag with a ``bert_helu.activations`` entry point
(``bert_helu.activations.registry.load_entry_points``).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
import sysconfig
import traceback
from pathlib import Path

from bert_helu.runtime.errors import UserError, first_line

IMPORT_HELP = (
    "import this module (a dotted name such as examples.my_activation, or a .py file) before "
    "anything else, so that the activations it registers can be named; repeat for several modules"
)


def add_import_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--import", dest="imports", action="append", default=[], metavar="MODULE", help=IMPORT_HELP
    )


def add_list_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--list-activations",
        action="store_true",
        help="print every registered activation (with --import'ed and installed ones): its parameters "
        "with their defaults, and the hidden_act its checkpoints are saved with; then exit",
    )


def import_modules(names: list[str]) -> None:
    for name in names:
        import_module(name)


def import_module(name: str) -> None:
    path = Path(name)
    if name.endswith(".py"):
        if not path.is_file():
            raise UserError(f"--import {name}: no such file")
        spec = importlib.util.spec_from_file_location(path.stem, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[path.stem] = module
        try:
            spec.loader.exec_module(module)
        except Exception as err:
            del sys.modules[path.stem]
            raise _failed(name, err) from None
        return
    # `python -m` puts the current directory on sys.path, `python path/to/script.py` does not
    if "" not in sys.path and str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))
    try:
        importlib.import_module(name)
    except ModuleNotFoundError as err:
        # a missing module *named on the command line* is the user's typo; a missing dependency
        # inside their module is named with the line that imports it
        if err.name is None or not (name == err.name or name.startswith(err.name + ".")):
            raise _failed(name, err) from None
        raise UserError(
            f"--import {name}: no module named {err.name!r} (looked in {Path.cwd()} and sys.path; "
            "pass a dotted module name relative to the current directory, or a .py file)"
        ) from None
    except Exception as err:
        raise _failed(name, err) from None


def _failed(name: str, err: Exception) -> UserError:
    """The user's module failed while being imported (a syntax error, a missing dependency, any
    exception its top level raised): one line with the file and line where it happened."""
    if isinstance(err, SyntaxError):  # raised by the compiler: no frame of the user's file exists
        where, what = f"{err.filename}, line {err.lineno}", f"SyntaxError: {err.msg}"
    else:
        frame = _blamed_frame(traceback.extract_tb(err.__traceback__))
        where = f"{frame.filename}, line {frame.lineno}" if frame else "(no traceback)"
        what = f"{type(err).__name__}: {first_line(err, 200)}"
    return UserError(f"--import {name}: importing it failed at {where}: {what}")


def _blamed_frame(frames: list[traceback.FrameSummary]) -> traceback.FrameSummary | None:
    """The deepest frame in the user's code: not Python's import machinery, not an installed library,
    not bert_helu itself (a bad call into a library is the line of the user's file that made it)."""
    ours = str(Path(__file__).resolve().parents[1])  # bert_helu/
    libraries = {sysconfig.get_paths()[key] for key in ("stdlib", "platstdlib", "purelib", "platlib")}
    for frame in reversed(frames):
        file = frame.filename
        if file.startswith("<") or file.startswith(ours):
            continue
        if any(file.startswith(lib) for lib in libraries):
            continue
        return frame
    return frames[-1] if frames else None


def activations_table() -> str:
    """One line per registered activation: name, parameters (defaults), hidden_act when saved, module."""
    from bert_helu.activations import list_activations
    from bert_helu.activations.registry import _lookup, parameters
    from bert_helu.models.encoders import stock_hidden_act

    rows = [("activation", "parameters (defaults)", "saved as hidden_act", "defined in")]
    for name in list_activations():
        cls = _lookup(name)
        params = parameters(cls)
        required = any(p.default is None for p in params)
        saved = _saved_as(cls, name) if required else stock_hidden_act(name)
        rows.append((name, ", ".join(map(str, params)) or "-", saved, cls.__module__))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(row[:3], widths, strict=True)) + "  " + row[3]
        for row in rows
    ]
    lines.append(
        "\nA checkpoint whose hidden_act is a stock transformers name loads anywhere; one saved as "
        "'bert_helu:<spec>' needs bert_helu.load_model (and --import for your own activations)."
    )
    return "\n".join(lines)


def _saved_as(cls, name: str) -> str:
    """Without defaults for every parameter the class cannot be built; its class attributes decide."""
    if getattr(cls, "relu_forward", False):
        return "relu"
    return getattr(cls, "stock_name", None) or f"bert_helu:{name}:..."
