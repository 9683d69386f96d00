import contextlib
import json

import pytest
import torch
from conftest import TINY_BERT
from torch import nn

from bert_helu.models.encoders import bert_config, build_mlm_model, ffn_activation_sites
from bert_helu.pretraining.telemetry import FFNMonitor


def tiny_mlm(activation: str):
    torch.manual_seed(0)
    return build_mlm_model(bert_config(TINY_BERT, activation, vocab_size=50)).eval()


def reference_stats(model, ids, attention_mask=None):
    """Zero fraction and never-positive rate per layer, computed the slow, obvious way."""
    outputs = []
    handles = [
        getattr(owner, attr).register_forward_hook(lambda m, i, o: outputs.append(o.detach().clone()))
        for owner, attr in ffn_activation_sites(model)
    ]
    with torch.no_grad():
        model(input_ids=ids, attention_mask=attention_mask)
    for h in handles:
        h.remove()
    result = []
    for out in outputs:
        if attention_mask is not None:
            out = out[attention_mask.bool()]
        flat = out.reshape(-1, out.shape[-1])
        result.append(((flat == 0).float().mean().item(), 1 - (flat > 0).any(0).float().mean().item()))
    return result


@pytest.mark.parametrize("activation", ["relu", "helu:alpha=0.1", "gelu"])
def test_zero_and_dead_fractions_match_direct_computation(activation):
    model = tiny_mlm(activation)
    ids = torch.randint(0, 50, (3, 12))
    with FFNMonitor(model) as monitor:
        with torch.no_grad():
            model(input_ids=ids)
        summary = monitor.summary()
    expected = reference_stats(model, ids)
    assert [layer["counted"] for layer in summary["layers"]] == [3 * 12 * 64] * 2
    for layer, (zero, dead) in zip(summary["layers"], expected, strict=True):
        assert layer["zero_fraction"] == pytest.approx(zero)
        assert layer["dead_fraction"] == pytest.approx(dead)
    if activation == "gelu":
        assert summary["mean"]["zero_fraction"] == 0.0
    else:  # a random-init ReLU FFN zeroes about half its outputs
        assert 0.3 < summary["mean"]["zero_fraction"] < 0.7


@contextlib.contextmanager
def ffn_inputs(model, layer: int):
    """The pre-activations reaching layer ``layer``'s FFN activation, one tensor per forward call."""
    inputs = []
    module = getattr(*ffn_activation_sites(model)[layer])
    handle = module.register_forward_hook(lambda m, i, o: inputs.append(i[0].detach().clone()))
    try:
        yield inputs
    finally:
        handle.remove()


def test_dead_neuron_is_one_never_positive_over_the_window():
    model = tiny_mlm("relu")
    dense = model.bert.encoder.layer[0].intermediate.dense
    with torch.no_grad():  # neuron 5 can never fire, neuron 6 always does
        dense.weight[5].zero_()
        dense.bias[5] = -1.0
        dense.weight[6].zero_()
        dense.bias[6] = 1.0
    with FFNMonitor(model) as monitor:
        with torch.no_grad():
            model(input_ids=torch.randint(0, 50, (2, 8)))
        layer0 = monitor.summary()["layers"][0]
    assert layer0["dead_neurons"] >= 1
    assert layer0["dead_fraction"] == pytest.approx(layer0["dead_neurons"] / 64)
    # the hand-killed neuron is counted; check through the accumulator itself
    assert not monitor.layers[0].ever_positive[5] and monitor.layers[0].ever_positive[6]


def test_padding_is_left_out_when_attention_mask_is_given():
    model = tiny_mlm("relu")
    ids = torch.randint(0, 50, (2, 10))
    mask = torch.ones(2, 10, dtype=torch.long)
    mask[1, 4:] = 0
    with FFNMonitor(model) as monitor:
        with torch.no_grad():
            model(input_ids=ids, attention_mask=mask)
        summary = monitor.summary()
    assert summary["layers"][0]["counted"] == 14 * 64
    for layer, (zero, dead) in zip(summary["layers"], reference_stats(model, ids, mask), strict=True):
        assert layer["zero_fraction"] == pytest.approx(zero)
        assert layer["dead_fraction"] == pytest.approx(dead)


