"""A small denoising-diffusion model for Lab 8 (DDIM, SDEdit, SIGE across denoising steps).

* ``unet``: ``UNet`` (GroupNorm, SiLU, residual blocks, a sinusoidal time embedding added to every
  block as a per-channel bias) and ``UNet.at_step(t)``, the same network with the time fixed, a
  one-input ``nn.Module`` that Lab 5's incremental engine can trace.
* ``data``: pictures made of bundled digits (a grid, as in Lab 5), edits that replace digits.
* ``train``: the DDPM training loop of the instructor script (``data_scripts/train_lab8_ddpm.py``)
  and ``load_pretrained`` for the shipped asset ``lab8_ddpm``.

No exercise answer lives here: the noise schedule, the forward process, the DDIM step, SDEdit and
the per-step caches are the learner's.
"""
