# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Lab 8 — Editing with a diffusion model: DDIM, SDEdit, and SIGE across denoising steps
#
# **You will build** the pieces of diffusion-based image editing and then make the edit cheap: the
# noise schedule and the forward process of a DDPM, the deterministic DDIM sampler over a strided
# subset of timesteps, SDEdit (noise an edited picture part of the way, denoise it back), and —
# reusing Lab 5's sparse engine — SIGE across denoising steps: one cache of the original picture's
# activations *per step*, one dilated difference mask reused by every step, and normalisation
# statistics taken from the original run of the same step.
#
# **Time:** about 2 hours. **Papers:** Ho, Jain, Abbeel, *Denoising Diffusion Probabilistic Models*
# (DDPM), NeurIPS 2020; Song, Meng, Ermon, *Denoising Diffusion Implicit Models* (DDIM), ICLR 2021;
# Meng et al., *SDEdit*, ICLR 2022; Li, Lin, Zhu, Han, Lin, *Efficient Spatially Sparse Inference for
# Conditional GANs and Diffusion Models* (SIGE), NeurIPS 2022, code `lmxyy/sige`.
#
# **Intuition.** A diffusion model edits a picture by running its whole network once per denoising
# step — 25 or 50 times — so the dense cost of an edit is many times a GAN's. A user who changes 1 % of
# the picture still pays all of it. SIGE caches the original picture's activations at every step and
# recomputes only the tiles the edit reaches: 7.5× fewer MACs for DDIM at a 1.2 % edit (lecture) and
# 6.6× measured on an M1 Pro CPU (SIGE paper, Table 1 / README). Here you do the same on a miniature.
#
# **The model.** A small UNet (0.45 M parameters; GroupNorm, SiLU, residual blocks, a sinusoidal time
# embedding added to every block; no attention) trained by the instructor as a DDPM with $T = 1000$
# linear-schedule steps on random 4 × 4 grids (32 × 32 px) of the bundled 8 × 8 digits: 1200 Adam
# steps of batch 32 on one thread of a busy 2-core CPU, 26 minutes, final loss 0.083
# (the course's instructor script `train_lab8_ddpm.py`; the config printed below says exactly). The
# network is fully convolutional, so we run it on 128 × 128 pictures (16 × 16 digits).
# The paper's models are Stable-Diffusion-scale UNets on 256–512 px images; ours is a miniature that
# keeps the structure (many steps, GroupNorm, a UNet), not the quality.

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
from torch import nn

import effcourse
from effcourse import plots
from effcourse.checks import lab8
from effcourse.diffusion import data as ddata
from effcourse.diffusion.train import load_pretrained
from effcourse.sparse.engine import SparseRunner

# %% tags=["parameters"]
QUICK = False
SEED = 0
DEVICE = "auto"

# %%
QUICK, device = effcourse.setup(QUICK, SEED, DEVICE)
unet, CONFIG = load_pretrained()                       # eval mode, float32, on the CPU
T = CONFIG["T"]
GRID = effcourse.pick(full=16, quick=12, smoke=4)      # pictures of GRID x GRID digits (128 x 128 px in full)
STEPS = effcourse.pick(full=25, quick=10, smoke=5)     # DDIM steps of a whole sampling run
REPEATS = effcourse.pick(full=5, quick=2, smoke=1)     # interleaved timing rounds (medians)
TILE = 4                                               # output tile side of the sparse convs
SAMPLES = effcourse.pick(full=4, quick=2)             # pictures sampled from noise
print({k: CONFIG[k] for k in ("T", "beta_start", "beta_end", "channels", "steps", "batch", "minutes", "final_loss")})
print(f"{sum(p.numel() for p in unet.parameters()) / 1e6:.2f} M parameters; pictures {8 * GRID}x{8 * GRID}, "
      f"{STEPS} DDIM steps")

# %% [markdown]
# ## 1. The forward process and the noise schedule
#
# A DDPM destroys a picture $x_0$ in $T$ small Gaussian steps with variances $\beta_1, \dots,
# \beta_T$. With $\alpha_t = 1 - \beta_t$ and $\bar\alpha_t = \prod_{s \le t} \alpha_s$, any step
# has a closed form:
#
# $$q(x_t \mid x_0) = \mathcal N\big(\sqrt{\bar\alpha_t}\, x_0,\; (1 - \bar\alpha_t) I\big), \qquad
# x_t = \sqrt{\bar\alpha_t}\, x_0 + \sqrt{1 - \bar\alpha_t}\, \varepsilon,\ \varepsilon \sim \mathcal N(0, I).$$
#
# We index timesteps from 0 as the code does (and as `diffusers` does): `alphas_cumprod[t]` is
# $\prod_{s=0}^{t} (1 - \beta_s)$, so `alphas_cumprod[0]` $= 1 - \beta_0$, not 1. The **linear**
# schedule of the DDPM paper spaces $\beta$ evenly from `beta_start` to `beta_end` (both included).
#
# **Exercise.** `linear_schedule(T, beta_start, beta_end)` and `q_sample(x0, t, noise, alphas_cumprod)`.

# %% nbgrader={"grade": false, "grade_id": "linear_schedule", "locked": false, "schema_version": 3, "solution": true, "task": false}
def linear_schedule(T, beta_start=1e-4, beta_end=0.02):
    """The DDPM linear noise schedule.

    Returns:
        (betas, alphas_cumprod): float32 tensors of shape (T,); betas evenly spaced from beta_start
        to beta_end inclusive; alphas_cumprod[t] = prod_{s <= t} (1 - betas[s]).
    """
    ### BEGIN SOLUTION
    betas = torch.linspace(beta_start, beta_end, T, dtype=torch.float64)
    return betas.to(torch.float32), torch.cumprod(1.0 - betas, dim=0).to(torch.float32)
    ### END SOLUTION


# %% nbgrader={"grade": false, "grade_id": "q_sample", "locked": false, "schema_version": 3, "solution": true, "task": false}
def q_sample(x0, t, noise, alphas_cumprod):
    """A sample of q(x_t | x_0) with the given noise.

    Args:
        x0: (N, C, H, W) clean pictures.
        t: (N,) LongTensor of timesteps in [0, T), one per picture (or an int for all).
        noise: (N, C, H, W) standard normal noise.
        alphas_cumprod: (T,) float tensor.

    Returns:
        (N, C, H, W): sqrt(abar_t) * x0 + sqrt(1 - abar_t) * noise, abar_t = alphas_cumprod[t] per picture.
    """
    ### BEGIN SOLUTION
    t = torch.as_tensor(t, dtype=torch.long).expand(x0.shape[0])
    a = alphas_cumprod.to(x0.dtype)[t].view(-1, *([1] * (x0.dim() - 1)))
    return a.sqrt() * x0 + (1 - a).sqrt() * noise
    ### END SOLUTION


# %%
betas, abar = linear_schedule(T, CONFIG["beta_start"], CONFIG["beta_end"])
lab8.check_schedule(linear_schedule, q_sample)
print(f"abar[0] = {abar[0]:.5f}, abar[T//2] = {abar[T // 2]:.4f}, abar[T-1] = {abar[-1]:.2e}")

# %% nbgrader={"grade": true, "grade_id": "test_linear_schedule", "locked": true, "points": 8, "schema_version": 3, "solution": false, "task": false}
import time

import torch

from effcourse.checks import lab8
from effcourse.checks.asserts import assert_close, assert_shape, call

