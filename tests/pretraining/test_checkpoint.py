import random

import numpy as np
import pytest
import torch
from conftest import TINY_BERT

from bert_helu.models.encoders import bert_config, build_mlm_model
from bert_helu.models.optimizer import make_optimizer
from bert_helu.pretraining import checkpoint_files as ckpt
from bert_helu.runtime.errors import UserError

TRAIN = {"lr": 1e-3, "betas": [0.9, 0.98], "eps": 1e-12, "weight_decay": 0.01}


def state(step, **extra):
    """What the pretraining loop saves besides tensors (checkpoint_files.REQUIRED_STATE)."""
    return {"step": step, "position": 16 * step, "elapsed": 1.5, "counters": {}, "identity": {}, **extra}


def trained_model_and_optimizer(seed=0):
    torch.manual_seed(seed)
    model = build_mlm_model(bert_config(TINY_BERT, "helu:alpha=0.05", vocab_size=50))
    opt = make_optimizer(model, TRAIN)
    for _ in range(2):
        ids = torch.randint(0, 50, (2, 8))
        model(input_ids=ids, labels=ids).loss.backward()
        opt.step()
        opt.zero_grad()
    return model, opt


def test_round_trip_restores_weights_optimizer_and_rng(tmp_path):
    model, opt = trained_model_and_optimizer()
    torch.manual_seed(123)
    random.seed(5)
    np.random.seed(7)
    rng = ckpt.capture_rng()
    expected_draws = (torch.rand(3), random.random(), np.random.rand())
    path = ckpt.save_checkpoint(tmp_path / "step-00000002", model, opt, {0: rng}, state(2, note="x"))

    fresh, fresh_opt = trained_model_and_optimizer(seed=1)
    loaded = ckpt.load_checkpoint(path)
    loaded.load_model_weights(fresh)
    fresh_opt.load_state_dict(loaded.optimizer_state)
    assert loaded.state["step"] == 2 and loaded.state["note"] == "x"
    for (name, a), b in zip(model.state_dict().items(), fresh.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    # tied decoder/embedding weights stay tied after loading
    assert (
        fresh.cls.predictions.decoder.weight.data_ptr()
        == fresh.bert.embeddings.word_embeddings.weight.data_ptr()
    )
    a, b = opt.state_dict(), fresh_opt.state_dict()
    assert a["param_groups"] == b["param_groups"]
    for i in a["state"]:
        for key in a["state"][i]:
            assert torch.equal(a["state"][i][key], b["state"][i][key])
    ckpt.restore_rng(loaded.rng[0])
    draws = (torch.rand(3), random.random(), np.random.rand())
    assert torch.equal(draws[0], expected_draws[0]) and draws[1:] == expected_draws[1:]


def test_no_pickle_files_are_written(tmp_path):
    model, opt = trained_model_and_optimizer()
    path = ckpt.save_checkpoint(tmp_path / "step-00000001", model, opt, {0: ckpt.capture_rng()}, state(1))
    assert sorted(p.name for p in path.iterdir()) == [
        "model.safetensors",
        "optimizer.safetensors",
        "rng.safetensors",
        "state.json",
    ]


def test_failed_write_leaves_no_checkpoint(tmp_path):
    model, opt = trained_model_and_optimizer()

    class Boom:
        def state_dict(self):
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        ckpt.save_checkpoint(tmp_path / "step-00000003", model, Boom(), {0: ckpt.capture_rng()}, {})
    assert ckpt.latest_checkpoint(tmp_path) is None


@pytest.mark.parametrize("damage", ["truncate_model", "bad_json", "missing_optimizer"])
def test_corrupt_checkpoint_is_a_user_error(tmp_path, damage):
    model, opt = trained_model_and_optimizer()
    path = ckpt.save_checkpoint(tmp_path / "step-00000001", model, opt, {0: ckpt.capture_rng()}, state(1))
    if damage == "truncate_model":
        data = (path / "model.safetensors").read_bytes()
        (path / "model.safetensors").write_bytes(data[: len(data) // 2])
    elif damage == "bad_json":
        (path / "state.json").write_text("{not json")
    else:
        (path / "optimizer.safetensors").unlink()
    with pytest.raises(UserError, match="corrupt checkpoint"):
        loaded = ckpt.load_checkpoint(path)
        loaded.load_model_weights(model)


def test_listing_skips_partial_writes_and_prune_keeps_newest(tmp_path):
    for step in (5, 10, 15):
        (tmp_path / f"step-{step:08d}").mkdir()
    (tmp_path / ".step-00000020.tmp-abc").mkdir()  # what a SIGKILL during a save leaves behind
    assert [p.name for p in ckpt.list_checkpoints(tmp_path)] == [
        "step-00000005",
        "step-00000010",
        "step-00000015",
    ]
    ckpt.prune_checkpoints(tmp_path, keep=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step-00000010", "step-00000015"]
