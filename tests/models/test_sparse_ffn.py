import pytest
import torch
from conftest import TINY_BERT
from torch import nn

from bert_helu import UserError
from bert_helu.models.encoders import bert_config, build_classifier, build_mlm_model
from bert_helu.models.sparse_ffn import RowSkippingLinear, count_skipped_flops, densify_ffn, sparsify_ffn

RTOL = ATOL = 1e-5  # the tolerance the module docstring promises


def tiny(activation: str, build=build_mlm_model, **kw):
    torch.manual_seed(0)
    return build(bert_config(TINY_BERT, activation, vocab_size=50), **kw).eval()


def forward(model, ids, mask=None):
    with torch.inference_mode():
        return model(input_ids=ids, attention_mask=mask).logits


@pytest.mark.parametrize("mode", ["auto", "per_token", "union"])
@pytest.mark.parametrize("batch", [1, 3])
def test_sparse_path_equals_dense_path(mode, batch):
    model = tiny("helu:alpha=0.05")
    ids = torch.randint(0, 50, (batch, 11))
    mask = torch.ones_like(ids)
    mask[-1, 7:] = 0
    dense = forward(model, ids, mask)
    swapped = sparsify_ffn(model, mode)
    assert len(swapped) == TINY_BERT["num_hidden_layers"]
    assert all(isinstance(layer.output.dense, RowSkippingLinear) for layer in model.bert.encoder.layer)
    sparse = forward(model, ids, mask)
    torch.testing.assert_close(sparse, dense, rtol=RTOL, atol=ATOL)
    densify_ffn(model)
    assert all(type(layer.output.dense) is nn.Linear for layer in model.bert.encoder.layer)
    assert torch.equal(forward(model, ids, mask), dense)


def test_single_token_skips_exactly_its_zero_neurons():
    torch.manual_seed(0)
    dense = nn.Linear(16, 4)
    hidden = torch.relu(torch.randn(1, 1, 16))
    layer = RowSkippingLinear(dense, "per_token")
    layer.count_flops = True
    with torch.inference_mode():
        torch.testing.assert_close(layer(hidden), dense(hidden), rtol=RTOL, atol=ATOL)
    assert layer.used_macs == int((hidden != 0).sum()) * 4 and layer.dense_macs == 16 * 4


def test_flop_counts_per_token_and_union():
    model = tiny("relu")
    ids = torch.randint(0, 50, (4, 16))
    sparsify_ffn(model, "per_token")
    per_token = count_skipped_flops(model, lambda: model(input_ids=ids))
    sparsify_ffn(model, "union")
    union = count_skipped_flops(model, lambda: model(input_ids=ids))
    dense = 2 * 4 * 16 * TINY_BERT["intermediate_size"] * TINY_BERT["hidden_size"]
    assert per_token["output_projection_macs_dense"] == union["output_projection_macs_dense"] == dense
    # random-init ReLU: about half of the activations are zero, so about half is skipped per token
    assert 0.3 < per_token["output_projection_saved_fraction"] < 0.7
    # the union over 64 tokens keeps almost every neuron: little or nothing is saved
    assert union["output_projection_saved_fraction"] < per_token["output_projection_saved_fraction"]


def test_works_on_a_classifier():
    model = tiny("relu", build_classifier, num_labels=3)
    ids = torch.randint(0, 50, (1, 9))
    dense = forward(model, ids)
    sparsify_ffn(model)
    torch.testing.assert_close(forward(model, ids), dense, rtol=RTOL, atol=ATOL)


def test_activation_without_exact_zeros_is_refused():
    with pytest.raises(UserError, match="no exact zeros"):
        sparsify_ffn(tiny("gelu"))


def test_model_without_bert_ffn_is_refused():
    with pytest.raises(UserError, match="feed-forward"):
        sparsify_ffn(nn.Sequential(nn.Linear(2, 2), nn.ReLU()))
    with pytest.raises(UserError, match="mode"):
        sparsify_ffn(tiny("relu"), "diagonal")
