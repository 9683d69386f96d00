"""Fine-tuning runs log their curves to TensorBoard (default) and refuse W&B clearly when it is absent."""

import importlib.util
import json

import pytest
from helpers.programs import FAST, SAMPLE, finetune, tiny_checkpoint
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator


def test_each_run_logs_loss_lr_and_dev_metrics_to_tensorboard(tmp_path, minilm_tokenizer):
    ckpt = tiny_checkpoint(tmp_path / "runs" / "helu" / "final", minilm_tokenizer)
    out = tmp_path / "results"
    code = finetune("--checkpoints", ckpt, "--tasks", "rte", "--glue-dir", SAMPLE, "--output-dir", out,
                    *FAST, "train.epochs=2", "train.batch_size=16", "logging.log_every_steps=1")  # fmt: skip
    assert code == 0
    run_dir = out / "helu" / "rte" / "seed42"
    board = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"scalars": 0})
    board.Reload()
    steps_per_epoch = 48 // 16
    assert [e.step for e in board.Scalars("train/loss")] == list(range(1, 2 * steps_per_epoch + 1))
    assert len(board.Scalars("train/lr")) == 2 * steps_per_epoch
    dev = board.Scalars("dev/rte/accuracy")
    history = json.loads((run_dir / "results.json").read_text())["history"]
    assert [e.step for e in dev] == [steps_per_epoch, 2 * steps_per_epoch]
    assert [e.value for e in dev] == pytest.approx([h["metrics"]["accuracy"] for h in history])


def test_tensorboard_off_writes_nothing_and_wandb_without_the_package_is_one_line(
    tmp_path, minilm_tokenizer, capsys
):
    ckpt = tiny_checkpoint(tmp_path / "ckpt", minilm_tokenizer)
    out = tmp_path / "results"
    args = ["--checkpoints", ckpt, "--tasks", "rte", "--glue-dir", SAMPLE, "--output-dir", out, *FAST]
    assert finetune(*args, "logging.tensorboard=false") == 0
    assert not list(out.rglob("tensorboard"))
    if importlib.util.find_spec("wandb") is None:
        assert finetune(*args, "--seeds", "7", "logging.wandb=true") == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert err[-1] == (
            "error: logging.wandb is true but wandb is not installed (pip install 'bert-helu[wandb]')"
        )