lab8.check_schedule(linear_schedule, None)
### BEGIN HIDDEN TESTS
from effcourse.checks.asserts import clock_seed
from diffusers import DDPMScheduler

_seed = clock_seed()                       # a fresh seed from the clock (effcourse.checks.asserts)
_g = torch.Generator().manual_seed(_seed)
_at = f"[hidden test, seed {_seed}]"
for _T in [1000, 1, 2, 7, int(torch.randint(3, 400, (1,), generator=_g))]:
    _b0 = float(torch.empty(1).uniform_(1e-5, 1e-3, generator=_g))
    _b1 = float(torch.empty(1).uniform_(5e-3, 0.05, generator=_g))
    _ref = DDPMScheduler(num_train_timesteps=_T, beta_start=_b0, beta_end=_b1, beta_schedule="linear")
    _what = f"linear_schedule({_T}, {_b0:.3g}, {_b1:.3g}) {_at}"
    _betas, _abar = call(_what, linear_schedule, _T, _b0, _b1)
    assert_shape(_what + " betas", _betas, (_T,))
    assert_shape(_what + " alphas_cumprod", _abar, (_T,))
    assert_close(_what + " betas", _betas, _ref.betas, atol=1e-7, rtol=1e-5)
    assert_close(_what + " alphas_cumprod", _abar, _ref.alphas_cumprod, atol=1e-6, rtol=1e-4)
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "test_q_sample", "locked": true, "points": 10, "schema_version": 3, "solution": false, "task": false}
import time

import torch

from effcourse.checks import lab8
from effcourse.checks.asserts import assert_close, assert_true, call

lab8.check_schedule(None, q_sample)
### BEGIN HIDDEN TESTS
from effcourse.checks.asserts import clock_seed
from diffusers import DDPMScheduler

_seed = clock_seed()                       # a fresh seed from the clock (effcourse.checks.asserts)
_g = torch.Generator().manual_seed(_seed)
_at = f"[hidden test, seed {_seed}]"
_ref = DDPMScheduler(num_train_timesteps=1000, beta_start=1e-4, beta_end=0.02, beta_schedule="linear")
for _shape in [(1, 1, 8, 8), (3, 2, 5, 7), (5, 1, 16, 12), (2, 3, 1, 9)]:
    _x0 = torch.rand(_shape, generator=_g) * 2 - 1
    _eps = torch.randn(_shape, generator=_g)
    _t = torch.randint(0, 1000, (_shape[0],), generator=_g)
    _t[0] = 0
    if _shape[0] > 1:
        _t[-1] = 999
    _keep = _x0.clone(), _eps.clone(), _t.clone()
    _what = f"q_sample(x0 {tuple(_shape)}, t={_t.tolist()}) {_at}"
    _got = call(_what, q_sample, _x0, _t, _eps, _ref.alphas_cumprod.clone())
    assert_close(_what, _got, _ref.add_noise(_x0, _eps, _t), atol=1e-5, rtol=1e-5)
    assert_true(torch.equal(_x0, _keep[0]) and torch.equal(_eps, _keep[1]) and torch.equal(_t, _keep[2]),
                f"{_what} modified its inputs")
# a schedule other than the default one: abar is read from the argument
_b, _a = torch.linspace(1e-3, 0.3, 50), None
_a = torch.cumprod(1 - _b, 0)
_x0, _eps, _t = torch.randn(4, 1, 6, 6, generator=_g), torch.randn(4, 1, 6, 6, generator=_g), torch.tensor([0, 7, 31, 49])
assert_close(f"q_sample with a 50-step schedule {_at}", call("q_sample", q_sample, _x0, _t, _eps, _a),
             _a[_t].sqrt().view(-1, 1, 1, 1) * _x0 + (1 - _a[_t]).sqrt().view(-1, 1, 1, 1) * _eps, atol=1e-5, rtol=1e-5)
### END HIDDEN TESTS

# %% [markdown]
# How much of the picture survives at step $t$: the signal weight $\sqrt{\bar\alpha_t}$ against the
# noise weight $\sqrt{1 - \bar\alpha_t}$, and one picture noised to a few steps.

# %% tags=["experiment"]
pic = ddata.picture(GRID, GRID, seed=SEED)
noise0 = torch.randn(pic.shape, generator=torch.Generator().manual_seed(SEED + 1))
fig, axes = plt.subplots(1, 6, figsize=(13, 2.4))
axes[0].plot(abar.sqrt(), label=r"$\sqrt{\bar\alpha_t}$")
axes[0].plot((1 - abar).sqrt(), label=r"$\sqrt{1-\bar\alpha_t}$")
axes[0].set_xlabel("t")
axes[0].legend(fontsize=7)
for ax, t in zip(axes[1:], [0, 100, 300, 600, 999]):
    ax.imshow(q_sample(pic, torch.tensor([t]), noise0, abar)[0, 0], cmap="gray", vmin=-1, vmax=1)
    ax.set_title(f"t = {t}")
    ax.axis("off")
plt.tight_layout()
plt.show()

# %% [markdown]
# ## 2. Deterministic DDIM sampling over a strided subset of timesteps
#
# The network predicts the noise, $\varepsilon_\theta(x_t, t)$. From it, the clean picture it implies
# is $\hat x_0 = (x_t - \sqrt{1-\bar\alpha_t}\,\varepsilon_\theta) / \sqrt{\bar\alpha_t}$. DDIM with
# $\eta = 0$ (no fresh noise) jumps from step $t$ to an earlier step $t'$ by re-noising $\hat x_0$
# with the *same* predicted noise:
#
# $$x_{t'} = \sqrt{\bar\alpha_{t'}}\,\hat x_0 + \sqrt{1-\bar\alpha_{t'}}\;\varepsilon_\theta(x_t, t),$$
#
# with $\bar\alpha_{t'} = 1$ for the last jump ($t' = -1$: no noise left). Because $t'$ can be
# anything below $t$, DDIM samples with a **strided** subset of the $T$ training steps. We use the
# "leading" spacing of `diffusers`: with $n$ steps and $k = \lfloor T / n \rfloor$, the timesteps are
# $(n-1)k, (n-2)k, \dots, k, 0$ and each jumps to the next (the last one to $-1$).
#
# **Exercise.** `ddim_timesteps(T, n)` and `ddim_step(eps, t, t_prev, x_t, alphas_cumprod)`.

# %% nbgrader={"grade": false, "grade_id": "ddim_timesteps", "locked": false, "schema_version": 3, "solution": true, "task": false}
def ddim_timesteps(T, n):
    """The n DDIM timesteps (1 <= n <= T), "leading" spacing: k = T // n, then (n-1)k, ..., k, 0.

    Returns:
        LongTensor (n,), decreasing.
    """
    ### BEGIN SOLUTION
    k = T // n
    return torch.arange(n - 1, -1, -1, dtype=torch.long) * k
    ### END SOLUTION


