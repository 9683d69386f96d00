"""Model cards of pretrained and fine-tuned checkpoints, and --push-to-hub (offline: refused up front)."""

import json
import re
import shutil

import huggingface_hub
import pytest
import torch
from conftest import write_recipe
from helpers.programs import FAST, SAMPLE, finetune, pretrain
from huggingface_hub import ModelCard

from bert_helu.models.encoders import load_model

TEXT = "The quick brown fox jumps over the lazy dog."


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory, corpus_cache):
    """A tiny HeLU pretraining run (BERT 2 x 32), finished: runs/helu/{final,summary.json}."""
    root = tmp_path_factory.mktemp("cards")
    recipe = write_recipe(root / "recipe.yaml", corpus_cache, train={"eval_every_steps": 2})
    out = root / "runs" / "helu"
    assert pretrain("--config", recipe, "--activation", "helu:alpha=0.05", "--output-dir", out,
                    "train.max_steps=4") == 0  # fmt: skip
    return root, recipe, out


def loading_code(card: ModelCard) -> str:
    """The card's Python block: what a reader copies."""
    blocks = re.findall(r"```python\n(.*?)```", card.text, flags=re.S)
    assert len(blocks) == 1
    return blocks[0]


def run_card_code(card: ModelCard):
    namespace = {}
    exec(loading_code(card), namespace)  # the card's own lines, as a user would run them
    return namespace["tokenizer"], namespace["model"]


def test_pretrained_card_describes_the_run_and_its_lines_load_it_with_stock_transformers(pretrained):
    _, _, out = pretrained
    summary = json.loads((out / "summary.json").read_text())
    card = ModelCard.load(out / "final" / "README.md")
    meta = card.data
    assert meta.library_name == "transformers" and meta.license == "mit"
    assert meta.pipeline_tag == "fill-mask"
    assert {"bert-helu", "helu", "fill-mask", "bert"} <= set(meta.tags)
    text = card.text
    assert "training activation: `helu:alpha=0.05`" in text
    assert "sees `relu` in `config.json` and computes identical outputs" in text
    assert f"| tokens seen | {summary['tokens_seen']:,} " in text and summary["tokens_seen"] == 4 * 16 * 32
    assert f"| validation MLM loss | {summary['final_validation_loss']:.4f} |" in text
    assert "| optimizer steps | 4 |" in text and "| global batch | 16 sequences of 32 tokens |" in text
    assert "2 layers x 32 hidden, 2 heads, FFN 64" in text

    code = loading_code(card)
    assert "bert_helu" not in code and "AutoModelForMaskedLM.from_pretrained" in code
    tokenizer, stock = run_card_code(card)
    assert type(stock).__module__.startswith("transformers.") and stock.config.hidden_act == "relu"
    ours = load_model(out / "final").eval()
    batch = tokenizer(TEXT, return_tensors="pt")
    with torch.no_grad():
        assert torch.equal(stock.eval()(**batch).logits, ours(**batch).logits)  # HeLU's forward is ReLU


def test_finetuned_card_reports_its_dev_metrics_and_loads_with_stock_transformers(pretrained, tmp_path):
    _, _, out = pretrained
    results = tmp_path / "results"
    code = finetune("--checkpoints", out / "final", "--tasks", "rte", "--glue-dir", SAMPLE,
                    "--output-dir", results, "--save-models", "--int8", *FAST)  # fmt: skip
    assert code == 0
    run = results / "helu" / "rte" / "seed42"
    result = json.loads((run / "results.json").read_text())
    card = ModelCard.load(run / "model" / "README.md")
    meta = card.data
    assert meta.pipeline_tag == "text-classification" and meta.datasets == ["nyu-mll/glue"]
    assert {"bert-helu", "helu", "text-classification", "glue"} <= set(meta.tags)
    assert meta.model_name == "helu-rte-seed42"
    [evaluated] = meta.eval_results
    assert (evaluated.dataset_config, evaluated.dataset_split, evaluated.metric_type) == (
        "rte", "validation", "accuracy",
    )  # fmt: skip
    assert evaluated.metric_value == result["metrics"]["accuracy"]
    accuracy, int8 = 100 * result["metrics"]["accuracy"], 100 * result["int8"]["metrics"]["accuracy"]
    assert f"| RTE | accuracy | {accuracy:.2f} | {int8:.2f} |" in card.text
    summary = json.loads((out / "summary.json").read_text())
    assert f"{summary['tokens_seen']:,} tokens of pretraining" in card.text
    assert "labels: 0 = entailment, 1 = not_entailment" in card.text
    assert "| training examples | 48 |" in card.text and "| epochs | 1 |" in card.text

    tokenizer, stock = run_card_code(card)
    assert type(stock).__name__ == "BertForSequenceClassification"
    ours = load_model(run / "model", task="classification").eval()
    batch = tokenizer(TEXT, "A fox jumps.", return_tensors="pt")
    with torch.no_grad():
        assert torch.equal(stock.eval()(**batch).logits, ours(**batch).logits)


