"""Robust pretraining runs, in process: the batch plan on any process count, a run's identity,
one writer per output dir, durable writes, and bad input as one-line errors."""

import contextlib
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import time

import pytest
from conftest import REPO, write_recipe
from helpers.programs import pretrain as run
from helpers.programs import weights

from bert_helu.pretraining.batches import plan_batches
from bert_helu.pretraining.recipe import PRETRAIN_DEFAULTS
from bert_helu.runtime.config import load_config
from bert_helu.runtime.errors import UserError

FAST = ["train.max_steps=2", "telemetry.enabled=false"]


def pretrain(recipe, out, *overrides, activation="relu"):
    return run("--config", recipe, "--activation", activation, "--output-dir", out, *FAST, *overrides)


@contextlib.contextmanager
def fresh_accelerate_state():
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=True)
    try:
        yield
    finally:
        AcceleratorState._reset_state(reset_partial_state=True)


def files(directory):
    return {p: p.read_bytes() for p in directory.rglob("*") if p.is_file()}


# ------------------------------------------------------------------------------ batch plan


@pytest.mark.parametrize(
    "processes, micro, accumulation",
    [(1, 96, 3), (2, 72, 2), (3, 96, 1), (4, 72, 1), (6, 48, 1), (8, 36, 1)],
)
def test_paper_recipe_keeps_its_global_batch_on_any_process_count(processes, micro, accumulation):
    cfg = load_config(PRETRAIN_DEFAULTS, REPO / "configs" / "pretrain" / "paper-bert-base.yaml")
    plan = plan_batches(cfg.train.global_batch_size, cfg.train.micro_batch_size, processes)
    assert (plan.micro_batch, plan.accumulation, plan.world_size) == (micro, accumulation, processes)
    assert plan.micro_batch * plan.accumulation * processes == plan.global_batch == 288
    assert plan.lowered == (micro < 96)


def test_a_global_batch_that_cannot_be_shared_evenly_is_refused():
    with pytest.raises(UserError, match="288 cannot be split evenly over 5 processes"):
        plan_batches(288, 96, 5)


# -------------------------------------------------------------------------------- identity


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory, corpus_cache):
    """A finished run and an unfinished one (checkpoints only) of the same recipe."""
    root = tmp_path_factory.mktemp("two-runs")
    recipe = write_recipe(root / "recipe.yaml", corpus_cache)
    finished, unfinished = root / "finished", root / "unfinished"
    import torch

    threads = torch.get_num_threads()
    assert pretrain(recipe, finished) == 0
    assert pretrain(recipe, unfinished, "train.checkpoint_every_steps=1") == 0
    (unfinished / "summary.json").unlink()
    torch.set_num_threads(threads)
    return recipe, finished, unfinished


@pytest.mark.parametrize(
    "change, named",
    [
        ("seed=7", "seed 42 there, 7 here"),
        ("train.lr=0.001", "train.lr 0.003 there, 0.001 here"),
        ("train.global_batch_size=32", "train.global_batch_size 16 there, 32 here"),
        ("train.mixed_precision=bf16", 'train.mixed_precision "no" there, "bf16" here'),
        ("train.max_steps=3", "train.max_steps 2 there, 3 here"),
        ("data.sources=[{type: text, path: bert_helu/sample_data/corpus/books/pg11.txt}]", "data.corpus"),
    ],
)
def test_resuming_or_rerunning_with_another_recipe_is_refused_naming_the_keys(
    two_runs, tmp_path, capsys, monkeypatch, change, named
):
    recipe, finished, unfinished = two_runs
    capsys.readouterr()
    monkeypatch.chdir(REPO)  # the changed source's path is relative
    for out in (finished, unfinished):
        before = files(out)
        with fresh_accelerate_state():  # accelerate keeps one precision per Python process
            assert pretrain(recipe, out, change) == 2
        err = capsys.readouterr().err
        assert "Traceback" not in err
        err = err.strip().splitlines()[-1]  # (a changed corpus is prepared first: progress bars)
        assert err.startswith("error: ") and "belongs to a different run" in err and named in err, err
        assert "already holds" not in err
        assert files(out) == before


