"""Self-checks for Lab 6 (DiffAugment). Small examples and invariants only, never the answer.

Every augmentation is checked on a small batch for: the shape and dtype, one property of its
definition, that the input is left unchanged, that each sample draws its own parameters, and that
gradients reach the input. The full property tests (ranges and distributions over many draws, odd
and non-square sizes, policy order) are hidden in the notebook; they use the measuring helpers
below, which read an augmentation's random draws back from its output (so they work whatever
order, or random generator, an implementation draws its numbers from):

* ``run_augment``: call a learner's augmentation; shape, dtype and an untouched input.
* ``affine_factors``: the per-sample factor ``f`` of ``y - m = f (x - m)`` (colour transforms).
* ``code_images`` / ``decode_shifts``: images whose pixel values name their position, and the
  per-sample ``(dy, dx)`` a translation applied to them.
* ``cut_rectangles``: the visible part of each sample's cutout rectangle, and its first row/column.
* ``assert_uniform`` / ``assert_joint_uniform``: integer draws cover exactly their support, evenly.

Small public helpers that a hidden test builds where the learner's code runs (``judge.build``),
to pass them into ``d_loss`` / ``g_loss``: ``AffineAugment`` (a deterministic, differentiable
stand-in for an augmentation), ``RecordingAugment`` (records the batch sizes it is called on) and
``ToyDiscriminator`` (a two-layer discriminator whose weights a test sets with ``state=``).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .asserts import (
    CheckFailed,
    assert_close,
    assert_shape,
    assert_true,
    call,
    check_tensor,
    clock_seed,
    passed,
    seed_in_failures,
)

__all__ = [
    "clock_seed",
    "seed_in_failures",
    "AffineAugment",
    "RecordingAugment",
    "ToyDiscriminator",
    "affine_factors",
    "assert_joint_uniform",
    "assert_uniform",
    "check_d_loss",
    "check_diff_augment",
    "check_diff_augment_errors",
    "check_g_loss",
    "check_rand_brightness",
    "check_rand_contrast",
    "check_rand_cutout",
    "check_rand_saturation",
    "check_rand_translation",
    "code_images",
    "cut_rectangles",
    "decode_shifts",
    "report_claims",
    "run_augment",
]


# ------------------------------------------------------------------ measuring helpers
def run_augment(name: str, fn, x: torch.Tensor, note: str = "", **kwargs) -> torch.Tensor:
    """``fn(x, **kwargs)`` through ``call``; checks a tensor of ``x``'s shape and dtype came back and
    that ``x`` itself was not modified. Returns the output."""
    before = x.detach().clone()
    y = call(f"{name}{note}", fn, x, **kwargs)
    check_tensor(f"{name}{note}", y)
    assert_shape(f"{name} on {tuple(x.shape)}{note}", y, tuple(x.shape))
    assert_true(y.dtype == x.dtype, f"{name}: the output must keep the input's dtype {x.dtype}, got {y.dtype}{note}")
    assert_true(torch.equal(x.detach(), before),
                f"{name} modified its input x; return a new tensor and leave x unchanged{note}")
    return y


def affine_factors(name: str, x: torch.Tensor, y: torch.Tensor, mean: torch.Tensor, note: str = "",
                   tol: float = 1e-4) -> torch.Tensor:
    """The per-sample factor ``f`` (shape ``(N,)``) with ``y - mean = f * (x - mean)``, by least squares;
    fails when one factor per sample does not explain the output."""
    d = (x - mean).detach().double().flatten(1)
    e = (y - mean).detach().double().flatten(1)
    f = (e * d).sum(1) / (d * d).sum(1).clamp_min(1e-300)
    resid = (e - f[:, None] * d).abs().amax(1)
    bad = (resid > tol).nonzero().flatten()
    if len(bad):
        i = int(bad[0])
        raise CheckFailed(f"{name}: sample {i} is not (x - m) * f + m for a single factor f (max deviation "
                          f"{float(resid[i]):.3g}); check which mean you use and that each sample draws one "
                          f"factor{note}")
    return f


def code_images(n: int, c: int, h: int, w: int, dtype=torch.float64) -> torch.Tensor:
    """``(n, c, h, w)`` images whose pixel ``[i, ch, r, col]`` is ``1 + ch*h*w + r*w + col``: every value
    names its channel and position, and none is 0 (the same image for every sample)."""
    return torch.arange(1, c * h * w + 1, dtype=dtype).view(1, c, h, w).expand(n, c, h, w).clone()


def decode_shifts(name: str, y: torch.Tensor, note: str = "") -> tuple[torch.Tensor, torch.Tensor]:
    """``(dy, dx)`` (each ``(N,)``) of a translation applied to ``code_images``; checks that every sample
    is one whole-pixel shift of its own image, channels together, with zeros where nothing came in.
    A sample moved out of view entirely cannot be decoded: shift bounds must stay below H and W."""
    _, c, h, w = y.shape
    y = y.detach().double()
    nz = y.abs() > 0.5                          # pixel values are whole numbers >= 1; zeros are the fill
    k = y.round().long() - 1
    ok_vals = (y.abs() < 1e-3) | (((y - y.round()).abs() < 1e-3) & (k >= 0) & (k < c * h * w))
    if not ok_vals.all():
        i = int((~ok_vals).flatten(1).any(1).nonzero()[0])
        raise CheckFailed(f"{name}: sample {i} has output values that are neither 0 nor one of its input pixels "
                          f"(an integer shift with zero fill only copies pixels){note}")
    k = k.clamp(0, c * h * w - 1)
    ch = torch.arange(c).view(1, c, 1, 1)
    rows = torch.arange(h).view(1, 1, h, 1)
    cols = torch.arange(w).view(1, 1, 1, w)
    src_c, src_r, src_w = k // (h * w), (k % (h * w)) // w, k % w
    mixed = (nz & (src_c != ch)).flatten(1).any(1)
    if mixed.any():
        raise CheckFailed(f"{name}: sample {int(mixed.nonzero()[0])}: channels were mixed; all channels of a "
                          f"sample move together{note}")
    empty = ~nz.flatten(1).any(1)
    if empty.any():
        raise CheckFailed(f"{name}: sample {int(empty.nonzero()[0])} came back all zeros{note}")
    big = torch.iinfo(torch.long).max
    dy, dx = rows - src_r, cols - src_w                                   # (n, c, h, w) where nz
    stats = []
    for d in (dy, dx):
        lo = torch.where(nz, d, torch.full_like(d, big)).flatten(1).amin(1)
        hi = torch.where(nz, d, torch.full_like(d, -big)).flatten(1).amax(1)
        stats.append((lo, hi))
    several = (stats[0][0] != stats[0][1]) | (stats[1][0] != stats[1][1])
    if several.any():
        raise CheckFailed(f"{name}: sample {int(several.nonzero()[0])} is not a single translation (several "
                          f"offsets, or pixels wrapped around the border){note}")
    sy, sx = stats[0][0], stats[1][0]
    kept = nz.flatten(1).sum(1)
    expected = c * (h - sy.abs()).clamp_min(0) * (w - sx.abs()).clamp_min(0)
    wrong = kept != expected
    if wrong.any():
        i = int(wrong.nonzero()[0])
        raise CheckFailed(f"{name}: sample {i} moved by ({int(sy[i])}, {int(sx[i])}) but kept {int(kept[i])} "
                          f"nonzero pixels instead of {int(expected[i])}: every pixel that stays in view must "
                          f"be copied, the uncovered border must be zeros{note}")
    return sy, sx


def cut_rectangles(name: str, x: torch.Tensor, y: torch.Tensor, size: tuple[int, int] | None = None,
                   note: str = "") -> dict[str, torch.Tensor]:
    """The zeroed rectangle of each sample of ``y = cutout(x)``, for ``x`` without zeros.

    Checks: the same cut in every channel, every other pixel unchanged, the zeros form one
    rectangle. With ``size = (s_h, s_w)`` also: at most that big, exactly that big where it does
    not touch the border, and not empty. Returns ``(N,)`` tensors ``top``, ``left`` (the first row
    and column of the *unclipped* rectangle, negative when it sticks out at the top or left; needs
    ``size``), ``rows``, ``cols`` and ``area`` (of the visible part)."""
    h, w = x.shape[-2:]
    z = y.detach() == 0
    if not (z == z[:, :1]).all():
        i = int((z != z[:, :1]).flatten(1).any(1).nonzero()[0])
        raise CheckFailed(f"{name}: sample {i}: the cut must be the same in every channel{note}")
    changed = (y.detach() != x.detach()) & ~z
    if changed.any():
        i = int(changed.flatten(1).any(1).nonzero()[0])
        raise CheckFailed(f"{name}: sample {i}: pixels outside the cut must be unchanged{note}")
    z = z[:, 0]                                                                   # (n, h, w)
    row_any, col_any = z.any(2), z.any(1)                                         # (n, h), (n, w)
    rows, cols = row_any.sum(1), col_any.sum(1)
    first_r = row_any.float().argmax(1)
    last_r = h - 1 - row_any.flip(1).float().argmax(1)
    first_c = col_any.float().argmax(1)
    last_c = w - 1 - col_any.flip(1).float().argmax(1)
    area = z.flatten(1).sum(1)
    nonempty = rows > 0
    rect = (~nonempty) | ((last_r - first_r + 1 == rows) & (last_c - first_c + 1 == cols) & (area == rows * cols))
    if not rect.all():
        raise CheckFailed(f"{name}: sample {int((~rect).nonzero()[0])}: the zeroed pixels are not one rectangle{note}")
    out = {"rows": rows, "cols": cols, "area": area}
    if size is not None:
        sh, sw = size
        if not nonempty.all():
            raise CheckFailed(f"{name}: sample {int((~nonempty).nonzero()[0])}: nothing was cut (a {sh}x{sw} "
                              f"rectangle centred inside the image always shows at least half of it){note}")
        for what, n_vis, first, last, s, full in (("rows", rows, first_r, last_r, sh, h),
                                                  ("columns", cols, first_c, last_c, sw, w)):
            too_big = n_vis > s
            if too_big.any():
                i = int(too_big.nonzero()[0])
                raise CheckFailed(f"{name}: sample {i}: the cut spans {int(n_vis[i])} {what}, more than {s}{note}")
            inner = (first > 0) & (last < full - 1) & (n_vis != s)
            if inner.any():
                i = int(inner.nonzero()[0])
                raise CheckFailed(f"{name}: sample {i}: a cut that does not touch the border must span exactly "
                                  f"{s} {what}, got {int(n_vis[i])}{note}")
        out["top"] = torch.where((first_r == 0) & (rows < sh), rows - sh, first_r)
        out["left"] = torch.where((first_c == 0) & (cols < sw), cols - sw, first_c)
    return out


def _count_bound(n: int, p: float, sigmas: float) -> float:
    return sigmas * math.sqrt(n * p * (1 - p)) + 1.0


def assert_uniform(name: str, values: torch.Tensor, support, note: str = "", sigmas: float = 6.0) -> None:
    """``values`` (integers) take exactly the values in ``support``, each about equally often
    (every count within ``sigmas`` binomial standard deviations of ``len(values) / len(support)``)."""
    support = sorted(int(v) for v in support)
    values = values.detach().flatten().long()
    seen = sorted(set(values.tolist()))
    if seen != support:
        extra = sorted(set(seen) - set(support))
        missing = sorted(set(support) - set(seen))
        raise CheckFailed(f"{name}: over {len(values)} draws expected exactly the values {support[0]}..{support[-1]}"
                          + (f"; got values outside: {extra[:8]}" if extra else "")
                          + (f"; never drawn: {missing[:8]}" if missing else "") + note)
    n, p = len(values), 1.0 / len(support)
    counts = torch.stack([(values == v).sum() for v in support]).double()
    bound = _count_bound(n, p, sigmas)
    worst = int((counts - n * p).abs().argmax())
    if abs(float(counts[worst]) - n * p) > bound:
        raise CheckFailed(f"{name}: the values must be equally likely; over {n} draws {support[worst]} came "
                          f"{int(counts[worst])} times, expected about {n * p:.0f} (counts: "
                          f"{dict(zip(support, counts.long().tolist()))}){note}")


def assert_joint_uniform(name: str, a: torch.Tensor, b: torch.Tensor, support_a, support_b, note: str = "",
                         sigmas: float = 6.0) -> None:
    """Every pair ``(a_i, b_i)`` of the two supports is about equally likely: ``a`` and ``b`` are
    uniform and independent of each other."""
    sa, sb = sorted(int(v) for v in support_a), sorted(int(v) for v in support_b)
    a, b = a.detach().flatten().long(), b.detach().flatten().long()
    n, p = len(a), 1.0 / (len(sa) * len(sb))
    bound = _count_bound(n, p, sigmas)
    for u in sa:
        for v in sb:
            k = int(((a == u) & (b == v)).sum())
            if abs(k - n * p) > bound:
                raise CheckFailed(f"{name}: the two draws must be independent and uniform; the pair ({u}, {v}) "
                                  f"came {k} times in {n} draws, expected about {n * p:.0f}{note}")


# ------------------------------------------------------------------ toys to pass into the learner's losses
class AffineAugment(nn.Module):
    """A deterministic stand-in for an augmentation: ``y = scale * x.flip(-1) + shift``.

    Differentiable (its Jacobian is not the identity, so a gradient that skips it shows), and it
    changes a discriminator's outputs. Has no parameters."""

    def __init__(self, scale: float = 0.5, shift: float = 0.3):
        super().__init__()
        self.scale, self.shift = float(scale), float(shift)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scale * x.flip(-1) + self.shift


