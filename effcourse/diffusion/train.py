"""DDPM training for Lab 8's model (used by ``data_scripts/train_lab8_ddpm.py``) and the shipped weights.

``train_ddpm(unet, q_sample, alphas_cumprod, steps, ...)`` minimises ``|| eps - unet(x_t, t) ||^2``
with ``x_t = q_sample(x0, t, eps, alphas_cumprod)`` on random digit grids (``data.digit_grids``),
``t`` uniform in ``[0, T)``; Adam, an exponential moving average of the weights. The forward process
is an argument (the instructor script passes its own). ``load_pretrained()`` returns the EMA UNet
of the asset ``lab8_ddpm`` in eval mode and its config (``{"T", "beta_start", "beta_end", ...}``).
"""
from __future__ import annotations

import copy
import time
from typing import Callable

import torch
import torch.nn.functional as F

from effcourse.assets import load_asset

from .data import digit_grids, digits
from .unet import UNet

__all__ = ["train_ddpm", "load_pretrained"]


def train_ddpm(unet: UNet, q_sample: Callable, alphas_cumprod: torch.Tensor, steps: int, batch: int = 32,
               crop: tuple[int, int] = (4, 4), lr: float = 2e-3, ema: float = 0.995, seed: int = 0,
               log_every: int = 100) -> tuple[UNet, list[float]]:
    """Train ``unet`` in place; returns ``(ema_copy, losses)``. ``crop``: digits per side of a training picture."""
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    pool = digits()
    T = len(alphas_cumprod)
    avg = copy.deepcopy(unet).eval()
    opt = torch.optim.Adam(unet.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: min(1.0, (i + 1) / 200))
    losses, t0 = [], time.time()
    unet.train()
    for i in range(steps):
        x0 = digit_grids(batch, crop[0], crop[1], gen, pool)
        t = torch.randint(T, (batch,), generator=gen)
        eps = torch.randn(x0.shape, generator=gen)
        loss = F.mse_loss(unet(q_sample(x0, t, eps, alphas_cumprod), t), eps)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
        opt.step()
        sched.step()
        decay = min(ema, (1 + i) / (10 + i))
        with torch.no_grad():
            for pa, p in zip(avg.parameters(), unet.parameters()):
                pa.lerp_(p, 1 - decay)
        losses.append(loss.item())
        if log_every and (i + 1) % log_every == 0:
            print(f"step {i + 1}/{steps}  loss {sum(losses[-log_every:]) / log_every:.4f}  {time.time() - t0:.0f} s",
                  flush=True)
    unet.eval()
    return avg, losses


def load_pretrained(name: str = "lab8_ddpm") -> tuple[UNet, dict]:
    """``(unet, config)``: the shipped EMA weights in a ``UNet`` (eval mode, float32) and their config."""
    obj = load_asset(name)
    cfg = dict(obj["config"])
    unet = UNet(in_ch=1, channels=tuple(cfg["channels"]), tdim=cfg["tdim"])
    unet.load_state_dict({k: v.float() for k, v in obj["unet"].items()})
    return unet.eval(), cfg
