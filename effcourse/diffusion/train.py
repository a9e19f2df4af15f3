"""DDPM training for Lab 8's model (used by ``data_scripts/train_lab8_ddpm.py``) and the shipped weights.

``train_ddpm(unet, q_sample, alphas_cumprod, loop=Loop(...))`` minimises ``|| eps - unet(x_t, t) ||^2``
with ``x_t = q_sample(x0, t, eps, alphas_cumprod)`` on random digit grids (``data.digit_grids``),
``t`` uniform in ``[0, T)``; Adam, an ``EMA`` of the weights, a ``History`` of the loss. The forward process
is an argument (the instructor script passes its own). ``load_pretrained()`` returns the EMA UNet
of the asset ``lab8_ddpm`` in eval mode and its config (``{"T", "beta_start", "beta_end", ...}``).
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from effcourse.assets import load_asset
from effcourse.training import EMA, History, Loop

from .data import digit_grids, digits
from .unet import UNet

__all__ = ["train_ddpm", "load_pretrained"]


def train_ddpm(unet: UNet, q_sample: Callable, alphas_cumprod: torch.Tensor, *, loop: Loop,
               crop: tuple[int, int] = (4, 4), lr: float = 2e-3, ema: float = 0.995) -> tuple[UNet, History]:
    """Train ``unet`` in place for ``loop.steps`` steps of ``loop.batch_size`` pictures (random digit
    grids of ``crop`` digits per side, ``(B, 1, 8 * crop[0], 8 * crop[1])``); returns ``(ema_copy,
    history)``, the history's ``loss`` logged every ``loop.log_every`` steps.

    Adam (``lr``, 200 linear warm-up steps), gradient norm clipped at 1; the copy is an ``EMA`` of
    the weights (decay ``min(ema, (1 + i) / (10 + i))`` at 0-based step ``i``). The random stream
    (a generator seeded with ``loop.seed`` for the data, t and eps) is the one the shipped
    ``lab8_ddpm`` weights were trained with.
    """
    gen = torch.Generator().manual_seed(loop.seed)
    torch.manual_seed(loop.seed)
    pool = digits()
    T = len(alphas_cumprod)
    avg = EMA(unet, ema, warmup=True, buffers=False, start=-1)   # warm-up from step 0, as the shipped weights were
    opt = torch.optim.Adam(unet.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: min(1.0, (i + 1) / 200))
    hist = loop.history()
    unet.train()
    bar = loop.bar()
    for i in bar:
        x0 = digit_grids(loop.batch_size, crop[0], crop[1], gen, pool)
        t = torch.randint(T, (loop.batch_size,), generator=gen)
        eps = torch.randn(x0.shape, generator=gen)
        loss = F.mse_loss(unet(q_sample(x0, t, eps, alphas_cumprod), t), eps)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
        opt.step()
        sched.step()
        avg.update(unet)
        if loop.logs(i):
            hist.log(i + 1, loss=loss)
            bar.set_postfix(loss=f"{hist.last('loss'):.4f}")
    unet.eval()
    hist.close()
    return avg.model, hist


def load_pretrained(name: str = "lab8_ddpm") -> tuple[UNet, dict]:
    """``(unet, config)``: the shipped EMA weights in a ``UNet`` (eval mode, float32) and their config."""
    obj = load_asset(name)
    cfg = dict(obj["config"])
    unet = UNet(in_ch=1, channels=tuple(cfg["channels"]), tdim=cfg["tdim"])
    unet.load_state_dict({k: v.float() for k, v in obj["unet"].items()})
    return unet.eval(), cfg
