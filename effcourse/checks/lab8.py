"""Public self-checks and measurement plumbing for Lab 8 (DDIM, SDEdit, SIGE across denoising steps).

The checks test properties (shapes, monotonicity, exact round trips through the forward process),
never an exercise's answer; the hidden tests compare with ``diffusers``. ``measure_edits`` times
the learner's dense and sparse SDEdit in one interleaved run.
"""
from __future__ import annotations

import math
import statistics
import time
from typing import Callable, Sequence

import torch
from torch.utils.flop_counter import FlopCounterMode

from ..diffusion import data as ddata
from ..diffusion.unet import UNet
from .asserts import CheckFailed, assert_close, assert_shape, assert_true, call, passed

__all__ = ["CheckFailed", "default_schedule", "check_schedule", "check_ddim", "check_sdedit", "check_edit_mask",
           "check_sige_steps", "psnr", "nearest_digit_distance", "measure_edits", "draw_mask_tiles", "tiny_unet"]


def default_schedule(T: int = 1000) -> tuple[torch.Tensor, torch.Tensor]:
    """``(betas, alphas_cumprod)`` of a linear schedule, for the self-checks (float32)."""
    betas = torch.linspace(1e-4, 0.02, T, dtype=torch.float64)
    return betas.float(), torch.cumprod(1 - betas, 0).float()


def check_schedule(linear_schedule: Callable | None, q_sample: Callable | None) -> None:
    """Shapes, ends and monotonicity of the schedule; q_sample at abar = 1 and abar = 0."""
    if linear_schedule is not None:
        betas, abar = call("linear_schedule(10, 0.1, 0.5)", linear_schedule, 10, 0.1, 0.5)
        assert_shape("betas", betas, (10,))
        assert_shape("alphas_cumprod", abar, (10,))
        assert_true(betas.dtype == torch.float32 and abar.dtype == torch.float32, "return float32 tensors")
        assert_true(abs(float(betas[0]) - 0.1) < 1e-6 and abs(float(betas[-1]) - 0.5) < 1e-6,
                    "betas must run from beta_start to beta_end inclusive, got "
                    f"{float(betas[0])} ... {float(betas[-1])}")
        assert_true(abs(float(abar[0]) - 0.9) < 1e-6,
                    f"alphas_cumprod[0] must be 1 - betas[0] = 0.9, got {float(abar[0])}")
        assert_true(bool((abar[1:] < abar[:-1]).all()), "alphas_cumprod must decrease")
        passed("linear_schedule: shapes, ends, alphas_cumprod[0] = 1 - beta_0, decreasing")
    if q_sample is not None:
        g = torch.Generator().manual_seed(0)
        x0, eps = torch.randn(3, 1, 4, 5, generator=g), torch.randn(3, 1, 4, 5, generator=g)
        abar = torch.tensor([1.0, 0.25, 0.0])
        got = call("q_sample", q_sample, x0, torch.tensor([0, 1, 2]), eps, abar)
        assert_shape("q_sample", got, (3, 1, 4, 5))
        assert_close("q_sample with abar = 1 (no noise)", got[0], x0[0])
        assert_close("q_sample with abar = 0 (only noise)", got[2], eps[2])
        assert_close("q_sample with abar = 0.25: weights sqrt(abar) = 0.5 and sqrt(1 - abar) = 0.866", got[1],
                     0.5 * x0[1] + 0.75 ** 0.5 * eps[1])
        passed("q_sample: abar = 1 gives x0, abar = 0 the noise, abar = 0.25 weights 0.5 and 0.866")


def check_ddim(ddim_timesteps: Callable | None, ddim_step: Callable | None, abar: torch.Tensor | None) -> None:
    """Timesteps decreasing and ending at 0; a DDIM step with the true noise recovers x0 exactly."""
    if ddim_timesteps is not None:
        ts = torch.as_tensor(call("ddim_timesteps(1000, 10)", ddim_timesteps, 1000, 10))
        assert_true(ts.shape == (10,) and ts.dtype == torch.long,
                    f"expected a (10,) LongTensor, got {tuple(ts.shape)} {ts.dtype}")
        assert_true(int(ts[-1]) == 0 and bool((ts[1:] < ts[:-1]).all()),
                    f"timesteps must decrease to 0, got {ts.tolist()}")
        passed("ddim_timesteps: n decreasing timesteps ending at 0")
    if ddim_step is not None:
        abar = default_schedule()[1] if abar is None else abar
        g = torch.Generator().manual_seed(1)
        x0, eps = torch.randn(2, 1, 6, 6, generator=g), torch.randn(2, 1, 6, 6, generator=g)
        t = 600
        xt = abar[t].sqrt() * x0 + (1 - abar[t]).sqrt() * eps
        got = call("ddim_step(eps, 600, -1, x_t)", ddim_step, eps, t, -1, xt, abar)
        assert_close("ddim_step to t_prev = -1 with the true noise must return x0", got, x0, atol=1e-4, rtol=1e-4)
        got = call("ddim_step(eps, 600, 300, x_t)", ddim_step, eps, t, 300, xt, abar)
        exp = abar[300].sqrt() * x0 + (1 - abar[300]).sqrt() * eps
        assert_close("ddim_step with the true noise must land on q(x_300 | x0) with the same noise", got, exp,
                     atol=1e-4, rtol=1e-4)
        passed("ddim_step: with the true noise it moves along the same noise to any earlier step")


