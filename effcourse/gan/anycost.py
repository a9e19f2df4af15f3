"""Anycost GAN plumbing (Lab 4): a multi-resolution, channel-elastic generator, a discriminator that can
be conditioned on the generator's architecture, GAN losses and a training loop.

Nothing here answers an exercise: the generator is built from the learner's ``ElasticConv2d`` class,
the discriminator takes the learner's ``ArchModulation`` class, and the training loop calls the
learner's training step (which itself receives ``sample_ratios`` and ``consistency_loss``).

Shapes: latents ``z`` are ``(N, z_dim)``; images are ``(N, 1, R, R)`` in ``[-1, 1]`` with ``R`` one of
``AnycostGenerator.resolutions`` (8, 16, 32 by default); an architecture code is ``(N, code_dim)``.
"""
from __future__ import annotations

import copy
from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..training import EMA, History, Loop

RATIO_CHOICES = (0.25, 0.5, 0.75, 1.0)
RESOLUTIONS = (8, 16, 32)


def resize(x: torch.Tensor, resolution: int) -> torch.Tensor:
    """Images ``(N, C, H, W)`` to ``(N, C, resolution, resolution)``: area averaging when shrinking
    (for integer factors this is average pooling), bilinear when growing, unchanged when equal."""
    if x.dim() != 4:
        raise ValueError(f"resize expects images (N, C, H, W), got rank {x.dim()}")
    resolution = int(resolution)
    if resolution < 1:
        raise ValueError(f"resolution must be >= 1, got {resolution}")
    if x.shape[-1] == resolution and x.shape[-2] == resolution:
        return x
    if resolution < min(x.shape[-2:]):
        return F.interpolate(x, size=(resolution, resolution), mode="area")
    return F.interpolate(x, size=(resolution, resolution), mode="bilinear", align_corners=False)


def d_loss(d_real: torch.Tensor, d_fake: torch.Tensor) -> torch.Tensor:
    """Non-saturating logistic loss of the discriminator: ``softplus(-D(real)) + softplus(D(fake))``, averaged."""
    return F.softplus(-d_real).mean() + F.softplus(d_fake).mean()


def g_loss(d_fake: torch.Tensor) -> torch.Tensor:
    """Non-saturating generator loss ``softplus(-D(fake))``, averaged."""
    return F.softplus(-d_fake).mean()


def _check_conv_cls(conv_cls: Any) -> None:
    if not (isinstance(conv_cls, type) and issubclass(conv_cls, nn.Conv2d)):
        raise TypeError(f"conv_cls must be a subclass of nn.Conv2d (e.g. your ElasticConv2d), got {conv_cls!r}")


def _pixel_norm(h: torch.Tensor, on: bool = True) -> torch.Tensor:
    """Pixel-wise feature normalisation (ProGAN/StyleGAN): each pixel's feature vector is scaled to unit
    RMS over the channels it *has*, so a narrower sub-network keeps the same feature scale."""
    return h * torch.rsqrt(h.pow(2).mean(dim=1, keepdim=True) + 1e-8) if on else h


class _Stage(nn.Module):
    """Upsample x2 (nearest), two 3x3 convs with LeakyReLU, and a 1x1 conv to the image ("toRGB")."""

    def __init__(self, conv_cls: type, c_in: int, c_out: int, img_channels: int, norm: bool = True):
        super().__init__()
        self.norm = norm
        self.conv_a = conv_cls(c_in, c_out, 3, padding=1)
        self.conv_b = conv_cls(c_out, c_out, 3, padding=1)
        self.to_img = conv_cls(c_out, img_channels, 1)

    def features(self, h: torch.Tensor) -> torch.Tensor:
        h = F.interpolate(h, scale_factor=2, mode="nearest")
        h = _pixel_norm(F.leaky_relu(self.conv_a(h), 0.2), self.norm)
        return _pixel_norm(F.leaky_relu(self.conv_b(h), 0.2), self.norm)

    def image(self, h: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.to_img(h))


