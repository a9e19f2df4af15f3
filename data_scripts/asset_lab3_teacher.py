"""Lab 3's teacher: ``ResnetGenerator(ngf=32)`` trained on the ``"train"`` edges -> digit pairs (1278;
the ``"val"`` pairs that the lab's search chooses on and the ``"test"`` pairs stay unseen). Deterministic.

L1 reconstruction (x100) with Adam 5e-4, betas (0.5, 0.999), batch 16, EMA weights (decay 0.999),
seed 0, one CPU thread. The state dict is stored as int8 weights with per-filter scales
(`pix2pix.pack_state`, about 1.4 MB); ``pix2pix.load_teacher`` unpacks it. ``quick=True`` is a
smoke build of a few steps.
"""
from __future__ import annotations

import torch

STEPS = 3000
NGF = 32


def recon_only(d_fake_logits, fake, target, teacher_out, distill, paired=True, lambda_recon=100.0,
               lambda_distill=1.0):
    return lambda_recon * (fake - target).abs().mean()


def build(quick: bool = False) -> dict:
    from effcourse.gan import pix2pix
    from effcourse.runtime import seed_everything
    from effcourse.training import Loop

    torch.set_num_threads(1)
    seed_everything(0)
    edges, digits = pix2pix.edge_digit_pairs("train")
    teacher = pix2pix.ResnetGenerator(ngf=NGF)
    ema, _ = pix2pix.train_generator(teacher, edges, digits, objective=recon_only,
                                     loop=Loop(steps=20 if quick else STEPS, batch_size=16, seed=0, desc="teacher"),
                                     opts=pix2pix.Pix2PixOptions(ema_decay=0.999))
    return pix2pix.pack_state(ema.state_dict())