def tiny_unet(seed: int = 0) -> UNet:
    """A small random ``UNet(1, (8, 16, 16), 32)`` whose output is not zero (for checks)."""
    torch.manual_seed(seed)
    net = UNet(1, (8, 16, 16), 32).eval()
    torch.nn.init.normal_(net.outc.weight, std=0.05)
    return net


def check_sdedit(sdedit: Callable) -> None:
    """With a model that always predicts the noise that was added, SDEdit returns x0 (any start)."""
    g = torch.Generator().manual_seed(2)
    x0, eps = torch.rand(2, 1, 8, 8, generator=g) * 2 - 1, torch.randn(2, 1, 8, 8, generator=g)
    _, abar = default_schedule()
    ts = torch.arange(9, -1, -1) * 100
    oracle = lambda x, t: eps          # noqa: E731 - the noise that was added, at every step
    for start in (0, 4, 9):
        got = call(f"sdedit(oracle, x0, start={start})", sdedit, oracle, x0, start, ts, abar, eps)
        assert_close(f"sdedit with a model that predicts the added noise, start={start}: must return x0", got, x0,
                     atol=1e-3, rtol=1e-3)
    calls = []

    def counting(x, t):
        calls.append(int(t))
        return torch.zeros_like(x)

    call("sdedit(counting model, start=6)", sdedit, counting, x0, 6, ts, abar, eps)
    assert_true(calls == ts[6:].tolist(),
                f"start=6 must call the model at timesteps {ts[6:].tolist()}, called at {calls}")
    passed("sdedit: exact with an oracle model; the model is called once per remaining timestep")


def check_edit_mask(edit_mask: Callable) -> None:
    a = torch.zeros(1, 1, 7, 7)
    b = a.clone()
    b[0, 0, 3, 3] = 1
    for d, n in ((0, 1), (1, 9), (2, 25), (5, 49)):
        m = torch.as_tensor(call(f"edit_mask(dilation={d})", edit_mask, a, b, d))
        assert_true(m.shape == (7, 7) and m.dtype == torch.bool,
                    f"expected a (7, 7) bool mask, got {tuple(m.shape)} {m.dtype}")
        assert_true(int(m.sum()) == n, f"one changed pixel dilated by {d} must cover {n} pixels, got {int(m.sum())}")
    passed("edit_mask: one changed pixel grows into a (2d+1) x (2d+1) square")


def check_sige_steps(cache_original: Callable, sparse_edit: Callable, make_runner: Callable) -> None:
    """Keys are the timesteps; an unedited picture reproduces the cached output; outside the mask a
    local edit keeps the original's output."""
    net = tiny_unet(3)
    _, abar = default_schedule()
    ts = torch.arange(4, -1, -1) * 200
    g = torch.Generator().manual_seed(4)
    x0, eps = torch.rand(1, 1, 16, 16, generator=g) * 2 - 1, torch.randn(1, 1, 16, 16, generator=g)
    out, caches = call("cache_original", cache_original, net, x0, 1, ts, abar, eps, make_runner)
    assert_true(isinstance(caches, dict) and sorted(int(k) for k in caches) == sorted(ts[1:].tolist()),
                f"caches must be a dict keyed by the timesteps {ts[1:].tolist()}")
    same = call("sparse_edit(unedited)", sparse_edit, caches, x0.clone(), torch.zeros(16, 16, dtype=torch.bool), 1, ts,
                abar, eps)
    assert_close("sparse_edit of the unedited picture must return the cached run's output", same, out, atol=1e-4)
    edit = x0.clone()
    edit[..., 4:7, 5:9] = 1.0
    mask = torch.zeros(16, 16, dtype=torch.bool)
    mask[2:9, 3:11] = True
    got = call("sparse_edit(local edit)", sparse_edit, caches, edit, mask, 1, ts, abar, eps)
    assert_close("sparse_edit outside the mask must equal the original's output", got[..., ~mask], out[..., ~mask],
                 atol=1e-4)
    assert_true(float((got - out)[..., mask].abs().max()) > 1e-3, "sparse_edit lost the edit inside the mask")
    passed("cache_original / sparse_edit: per-step keys, unchanged outside the mask, the edit kept inside")


# ------------------------------------------------------------------------------------------ measurement

