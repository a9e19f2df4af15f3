"""Asset ``lab8_ddpm``: the small DDPM UNet that Lab 8 samples and edits with (instructor script).

    python -m data_scripts.train_lab8_ddpm            # train and write effcourse/assets/lab8_ddpm.pt
    python -m data_scripts.build_assets lab8_ddpm      # the same, through the asset builder

Model: ``effcourse.diffusion.unet.UNet(channels=(32, 64, 64))`` (about 0.45 M parameters), noise
prediction. Data: random 4x4 grids of the 1797 bundled 8x8 digits (32x32 pictures, values in
[-1, 1]); the network is fully convolutional, so the lab runs it on 64x64 pictures (8x8 digits).
Schedule: T = 1000, betas linear from 1e-4 to 0.02 (the DDPM paper's, diffusers' "linear").
Training: Adam, lr 2e-3 (200 warm-up steps), batch 32, gradient norm clipped at 1, uniform t,
loss || eps - eps_theta(x_t, t) ||^2; the weights shipped are the EMA (0.995), stored as float16.
One CPU thread, deterministic from the seed. The forward process below is the instructor's own
(the lab's exercise writes it again).
"""
from __future__ import annotations

import time

import torch

from effcourse.diffusion.train import train_ddpm
from effcourse.diffusion.unet import UNet, count_params
from effcourse.training import Loop

SEED = 0
T, BETA_START, BETA_END = 1000, 1e-4, 0.02
CHANNELS, TDIM = (32, 64, 64), 128
STEPS, QUICK_STEPS = 1200, 3
BATCH, LR, EMA = 32, 2e-3, 0.995


def _schedule() -> torch.Tensor:
    betas = torch.linspace(BETA_START, BETA_END, T, dtype=torch.float64)
    return torch.cumprod(1 - betas, 0).to(torch.float32)


def _q_sample(x0, t, eps, abar):
    a = abar[t].view(-1, 1, 1, 1)
    return a.sqrt() * x0 + (1 - a).sqrt() * eps


def build(quick: bool = False) -> dict:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(SEED)
        unet = UNet(in_ch=1, channels=CHANNELS, tdim=TDIM)
        steps = QUICK_STEPS if quick else STEPS
        t0 = time.time()
        avg, hist = train_ddpm(unet, _q_sample, _schedule(), lr=LR, ema=EMA,
                               loop=Loop(steps=steps, batch_size=BATCH, seed=SEED, desc="lab8_ddpm",
                                         progress=not quick))
        minutes = (time.time() - t0) / 60
        tail = hist.mean("loss", last=100)
        print(f"lab8_ddpm: {count_params(unet)} parameters, {steps} steps in {minutes:.1f} min, final loss {tail:.4f}")
        return {"unet": {k: v.detach().to(torch.float16).contiguous() for k, v in avg.state_dict().items()},
                "config": {"T": T, "beta_start": BETA_START, "beta_end": BETA_END, "channels": list(CHANNELS),
                           "tdim": TDIM, "steps": steps, "batch": BATCH, "lr": LR, "ema": EMA, "seed": SEED,
                           "train_crop": [4, 4], "digit": 8, "minutes": round(minutes, 1),
                           "final_loss": round(tail, 4)}}
    finally:
        torch.set_num_threads(threads)


if __name__ == "__main__":
    from data_scripts.build_assets import main

    raise SystemExit(main(["lab8_ddpm"]))
