"""Saliency, gradient x input, Grad-CAM and its guided variant on hand-computable models; model state."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from scanner.interpret import (
    METHODS,
    Attributor,
    MethodOptions,
    attribute,
    gradcam,
    gradient_x_input,
    guided_gradcam,
    preserved_model,
    receptive_field,
    resolve_layer,
    saliency,
)
from scanner.interpret.gradcam import spread
from scanner.models import ModelSpec, build_model


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _onehot(n: int, length: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    codes = torch.randint(0, 4, (n, length), generator=g)
    return torch.nn.functional.one_hot(codes, 4).permute(0, 2, 1).float()


def _toy(length: int = 8, kernel: int = 1) -> nn.Sequential:
    """conv weights [4, -2, 0, 0] (first tap), ReLU, dense of ones: every answer is by hand."""
    conv = nn.Conv1d(4, 1, kernel, bias=False)
    dense = nn.Linear(length - kernel + 1, 1, bias=False)
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight[0, :, 0] = torch.tensor([4.0, -2.0, 0.0, 0.0])
        dense.weight.fill_(1.0)
    return nn.Sequential(conv, nn.ReLU(), nn.Flatten(), dense).eval()


def test_saliency_and_gradient_x_input_toy():
    model = _toy()
    x = torch.zeros(1, 4, 8)
    for p, b in enumerate([0, 1, 2, 3, 0, 0, 1, 3]):  # A C G T A A C T
        x[0, b, p] = 1
    grad = saliency(model, x)
    # ReLU passes where 4*A - 2*C > 0, i.e. at A positions only
    active = (x[0, 0] == 1).float()
    expected = torch.tensor([4.0, -2.0, 0.0, 0.0])[:, None] * active[None, :]
    assert torch.equal(grad[0], expected)
    assert torch.equal(gradient_x_input(model, x)[0], expected * x[0])
    res = attribute(model, x, "saliency")
    assert torch.equal(res.score[0], expected.abs().amax(0))


def test_gradcam_toy_exact():
    model = _toy()
    x = torch.zeros(1, 4, 8)
    for p, b in enumerate([0, 1, 2, 3, 0, 0, 1, 3]):
        x[0, b, p] = 1
    # feature map A = relu(4*[A] - 2*[C]); d logit / dA = 1; cam = relu(mean(1) * A) = A
    cam = gradcam(model, x, layer="conv1")
    assert torch.equal(cam[0], torch.tensor([4.0, 0, 0, 0, 4, 4, 0, 0]))
    # guided: kernel-1 conv, so spreading is the identity; times gradient x input (4 at A)
    assert torch.equal(guided_gradcam(model, x)[0], cam[0] * gradient_x_input(model, x)[0])


def test_spread_is_the_mean_over_covering_receptive_fields():
    cam = torch.tensor([[1.0, 2.0, 3.0]])
    # outputs see [j, j + 3) (kernel 3): base 0 <- {0}, 1 <- {0,1}, 2 <- {0,1,2}, 3 <- {1,2}, 4 <- {2}
    assert torch.allclose(spread(cam, 5, 0, 1, 3), torch.tensor([[1.0, 1.5, 2.0, 2.5, 3.0]]))
    # pooled layer: jump 2, size 4, starting 1 base in; bases off every field get 0
    out = spread(torch.tensor([[2.0, 4.0]]), 8, 1, 2, 4)
    assert torch.allclose(out, torch.tensor([[0.0, 2.0, 2.0, 3.0, 3.0, 4.0, 4.0, 0.0]]))


def test_receptive_field_and_layer_names():
    small = build_model(ModelSpec(arch="small", seq_len=300))
    assert resolve_layer(small, "first") == 2  # conv, BN, ReLU: the rectified map
    assert resolve_layer(small, None) == resolve_layer(small, "conv3")
    assert receptive_field(small, 2) == (0, 1, 11)
    i2 = resolve_layer(small, "conv2")
    assert receptive_field(small, i2) == (0, 4, 11 + 3 + 6 * 4)  # pool 4 adds 3, conv 7 adds 6 jumps of 4
    deepsea = build_model(ModelSpec(arch="deepsea", seq_len=200))
    assert receptive_field(deepsea, resolve_layer(deepsea, "last")) == (0, 16, 8 + 3 + 7 * 4 + 3 * 4 + 7 * 16)
    with pytest.raises(ValueError, match=r"conv1\.\.conv3"):
        resolve_layer(small, "conv4")
    with pytest.raises(ValueError, match="first"):
        resolve_layer(small, "middle")
    with pytest.raises(TypeError, match=r"nn\.Sequential"):
        gradcam(nn.ModuleList([nn.Conv1d(4, 1, 1)]), _onehot(1, 10, 0))


def test_gradcam_shapes_on_real_models():
    torch.manual_seed(0)
    model = build_model(ModelSpec(arch="small", seq_len=300)).eval()
    x = _onehot(2, 300, 1)
    for layer in ("first", "conv2", "last"):
        cam = gradcam(model, x, layer=layer)
        assert cam.shape == (2, 300) and bool((cam >= 0).all())
    assert guided_gradcam(model, x).shape == (2, 4, 300)


def test_attributor_scores_and_ranges():
    torch.manual_seed(1)
    model = build_model(ModelSpec(arch="small", seq_len=300)).eval()
    x = _onehot(2, 300, 2)
    x[0, :, 120] = 0.25
    at = Attributor(model, MethodOptions(reference="gc", batch_size=1))
    for method in METHODS:
        res = at(x, method, 100, 140)
        assert res.score.shape == (2, 40)
        assert (res.values is None) == (method == "gradcam")
        assert (res.delta is None) == (method != "deeplift")
    ism = at(x, "ism", 100, 140)
    # score = minus the mean change over the substitutions made (3, or 4 at the N)
    assert torch.allclose(ism.score[0, 20], -ism.values[0, :, 20].sum() / 4)
    assert torch.allclose(ism.score[1, 0], -ism.values[1, :, 0].sum() / 3)
    full = at(x, "grad-x-input")
    assert torch.allclose(at(x, "grad-x-input", 100, 140).values, full.values[:, :, 100:140])
    with pytest.raises(ValueError, match="unknown method"):
        at(x, "lime")


def test_preserved_model_restores_everything_on_error():
    model = build_model(ModelSpec(arch="small", seq_len=300)).train()
    model[0].weight.requires_grad_(False)
    model[0].weight.grad = None
    model[5].weight.grad = torch.ones_like(model[5].weight)
    handle = model[2].register_forward_hook(lambda *a: None)
    with pytest.raises(RuntimeError, match="boom"), preserved_model(model) as m:
        assert not any(x.training for x in m.modules())
        assert not any(p.requires_grad for p in m.parameters())
        m[3].register_forward_hook(lambda *a: None)
        m[1].register_full_backward_hook(lambda *a: None)
        m[2].input = torch.zeros(1)  # an attribute left behind, as captum does mid-pass
        m.double()
        raise RuntimeError("boom")
    assert all(x.training for x in model.modules())
    assert not model[0].weight.requires_grad and model[5].weight.requires_grad
    assert torch.equal(model[5].weight.grad, torch.ones_like(model[5].weight))
    assert list(model[2]._forward_hooks) == [handle.id]
    assert not model[3]._forward_hooks and not model[1]._backward_hooks
    assert not hasattr(model[2], "input")
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert all(b.dtype == torch.float32 for b in model.buffers() if b.is_floating_point())


@pytest.mark.parametrize("method", METHODS)
def test_every_method_leaves_the_model_unchanged(method):
    torch.manual_seed(2)
    model = build_model(ModelSpec(arch="small", seq_len=300)).train()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    attribute(model, _onehot(1, 300, 3), method, start=140, end=150, options=MethodOptions(n_shuffles=2))
    assert all(m.training for m in model.modules())
    assert all(p.requires_grad and p.grad is None for p in model.parameters())
    assert all(not m._forward_hooks and not m._backward_hooks and not m._forward_pre_hooks for m in model.modules())
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
