"""bert_helu.models.flops: the model matmul FLOPs of a training step, by hand and by torch's own counter."""

import pytest
import torch
from conftest import TINY_BERT
from torch.utils.flop_counter import FlopCounterMode
from transformers import BertConfig, ModernBertConfig

from bert_helu.models.encoders import build_mlm_model, model_config
from bert_helu.models.flops import attention_contexts, flops_per_step, model_flops_utilization
from bert_helu.models.sparse_mlm import SparseMLM
from bert_helu.pretraining.recipe import ARCHITECTURES

SPECIAL = {"pad_token_id": 0, "cls_token_id": 2, "sep_token_id": 3}
BATCH, SEQ_LEN, VOCAB = 2, 16, 50

# TINY_BERT (h 32, FFN i 64, 2 layers), 2 x 16 tokens, every one through the head (dense), vocabulary 50.
# Per token and layer: 4 projections 4 * 32 * 32 = 4096, attention 2 * 16 * 32 = 1024, and the FFN:
# BERT 2 * 32 * 64 = 4096, ModernBERT's gated one 3 * 32 * 64 = 6144. Head per token: 32 * 32 + 32 * 50.
HAND_COUNT = {
    "bert": 6 * (32 * 2 * (4096 + 1024 + 4096) + 32 * (32 * 32 + 32 * 50)),
    "modernbert": 6 * (32 * 2 * (4096 + 1024 + 6144) + 32 * (32 * 32 + 32 * 50)),
}


def tiny_model(architecture):
    torch.manual_seed(0)
    model = build_mlm_model(model_config({**TINY_BERT, "architecture": architecture}, "relu", VOCAB, SPECIAL))
    # torch's counter sees the attention matmuls of the eager implementation only (not fused CPU kernels)
    model.set_attn_implementation("eager")
    return model


def counted_by_torch(run) -> int:
    with FlopCounterMode(display=False) as counter:
        run()
    return counter.get_total_flops()


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_dense_head_step_matches_the_hand_count_and_torchs_counter(architecture):
    model = tiny_model(architecture)
    ids = torch.randint(5, VOCAB, (BATCH, SEQ_LEN))
    counted = flops_per_step(model.config, BATCH, SEQ_LEN, head_tokens=BATCH * SEQ_LEN)
    assert counted == HAND_COUNT[architecture]
    assert counted_by_torch(lambda: model(input_ids=ids, labels=ids).loss.backward()) == counted


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_sparse_head_counts_only_the_masked_tokens(architecture):
    model = tiny_model(architecture)
    ids = torch.randint(5, VOCAB, (BATCH, SEQ_LEN))
    labels = torch.full_like(ids, -100)
    labels[:, :5] = ids[:, :5]  # 10 masked tokens go through the head
    counted = flops_per_step(model.config, BATCH, SEQ_LEN, head_tokens=10)
    assert counted == HAND_COUNT[architecture] - 6 * (32 - 10) * (32 * 32 + 32 * VOCAB)
    assert counted_by_torch(lambda: SparseMLM(model)(ids, labels).backward()) == counted


def test_modernbert_local_layers_attend_to_their_window_only():
    sizes = dict(vocab_size=100, hidden_size=8, num_attention_heads=1, intermediate_size=0)
    # by default every third layer is global; a local one sees half a window either side of its token
    local = ModernBertConfig(**sizes, num_hidden_layers=4, local_attention=128)
    assert attention_contexts(local, 512) == [512, 129, 129, 512]
    assert attention_contexts(local, 64) == [64] * 4  # a window longer than the sequence is all of it
    assert attention_contexts(BertConfig(**sizes, num_hidden_layers=2), 512) == [512, 512]
    full = ModernBertConfig(**sizes, num_hidden_layers=4, local_attention=128, global_attn_every_n_layers=1)
    windowed = flops_per_step(local, batch=1, seq_len=512, head_tokens=0)
    # two local layers: (512 - 129) keys fewer per query, 2 FLOPs x h 8 x 512 tokens x 3 (fwd + bwd) each
    assert flops_per_step(full, batch=1, seq_len=512, head_tokens=0) - windowed == 2 * 6 * 512 * 2 * 383 * 8


def test_mfu_is_the_achieved_rate_over_the_peak():
    assert model_flops_utilization(2.5e12, 1e13) == 0.25