def test_a_corpus_rebuilt_with_another_vocabulary_is_refused(two_runs, corpus_cache, tmp_path, capsys):
    """tokenizers' WordPiece trainer is not deterministic: a cache rebuilt under the same fingerprint
    can hold another vocabulary. A run is not resumed on it; a run saved before the vocabulary was
    part of a run's identity still is."""
    recipe, finished, unfinished = two_runs
    identity = json.loads((finished / "summary.json").read_text())["identity"]
    name = f"corpus-{identity['data']['corpus']}"
    rebuilt = tmp_path / "cache" / name
    shutil.copytree(corpus_cache / name, rebuilt)
    tokenizer = json.loads((rebuilt / "tokenizer" / "tokenizer.json").read_text())
    vocab = tokenizer["model"]["vocab"]
    first, second = sorted(token for token in vocab if token.startswith("##"))[:2]
    vocab[first], vocab[second] = vocab[second], vocab[first]  # a tie broken the other way
    (rebuilt / "tokenizer" / "tokenizer.json").write_text(json.dumps(tokenizer))
    capsys.readouterr()
    for out in (finished, unfinished):
        before = files(out)
        assert pretrain(recipe, out, f"data.cache_dir={tmp_path / 'cache'}") == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and "\n" not in err, err
        assert "(data.vocabulary " in err and "restore the cache this run was made with" in err
        assert files(out) == before
    earlier = tmp_path / "earlier"
    shutil.copytree(finished, earlier)
    summary = json.loads((earlier / "summary.json").read_text())
    del summary["identity"]["data"]["vocabulary"]
    (earlier / "summary.json").write_text(json.dumps(summary))
    assert pretrain(recipe, earlier) == 0
    assert "nothing to do" in capsys.readouterr().out


def test_logistics_may_change_when_a_run_is_resumed(recipe, tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train.checkpoint_every_steps=1", "train.max_steps=4"]
    assert pretrain(recipe, out, *args, "train.keep_checkpoints=4") == 0
    (out / "summary.json").unlink()
    for step in (3, 4):  # as if killed after step 2
        os.rename(out / "checkpoints" / f"step-{step:08d}", tmp_path / f"moved-{step}")
    logistics = ["train.log_every_steps=1", "train.keep_checkpoints=5",
                 "train.micro_batch_size=4", "train.eval_every_steps=1", "logging.tensorboard=false",
                 "train.checkpoint_every_minutes=30", "telemetry.histogram_every=0"]  # fmt: skip
    assert pretrain(recipe, out, *args, *logistics) == 0
    assert f"resumed from {out / 'checkpoints' / 'step-00000002'}" in capsys.readouterr().out
    assert json.loads((out / "summary.json").read_text())["steps"] == 4


def test_an_unreadable_newest_checkpoint_falls_back_to_the_one_before(recipe, tmp_path, capsys):
    out, full = tmp_path / "run", tmp_path / "full"
    args = ["train.checkpoint_every_steps=1", "train.keep_checkpoints=3", "train.max_steps=3"]
    assert pretrain(recipe, full, *args) == 0
    assert pretrain(recipe, out, *args) == 0
    (out / "summary.json").unlink()
    (out / "checkpoints" / "step-00000003" / "model.safetensors").write_bytes(b"\0" * 8)  # cut short
    assert pretrain(recipe, out, *args) == 0
    printed = capsys.readouterr().out
    assert "warning: " in printed and "step-00000003: corrupt checkpoint" in printed
    assert "falling back to step-00000002" in printed
    a, b = weights(full), weights(out)
    assert all((a[k] == b[k]).all() for k in a)


# ------------------------------------------------------------------------------ one writer


HOLD_LOCK = """
import sys, time
from bert_helu.runtime.locks import RunDirLock
lock = RunDirLock(sys.argv[1])
lock.acquire()
print("holding", flush=True)
time.sleep(600)
"""


def test_a_second_run_on_a_locked_output_dir_exits_2_naming_the_holder_and_a_stale_lock_is_taken_over(
    recipe, tmp_path, capsys
):
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(out)], stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        assert holder.stdout.readline().strip() == "holding"
        assert pretrain(recipe, out) == 2
        err = capsys.readouterr().err.strip()
        assert f"{out} is in use by another run (pid {holder.pid} on " in err and "\n" not in err
        assert not (out / "checkpoints").exists()
    finally:
        os.kill(holder.pid, signal.SIGKILL)  # killed holding the lock: its file stays behind
        holder.wait()
    assert (out / ".lock").is_file()
    assert pretrain(recipe, out) == 0
    assert (
        f"took over the lock of {out} from a run that no longer runs (pid {holder.pid}"
        in capsys.readouterr().err
    )
    assert (out / "summary.json").is_file() and not (out / ".lock").exists()  # released at the end


