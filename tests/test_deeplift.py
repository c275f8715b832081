"""DeepLIFT: completeness, agreement with captum and tangermeme, references, the dinucleotide shuffle."""

from __future__ import annotations

import warnings
from collections import Counter

import numpy as np
import pytest
import torch
import torch.nn as nn

from scanner.interpret import deeplift, dinucleotide_shuffle, make_references
from scanner.interpret.deeplift import _separated, onehot_to_codes
from scanner.models import ModelSpec, build_model


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _model(seed: int = 0, length: int = 200) -> nn.Sequential:
    torch.manual_seed(seed)
    model = build_model(ModelSpec(arch="small", seq_len=length)).double()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm1d):
                m.running_mean.uniform_(-0.3, 0.3)
                m.running_var.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.3, 0.3)
    return model.eval()


def _onehot(n: int, length: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    codes = torch.randint(0, 4, (n, length), generator=g)
    return torch.nn.functional.one_hot(codes, 4).permute(0, 2, 1).double()


def _dinucleotides(codes: np.ndarray) -> Counter:
    return Counter(zip(codes[:-1].tolist(), codes[1:].tolist(), strict=True))


def test_dinucleotide_shuffle_preserves_counts_and_is_seeded():
    rng = np.random.default_rng(0)
    for length in (3, 10, 57, 400):
        codes = rng.integers(0, 5, length).astype(np.uint8)  # N (4) included as a fifth symbol
        out = dinucleotide_shuffle(codes, 5, np.random.default_rng(1))
        assert out.shape == (5, length)
        for row in out:
            assert _dinucleotides(row) == _dinucleotides(codes)
            assert row[0] == codes[0] and row[-1] == codes[-1]
    codes = rng.integers(0, 4, 300).astype(np.uint8)
    a = dinucleotide_shuffle(codes, 3, np.random.default_rng(7))
    b = dinucleotide_shuffle(codes, 3, np.random.default_rng(7))
    assert np.array_equal(a, b)
    assert (a != codes).any(axis=1).all()  # actually shuffled
    assert np.array_equal(dinucleotide_shuffle(codes[:2], 2, rng), np.stack([codes[:2]] * 2))


def test_references():
    x = _onehot(2, 50, 1)
    x[1, :, :5] = 0.25  # N columns are ignored by the GC fraction
    zero = make_references(x, "zero")
    assert zero.shape == (2, 1, 4, 50) and float(zero.abs().sum()) == 0
    gc = make_references(x, "gc")
    for i in range(2):
        bases = x[i][:, (x[i] == 1).any(0)]
        g = float(bases[1:3].sum() / bases.shape[1])
        assert torch.allclose(gc[i, 0, :, 7], torch.tensor([(1 - g) / 2, g / 2, g / 2, (1 - g) / 2], dtype=x.dtype))
    shuf = make_references(x, "shuffle", n_shuffles=4, seed=3)
    assert shuf.shape == (2, 4, 4, 50)
    for i in range(2):
        codes = onehot_to_codes(x[i : i + 1])[0]
        for k in range(4):
            assert _dinucleotides(onehot_to_codes(shuf[i, k : k + 1])[0]) == _dinucleotides(codes)
    assert torch.equal(shuf, make_references(x, "shuffle", n_shuffles=4, seed=3))


@pytest.mark.parametrize("reference", ["zero", "gc", "shuffle"])
def test_completeness(reference):
    """Attributions sum to f(x) - mean_k f(ref_k), in float64 to rounding, through ReLU and max-pool."""
    model = _model(1)
    x = _onehot(3, 200, 2)
    res = deeplift(model, x, reference=reference, n_shuffles=3, seed=5, batch_size=4)
    refs = make_references(x, reference, n_shuffles=3, seed=5)
    with torch.no_grad():
        fx = model(x)[:, 0]
        fr = torch.stack([model(refs[:, k])[:, 0] for k in range(refs.shape[1])], 1).mean(1)
    gap = res.attributions.sum(dim=(1, 2)) - (fx - fr)
    assert float(gap.abs().max()) < 1e-10
    assert torch.allclose(res.delta, gap, atol=1e-12)
    assert float((fx - fr).abs().min()) > 1e-6  # a non-trivial check


def test_agrees_with_captum_where_captum_is_exact():
    """With one reference, captum's own DeepLift on the same layers gives the same attributions."""
    from captum.attr import DeepLift

    model = _model(2)
    x = _onehot(2, 200, 3)
    for reference in ("zero", "gc"):
        ours = deeplift(model, x, reference=reference).attributions
        refs = make_references(x, reference)[:, 0]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            theirs = DeepLift(_separated(model)[0]).attribute(x, baselines=refs, target=0)
        assert torch.allclose(ours, theirs.detach(), atol=1e-12)
    # a network without consecutive non-linear modules: captum on the caller's model, shuffled refs
    torch.manual_seed(4)
    plain = nn.Sequential(nn.Conv1d(4, 6, 5), nn.ReLU(), nn.Conv1d(6, 3, 3), nn.Flatten(), nn.Linear(3 * 194, 1))
    plain = plain.double().eval()
    ours = deeplift(plain, x, reference="shuffle", n_shuffles=1, seed=2).attributions
    refs = make_references(x, "shuffle", n_shuffles=1, seed=2)[:, 0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = DeepLift(plain).attribute(x, baselines=refs, target=0)
    assert torch.allclose(ours, theirs.detach(), atol=1e-12)


def test_agrees_with_tangermeme_per_position():
    """tangermeme puts each position's contribution on its observed base; the position sums agree."""
    dls = pytest.importorskip("tangermeme.deep_lift_shap")
    model = _model(3)
    x = _onehot(2, 200, 4)
    refs = make_references(x, "shuffle", n_shuffles=3, seed=1)
    ours = deeplift(model, x, reference="shuffle", n_shuffles=3, seed=1).attributions
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = dls.deep_lift_shap(model, x, references=refs, target=0, dtype=torch.float64, verbose=False)
    assert torch.allclose(ours.sum(1), theirs.sum(1), atol=1e-12)


def test_toy_linear_model_exact():
    """For a linear model DeepLIFT is (x - ref) * w: conv weights [4, -2, 0, 0], dense of ones."""
    conv = nn.Conv1d(4, 1, 1, bias=False)
    dense = nn.Linear(6, 1)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([4.0, -2.0, 0.0, 0.0]).view(1, 4, 1))
        dense.weight.fill_(1.0)
    model = nn.Sequential(conv, nn.Flatten(), dense).double()
    x = _onehot(1, 6, 5)
    res = deeplift(model, x, reference="zero")
    w = torch.tensor([4.0, -2.0, 0.0, 0.0], dtype=torch.float64)[:, None]
    assert torch.allclose(res.attributions[0], x[0] * w)


def test_model_unchanged_after_success_and_error():
    model = _model(4).float().train()
    model[0].weight.requires_grad_(False)
    hooks_before = [len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks) for m in model.modules()]
    attrs_before = [set(vars(m)) for m in model.modules()]
    x = _onehot(1, 200, 6).float()
    deeplift(model, x, reference="gc")
    with pytest.raises(Exception):  # noqa: B017 - any error raised inside captum, mid-attribution
        deeplift(model, x, reference="gc", target=3)
    assert all(m.training for m in model.modules())
    assert not model[0].weight.requires_grad and model[1].weight.requires_grad
    assert all(p.grad is None for p in model.parameters())
    assert hooks_before == [
        len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks) for m in model.modules()
    ]
    assert attrs_before == [set(vars(m)) for m in model.modules()]


def test_errors():
    model = _model(5)
    x = _onehot(1, 200, 7)
    with pytest.raises(ValueError, match="reference must be one of"):
        deeplift(model, x, reference="random")
    with pytest.raises(ValueError, match="n_shuffles"):
        deeplift(model, x, n_shuffles=0)


@pytest.mark.parametrize("reference", ["shuffle", "gc", "zero"])
def test_hypothetical_contributions_complete_the_attributions(reference):
    """hypothetical=True leaves attributions and delta as they were; at the observed bases the
    hypothetical contributions are the attributions' per-position sums (float64)."""
    model = _model(2).double()
    x = _onehot(4, 200, seed=3).double()
    plain = deeplift(model, x, reference=reference, n_shuffles=3, seed=4)
    res = deeplift(model, x, reference=reference, n_shuffles=3, seed=4, hypothetical=True)
    assert plain.hypothetical is None and res.hypothetical.shape == x.shape
    torch.testing.assert_close(res.attributions, plain.attributions, rtol=0, atol=1e-12)
    torch.testing.assert_close(res.delta, plain.delta, rtol=0, atol=1e-12)
    torch.testing.assert_close((x * res.hypothetical).sum(1), res.attributions.sum(1), rtol=0, atol=1e-12)
