"""Training checkpoints: everything needed to continue a run exactly where it stopped.

Layout of ``<run>/checkpoints/step-00001200/`` (written atomically, so a killed process never leaves
a directory that looks complete):

- ``model.safetensors``: the model weights (tied embeddings handled by safetensors' save_model).
- ``optimizer.safetensors``: every optimizer state tensor, keyed ``<param index>.<name>``.
- ``rng.safetensors``: torch RNG states of every process, keyed ``<rank>.cpu`` / ``<rank>.cuda<i>``.
- ``state.json``: step, elapsed budget, data position, counters, optimizer hyper-parameters,
  Python/NumPy RNG states and the run's identity (activation + model config).

Tensors go to safetensors and the rest to JSON: nothing is ever unpickled when resuming.
"""

from __future__ import annotations

import json
import random
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import safetensors.torch
import torch

from bert_helu.runtime.atomic import atomic_dir, atomic_write_json
from bert_helu.runtime.errors import UserError, first_line

_STEP_DIR = re.compile(r"^step-(\d+)$")

# What state.json must hold for a run to continue from it, and the JSON type of each.
REQUIRED_STATE = {
    "step": int,
    "position": int,
    "elapsed": (int, float),
    "counters": dict,
    "identity": dict,
    "optimizer": dict,
    "rng": dict,
}


class CorruptCheckpoint(UserError):
    """A checkpoint that cannot be read back (a run may fall back to an older one)."""


# ------------------------------------------------------------------------------------- RNG


def capture_rng() -> dict:
    """This process's RNG states: tensors for torch, JSON-able lists for Python and NumPy."""
    np_state = np.random.get_state()
    return {
        "tensors": {
            "cpu": torch.get_rng_state(),
            **(
                {f"cuda{i}": s for i, s in enumerate(torch.cuda.get_rng_state_all())}
                if torch.cuda.is_available()
                else {}
            ),
        },
        "python": _to_lists(random.getstate()),
        "numpy": [np_state[0], np_state[1].tolist(), *(_plain(x) for x in np_state[2:])],
    }