# %% nbgrader={"grade": false, "grade_id": "ddim_step", "locked": false, "schema_version": 3, "solution": true, "task": false}
def ddim_step(eps, t, t_prev, x_t, alphas_cumprod):
    """One deterministic DDIM update (eta = 0) from step t to step t_prev < t.

    Args:
        eps: (N, C, H, W) the network's noise prediction at (x_t, t).
        t, t_prev: ints; t_prev = -1 means the end (abar = 1).
        x_t: (N, C, H, W).
        alphas_cumprod: (T,) float tensor.

    Returns:
        (N, C, H, W): sqrt(abar_prev) * x0_hat + sqrt(1 - abar_prev) * eps with
        x0_hat = (x_t - sqrt(1 - abar_t) * eps) / sqrt(abar_t). No clipping of x0_hat, no fresh noise.
    """
    ### BEGIN SOLUTION
    a_t = alphas_cumprod[int(t)].to(x_t.dtype)
    a_prev = alphas_cumprod[int(t_prev)].to(x_t.dtype) if int(t_prev) >= 0 else torch.ones((), dtype=x_t.dtype)
    x0_hat = (x_t - (1 - a_t).sqrt() * eps) / a_t.sqrt()
    return a_prev.sqrt() * x0_hat + (1 - a_prev).sqrt() * eps
    ### END SOLUTION


# %%
lab8.check_ddim(ddim_timesteps, ddim_step, abar)
TIMESTEPS = ddim_timesteps(T, STEPS)
print("timesteps:", TIMESTEPS.tolist())

# %% nbgrader={"grade": true, "grade_id": "test_ddim_timesteps", "locked": true, "points": 5, "schema_version": 3, "solution": false, "task": false}
import time

import torch

from effcourse.checks import lab8
from effcourse.checks.asserts import assert_true, call

lab8.check_ddim(ddim_timesteps, None, None)
### BEGIN HIDDEN TESTS
from effcourse.checks.asserts import clock_seed
from diffusers import DDIMScheduler

_seed = clock_seed()                       # a fresh seed from the clock (effcourse.checks.asserts)
_g = torch.Generator().manual_seed(_seed)
_at = f"[hidden test, seed {_seed}]"
for _T, _n in [(1000, 50), (1000, 1), (1000, 1000), (1000, 7), (10, 3), (37, 36),
               (int(torch.randint(2, 2000, (1,), generator=_g)), int(torch.randint(1, 60, (1,), generator=_g)))]:
    _n = min(_n, _T)
    _ref = DDIMScheduler(num_train_timesteps=_T, timestep_spacing="leading", steps_offset=0)
    _ref.set_timesteps(_n)
    _got = call(f"ddim_timesteps({_T}, {_n})", ddim_timesteps, _T, _n)
    _got = torch.as_tensor(_got)
    assert_true(_got.tolist() == _ref.timesteps.tolist(),
                f"ddim_timesteps({_T}, {_n}) {_at}: expected {_ref.timesteps.tolist()[:8]}..., got {_got.tolist()[:8]}...")
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "test_ddim_step", "locked": true, "points": 14, "schema_version": 3, "solution": false, "task": false}
import time

import torch

from effcourse.checks import lab8
from effcourse.checks.asserts import assert_close, assert_true, call

lab8.check_ddim(None, ddim_step, lab8.default_schedule()[1])
### BEGIN HIDDEN TESTS
from effcourse.checks.asserts import clock_seed
from diffusers import DDIMScheduler

_seed = clock_seed()                       # a fresh seed from the clock (effcourse.checks.asserts)
_g = torch.Generator().manual_seed(_seed)
_at = f"[hidden test, seed {_seed}]"
for _T, _n, _b1 in [(1000, 25, 0.02), (1000, 50, 0.02), (1000, 10, 0.012), (200, 9, 0.05)]:
    _ref = DDIMScheduler(num_train_timesteps=_T, beta_start=1e-4, beta_end=_b1, beta_schedule="linear",
                         clip_sample=False, set_alpha_to_one=True, steps_offset=0, timestep_spacing="leading")
    _ref.set_timesteps(_n)
    _ts = _ref.timesteps.tolist()
    for _i in sorted({0, len(_ts) - 1, int(torch.randint(len(_ts), (1,), generator=_g))}):
        _t = _ts[_i]
        _tp = _t - _T // _n
        _shape = [(2, 1, 8, 8), (1, 3, 5, 7), (3, 1, 6, 4)][_i % 3]
        _x = torch.randn(_shape, generator=_g) * 1.5
        _e = torch.randn(_shape, generator=_g)
        _keep = _x.clone(), _e.clone()
        _what = f"ddim_step(t={_t}, t_prev={_tp}, T={_T}, beta_end={_b1}, x {tuple(_shape)}) {_at}"
        _got = call(_what, ddim_step, _e, _t, _tp, _x, _ref.alphas_cumprod.clone())
        _exp = _ref.step(_e, _t, _x, eta=0.0).prev_sample
        assert_close(_what, _got, _exp, atol=2e-4, rtol=1e-4)
        assert_true(torch.equal(_x, _keep[0]) and torch.equal(_e, _keep[1]), f"{_what} modified its inputs")
### END HIDDEN TESTS

# %% [markdown]
# ## 3. SDEdit: noise the edit part of the way, denoise it back
#
# To edit, paste something crude into the picture (a digit from elsewhere, a stroke), noise the
# result to an intermediate step $t_0$ with $q(x_{t_0} \mid x_0^{\text{edit}})$, and run the
# sampler from there. Small $t_0$: the output stays **faithful** to the crude edit; large $t_0$: the
# model has room to make it **realistic**, but it also forgets the rest of the picture. With our
# strided timesteps $\tau_0 > \tau_1 > \dots > \tau_{n-1}$ we start at index `start`: noise to
# $\tau_{\text{start}}$, then DDIM steps $\tau_{\text{start}} \to \tau_{\text{start}+1} \to \dots
# \to \tau_{n-1} \to -1$.
#
# **Exercise.** `sdedit(eps_model, x0, start, timesteps, alphas_cumprod, noise)`, with your
# `q_sample` and `ddim_step` (its grade needs them right).

# %% nbgrader={"grade": false, "grade_id": "sdedit", "locked": false, "schema_version": 3, "solution": true, "task": false}
def sdedit(eps_model, x0, start, timesteps, alphas_cumprod, noise):
    """SDEdit with deterministic DDIM.

    Args:
        eps_model: callable, eps_model(x, t) with t an int -> the noise prediction (N, C, H, W).
        x0: (N, C, H, W) the (edited) picture.
        start: index into timesteps, 0 <= start < len(timesteps).
        timesteps: (n,) decreasing LongTensor (from ddim_timesteps).
        alphas_cumprod: (T,) float tensor.
        noise: (N, C, H, W) the noise used to reach timesteps[start].

    Returns:
        (N, C, H, W): x = q_sample(x0, timesteps[start], noise), then one ddim_step from each of
        timesteps[start], ..., timesteps[n-1] to the next timestep (the last to -1).
    """
    ### BEGIN SOLUTION
    ts = [int(t) for t in timesteps]
    x = q_sample(x0, torch.full((x0.shape[0],), ts[start], dtype=torch.long), noise, alphas_cumprod)
    with torch.no_grad():
        for i in range(start, len(ts)):
            t_prev = ts[i + 1] if i + 1 < len(ts) else -1
            x = ddim_step(eps_model(x, ts[i]), ts[i], t_prev, x, alphas_cumprod)
    return x
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_sdedit", "locked": true, "points": 15, "schema_version": 3, "solution": false, "task": false}
import time

import torch

from effcourse import judge
from effcourse.checks import lab8
from effcourse.checks.asserts import assert_close, call

lab8.check_sdedit(sdedit)
### BEGIN HIDDEN TESTS
from effcourse.checks.asserts import clock_seed
from diffusers import DDIMScheduler

from effcourse.diffusion.unet import UNet

