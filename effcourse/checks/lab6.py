"""Self-checks for Lab 6 (DiffAugment). Small examples and invariants only, never the answer.

Every augmentation is checked on a small batch for: the shape, one property of its definition, that
each sample draws its own parameters, and that gradients reach the input. The full property tests
(ranges over many draws, odd and non-square sizes, policy order) are hidden in the notebook.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .asserts import call, CheckFailed, assert_close, assert_shape, assert_true, check_tensor, passed


_call = call


def _grad_reaches_input(name: str, fn, x: torch.Tensor) -> torch.Tensor:
    x = x.clone().requires_grad_(True)
    y = _call(name, fn, x)
    check_tensor(name, y)
    if not y.requires_grad:
        raise CheckFailed(f"{name}: the output does not depend on x through autograd (no grad_fn); "
                          "build it from x with differentiable torch operations")
    y.sum().backward()
    assert_true(x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0,
                f"{name}: no gradient reached the input x")
    return x.grad


def _differ_per_sample(name: str, fn, x1: torch.Tensor, n: int = 16) -> None:
    y = _call(name, fn, x1.expand(n, *x1.shape[1:]).clone())
    same = all(torch.equal(y[0], y[i]) for i in range(1, n))
    assert_true(not same, f"{name}: {n} identical images all got the same augmentation; "
                          "draw the random parameters per sample (shape (N, 1, 1, 1) or similar)")


def check_rand_brightness(rand_brightness) -> None:
    x = torch.zeros(64, 2, 5, 7)
    y = _call("rand_brightness", rand_brightness, x)
    assert_shape("rand_brightness(x)", y, tuple(x.shape))
    off = y.flatten(1)
    assert_true((off.max(1).values - off.min(1).values).max() < 1e-6,
                "rand_brightness: one offset per sample, added to every channel and pixel of that sample")
    assert_true(off.min() >= -0.5 and off.max() < 0.5,
                f"rand_brightness: offsets must lie in [-0.5, 0.5), got [{off.min():.3f}, {off.max():.3f}]")
    _differ_per_sample("rand_brightness", rand_brightness, torch.rand(1, 1, 4, 4))
    _grad_reaches_input("rand_brightness", rand_brightness, torch.rand(3, 1, 4, 4))
    passed("rand_brightness: shape, one offset per sample in [-0.5, 0.5), gradients")


def check_rand_saturation(rand_saturation) -> None:
    x = torch.rand(8, 3, 4, 5)
    y = _call("rand_saturation", rand_saturation, x)
    assert_shape("rand_saturation(x)", y, tuple(x.shape))
    assert_close("rand_saturation: the per-pixel mean over channels must not change", y.mean(1), x.mean(1), atol=1e-5)
    gray = torch.rand(4, 1, 6, 6)
    assert_close("rand_saturation on a single-channel image (nothing to saturate: unchanged)",
                 _call("rand_saturation", rand_saturation, gray), gray, atol=1e-6)
    _differ_per_sample("rand_saturation", rand_saturation, torch.rand(1, 3, 4, 4))
    _grad_reaches_input("rand_saturation", rand_saturation, torch.rand(3, 3, 4, 4))
    passed("rand_saturation: shape, channel mean kept, grey images unchanged, per-sample factors, gradients")


def check_rand_contrast(rand_contrast) -> None:
    x = torch.rand(8, 2, 5, 3)
    y = _call("rand_contrast", rand_contrast, x)
    assert_shape("rand_contrast(x)", y, tuple(x.shape))
    assert_close("rand_contrast: each image's mean (over C, H, W) must not change",
                 y.mean((1, 2, 3)), x.mean((1, 2, 3)), atol=1e-5)
    _differ_per_sample("rand_contrast", rand_contrast, torch.rand(1, 1, 4, 4))
    _grad_reaches_input("rand_contrast", rand_contrast, torch.rand(3, 1, 4, 4))
    passed("rand_contrast: shape, image mean kept, per-sample factors, gradients")


def check_rand_translation(rand_translation) -> None:
    x = torch.arange(1, 2 * 8 * 8 + 1, dtype=torch.float32).view(1, 2, 8, 8).repeat(16, 1, 1, 1)
    y = _call("rand_translation", rand_translation, x)
    assert_shape("rand_translation(x)", y, tuple(x.shape))
    values = set(x.flatten().tolist()) | {0.0}
    assert_true(set(y.flatten().tolist()) <= values,
                "rand_translation: outputs must be input values or zeros (an integer shift with zero fill)")
    assert_close("rand_translation(x, ratio=0) (no room to move: unchanged)",
                 _call("rand_translation", rand_translation, x, ratio=0.0), x)
    _differ_per_sample("rand_translation", rand_translation, x[:1])
    _grad_reaches_input("rand_translation", rand_translation, torch.rand(3, 1, 8, 8) + 0.5)
    passed("rand_translation: shape, only input values or zeros, per-sample shifts, gradients")


def check_rand_cutout(rand_cutout) -> None:
    x = torch.ones(32, 1, 16, 16)
    y = _call("rand_cutout", rand_cutout, x)
    assert_shape("rand_cutout(x)", y, tuple(x.shape))
    assert_true(set(y.unique().tolist()) <= {0.0, 1.0}, "rand_cutout: pixels are either kept or set to zero")
    zeros = (y == 0).flatten(1).sum(1)
    assert_true(zeros.max() <= 64 and zeros.min() >= 1,
                f"rand_cutout(16x16, ratio=0.5): every sample loses between 1 and 8*8 = 64 pixels "
                f"(one 8x8 square, clipped at the border); got {zeros.min()}..{zeros.max()}")
    assert_true((zeros == 64).any(), "rand_cutout(16x16, ratio=0.5): no sample lost a full 8x8 square")
    _differ_per_sample("rand_cutout", rand_cutout, x[:1])
    g = _grad_reaches_input("rand_cutout", rand_cutout, torch.rand(3, 1, 8, 8) + 0.5)
    assert_true(set(g.unique().tolist()) <= {0.0, 1.0}, "rand_cutout: the gradient must be the keep-mask (0 or 1)")
    passed("rand_cutout: shape, one zeroed square per sample, per-sample positions, gradients")


def check_diff_augment(diff_augment) -> None:
    x = torch.rand(4, 1, 16, 16)
    assert_close('diff_augment(x, policy="") (the empty policy is the identity)',
                 _call("diff_augment", diff_augment, x, policy=""), x)
    y = _call("diff_augment", diff_augment, x)
    assert_shape("diff_augment(x)", y, tuple(x.shape))
    try:
        diff_augment(x, policy="color,sharpen")
    except ValueError as err:
        assert_true("sharpen" in str(err), f"the ValueError must name the unknown policy 'sharpen'; got: {err}")
    except Exception as err:  # noqa: BLE001
        raise CheckFailed(f'diff_augment(x, "color,sharpen") must raise ValueError, got {type(err).__name__}: {err}')
    else:
        raise CheckFailed('diff_augment(x, policy="color,sharpen") must raise a ValueError naming "sharpen"')
    _grad_reaches_input("diff_augment", diff_augment, x)
    passed("diff_augment: empty policy is the identity, unknown names raise, shape, gradients")


class _TinyD(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.lin = nn.Linear(4, 1)

    def forward(self, x):
        return self.lin(x.flatten(1)).flatten()


def check_d_loss(d_loss) -> None:
    D = _TinyD()
    real, w = torch.randn(3, 1, 2, 2), torch.ones(1, requires_grad=True)
    fake = torch.randn(5, 1, 2, 2) * w
    aug = lambda t: 2.0 * t  # noqa: E731 - a deterministic stand-in for DiffAugment
    loss = _call("d_loss", d_loss, D, real, fake, aug)
    check_tensor("d_loss", loss)
    assert_shape("d_loss (a scalar)", loss, ())
    with torch.no_grad():
        expected = F.softplus(-D(aug(real))).mean() + F.softplus(D(aug(fake))).mean()
    assert_close("d_loss with augment(t) = 2t", loss.detach(), expected, atol=1e-5)
    loss.backward()
    assert_true(w.grad is None or w.grad.abs().sum() == 0,
                "d_loss: a gradient reached the generator through the fake; detach the fake in D's step")
    assert_true(D.lin.weight.grad is not None, "d_loss: no gradient reached the discriminator")
    passed("d_loss: value, fake detached, gradients reach D")


def check_g_loss(g_loss) -> None:
    D = _TinyD()
    fake = torch.randn(5, 1, 2, 2, requires_grad=True)
    aug = lambda t: 2.0 * t  # noqa: E731
    loss = _call("g_loss", g_loss, D, fake, aug)
    check_tensor("g_loss", loss)
    assert_shape("g_loss (a scalar)", loss, ())
    with torch.no_grad():
        expected = F.softplus(-D(aug(fake))).mean()
    assert_close("g_loss with augment(t) = 2t", loss.detach(), expected, atol=1e-5)
    loss.backward()
    assert_true(fake.grad is not None and fake.grad.abs().sum() > 0,
                "g_loss: no gradient reached the fake images (the generator's output)")
    passed("g_loss: value, gradients reach the generator's output through augment")


def check_claims(fd: dict, gap: dict) -> None:
    """The experiment's two claims, with a readable message when they do not hold."""
    if not fd["DiffAugment"] < fd["no augmentation"]:
        raise CheckFailed(f"expected DiffAugment's Fréchet distance below no augmentation's, got {fd}")
    if not gap["DiffAugment"] < gap["no augmentation"]:
        raise CheckFailed(f"expected a smaller train/held-out gap of D with DiffAugment, got {gap}")
    passed("DiffAugment: lower Fréchet distance and a smaller discriminator gap than no augmentation")