class AnycostGenerator(nn.Module):
    """A small generator with an image output after every stage (8, 16, 32 px by default).

    ``z (N, z_dim)`` -> linear -> ``(N, channels[0], 4, 4)`` -> per stage: upsample x2, two 3x3
    ``conv_cls`` convs (the *elastic* layers, ``n_layers = 2 * len(channels)`` of them), and a 1x1 conv
    to the image (``tanh``). ``forward(z, target_resolution)`` stops at the stage of that resolution
    (early exit: later stages cost nothing). ``set_ratio`` sets the elastic layers' ``ratio``
    attribute; the image convs keep ratio 1 and take as many channels as they receive.
    """

    def __init__(self, conv_cls: type, z_dim: int = 32, channels: Sequence[int] = (64, 32, 16),
                 img_channels: int = 1, choices: Sequence[float] = RATIO_CHOICES, norm: bool = True):
        super().__init__()
        _check_conv_cls(conv_cls)
        channels = [int(c) for c in channels]
        if not channels or min(channels) < 1:
            raise ValueError(f"channels must be a non-empty list of positive ints, got {channels}")
        self.z_dim, self.channels, self.img_channels = int(z_dim), channels, int(img_channels)
        self.choices = tuple(float(c) for c in choices)
        self.resolutions = tuple(8 * 2 ** i for i in range(len(channels)))
        self.fc = nn.Linear(self.z_dim, channels[0] * 16)
        ins = [channels[0]] + channels[:-1]
        self.stages = nn.ModuleList(_Stage(conv_cls, ci, co, img_channels, norm) for ci, co in zip(ins, channels))
        self.set_ratio(1.0)

    # ---- architecture -------------------------------------------------------------------------
    @property
    def n_layers(self) -> int:
        return 2 * len(self.stages)

    def elastic_layers(self) -> list[nn.Conv2d]:
        """The convs whose width can shrink, in forward order (``conv_a``, ``conv_b`` of every stage)."""
        return [conv for s in self.stages for conv in (s.conv_a, s.conv_b)]

    def set_ratio(self, ratio: float | Sequence[float]) -> "AnycostGenerator":
        """Set the channel ratio of every elastic layer (one number) or of each layer (a list of
        ``n_layers`` numbers in (0, 1]). Returns the generator."""
        if isinstance(ratio, torch.Tensor):
            ratio = ratio.tolist()
        ratios = [ratio] * self.n_layers if isinstance(ratio, (int, float)) else list(ratio)
        if len(ratios) != self.n_layers:
            raise ValueError(f"expected one ratio or a list of {self.n_layers} ratios (one per elastic layer), "
                             f"got {len(ratios)}")
        for r in ratios:
            if not isinstance(r, (int, float)) or not 0.0 < float(r) <= 1.0:
                raise ValueError(f"channel ratios must be numbers in (0, 1], got {r!r}")
        for conv, r in zip(self.elastic_layers(), ratios):
            conv.ratio = float(r)
        for s in self.stages:
            s.to_img.ratio = 1.0
        return self

    @property
    def ratios(self) -> list[float]:
        return [float(conv.ratio) for conv in self.elastic_layers()]

    @property
    def code_dim(self) -> int:
        return self.n_layers * len(self.choices)

    def arch_code(self, ratios: Sequence[float] | None = None) -> torch.Tensor:
        """One-hot architecture code ``(n_layers * len(choices),)``: for each elastic layer, a one-hot
        vector saying which of ``choices`` its ratio is (the current ratios when ``ratios`` is None)."""
        ratios = self.ratios if ratios is None else [float(r) for r in ratios]
        if len(ratios) != self.n_layers:
            raise ValueError(f"expected {self.n_layers} ratios, got {len(ratios)}")
        code = torch.zeros(self.n_layers, len(self.choices))
        for i, r in enumerate(ratios):
            match = [j for j, c in enumerate(self.choices) if abs(c - r) < 1e-6]
            if not match:
                raise ValueError(f"ratio {r} of layer {i} is not one of the choices {self.choices}")
            code[i, match[0]] = 1.0
        return code.flatten().to(self.fc.weight.device)

    # ---- forward -----------------------------------------------------------------------------
    def forward(self, z: torch.Tensor, target_resolution: int | None = None) -> torch.Tensor:
        """Image ``(N, img_channels, R, R)`` at ``target_resolution`` (default: the highest)."""
        return self.forward_all(z, target_resolution)[-1]

    def forward_all(self, z: torch.Tensor, target_resolution: int | None = None) -> list[torch.Tensor]:
        """The images of every stage up to ``target_resolution``, lowest resolution first."""
        if z.dim() != 2 or z.shape[1] != self.z_dim:
            raise ValueError(f"z must be (N, {self.z_dim}), got {tuple(z.shape)}")
        target = self.resolutions[-1] if target_resolution is None else int(target_resolution)
        if target not in self.resolutions:
            raise ValueError(f"target_resolution must be one of {self.resolutions}, got {target_resolution}")
        h = F.leaky_relu(self.fc(z), 0.2).view(len(z), self.channels[0], 4, 4)
        images = []
        for res, stage in zip(self.resolutions, self.stages):
            h = stage.features(h)
            images.append(stage.image(h))
            if res == target:
                break
        return images

    # ---- channel sorting ---------------------------------------------------------------------
    @torch.no_grad()
    def sort_channels(self, sort_fn: Callable[[nn.Conv2d, nn.Conv2d], torch.Tensor]) -> None:
        """Apply the learner's ``sort_fn(layer, next_layer) -> perm`` to every elastic layer, from the
        output back (as the official ``models/dynamic_channel.py: sort_channel`` does).

        ``next_layer`` is the conv that reads ``layer``'s outputs: ``conv_b`` for a stage's ``conv_a``; the
        next stage's ``conv_a`` for ``conv_b`` (the last stage's ``conv_b``: its image conv). A stage's
        ``conv_b`` also feeds its own image conv, whose input channels are permuted with the returned
        ``perm`` (new channel i = old perm[i]) without taking part in the ranking, as in the official code.
        """
        stages = list(self.stages)
        for i in reversed(range(len(stages))):
            s = stages[i]
            if i + 1 < len(stages):
                perm = _check_perm(sort_fn(s.conv_b, stages[i + 1].conv_a), s.conv_b.out_channels)
                s.to_img.weight.copy_(s.to_img.weight[:, perm.to(s.to_img.weight.device)])
            else:
                _check_perm(sort_fn(s.conv_b, s.to_img), s.conv_b.out_channels)
            _check_perm(sort_fn(s.conv_a, s.conv_b), s.conv_a.out_channels)