def restore_rng(rng: dict) -> None:
    torch.set_rng_state(rng["tensors"]["cpu"])
    cuda = [rng["tensors"][k] for k in sorted(rng["tensors"]) if k.startswith("cuda")]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda)
    version, state, gauss = rng["python"]
    random.setstate((version, tuple(state), gauss))
    name, keys, *rest = rng["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), *rest))


def _to_lists(x):
    return [_to_lists(v) for v in x] if isinstance(x, (tuple, list)) else x


def _plain(x):
    return x.item() if hasattr(x, "item") else x


# ------------------------------------------------------------------------------ save / load


@dataclass
class Checkpoint:
    path: Path
    state: dict  # the JSON part
    optimizer_state: dict  # ready for optimizer.load_state_dict
    rng: dict[int, dict]  # rank -> capture_rng() layout

    def load_model_weights(self, model: torch.nn.Module) -> None:
        try:
            missing, unexpected = safetensors.torch.load_model(
                model, self.path / "model.safetensors", strict=False
            )
        except Exception as err:
            raise CorruptCheckpoint(
                f"{self.path}: corrupt checkpoint, cannot load model weights ({first_line(err)})"
            ) from None
        if missing or unexpected:
            raise CorruptCheckpoint(
                f"{self.path}: checkpoint weights do not fit this model "
                f"(missing {len(missing)}, unexpected {len(unexpected)} tensors)"
            )


def save_checkpoint(path: Path, model: torch.nn.Module, optimizer, rng: dict[int, dict], state: dict) -> Path:
    """Write a checkpoint directory atomically (called on the main process only)."""
    opt = optimizer.state_dict()
    opt_tensors, opt_scalars = {}, {}
    for index, per_param in opt["state"].items():
        for name, value in per_param.items():
            if torch.is_tensor(value):
                opt_tensors[f"{index}.{name}"] = value.detach().cpu().contiguous()
            else:
                opt_scalars[f"{index}.{name}"] = value
    rng_tensors = {f"{rank}.{k}": v for rank, r in rng.items() for k, v in r["tensors"].items()}
    state = {
        **state,
        "optimizer": {"param_groups": opt["param_groups"], "scalars": opt_scalars},
        "rng": {str(rank): {"python": r["python"], "numpy": r["numpy"]} for rank, r in rng.items()},
    }
    with atomic_dir(path) as tmp:
        safetensors.torch.save_model(model, str(tmp / "model.safetensors"))
        safetensors.torch.save_file(opt_tensors, str(tmp / "optimizer.safetensors"))
        safetensors.torch.save_file(rng_tensors, str(tmp / "rng.safetensors"))
        atomic_write_json(tmp / "state.json", state)
    return path


def load_checkpoint(path: Path) -> Checkpoint:
    path = Path(path)
    try:
        state = json.loads((path / "state.json").read_text())
        _check_state(state)
        opt_tensors = safetensors.torch.load_file(str(path / "optimizer.safetensors"))
        rng_tensors = safetensors.torch.load_file(str(path / "rng.safetensors"))
        if not (path / "model.safetensors").is_file():
            raise FileNotFoundError("model.safetensors missing")
        per_param: dict[int, dict] = {}
        for key, value in [*opt_tensors.items(), *state["optimizer"]["scalars"].items()]:
            index, name = key.split(".", 1)
            per_param.setdefault(int(index), {})[name] = value
        groups = [
            {k: tuple(v) if isinstance(v, list) and k != "params" else v for k, v in g.items()}
            for g in state["optimizer"]["param_groups"]
        ]
        rng: dict[int, dict] = {}
        for rank, extra in state["rng"].items():
            tensors = {k.split(".", 1)[1]: v for k, v in rng_tensors.items() if k.split(".", 1)[0] == rank}
            rng[int(rank)] = {"tensors": tensors, **extra}
    except CorruptCheckpoint as err:
        raise CorruptCheckpoint(f"{path}: {err}") from None
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
        raise CorruptCheckpoint(f"{path}: corrupt checkpoint ({first_line(err)})") from None
    except Exception as err:  # safetensors raises its own SafetensorError
        raise CorruptCheckpoint(f"{path}: corrupt checkpoint ({first_line(err)})") from None
    return Checkpoint(path, state, {"state": per_param, "param_groups": groups}, rng)


def _check_state(state) -> None:
    if not isinstance(state, dict):
        raise CorruptCheckpoint("corrupt checkpoint (state.json is not a JSON object)")
    for key, kind in REQUIRED_STATE.items():
        if key not in state:
            raise CorruptCheckpoint(f"corrupt checkpoint (state.json has no {key!r})")
        if not isinstance(state[key], kind) or isinstance(state[key], bool):
            raise CorruptCheckpoint(f"corrupt checkpoint (state.json: {key!r} is {state[key]!r})")


# ------------------------------------------------------------------------------- directory


def checkpoint_dir(root: Path, step: int) -> Path:
    return Path(root) / f"step-{step:08d}"


def list_checkpoints(root: Path) -> list[Path]:
    """Finished checkpoints, oldest first (atomic_dir's temporary dirs start with '.' and are skipped)."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if (m := _STEP_DIR.match(p.name)) and p.is_dir()]
    return [p for _, p in sorted(found)]


def latest_checkpoint(root: Path) -> Path | None:
    found = list_checkpoints(root)
    return found[-1] if found else None


def prune_checkpoints(root: Path, keep: int) -> None:
    """Keep the ``keep`` newest checkpoints (and remove leftovers of interrupted writes)."""
    root = Path(root)
    found = list_checkpoints(root)
    for old in found[: max(0, len(found) - keep)]:
        shutil.rmtree(old, ignore_errors=True)
    for leftover in root.glob(".step-*.tmp-*"):
        shutil.rmtree(leftover, ignore_errors=True)
