"""The pretraining program, in process, on a slice of the bundled sample corpus with a TINY_BERT."""

import json
import math
import shutil

import numpy as np
import pytest
import torch
import yaml
from conftest import TINY_BERT
from helpers.programs import pretrain as run
from helpers.programs import weights
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from bert_helu.data.masking import MLMMasker
from bert_helu.models.encoders import (
    activation_of,
    bert_config,
    build_mlm_model,
    load_model,
    model_config,
    save_model,
)
from bert_helu.models.optimizer import make_optimizer
from bert_helu.models.sparse_mlm import SparseMLM
from bert_helu.pretraining.batches import GlobalBatches, MicroBatch, plan_batches
from bert_helu.pretraining.recipe import ARCHITECTURES
from bert_helu.pretraining.step import train_step

MLM_CLASS = {"bert": "BertForMaskedLM", "modernbert": "ModernBertForMaskedLM"}
ACTIVATION_KEY = {"bert": "hidden_act", "modernbert": "hidden_activation"}  # the stock config's name for it

# ----------------------------------------------------------------------------- the program


def test_run_leaves_checkpoint_summary_metrics_and_telemetry(recipe, tmp_path):
    out = tmp_path / "run"
    assert (
        run("--config", recipe, "--activation", "helu:alpha=0.05", "--output-dir", out, "train.max_steps=8")
        == 0
    )

    model = load_model(out / "final")
    assert activation_of(model) == "helu:alpha=0.05" and model.config.hidden_act == "relu"
    assert (out / "final" / "tokenizer.json").is_file()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["activation"] == "helu:alpha=0.05"
    assert summary["steps"] == 8 and summary["num_processes"] == 1
    assert summary["tokens_seen"] == 8 * 16 * 32
    for key in ("final_train_loss", "final_validation_loss", "tokens_per_s", "wall_time_s"):
        assert summary[key] > 0, key
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "train/loss" in r] == [2, 4, 6, 8]
    assert any("val/loss" in r for r in rows)
    windows = [r["telemetry"] for r in rows if "telemetry" in r]
    assert [w["window_start"] for w in windows] == [0, 4]
    layer = windows[0]["layers"][0]
    assert 0.2 < layer["zero_fraction"] < 0.8  # HeLU's forward is ReLU: about half exact zeros
    assert layer["forward_calls"] == 2 * 2  # 2 steps x 2 micro-batches
    hist = json.loads((out / "telemetry" / "histograms-step00000004.json").read_text())
    assert sum(hist["layers"]["0"]["counts"]) > 0
    assert list((out / "tensorboard").rglob("events.out.tfevents.*"))
    board = EventAccumulator(str(out / "tensorboard"), size_guidance={"histograms": 0, "scalars": 0})
    board.Reload()
    assert [e.step for e in board.Scalars("train/loss")] == [2, 4, 6, 8]
    layer0 = board.Histograms("telemetry/preactivation/layer0")  # the same windows as the JSON files
    assert [e.step for e in layer0] == [0, 4]
    binned = hist["layers"]["0"]
    assert layer0[1].histogram_value.num == sum(binned["counts"]) + binned["below"] + binned["above"]


def test_learns_something(recipe, tmp_path):
    out = tmp_path / "run"
    args = ["train.max_steps=100", "train.lr=1.0e-2", "telemetry.enabled=false"]
    assert run("--config", recipe, "--activation", "relu", "--output-dir", out, *args) == 0
    summary = json.loads((out / "summary.json").read_text())
    # an untrained model scores about ln(vocab); 100 steps learn at least the unigram statistics
    assert summary["final_validation_loss"] < math.log(512) - 0.4


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_resume_from_checkpoint_is_bitwise_identical(recipe, tmp_path, architecture):
    """The loop (sparse prediction, telemetry, checkpoints) runs either architecture unchanged."""
    args = [f"model.architecture={architecture}", "train.max_steps=6", "train.checkpoint_every_steps=3",
            "train.keep_checkpoints=5"]  # fmt: skip
    full, resumed = tmp_path / "full", tmp_path / "resumed"
    assert run("--config", recipe, "--activation", "helu:alpha=0.05", "--output-dir", full, *args) == 0
    assert sorted(p.name for p in (full / "checkpoints").iterdir()) == ["step-00000003", "step-00000006"]
    # what a run killed between steps 3 and 6 leaves behind (checkpoints are written atomically)
    shutil.copytree(full / "checkpoints" / "step-00000003", resumed / "checkpoints" / "step-00000003")
    assert run("--config", recipe, "--activation", "helu:alpha=0.05", "--output-dir", resumed, *args) == 0
    a, b = weights(full), weights(resumed)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)  # dropout is on: the RNG state was restored too
    assert json.loads((resumed / "summary.json").read_text())["steps"] == 6
    model = load_model(full / "final")
    assert type(model).__name__ == MLM_CLASS[architecture] and activation_of(model) == "helu:alpha=0.05"
    summary = json.loads((full / "summary.json").read_text())
    assert summary["identity"]["model"]["architecture"] == architecture
    telemetry = [json.loads(x) for x in (full / "metrics.jsonl").read_text().splitlines()]
    assert any("telemetry/zero_fraction" in record for record in telemetry)
    # the same output dir with the other architecture is another run
    other = next(a for a in ARCHITECTURES if a != architecture)
    assert (
        run("--config", recipe, "--activation", "helu:alpha=0.05", "--output-dir", full, *args[1:],
            f"model.architecture={other}") == 2
    )  # fmt: skip