_seed = clock_seed()                       # a fresh seed from the clock (effcourse.checks.asserts)
_g = torch.Generator().manual_seed(_seed)
judge.manual_seed(_seed)
_at = f"[hidden test, seed {_seed}]"
torch.manual_seed(_seed)
_net = UNet(1, (8, 16, 16), 32).eval()
torch.nn.init.normal_(_net.outc.weight, std=0.05)
_yours = judge.twin(_net, "effcourse.diffusion.unet.UNet", 1, (8, 16, 16), 32)
for _n, _start, _shape in [(8, 3, (2, 1, 16, 12)), (5, 0, (1, 1, 8, 8)), (6, 5, (3, 1, 12, 16)), (10, 7, (1, 1, 20, 8))]:
    _ref = DDIMScheduler(num_train_timesteps=1000, beta_start=1e-4, beta_end=0.02, beta_schedule="linear",
                         clip_sample=False, set_alpha_to_one=True, steps_offset=0, timestep_spacing="leading")
    _ref.set_timesteps(_n)
    _x0 = torch.rand(_shape, generator=_g) * 2 - 1
    _eps = torch.randn(_shape, generator=_g)
    _ts = _ref.timesteps.clone()
    with torch.no_grad():
        _x = _ref.add_noise(_x0, _eps, _ts[_start].expand(_shape[0]))
        for _t in _ts[_start:].tolist():
            _x = _ref.step(_net(_x, _t), _t, _x, eta=0.0).prev_sample
    _what = f"sdedit(n={_n} steps, start={_start}, x0 {_shape}) {_at}"
    assert_close(_what, call(_what, sdedit, _yours, _x0, _start, _ts, _ref.alphas_cumprod.clone(), _eps), _x,
                 atol=2e-4, rtol=1e-4)
### END HIDDEN TESTS

# %% [markdown]
# Sampling from pure noise is SDEdit from the very first timestep: at $\tau_0 = (n-1)k$ almost no
# signal is left ($\sqrt{\bar\alpha_{\tau_0}} \approx 0.01$), so the start picture hardly matters.
# A few pictures from noise in `STEPS` DDIM steps, beside a training-like picture:

# %% tags=["experiment"]
eps_fn = lambda x, t: unet(x, t)                             # noqa: E731
torch.manual_seed(SEED)
xT = torch.randn(SAMPLES, 1, 8 * GRID, 8 * GRID)
t0 = time.perf_counter()
samples = sdedit(eps_fn, torch.zeros_like(xT), 0, TIMESTEPS, abar, xT)
print(f"{len(TIMESTEPS)} DDIM steps for {SAMPLES} pictures: {time.perf_counter() - t0:.1f} s")
fig, axes = plt.subplots(1, SAMPLES + 1, figsize=(2.6 * (SAMPLES + 1), 2.6))
axes[0].imshow(pic[0, 0], cmap="gray", vmin=-1, vmax=1)
axes[0].set_title("training-like picture")
for ax, s in zip(axes[1:], samples):
    ax.imshow(s[0].clamp(-1, 1), cmap="gray", vmin=-1, vmax=1)
    ax.set_title("DDIM sample")
for ax in axes:
    ax.axis("off")
plt.tight_layout()
plt.show()
effcourse.record("sample_range", [float(samples.min()), float(samples.max())])

# %% [markdown]
# The trade-off. We replace three digits of the picture by crude white bars and run SDEdit from
# several starting points $t_0 = \tau_{\text{start}}$. Two numbers per run: **faithfulness**, the
# PSNR of the output against the edited input *outside* the edited cells (how much of the rest
# survived), and **realism**, the mean distance of each edited cell of the output to its nearest
# bundled digit (lower: more digit-like).