class RecordingAugment(nn.Module):
    """The identity (or ``AffineAugment(scale, shift)`` when ``scale`` is given) that appends the
    batch size of every input it is called on to ``self.sizes`` (a list of ints)."""

    def __init__(self, scale: float | None = None, shift: float = 0.0):
        super().__init__()
        self.sizes: list[int] = []
        self.inner = None if scale is None else AffineAugment(scale, shift)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.sizes.append(int(x.shape[0]))
        return x if self.inner is None else self.inner(x)


class ToyDiscriminator(nn.Module):
    """A small discriminator for tests: ``(N, C, H, W)`` images -> logits ``(N,)``.

    ``conv`` (C -> ``hidden`` channels, 3x3, padding 1), tanh, a spatial mean, then ``lin``
    (``hidden`` -> 1). Any H, W. Set its weights with ``load_state_dict`` (``judge.build(...,
    state=...)``) to compare it with a copy."""

    def __init__(self, channels: int = 1, hidden: int = 4):
        super().__init__()
        self.conv = nn.Conv2d(channels, hidden, 3, padding=1)
        self.lin = nn.Linear(hidden, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin(torch.tanh(self.conv(x)).mean((2, 3))).flatten()


# ------------------------------------------------------------------ visible self-checks
def _grad_reaches_input(name: str, fn, x: torch.Tensor) -> torch.Tensor:
    x = x.clone().requires_grad_(True)
    y = call(name, fn, x)
    check_tensor(name, y)
    if not y.requires_grad:
        raise CheckFailed(f"{name}: the output does not depend on x through autograd (no grad_fn); "
                          "build it from x with differentiable torch operations")
    y.sum().backward()
    assert_true(x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0,
                f"{name}: no gradient reached the input x")
    return x.grad


def _differ_per_sample(name: str, fn, x1: torch.Tensor, n: int = 16) -> None:
    y = call(name, fn, x1.expand(n, *x1.shape[1:]).clone())
    same = all(torch.equal(y[0], y[i]) for i in range(1, n))
    assert_true(not same, f"{name}: {n} identical images all got the same augmentation; "
                          "draw the random parameters per sample (shape (N, 1, 1, 1) or similar)")


def check_rand_brightness(rand_brightness) -> None:
    x = torch.zeros(64, 2, 5, 7)
    y = run_augment("rand_brightness", rand_brightness, x)
    off = y.flatten(1)
    assert_true((off.max(1).values - off.min(1).values).max() < 1e-6,
                "rand_brightness: one offset per sample, added to every channel and pixel of that sample")
    assert_true(off.min() >= -0.5 and off.max() < 0.5,
                f"rand_brightness: offsets must lie in [-0.5, 0.5), got [{off.min():.3f}, {off.max():.3f}]")
    _differ_per_sample("rand_brightness", rand_brightness, torch.rand(1, 1, 4, 4))
    _grad_reaches_input("rand_brightness", rand_brightness, torch.rand(3, 1, 4, 4))
    passed("rand_brightness: shape, one offset per sample in [-0.5, 0.5), input untouched, gradients")


def check_rand_saturation(rand_saturation) -> None:
    x = torch.rand(8, 3, 4, 5)
    y = run_augment("rand_saturation", rand_saturation, x)
    assert_close("rand_saturation: the per-pixel mean over channels must not change", y.mean(1), x.mean(1), atol=1e-5)
    gray = torch.rand(4, 1, 6, 6)
    assert_close("rand_saturation on a single-channel image (nothing to saturate: unchanged)",
                 run_augment("rand_saturation", rand_saturation, gray), gray, atol=1e-6)
    _differ_per_sample("rand_saturation", rand_saturation, torch.rand(1, 3, 4, 4))
    _grad_reaches_input("rand_saturation", rand_saturation, torch.rand(3, 3, 4, 4))
    passed("rand_saturation: shape, channel mean kept, grey images unchanged, per-sample factors, gradients")


def check_rand_contrast(rand_contrast) -> None:
    x = torch.rand(8, 2, 5, 3)
    y = run_augment("rand_contrast", rand_contrast, x)
    assert_close("rand_contrast: each image's mean (over C, H, W) must not change",
                 y.mean((1, 2, 3)), x.mean((1, 2, 3)), atol=1e-5)
    _differ_per_sample("rand_contrast", rand_contrast, torch.rand(1, 1, 4, 4))
    _grad_reaches_input("rand_contrast", rand_contrast, torch.rand(3, 1, 4, 4))
    passed("rand_contrast: shape, image mean kept, per-sample factors, gradients")


def check_rand_translation(rand_translation) -> None:
    x = code_images(16, 2, 8, 8, dtype=torch.float32)
    y = run_augment("rand_translation", rand_translation, x)
    dy, dx = decode_shifts("rand_translation", y)
    assert_true(dy.abs().max() <= 1 and dx.abs().max() <= 1,
                f"rand_translation(8x8, ratio=0.125): shifts must lie in -1..1 per axis, got rows "
                f"{sorted(set(dy.tolist()))}, columns {sorted(set(dx.tolist()))}")
    x = code_images(64, 1, 12, 6, dtype=torch.float32)
    dy, dx = decode_shifts("rand_translation", run_augment("rand_translation", rand_translation, x, ratio=0.25))
    assert_true(dy.abs().max() <= 3 and dx.abs().max() <= 2,
                f"rand_translation(12x6, ratio=0.25): rows shift by at most int(12*0.25+0.5) = 3 and columns by "
                f"at most int(6*0.25+0.5) = 2; got rows {sorted(set(dy.tolist()))}, columns {sorted(set(dx.tolist()))}")
    assert_close("rand_translation(x, ratio=0) (no room to move: unchanged)",
                 call("rand_translation", rand_translation, x, ratio=0.0), x)
    _differ_per_sample("rand_translation", rand_translation, code_images(1, 2, 8, 8, dtype=torch.float32))
    _grad_reaches_input("rand_translation", rand_translation, torch.rand(3, 1, 8, 8) + 0.5)
    passed("rand_translation: shape, one whole-pixel shift per sample with zero fill, per-axis bounds, gradients")


def check_rand_cutout(rand_cutout) -> None:
    x = torch.ones(32, 1, 16, 16)
    y = run_augment("rand_cutout", rand_cutout, x)
    cut = cut_rectangles("rand_cutout", x, y, size=(8, 8))
    assert_true((cut["area"] == 64).any(), "rand_cutout(16x16, ratio=0.5): no sample lost a full 8x8 square")
    x = torch.ones(32, 1, 6, 12)
    cut_rectangles("rand_cutout(6x12, ratio=0.5): a 3x6 rectangle", x, run_augment("rand_cutout", rand_cutout, x),
                   size=(3, 6))
    _differ_per_sample("rand_cutout", rand_cutout, torch.ones(1, 1, 16, 16))
    g = _grad_reaches_input("rand_cutout", rand_cutout, torch.rand(3, 1, 8, 8) + 0.5)
    assert_true(set(g.unique().tolist()) <= {0.0, 1.0}, "rand_cutout: the gradient must be the keep-mask (0 or 1)")
    passed("rand_cutout: shape, one zeroed rectangle per sample (s_H x s_W, clipped), per-sample positions, gradients")


def check_diff_augment(diff_augment) -> None:
    x = torch.rand(4, 1, 16, 16)
    assert_close('diff_augment(x, policy="") (the empty policy is the identity)',
                 call("diff_augment", diff_augment, x, policy=""), x)
    run_augment("diff_augment", diff_augment, x)
    _grad_reaches_input("diff_augment", diff_augment, x)
    passed("diff_augment: empty policy is the identity, shape, gradients")


def check_diff_augment_errors(diff_augment) -> None:
    x = torch.rand(4, 1, 16, 16)
    try:
        diff_augment(x, policy="color,sharpen")
    except ValueError as err:
        assert_true("sharpen" in str(err), f"the ValueError must name the unknown policy 'sharpen'; got: {err}")
    except NotImplementedError:
        raise
    except Exception as err:  # noqa: BLE001
        raise CheckFailed(f'diff_augment(x, "color,sharpen") must raise ValueError, got {type(err).__name__}: '
                          f'{err}') from err
    else:
        raise CheckFailed('diff_augment(x, policy="color,sharpen") must raise a ValueError naming "sharpen"')
    passed("diff_augment: an unknown name raises a ValueError that names it")


class _TinyD(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 1)
        with torch.no_grad():
            self.lin.weight.copy_(torch.tensor([[0.3, -0.2, 0.5, 0.1]]))
            self.lin.bias.fill_(0.05)

    def forward(self, x):
        return self.lin(x.flatten(1)).flatten()


def check_d_loss(d_loss) -> None:
    D, D_ref = _TinyD(), _TinyD()
    real, w = torch.randn(3, 1, 2, 2), torch.ones(1, requires_grad=True)
    fake = torch.randn(5, 1, 2, 2) * w

    def aug(t):
        return 2.0 * t

    loss = call("d_loss", d_loss, D, real, fake, aug)
    check_tensor("d_loss", loss)
    assert_shape("d_loss (a scalar)", loss, ())
    expected = F.softplus(-D_ref(aug(real))).mean() + F.softplus(D_ref(aug(fake.detach()))).mean()
    assert_close("d_loss with augment(t) = 2t", loss.detach(), expected.detach(), atol=1e-5)
    assert_true(loss.requires_grad, "d_loss: the loss does not depend on D's weights through autograd")
    loss.backward()
    expected.backward()
    assert_true(w.grad is None or w.grad.abs().sum() == 0,
                "d_loss: a gradient reached the generator through the fake; detach the fake in D's step")
    assert_true(D.lin.weight.grad is not None, "d_loss: no gradient reached the discriminator")
    assert_close("d_loss: the gradient of D's weights (both terms train D: detach the fake, not D's output on it)",
                 D.lin.weight.grad, D_ref.lin.weight.grad, atol=1e-5)
    passed("d_loss: value, fake detached, gradients reach D from the reals and the fakes")


def check_g_loss(g_loss) -> None:
    D = _TinyD()
    fake = torch.randn(5, 1, 2, 2, requires_grad=True)

    def aug(t):
        return 2.0 * t

    loss = call("g_loss", g_loss, D, fake, aug)
    check_tensor("g_loss", loss)
    assert_shape("g_loss (a scalar)", loss, ())
    with torch.no_grad():
        expected = F.softplus(-D(aug(fake))).mean()
    assert_close("g_loss with augment(t) = 2t", loss.detach(), expected, atol=1e-5)
    loss.backward()
    assert_true(fake.grad is not None and fake.grad.abs().sum() > 0,
                "g_loss: no gradient reached the fake images (the generator's output)")
    passed("g_loss: value, gradients reach the generator's output through augment")


def check_r1_penalty(r1_penalty) -> None:
    """A linear D(v) = w . v + b has gradient w at every image, so with augment(t) = 2t the penalty is
    4 |w|^2 through the augmentation and |w|^2 with respect to the augmented images."""
    for through, factor in ((True, 4.0), (False, 1.0)):
        D = _TinyD()
        real = torch.randn(3, 1, 2, 2)
        keep = real.clone()
        pen = call("r1_penalty", r1_penalty, D, real, lambda t: 2.0 * t, through_augment=through)
        check_tensor("r1_penalty", pen)
        assert_shape("r1_penalty (a scalar)", pen, ())
        w = D.lin.weight.detach()
        assert_close(f"r1_penalty(through_augment={through}) of a linear D with augment(t) = 2t: "
                     f"{factor:g} |w|^2 (the mean over the batch of the squared gradient norm)", pen.detach(),
                     factor * w.pow(2).sum(), atol=1e-5)
        assert_true(D.lin.weight.grad is None, "r1_penalty must not write D's .grad (use torch.autograd.grad)")
        assert_true(pen.requires_grad, "r1_penalty: the penalty must stay differentiable w.r.t. D's weights "
                                       "(create_graph=True), or adding it to D's loss does nothing")
        pen.backward()
        assert_close(f"r1_penalty(through_augment={through}): its gradient w.r.t. D's weight ({2 * factor:g} w)",
                     D.lin.weight.grad, 2 * factor * w, atol=1e-5)
        assert_true(torch.equal(real, keep), "r1_penalty modified the real batch")
    passed("r1_penalty: value through and after the augmentation, differentiable w.r.t. D, D's .grad untouched")


def report_claims(claims: list[tuple[str, bool, str]]) -> bool:
    """Print one line per claim ``(what, holds, numbers)``: ✔ or ✘. Never raises -- a notebook reports
    its claims (a different random draw may move a number), CI asserts them. Returns whether all held."""
    from ..runtime import profile

    if profile() == "smoke":
        print("(smoke profile: a few iterations only, so these numbers say nothing about the claims)")
    for what, holds, numbers in claims:
        print(f"{'✔' if holds else '✘ (not this time)'} {what}: {numbers}")
    return all(h for _, h, _ in claims)
