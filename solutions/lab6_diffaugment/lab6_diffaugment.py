# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Lab 6 — DiffAugment: training a GAN on 100 images without the discriminator memorising them
#
# **You will build** the differentiable augmentations of DiffAugment (colour, translation, cutout),
# the policy that chains them, and the GAN losses that apply them to *both* real and generated images
# in *both* the discriminator's and the generator's step. Then you will train the same small GAN on
# just 100 digits three ways — no augmentation, augmenting only the reals, DiffAugment — and watch
# the discriminator memorise its training set, the generator learn to draw augmentation artifacts,
# and DiffAugment fix both.
#
# **Time:** about 90 minutes. **Paper:** Zhao, Liu, Lin, Zhu, Han, *Differentiable Augmentation for
# Data-Efficient GAN Training*, NeurIPS 2020.
#
# **Intuition.** With 100 training images, the discriminator D soon recognises *those* images: it
# says "real" to them and "fake" to everything else, including real digits it has never seen. Its
# feedback to the generator G stops being about what digits look like. Classifiers fight this with
# data augmentation, but for a GAN the obvious version — augment the real images only — changes the
# target: D learns that real digits sometimes have a grey square cut out of them, and G dutifully
# learns to draw grey squares. DiffAugment applies the *same random family* of transformations T to
# real and fake images, in D's step and in G's step. D never sees an un-augmented image, so it cannot
# tell the augmentation apart from the data, and the generator's images stay clean. G's gradient has
# to pass through T, so every T must be differentiable.

# %%
import time

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from torch import nn

import effcourse
from effcourse import metrics, plots
from effcourse.checks import lab6
from effcourse.data.digits import few_shot, load_digits
from effcourse.gan import dcgan

# %% tags=["parameters"]
QUICK = False
SEED = 0
DEVICE = "auto"

# %%
QUICK, device = effcourse.setup(QUICK, SEED, DEVICE)
N_SHOT = 100                                  # training images: 10 per class
ITERS = 3000 if QUICK else 6000               # GAN iterations (batch 32) without augmentation / DiffAugment
REALS_ONLY_ITERS = 1000 if QUICK else 6000    # ... augmenting the reals only (its artifacts show early)
NGF, NDF = 16, 32                             # generator / discriminator widths
LR = 2e-3                                     # Adam learning rate of both nets (betas 0.5, 0.999)
N_SAMPLES = 1000 if QUICK else 2000           # samples for the Fréchet distance
PROBE_EVERY = 100 if QUICK else 250           # how often D's outputs are measured
EVAL_EVERY = 500                              # how often the Fréchet distance is measured

data = few_shot(N_SHOT, size=16, seed=SEED)
all_digits, _ = load_digits(16)
heldout = data.heldout_images[:500]           # real digits D never trains on
print(f"{len(data.images)} training images, {len(data.heldout_images)} held-out reals, "
      f"{len(all_digits)} digits for the Fréchet distance")
plots.image_grid(data.images[torch.argsort(data.labels)], nrow=20, title="the whole training set", vmin=-1, vmax=1)
plt.show()

# %% [markdown]
# ## 1. Colour: brightness, saturation, contrast
#
# All three are per-sample affine maps of the pixel values, so they are differentiable for free.
# For a batch `x` of shape `(N, C, H, W)`, each sample `i` draws its own factor:
#
# $$
# \text{brightness: } y_i = x_i + b_i,\; b_i \sim U[-0.5, 0.5) \qquad
# \text{saturation: } y_i = (x_i - \bar x_i^{\,c})\, s_i + \bar x_i^{\,c},\; s_i \sim U[0, 2)
# $$
# $$
# \text{contrast: } y_i = (x_i - \bar x_i)\, c_i + \bar x_i,\; c_i \sim U[0.5, 1.5)
# $$
#
# where $\bar x_i^{\,c}$ is the mean over channels *at each pixel* (shape `(N, 1, H, W)`: saturation
# pushes colours away from or towards grey; on one-channel images it does nothing), and $\bar x_i$ is
# the mean of the whole image (over C, H and W). Draw the random numbers with `torch.rand` in shape
# `(N, 1, 1, 1)` so that they broadcast, on `x`'s device and dtype.

# %% nbgrader={"grade": false, "grade_id": "rand_brightness", "locked": false, "schema_version": 3, "solution": true, "task": false}
def rand_brightness(x):
    """Add one random offset b ~ U[-0.5, 0.5) per sample to every channel and pixel.

    x: (N, C, H, W). Returns a new tensor of the same shape; differentiable w.r.t. x.
    """
    ### BEGIN SOLUTION
    b = torch.rand(x.shape[0], 1, 1, 1, dtype=x.dtype, device=x.device) - 0.5
    return x + b
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_rand_brightness", "locked": true, "points": 8, "schema_version": 3, "solution": false, "task": false}
lab6.check_rand_brightness(rand_brightness)
### BEGIN HIDDEN TESTS
from effcourse.checks._assert import assert_close as _close, assert_shape as _shape, assert_true as _true

for _shp in [(7, 3, 5, 6), (2, 1, 9, 4), (1, 2, 3, 3), (5, 4, 1, 1)]:
    _c = torch.randn(_shp[0], 1, 1, 1).expand(_shp).clone()
    _y = rand_brightness(_c)
    _shape(f"rand_brightness on {_shp}", _y, _shp)
    _off = (_y - _c).flatten(1)
    _true((_off.max(1).values - _off.min(1).values).max() < 1e-5, f"one offset per sample expected ({_shp})")
