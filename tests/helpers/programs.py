"""The three programs as tests run them in process, and the small inputs the tests share."""

import json

import torch
from conftest import REPO, TINY_BERT
from safetensors.torch import load_file

from bert_helu.models.encoders import bert_config, build_mlm_model, save_model


def pretrain(*argv):
    """Run the program in process; its exit status (UserError -> 2)."""
    from pretrain.__main__ import main

    try:
        return main([str(a) for a in argv])
    except SystemExit as exit_:
        return exit_.code


def weights(run_dir):
    return load_file(str(run_dir / "final" / "model.safetensors"))


SAMPLE = REPO / "bert_helu" / "sample_data" / "glue_data"


FAST = [
    "train.epochs=1",
    "train.max_train_examples=48",
    "train.max_eval_examples=40",
    "train.max_length=64",
    "torch_threads=1",
]


def tiny_checkpoint(path, tokenizer, activation="helu:alpha=0.05", vocab_size=None):
    torch.manual_seed(0)
    model = build_mlm_model(bert_config(TINY_BERT, activation, vocab_size=vocab_size or len(tokenizer)))
    return save_model(model, path, tokenizer=tokenizer)


def results(out):
    return {str(p.relative_to(out).parent): json.loads(p.read_text()) for p in out.rglob("results.json")}


def finetune(*args):
    from finetune.__main__ import main

    try:
        main([*map(str, args)])
    except SystemExit as exit_:
        return exit_.code
    return 0
