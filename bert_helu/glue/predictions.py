"""Per-example dev predictions of a fine-tuning run, kept beside its results.json.

``predictions.npz`` (plain numpy arrays, never pickled objects), one row per dev example, sorted by
``index``:

- ``index``: the example's row in its dev file (0-based, header excluded), so runs evaluated on the
  same examples can be paired even when ``max_eval_examples`` picked a subset;
- ``label``: the gold label (class id) or score (STS-B);
- ``prediction``: the predicted class id or score, after the last fine-tuning epoch (the epoch that
  results.json reports);
- ``int8_prediction``: the same after dynamic INT8 quantisation, when the run evaluated INT8.

That is all any GLUE metric needs, so metrics can be recomputed and dev examples resampled
(bert_helu.analysis.bootstrap) without the model.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bert_helu.runtime.atomic import atomic_write_bytes
from bert_helu.runtime.errors import UserError

FILE_NAME = "predictions.npz"
VARIANTS = {"full": "prediction", "int8": "int8_prediction"}


@dataclass(frozen=True)
class Predictions:
    index: np.ndarray
    label: np.ndarray
    prediction: np.ndarray
    int8_prediction: np.ndarray | None = None
    path: Path | None = None  # where it was read from, for error messages

    def of(self, variant: str) -> np.ndarray:
        """``full`` (the reported model) or ``int8`` (its quantised copy)."""
        values = getattr(self, VARIANTS[variant])
        if values is None:
            raise UserError(f"{self.path}: no {VARIANTS[variant]} (the run did not evaluate INT8)")
        return values


def from_eval(example_ids, predictions, labels, int8_predictions=None, regression: bool = False):
    """Predictions in evaluation order (``example_ids[i]`` is the dev row of ``predictions[i]``)."""
    order = np.argsort(np.asarray(example_ids), kind="stable")
    dtype = np.float32 if regression else np.int16

    def column(values):
        return None if values is None else np.asarray(values)[order].astype(dtype)

    return Predictions(
        index=np.asarray(example_ids, dtype=np.int32)[order],
        label=column(labels),
        prediction=column(predictions),
        int8_prediction=column(int8_predictions),
    )


def write_predictions(path: str | Path, preds: Predictions) -> Path:
    arrays = {"index": preds.index, "label": preds.label, "prediction": preds.prediction}
    if preds.int8_prediction is not None:
        arrays["int8_prediction"] = preds.int8_prediction
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return atomic_write_bytes(path, buffer.getvalue())


def read_predictions(path: str | Path) -> Predictions:
    """A predictions file, checked; a missing, corrupt or inconsistent one is a UserError naming it."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
    except FileNotFoundError:
        raise UserError(f"{path}: no such predictions file") from None
    except (OSError, ValueError, zipfile.BadZipFile) as err:
        raise UserError(f"{path}: not a readable predictions file ({err})") from None
    missing = [k for k in ("index", "label", "prediction") if k not in arrays]
    if missing:
        raise UserError(f"{path}: missing array(s) {', '.join(missing)}")
    n = len(arrays["index"])
    for name, values in arrays.items():
        if values.ndim != 1 or len(values) != n:
            raise UserError(f"{path}: {name!r} has shape {values.shape}, expected ({n},) like 'index'")
    if n == 0:
        raise UserError(f"{path}: no examples")
    return Predictions(
        index=arrays["index"],
        label=arrays["label"],
        prediction=arrays["prediction"],
        int8_prediction=arrays.get("int8_prediction"),
        path=path,
    )