_off = (rand_brightness(torch.zeros(3000, 1, 2, 2)) - 0).flatten(1)[:, 0]
_true(_off.min() >= -0.5 and _off.max() < 0.5, f"offsets outside [-0.5, 0.5): [{_off.min():.3f}, {_off.max():.3f}]")
_true(_off.min() < -0.45 and _off.max() > 0.45 and abs(float(_off.mean())) < 0.05,
      f"offsets must be uniform on [-0.5, 0.5): min {_off.min():.3f}, max {_off.max():.3f}, mean {_off.mean():.3f}")
_true(len(set(_off.tolist())) > 2900, "identical images must get independent offsets")
_x = torch.rand(4, 2, 3, 5, requires_grad=True)
_w = torch.randn(4, 2, 3, 5)
(rand_brightness(_x) * _w).sum().backward()
_close("d(sum(w * rand_brightness(x)))/dx", _x.grad, _w)
### END HIDDEN TESTS

# %% nbgrader={"grade": false, "grade_id": "rand_saturation", "locked": false, "schema_version": 3, "solution": true, "task": false}
def rand_saturation(x):
    """Scale each pixel's deviation from its channel mean by s ~ U[0, 2), one s per sample.

    x: (N, C, H, W). y = (x - m) * s + m with m = x.mean(dim=1, keepdim=True).
    Returns a new tensor of the same shape; differentiable w.r.t. x.
    """
    ### BEGIN SOLUTION
    m = x.mean(dim=1, keepdim=True)
    s = torch.rand(x.shape[0], 1, 1, 1, dtype=x.dtype, device=x.device) * 2
    return (x - m) * s + m
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_rand_saturation", "locked": true, "points": 8, "schema_version": 3, "solution": false, "task": false}
lab6.check_rand_saturation(rand_saturation)
### BEGIN HIDDEN TESTS
from effcourse.checks._assert import assert_close as _close, assert_shape as _shape, assert_true as _true


def _factors(x, y, mean):
    """Per-sample factor f with y - mean = f * (x - mean); checks one f per sample."""
    d, e = (x - mean).flatten(1), (y - mean).flatten(1)
    f = (e * d).sum(1) / (d * d).sum(1)
    _true(((e - f[:, None] * d).abs().max(1).values < 1e-4).all(), "one factor per sample expected")
    return f


for _shp in [(6, 3, 5, 4), (3, 2, 7, 3), (1, 5, 2, 2)]:
    _x = torch.rand(_shp, dtype=torch.float64)
    _y = rand_saturation(_x)
    _shape(f"rand_saturation on {_shp}", _y, _shp)
    _f = _factors(_x, _y, _x.mean(1, keepdim=True))
    _true(((_f >= 0) & (_f < 2)).all(), f"saturation factors outside [0, 2): {_f.tolist()}")
_x = torch.rand(1, 3, 4, 4, dtype=torch.float64).expand(3000, 3, 4, 4).clone()
_f = _factors(_x, rand_saturation(_x), _x.mean(1, keepdim=True))
_true(_f.min() >= 0 and _f.max() < 2 and _f.min() < 0.1 and _f.max() > 1.9 and abs(float(_f.mean()) - 1) < 0.1,
      f"saturation factors must be uniform on [0, 2): min {_f.min():.3f}, max {_f.max():.3f}, mean {_f.mean():.3f}")
_g = torch.rand(3, 1, 5, 7)
_close("rand_saturation on one channel (unchanged)", rand_saturation(_g), _g, atol=1e-6)
_x = torch.rand(4, 3, 3, 5, requires_grad=True)
_y = rand_saturation(_x)
_y.sum().backward()
_close("rand_saturation keeps the channel mean", _y.mean(1), _x.mean(1), atol=1e-5)
_true(_x.grad is not None and torch.isfinite(_x.grad).all(), "no gradient reached x")
### END HIDDEN TESTS

# %% nbgrader={"grade": false, "grade_id": "rand_contrast", "locked": false, "schema_version": 3, "solution": true, "task": false}
def rand_contrast(x):
    """Scale each image's deviation from its mean by c ~ U[0.5, 1.5), one c per sample.

    x: (N, C, H, W). y = (x - m) * c + m with m the mean of each image over C, H and W.
    Returns a new tensor of the same shape; differentiable w.r.t. x.
    """
    ### BEGIN SOLUTION
    m = x.mean(dim=(1, 2, 3), keepdim=True)
    c = torch.rand(x.shape[0], 1, 1, 1, dtype=x.dtype, device=x.device) + 0.5
    return (x - m) * c + m
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_rand_contrast", "locked": true, "points": 8, "schema_version": 3, "solution": false, "task": false}
lab6.check_rand_contrast(rand_contrast)
### BEGIN HIDDEN TESTS
from effcourse.checks._assert import assert_close as _close, assert_shape as _shape, assert_true as _true


def _factors(x, y, mean):
    d, e = (x - mean).flatten(1), (y - mean).flatten(1)
    f = (e * d).sum(1) / (d * d).sum(1)
    _true(((e - f[:, None] * d).abs().max(1).values < 1e-4).all(), "one factor per sample expected")
    return f


for _shp in [(6, 3, 5, 4), (3, 1, 7, 3), (2, 2, 1, 9)]:
    _x = torch.rand(_shp, dtype=torch.float64)
    _y = rand_contrast(_x)
    _shape(f"rand_contrast on {_shp}", _y, _shp)
    _f = _factors(_x, _y, _x.mean((1, 2, 3), keepdim=True))
    _true(((_f >= 0.5) & (_f < 1.5)).all(), f"contrast factors outside [0.5, 1.5): {_f.tolist()}")
