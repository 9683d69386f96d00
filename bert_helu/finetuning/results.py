"""A finished fine-tuning run's files, written by the main process.

Per reported task (MNLI: mnli and mnli_mismatched) a ``results.json``: the run's results, its identity,
where its checkpoint came from (bert_helu.models.provenance) and the name of its dev predictions
(``predictions.npz`` beside it). Each is written atomically and after everything else of the run:
test predictions first, then the mismatched file, then the task's own, whose presence marks the
run done.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bert_helu.finetuning.plan import Run
from bert_helu.glue.predictions import FILE_NAME as PREDICTIONS_FILE
from bert_helu.glue.predictions import write_predictions
from bert_helu.glue.submission import SubmissionTestSets
from bert_helu.models.provenance import pretraining_provenance
from bert_helu.runtime.atomic import atomic_write_json
from bert_helu.runtime.paths import display_path


@dataclass
class RunOutcome:
    """What a finished run reports, before it is written."""

    results: dict[str, dict]  # reported task name -> results.json content
    dev_predictions: dict = field(default_factory=dict)  # reported name -> per-example dev predictions
    test_predictions: dict = field(default_factory=dict)  # submission file -> test-set predictions


def write_run_files(run: Run, outcome: RunOutcome, test_sets: SubmissionTestSets) -> list[str]:
    """Write them; one line per file for the batch's report."""
    test_sets.write(run.dir, outcome.test_predictions)
    # what replicate grouping needs: the checkpoint's pretraining seed and recipe
    pretraining = pretraining_provenance(run.checkpoint.path, outcome.results[run.task.name]["activation"])
    written = []
    for name in reversed(run.task.reported_names):
        result = {"run": run.checkpoint.name, **outcome.results[name], "identity": run.identity}
        result["pretraining"] = pretraining
        if run.model_dir is not None:
            result["model_dir"] = display_path(run.model_dir)
        if name in outcome.dev_predictions:
            write_predictions(run.dir_of(name) / PREDICTIONS_FILE, outcome.dev_predictions[name])
            result["predictions"] = PREDICTIONS_FILE
        atomic_write_json(run.result_file(name), result)
        shown = ", ".join(f"{k}={v:.4f}" for k, v in result["metrics"].items())
        written.append(f"{name} {shown}")
    return written + [f"test predictions {sub.file}" for sub in outcome.test_predictions]
