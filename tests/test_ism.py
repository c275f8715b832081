"""Fast ISM equals naive ISM; toy models with exact answers; the caller's model is left unchanged."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from scanner.interpret import FastISM, ism
from scanner.models import ModelSpec, build_model


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny tensors: one torch thread is faster, and immune to a busy shared CPU."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _randomise(model: nn.Module, seed: int) -> nn.Module:
    """Random weights with a spread of logits, and non-trivial batch-norm statistics."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Conv1d | nn.Linear):
                fan_in = m.weight[0].numel()
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * 1.5 / fan_in**0.5)
                if m.bias is not None:
                    m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
            if isinstance(m, nn.BatchNorm1d):
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.2)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.2)
    return model.eval()


def _onehot(n: int, length: int, seed: int, n_columns: tuple[tuple[int, int], ...] = ()) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    codes = torch.randint(0, 4, (n, length), generator=g)
    x = torch.nn.functional.one_hot(codes, 4).permute(0, 2, 1).float()
    for i, p in n_columns:
        x[i, :, p] = 0.25
    return x


def _check_equal(model: nn.Module, x: torch.Tensor, **kw) -> None:
    fast = ism(model, x, fast=True, **kw)
    naive = ism(model, x, fast=False, **kw)
    span = float(naive.max() - naive.min())
    assert span > 0
    if next(model.parameters()).dtype == torch.float64:
        assert torch.allclose(fast, naive, rtol=0, atol=1e-10 * max(span, 1.0))
    else:
        assert float((fast - naive).abs().max()) < 1e-4 * span


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_small_model_full_window_with_n_and_edges(dtype):
    model = _randomise(build_model(ModelSpec(arch="small", seq_len=300)), 1).to(dtype)
    # N columns at both window edges and inside; several sequences; tiny chunks cross class boundaries
    x = _onehot(3, 300, 2, ((0, 0), (1, 299), (2, 80), (2, 81))).to(dtype)
    _check_equal(model, x)
    out = ism(model, x, batch_size=37)
    assert torch.allclose(out, ism(model, x, fast=False), atol=1e-10 if dtype == torch.float64 else 1e-5)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_deepsea_model_edges_and_subrange(dtype):
    model = _randomise(build_model(ModelSpec(arch="deepsea", seq_len=190)), 3).to(dtype)
    x = _onehot(2, 190, 4, ((0, 1), (1, 188), (1, 93))).to(dtype)
    # window edges change the logit by little more than float32 rounding: checked in float64 only
    ranges = ((0, 9), (181, 190), (88, 97)) if dtype == torch.float64 else ((88, 97),)
    for start, end in ranges:
        _check_equal(model, x, start=start, end=end)


@pytest.mark.parametrize("seed", range(4))
def test_random_stacks_float64(seed):
    """Random channel counts, widths and pool sizes (1 = no pool) of the scanner.models stack."""
    g = torch.Generator().manual_seed(seed)
    pick = lambda lo, hi: tuple(int(v) for v in torch.randint(lo, hi, (3,), generator=g))  # noqa: E731
    spec = ModelSpec(
        arch="small",
        seq_len=260,
        conv_channels=pick(3, 9),
        conv_widths=pick(2, 9),
        pool_sizes=pick(1, 5),
        dropouts=(0.1, 0.0, 0.2),
        dense_units=8,
    )
    model = _randomise(build_model(spec), seed).double()
    x = _onehot(2, 260, seed, ((0, 0), (1, 259), (1, 130))).double()
    _check_equal(model, x)