# a two-level image: half the pixels at -1, half at +1 (mean 0): the output levels are -c and +c
_two = torch.tensor([-1.0, 1.0], dtype=torch.float64).repeat(8).view(1, 1, 4, 4).expand(3000, 1, 4, 4).clone()
_f = _factors(_two, rand_contrast(_two), torch.zeros(()))
_true(_f.min() >= 0.5 and _f.max() < 1.5 and _f.min() < 0.55 and _f.max() > 1.45 and abs(float(_f.mean()) - 1) < 0.05,
      f"contrast factors must be uniform on [0.5, 1.5): min {_f.min():.3f}, max {_f.max():.3f}, mean {_f.mean():.3f}")
_x = torch.rand(4, 2, 3, 5, requires_grad=True)
_y = rand_contrast(_x)
_y.sum().backward()
_close("rand_contrast keeps each image's mean", _y.mean((1, 2, 3)), _x.mean((1, 2, 3)), atol=1e-5)
_true(_x.grad is not None and torch.isfinite(_x.grad).all(), "no gradient reached x")
### END HIDDEN TESTS

# %% [markdown]
# ## 2. Translation and cutout
#
# **Translation** moves each image by a random whole number of pixels, independently along each
# axis, and fills the uncovered border with zeros:
#
# $$ y_i[h, w] = \begin{cases} x_i[h - t_i^{y},\, w - t_i^{x}] & \text{if that pixel exists} \\ 0 & \text{otherwise,}\end{cases}
# \qquad t_i^{y} \in \{-s_H, \dots, s_H\},\; t_i^{x} \in \{-s_W, \dots, s_W\} $$
#
# with $s_H = \lfloor H\cdot\text{ratio} + 0.5\rfloor$ and $s_W = \lfloor W\cdot\text{ratio} + 0.5\rfloor$
# (2 pixels for 16×16 images at the default ratio 1/8). **Cutout** zeroes one rectangle of
# $\lfloor H\cdot\text{ratio} + 0.5\rfloor$ rows by $\lfloor W\cdot\text{ratio} + 0.5\rfloor$ columns (a square
# for square images; 8×8 on 16×16 at the default ratio 1/2) whose centre is a uniformly random pixel;
# the part that falls outside the image is clipped away.
#
# Both are *differentiable with respect to x* even though the offsets are integers: each output pixel
# is either a copy of one input pixel (gradient 1 to that pixel) or a constant zero (gradient 0).
# Build them from indexing, `torch.gather`, padding or a multiplicative mask — anything autograd can
# follow — and draw the offsets per sample (e.g. `torch.randint(..., size=(N, 1, 1))`). A hint for a
# loop-free translation: pad `x` with zeros, then build index grids `rows = arange(H) + offset` and
# gather.

# %% nbgrader={"grade": false, "grade_id": "rand_translation", "locked": false, "schema_version": 3, "solution": true, "task": false}
def rand_translation(x, ratio=0.125):
    """Shift each sample by random integers (t_y, t_x), zero fill.

    x: (N, C, H, W). t_y is uniform on {-s_H, ..., s_H} with s_H = int(H * ratio + 0.5), t_x on
    {-s_W, ..., s_W} with s_W = int(W * ratio + 0.5), drawn independently per sample; all channels
    of a sample move together. Returns a new tensor of the same shape; differentiable w.r.t. x.
    """
    ### BEGIN SOLUTION
    n, c, h, w = x.shape
    sh, sw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    ty = torch.randint(-sh, sh + 1, (n, 1, 1), device=x.device)
    tx = torch.randint(-sw, sw + 1, (n, 1, 1), device=x.device)
    rows = torch.arange(h, device=x.device).view(1, h, 1) - ty          # source row of each output row
    cols = torch.arange(w, device=x.device).view(1, 1, w) - tx
    valid = (rows >= 0) & (rows < h) & (cols >= 0) & (cols < w)          # (n, h, w)
    batch = torch.arange(n, device=x.device).view(n, 1, 1)
    out = x.permute(0, 2, 3, 1)[batch, rows.clamp(0, h - 1), cols.clamp(0, w - 1)]   # (n, h, w, c)
    return (out * valid.unsqueeze(-1).to(x.dtype)).permute(0, 3, 1, 2)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_rand_translation", "locked": true, "points": 14, "schema_version": 3, "solution": false, "task": false}
lab6.check_rand_translation(rand_translation)
### BEGIN HIDDEN TESTS
from effcourse.checks._assert import assert_shape as _shape, assert_true as _true


def _check_shifts(x, y, bound):
    """Every output pixel is 0 or a copy of x moved by one (dy, dx) per sample; returns the shifts."""
    n, c, h, w = x.shape
    shifts = []
    for i in range(n):
        nz = (y[i] != 0).nonzero()                                      # (k, 3): channel, row, col
        k = (y[i][y[i] != 0] - 1 - i * c * h * w).round().long()        # index of the source pixel
        _true(((k >= 0) & (k < c * h * w)).all(), f"sample {i}: output values that are neither zeros nor its own pixels")
        src_c, src_h, src_w = k // (h * w), (k % (h * w)) // w, k % w
        _true((src_c == nz[:, 0]).all(), f"sample {i}: channels must not be mixed")
        dy, dx = nz[:, 1] - src_h, nz[:, 2] - src_w
        _true(len(nz) == 0 or (dy.unique().numel() == 1 and dx.unique().numel() == 1),
              f"sample {i}: not a single translation (several offsets, or a wrap-around)")
        dy, dx = (int(dy[0]), int(dx[0])) if len(nz) else (h, w)
        _true(abs(dy) <= bound and abs(dx) <= bound, f"sample {i}: moved by ({dy}, {dx}), more than {bound} pixels")
        _true(len(nz) == c * (h - abs(dy)) * (w - abs(dx)),
              f"sample {i}: moved by ({dy}, {dx}) but {len(nz)} pixels kept; the uncovered border must be zeros")
        shifts.append((dy, dx))
    return shifts