# ------------------------------------------------------------------------------ --push-to-hub


@pytest.fixture
def offline(monkeypatch):
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err.strip()


def test_pretrain_push_offline_is_refused_before_training(pretrained, tmp_path, offline, capsys):
    _, recipe, _ = pretrained
    out = tmp_path / "run"
    code = pretrain("--config", recipe, "--output-dir", out, "--push-to-hub", "someone/tiny-helu")
    assert code == 2
    assert one_line_error(capsys) == (
        "error: --push-to-hub someone/tiny-helu: the Hub is switched off here (HF_HUB_OFFLINE=1); "
        "unset it or leave out --push-to-hub"
    )
    assert not out.exists()  # nothing trained, not even the run directory made


def test_finetune_push_offline_is_refused_before_training(pretrained, tmp_path, offline, capsys):
    _, _, out = pretrained
    results = tmp_path / "results"
    args = ["--checkpoints", out / "final", "--tasks", "rte", "--glue-dir", SAMPLE, "--output-dir", results]
    assert finetune(*args, "--push-to-hub", "someone/tiny-helu-rte", *FAST) == 2
    assert one_line_error(capsys) == (
        "error: --push-to-hub someone/tiny-helu-rte: the Hub is switched off here (HF_HUB_OFFLINE=1); "
        "unset it or leave out --push-to-hub"
    )
    assert not results.exists()
    # several models are refused too, before anything else: the flag uploads one
    assert finetune(*args, "--seeds", 1, 2, "--push-to-hub", "someone/x", *FAST) == 2
    assert "give one checkpoint, one task and one seed (got 1 x 1 x 2)" in one_line_error(capsys)


def test_push_without_a_token_is_refused_in_one_line(pretrained, tmp_path, monkeypatch, capsys):
    _, recipe, _ = pretrained
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_TOKEN_PATH", str(tmp_path / "no-token"))
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)
    out = tmp_path / "run"
    assert pretrain("--config", recipe, "--output-dir", out, "--push-to-hub", "someone/x") == 2
    assert "no Hugging Face token (run `hf auth login`" in one_line_error(capsys)
    assert not out.exists()


def test_push_uploads_the_final_checkpoint_with_a_card_that_loads_from_the_repo(
    pretrained, tmp_path, monkeypatch, capsys
):
    """The Hub's side is replaced (no network here); what the program sends it is real."""
    _, recipe, out = pretrained
    run = tmp_path / "helu"
    shutil.copytree(out, run)  # a finished run: running it again does not train, it only pushes
    calls = []

    def whoami(self, token=None, **kw):
        calls.append(("whoami", token))
        return {"name": "someone", "orgs": [{"name": "lab"}], "auth": {"accessToken": {"role": "write"}}}

    def create_repo(self, repo_id, **kw):
        calls.append(("create_repo", repo_id, kw.get("exist_ok")))

    def upload_folder(self, *, repo_id, folder_path, commit_message, **kw):
        files = sorted(p.name for p in folder_path.iterdir())
        calls.append(("upload_folder", repo_id, folder_path, files, (folder_path / "README.md").read_text()))

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_TOKEN", "hf_test_token")
    for name, fake in [("whoami", whoami), ("create_repo", create_repo), ("upload_folder", upload_folder)]:
        monkeypatch.setattr(huggingface_hub.HfApi, name, fake)

    assert pretrain("--config", recipe, "--output-dir", tmp_path / "x", "--push-to-hub", "other/x") == 2
    assert "you are 'someone', who cannot write to 'other' (your namespaces: lab, someone)" in (
        capsys.readouterr().err
    )
    same = ["--activation", "helu:alpha=0.05", "train.max_steps=4"]
    assert pretrain("--config", recipe, "--output-dir", run, *same, "--push-to-hub", "lab/tiny-helu") == 0
    assert [c[0] for c in calls] == ["whoami", "whoami", "create_repo", "upload_folder"]
    assert calls[1] == ("whoami", "hf_test_token") and calls[2] == ("create_repo", "lab/tiny-helu", True)
    _, repo, folder, files, card = calls[3]
    assert (repo, folder) == ("lab/tiny-helu", run / "final")
    assert {"README.md", "config.json", "model.safetensors", "tokenizer.json"} <= set(files)
    assert 'AutoModelForMaskedLM.from_pretrained("lab/tiny-helu")' in card and str(run) not in card
    assert "pushed" in capsys.readouterr().err
