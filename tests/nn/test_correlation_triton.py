"""The Triton correlation kernels against the torch loops: run on the CPU by Triton's
interpreter, forward and both gradients; the wiring into the operator; and, where there is
a GPU, the compiled kernels against float64.

Triton decides whether ``triton.language`` is interpreted when it is first imported, so
``TRITON_INTERPRET=1`` cannot be switched on inside a test session that may already hold
compiled Triton (or must keep it for the CUDA tests): the ``test_interpreter_*`` tests run
in a fresh pytest process started with it set
(:func:`test_interpreter_checks_in_a_fresh_process`) and are skipped in this one.
"""

from __future__ import annotations

import os
import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch

import dpdeblur.nn.correlation as corr_module
from dpdeblur.nn import correlation_triton
from dpdeblur.nn.correlation import correlation

pytest.importorskip("triton", reason="Triton is optional; its kernels need it")

IN_INTERPRETER = os.environ.get("TRITON_INTERPRET") == "1"
interpreter_only = pytest.mark.skipif(
    not IN_INTERPRETER,
    reason="runs in the fresh process of test_interpreter_checks_in_a_fresh_process",
)
# (shape, d): a channel count across two channel blocks and a row across two pixel runs,
# a single channel, a window larger than the image, and a batch.
SHAPES = [((1, 3, 5, 7), 1), ((2, 5, 6, 9), 2), ((1, 33, 3, 70), 1), ((1, 1, 3, 3), 3)]


def test_interpreter_checks_in_a_fresh_process():
    if IN_INTERPRETER:
        pytest.skip("this is the fresh process")
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k", "interpreter"]
    result = subprocess.run(
        [*command, __file__], capture_output=True, text=True, env=env, timeout=600
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert " passed" in result.stdout and "failed" not in result.stdout


def inputs(shape, seed, dtype=torch.float32):
    gen = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(*shape, generator=gen).to(dtype) for _ in range(3))