for _shp, _r in [((5, 2, 16, 16), 0.125), ((4, 3, 9, 13), 0.25), ((3, 1, 8, 8), 0.3), ((6, 2, 7, 5), 0.2),
                 ((2, 1, 11, 11), 0.125)]:
    _n, _c, _h, _w = _shp
    _x = torch.arange(1, _n * _c * _h * _w + 1, dtype=torch.float64).view(_shp)
    _y = rand_translation(_x, ratio=_r)
    _shape(f"rand_translation on {_shp}", _y, _shp)
    _check_shifts(_x, _y, max(int(_h * _r + 0.5), int(_w * _r + 0.5)))
_x = torch.arange(1, 65, dtype=torch.float64).view(1, 1, 8, 8).expand(300, 1, 8, 8).clone()
_x = _x + 64 * torch.arange(300, dtype=torch.float64).view(300, 1, 1, 1)
_s = _check_shifts(_x, rand_translation(_x, ratio=0.25), 2)
_true({d for d, _ in _s} == set(range(-2, 3)) and {d for _, d in _s} == set(range(-2, 3)),
      f"with s = 2 each axis must shift by every value in -2..2; saw rows {sorted({d for d, _ in _s})}, "
      f"cols {sorted({d for _, d in _s})}")
_x = (torch.rand(3, 2, 6, 7) + 0.5).requires_grad_(True)
_y = rand_translation(_x, ratio=0.34)
_y.sum().backward()
_true(_x.grad is not None and set(_x.grad.unique().tolist()) <= {0.0, 1.0}
      and int(_x.grad.sum()) == int((_y != 0).sum()), "the gradient must be 1 on the pixels that stay in view, 0 elsewhere")
### END HIDDEN TESTS

# %% nbgrader={"grade": false, "grade_id": "rand_cutout", "locked": false, "schema_version": 3, "solution": true, "task": false}
def rand_cutout(x, ratio=0.5):
    """Zero one rectangle per sample: int(H*ratio+0.5) rows by int(W*ratio+0.5) columns, centred on a
    uniformly random pixel, clipped at the image border; the same rectangle in every channel.

    x: (N, C, H, W). Returns a new tensor of the same shape; differentiable w.r.t. x.
    """
    ### BEGIN SOLUTION
    n, c, h, w = x.shape
    sh, sw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    cy = torch.randint(0, h, (n, 1, 1), device=x.device)
    cx = torch.randint(0, w, (n, 1, 1), device=x.device)
    y0, x0 = cy - sh // 2, cx - sw // 2
    rows = torch.arange(h, device=x.device).view(1, h, 1)
    cols = torch.arange(w, device=x.device).view(1, 1, w)
    cut = (rows >= y0) & (rows < y0 + sh) & (cols >= x0) & (cols < x0 + sw)
    return x * (~cut).unsqueeze(1).to(x.dtype)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_rand_cutout", "locked": true, "points": 14, "schema_version": 3, "solution": false, "task": false}
lab6.check_rand_cutout(rand_cutout)
### BEGIN HIDDEN TESTS
from effcourse.checks._assert import assert_close as _close, assert_shape as _shape, assert_true as _true


def _rects(x, y):
    """(top, left, height, width) of each sample's zeroed rectangle; checks it is one rectangle."""
    out = []
    for i in range(x.shape[0]):
        z = y[i] == 0
        _true((z == z[:1]).all(), f"sample {i}: the cut must be the same in every channel")
        z = z[0]
        _close(f"sample {i}: pixels outside the cut must be unchanged", torch.where(z, x[i], y[i]), x[i])
        rows, cols = z.any(1).nonzero().flatten(), z.any(0).nonzero().flatten()
        _true(len(rows) > 0, f"sample {i}: nothing was cut")
        _true(rows.numel() == int(rows[-1] - rows[0]) + 1 and cols.numel() == int(cols[-1] - cols[0]) + 1
              and int(z.sum()) == rows.numel() * cols.numel(), f"sample {i}: the zeroed pixels are not one rectangle")
        out.append((int(rows[0]), int(cols[0]), rows.numel(), cols.numel()))
    return out


for _shp, _r in [((40, 2, 16, 16), 0.5), ((40, 1, 9, 9), 0.5), ((40, 3, 10, 7), 0.4), ((40, 1, 6, 12), 0.5),
                 ((40, 1, 11, 11), 0.3)]:
    _n, _c, _h, _w = _shp
    _x = torch.rand(_shp, dtype=torch.float64) + 0.5
    _y = rand_cutout(_x, ratio=_r)
    _shape(f"rand_cutout on {_shp}", _y, _shp)
    _sh, _sw = int(_h * _r + 0.5), int(_w * _r + 0.5)
    _ok = {(_sh, _sw)} if _h == _w else {(_sh, _sw), (_sh, _sh), (_sw, _sw)}
    for _t, _l, _hh, _ww in _rects(_x, _y):
        inside = _t > 0 and _l > 0 and _t + _hh < _h and _l + _ww < _w
        _true(_hh <= max(_sh, _sw) and _ww <= max(_sh, _sw), f"{_shp}, ratio {_r}: cut {_hh}x{_ww} is too large")
        _true(not inside or (_hh, _ww) in _ok,
              f"{_shp}, ratio {_r}: a cut that lies inside the image must be {_sh}x{_sw}, got {_hh}x{_ww}")
_x = torch.ones(400, 1, 16, 16, dtype=torch.float64)
_r = _rects(_x, rand_cutout(_x))
_true(max(h * w for _, _, h, w in _r) == 64, "no sample lost a full 8x8 square")
_true(len({(t, l) for t, l, _, _ in _r}) > 40, "the cut must be placed independently per sample")
_x = (torch.rand(3, 2, 8, 9) + 0.5).requires_grad_(True)
_y = rand_cutout(_x)
_y.sum().backward()
_close("gradient of rand_cutout (the keep-mask)", _x.grad, (_y != 0).float())
### END HIDDEN TESTS