def test_finished_run_is_not_redone(recipe, tmp_path, capsys):
    out = tmp_path / "run"
    assert run("--config", recipe, "--activation", "relu", "--output-dir", out, "train.max_steps=2") == 0
    before = (out / "final" / "model.safetensors").stat().st_mtime_ns
    assert run("--config", recipe, "--activation", "relu", "--output-dir", out, "train.max_steps=2") == 0
    assert "nothing to do" in capsys.readouterr().out
    assert (out / "final" / "model.safetensors").stat().st_mtime_ns == before


# ------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--activation", "swishy"], "unknown activation 'swishy'"),
        (["train.learning_rate=1.0"], "unknown config key 'train.learning_rate'"),
        (["train.max_steps=ten"], "'train.max_steps' must be int"),
        (["train.global_batch_size=0"], "train.global_batch_size must be >= 1"),
        (["train.scheduler=wavy"], "unknown scheduler 'wavy'"),
        (["train.mixed_precision=fp8"], "mixed_precision must be"),
        (["train.max_steps=0"], "set train.max_steps or train.budget_hours"),
        (["train.budget_hours=-1"], "train.budget_hours must be >= 0"),
        (["train.mlm_probability=1.5"], "train.mlm_probability must be in (0, 1)"),
    ],
)
def test_bad_input_is_one_line_error(recipe, tmp_path, capsys, argv, message):
    out = tmp_path / "run"
    argv = ["--activation", "relu", *argv] if "--activation" not in argv else argv
    assert run("--config", recipe, "--output-dir", out, *argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and "\n" not in err
    assert not (out / "checkpoints").exists() and not (out / "summary.json").exists()


def test_output_dir_of_another_run_is_refused_and_untouched(recipe, tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train.max_steps=2", "train.checkpoint_every_steps=1", "train.keep_checkpoints=3"]
    assert run("--config", recipe, "--activation", "gelu", "--output-dir", out, *args) == 0
    (out / "summary.json").unlink()  # an unfinished gelu run: checkpoints only
    snapshot = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert run("--config", recipe, "--activation", "relu", "--output-dir", out, *args) == 2
    assert 'different run (activation "gelu" there, "relu" here)' in capsys.readouterr().err
    assert (
        run("--config", recipe, "--activation", "gelu", "--output-dir", out, *args, "model.hidden_size=48")
        == 2
    )
    assert "different run (model.hidden_size 32 there, 48 here)" in capsys.readouterr().err
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == snapshot


def test_corrupt_checkpoint_is_refused(recipe, tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train.max_steps=2", "train.checkpoint_every_steps=2"]
    assert run("--config", recipe, "--activation", "relu", "--output-dir", out, *args) == 0
    (out / "summary.json").unlink()
    (out / "checkpoints" / "step-00000002" / "model.safetensors").write_bytes(b"\x00" * 16)
    assert run("--config", recipe, "--activation", "relu", "--output-dir", out, *args) == 2
    assert "corrupt checkpoint" in capsys.readouterr().err


def test_non_finite_steps_are_skipped_then_abort(recipe, tmp_path, capsys, monkeypatch):
    import pretrain.train as program

    class PoisonedMLM(SparseMLM):
        def forward(self, *args, **kwargs):
            return super().forward(*args, **kwargs) * float("nan")

    monkeypatch.setattr(program, "SparseMLM", PoisonedMLM)
    out = tmp_path / "run"
    assert run("--config", recipe, "--activation", "relu", "--output-dir", out, "train.max_bad_steps=3") == 2
    captured = capsys.readouterr()
    assert captured.out.count("update skipped") == 3
    assert "3 steps in a row with non-finite loss or gradients" in captured.err


# the first FFN input matrix of each architecture
FIRST_FFN_WEIGHT = {
    "bert": "bert.encoder.layer.0.intermediate.dense.weight",
    "modernbert": "model.layers.0.mlp.Wi.weight",
}


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_init_from_checkpoint_swaps_activation_and_uses_its_tokenizer(recipe, tmp_path, architecture):
    from bert_helu.data import prepare_corpus
    from bert_helu.models.encoders import special_token_ids
    from bert_helu.pretraining.recipe import PRETRAIN_DEFAULTS  # noqa: F401 - the recipe keys are importable

    corpus = prepare_corpus(yaml.safe_load(recipe.read_text())["data"])
    torch.manual_seed(0)
    section = {**TINY_BERT, "architecture": architecture}
    config = model_config(section, "gelu", len(corpus.tokenizer), special_token_ids(corpus.tokenizer))
    source = build_mlm_model(config)
    src_dir = save_model(source, tmp_path / "gelu-ckpt", tokenizer=corpus.tokenizer)
    out = tmp_path / "relufied"
    argv = ["--activation", "relu", "--output-dir", out, f"model.init_from={src_dir}", "train.max_steps=2"]
    assert run("--config", recipe, *argv) == 0
    model = load_model(out / "final")
    assert type(model).__name__ == MLM_CLASS[architecture] and activation_of(model) == "relu"
    assert getattr(model.config, ACTIVATION_KEY[architecture]) == "relu"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["config"]["data"]["tokenizer"] == str(src_dir)
    # the encoder started from the checkpoint: after 2 small steps it is still close to it
    name = FIRST_FFN_WEIGHT[architecture]
    assert (model.state_dict()[name] - source.state_dict()[name]).abs().max() < 0.05


# ------------------------------------------------------------------------------- the pieces


def test_batches_and_masks_do_not_depend_on_the_number_of_processes(recipe):
    from bert_helu.data import prepare_corpus

    corpus = prepare_corpus(yaml.safe_load(recipe.read_text())["data"])
    masker = MLMMasker(corpus.tokenizer, 0.15)

    def step_rows(world, step):
        plan = plan_batches(16, 4, world)
        parts = [
            GlobalBatches(corpus.train, masker, plan, rank, seed=1, pad_id=0).step_batches(step, step * 16)
            for rank in range(world)
        ]
        # global slice order: micro-batch a of rank r is slice a * world + r
        ordered = [parts[s % world][s // world] for s in range(16 // 4)]
        return torch.cat([m.input_ids for m in ordered]), torch.cat([m.labels for m in ordered])

    for step in (0, 7):
        one_ids, one_labels = step_rows(1, step)
        two_ids, two_labels = step_rows(2, step)
        assert torch.equal(one_ids, two_ids) and torch.equal(one_labels, two_labels)
    assert not torch.equal(step_rows(1, 0)[0], step_rows(1, 1)[0])


def test_every_sample_is_seen_once_per_epoch(recipe):
    from bert_helu.data import prepare_corpus

    corpus = prepare_corpus(yaml.safe_load(recipe.read_text())["data"])
    batches = GlobalBatches(corpus.train, MLMMasker(corpus.tokenizer, 0.15), plan_batches(16, 16, 1), 0, 3, 0)
    n = len(corpus.train)
    seen = np.concatenate([batches._indices(k * 16, 16) for k in range(n // 16)])
    assert len(set(seen.tolist())) == len(seen) == (n // 16) * 16


def test_train_step_skips_non_finite_gradients():
    from accelerate import Accelerator

    torch.manual_seed(0)
    model = build_mlm_model(bert_config(TINY_BERT, "relu", vocab_size=60))
    opt = make_optimizer(model, {"lr": 1e-2, "betas": [0.9, 0.98], "eps": 1e-12, "weight_decay": 0.0})
    acc = Accelerator(cpu=True)
    wrapped, opt = acc.prepare(SparseMLM(model), opt)
    ids = torch.randint(5, 60, (2, 16))
    labels = torch.where(torch.rand(2, 16) < 0.5, ids, torch.full_like(ids, -100))
    with torch.no_grad():
        model.bert.embeddings.word_embeddings.weight[7] = float("inf")  # -> NaN loss and gradients
        ids[0, 0] = 7
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = train_step(acc, wrapped, opt, [MicroBatch.of(ids, labels)], int((labels != -100).sum()), 0.5)
    assert bool(result.skipped)
    # skipped on the device by the fused kernel: Adam's step count and moments are untouched too
    assert all(int(s["step"]) == 0 and not s["exp_avg"].any() for s in opt.optimizer.state.values())
    after = model.state_dict()
    assert all(
        torch.equal(
            before[k],
            after[k],
        )
        for k in before
    )
    assert all(p.grad is None for p in model.parameters())  # and nothing leaks into the next step


def test_wall_clock_budget_ends_the_run_and_drives_the_schedule(recipe, tmp_path):
    out = tmp_path / "run"
    args = [
        "train.max_steps=0",
        "train.budget_hours=0.0005",  # 1.8 s
        "train.schedule_progress=time",
        "train.scheduler=one_cycle",
        "train.log_every_steps=1",
        "telemetry.enabled=false",
    ]
    assert run("--config", recipe, "--activation", "relu", "--output-dir", out, *args) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert 1.8 <= summary["train_time_s"] < 1.8 + 2.0  # stops at the first step boundary past the budget
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    lrs = [(r["train/elapsed_s"], r["train/lr"]) for r in rows if "train/lr" in r]
    assert len(lrs) == summary["steps"] >= 3
    values = [lr for _, lr in lrs]
    top = values.index(max(values))
    assert 0 < top < len(values) - 1  # one-cycle over the budget: rises, peaks mid-way, falls
    assert values[:top] == sorted(values[:top]) and values[top:] == sorted(values[top:], reverse=True)
    assert lrs[top][0] == pytest.approx(0.9, abs=0.5)  # the peak is near half of the 1.8 s budget


def test_plot_pretraining_summarises_finished_runs(recipe, tmp_path):
    import subprocess
    import sys

    from conftest import CHILD_ENV, REPO

    from bert_helu.analysis.pretraining_runs import summary_table

    runs = tmp_path / "runs"
    for activation in ("relu", "helu:alpha=0.05"):
        name = activation.replace(":alpha=", "-")
        assert run("--config", recipe, "--activation", activation, "--output-dir", runs / name) == 0
    table = summary_table(runs).splitlines()
    assert [row.split("|")[1].strip() for row in table[2:]] == ["helu-0.05", "relu"]
    for row in table[2:]:
        summary = json.loads((runs / row.split("|")[1].strip() / "summary.json").read_text())
        assert f"| {summary['steps']:,} | {summary['tokens_seen']:,} |" in row
        assert f"-> {summary['final_validation_loss']:.3f}" in row
    # the script end to end: the figure, its series and the table (one run per activation: no replicates)
    figure = tmp_path / "plots" / "pretraining.png"
    command = [sys.executable, "scripts/plot_pretraining.py", str(runs), "--output", str(figure)]
    done = subprocess.run(command, cwd=REPO, env=CHILD_ENV, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert figure.stat().st_size > 0 and set(json.loads(figure.with_suffix(".json").read_text())) == {
        "helu-0.05",
        "relu",
    }
    assert figure.with_suffix(".md").read_text() == "\n".join(table) + "\n"


def test_plot_pretraining_groups_seed_replicates_and_compares_with_baseline(recipe, tmp_path):
    from bert_helu.analysis.pretraining_runs import replicate_table
    from bert_helu.runtime.errors import UserError

    trained = tmp_path / "trained"
    assert run("--config", recipe, "--activation", "relu", "--output-dir", trained) == 0
    runs, losses = tmp_path / "runs", {"relu": [6.0, 6.2, 6.1], "gelu": [5.5, 5.9, 5.6]}
    for activation, values in losses.items():
        for seed, loss in zip((42, 43, 44), values, strict=True):
            run_dir = runs / f"{activation}-s{seed}"
            shutil.copytree(trained, run_dir)
            summary = json.loads((run_dir / "summary.json").read_text())
            summary["config"].update(seed=seed, activation=activation)
            summary.update(activation=activation, final_validation_loss=loss)
            (run_dir / "summary.json").write_text(json.dumps(summary))
    table = replicate_table(runs, "relu").splitlines()
    rows = {row.split("|")[2].strip(): row for row in table[2:] if row.startswith("|")}
    assert set(rows) == {"gelu", "relu"}  # three seeds each: one row per activation
    assert "| 3 | 5.667 ± 0.208 | 5.500-5.900 | -0.433 |" in rows["gelu"]
    p = float(rows["gelu"].split("|")[-3])
    assert 0.01 < p < 0.1  # Welch's t on (5.5, 5.9, 5.6) vs (6.0, 6.2, 6.1): p = 0.05
    assert rows["relu"].endswith("|  |  |  |")  # the baseline is not compared with itself
    with pytest.raises(UserError, match="--baseline swish: no run of that activation"):
        replicate_table(runs, "swish")