def test_leftovers_of_a_killed_run_are_removed_at_start(recipe, tmp_path):
    out = tmp_path / "run"
    (out / "checkpoints" / ".step-00000001.tmp-abcd").mkdir(parents=True)
    (out / "checkpoints" / ".step-00000001.tmp-abcd" / "model.safetensors").write_bytes(b"half")
    (out / ".summary.json.tmp-x1y2").write_text("{")
    (out / ".final.old-1234").mkdir()
    assert pretrain(recipe, out) == 0
    assert not [p for p in out.rglob(".*") if ".tmp-" in p.name or ".old-" in p.name]


def test_files_and_directories_get_the_users_normal_permissions(recipe, tmp_path):
    old = os.umask(0o022)
    try:
        out = tmp_path / "run"
        assert pretrain(recipe, out, "train.checkpoint_every_steps=1") == 0
    finally:
        os.umask(old)
    step = out / "checkpoints" / "step-00000001"
    for path in [out / "summary.json", out / "final", out / "final" / "model.safetensors", step,
                 step / "state.json", step / "model.safetensors"]:  # fmt: skip
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (0o755 if path.is_dir() else 0o644), (path, oct(mode))


# ------------------------------------------------------------------------------ bad input


def _not_a_dir(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    return blocker / "sub"


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train.betas=[0.9, x]"], "train.betas must be two numbers in [0, 1), got [0.9, 'x']"),
        (["seed=-1"], "seed must be >= 0"),
        (["train.budget_hours=inf"], "'train.budget_hours' must be a finite number, got inf"),
        (["train.lr=nan"], "'train.lr' must be a finite number"),
        (["data.seq_len=128"], "data.seq_len 128 is longer than the model's 64 positions"),
        (["model.num_attention_heads=3"], "model.num_attention_heads 3 must divide model.hidden_size 32"),
        (["--activation", "helu:alpha=-0.5"], "activation 'helu': alpha must be > 0, got -0.5"),
        (["data.sources=[{type: text, path: bert_helu/sample_data/corpus/books/pg11.txt, weight: .nan}]"],
         "data.sources[0]: weight must be a positive, finite number, got nan"),
        (["data.sources=[{type: text, path: bert_helu/sample_data/corpus/books/pg11.txt, weight: .inf}]"],
         "data.sources[0]: weight must be a positive, finite number, got inf"),
        (["train.global_batch_size=0"], "train.global_batch_size must be >= 1"),
    ],
)  # fmt: skip
def test_bad_recipe_values_are_one_line_errors_before_anything_is_prepared(
    recipe, tmp_path, capsys, monkeypatch, argv, message
):
    import bert_helu.data.prepare as prepare

    monkeypatch.setattr(prepare, "_build", lambda *a: pytest.fail("the corpus was prepared"))
    monkeypatch.chdir(REPO)
    out = tmp_path / "run"
    argv = ["--activation", "relu", *argv] if "--activation" not in argv else argv
    assert run("--config", recipe, "--output-dir", out, *argv, "data.cache_dir=" + str(tmp_path / "c")) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and "\n" not in err, err
    assert not out.exists()


def test_mixed_precision_no_is_accepted(recipe, tmp_path):
    assert pretrain(recipe, tmp_path / "run", "train.mixed_precision=no") == 0
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["mixed_precision"] == "no"