def test_other_layer_types():
    """Padding, dilation, overlapping pools, ELU/GELU, dropout, identity and a multi-output head."""
    torch.manual_seed(5)
    model = nn.Sequential(
        nn.Identity(),
        nn.Conv1d(4, 6, 5, padding=2),
        nn.BatchNorm1d(6),
        nn.ELU(),
        nn.MaxPool1d(3, stride=2),
        nn.Dropout(0.3),
        nn.Conv1d(6, 5, 3, dilation=2, padding="same"),
        nn.GELU(),
        nn.MaxPool1d(2),
        nn.Conv1d(5, 4, 3),
        nn.Tanh(),
        nn.Flatten(),
        nn.Dropout(0.1),
        nn.Linear(4 * 13, 7),
        nn.Sigmoid(),
        nn.Linear(7, 3),
    )
    model = _randomise(model, 6).double()
    x = _onehot(2, 64, 7, ((0, 0), (1, 63))).double()
    for target in (0, 2):
        _check_equal(model, x, target=target)


def test_toy_linear_model_exact():
    """Conv weights [4, -2, 0, 0], dense of ones: a substitution changes the logit by w[b] - w[ref]."""
    conv = nn.Conv1d(4, 1, 1, bias=False)
    dense = nn.Linear(10, 1)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([4.0, -2.0, 0.0, 0.0]).view(1, 4, 1))
        dense.weight.fill_(1.0)
        dense.bias.fill_(0.5)
    model = nn.Sequential(conv, nn.Flatten(), dense)
    x = _onehot(1, 10, 8)
    x[0, :, 3] = 0.25
    w = torch.tensor([4.0, -2.0, 0.0, 0.0])
    ref = (w[:, None] * x[0]).sum(0)  # per-position contribution
    expected = w[:, None] - ref[None, :]
    expected[x[0] == 1] = 0.0
    for fast in (True, False):
        assert torch.allclose(ism(model, x, fast=fast)[0], expected, atol=1e-6)


def test_output_sign_layout_and_reference_base_zero():
    model = _randomise(build_model(ModelSpec(arch="small", seq_len=200)), 9)
    x = _onehot(2, 200, 10)
    out = ism(model, x, start=30, end=50)
    assert out.shape == (2, 4, 20)
    assert torch.all(out[x[:, :, 30:50] == 1] == 0)
    # alt minus ref: the change at one mutant equals f(mutant) - f(x)
    with torch.no_grad():
        xm = x[:1].clone()
        xm[0, :, 35] = 0
        b = int((x[0, :, 35] == 0).nonzero()[0])
        xm[0, b, 35] = 1
        direct = model(xm)[0, 0] - model(x[:1])[0, 0]
    assert torch.isclose(out[0, b, 5], direct, atol=1e-5)


def test_model_left_unchanged():
    model = build_model(ModelSpec(arch="small", seq_len=200)).train()
    model[0].weight.requires_grad_(False)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    ism(model, _onehot(1, 200, 11), start=0, end=5)
    ism(model, _onehot(1, 200, 11), start=0, end=5, fast=False)
    assert all(m.training for m in model.modules())
    assert not model[0].weight.requires_grad and model[1].weight.requires_grad
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_errors():
    model = build_model(ModelSpec(arch="small", seq_len=200))
    x = _onehot(1, 200, 12)
    with pytest.raises(ValueError, match=r"within \[0, 200\]"):
        ism(model, x, start=10, end=201)
    with pytest.raises(ValueError, match=r"shape \(N, 4, L\)"):
        ism(model, x[:, :3])
    bad = nn.Sequential(nn.Conv1d(4, 4, 3), nn.AvgPool1d(2), nn.Flatten(), nn.Linear(4 * 99, 1))
    with pytest.raises(TypeError, match=r"layer 1 \(AvgPool1d\).*ism-naive"):
        ism(bad, x)
    strided = nn.Sequential(nn.Conv1d(4, 4, 3, stride=2), nn.Flatten(), nn.Linear(4 * 99, 1))
    with pytest.raises(TypeError, match="stride 1"):
        ism(strided, x)
    assert ism(bad, x, fast=False, start=0, end=2).shape == (1, 4, 2)  # the naive path takes any model
    with pytest.raises(ValueError, match="built for length 200"):
        with torch.inference_mode():
            FastISM(model.eval(), 200)(_onehot(1, 100, 1))