# %% [markdown]
# ## 3. The policy
#
# `diff_augment(x, policy)` applies the named groups in the order the comma-separated policy lists
# them: `"color"` is brightness, then saturation, then contrast; `"translation"` and `"cutout"` are the
# functions above with their default ratios. The paper's best policy for few-shot data is all three.
# The empty policy `""` returns `x` unchanged. An unknown name must raise a `ValueError` that names it
# (a typo such as `"colour"` silently training without augmentation would cost you a day).

# %% nbgrader={"grade": false, "grade_id": "diff_augment", "locked": false, "schema_version": 3, "solution": true, "task": false}
def diff_augment(x, policy="color,translation,cutout"):
    """Apply the augmentation groups named in ``policy`` (comma-separated), in that order.

    "color" = rand_brightness, rand_saturation, rand_contrast; "translation" = rand_translation;
    "cutout" = rand_cutout. "" is the identity. Unknown names raise ValueError naming them.
    x: (N, C, H, W); returns the same shape; differentiable w.r.t. x.
    """
    ### BEGIN SOLUTION
    groups = {"color": [rand_brightness, rand_saturation, rand_contrast],
              "translation": [rand_translation], "cutout": [rand_cutout]}
    names = [p.strip() for p in policy.split(",") if p.strip()]
    unknown = [p for p in names if p not in groups]
    if unknown:
        raise ValueError(f"unknown augmentation policy {unknown[0]!r}; known: {', '.join(groups)}")
    for name in names:
        for fn in groups[name]:
            x = fn(x)
    return x
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_diff_augment", "locked": true, "points": 10, "schema_version": 3, "solution": false, "task": false}
# (the policy tests call your rand_* functions too: the order checks need colour, translation and cutout)
lab6.check_diff_augment(diff_augment)
### BEGIN HIDDEN TESTS
from effcourse.checks._assert import assert_close as _close, assert_shape as _shape, assert_true as _true

for _shp in [(3, 1, 16, 16), (2, 3, 9, 7)]:
    _x = torch.randn(_shp)
    _close(f'diff_augment(x, "") on {_shp}', diff_augment(_x, policy=""), _x)
    _shape(f"diff_augment(x) on {_shp}", diff_augment(_x), _shp)
for _bad in ["blur", "color,colour", "translation,cutout,zoom"]:
    try:
        diff_augment(torch.rand(2, 1, 8, 8), policy=_bad)
    except ValueError as _err:
        _name = _bad.split(",")[-1]
        _true(_name in str(_err), f"the error for policy {_bad!r} must name {_name!r}; got: {_err}")
    else:
        raise AssertionError(f"diff_augment(x, {_bad!r}) must raise ValueError")
# only translation: input values or zeros
_x = torch.arange(1, 6 * 64 + 1, dtype=torch.float64).view(6, 1, 8, 8)
_y = diff_augment(_x, "translation")
_true(set(_y.flatten().tolist()) <= set(_x.flatten().tolist()) | {0.0}, '"translation" must only move pixels')
# order: colour after cutout leaves no exact zeros; cutout after colour leaves a zero rectangle in each sample
_x = torch.rand(64, 1, 16, 16) + 0.5
_true(((diff_augment(_x, "color,cutout") == 0).flatten(1).sum(1) >= 1).all(),
      '"color,cutout": the cutout (applied last) must leave zeros in every sample')
_true((diff_augment(_x, "cutout,color") == 0).float().mean() < 0.01,
      '"cutout,color": colour is applied after the cutout, so the cut pixels must not stay exactly 0')
_true(((diff_augment(_x, "color,translation") == 0).flatten(1).sum(1) > 0).float().mean() > 0.5,
      '"color,translation": translation (last) must leave a zero border in most samples')
# colour on one channel is a per-sample affine map with slope in [0.5, 1.5) (contrast) and a random offset
_x = torch.rand(200, 1, 5, 5, dtype=torch.float64)
_y = diff_augment(_x, "color")
_d, _e = (_x - _x.mean((1, 2, 3), keepdim=True)).flatten(1), (_y - _y.mean((1, 2, 3), keepdim=True)).flatten(1)
_slope = (_e * _d).sum(1) / (_d * _d).sum(1)
_true((_slope >= 0.5 - 1e-9).all() and (_slope < 1.5).all() and _slope.std() > 0.1,
      f'"color" on grey images: expected contrast factors in [0.5, 1.5); got {_slope.min():.3f}..{_slope.max():.3f}')
_true((_y.mean((1, 2, 3)) - _x.mean((1, 2, 3))).std() > 0.1, '"color" must include the brightness offset')
_x = torch.rand(5, 3, 16, 16, requires_grad=True)
diff_augment(_x).sum().backward()
_true(_x.grad is not None and torch.isfinite(_x.grad).all(), "diff_augment: no gradient reached x")
### END HIDDEN TESTS

# %% [markdown]
# Here is what the discriminator will see: each row is one training digit under eight draws of the
# full policy. The grey squares and borders are zeros (a mid-grey in [-1, 1]; the digits'
# background is -1).

# %%
torch.manual_seed(SEED)
try:
    _show = data.images[::13][:6].repeat_interleave(8, 0)
    plots.image_grid(diff_augment(_show).clamp(-1, 1), nrow=8, vmin=-1, vmax=1,
                     title='diff_augment(x, "color,translation,cutout")')
    plt.show()
except NotImplementedError:
    print("implement the augmentations above to see them")

