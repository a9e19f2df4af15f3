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
# in *both* the discriminator's and the generator's step, and the R1 penalty taken through the
# augmentation as the official low-shot code does. Then you will train the same small GAN on
# just 100 digits four ways — no augmentation, and the lecture's three ways to augment a GAN: the
# reals only, reals and fakes in the discriminator's step only, DiffAugment — and watch the
# discriminator memorise its training set, the generator learn to draw augmentation artifacts, the
# unbalanced game go wrong, and DiffAugment fix all three.
#
# **Time:** about 90 minutes. **Paper:** Zhao, Liu, Lin, Zhu, Han, *Differentiable Augmentation for
# Data-Efficient GAN Training*, NeurIPS 2020 (official code: `mit-han-lab/data-efficient-gans`).
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
# >>> effcourse bootstrap (hosted notebooks: docs/HOSTED.md)
# On Colab or a JupyterHub without effcourse this cell installs it; everywhere else it does nothing.
EFFCOURSE_VERSION, EFFCOURSE_WHEEL = "0.1.0", None  # wheel: a URL or path your instructor may set
import importlib.util
if importlib.util.find_spec("effcourse") is None:  # not installed: install the kit's wheel, keep torch
    import glob, importlib.metadata, re, subprocess, sys
    pattern = f"effcourse-{EFFCOURSE_VERSION}-*.whl"
    found = glob.glob(pattern) + glob.glob(f"../../wheels/{pattern}") + [None]
    wheel = EFFCOURSE_WHEEL or found[0]
    if wheel is None:
        raise ModuleNotFoundError(f"no effcourse here and no {pattern} beside this notebook: docs/HOSTED.md")
    pip = [sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    subprocess.run(pip + ["--no-deps", wheel], check=True)
    importlib.invalidate_caches()
    skip = ("torch", "torchvision", "jupyterlab", "nbgrader", "papermill")  # the platform's torch stays
    needs = [r for r in importlib.metadata.requires("effcourse") or []
             if "extra ==" not in r and re.match(r"[\w.-]+", r)[0].lower() not in skip]
    subprocess.run(pip + needs, check=True)
# <<< effcourse bootstrap

# %%
import time

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F

import effcourse
from effcourse import metrics, plots
from effcourse.checks import lab6
from effcourse.data.digits import few_shot, load_digits
from effcourse.gan import dcgan
from effcourse.training import Loop

# %% tags=["parameters"]
QUICK = False
SEED = 0
DEVICE = "auto"

# %%
QUICK, device = effcourse.setup(QUICK, SEED, DEVICE)
N_SHOT = 100                                                   # training images: 10 per class
ITERS = effcourse.pick(full=6000, quick=1800, smoke=4)         # GAN iterations (batch 32): no augmentation, DiffAugment
SHORT_ITERS = effcourse.pick(full=6000, quick=500, smoke=4)    # ... the two flawed ways (their failure shows early)
NGF, NDF = 12, 32                                              # generator / discriminator widths
LR = 2e-3                                                      # Adam learning rate of both nets (betas 0.5, 0.999)
N_SAMPLES = effcourse.pick(full=2000, quick=1000, smoke=64)    # samples for the Fréchet distance
N_HELDOUT = effcourse.pick(full=500, quick=300, smoke=50)      # held-out reals D is probed on
PROBE_EVERY = effcourse.pick(full=250, quick=100, smoke=2)     # how often D's outputs are measured
EVAL_EVERY = effcourse.pick(full=500, quick=500, smoke=2)      # how often the Fréchet distance is measured

# %% tags=["experiment"]
data = few_shot(N_SHOT, size=16, seed=SEED)
all_digits, _ = load_digits(16)
heldout = data.heldout_images[:N_HELDOUT]     # real digits D never trains on
print(f"{len(data.images)} training images, {len(heldout)} held-out reals for D's probes, "
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
# `(N, 1, 1, 1)` so that they broadcast, on `x`'s device and dtype. Return a new tensor: the input
# batch must stay as it was (the training loop still needs it).

# %% nbgrader={"grade": false, "grade_id": "rand_brightness", "locked": false, "schema_version": 3, "solution": true, "task": false}
def rand_brightness(x):
    """Add one random offset b ~ U[-0.5, 0.5) per sample to every channel and pixel.

    x: (N, C, H, W). Returns a new tensor of the same shape and dtype (x is left unchanged);
    differentiable w.r.t. x.
    """
    ### BEGIN SOLUTION
    b = torch.rand(x.shape[0], 1, 1, 1, dtype=x.dtype, device=x.device) - 0.5
    return x + b
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_rand_brightness", "locked": true, "points": 6, "schema_version": 3, "solution": false, "task": false}
from effcourse.checks import lab6

lab6.check_rand_brightness(rand_brightness)
### BEGIN HIDDEN TESTS
import torch
from effcourse import judge
from effcourse.checks import lab6 as _lab6
from effcourse.checks.asserts import assert_close as _close, assert_true as _true, call as _call

with lab6.seed_in_failures(lab6.clock_seed()) as _seed:
    judge.manual_seed(_seed)
    for _shp, _dt in [((7, 3, 5, 6), torch.float64), ((2, 1, 9, 4), torch.float32), ((1, 2, 3, 3), torch.float64),
                      ((5, 4, 1, 1), torch.float32)]:
        _x = torch.randn(_shp, dtype=_dt)
        _off = (_lab6.run_augment("rand_brightness", rand_brightness, _x) - _x).double().flatten(1)
        _true((_off.amax(1) - _off.amin(1)).max() < 1e-5, f"rand_brightness on {_shp}: one offset per sample expected")
    _x = torch.randn(4000, 1, 2, 3, dtype=torch.float64)
    _off = (_lab6.run_augment("rand_brightness", rand_brightness, _x) - _x)[:, 0, 0, 0]
    _true(_off.min() >= -0.5 and _off.max() < 0.5, f"offsets outside [-0.5, 0.5): [{_off.min():.3f}, {_off.max():.3f}]")
    _true(_off.min() < -0.49 and _off.max() > 0.49, f"offsets must cover [-0.5, 0.5): [{_off.min():.3f}, {_off.max():.3f}]")
    _lab6.assert_uniform("rand_brightness offsets, in 10 bins of [-0.5, 0.5)", ((_off + 0.5) * 10).floor(), range(10))
    _true(len(set(_off.tolist())) > 3900, "identical images must get independent offsets")
    _x = torch.rand(4, 2, 3, 5, dtype=torch.float64, requires_grad=True)
    _w = torch.randn(4, 2, 3, 5, dtype=torch.float64)
    (_call("rand_brightness", rand_brightness, _x) * _w).sum().backward()
    _close("d(sum(w * rand_brightness(x)))/dx = w", _x.grad, _w)
### END HIDDEN TESTS

# %% nbgrader={"grade": false, "grade_id": "rand_saturation", "locked": false, "schema_version": 3, "solution": true, "task": false}
def rand_saturation(x):
    """Scale each pixel's deviation from its channel mean by s ~ U[0, 2), one s per sample.

    x: (N, C, H, W). y = (x - m) * s + m with m = x.mean(dim=1, keepdim=True).
    Returns a new tensor of the same shape and dtype (x is left unchanged); differentiable w.r.t. x.
    """
    ### BEGIN SOLUTION
    m = x.mean(dim=1, keepdim=True)
    s = torch.rand(x.shape[0], 1, 1, 1, dtype=x.dtype, device=x.device) * 2
    return (x - m) * s + m
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_rand_saturation", "locked": true, "points": 6, "schema_version": 3, "solution": false, "task": false}
from effcourse.checks import lab6

lab6.check_rand_saturation(rand_saturation)
### BEGIN HIDDEN TESTS
import torch
from effcourse import judge
from effcourse.checks import lab6 as _lab6
from effcourse.checks.asserts import assert_close as _close, assert_true as _true, call as _call

with lab6.seed_in_failures(lab6.clock_seed()) as _seed:
    judge.manual_seed(_seed)
    for _shp, _dt in [((6, 3, 5, 4), torch.float64), ((3, 2, 7, 3), torch.float32), ((1, 5, 2, 2), torch.float64)]:
        _x = torch.rand(_shp, dtype=_dt)
        _y = _lab6.run_augment("rand_saturation", rand_saturation, _x)
        _f = _lab6.affine_factors(f"rand_saturation on {_shp}", _x, _y, _x.mean(1, keepdim=True),
                                  tol=1e-4 if _dt == torch.float64 else 1e-3)
        _true(((_f >= -1e-6) & (_f < 2)).all(), f"saturation factors outside [0, 2): {_f.tolist()}")
    _x = torch.rand(1, 3, 4, 4, dtype=torch.float64).expand(4000, 3, 4, 4).clone()
    _f = _lab6.affine_factors("rand_saturation", _x, _lab6.run_augment("rand_saturation", rand_saturation, _x),
                              _x.mean(1, keepdim=True))
    _true(_f.min() >= -1e-9 and _f.max() < 2 and _f.min() < 0.02 and _f.max() > 1.98,
          f"saturation factors must cover [0, 2): min {_f.min():.3f}, max {_f.max():.3f}")
    _lab6.assert_uniform("rand_saturation factors, in 10 bins of [0, 2)", (_f * 5).floor().clamp(0, 9), range(10))
    _g = torch.rand(3, 1, 5, 7)
    _close("rand_saturation on one channel (unchanged)", _lab6.run_augment("rand_saturation", rand_saturation, _g),
           _g, atol=1e-6)
    # the gradient of sum(w * y) is s * w + (1 - s) * (w's channel mean), with each sample's own s
    _x = torch.rand(4, 3, 3, 5, dtype=torch.float64, requires_grad=True)
    _w = torch.randn(4, 3, 3, 5, dtype=torch.float64)
    _y = _call("rand_saturation", rand_saturation, _x)
    (_y * _w).sum().backward()
    _f = _lab6.affine_factors("rand_saturation", _x, _y, _x.mean(1, keepdim=True)).view(-1, 1, 1, 1)
    _close("gradient of rand_saturation", _x.grad, _f * _w + (1 - _f) * _w.mean(1, keepdim=True), atol=1e-6)
### END HIDDEN TESTS

# %% nbgrader={"grade": false, "grade_id": "rand_contrast", "locked": false, "schema_version": 3, "solution": true, "task": false}
def rand_contrast(x):
    """Scale each image's deviation from its mean by c ~ U[0.5, 1.5), one c per sample.

    x: (N, C, H, W). y = (x - m) * c + m with m the mean of each image over C, H and W.
    Returns a new tensor of the same shape and dtype (x is left unchanged); differentiable w.r.t. x.
    """
    ### BEGIN SOLUTION
    m = x.mean(dim=(1, 2, 3), keepdim=True)
    c = torch.rand(x.shape[0], 1, 1, 1, dtype=x.dtype, device=x.device) + 0.5
    return (x - m) * c + m
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_rand_contrast", "locked": true, "points": 6, "schema_version": 3, "solution": false, "task": false}
from effcourse.checks import lab6

lab6.check_rand_contrast(rand_contrast)
### BEGIN HIDDEN TESTS
import torch
from effcourse import judge
from effcourse.checks import lab6 as _lab6
from effcourse.checks.asserts import assert_close as _close, assert_true as _true, call as _call

with lab6.seed_in_failures(lab6.clock_seed()) as _seed:
    judge.manual_seed(_seed)
    for _shp, _dt in [((6, 3, 5, 4), torch.float64), ((3, 1, 7, 3), torch.float32), ((2, 2, 1, 9), torch.float64)]:
        _x = torch.rand(_shp, dtype=_dt)
        _y = _lab6.run_augment("rand_contrast", rand_contrast, _x)
        _f = _lab6.affine_factors(f"rand_contrast on {_shp}", _x, _y, _x.mean((1, 2, 3), keepdim=True),
                                  tol=1e-4 if _dt == torch.float64 else 1e-3)
        _true(((_f >= 0.5 - 1e-6) & (_f < 1.5)).all(), f"contrast factors outside [0.5, 1.5): {_f.tolist()}")
    _x = torch.rand(1, 2, 4, 4, dtype=torch.float64).expand(4000, 2, 4, 4).clone()
    _f = _lab6.affine_factors("rand_contrast", _x, _lab6.run_augment("rand_contrast", rand_contrast, _x),
                              _x.mean((1, 2, 3), keepdim=True))
    _true(_f.min() >= 0.5 - 1e-9 and _f.max() < 1.5 and _f.min() < 0.51 and _f.max() > 1.49,
          f"contrast factors must cover [0.5, 1.5): min {_f.min():.3f}, max {_f.max():.3f}")
    _lab6.assert_uniform("rand_contrast factors, in 10 bins of [0.5, 1.5)", ((_f - 0.5) * 10).floor().clamp(0, 9),
                         range(10))
    # the gradient of sum(w * y) is c * w + (1 - c) * (w's image mean), with each sample's own c
    _x = torch.rand(4, 2, 3, 5, dtype=torch.float64, requires_grad=True)
    _w = torch.randn(4, 2, 3, 5, dtype=torch.float64)
    _y = _call("rand_contrast", rand_contrast, _x)
    (_y * _w).sum().backward()
    _f = _lab6.affine_factors("rand_contrast", _x, _y, _x.mean((1, 2, 3), keepdim=True)).view(-1, 1, 1, 1)
    _close("gradient of rand_contrast", _x.grad, _f * _w + (1 - _f) * _w.mean((1, 2, 3), keepdim=True), atol=1e-6)
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
# with $s_H = \lfloor H\cdot\text{ratio} + 0.5\rfloor$ for the rows and $s_W = \lfloor W\cdot\text{ratio} +
# 0.5\rfloor$ for the columns (2 pixels for 16×16 images at the default ratio 1/8; a 16×8 image may move
# 2 rows but only 1 column). Each sample draws its two offsets independently and uniformly — as the
# official code does, one `torch.randint` per axis.
#
# **Cutout** zeroes one rectangle of $s_H = \lfloor H\cdot\text{ratio} + 0.5\rfloor$ rows by
# $s_W = \lfloor W\cdot\text{ratio} + 0.5\rfloor$ columns (8×8 on 16×16 at the default ratio 1/2). Its
# centre row $c^y$ is uniform on $\{0, 1, \dots, H - (s_H \bmod 2)\}$ and it covers rows
# $c^y - \lfloor s_H/2\rfloor, \dots, c^y - \lfloor s_H/2\rfloor + s_H - 1$; the columns likewise, with an
# independent $c^x$. The part outside the image is clipped away, so a rectangle centred near an edge is
# only partly visible. (Why $H + 1$ centres when $s_H$ is even: the centre of an even-sized rectangle
# lies between two pixels, and there are $H + 1$ such lines, borders included. Either way, every
# placement that keeps at least half of the rectangle's rows in the image — rounded up — is equally
# likely, so the top and bottom edges are cut equally often. This is what the official code does.)
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
    {-s_W, ..., s_W} with s_W = int(W * ratio + 0.5), drawn independently per sample and per axis;
    all channels of a sample move together. Returns a new tensor of the same shape and dtype
    (x is left unchanged); differentiable w.r.t. x.
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
from effcourse.checks import lab6

lab6.check_rand_translation(rand_translation)
### BEGIN HIDDEN TESTS
import torch
from effcourse import judge
from effcourse.checks import lab6 as _lab6
from effcourse.checks.asserts import assert_close as _close, assert_true as _true, call as _call

with lab6.seed_in_failures(lab6.clock_seed()) as _seed:
    judge.manual_seed(_seed)
    # one whole-pixel shift per sample, zero fill, within the per-axis bounds (odd, non-square sizes)
    for _shp, _r in [((5, 2, 16, 16), 0.125), ((4, 3, 10, 14), 0.25), ((3, 1, 8, 8), 0.3), ((6, 2, 7, 5), 0.2),
                     ((2, 1, 11, 11), 0.125), ((1, 1, 16, 8), 0.25), ((3, 2, 9, 13), 0.25)]:
        _n, _c, _h, _w = _shp
        _sh, _sw = int(_h * _r + 0.5), int(_w * _r + 0.5)
        _y = _lab6.run_augment("rand_translation", rand_translation, _lab6.code_images(*_shp), ratio=_r)
        _dy, _dx = _lab6.decode_shifts(f"rand_translation on {_shp}, ratio {_r}", _y)
        _true(_dy.abs().max() <= _sh and _dx.abs().max() <= _sw,
              f"rand_translation on {_shp}, ratio {_r}: rows may move by at most s_H = {_sh} and columns by at most "
              f"s_W = {_sw}; got row shifts {sorted(set(_dy.tolist()))}, column shifts {sorted(set(_dx.tolist()))}")
    # the exact ranges, per axis: rows -s_H..s_H, columns -s_W..s_W, uniform and independent
    for _shp, _r in [((4000, 1, 16, 8), 0.25), ((3000, 1, 10, 14), 0.25), ((3000, 1, 8, 8), 0.25)]:
        _n, _c, _h, _w = _shp
        _sh, _sw = int(_h * _r + 0.5), int(_w * _r + 0.5)
        _y = _lab6.run_augment("rand_translation", rand_translation, _lab6.code_images(*_shp, dtype=torch.float32),
                               ratio=_r)
        _dy, _dx = _lab6.decode_shifts(f"rand_translation on {_shp}", _y)
        _lab6.assert_uniform(f"rand_translation ({_h}x{_w}, ratio {_r}): row shifts", _dy, range(-_sh, _sh + 1))
        _lab6.assert_uniform(f"rand_translation ({_h}x{_w}, ratio {_r}): column shifts", _dx, range(-_sw, _sw + 1))
        _lab6.assert_joint_uniform(f"rand_translation ({_h}x{_w}, ratio {_r}): (row, column) shifts", _dy, _dx,
                                   range(-_sh, _sh + 1), range(-_sw, _sw + 1))
    # gradient: 1 on the pixels that stay in view, 0 elsewhere
    _x = (torch.rand(3, 2, 6, 7) + 0.5).requires_grad_(True)
    _y = _call("rand_translation", rand_translation, _x, ratio=0.34)
    _y.sum().backward()
    _true(_x.grad is not None and set(_x.grad.unique().tolist()) <= {0.0, 1.0}
          and int(_x.grad.sum()) == int((_y != 0).sum()), "the gradient must be 1 on the pixels that stay in view, 0 elsewhere")
### END HIDDEN TESTS

# %% nbgrader={"grade": false, "grade_id": "rand_cutout", "locked": false, "schema_version": 3, "solution": true, "task": false}
def rand_cutout(x, ratio=0.5):
    """Zero one rectangle per sample: s_H = int(H*ratio+0.5) rows by s_W = int(W*ratio+0.5) columns.

    Its centre (c_y, c_x) is drawn per sample, c_y uniform on {0, ..., H - s_H % 2} and c_x uniform on
    {0, ..., W - s_W % 2}, independently; it covers rows c_y - s_H // 2 ... c_y - s_H // 2 + s_H - 1
    and columns likewise, clipped at the image border; the same rectangle in every channel.
    x: (N, C, H, W). Returns a new tensor of the same shape and dtype (x is left unchanged);
    differentiable w.r.t. x.
    """
    ### BEGIN SOLUTION
    n, c, h, w = x.shape
    sh, sw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    cy = torch.randint(0, h + 1 - sh % 2, (n, 1, 1), device=x.device)
    cx = torch.randint(0, w + 1 - sw % 2, (n, 1, 1), device=x.device)
    y0, x0 = cy - sh // 2, cx - sw // 2                                  # first row / column (may be < 0)
    rows = torch.arange(h, device=x.device).view(1, h, 1)
    cols = torch.arange(w, device=x.device).view(1, 1, w)
    cut = (rows >= y0) & (rows < y0 + sh) & (cols >= x0) & (cols < x0 + sw)   # (n, h, w), clipped for free
    return x * (~cut).unsqueeze(1).to(x.dtype)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_rand_cutout", "locked": true, "points": 14, "schema_version": 3, "solution": false, "task": false}
from effcourse.checks import lab6

lab6.check_rand_cutout(rand_cutout)
### BEGIN HIDDEN TESTS
import torch
from effcourse import judge
from effcourse.checks import lab6 as _lab6
from effcourse.checks.asserts import assert_close as _close, assert_true as _true, call as _call

with lab6.seed_in_failures(lab6.clock_seed()) as _seed:
    judge.manual_seed(_seed)
    # one s_H x s_W rectangle per sample, the same in every channel, clipped at the border (odd, non-square sizes)
    for _shp, _r in [((40, 2, 16, 16), 0.5), ((40, 1, 9, 9), 0.5), ((40, 3, 10, 7), 0.4), ((40, 1, 6, 12), 0.5),
                     ((40, 1, 11, 11), 0.3), ((40, 2, 10, 14), 0.25)]:
        _n, _c, _h, _w = _shp
        _sh, _sw = int(_h * _r + 0.5), int(_w * _r + 0.5)
        _x = torch.rand(_shp, dtype=torch.float64) + 0.5
        _cut = _lab6.cut_rectangles(f"rand_cutout on {_shp}, ratio {_r} (s_H = {_sh}, s_W = {_sw})", _x,
                                    _lab6.run_augment("rand_cutout", rand_cutout, _x, ratio=_r), (_sh, _sw))
    # where the rectangle lands: first row/column uniform on every placement the contract allows, rows and
    # columns independent; partly visible rectangles at all four edges; the mean zeroed area
    for _shp, _r in [((4000, 1, 16, 16), 0.5), ((4000, 1, 7, 10), 0.4)]:
        _n, _c, _h, _w = _shp
        _sh, _sw = int(_h * _r + 0.5), int(_w * _r + 0.5)
        _x = torch.ones(_shp, dtype=torch.float32)
        _cut = _lab6.cut_rectangles(f"rand_cutout on {_shp}, ratio {_r}", _x,
                                    _lab6.run_augment("rand_cutout", rand_cutout, _x, ratio=_r), (_sh, _sw))
        _tops, _lefts = range(-(_sh // 2), _h - (_sh + 1) // 2 + 1), range(-(_sw // 2), _w - (_sw + 1) // 2 + 1)
        _lab6.assert_uniform(f"rand_cutout ({_h}x{_w}, ratio {_r}): the rectangle's first row (centre row - s_H // 2)",
                             _cut["top"], _tops)
        _lab6.assert_uniform(f"rand_cutout ({_h}x{_w}, ratio {_r}): the rectangle's first column", _cut["left"], _lefts)
        if len(_tops) * len(_lefts) <= 100:
            _lab6.assert_joint_uniform(f"rand_cutout ({_h}x{_w}, ratio {_r}): (first row, first column)", _cut["top"],
                                       _cut["left"], _tops, _lefts)
        _vis_r = torch.tensor([min(_h, _t + _sh) - max(0, _t) for _t in _tops], dtype=torch.float64)
        _vis_c = torch.tensor([min(_w, _l + _sw) - max(0, _l) for _l in _lefts], dtype=torch.float64)
        _mean = float(_vis_r.mean() * _vis_c.mean())
        _area = _cut["area"].double()
        _true(abs(float(_area.mean()) - _mean) < 6 * float(_area.std()) / len(_area) ** 0.5 + 1e-9,
              f"rand_cutout ({_h}x{_w}, ratio {_r}): mean zeroed area {float(_area.mean()):.2f} pixels, expected "
              f"{_mean:.2f} for a rectangle placed as the contract says")
    _x = (torch.rand(3, 2, 8, 9) + 0.5).requires_grad_(True)
    _y = _call("rand_cutout", rand_cutout, _x)
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
    "cutout" = rand_cutout (default ratios). "" is the identity. Unknown names raise ValueError
    naming them. x: (N, C, H, W); returns the same shape and dtype (x is left unchanged);
    differentiable w.r.t. x.
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


# %% nbgrader={"grade": true, "grade_id": "test_diff_augment", "locked": true, "points": 8, "schema_version": 3, "solution": false, "task": false}
# (the policy tests call your rand_* functions too: the order checks need colour, translation and cutout)
from effcourse.checks import lab6

lab6.check_diff_augment(diff_augment)
### BEGIN HIDDEN TESTS
import torch
import torch.nn.functional as F
from effcourse import judge
from effcourse.checks import lab6 as _lab6
from effcourse.checks.asserts import assert_close as _close, assert_true as _true, call as _call

with lab6.seed_in_failures(lab6.clock_seed()) as _seed:
    judge.manual_seed(_seed)
    for _shp in [(3, 1, 16, 16), (2, 3, 9, 7)]:
        _x = torch.randn(_shp)
        _close(f'diff_augment(x, "") on {_shp}', _call("diff_augment", diff_augment, _x, policy=""), _x)
        _lab6.run_augment("diff_augment", diff_augment, _x)
    # "translation" alone: one whole-pixel shift per sample, default ratio 1/8 (-2..2 on 16x16)
    _y = _lab6.run_augment('diff_augment(x, "translation")', diff_augment,
                           _lab6.code_images(600, 1, 16, 16, dtype=torch.float32), policy="translation")
    _dy, _dx = _lab6.decode_shifts('diff_augment(x, "translation")', _y)
    _lab6.assert_uniform('diff_augment(x, "translation") on 16x16: row shifts', _dy, range(-2, 3))
    _lab6.assert_uniform('diff_augment(x, "translation") on 16x16: column shifts', _dx, range(-2, 3))
    # "cutout" alone: default ratio 1/2 (an 8x8 square on 16x16, clipped at the border)
    _x = torch.ones(600, 1, 16, 16)
    _cut = _lab6.cut_rectangles('diff_augment(x, "cutout") on 16x16', _x,
                                _lab6.run_augment('diff_augment(x, "cutout")', diff_augment, _x, policy="cutout"),
                                (8, 8))
    _lab6.assert_uniform('diff_augment(x, "cutout") on 16x16: first row of the square', _cut["top"], range(-4, 13))
    # order: colour after cutout leaves no exact zeros; cutout after colour leaves a zero rectangle in each sample
    _x = torch.rand(64, 1, 16, 16) + 0.5
    _true(((_call("diff_augment", diff_augment, _x, "color,cutout") == 0).flatten(1).sum(1) >= 1).all(),
          '"color,cutout": the cutout (applied last) must leave zeros in every sample')
    _true((_call("diff_augment", diff_augment, _x, "cutout,color") == 0).float().mean() < 0.01,
          '"cutout,color": colour is applied after the cutout, so the cut pixels must not stay exactly 0')
    _true(((_call("diff_augment", diff_augment, _x, "color,translation") == 0).flatten(1).sum(1) > 0).float().mean() > 0.5,
          '"color,translation": translation (last) must leave a zero border in most samples')
    # the default policy is colour, then translation, then cutout
    _y = _call("diff_augment", diff_augment, _x)
    _z = (_y == 0).float()
    _true((F.avg_pool2d(_z, 4, stride=1).flatten(1).amax(1) == 1).all(),
          "diff_augment(x) (default policy): every sample must show the cutout's zeroed square")
    _edge = (_z[:, 0, 0].amin(1) == 1) | (_z[:, 0, -1].amin(1) == 1) | (_z[:, 0, :, 0].amin(1) == 1) | (_z[:, 0, :, -1].amin(1) == 1)
    _true(_edge.float().mean() > 0.75, f"diff_augment(x) (default policy): translation must leave a zeroed border row "
          f"or column in most samples; {100 * _edge.float().mean():.0f} % had one")
    # colour on one channel is a per-sample affine map with slope in [0.5, 1.5) (contrast) and a random offset
    _x = torch.rand(400, 1, 5, 5, dtype=torch.float64)
    _y = _lab6.run_augment('diff_augment(x, "color")', diff_augment, _x, policy="color")
    _slope = _lab6.affine_factors('diff_augment(x, "color") on one channel', _x - _x.mean((1, 2, 3), keepdim=True),
                                  _y - _y.mean((1, 2, 3), keepdim=True), torch.zeros(()))
    _true((_slope >= 0.5 - 1e-9).all() and (_slope < 1.5).all() and _slope.std() > 0.1,
          f'"color" on grey images: expected contrast factors in [0.5, 1.5); got {_slope.min():.3f}..{_slope.max():.3f}')
    _true((_y.mean((1, 2, 3)) - _x.mean((1, 2, 3))).std() > 0.1, '"color" must include the brightness offset')
    # colour on three channels scales each pixel's deviation from its channel mean by saturation * contrast
    _x = torch.rand(400, 3, 4, 4, dtype=torch.float64)
    _y = _lab6.run_augment('diff_augment(x, "color")', diff_augment, _x, policy="color")
    _f = _lab6.affine_factors('diff_augment(x, "color"): deviation from the channel mean', _x - _x.mean(1, keepdim=True),
                              _y - _y.mean(1, keepdim=True), torch.zeros(()))
    _true((_f >= -1e-9).all() and (_f < 3).all() and (_f < 0.3).any() and (_f > 1.7).any(),
          f'"color" must include saturation (factor s*c in [0, 3)); got {_f.min():.3f}..{_f.max():.3f}')
    _x = torch.rand(5, 3, 16, 16, requires_grad=True)
    _call("diff_augment", diff_augment, _x).sum().backward()
    _true(_x.grad is not None and torch.isfinite(_x.grad).all() and _x.grad.abs().sum() > 0,
          "diff_augment: no gradient reached x")
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "test_diff_augment_errors", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
from effcourse.checks import lab6

lab6.check_diff_augment_errors(diff_augment)
### BEGIN HIDDEN TESTS
import torch
from effcourse.checks.asserts import assert_true as _true

for _bad in ["blur", "color,colour", "translation,cutout,zoom"]:
    try:
        diff_augment(torch.rand(2, 1, 8, 8), policy=_bad)
    except ValueError as _err:
        _name = _bad.split(",")[-1]
        _true(_name in str(_err), f"the error for policy {_bad!r} must name {_name!r}; got: {_err}")
    except NotImplementedError:
        raise
    except Exception as _err:  # noqa: BLE001
        raise AssertionError(f"diff_augment(x, {_bad!r}) must raise ValueError, got {type(_err).__name__}: {_err}") \
            from None
    else:
        raise AssertionError(f"diff_augment(x, {_bad!r}) must raise ValueError")
### END HIDDEN TESTS

# %% [markdown]
# Here is what the discriminator will see: each row is one training digit under eight draws of the
# full policy. The grey squares and borders are zeros (a mid-grey in [-1, 1]; the digits'
# background is -1).

# %% tags=["experiment"]
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
#   from $D$ through $T$ into $G(z)$.
#
# Only G's step needs a differentiable $T$. In D's step the fake is detached, so nothing is
# backpropagated through $T$ at all: *any* augmentation, even a non-differentiable one (NumPy, PIL),
# could transform both the reals and the fakes there. That is the lecture's **Approach 2** — augment
# reals and fakes for D only, and let G's step see the un-augmented $D(G(z))$ — experiment (iii) below.
# It needs no gradient through $T$, but it unbalances the game: D is trained to judge augmented images,
# while G is scored by the same D on un-augmented ones it never learns to judge; the lecture: "the
# unbalanced optimization cripples training". Applying $T$ in G's step too (**Approach 3**,
# DiffAugment) restores the balance, and *that* is why $T$ must be differentiable. Section 5
# measures the imbalance: D's mean logit on the same fakes un-augmented, $D(G(z))$ (what G's step
# is scored on in Approach 2), and augmented, $D(T(G(z)))$ (what D's step trains on).

# %% nbgrader={"grade": false, "grade_id": "d_loss", "locked": false, "schema_version": 3, "solution": true, "task": false}
def d_loss(D, real, fake, augment):
    """Discriminator loss: mean softplus(-D(augment(real))) + mean softplus(D(augment(fake))).

    D: module mapping (N, C, H, W) images to logits (N,). real, fake: image batches (sizes may differ).
    augment: a function on image batches (e.g. diff_augment, or the identity).
    The fake is detached: no gradient reaches the generator. Returns a scalar tensor.
    """
    ### BEGIN SOLUTION
    n = real.shape[0]
    logits = D(augment(torch.cat([real, fake.detach()])))   # one pass over reals and (detached) fakes
    return F.softplus(-logits[:n]).mean() + F.softplus(logits[n:]).mean()
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_d_loss", "locked": true, "points": 12, "schema_version": 3, "solution": false, "task": false}
from effcourse.checks import lab6

lab6.check_d_loss(d_loss)
### BEGIN HIDDEN TESTS
import torch
import torch.nn.functional as F
from effcourse import judge
from effcourse.checks import lab6 as _lab6
from effcourse.checks.asserts import assert_close as _close, assert_shape as _shape, assert_true as _true, call as _call

with lab6.seed_in_failures(lab6.clock_seed()) as _seed:
    judge.manual_seed(_seed)
    _aug = _lab6.AffineAugment(0.5, 0.3)                                   # deterministic, changes D's outputs
    _aug_yours = judge.build("effcourse.checks.lab6.AffineAugment", 0.5, 0.3)   # the same, where your code runs
    for _c, _nr, _nf, _hw in [(1, 6, 9, 8), (3, 4, 4, 5), (2, 1, 3, 7)]:
        _Dr = _lab6.ToyDiscriminator(_c)
        _Dy = judge.twin(_Dr, "effcourse.checks.lab6.ToyDiscriminator", _c)   # the same D, where your code runs
        _real = torch.randn(_nr, _c, _hw, _hw)
        _w = torch.ones(1, requires_grad=True)
        _fake = torch.randn(_nf, _c, _hw, _hw) * _w                            # the generator's output, in the graph
        _loss = _call("d_loss", d_loss, _Dy, _real, _fake, _aug_yours)
        _shape("d_loss", _loss, ())
        # the reference: both terms, with gradients into D from the reals AND the (detached) fakes
        _exp = F.softplus(-_Dr(_aug(_real))).mean() + F.softplus(_Dr(_aug(_fake.detach()))).mean()
        _close(f"d_loss (real {_nr}, fake {_nf})", _loss.detach(), _exp.detach(), atol=1e-5)
        _true(_loss.requires_grad, "d_loss: the loss must be differentiable with respect to D's parameters")
        _loss.backward()
        _exp.backward()
        _true(_w.grad is None or float(_w.grad.abs().sum()) == 0.0, "d_loss: detach the fake (gradient reached G)")
        for _p in ("conv.weight", "conv.bias", "lin.weight", "lin.bias"):
            _g = judge.get(_Dy, f"{_p}.grad")
            _true(_g is not None, f"d_loss: no gradient reached D's {_p}")
            _close(f"d_loss (real {_nr}, fake {_nf}): gradient of D's {_p} (both terms, the fake's included, must "
                   f"train D)", _g, judge.get(_Dr, f"{_p}.grad"), atol=1e-5)
    # augment is applied to both reals and fakes (and not to anything else)
    _rec = judge.build("effcourse.checks.lab6.RecordingAugment")
    _call("d_loss", d_loss, judge.build("effcourse.checks.lab6.ToyDiscriminator", 1), torch.randn(5, 1, 6, 6),
          torch.randn(7, 1, 6, 6), _rec)
    _calls = judge.get(_rec, "sizes")
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
from effcourse.checks import lab6

lab6.check_g_loss(g_loss)
### BEGIN HIDDEN TESTS
import torch
import torch.nn.functional as F
from effcourse import judge
from effcourse.checks import lab6 as _lab6
from effcourse.checks.asserts import assert_close as _close, assert_shape as _shape, assert_true as _true, call as _call

with lab6.seed_in_failures(lab6.clock_seed()) as _seed:
    judge.manual_seed(_seed)
    _aug = _lab6.AffineAugment(0.5, 0.3)                                   # deterministic, not the identity
    _aug_yours = judge.build("effcourse.checks.lab6.AffineAugment", 0.5, 0.3)   # the same, where your code runs
    for _c, _n, _hw in [(1, 9, 8), (3, 4, 5), (2, 1, 7)]:
        _Dr = _lab6.ToyDiscriminator(_c)
        _Dy = judge.twin(_Dr, "effcourse.checks.lab6.ToyDiscriminator", _c)   # the same D, where your code runs
        _fake = torch.randn(_n, _c, _hw, _hw, requires_grad=True)
        _loss = _call("g_loss", g_loss, _Dy, _fake, _aug_yours)
        _shape("g_loss", _loss, ())
        _f2 = _fake.detach().clone().requires_grad_(True)
        _exp = F.softplus(-_Dr(_aug(_f2))).mean()
        _close(f"g_loss (batch {_n})", _loss.detach(), _exp.detach(), atol=1e-5)
        _true(_loss.requires_grad, "g_loss: no gradient reached the fake (the generator's output)")
        _loss.backward()
        _exp.backward()
        _true(_fake.grad is not None, "g_loss: no gradient reached the fake (the generator's output)")
        _close("gradient of g_loss w.r.t. the fake (through augment: D(augment(fake)), all of it)", _fake.grad,
               _f2.grad, atol=1e-6)
### END HIDDEN TESTS

# %% [markdown]
# ### The R1 penalty, through $T$
#
# The official DiffAugment code trains StyleGAN2, whose discriminator loss adds the **R1 penalty**
# (Mescheder et al., 2018): $\frac{\gamma}{2}\,\mathbb{E}_x \lVert \nabla D \rVert^2$ on the reals,
# which keeps D's output flat around the data. With DiffAugment D sees $T(x)$, so there are two
# places to take the gradient, and the official code uses both:
#
# $$ R_1^{\text{through }T} = \mathbb{E}_x \Big\lVert \frac{\partial D(T(x))}{\partial x} \Big\rVert^2
#    \qquad\qquad R_1^{\text{after }T} = \mathbb{E}_x \Big\lVert \frac{\partial D(u)}{\partial u}\Big|_{u = T(x)} \Big\rVert^2 $$
#
# The low-shot runs (`run_low_shot.py` → `ns_DiffAugment_r1` in `DiffAugment-stylegan2/training/loss.py`,
# $\gamma = 10$) and the PyTorch port (`DiffAugment-stylegan2-pytorch/training/loss.py`, which sets
# `requires_grad` on the un-augmented reals before `run_D` augments them) take it **through** $T$:
# the gradient of D's augmented-real logits with respect to the un-augmented reals $x$, so it passes
# back through the augmentation (zero on the pixels cutout removed, shifted by translation, scaled by
# contrast). The CIFAR-10 and FFHQ runs (`ns_r1_DiffAugment`) take it **after** $T$, with respect to
# the augmented images. The paper's text does not distinguish the two; in this lab the low-shot way is
# the default. (This miniature's experiment trains without R1, $\gamma = 0$: its small D with a
# large learning rate is the DCGAN set-up the story needs; the penalty is an exercise on its own.)
#
# **Exercise.** `r1_penalty(D, real, augment, through_augment=True)`: draw $T$ once (one call of
# `augment`), and return the batch mean of the squared gradient norm (summed over C, H, W). The
# penalty must stay differentiable with respect to D's weights — compute the gradient with
# `torch.autograd.grad(..., create_graph=True)` — so that adding $\frac{\gamma}{2} R_1$ to D's loss
# trains D; it must not write D's `.grad` (that is the training step's job).

# %% nbgrader={"grade": false, "grade_id": "r1_penalty", "locked": false, "schema_version": 3, "solution": true, "task": false}
def r1_penalty(D, real, augment, through_augment=True):
    """R1 penalty on the reals: mean over the batch of |grad|^2, grad = d sum(D(augment(real))) / d v.

    D: module, images (N, C, H, W) -> logits (N,). real: (N, C, H, W), not modified.
    augment: called once, on the reals.
    through_augment=True: v = the un-augmented reals (the gradient passes back through augment;
        the official low-shot code). False: v = augment(real), the augmented images (CIFAR/FFHQ code).
    Returns a scalar tensor, differentiable w.r.t. D's parameters (create_graph); D's .grad is not
    written.
    """
    ### BEGIN SOLUTION
    x = real.detach().requires_grad_(True)
    if through_augment:
        v, logits = x, D(augment(x))
    else:
        v = augment(x).detach().requires_grad_(True)
        logits = D(v)
    (grad,) = torch.autograd.grad(logits.sum(), v, create_graph=True)
    return grad.square().sum(dim=(1, 2, 3)).mean()
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_r1_penalty", "locked": true, "points": 8, "schema_version": 3, "solution": false, "task": false}
from effcourse.checks import lab6

lab6.check_r1_penalty(r1_penalty)
### BEGIN HIDDEN TESTS
import torch
from effcourse import judge
from effcourse.checks import lab6 as _lab6
from effcourse.checks.asserts import assert_close as _close, assert_shape as _shape, assert_true as _true, call as _call

with lab6.seed_in_failures(lab6.clock_seed()) as _seed:
    judge.manual_seed(_seed)
    _aug = _lab6.AffineAugment(0.5, 0.3)                                   # deterministic; its Jacobian scales by 0.5
    _aug_yours = judge.build("effcourse.checks.lab6.AffineAugment", 0.5, 0.3)   # the same, where your code runs


    def _r1_ref(D, x, through):
        x = x.clone().requires_grad_(True)
        if through:
            v, out = x, D(_aug(x))
        else:
            v = _aug(x).detach().requires_grad_(True)
            out = D(v)
        (g,) = torch.autograd.grad(out.sum(), v, create_graph=True)
        return g.pow(2).flatten(1).sum(1).mean()


    for _c, _n, _h, _w in [(1, 6, 8, 8), (3, 4, 5, 7), (2, 1, 6, 5), (1, 9, 16, 16)]:
        for _through in (True, False):
            _Dr = _lab6.ToyDiscriminator(_c)
            _Dy = judge.twin(_Dr, "effcourse.checks.lab6.ToyDiscriminator", _c)   # the same D, where your code runs
            _real = torch.randn(_n, _c, _h, _w)
            _keep = _real.clone()
            _what = f"r1_penalty(through_augment={_through}) on ({_n}, {_c}, {_h}, {_w})"
            _pen = _call(_what, r1_penalty, _Dy, _real, _aug_yours, through_augment=_through)
            _shape(_what, _pen, ())
            _exp = _r1_ref(_Dr, _real, _through)
            _close(_what + (": the squared gradient w.r.t. the UN-augmented reals (through augment)" if _through else
                            ": the squared gradient w.r.t. the augmented images"), _pen.detach(), _exp.detach(),
                   atol=1e-6, rtol=1e-4)
            for _p in ("conv.weight", "lin.weight"):
                _true(judge.get(_Dy, f"{_p}.grad") is None, f"{_what}: r1_penalty wrote D's {_p}.grad")
            _true(_pen.requires_grad, f"{_what}: the penalty must be differentiable w.r.t. D's weights (create_graph=True)")
            _pen.backward()
            _exp.backward()
            for _p in ("conv.weight", "conv.bias", "lin.weight"):
                _g = judge.get(_Dy, f"{_p}.grad")
                _true(_g is not None, f"{_what}: no gradient of the penalty reached D's {_p}")
                _close(f"{_what}: the penalty's gradient w.r.t. D's {_p}", _g, judge.get(_Dr, f"{_p}.grad"),
                       atol=1e-6, rtol=1e-4)
            _true(torch.equal(_real, _keep), f"{_what}: modified the real batch")
    # the default is through the augmentation (the low-shot code); augment is drawn once, on the reals
    _Dr = _lab6.ToyDiscriminator(2)
    _real = torch.randn(5, 2, 6, 6)
    _close("r1_penalty with the default through_augment",
           _call("r1_penalty", r1_penalty, judge.twin(_Dr, "effcourse.checks.lab6.ToyDiscriminator", 2), _real,
                 _aug_yours).detach(), _r1_ref(_Dr, _real, True).detach(), atol=1e-6, rtol=1e-4)
    for _through in (True, False):
        _rec = judge.build("effcourse.checks.lab6.RecordingAugment")
        _call("r1_penalty", r1_penalty, judge.build("effcourse.checks.lab6.ToyDiscriminator", 1), torch.randn(5, 1, 6, 6),
              _rec, through_augment=_through)
        _true(judge.get(_rec, "sizes") == [5], f"r1_penalty(through_augment={_through}): augment must be called once, on "
                                                f"the 5 reals; it saw batches of {judge.get(_rec, 'sizes')}")
### END HIDDEN TESTS


# %% [markdown]
# ## 5. Experiment: 100 digits, four ways
#
# The same DCGAN (16×16 digits; G: transposed convs 1 → 4 → 8 → 16, D: strided convs 16 → 8 → 4 → 1),
# the same seed, Adam (lr 2e-3, betas (0.5, 0.999); a large rate, so that the story fits in a few
# thousand iterations), batch 32, trained on the 100 images above. The lecture's three ways to
# augment a GAN, against no augmentation:
#
# | setup | D's step sees | G's step sees | needs a differentiable $T$ |
# |---|---|---|---|
# | (i) no augmentation | $x$, $G(z)$ | $G(z)$ | — |
# | (ii) augment reals only (Approach 1) | $T(x)$, $G(z)$ | $G(z)$ | no |
# | (iii) augment reals & fakes, for D only (Approach 2) | $T(x)$, $T(G(z))$ | $G(z)$ | no (the fake is detached) |
# | (iv) DiffAugment (Approach 3) | $T(x)$, $T(G(z))$ | $T(G(z))$ | yes |
#
# Setups (ii) and (iii) fail early, so in QUICK mode they train for 500 iterations instead of
# 1800 (in full mode all four run 6000).
#
# Every few iterations we measure D's mean output on the 100 **training** reals and on
# held-out reals, as a probability $\sigma(D(x))$ and as a logit $D(x)$. Both sets are real
# digits: a discriminator that has learned what digits look like scores them alike; one that has
# memorised its training set scores the held-out ones as more fake. The logit gap
# $\overline{D(x_\text{train})} - \overline{D(x_\text{held-out})}$ measures that memorisation (the
# sigmoid squashes it once D is confident). We
# sample from an exponential moving average of G's weights and score the samples with the
# **digit-feature Fréchet distance** (`effcourse.metrics.frechet_distance`: the FID formula
# $\lVert\mu_r-\mu_g\rVert^2 + \mathrm{Tr}(\Sigma_r + \Sigma_g - 2(\Sigma_r\Sigma_g)^{1/2})$ on the 64-d features
# of a small digit classifier that ships with the course, **not** Inception FID: compare its
# numbers with each other, never with the paper's). At the same probes `train_gan` records D's mean
# logit on 128 fakes from fixed $z$, as they are, $D(G(z))$, and through the setup's $T$,
# $D(T(G(z)))$ (equal when a setup has no $T$ in its losses).

# %% tags=["experiment"]
setups = {
    "no augmentation": dict(augment=None),
    "augment reals only": dict(real_transform=diff_augment),
    "augment D only": dict(augment=diff_augment, augment_g_step=False),
    "DiffAugment": dict(augment=diff_augment),
}
colors = {"no augmentation": "tab:red", "augment reals only": "tab:orange", "augment D only": "tab:purple",
          "DiffAugment": "tab:blue"}
runs = {}


last_samples = {}


def frechet_of(G_ema):
    """Digit-feature Fréchet distance of the EMA generator's samples to all real digits (the samples are
    kept: the last evaluation's are the run's samples)."""
    last_samples["G_ema"] = G_ema.sample(N_SAMPLES, generator=torch.Generator().manual_seed(SEED + 1))
    return metrics.frechet_distance(all_digits, last_samples["G_ema"])


def run(name, iters):
    """Train one setup from the same initial weights and seed; keep its history and EMA samples."""
    t0 = time.perf_counter()
    G, D = dcgan.make_gan(ngf=NGF, ndf=NDF, seed=SEED)
    setup = dict(setups[name])
    opts = dcgan.GANOptions(lr=LR, probe_every=PROBE_EVERY, eval_every=min(EVAL_EVERY, iters),
                            augment_g_step=setup.pop("augment_g_step", True))
    G_ema, hist = dcgan.train_gan(G, D, data.images, d_loss, g_loss, **setup, heldout=heldout, evaluate=frechet_of,
                                  loop=Loop(steps=iters, seed=SEED, device=device, desc=name), opts=opts)
    samples = last_samples["G_ema"]                       # train_gan evaluates at the last iteration too
    runs[name] = {"hist": hist, "samples": samples, "fd": hist.last("eval"), "iters": iters}
    print(f"{name}: {iters} iterations in {time.perf_counter() - t0:.0f} s")


run("no augmentation", ITERS)

# %% tags=["experiment"]
run("augment reals only", SHORT_ITERS)

# %% tags=["experiment"]
run("augment D only", SHORT_ITERS)

# %% tags=["experiment"]
run("DiffAugment", ITERS)

# %% tags=["experiment"]
fig, (ax1, ax2, ax3, ax4) = plt.subplots(1, 4, figsize=(19, 3.8))
for name, r in runs.items():
    h = r["hist"]
    probes = h.steps("d_train")
    ax1.plot(probes, h["d_train"], color=colors[name], label=f"{name}: training reals")
    ax1.plot(probes, h["d_heldout"], color=colors[name], ls="--", label=f"{name}: held-out reals")
    ax2.plot(probes, dcgan.gap(h), color=colors[name], label=name)
    ax3.plot(h.steps("eval"), h["eval"], color=colors[name], marker="o", label=name)
    if name in ("augment D only", "DiffAugment"):
        ax4.plot(probes, h["logit_fake"], color=colors[name], label=f"{name}: D(G(z))")
        ax4.plot(probes, h["logit_fake_aug"], color=colors[name], ls="--", label=f"{name}: D(T(G(z)))")
ax1.set(xlabel="iteration", ylabel="mean sigmoid(D(x))", title="D's output on real digits")
ax2.set(xlabel="iteration", ylabel="mean logit: training - held-out", title="the memorisation gap")
ax3.set(xlabel="iteration", ylabel="digit-feature Fréchet distance", title="sample quality (lower is better)",
        yscale="log")
ax4.set(xlabel="iteration", ylabel="mean logit", title="D on the same fakes, without / with T")
ax2.axhline(0, color="gray", lw=1)
ax4.axhline(0, color="gray", lw=1)
ax4.legend(fontsize=7)
for ax in (ax1, ax2, ax3, ax4):
    ax.grid(alpha=0.3)
ax1.legend(fontsize=6)
ax2.legend(fontsize=8)
ax3.legend(fontsize=8)
plt.tight_layout()
plt.show()

# %% tags=["experiment"]
fig, axes = plt.subplots(1, 5, figsize=(17, 3.6))
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

# %% tags=["experiment"]
gen = torch.Generator().manual_seed(SEED)
perm = torch.randperm(len(all_digits), generator=gen)
half = len(all_digits) // 2
floor_halves = metrics.frechet_distance(all_digits[perm[:half]], all_digits[perm[half:]])
memoriser = data.images[torch.randint(0, len(data.images), (N_SAMPLES,), generator=gen)]
floor_memoriser = metrics.frechet_distance(all_digits, memoriser)

rows, fd, gap, art, on_fake, on_fake_aug = [], {}, {}, {}, {}, {}
for name, r in runs.items():
    h = r["hist"]
    n_last = max(1, len(h["d_train"]) // 5)     # average D's logits over the last 20 % of probes
    fd[name] = r["fd"]
    gap[name] = sum(dcgan.gap(h)[-n_last:]) / n_last
    on_fake[name] = h.mean("logit_fake", last=n_last)
    on_fake_aug[name] = h.mean("logit_fake_aug", last=n_last)
    art[name] = dcgan.artifact_rate(r["samples"])
    rows.append({"setup": name, "iterations": r["iters"], "Fréchet distance": fd[name], "σ(D) train": h.last("d_train"),
                 "σ(D) held-out": h.last("d_heldout"), "D logit gap": gap[name], "D(G(z))": on_fake[name],
                 "D(T(G(z)))": on_fake_aug[name], "zero squares %": 100 * art[name]["square"],
                 "zero borders %": 100 * art[name]["edge"]})
real_art = dcgan.artifact_rate(all_digits)
rows.append({"setup": "real digits (memoriser)", "Fréchet distance": floor_memoriser,
             "zero squares %": 100 * real_art["square"], "zero borders %": 100 * real_art["edge"]})
rows.append({"setup": "real digits (two halves)", "Fréchet distance": floor_halves})
_ = plots.table(rows, floatfmt=".3g", title="100-shot digits, four ways")
# DiffAugment's Fréchet distance after as many iterations as the two short runs, for a fair comparison
h = runs["DiffAugment"]["hist"]
fd_diffaugment_short = h["eval"][min(range(len(h["eval"])), key=lambda i: abs(h.steps("eval")[i] - SHORT_ITERS))]
print(f"DiffAugment after {SHORT_ITERS} iterations: Fréchet distance {fd_diffaugment_short:.1f}")

effcourse.record("fd_none", fd["no augmentation"])
effcourse.record("fd_reals_only", fd["augment reals only"])
effcourse.record("fd_d_only", fd["augment D only"])
effcourse.record("fd_diffaugment", fd["DiffAugment"])
effcourse.record("fd_diffaugment_short", fd_diffaugment_short)
effcourse.record("gap_none", gap["no augmentation"])
effcourse.record("gap_reals_only", gap["augment reals only"])
effcourse.record("gap_d_only", gap["augment D only"])
effcourse.record("gap_diffaugment", gap["DiffAugment"])
effcourse.record("artifacts_none", art["no augmentation"]["any"])
effcourse.record("artifacts_reals_only", art["augment reals only"]["any"])
effcourse.record("artifacts_d_only", art["augment D only"]["any"])
effcourse.record("artifacts_diffaugment", art["DiffAugment"]["any"])
effcourse.record("fake_logit_d_only", on_fake["augment D only"])
effcourse.record("fake_aug_logit_d_only", on_fake_aug["augment D only"])
effcourse.record("fake_logit_diffaugment", on_fake["DiffAugment"])
effcourse.record("fake_aug_logit_diffaugment", on_fake_aug["DiffAugment"])
effcourse.record("fd_floor_halves", floor_halves)
effcourse.record("fd_floor_memoriser", floor_memoriser)
_ = lab6.report_claims([
    ("DiffAugment's Fréchet distance is below no augmentation's", fd["DiffAugment"] < fd["no augmentation"],
     f"{fd['DiffAugment']:.1f} vs {fd['no augmentation']:.1f}"),
    ("DiffAugment's discriminator memorises less (smaller logit gap)", gap["DiffAugment"] < gap["no augmentation"],
     f"{gap['DiffAugment']:.2f} vs {gap['no augmentation']:.2f}"),
    ("augmenting the reals only teaches G the artifacts", art["augment reals only"]["any"] > art["DiffAugment"]["any"],
     f"{100 * art['augment reals only']['any']:.0f} % vs {100 * art['DiffAugment']['any']:.0f} % of samples"),
    (f"augmenting for D only cripples training (Fréchet distance above DiffAugment's at {SHORT_ITERS} iterations)",
     fd["augment D only"] > fd_diffaugment_short, f"{fd['augment D only']:.1f} vs {fd_diffaugment_short:.1f}"),
    ("augmenting for D only: D calls G's un-augmented fakes real (logit > 0) and the same fakes augmented fake (< 0)",
     on_fake["augment D only"] > 0 > on_fake_aug["augment D only"],
     f"D(G(z)) {on_fake['augment D only']:.2f}, D(T(G(z))) {on_fake_aug['augment D only']:.2f}"),
    ("DiffAugment: D judges the fakes alike with and without T (gap below Approach 2's)",
     abs(on_fake["DiffAugment"] - on_fake_aug["DiffAugment"]) < on_fake["augment D only"] - on_fake_aug["augment D only"],
     f"{on_fake['DiffAugment'] - on_fake_aug['DiffAugment']:.2f} vs "
     f"{on_fake['augment D only'] - on_fake_aug['augment D only']:.2f}"),
])

# %% [markdown]
# ## 6. Paper vs. you

# %% tags=["experiment"]
_ = plots.table([
    {"setting": "100-shot Obama (StyleGAN2), FID", "paper: no aug. → DiffAugment": "80.20 → 46.87",
     "you": f"100-shot digits, digit-feature FD {fd['no augmentation']:.1f} → {fd['DiffAugment']:.1f}"},
    {"setting": "100-shot Grumpy Cat, FID", "paper: no aug. → DiffAugment": "48.90 → 27.08", "you": ""},
    {"setting": "CIFAR-10 with 10 % of the data, FID", "paper: no aug. → DiffAugment": "36.02 → 14.50", "you": ""},
    {"setting": "D's train − held-out output gap", "paper: no aug. → DiffAugment": "D overfits with little data (lecture; paper Fig. 1)",
     "you": f"{gap['no augmentation']:.2f} → {gap['DiffAugment']:.2f}"},
    {"setting": "augmenting reals only (Approach 1)", "paper: no aug. → DiffAugment": "artifacts leak into samples",
     "you": f"{100 * art['augment reals only']['any']:.0f} % of samples with a zero square/border "
            f"(DiffAugment: {100 * art['DiffAugment']['any']:.0f} %)"},
    {"setting": "augmenting reals & fakes for D only (Approach 2)",
     "paper: no aug. → DiffAugment": "unbalanced optimisation cripples training",
     "you": f"FD {fd['augment D only']:.1f} after {SHORT_ITERS} iterations (DiffAugment: {fd_diffaugment_short:.1f}); "
            f"D(G(z)) {on_fake['augment D only']:.2f} vs D(T(G(z))) {on_fake_aug['augment D only']:.2f} logits"},
], title="Paper vs. you (paper numbers: the official DiffAugment-stylegan2 README; the lecture for Approaches 1-3)")

# %% [markdown]
# Read the curves from left to right. The un-augmented discriminator's logit gap grows steadily —
# it is memorising its 100 images — while DiffAugment's stays near 0. The Fréchet distance follows
# more slowly and more noisily: a memorising D eventually makes the generator worse, but a QUICK run
# (1800 iterations) can stop before that turn, so no augmentation may still finish ahead of
# DiffAugment. If yours does, run with `QUICK = False` (6000 iterations for every setup) and see
# where the curves cross, and rerun with another `SEED` to see how much the Fréchet numbers move:
# GAN training at this large learning rate is noisy, and the logit gap is the steadier signal.
#
# The two cheaper ways to augment fail from the start. Augmenting the reals only (ii) teaches G the
# grey squares and borders (its artifact rate). Augmenting reals and fakes for D only (iii) keeps D
# from memorising too, but the last panel shows the imbalance: on G's un-augmented images — exactly
# what G's step is scored on — D's logit is high, G has learned to fool it there; on the same images
# augmented, which is all D is ever trained on, D says "fake". G wins a game that D is not playing,
# and its Fréchet distance stays above DiffAugment's at the same iteration. With DiffAugment both
# steps see $T(G(z))$, and D's two logits on the fakes stay close.
#
# ## 7. Questions
#
# **Q1 (8 points).** The unbalanced game, in your numbers. (a) From your table, give D's mean logit
# on the fakes without and with $T$, $D(G(z))$ and $D(T(G(z)))$, for setups (iii) and (iv), and the
# probability $\sigma(\cdot)$ of "real" each means. (b) For each setup, which of the two does G's step
# push up and which does D's step push down? Use that to explain the signs and sizes of your numbers.
# (c) Your setup (iii) generator fools D on its own images, yet its Fréchet distance is worse than
# DiffAugment's at the same iteration: why does fooling this D on un-augmented images not make G's
# images more digit-like?

# %% [markdown] nbgrader={"grade": true, "grade_id": "q1_unbalanced", "locked": false, "points": 8, "schema_version": 3, "solution": true, "task": false}
# (a) In the reference run (seed 0, QUICK): setup (iii) $D(G(z)) \approx +2.5$ ($\sigma \approx 0.93$,
# "real") and $D(T(G(z))) \approx -3.2$ ($\sigma \approx 0.04$, "fake"); DiffAugment 0.19 and 0.03,
# both near 0 ($\sigma \approx 0.5$) and within about 0.2 of each other. (b) In (iii) G's step maximises the
# un-augmented $D(G(z))$ and D's step minimises only $D(T(G(z)))$: nothing ever pushes $D(G(z))$ down,
# so G drives it up freely, while D keeps rejecting the augmented fakes — two different numbers,
# optimised by two different players. In DiffAugment both players act on $D(T(G(z)))$: D pushes it
# down, G pushes it up, and at the balance D cannot tell augmented fakes from augmented reals (logit
# near 0); $D(G(z))$ is never trained directly but stays close, since an un-augmented image is one
# of the draws $T$ can nearly make. (c) D was never trained on un-augmented images: its output there
# is an extrapolation, not a judgement of digit-likeness. G climbs that extrapolated score — any
# direction that raises $D$ off the augmented distribution — so its gradient carries little about
# what digits look like, and its samples improve slowly or drift; its Fréchet distance stays above
# DiffAugment's, whose G is trained on the same quantity D learns to judge.

# %% [markdown]
# **Q2 (8 points).** Memorisation, in your numbers. (a) At which probe does your no-augmentation
# logit gap first exceed 1, and what does its Fréchet distance do from then on? (b) Compare your final
# $\sigma(D)$ on training and on held-out reals for no augmentation and for DiffAugment: what would
# each D tell G about a held-out real digit, if G drew exactly that digit? (c) Does your DiffAugment
# run finish ahead of no augmentation on Fréchet distance? Using your curves, say whether your run was
# long enough to show the paper's result, and what you would run to find out.

# %% [markdown] nbgrader={"grade": true, "grade_id": "q2_memorisation", "locked": false, "points": 8, "schema_version": 3, "solution": true, "task": false}
# (a) Read from the gap panel (the reference QUICK run ends with a no-augmentation gap of about 1.6
# logits, DiffAugment's 0.02): the learner reads the probe where it passes 1 and compares the
# Fréchet points after it with those before it (every 500 iterations; noisy at this size). (b) The
# no-augmentation D scores its training reals as real and held-out reals markedly lower (the gap): a
# held-out digit drawn perfectly by G would be called more fake than a copy of a training image, so
# G is pushed towards the 100 images rather than towards digits. DiffAugment's D scores both alike,
# so a well-drawn unseen digit is rewarded like a training one. (c) In the reference QUICK run
# (seed 0) no augmentation is still ahead at 1800 iterations: the memorisation has started (the gap)
# but has not yet cost the generator much. The run is too short to show the paper's result; to find
# out, train longer (QUICK = False, 6000 iterations) and over several seeds, and compare the
# Fréchet curves after the point where the no-augmentation gap is large.