def _check_perm(perm: Any, n: int) -> torch.Tensor:
    if not isinstance(perm, torch.Tensor):
        raise TypeError(f"sort_channels must return the permutation as a LongTensor, got {type(perm).__name__}")
    perm = perm.long().flatten()
    if perm.numel() != n or not torch.equal(perm.sort().values, torch.arange(n, device=perm.device)):
        raise ValueError(f"sort_channels returned {perm.tolist()[:10]}..., not a permutation of range({n})")
    return perm


class AnycostDiscriminator(nn.Module):
    """A discriminator for images at any of ``resolutions``.

    An image of resolution R enters through its own 1x1 ``from_img`` conv at the block for R, then
    every block (two 3x3 convs, LeakyReLU, average-pool x2) halves it down to 4x4, then a linear
    head gives one logit per image. ``forward(x, code=None)``: after :meth:`add_modulation`, the
    features after each block are modulated by the learner's ``ArchModulation(code_dim, channels)``
    given ``code (N, code_dim)`` (the generator-conditioned D); without it, ``code`` is ignored.
    """

    def __init__(self, channels: Sequence[int] = (16, 32, 64), img_channels: int = 1):
        super().__init__()
        channels = [int(c) for c in channels]     # block widths from the highest resolution down
        self.resolutions = tuple(8 * 2 ** i for i in reversed(range(len(channels))))
        self.from_img = nn.ModuleList(nn.Conv2d(img_channels, c, 1) for c in channels)
        outs = channels[1:] + [channels[-1]]
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.Conv2d(ci, ci, 3, padding=1), nn.LeakyReLU(0.2),
                          nn.Conv2d(ci, co, 3, padding=1), nn.LeakyReLU(0.2), nn.AvgPool2d(2))
            for ci, co in zip(channels, outs))
        self.block_out = outs
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(outs[-1] * 16, 64), nn.LeakyReLU(0.2), nn.Linear(64, 1))
        self.mods = nn.ModuleList()
        self.code_dim = 0

    def add_modulation(self, modulation_cls: type, code_dim: int) -> "AnycostDiscriminator":
        """Insert ``modulation_cls(code_dim, C)`` after every block (in place); returns self.
        Zero-initialised modulations leave a trained discriminator's outputs unchanged."""
        self.mods = nn.ModuleList(modulation_cls(int(code_dim), c) for c in self.block_out)
        self.code_dim = int(code_dim)
        ref = next(self.parameters())
        self.mods.to(device=ref.device, dtype=ref.dtype)
        return self

    @property
    def conditioned(self) -> bool:
        return len(self.mods) > 0

    def forward(self, x: torch.Tensor, code: torch.Tensor | None = None) -> torch.Tensor:
        """Logits ``(N,)`` for images ``(N, C, R, R)``."""
        if x.dim() != 4 or x.shape[-1] not in self.resolutions or x.shape[-1] != x.shape[-2]:
            raise ValueError(f"D expects square images at one of {self.resolutions} px, got {tuple(x.shape)}")
        if self.conditioned:
            if code is None:
                raise ValueError("this discriminator is conditioned on the architecture: pass code (N, code_dim)")
            if code.dim() == 1:
                code = code.unsqueeze(0)
            code = code.to(x).expand(len(x), -1)
            if code.shape[1] != self.code_dim:
                raise ValueError(f"code must have {self.code_dim} entries per image, got {code.shape[1]}")
        start = self.resolutions.index(x.shape[-1])
        h = F.leaky_relu(self.from_img[start](x), 0.2)
        for i in range(start, len(self.blocks)):
            h = self.blocks[i](h)
            if self.conditioned:
                h = self.mods[i](h, code)
        return self.head(h).squeeze(1)