# %% [markdown]
# ## 4. The losses: augment everything D sees
#
# With $f(u) = \log(1 + e^{u})$ (softplus), $D$ returning logits and $T$ a fresh random draw of the
# policy at every call, the non-saturating logistic GAN losses of DiffAugment are
#
# $$ L_D = \mathbb{E}_x\, f\big(-D(T(x))\big) + \mathbb{E}_z\, f\big(D(T(G(z)))\big) \qquad
#    L_G = \mathbb{E}_z\, f\big(-D(T(G(z)))\big) $$
#
# (means over the batch; $f(-u) = -\log\sigma(u)$). Two details make or break it:
#
# * In D's step the fake is a constant: **detach** it, so D's loss does not backpropagate into G (the
#   training loop computes `fake = G(z)` once and reuses it for G's step).
# * In G's step the gradient must reach G **through** $T$: $\partial L_G/\partial\theta_G$ flows
#   from $D$ through $T$ into $G(z)$. This is why $T$ must be differentiable — with a
#   non-differentiable $T$ one could only augment the reals, which is experiment (ii) below.

# %% nbgrader={"grade": false, "grade_id": "d_loss", "locked": false, "schema_version": 3, "solution": true, "task": false}
def d_loss(D, real, fake, augment):
    """Discriminator loss: mean softplus(-D(augment(real))) + mean softplus(D(augment(fake))).

    D: module mapping (N, C, H, W) images to logits (N,). real, fake: image batches (sizes may differ).
    augment: a function on image batches (e.g. diff_augment, or the identity).
    The fake is detached: no gradient reaches the generator. Returns a scalar tensor.
    """
    ### BEGIN SOLUTION
    return F.softplus(-D(augment(real))).mean() + F.softplus(D(augment(fake.detach()))).mean()
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_d_loss", "locked": true, "points": 12, "schema_version": 3, "solution": false, "task": false}
lab6.check_d_loss(d_loss)
### BEGIN HIDDEN TESTS
from effcourse.checks._assert import assert_close as _close, assert_shape as _shape, assert_true as _true