def psnr(a: torch.Tensor, b: torch.Tensor, where: torch.Tensor | None = None, data_range: float = 2.0) -> float:
    """PSNR in dB of ``a`` against ``b`` (pictures in [-1, 1]), over the pixels of the (H, W) mask ``where``."""
    d = (a - b).pow(2)
    if where is not None:
        d = d[..., where]
    mse = float(d.mean())
    return float("inf") if mse == 0 else 10 * math.log10(data_range ** 2 / mse)


def nearest_digit_distance(pic: torch.Tensor, cells: Sequence[tuple[int, int]]) -> float:
    """Mean over ``cells`` of the RMS distance from the 8x8 cell of ``pic`` (1, 1, H, W) to its nearest
    bundled digit (lower: more digit-like)."""
    pool = ddata.digits().reshape(-1, 64)
    out = []
    for r, c in cells:
        crop = pic[0, 0, 8 * r:8 * r + 8, 8 * c:8 * c + 8].reshape(1, 64)
        out.append(float((pool - crop).pow(2).mean(1).min().sqrt()))
    return sum(out) / len(out)


def _macs(fn: Callable, *args) -> int:
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        fn(*args)
    return counter.get_total_flops() // 2


def measure_edits(unet: UNet, caches: dict, pic: torch.Tensor, other: torch.Tensor, fractions: Sequence[float],
                  dilation: int, start: int, timesteps: torch.Tensor, abar: torch.Tensor, noise: torch.Tensor,
                  sdedit: Callable, sparse_edit: Callable, edit_mask: Callable, repeats: int = 5) -> list[dict]:
    """One interleaved run: for each edited fraction, a square of ``other`` pasted into ``pic``, run
    densely (``sdedit(unet, ...)``) and sparsely (``sparse_edit(caches, ...)``) in turn, ``repeats``
    rounds after one warm-up each; medians. One row per fraction: edit and mask %, MAC ratio over
    all steps, speedup, realised fraction, max error and PSNR against the dense edit, cache memory."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        eps_fn = lambda x, t: unet(x, t)       # noqa: E731
        cases = []
        for f in fractions:
            edited, _ = ddata.square_patch(pic, f, other)
            mask = torch.as_tensor(edit_mask(pic, edited, dilation))
            cases.append((f, edited, mask))
        dense = {f: (lambda e=e: sdedit(eps_fn, e, start, timesteps, abar, noise)) for f, e, _ in cases}
        sparse = {f: (lambda e=e, m=m: sparse_edit(caches, e, m, start, timesteps, abar, noise)) for f, e, m in cases}
        times = {(f, k): [] for f, _, _ in cases for k in ("dense", "sparse")}
        with torch.no_grad():
            for f, _, _ in cases:
                dense[f]()
                sparse[f]()
            for _ in range(max(1, repeats)):
                for f, _, _ in cases:
                    for kind, fn in (("dense", dense[f]), ("sparse", sparse[f])):
                        t0 = time.perf_counter()
                        fn()
                        times[(f, kind)].append(time.perf_counter() - t0)
        per_step = sum(r.cache_bytes() for r in caches.values()) / len(caches)
        rows = []
        for f, _, mask in cases:
            with torch.no_grad():
                yd, ys = dense[f](), sparse[f]()
            md, ms = _macs(dense[f]), _macs(sparse[f])
            td, ts_ = statistics.median(times[(f, "dense")]), statistics.median(times[(f, "sparse")])
            ratio, speed = md / max(ms, 1), td / ts_
            rows.append({"edit %": round(100 * f, 1), "mask %": round(100 * float(mask.float().mean()), 1),
                         "MAC ratio": round(ratio, 2), "dense ms": round(1e3 * td, 1), "sparse ms": round(1e3 * ts_, 1),
                         "speedup": round(speed, 2), "realised": round(speed / ratio, 3),
                         "max err": round(float((ys - yd).abs().max()), 4), "PSNR dB": round(psnr(ys, yd), 1),
                         "cache MB/step": round(per_step / 2**20, 2),
                         "cache MB total": round(per_step * len(caches) / 2**20, 1)})
        return rows
    finally:
        torch.set_num_threads(threads)


def draw_mask_tiles(ax, mask: torch.Tensor, tile: int, color: str = "cyan") -> None:
    """Outline on ``ax`` the ``tile`` x ``tile`` output tiles of a 3x3 conv at full resolution that
    the (H, W) ``mask`` reaches (a tile is drawn when it lies within one pixel of the mask)."""
    import matplotlib.patches as patches

    H, W = mask.shape
    grown = torch.nn.functional.max_pool2d(mask[None, None].float(), 3, 1, 1)[0, 0] > 0
    nh, nw = -(-H // tile), -(-W // tile)
    for i in range(nh):
        for j in range(nw):
            if bool(grown[i * tile:(i + 1) * tile, j * tile:(j + 1) * tile].any()):
                ax.add_patch(patches.Rectangle((j * tile - 0.5, i * tile - 0.5), tile, tile, fill=False,
                                               edgecolor=color, linewidth=0.8))