def test_accumulates_over_forwards_and_reset_starts_a_new_window():
    model = tiny_mlm("relu")
    monitor = FFNMonitor(model)
    with torch.no_grad():
        model(input_ids=torch.randint(0, 50, (2, 8)))
        model(input_ids=torch.randint(0, 50, (1, 8)))
    first = monitor.summary()["layers"][0]
    assert first["forward_calls"] == 2 and first["counted"] == 3 * 8 * 64
    monitor.reset()
    assert monitor.summary()["layers"][0]["zero_fraction"] is None
    with torch.no_grad():
        model(input_ids=torch.randint(0, 50, (1, 8)))
    assert monitor.summary()["layers"][0]["counted"] == 8 * 64
    monitor.remove()
    with torch.no_grad():
        model(input_ids=torch.randint(0, 50, (1, 8)))
    assert monitor.summary()["layers"][0]["counted"] == 8 * 64  # unhooked: nothing more recorded


def test_histogram_counts_pre_activations_and_is_json_able():
    model = tiny_mlm("helu:alpha=0.05")
    ids = torch.randint(0, 50, (2, 8))
    monitor = FFNMonitor(model, histogram_bins=40, histogram_range=(-0.5, 0.5), collect_histograms=True)
    with ffn_inputs(model, 1) as inputs, monitor as mon:
        with torch.no_grad():
            model(input_ids=ids)
        summary = json.loads(json.dumps(mon.summary()))
    hist = summary["layers"][1]["histogram"]
    pre = inputs[0].reshape(-1)
    assert len(hist["counts"]) == 40 and len(hist["edges"]) == 41
    assert hist["edges"][0] == -0.5 and hist["edges"][-1] == pytest.approx(0.5)
    assert sum(hist["counts"]) + hist["below"] + hist["above"] == pre.numel()
    assert hist["below"] == int((pre < -0.5).sum()) and hist["above"] == int((pre > 0.5).sum())
    assert hist["min"] == pytest.approx(pre.min().item())


def test_hooks_run_under_autograd_without_changing_gradients():
    model = tiny_mlm("helu:alpha=0.05").train()
    ids = torch.randint(0, 50, (2, 8))
    torch.manual_seed(1)
    model(input_ids=ids, labels=ids).loss.backward()
    plain = model.bert.encoder.layer[0].intermediate.dense.weight.grad.clone()
    model.zero_grad()
    with FFNMonitor(model, collect_histograms=True) as monitor:
        torch.manual_seed(1)
        model(input_ids=ids, labels=ids).loss.backward()
        assert monitor.summary()["layers"][0]["zero_fraction"] > 0
    assert torch.equal(model.bert.encoder.layer[0].intermediate.dense.weight.grad, plain)


def test_model_without_ffn_is_refused():
    with pytest.raises(ValueError, match="no feed-forward"):
        FFNMonitor(nn.Sequential(nn.Linear(2, 2), nn.ReLU()))


def test_band_fraction_counts_pre_activations_in_helu_band_excluding_padding():
    model = tiny_mlm("helu:alpha=0.3")
    ids = torch.randint(0, 50, (2, 10))
    mask = torch.ones(2, 10, dtype=torch.long)
    mask[0, 7:] = 0
    with ffn_inputs(model, 0) as inputs, FFNMonitor(model, band_alpha=0.3) as monitor:
        with torch.no_grad():
            model(input_ids=ids, attention_mask=mask)
        layer0 = monitor.summary()["layers"][0]
    pre = inputs[0][mask.bool()]
    assert layer0["negative_fraction"] == pytest.approx((pre < 0).float().mean().item())
    assert layer0["band_fraction"] == pytest.approx(((pre > -0.3) & (pre <= 0)).float().mean().item())
    assert 0 < layer0["band_fraction"] < layer0["negative_fraction"]
    assert "band_fraction" in monitor.summary()["mean"]
