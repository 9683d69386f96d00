import math

import pytest
import torch
from torch import nn

from bert_helu import UserError, build_activation, list_activations, register_activation
from bert_helu.activations import parse_spec
from bert_helu.activations.helu import _HeLUFunction, helu

ALPHA = 0.05
# below, at, inside (-alpha, 0], zero, positive
POINTS = [-1.0, -0.5, -ALPHA - 1e-3, -ALPHA, -ALPHA + 1e-3, -0.01, -0.0, 0.0, 1e-3, 0.7, 3.0]


def helu_grad(x: torch.Tensor, alpha: float) -> torch.Tensor:
    act = build_activation(f"helu:alpha={alpha}")
    x = x.clone().requires_grad_(True)
    act(x).sum().backward()
    return x.grad


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_helu_forward_is_relu_bitwise(dtype):
    x = torch.cat([torch.tensor(POINTS), torch.randn(10_000)]).to(dtype).requires_grad_(True)
    y = build_activation("helu:alpha=0.05")(x)
    assert y.dtype == dtype
    assert torch.equal(
        y.detach().view(torch.int16 if dtype != torch.float32 else torch.int32),
        torch.relu(x.detach()).view(torch.int16 if dtype != torch.float32 else torch.int32),
    )


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_helu_backward_matches_definition_2(dtype):
    x = torch.tensor(POINTS, dtype=dtype)
    grad = helu_grad(x, ALPHA)
    alpha = torch.tensor(ALPHA, dtype=dtype)  # compare in the tensor's own precision
    expected = (x > -alpha).to(dtype)
    assert torch.equal(grad, expected)
    by_point = dict(zip(POINTS, grad.float().tolist(), strict=True))
    assert by_point[-ALPHA] == 0.0  # x == -alpha: no gradient
    assert by_point[-0.01] == 1.0 and by_point[0.0] == 1.0 and by_point[-0.0] == 1.0  # the band passes
    assert by_point[-1.0] == 0.0 and by_point[3.0] == 1.0


def test_helu_function_at_alpha_zero_has_relu_gradient():
    x = torch.tensor(POINTS)
    x_relu = x.clone().requires_grad_(True)
    torch.relu(x_relu).sum().backward()
    x_helu = x.clone().requires_grad_(True)
    helu(x_helu, 0.0).sum().backward()
    assert torch.equal(x_helu.grad, x_relu.grad)
    assert torch.equal(_HeLUFunction.apply(x.clone().requires_grad_(True), 0.0).detach(), torch.relu(x))


@pytest.mark.parametrize("spec", ["helu:alpha=0", "helu:alpha=-0.5"])
def test_helu_activation_refuses_alpha_that_is_not_positive(spec):
    # alpha <= 0 passes no more gradient than ReLU (less, if negative): not the HeLU of the paper
    with pytest.raises(UserError, match="activation 'helu': alpha must be > 0, got "):
        parse_spec(spec)


def test_helu_passes_upstream_gradient_values():
    x = torch.tensor([-2.0, -0.03, 0.5], requires_grad=True)
    upstream = torch.tensor([5.0, 7.0, 11.0])
    build_activation("helu")(x).backward(upstream)
    assert x.grad.tolist() == [0.0, 7.0, 11.0]


def test_helu_saves_a_bool_mask_not_the_input():
    x = torch.randn(64, 128, requires_grad=True)
    h = nn.Linear(128, 128)(x[None])  # a reshaped view of a whole tensor: still a mask
    for inp in (x, h):
        saved = _HeLUFunction.apply(inp, ALPHA).grad_fn.saved_tensors
        assert len(saved) == 1 and saved[0].dtype == torch.bool and saved[0].shape == inp.shape


def test_helu_in_a_gated_block_keeps_its_half_and_has_the_helu_gradient():
    projected = torch.randn(4, 8, 40, requires_grad=True)
    value, gate = projected.chunk(2, dim=-1)
    y = _HeLUFunction.apply(value, ALPHA)
    (saved,) = y.grad_fn.saved_tensors
    assert saved.data_ptr() == value.data_ptr()  # the half itself: no new memory
    upstream = torch.randn_like(y)
    (y * gate).backward(upstream * 1.0)
    expected = torch.cat([upstream * gate * (value > -ALPHA), upstream * torch.relu(value)], dim=-1)
    assert torch.allclose(projected.grad, expected.detach())
    assert torch.equal(y, torch.relu(value))


def test_helu_under_bf16_autocast():
    lin = nn.Linear(16, 16)
    act = build_activation("helu:alpha=0.05")
    x = torch.randn(8, 16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        h = lin(x)
        y = act(h)
    assert y.dtype == torch.bfloat16
    assert torch.equal(y, torch.relu(h))
    y.float().sum().backward()
    assert lin.weight.grad is not None and torch.isfinite(lin.weight.grad).all()


def test_helu_under_torch_compile():
    act = build_activation("helu:alpha=0.5")
    compiled = torch.compile(act, backend="eager")  # the graph capture is what matters, not codegen
    x = torch.tensor([-1.0, -0.25, 0.0, 2.0], requires_grad=True)
    compiled(x).sum().backward()
    assert x.grad.tolist() == [0.0, 1.0, 1.0, 1.0]


@pytest.mark.parametrize(
    "spec, reference",
    [
        ("relu", torch.relu),
        ("gelu", nn.functional.gelu),
        ("gelu_tanh", lambda x: nn.functional.gelu(x, approximate="tanh")),
        ("elu", nn.functional.elu),
        ("silu", nn.functional.silu),
        ("leaky_relu:negative_slope=0.2", lambda x: nn.functional.leaky_relu(x, 0.2)),
        ("relu2", lambda x: torch.relu(x) ** 2),
        ("shifted_relu:bias=0.5", lambda x: torch.relu(x - 0.5)),
    ],
)
def test_builtin_activations(spec, reference):
    x = torch.linspace(-3, 3, 101)
    assert torch.allclose(build_activation(spec)(x), reference(x))


def test_user_registered_activation():
    @register_activation("test_scaled_tanh")
    class ScaledTanh(nn.Module):
        def __init__(self, scale: float = 1.0):
            super().__init__()
            self.scale = scale

        def forward(self, x):
            return self.scale * torch.tanh(x)

    assert "test_scaled_tanh" in list_activations()
    act = build_activation("test_scaled_tanh:scale=2")
    assert act(torch.tensor([1.0])).item() == pytest.approx(2 * math.tanh(1.0))


@pytest.mark.parametrize(
    "spec, message",
    [
        ("swishy", "unknown activation 'swishy'; registered: "),
        ("helu:beta=1", "unknown parameter 'beta'"),
        ("helu:alpha=abc", "parameter 'alpha' must be a number"),
        ("helu:alpha=nan", "parameter 'alpha' must be finite"),
        ("helu:alpha=inf", "parameter 'alpha' must be finite"),
        ("helu:alpha", "must be written key=value"),
    ],
)
def test_bad_specs_are_one_line_user_errors(spec, message):
    with pytest.raises(UserError) as err:
        build_activation(spec)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_spec_round_trip():
    assert str(parse_spec("helu:alpha=0.05")) == "helu:alpha=0.05"
    assert str(parse_spec(" relu ")) == "relu"