@interpreter_only
@pytest.mark.parametrize(("shape", "d"), SHAPES)
def test_interpreter_forward_and_gradients_match_the_torch_op(shape, d):
    x1, x2, _ = inputs(shape, seed=d)
    a, b = x1.clone().requires_grad_(), x2.clone().requires_grad_()
    expected = correlation(a, b, d)
    grad = torch.randn(expected.shape, generator=torch.Generator().manual_seed(9))
    expected.backward(grad)
    out = correlation_triton.correlation_forward(x1, x2, d)
    assert out.shape == expected.shape and out.dtype == torch.float32
    torch.testing.assert_close(out, expected.detach(), atol=1e-6, rtol=1e-5)
    grad_x1, grad_x2 = correlation_triton.correlation_backward(grad, x1, x2, d)
    torch.testing.assert_close(grad_x1, a.grad, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(grad_x2, b.grad, atol=1e-6, rtol=1e-5)


@interpreter_only
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_interpreter_half_inputs_sum_in_float32_as_the_loops_do(dtype):
    x1, x2, _ = inputs((1, 40, 3, 5), seed=4, dtype=dtype)
    expected = corr_module._correlation_forward(x1, x2, 1)
    out = correlation_triton.correlation_forward(x1, x2, 1)
    assert out.dtype == dtype
    # Both sum in float32 and round once; they may differ by that one rounding.
    ulp = torch.finfo(dtype).eps * expected.float().abs().max()
    assert (out.float() - expected.float()).abs().max() <= ulp
    grad = torch.randn(expected.shape, generator=torch.Generator().manual_seed(5)).to(dtype)
    for mine, theirs in zip(
        correlation_triton.correlation_backward(grad, x1, x2, 1),
        corr_module._correlation_backward(grad, x1, x2, 1),
        strict=True,
    ):
        assert mine.dtype == dtype
        scale = torch.finfo(dtype).eps * theirs.float().abs().max()
        assert (mine.float() - theirs.float()).abs().max() <= scale


@interpreter_only
def test_interpreter_non_contiguous_inputs_and_gradients():
    x1, x2, _ = inputs((2, 4, 6, 5), seed=7)
    x1_cl = x1.contiguous(memory_format=torch.channels_last)
    grad = torch.ones(2, 9, 6, 5).expand(2, 9, 6, 5)[:, :, :, :]  # a broadcast gradient
    torch.testing.assert_close(
        correlation_triton.correlation_forward(x1_cl, x2, 1), correlation(x1, x2, 1)
    )
    expected = corr_module._correlation_backward(torch.ones(2, 9, 6, 5), x1, x2, 1)
    for mine, theirs in zip(
        correlation_triton.correlation_backward(grad, x1_cl, x2, 1), expected, strict=True
    ):
        torch.testing.assert_close(mine, theirs, atol=1e-6, rtol=1e-5)


@interpreter_only
def test_interpreter_operator_dispatches_to_the_kernels_where_they_apply(monkeypatch):
    """Pretend CPU tensors are supported: the op's CUDA kernel and its backward then run
    the Triton code (interpreted), and training-style backward gives the same gradients."""
    x1, x2, _ = inputs((1, 3, 4, 6), seed=3)
    expected = correlation(x1, x2, 2)
    called = []
    forward, backward = (
        correlation_triton.correlation_forward,
        correlation_triton.correlation_backward,
    )
    monkeypatch.setattr(correlation_triton, "supports", lambda x: True)
    monkeypatch.setattr(
        correlation_triton,
        "correlation_backward",
        lambda *args: called.append("backward") or backward(*args),
    )
    monkeypatch.setattr(
        correlation_triton,
        "correlation_forward",
        lambda *args: called.append("forward") or forward(*args),
    )
    torch.testing.assert_close(corr_module._correlation_cuda(x1, x2, 2), expected)
    a, b = x1.clone().requires_grad_(), x2.clone().requires_grad_()
    correlation(a, b, 2).square().sum().backward()
    assert called == ["forward", "backward"]
    a_ref, b_ref = x1.clone().requires_grad_(), x2.clone().requires_grad_()
    monkeypatch.setattr(correlation_triton, "supports", lambda x: False)
    correlation(a_ref, b_ref, 2).square().sum().backward()
    torch.testing.assert_close(a.grad, a_ref.grad, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(b.grad, b_ref.grad, atol=1e-6, rtol=1e-5)


def test_double_backward_keeps_the_differentiable_loops(monkeypatch):
    monkeypatch.setattr(correlation_triton, "supports", lambda x: True)
    monkeypatch.setattr(
        correlation_triton, "correlation_backward", lambda *a: pytest.fail("kernel used")
    )
    gen = torch.Generator().manual_seed(2)
    x1 = torch.randn(1, 2, 4, 4, dtype=torch.float64, generator=gen, requires_grad=True)
    x2 = torch.randn(1, 2, 4, 4, dtype=torch.float64, generator=gen, requires_grad=True)
    (grad_x1,) = torch.autograd.grad(correlation(x1, x2, 1).sum(), x1, create_graph=True)
    grad_x1.sum().backward()
    assert x2.grad is not None


def test_without_triton_or_off_cuda_the_loops_run(monkeypatch):
    x = torch.zeros(1, 1, 2, 2)
    assert not correlation_triton.supports(x)  # a CPU tensor
    on_cuda = SimpleNamespace(is_cuda=True, dtype=torch.float32)  # what supports() reads
    assert correlation_triton.supports(on_cuda) == correlation_triton.triton_available()
    assert not correlation_triton.supports(SimpleNamespace(is_cuda=True, dtype=torch.float64))
    monkeypatch.setattr(correlation_triton, "triton_available", lambda: False)
    assert not correlation_triton.supports(on_cuda)
    with pytest.raises(TypeError, match="float64"):
        correlation_triton.correlation_forward(x.double(), x.double(), 1)


@pytest.mark.skipif(
    not torch.cuda.is_available() or IN_INTERPRETER, reason="needs a GPU (compiled Triton)"
)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_cuda_kernels_match_float64(dtype):
    gen = torch.Generator().manual_seed(0)
    x1 = torch.randn(2, 48, 37, 70, generator=gen).to(dtype)
    x2 = torch.randn(2, 48, 37, 70, generator=gen).to(dtype)
    a, b = x1.cuda().requires_grad_(), x2.cuda().requires_grad_()
    out = correlation(a, b, 4)
    grad = torch.randn(out.shape, generator=gen).to(dtype)
    out.backward(grad.cuda())
    r1, r2 = x1.double().requires_grad_(), x2.double().requires_grad_()
    reference = correlation(r1, r2, 4)
    reference.backward(grad.double())
    tolerance = 1e-5 if dtype == torch.float32 else 1e-2  # of each result's largest value
    for mine, theirs in ((out, reference), (a.grad, r1.grad), (b.grad, r2.grad)):
        error = (mine.double().cpu() - theirs).abs().max() / theirs.abs().max()
        assert error < tolerance