# %% tags=["experiment"]
CELLS = [(1, 2), (GRID - 2, 1), (GRID // 2, GRID - 2)]
bars = torch.full((len(CELLS), 1, 8, 8), -1.0)
bars[:, :, 1:7, 3:5] = 1.0                                   # a crude vertical stroke
pic_bars = ddata.replace_cells(pic, CELLS, bars)
cells_mask = torch.zeros(8 * GRID, 8 * GRID, dtype=torch.bool)
for r, c in CELLS:
    cells_mask[8 * r:8 * r + 8, 8 * c:8 * c + 8] = True
starts = sorted({max(0, round(f * STEPS)) for f in (0.85, 0.65, 0.45, 0.25)})
trade = []
fig, axes = plt.subplots(1, len(starts) + 1, figsize=(2.6 * (len(starts) + 1), 2.8))
axes[0].imshow(pic_bars[0, 0], cmap="gray", vmin=-1, vmax=1)
axes[0].set_title("crude edit")
for ax, s in zip(axes[1:], starts):
    out = sdedit(eps_fn, pic_bars, s, TIMESTEPS, abar, noise0).clamp(-1, 1)
    row = {"start": s, "t0": int(TIMESTEPS[s]), "t0/T": round(int(TIMESTEPS[s]) / T, 2),
           "faithfulness: PSNR outside edit (dB)": lab8.psnr(out, pic_bars, ~cells_mask),
           "realism: distance to nearest digit": lab8.nearest_digit_distance(out, CELLS)}
    trade.append(row)
    ax.imshow(out[0, 0], cmap="gray", vmin=-1, vmax=1)
    ax.set_title(f"t0 = {row['t0']}")
for ax in axes:
    ax.axis("off")
plt.tight_layout()
plt.show()
plots.table(trade, title="SDEdit: the t0 trade-off (one picture, three edited cells)")
effcourse.record("sdedit_tradeoff", [[r["t0"], r["faithfulness: PSNR outside edit (dB)"],
                                      r["realism: distance to nearest digit"]] for r in trade])

# %% [markdown]
# ## 4. SIGE across denoising steps
#
# An SDEdit run calls the network once per step, each time on a different $x_t$ and a different
# $t$. SIGE makes each call sparse with three rules that are new for diffusion (the tiles, gather,
# scatter and the engine are Lab 5's):
#
# 1. **One cache per step.** Before any edit, SDEdit is run *densely on the original picture* with
#    the same noise, and every step keeps its own activations: the cache of step $t$ is the run of
#    $\varepsilon_\theta(\cdot, t)$ on the original's $x_t$ (official SIGE keeps one cache per step
#    too). A cache from another step holds the wrong activations.
# 2. **One mask for all steps.** The difference mask is computed once, from the edited and the
#    original picture ($x_0$), **dilated** by a few pixels so the edit can blend into its
#    surroundings, and handed to every step. Outside the mask, every step reuses the original's
#    activations, so the output there *is* the original's output. This is an approximation: the
#    dense model would let the edit influence the whole picture through its large receptive field.
# 3. **Normalisation statistics of the original, same step.** GroupNorm normalises with statistics
#    of the whole picture; the sparse run cannot compute them, so it reuses the ones measured in the
#    original's run at the *same step* (they change a lot from step to step).
#
# The plumbing is given: `make_runner(model)` wraps a one-input network in Lab 5's `SparseRunner`
# (GroupNorm statistics frozen at `full`, one mask per resolution made from the `changed` mask it is
# given); `unet.at_step(t)` is the UNet with its time fixed (a one-input network);
# `runner.full(x)` runs densely and fills the cache, `runner.sparse(x, changed=mask)` reruns the
# masked region only. The tiles are yours: paste your Lab 5 `active_tiles`, `gather`, `scatter` and
# `SparseConv2d` into the next cell (Lab 5 grades them; here they only run). Paste the code itself:
# the grader runs this notebook on its own, without your Lab 5 file.
#
# **Exercises.** `edit_mask(x0, x0_edit, dilation)`; `cache_original(...)` (rule 1 and 3) and
# `sparse_edit(...)` (rule 2).

# %% nbgrader={"grade": false, "grade_id": "lab5_kernels", "locked": false, "schema_version": 3, "solution": true, "task": false}
# Your Lab 5 kernels, as you wrote them there: active_tiles, gather, scatter and SparseConv2d.
### BEGIN SOLUTION
def active_tiles(changed, kernel_size, stride, padding, tile):
    """Lab 5: the (n, 2) output tiles whose input block holds a changed pixel."""
    if changed.dim() != 2:
        raise ValueError(f"changed must be an (H, W) mask, got rank {changed.dim()}")
    H, W = changed.shape
    k, s, p, t = kernel_size, stride, padding, tile
    Ho, Wo = (H + 2 * p - k) // s + 1, (W + 2 * p - k) // s + 1
    if Ho < 1 or Wo < 1:
        raise ValueError(f"a {H}x{W} input is too small for kernel {k}, padding {p}")
    b, step = (t - 1) * s + k, t * s
    # the changed pixels' bounding box from two 1-D maxima: on the CPU a uint8 max is several times
    # faster than nonzero() over the whole mask
    u8 = (changed if changed.dtype == torch.bool else changed != 0).view(torch.uint8)
    cols = u8.amax(0).nonzero()                                        # (n_cols, 1): changed columns
    if cols.shape[0] == 0:
        return torch.zeros(0, 2, dtype=torch.long)
    cols = cols.view(-1).tolist()
    rows = u8[:, cols[0]:cols[-1] + 1].amax(1).nonzero().view(-1).tolist()
    (r0, r1), (c0, c1) = (rows[0], rows[-1]), (cols[0], cols[-1])
    # only the tiles whose blocks can meet the changed pixels' bounding box
    i0, i1 = max(0, -((b - 1 - r0 - p) // step)), min(-(-Ho // t) - 1, (r1 + p) // step)
    j0, j1 = max(0, -((b - 1 - c0 - p) // step)), min(-(-Wo // t) - 1, (c1 + p) // step)
    if i0 > i1 or j0 > j1:                                             # no block reads a changed pixel
        return torch.zeros(0, 2, dtype=torch.long)
    y0, y1 = i0 * step - p, i1 * step - p + b                          # input rows of their blocks (end excluded)
    x0, x1 = j0 * step - p, j1 * step - p + b
    crop = changed[max(y0, 0):min(y1, H), max(x0, 0):min(x1, W)].to(torch.float32)[None, None]   # (1, 1, h, w)
    pads = (max(0, -x0), max(0, x1 - W), max(0, -y0), max(0, y1 - H))
    if any(pads):
        crop = F.pad(crop, pads)                                       # zeros outside the image
    hit = F.max_pool2d(crop, b, step)[0, 0]                            # one value per tile of the box
    return hit.nonzero() + torch.tensor([i0, j0])


def gather(x, tiles, kernel_size, stride, padding, tile):
    """Lab 5: the (N*n, C, b, b) input blocks of the tiles, zeros outside the image."""
    N, C, H, W = x.shape
    n, b, step = tiles.shape[0], (tile - 1) * stride + kernel_size, tile * stride
    pixel_rows = x.permute(0, 2, 3, 1).reshape(N * H * W, C)          # one row per pixel; a view if channels-last
    if n == 0:
        return x.new_zeros(0, C, b, b)
    top_left = tiles * step - padding                                   # (n, 2): first input row, col of each block
    (r0, c0), (r1, c1) = (v.tolist() for v in torch.aminmax(top_left, dim=0))
    if r0 < 0 or c0 < 0 or r1 + b > H or c1 + b > W:
        # some blocks stick out of the image: clamp the positions, zero what lies outside below
        r = top_left[:, :1] + torch.arange(b)                           # (n, b) rows
        c = top_left[:, 1:] + torch.arange(b)                           # (n, b) cols
        inside = ((r >= 0) & (r < H))[:, :, None] & ((c >= 0) & (c < W))[:, None, :]
        pix = (r.clamp(0, H - 1)[:, :, None] * W + c.clamp(0, W - 1)[:, None, :]).reshape(n, b * b)
    else:
        inside = None
        window = torch.arange(b)[:, None] * W + torch.arange(b)         # (b, b) offsets inside a block
        pix = (top_left[:, 0] * W + top_left[:, 1]).unsqueeze(1) + window.reshape(-1)   # (n, b*b)
    if N > 1:
        pix = (torch.arange(N)[:, None, None] * (H * W) + pix).reshape(N * n, b * b)     # image-major
    blocks = pixel_rows.index_select(0, pix.reshape(-1)).view(N * n, b, b, C)
    if inside is not None:
        blocks.masked_fill_(~inside.repeat(N, 1, 1).unsqueeze(-1), 0)
    return blocks.permute(0, 3, 1, 2)                                   # (N*n, C, b, b), channels-last


def scatter(y_cached, y_tiles, tiles, tile, out=None):
    """Lab 5: y_cached with the tiles written in (into out, in place, when given)."""
    N, C, H, W = y_cached.shape
    n = tiles.shape[0]
    if out is None:
        out = y_cached.clone()
    if n == 0:
        return out
    vals = y_tiles.permute(0, 2, 3, 1).reshape(N * n * tile * tile, C)     # one row per output pixel
    r1, c1 = tiles.amax(dim=0).tolist()
    if (r1 + 1) * tile > H or (c1 + 1) * tile > W:
        # tiles at the bottom/right edge stick out: keep their pixels inside the image only
        r = tiles[:, :1] * tile + torch.arange(tile)                    # (n, t) rows
        c = tiles[:, 1:] * tile + torch.arange(tile)
        keep = ((r < H)[:, :, None] & (c < W)[:, None, :]).reshape(1, n * tile * tile).expand(N, -1).reshape(-1)
        pix = (r[:, :, None] * W + c[:, None, :]).reshape(n, tile * tile)
    else:
        keep = None
        window = torch.arange(tile)[:, None] * W + torch.arange(tile)   # (t, t) offsets inside a tile
        pix = ((tiles[:, 0] * W + tiles[:, 1]) * tile).unsqueeze(1) + window.reshape(-1)   # (n, t*t)
    if N > 1:
        pix = torch.arange(N)[:, None, None] * (H * W) + pix            # image-major, like y_tiles
    pix = pix.reshape(-1)
    if keep is not None:
        pix, vals = pix[keep], vals[keep]
    if out.is_contiguous(memory_format=torch.channels_last):
        out.permute(0, 2, 3, 1).view(N * H * W, C).index_copy_(0, pix, vals)    # whole rows, in place
    else:                                                               # another layout: index the 4-D view
        out.permute(0, 2, 3, 1)[pix // (H * W), pix % (H * W) // W, pix % W] = vals
    return out


class SparseConv2d(nn.Module):
    """Lab 5: an nn.Conv2d that recomputes only the active tiles in sparse mode."""

    def __init__(self, conv, tile=8):
        super().__init__()
        self.conv, self.tile, self.mode = conv, int(tile), "full"
        self.k, self.s, self.p = conv.kernel_size[0], conv.stride[0], conv.padding[0]
        self.x_cache = self.y_cache = self.tiles = None

    def forward(self, x, changed=None, out=None, epilogue=None):
        if self.mode == "full":
            y = self.conv(x)
            y = epilogue(y) if epilogue is not None else y
            self.x_cache, self.y_cache = x, y
            return y
        if changed is None:
            changed = (x - self.x_cache).abs().amax(dim=(0, 1)) != 0
        self.tiles = active_tiles(changed, self.k, self.s, self.p, self.tile)
        c = self.conv
        y = F.conv2d(gather(x, self.tiles, self.k, self.s, self.p, self.tile), c.weight, c.bias, c.stride, 0, 1,
                     c.groups)
        y = epilogue(y) if epilogue is not None else y
        return scatter(self.y_cache, y, self.tiles, self.tile, out=out)
### END SOLUTION


# %%
KERNELS = {"active_tiles": active_tiles, "gather": gather, "scatter": scatter}


def make_runner(model, tile=TILE):
    """Lab 5's engine on a one-input network: frozen GroupNorm statistics, one mask per resolution
    made from the `changed` mask of each sparse call (not dilated again)."""
    return SparseRunner(model, SparseConv2d, tile=tile, kernels=KERNELS, norms="reuse", masks="per_resolution",
                        dilation=0)


# %% [markdown]
# **Exercise.** `edit_mask(x0, x0_edit, dilation)`: the pixels where the edited picture differs from
# the original in any picture of the batch and any channel, dilated by `dilation` pixels in every
# direction (a $(2d+1) \times (2d+1)$ square around each changed pixel, clipped to the image).

# %% nbgrader={"grade": false, "grade_id": "edit_mask", "locked": false, "schema_version": 3, "solution": true, "task": false}
def edit_mask(x0, x0_edit, dilation):
    """(H, W) bool: True within `dilation` pixels (Chebyshev distance) of a pixel where x0_edit
    differs from x0 (any picture, any channel). x0, x0_edit: (N, C, H, W); dilation: int >= 0."""
    ### BEGIN SOLUTION
    changed = (x0_edit != x0).any(dim=1).any(dim=0)
    if dilation <= 0:
        return changed
    d = int(dilation)
    return F.max_pool2d(changed[None, None].float(), 2 * d + 1, 1, d)[0, 0] > 0
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_edit_mask", "locked": true, "points": 8, "schema_version": 3, "solution": false, "task": false}
import time

import torch

from effcourse.checks import lab8
from effcourse.checks.asserts import assert_true, call

lab8.check_edit_mask(edit_mask)
### BEGIN HIDDEN TESTS
from effcourse.checks.asserts import clock_seed
_seed = clock_seed()                       # a fresh seed from the clock (effcourse.checks.asserts)
_g = torch.Generator().manual_seed(_seed)
_at = f"[hidden test, seed {_seed}]"


def _mask_ref(a, b, d):
    ch = (a != b).any(1).any(0)
    H, W = ch.shape
    out = torch.zeros_like(ch)
    for r, c in ch.nonzero().tolist():
        out[max(0, r - d):min(H, r + d + 1), max(0, c - d):min(W, c + d + 1)] = True
    return out


for _i, (_shape, _d) in enumerate([((1, 1, 16, 16), 0), ((2, 3, 9, 13), 1), ((3, 1, 20, 7), 2), ((1, 2, 5, 5), 3),
                                   ((2, 1, 12, 12), 4), ((1, 1, 31, 17), 1)]):
    _a = torch.randn(_shape, generator=_g)
    _b = _a.clone()
    _n, _c = int(torch.randint(_shape[0], (1,), generator=_g)), int(torch.randint(_shape[1], (1,), generator=_g))
    _r, _q = int(torch.randint(_shape[2], (1,), generator=_g)), int(torch.randint(_shape[3], (1,), generator=_g))
    _b[_n, _c, _r:_r + 3, _q] += 1.0                           # a short stroke in one picture and channel
    _b[-1, -1, -1, 0] -= 0.5                                   # a corner pixel of the last picture
    if _i % 2:
        _b[0, 0, 0, -1] += 1e-3                                # a tiny change counts too
    _keep = _a.clone(), _b.clone()
    _what = f"edit_mask(x0 {_shape}, dilation={_d}) {_at}"
    _got = torch.as_tensor(call(_what, edit_mask, _a, _b, _d))
    _exp = _mask_ref(_keep[0], _keep[1], _d)
    assert_true(_got.shape == _exp.shape and _got.dtype == torch.bool,
                f"{_what}: expected an {tuple(_exp.shape)} bool mask, got {tuple(_got.shape)} {_got.dtype}")
    _diff = (_got != _exp).nonzero().tolist()
    assert_true(not _diff, f"{_what}: {len(_diff)} pixels differ from the expected mask, first at (row, col) = "
                           f"{_diff[:1]}; expected {bool(_exp[tuple(_diff[0])]) if _diff else ''} there")
    assert_true(torch.equal(_a, _keep[0]) and torch.equal(_b, _keep[1]), f"{_what} modified its inputs")
_z = torch.randn(2, 1, 6, 8, generator=_g)
_got = torch.as_tensor(call("edit_mask with no change", edit_mask, _z, _z.clone(), 2))
assert_true(_got.shape == (6, 8) and not bool(_got.any()), f"edit_mask of identical pictures must be all False {_at}")
### END HIDDEN TESTS

# %% [markdown]
# **Exercise.** `cache_original(eps_model, x0, start, timesteps, alphas_cumprod, noise, make_runner)`
# runs SDEdit on the **original** picture densely — exactly like your `sdedit` — but computes the
# noise prediction of step $t$ with a fresh runner of that step, `runner = make_runner(eps_model.at_step(t))`,
# and `runner.full(x_t)`, which also freezes that step's GroupNorm statistics. It returns the output
# and the dict of runners **keyed by the int timestep**. `sparse_edit(caches, x0_edit, mask, start,
# timesteps, alphas_cumprod, noise)` runs SDEdit on the edited picture with the same noise, taking
# the noise prediction of step $t$ from `caches[t].sparse(x_t, changed=mask)` — the same mask at every
# step, and never a `full` run (that would overwrite the original's cache and statistics).

# %% nbgrader={"grade": false, "grade_id": "sige_steps", "locked": false, "schema_version": 3, "solution": true, "task": false}
def cache_original(eps_model, x0, start, timesteps, alphas_cumprod, noise, make_runner):
    """Dense SDEdit of the original picture x0 that fills one cache per step.

    Returns:
        (x_out, caches): x_out as sdedit(eps_model, x0, start, ...) returns it; caches a dict
        {int(t): runner} for each t in timesteps[start:], runner = make_runner(eps_model.at_step(t))
        on which runner.full(x_t) computed that step's noise prediction.
    """
    ### BEGIN SOLUTION
    ts = [int(t) for t in timesteps]
    caches = {}
    x = q_sample(x0, torch.full((x0.shape[0],), ts[start], dtype=torch.long), noise, alphas_cumprod)
    for i in range(start, len(ts)):
        runner = caches[ts[i]] = make_runner(eps_model.at_step(ts[i]))
        t_prev = ts[i + 1] if i + 1 < len(ts) else -1
        x = ddim_step(runner.full(x), ts[i], t_prev, x, alphas_cumprod)
    return x, caches
    ### END SOLUTION


def sparse_edit(caches, x0_edit, mask, start, timesteps, alphas_cumprod, noise):
    """SDEdit of x0_edit (same noise, start and timesteps as the cached run), each step's noise
    prediction from caches[t].sparse(x_t, changed=mask). mask: (H, W) bool, the same at every step.

    Returns:
        (N, C, H, W) the edited output; the caches are left as they were (no full run).
    """
    ### BEGIN SOLUTION
    ts = [int(t) for t in timesteps]
    x = q_sample(x0_edit, torch.full((x0_edit.shape[0],), ts[start], dtype=torch.long), noise, alphas_cumprod)
    for i in range(start, len(ts)):
        t_prev = ts[i + 1] if i + 1 < len(ts) else -1
        x = ddim_step(caches[ts[i]].sparse(x, changed=mask), ts[i], t_prev, x, alphas_cumprod)
    return x
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_sige_steps", "locked": true, "points": 25, "schema_version": 3, "solution": false, "task": false}
import time

import torch

from effcourse import judge
from effcourse.checks import lab8
from effcourse.checks.asserts import assert_close, assert_true, call

lab8.check_sige_steps(cache_original, sparse_edit, make_runner)
### BEGIN HIDDEN TESTS
from effcourse.checks.asserts import clock_seed
import copy

from diffusers import DDIMScheduler

from effcourse.diffusion.unet import UNet
from effcourse.sparse.surgery import FrozenNorm

_seed = clock_seed()                       # a fresh seed from the clock (effcourse.checks.asserts)
_g = torch.Generator().manual_seed(_seed)
judge.manual_seed(_seed)
_at = f"[hidden test, seed {_seed}]"
torch.manual_seed(_seed)
_net = UNet(1, (8, 16, 16), 32).eval()
torch.nn.init.normal_(_net.outc.weight, std=0.05)
_yours = judge.twin(_net, "effcourse.diffusion.unet.UNet", 1, (8, 16, 16), 32)


def _frozen_run(net, t, x_orig, x_edit):
    """eps of x_edit at step t with every GroupNorm's statistics taken from the run on x_orig."""
    m = copy.deepcopy(net.at_step(t))
    for _mod in list(m.modules()):
        for _name, _child in list(_mod.named_children()):
            if isinstance(_child, torch.nn.GroupNorm):
                setattr(_mod, _name, FrozenNorm(_child))
    with torch.no_grad():
        m(x_orig)
        for _mod in m.modules():
            if isinstance(_mod, FrozenNorm):
                _mod.mode = "sparse"
        return m(x_edit)


for _n, _start, _shape in [(6, 2, (1, 1, 16, 24)), (5, 3, (2, 1, 24, 16))]:
    _ref = DDIMScheduler(num_train_timesteps=1000, beta_start=1e-4, beta_end=0.02, beta_schedule="linear",
                         clip_sample=False, set_alpha_to_one=True, steps_offset=0, timestep_spacing="leading")
    _ref.set_timesteps(_n)
    _ts, _abar = _ref.timesteps.clone(), _ref.alphas_cumprod.clone()
    _x0 = torch.rand(_shape, generator=_g) * 2 - 1
    _eps = torch.randn(_shape, generator=_g)
    _H, _W = _shape[-2:]
    _r, _c = int(torch.randint(0, _H - 6, (1,), generator=_g)), int(torch.randint(0, _W - 6, (1,), generator=_g))
    _edit = _x0.clone()
    _edit[..., _r:_r + 4, _c:_c + 5] = torch.rand(_shape[0], 1, 4, 5, generator=_g) * 2 - 1
    _mask = torch.zeros(_H, _W, dtype=torch.bool)
    _mask[max(0, _r - 2):_r + 6, max(0, _c - 2):_c + 7] = True
    _what = f"cache_original(n={_n}, start={_start}, x0 {_shape}) {_at}"
    # the dense original trajectory, by diffusers
    _xs = []
    with torch.no_grad():
        _x = _ref.add_noise(_x0, _eps, _ts[_start].expand(_shape[0]))
        for _t in _ts[_start:].tolist():
            _xs.append(_x)
            _x = _ref.step(_net(_x, _t), _t, _x, eta=0.0).prev_sample
    _got = call(_what, cache_original, _yours, _x0, _start, _ts, _abar, _eps, make_runner)
    assert_true(isinstance(_got, (tuple, list)) and len(_got) == 2, f"{_what}: expected (x_out, caches)")
    _out, _caches = _got
    assert_close(_what + " output", _out, _x, atol=2e-4, rtol=1e-4)
    _keys = sorted(int(k) for k in _caches.keys())
    assert_true(_keys == sorted(_ts[_start:].tolist()),
                f"{_what}: caches must be keyed by the int timesteps {_ts[_start:].tolist()}, got keys {_keys}")
    # 1. a local edit: outside the mask, every step reuses the original's activations, so the output
    #    there is the original's output
    _what = f"sparse_edit(n={_n}, start={_start}, a {4}x{5} edit at ({_r}, {_c}), dilated mask) {_at}"
    _sp = call(_what, sparse_edit, _caches, _edit, _mask, _start, _ts, _abar, _eps)
    _out_m = (~_mask).expand(_shape)
    assert_close(_what + ", outside the mask (must equal the original's output)", _sp[_out_m], _x[_out_m],
                 atol=2e-4, rtol=1e-4)
    _moved = float((_sp - _x)[_mask.expand(_shape)].abs().max())
    assert_true(_moved > 1e-3, f"{_what}: the output inside the mask did not change ({_moved:.1e}): the edit was lost")
    # 2. a mask that covers everything and an edit of the whole picture: every pixel is recomputed, each
    #    step with the GroupNorm statistics of the ORIGINAL's run at the SAME step
    _edit2 = (_x0 * 0.5 + 0.3 * torch.randn(_shape, generator=_g)).clamp(-1, 1)
    _all = torch.ones(_H, _W, dtype=torch.bool)
    _exp = None
    with torch.no_grad():
        _xe = _ref.add_noise(_edit2, _eps, _ts[_start].expand(_shape[0]))
        for _k, _t in enumerate(_ts[_start:].tolist()):
            _xe = _ref.step(_frozen_run(_net, _t, _xs[_k], _xe), _t, _xe, eta=0.0).prev_sample
    _what = f"sparse_edit(n={_n}, start={_start}, an edit of the whole picture, mask all True) {_at}"
    _sp = call(_what, sparse_edit, _caches, _edit2, _all, _start, _ts, _abar, _eps)
    assert_close(_what + " (GroupNorm statistics of the original's run at the same step)", _sp, _xe,
                 atol=5e-4, rtol=1e-3)
    # 3. the caches are left as they were: the local edit again gives the same answer
    _what = f"sparse_edit after other sparse_edit calls (the caches must not change) {_at}"
    _sp2 = call(_what, sparse_edit, _caches, _x0.clone(), _mask, _start, _ts, _abar, _eps)
    assert_close(_what + ": an unedited picture must give the original's output", _sp2, _x, atol=2e-4, rtol=1e-4)
### END HIDDEN TESTS

# %% [markdown]
# ## 5. Measure: dense vs sparse over the whole edit
#
# The original picture is cached once (`cache_original`, dense, all steps). Then three edits paste a
# square of another picture over about 1 %, 5 % and 20 % of the image; each is run densely
# (`sdedit`) and sparsely (`sparse_edit` with its dilated mask), alternating, `REPEATS` rounds,
# medians, one thread. MACs are counted over all steps; the error is the sparse output against the
# dense recomputation of the same edit; the memory is what the per-step caches keep.

# %% tags=["experiment"]
START = round(0.4 * STEPS)                           # t0 = TIMESTEPS[START], a little above T/2
DILATION = 2
other = ddata.picture(GRID, GRID, seed=SEED + 7)
t0 = time.perf_counter()
orig_out, caches = cache_original(unet, pic, START, TIMESTEPS, abar, noise0, make_runner)
print(f"cached {len(caches)} steps (t0 = {int(TIMESTEPS[START])}) in {time.perf_counter() - t0:.1f} s")
FRACTIONS = effcourse.pick(full=(0.01, 0.05, 0.20), smoke=(0.05,))
rows = lab8.measure_edits(unet, caches, pic, other, FRACTIONS, DILATION, START, TIMESTEPS, abar, noise0,
                          sdedit, sparse_edit, edit_mask, repeats=REPEATS)
plots.table(rows, title=f"SIGE across {len(caches)} DDIM steps, {8 * GRID}x{8 * GRID}, tile {TILE}, 1 thread")
by_frac = {r["edit %"]: r for r in rows}
effcourse.record("sige_rows", [[r["edit %"], r["mask %"], r["MAC ratio"], r["speedup"], r["max err"], r["PSNR dB"]]
                               for r in rows])
effcourse.record("cache_mb_per_step", rows[0]["cache MB/step"])

# %% [markdown]
# What the sparse run recomputed at the 5 % edit: the mask (white) and, per resolution, the tiles
# of the first conv at that resolution.

# %% tags=["experiment"]
mid = FRACTIONS[len(FRACTIONS) // 2]
edited, _ = ddata.square_patch(pic, mid, other)
m5 = edit_mask(pic, edited, DILATION)
sp5 = sparse_edit(caches, edited, m5, START, TIMESTEPS, abar, noise0)
de5 = sdedit(eps_fn, edited, START, TIMESTEPS, abar, noise0)
fig, axes = plt.subplots(1, 5, figsize=(13, 2.8))
for ax, img, title in zip(axes, [pic, edited, de5, sp5], ["original", "crude edit", "dense SDEdit", "SIGE SDEdit"]):
    ax.imshow(img[0, 0].clamp(-1, 1), cmap="gray", vmin=-1, vmax=1)
    ax.set_title(title)
axes[4].imshow((sp5 - de5)[0, 0].abs(), cmap="magma")
axes[4].set_title("|SIGE - dense|")
lab8.draw_mask_tiles(axes[2], m5, TILE)
for ax in axes:
    ax.axis("off")
plt.tight_layout()
plt.show()

# %% [markdown]
# ## 6. Paper vs. you

# %% tags=["experiment"]
r1 = by_frac[min(by_frac)]
r5 = by_frac[sorted(by_frac)[len(by_frac) // 2]]
plots.table([
    {"claim": "MAC reduction, DDIM, ~1.2 % edit", "paper": "7.5× [lecture; SIGE paper Table 1]",
     "you": f"{r1['MAC ratio']:.1f}× at a {r1['edit %']:g} % edit ({r1['mask %']:.1f} % after dilation)"},
    {"claim": "CPU speedup, DDIM, ~1.2 % edit", "paper": "6.6× on an M1 Pro CPU, C++ kernels [SIGE paper]",
     "you": f"{r1['speedup']:.1f}× (PyTorch ops, 1 thread, {len(caches)} steps)"},
    {"claim": "realised fraction of the MAC ratio", "paper": "88 % (6.6 / 7.5)",
     "you": f"{100 * r1['realised']:.0f} % at {r1['edit %']:g} %, {100 * r5['realised']:.0f} % at {r5['edit %']:g} %"},
    {"claim": "quality", "paper": "PSNR vs the dense model's edit: high, close to dense (approximate: masks, "
                                  "reused GroupNorm statistics)",
     "you": f"PSNR {r1['PSNR dB']:.1f} dB / max err {r1['max err']:.2f} at {r1['edit %']:g} %"},
    {"claim": "memory for time", "paper": "activations cached for every step",
     "you": f"{r1['cache MB/step']:.1f} MB per step × {len(caches)} steps = {r1['cache MB total']:.0f} MB"},
], title="Paper vs. you")
effcourse.record("realised_5pct", r5["realised"])

# %% [markdown]
# ## 7. Try it: edit a cell, watch the tiles
#
# Pick a grid cell and a digit to put there: the widget shows the crude edit, the dense and the
# sparse SDEdit, the recomputed tiles, and the time of one edit both ways.

# %% tags=["experiment"]
from effcourse.widgets import diffusion_editor

diffusion_editor(pic, caches, lambda x0e: sdedit(eps_fn, x0e, START, TIMESTEPS, abar, noise0),
                 lambda x0e, m: sparse_edit(caches, x0e, m, START, TIMESTEPS, abar, noise0),
                 lambda x0e: edit_mask(pic, x0e, DILATION), tile=TILE)

# %% [markdown]
# ## 8. Questions
#
# **Q1 (5 points).** From your SDEdit table in section 3: as $t_0$ grows, how do faithfulness and
# realism move? Which $t_0$ would you pick for these crude bars, and why? Quote your numbers.

# %% [markdown] nbgrader={"grade": true, "grade_id": "q1_t0_tradeoff", "locked": false, "points": 5, "schema_version": 3, "solution": true, "task": false}
# Faithfulness (PSNR outside the edit) falls as $t_0$ grows — the sampler regenerates more of the
# picture — while the edited cells move closer to real digits (the nearest-digit distance falls). A
# middle $t_0$ (about $T/2$ in the reference run) keeps the rest recognisable and turns the bars
# into digit-like strokes; the numbers come from the learner's table.

# %% [markdown]
# **Q2 (5 points).** From your section 5 table: at which edit size is the realised fraction of the
# MAC ratio highest, and why does it fall at the others? Name the two costs the MAC ratio ignores
# and estimate, from your numbers, the fixed cost per step of the sparse run.

# %% [markdown] nbgrader={"grade": true, "grade_id": "q2_realised", "locked": false, "points": 5, "schema_version": 3, "solution": true, "task": false}
# Highest at the largest edit (20 %: about 0.8-0.9 of the ratio in the reference runs), lowest at
# 1 % (about 0.2-0.3). The MAC ratio counts only the convolutions on the gathered blocks; the sparse
# run also pays a fixed cost per layer and per step (masks, tile lists, gather and scatter copies,
# restoring the previous edit's pixels, Python dispatch) and the halo of each tile (blocks overlap).
# The fixed cost does not shrink with the edit, so it weighs most when the recomputed work is
# smallest. Fixed cost per step ≈ (sparse time − dense time / MAC ratio) / steps.

# %% [markdown]
# **Q3 (5 points).** SIGE trades memory for time. Using your numbers, how much memory would the
# caches of a 50-step edit at 512 × 512 take with this network (scale your per-step number), and
# what would you drop first if it did not fit? Where is the sparse output approximate, and how do
# your max error and PSNR show it?

# %% [markdown] nbgrader={"grade": true, "grade_id": "q3_memory_quality", "locked": false, "points": 5, "schema_version": 3, "solution": true, "task": false}
# Memory grows with pixels × steps: (512/128)² = 16 times the per-step number, × 50 steps. One would
# keep only the activations the sparse layers read at the tile borders, or store them in half
# precision, or cache fewer steps. The output is approximate outside the mask (the dense model lets
# the edit spread everywhere) and through the reused GroupNorm statistics; the max error sits at the
# mask's border, the PSNR stays high because most pixels are untouched.
