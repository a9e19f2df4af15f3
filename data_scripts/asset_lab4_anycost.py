"""Asset ``lab4_anycost``: the pre-trained multi-resolution generator (and its discriminator) that Lab 4
starts its anycost training from.

The generator is ``effcourse.gan.anycost.AnycostGenerator`` at full width (every channel ratio 1),
trained on all 1797 bundled digits at 32x32 with sampling-based multi-resolution training: each step
draws one output resolution (8, 16 or 32 px), trains that output against reals resized to match
(non-saturating logistic GAN loss), and pulls it towards the top-resolution output of the same latent
(MSE to ``anycost.resize`` of the top output, computed without gradient). This self-distillation
stands in for the official multi-resolution stage, which distils from a pre-trained StyleGAN2
(``scripts/train_anycost_multires_ffhq.sh`` in mit-han-lab/anycost-gan). At ratio 1 an elastic conv
is a plain ``nn.Conv2d``, so plain convs are used here and the state dict loads into the lab's
generator. Deterministic from the seed on one CPU thread; weights are the EMA of the training weights.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from effcourse.data.digits import load_digits
from effcourse.gan import anycost
from effcourse.training import Loop

SEED = 0
STEPS, QUICK_STEPS = 3000, 5
BATCH, LR, EMA = 16, 1e-3, 0.99
G_CHANNELS, D_CHANNELS, Z_DIM = (64, 32, 16), (8, 16, 32), 32


def _step(G, D, real, g_opt, d_opt, gen, lambda_res=1.0):
    n = len(real)
    res = G.resolutions[int(torch.randint(len(G.resolutions), (1,), generator=gen))]
    z = torch.randn(n, G.z_dim, generator=gen)
    with torch.no_grad():
        top = G(z)
    fake = G(z, res)
    loss_d = anycost.d_loss(D(anycost.resize(real, res)), D(fake.detach()))
    d_opt.zero_grad(set_to_none=True)
    loss_d.backward()
    d_opt.step()
    cons = F.mse_loss(fake, anycost.resize(top, res))      # the top output was computed without gradient
    loss_g = anycost.g_loss(D(fake)) + lambda_res * cons
    g_opt.zero_grad(set_to_none=True)
    loss_g.backward()
    g_opt.step()
    return {"d_loss": loss_d.item(), "g_loss": loss_g.item(), "resolution": res}


def build(quick: bool = False) -> dict:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(SEED)
        reals, _ = load_digits(32)
        G = anycost.AnycostGenerator(nn.Conv2d, z_dim=Z_DIM, channels=G_CHANNELS)
        D = anycost.AnycostDiscriminator(channels=D_CHANNELS)
        steps = QUICK_STEPS if quick else STEPS
        anycost.train(G, D, reals, _step, loop=Loop(steps=steps, batch_size=BATCH, seed=SEED, desc="lab4 pre-train"),
                      lr=LR, betas=(0.5, 0.99), ema=EMA)
        if not quick:
            from effcourse.metrics import frechet_distance

            z = torch.randn(2000, Z_DIM, generator=torch.Generator().manual_seed(1))
            fds = {res: round(frechet_distance(reals, anycost.sample(G, z, 1.0, res)), 1) for res in G.resolutions}
            print(f"lab4_anycost: {steps} steps; digit-feature Frechet distance per resolution {fds}")
        return {"G": {k: v.detach().clone().contiguous() for k, v in G.state_dict().items()},
                "D": {k: v.detach().clone().contiguous() for k, v in D.state_dict().items()},
                "config": {"z_dim": Z_DIM, "g_channels": list(G_CHANNELS), "d_channels": list(D_CHANNELS),
                           "steps": steps}}
    finally:
        torch.set_num_threads(threads)