def frozen_copy(G: AnycostGenerator) -> AnycostGenerator:
    """A frozen deep copy of ``G`` at full width (eval mode, no parameter requires gradient): the
    teacher that anycost training distils every sub-generator from."""
    teacher = copy.deepcopy(G).set_ratio(1.0).eval()
    return teacher.requires_grad_(False)


def conditioned_copy(D: AnycostDiscriminator, modulation_cls: type, code_dim: int) -> AnycostDiscriminator:
    """A deep copy of ``D`` with architecture modulation added (``D`` is left as it was)."""
    return copy.deepcopy(D).add_modulation(modulation_cls, code_dim)


def train(G: AnycostGenerator, D: AnycostDiscriminator, data: torch.Tensor, step_fn: Callable, *, loop: Loop,
          lr: float = 1e-3, betas: tuple[float, float] = (0.5, 0.99), ema: float = 0.0,
          **step_kwargs: Any) -> History:
    """Train for ``loop.steps`` calls of the learner's ``step_fn(G, D, real, g_opt, d_opt, generator, **step_kwargs)``.

    ``data`` is ``(M, C, R, R)`` real images at G's highest resolution; each step draws
    ``loop.batch_size`` of them with a ``torch.Generator`` seeded by ``loop.seed`` (the same generator
    is passed to ``step_fn`` for all its sampling). Adam with ``lr`` and ``betas`` for both networks.
    With ``ema > 0`` the generator's weights end as an ``EMA`` (decay ``ema``) of its training
    weights. ``step_fn`` returns a dict of numbers (or other values); the returned ``History`` logs
    each of them at every step. G is left at ratio 1 and in eval mode.
    """
    if data.dim() != 4 or data.shape[-1] != G.resolutions[-1]:
        raise ValueError(f"data must be images (M, C, {G.resolutions[-1]}, {G.resolutions[-1]}), "
                         f"got {tuple(data.shape)}")
    gen = torch.Generator().manual_seed(int(loop.seed))
    g_opt = torch.optim.Adam(G.parameters(), lr=lr, betas=betas)
    d_opt = torch.optim.Adam(D.parameters(), lr=lr, betas=betas)
    avg = EMA(G, ema, buffers=False) if ema > 0 else None
    G.train()
    D.train()
    hist = loop.history()
    bar = loop.bar()
    for step in bar:
        idx = torch.randint(0, len(data), (loop.batch_size,), generator=gen)
        out = step_fn(G, D, data[idx], g_opt, d_opt, gen, **step_kwargs)
        if not isinstance(out, dict):
            raise TypeError(f"the training step must return a dict of numbers, got {type(out).__name__}")
        hist.log(step + 1, **out)
        if avg is not None:
            avg.update(G)
        if step % 10 == 0:
            shown = {k: f"{v:.3f}" for k, v in out.items() if isinstance(v, (float, int)) and not isinstance(v, bool)}
            bar.set_postfix(shown)
    if avg is not None:
        avg.copy_to(G)
    G.set_ratio(1.0).eval()
    D.eval()
    hist.close()
    return hist


@torch.no_grad()
def sample(G: AnycostGenerator, z: torch.Tensor, ratio: float | Sequence[float] = 1.0,
           resolution: int | None = None, batch_size: int = 256) -> torch.Tensor:
    """Images of ``G`` at a channel ``ratio`` and ``resolution`` for latents ``z`` (eval mode, no grad);
    G's ratios are restored afterwards."""
    old = G.ratios
    G.set_ratio(ratio)
    try:
        return torch.cat([G(z[i:i + batch_size], resolution) for i in range(0, len(z), batch_size)])
    finally:
        G.set_ratio(old)