class _D(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv = nn.Conv2d(c, 4, 3, padding=1)
        self.lin = nn.Linear(4, 1)

    def forward(self, x):
        return self.lin(torch.tanh(self.conv(x)).mean((2, 3))).flatten()


for _c, _nr, _nf, _hw in [(1, 6, 9, 8), (3, 4, 4, 5), (2, 1, 3, 7)]:
    _Dn = _D(_c)
    _aug = lambda t: 0.5 * t.flip(-1) + 0.3   # noqa: E731 - deterministic, changes D's outputs
    _real = torch.randn(_nr, _c, _hw, _hw)
    _w = torch.ones(1, requires_grad=True)
    _fake = torch.randn(_nf, _c, _hw, _hw) * _w
    _loss = d_loss(_Dn, _real, _fake, _aug)
    _shape("d_loss", _loss, ())
    with torch.no_grad():
        _exp = F.softplus(-_Dn(_aug(_real))).mean() + F.softplus(_Dn(_aug(_fake))).mean()
    _close(f"d_loss (real {_nr}, fake {_nf})", _loss.detach(), _exp, atol=1e-5)
    _loss.backward()
    _true(_w.grad is None or float(_w.grad.abs().sum()) == 0.0, "d_loss: detach the fake (gradient reached G)")
    _true(_Dn.conv.weight.grad is not None and _Dn.conv.weight.grad.abs().sum() > 0, "d_loss: no gradient reached D")
# augment is applied to both reals and fakes (and not to anything else)
_calls = []
_Dn = _D(1)
d_loss(_Dn, torch.randn(5, 1, 6, 6), torch.randn(7, 1, 6, 6), lambda t: (_calls.append(t.shape[0]), t)[1])
_true(sorted(_calls) in ([5, 7], [12]), f"augment must see the 5 reals and the 7 fakes; it saw batches of {_calls}")
### END HIDDEN TESTS

# %% nbgrader={"grade": false, "grade_id": "g_loss", "locked": false, "schema_version": 3, "solution": true, "task": false}
def g_loss(D, fake, augment):
    """Non-saturating generator loss: mean softplus(-D(augment(fake))).

    Gradients flow through augment into fake (the generator's output). Returns a scalar tensor.
    """
    ### BEGIN SOLUTION
    return F.softplus(-D(augment(fake))).mean()
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_g_loss", "locked": true, "points": 8, "schema_version": 3, "solution": false, "task": false}
lab6.check_g_loss(g_loss)
### BEGIN HIDDEN TESTS
from effcourse.checks._assert import assert_close as _close, assert_shape as _shape, assert_true as _true


class _D(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv = nn.Conv2d(c, 4, 3, padding=1)
        self.lin = nn.Linear(4, 1)

    def forward(self, x):
        return self.lin(torch.tanh(self.conv(x)).mean((2, 3))).flatten()


for _c, _n, _hw in [(1, 9, 8), (3, 4, 5), (2, 1, 7)]:
    _Dn = _D(_c)
    _aug = lambda t: 0.5 * t.flip(-1) + 0.3   # noqa: E731
    _fake = torch.randn(_n, _c, _hw, _hw, requires_grad=True)
    _loss = g_loss(_Dn, _fake, _aug)
    _shape("g_loss", _loss, ())
    _f2 = _fake.detach().clone().requires_grad_(True)
    _exp = F.softplus(-_Dn(_aug(_f2))).mean()
    _close(f"g_loss (batch {_n})", _loss.detach(), _exp.detach(), atol=1e-5)
    _loss.backward()
    _exp.backward()
    _close("gradient of g_loss w.r.t. the fake (through augment)", _fake.grad, _f2.grad, atol=1e-6)
### END HIDDEN TESTS

# %% [markdown]
# ## 5. Experiment: 100 digits, three ways
#
# The same DCGAN (16×16 digits; G: transposed convs 1 → 4 → 8 → 16, D: strided convs 16 → 8 → 4 → 1),
# the same seed, Adam (lr 2e-3, betas (0.5, 0.999); a large rate, so that the story fits in a few
# thousand iterations), batch 32, trained on the 100 images above:
#
# | setup | D's step sees | G's step sees |
# |---|---|---|
# | (i) no augmentation | $x$, $G(z)$ | $G(z)$ |
# | (ii) augment reals only | $T(x)$, $G(z)$ | $G(z)$ |
# | (iii) DiffAugment | $T(x)$, $T(G(z))$ | $T(G(z))$ |
#
# Every few iterations we measure D's mean output on the 100 **training** reals and on 500
# **held-out** reals, as a probability $\sigma(D(x))$ and as a logit $D(x)$. Both sets are real
# digits: a discriminator that has learned what digits look like scores them alike; one that has
# memorised its training set scores the held-out ones as more fake. The logit gap
# $\overline{D(x_\text{train})} - \overline{D(x_\text{held-out})}$ measures that memorisation (the
# sigmoid squashes it once D is confident). We
# sample from an exponential moving average of G's weights and score the samples with the
# **digit-feature Fréchet distance** (`effcourse.metrics.frechet_distance`: the FID formula
# $\lVert\mu_r-\mu_g\rVert^2 + \mathrm{Tr}(\Sigma_r + \Sigma_g - 2(\Sigma_r\Sigma_g)^{1/2})$ on the 64-d features
# of a small digit classifier that ships with the course, **not** Inception FID: compare its
# numbers with each other, never with the paper's).

# %%
setups = {
    "no augmentation": dict(augment=None, real_transform=None),
    "augment reals only": dict(augment=None, real_transform=diff_augment),
    "DiffAugment": dict(augment=diff_augment, real_transform=None),
}
runs = {}


def frechet_of(G_ema):
    """Digit-feature Fréchet distance of the EMA generator's samples to all real digits."""
    return metrics.frechet_distance(all_digits, G_ema.sample(N_SAMPLES, generator=torch.Generator().manual_seed(SEED + 1)))


def run(name, iters):
    """Train one setup from the same initial weights and seed; keep its history and EMA samples."""
    t0 = time.perf_counter()
    G, D = dcgan.make_gan(ngf=NGF, ndf=NDF, seed=SEED)
    G_ema, hist = dcgan.train_gan(G, D, data.images, d_loss, g_loss, **setups[name], heldout=heldout, iters=iters,
                                  lr=LR, probe_every=PROBE_EVERY, seed=SEED, device=device, desc=name,
                                  evaluate=frechet_of, eval_every=min(EVAL_EVERY, iters))
    samples = G_ema.sample(N_SAMPLES, generator=torch.Generator().manual_seed(SEED + 1))
    runs[name] = {"hist": hist, "samples": samples, "fd": hist.evals[-1]}
    print(f"{name}: {iters} iterations in {time.perf_counter() - t0:.0f} s")


run("no augmentation", ITERS)

# %%
run("augment reals only", REALS_ONLY_ITERS)

# %%
run("DiffAugment", ITERS)

# %%
colors = {"no augmentation": "tab:red", "augment reals only": "tab:orange", "DiffAugment": "tab:blue"}
fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(15, 3.8))
for name, r in runs.items():
    h = r["hist"]
    ax1.plot(h.steps, h.d_train, color=colors[name], label=f"{name}: training reals")
    ax1.plot(h.steps, h.d_heldout, color=colors[name], ls="--", label=f"{name}: held-out reals")
    ax2.plot(h.steps, h.logit_gap, color=colors[name], label=name)
    ax3.plot(h.eval_steps, h.evals, color=colors[name], marker="o", label=name)
ax1.set(xlabel="iteration", ylabel="mean sigmoid(D(x))", title="D's output on real digits")
ax2.set(xlabel="iteration", ylabel="mean logit: training - held-out", title="the memorisation gap")
ax3.set(xlabel="iteration", ylabel="digit-feature Fréchet distance", title="sample quality (lower is better)",
        yscale="log")
ax2.axhline(0, color="gray", lw=1)
for ax in (ax1, ax2, ax3):
    ax.grid(alpha=0.3)
ax1.legend(fontsize=7)
ax2.legend(fontsize=8)
ax3.legend(fontsize=8)
plt.tight_layout()
plt.show()

# %%
fig, axes = plt.subplots(1, 4, figsize=(14, 3.6))
plots.image_grid(data.images[:48], nrow=8, ax=axes[0], title="training reals", vmin=-1, vmax=1)
for ax, (name, r) in zip(axes[1:], runs.items()):
    plots.image_grid(r["samples"][:48], nrow=8, ax=ax, title=name, vmin=-1, vmax=1)
plt.tight_layout()
plt.show()

# %% [markdown]
# The scores. Read the Fréchet distance against its **finite-sample floor**, computed below on real
# data with the same numbers of images: two disjoint halves of the real digits do not score 0, and a
# "generator" that perfectly memorised the 100 training images (it returns them, at random) scores
# well above that floor — the best any model of these 100 images could do without generalising.
# The artifact rate counts samples with a zeroed (grey) 4×4 square or a zeroed edge row or column.

# %%
gen = torch.Generator().manual_seed(SEED)
perm = torch.randperm(len(all_digits), generator=gen)
half = len(all_digits) // 2
floor_halves = metrics.frechet_distance(all_digits[perm[:half]], all_digits[perm[half:]])
memoriser = data.images[torch.randint(0, len(data.images), (N_SAMPLES,), generator=gen)]
floor_memoriser = metrics.frechet_distance(all_digits, memoriser)

rows, fd, gap, art = [], {}, {}, {}
for name, r in runs.items():
    h = r["hist"]
    n_last = max(1, len(h.steps) // 5)     # average D's logit gap over the last 20 % of probes
    fd[name] = r["fd"]
    gap[name] = sum(h.logit_gap[-n_last:]) / n_last
    art[name] = dcgan.artifact_rate(r["samples"])
    rows.append({"setup": name, "Fréchet distance": fd[name], "σ(D) train": h.d_train[-1], "σ(D) held-out": h.d_heldout[-1],
                 "D logit gap": gap[name], "zero squares %": 100 * art[name]["square"], "zero borders %": 100 * art[name]["edge"]})
real_art = dcgan.artifact_rate(all_digits)
rows.append({"setup": "real digits (memoriser)", "Fréchet distance": floor_memoriser,
             "zero squares %": 100 * real_art["square"], "zero borders %": 100 * real_art["edge"]})
rows.append({"setup": "real digits (two halves)", "Fréchet distance": floor_halves})
plots.table(rows, floatfmt=".3g", title=f"100-shot digits, {ITERS} iterations "
            f"({REALS_ONLY_ITERS} for reals-only augmentation)")

effcourse.record("fd_none", fd["no augmentation"])
effcourse.record("fd_reals_only", fd["augment reals only"])
effcourse.record("fd_diffaugment", fd["DiffAugment"])
effcourse.record("gap_none", gap["no augmentation"])
effcourse.record("gap_reals_only", gap["augment reals only"])
effcourse.record("gap_diffaugment", gap["DiffAugment"])
effcourse.record("artifacts_none", art["no augmentation"]["any"])
effcourse.record("artifacts_reals_only", art["augment reals only"]["any"])
effcourse.record("artifacts_diffaugment", art["DiffAugment"]["any"])
effcourse.record("fd_floor_halves", floor_halves)
effcourse.record("fd_floor_memoriser", floor_memoriser)
lab6.check_claims(fd, gap)

# %% [markdown]
# ## 6. Paper vs. you

# %%
plots.table([
    {"setting": "100-shot Obama (StyleGAN2), FID", "paper: no aug. → DiffAugment": "80.20 → 46.87",
     "you": f"100-shot digits, digit-feature FD {fd['no augmentation']:.1f} → {fd['DiffAugment']:.1f}"},
    {"setting": "100-shot Grumpy Cat, FID", "paper: no aug. → DiffAugment": "48.90 → 27.08", "you": ""},
    {"setting": "CIFAR-10 with 10 % of the data, FID", "paper: no aug. → DiffAugment": "36.02 → 14.50", "you": ""},
    {"setting": "D's train − held-out output gap", "paper: no aug. → DiffAugment": "large → small (their Fig. 1)",
     "you": f"{gap['no augmentation']:.2f} → {gap['DiffAugment']:.2f}"},
    {"setting": "augmenting reals only", "paper: no aug. → DiffAugment": "artifacts leak into samples",
     "you": f"{100 * art['augment reals only']['any']:.0f} % of samples with a zero square/border "
            f"(DiffAugment: {100 * art['DiffAugment']['any']:.0f} %)"},
], title="Paper vs. you")

# %% [markdown]
# Read the curves from left to right. Early on, DiffAugment is *worse*: its generator learns against
# a harder, noisier discriminator, and the memorisation it prevents has not happened yet (with
# these settings the two Fréchet curves cross at about 2000–2500 iterations). Then the
# un-augmented discriminator's logit
# gap keeps growing, and its generator's samples drift towards copies and blends of the 100
# training digits: its Fréchet distance turns upwards while DiffAugment's keeps falling. In full
# mode (`QUICK = False`) every run is 6000 iterations long and the divergence is larger.
#
# ## 7. Questions
#
# **Q1 (9 points).** In setup (ii) the generator draws grey backgrounds, grey patches and faded or
# shifted digits, although no training image looks like that. Explain, in terms of what the discriminator learns, why augmenting only the
# reals makes the generator reproduce the augmentation — and why applying the *same* $T$ to the
# fakes, in both steps, removes the incentive.

# %% [markdown] nbgrader={"grade": true, "grade_id": "q1_reals_only", "locked": false, "points": 9, "schema_version": 3, "solution": true, "task": false}
# With reals-only augmentation, D learns the distribution of $T(x)$: "real" images sometimes carry a
# zeroed square, a zero border, a lifted (grey) background or a changed contrast. G is trained to make D call $G(z)$ real with no $T$ applied to its
# output, so the optimum for G is to match the distribution of $T(x)$, artifacts included — the
# augmentation has changed the target distribution. With DiffAugment D only ever compares $T(x)$ with
# $T(G(z))$: if G's images are distributed like the real ones, the augmented versions are identically
# distributed too, so G is optimal at $p_G = p_{data}$ (for an invertible-in-distribution $T$) and
# drawing artifacts itself would only double them up and be detected.

# %% [markdown]
# **Q2 (9 points).** Using your plot of D's outputs: what does the gap between D's output on training
# reals and on held-out reals measure, why does it stay small with DiffAugment, and why does a large
# gap hurt the *generator* (not just the discriminator)?

# %% [markdown] nbgrader={"grade": true, "grade_id": "q2_gap", "locked": false, "points": 9, "schema_version": 3, "solution": true, "task": false}
# Both sets are real digits, so a D that judges "digit-likeness" scores them alike; the gap measures
# how much D relies on recognising the particular 100 training images (memorisation, i.e. D's
# overfitting). With DiffAugment D sees every training image under a fresh random colour, shift and
# cutout at every step, so memorising pixels does not pay; it must learn features that survive the
# augmentations and generalise to unseen digits. A memorising D rewards G only for reproducing the
# training images exactly and gives uninformative, saturated gradients elsewhere, so G's samples
# collapse towards copies or blends of the training set and the quality (Fréchet distance to all
# digits) gets worse with further training.