@pytest.mark.parametrize("which", ["--output-dir", "data.cache_dir"])
def test_unwritable_output_or_cache_dir_is_refused_before_training(recipe, tmp_path, capsys, which):
    bad = _not_a_dir(tmp_path)
    out = bad if which == "--output-dir" else tmp_path / "run"
    extra = [f"data.cache_dir={bad}"] if which == "data.cache_dir" else []
    assert pretrain(recipe, out, *extra) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {which} {bad}: cannot write there (") and "\n" not in err, err
    assert not (tmp_path / "run" / "checkpoints").exists()


@pytest.mark.parametrize("which", ["--output-dir", "data.cache_dir"])
def test_full_output_or_cache_dir_is_refused_before_training(recipe, tmp_path, capsys, monkeypatch, which):
    import shutil

    import bert_helu.runtime.storage as storage

    full = tmp_path / "full"
    real = shutil.disk_usage

    def usage(path):
        found = real(path)
        return found._replace(free=1000) if str(path).startswith(str(full)) else found

    monkeypatch.setattr(storage.shutil, "disk_usage", usage)
    out = full / "run" if which == "--output-dir" else tmp_path / "run"
    extra = [f"data.cache_dir={full / 'cache'}"] if which == "data.cache_dir" else []
    assert pretrain(recipe, out, *extra) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {which} ") and "MB free, but" in err and "\n" not in err, err
    assert not list(tmp_path.rglob("step-*")) and not list(tmp_path.rglob("summary.json"))


def test_a_checkpoint_state_missing_a_field_is_a_one_line_error(recipe, tmp_path, capsys):
    out = tmp_path / "run"
    assert pretrain(recipe, out, "train.checkpoint_every_steps=2") == 0
    (out / "summary.json").unlink()
    state_file = out / "checkpoints" / "step-00000002" / "state.json"
    state = json.loads(state_file.read_text())
    del state["position"]
    state_file.write_text(json.dumps(state))
    capsys.readouterr()
    assert pretrain(recipe, out, "train.checkpoint_every_steps=2") == 2
    err = capsys.readouterr().err.strip()
    where = out / "checkpoints" / "step-00000002"
    assert err == f"error: {where}: corrupt checkpoint (state.json has no 'position')"


def test_a_source_that_yields_no_document_is_an_error(recipe, tmp_path, capsys):
    plain = tmp_path / "plain.txt"
    plain.write_text("Just plain text, no <doc> records at all.\n\n" * 50)
    source = f"data.sources=[{{type: wikiextractor, path: {plain}}}]"
    assert pretrain(recipe, tmp_path / "run", source) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    err = err.strip().splitlines()[-1]  # after datasets' progress bars
    hint = "is it WikiExtractor output (<doc ...> records)?"
    assert err == f"error: data.sources[0] ({plain}): no documents in 1 file(s); {hint}"
    assert not (tmp_path / "run").exists()


def test_a_second_corpus_builder_waits_then_reuses_the_cache(tmp_path, monkeypatch, capsys):
    """Two builders of one corpus (threads here: the lock is per open file, as between processes)."""
    import threading

    from helpers.corpus import small_config

    import bert_helu.data.prepare as prepare

    building, go = threading.Event(), threading.Event()
    real = prepare._build

    def build(*args):
        building.set()
        assert go.wait(120)
        return real(*args)

    monkeypatch.setattr(prepare, "_build", build)
    cfg = small_config(tmp_path / "cache")
    hits = {}

    def prepare_as(name):
        hits[name] = prepare.prepare_corpus(cfg).summary["cache_hit"]

    first = threading.Thread(target=prepare_as, args=("first",))
    first.start()
    assert building.wait(120)  # the first holds the build lock now
    second = threading.Thread(target=prepare_as, args=("second",))
    second.start()
    deadline, said = time.monotonic() + 120, ""
    while "which is building" not in said and time.monotonic() < deadline:
        time.sleep(0.01)  # until the second says it waits
        said += capsys.readouterr().err
    go.set()
    first.join(300)
    second.join(300)
    assert f"waiting for pid {os.getpid()} on " in said
    assert hits == {"first": False, "second": True}  # built once, then reused
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [
        next((tmp_path / "cache").glob("corpus-*")).name
    ]


# ------------------------------------------------------------------------------------ fp16


def test_fp16_overflow_skips_are_counted_and_k_in_a_row_abort():
    """What accelerate gives a CUDA fp16 run: a GradScaler, which skips a step whose gradients
    overflow and halves its scale. Routine for a few steps; K in a row is a diverged run."""
    import torch
    from accelerate import Accelerator
    from conftest import TINY_BERT

    from bert_helu.models.encoders import bert_config, build_mlm_model
    from bert_helu.models.optimizer import make_optimizer
    from bert_helu.models.sparse_mlm import SparseMLM
    from bert_helu.pretraining.batches import MicroBatch
    from bert_helu.pretraining.state import RunState
    from bert_helu.pretraining.step import BadStepGuard, train_step

    torch.manual_seed(0)
    model = build_mlm_model(bert_config(TINY_BERT, "relu", vocab_size=60))
    optimizer = make_optimizer(model, {"lr": 1e-3, "betas": [0.9, 0.98], "eps": 1e-12, "weight_decay": 0.0})
    accelerator = Accelerator(cpu=True)
    accelerator.scaler = torch.amp.GradScaler("cpu", init_scale=2.0**16)
    wrapped, optimizer = accelerator.prepare(SparseMLM(model), optimizer)
    ids = torch.randint(5, 60, (2, 16))
    labels = torch.where(torch.rand(2, 16) < 0.5, ids, torch.full_like(ids, -100))
    batch, masked = [MicroBatch.of(ids, labels)], int((labels != -100).sum())
    state = RunState(identity={})
    guard = BadStepGuard(10, 3, accelerator.scaler.get_scale)
    weights = model.bert.embeddings.word_embeddings.weight

    def step(overflow: bool):
        hook = weights.register_hook(lambda g: g * float("inf")) if overflow else None
        result = train_step(accelerator, wrapped, optimizer, batch, masked, grad_clip=0.0)
        if hook is not None:
            hook.remove()
        return result

    def record(result, at_step: int):
        guard.add(at_step, result)
        guard.settle(state, print)

    for n in range(2):
        result = step(overflow=True)
        assert result.overflow and result.skipped
        record(result, n)
    result = step(overflow=False)
    assert not result.skipped and not result.overflow
    record(result, 2)  # a good step: the count in a row starts again
    for n in range(3, 5):
        record(step(overflow=True), n)
    with pytest.raises(
        UserError, match=r"3 fp16 steps in a row overflowed \(loss scale now 2048\), the last at step 5"
    ):
        record(step(overflow=True), 5)
    assert (state.skipped_steps, state.overflow_steps) == (0, 5)


# ------------------------------------------------------------------------------- streaming


def test_a_streamed_corpus_resumes_where_it_stopped_and_wraps_around(tmp_path):
    import shutil

    import yaml

    recipe = write_recipe(tmp_path / "recipe.yaml", tmp_path / "cache")
    cfg = yaml.safe_load(recipe.read_text())
    cfg["data"]["streaming"] = True
    cfg["data"]["validation_fraction"] = 0.2
    for source in cfg["data"]["sources"]:
        source["max_docs"] = 2  # a pass of a few dozen sequences: 8 steps of 16 wrap around
    recipe.write_text(yaml.safe_dump(cfg))
    args = ["train.max_steps=8", "train.checkpoint_every_steps=3", "train.keep_checkpoints=5"]
    full, resumed = tmp_path / "full", tmp_path / "resumed"
    assert pretrain(recipe, full, *args) == 0
    state = json.loads((full / "checkpoints" / "step-00000006" / "state.json").read_text())
    assert (state["data"]["pass_length"] or 10**9) < 6 * 16, state["data"]  # wrapped around by step 6
    assert state["data"]["position"] == 6 * 16 and state["data"]["stream"]
    shutil.copytree(full / "checkpoints" / "step-00000006", resumed / "checkpoints" / "step-00000006")
    assert pretrain(recipe, resumed, *args) == 0
    a, b = weights(full), weights(resumed)
    assert all((a[k] == b[k]).all() for k in a)
