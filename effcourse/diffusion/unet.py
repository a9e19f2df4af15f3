"""A small UNet that predicts the noise of a DDPM (Lab 8).

``UNet(channels=(32, 64, 64))`` maps ``x (N, 1, H, W)`` and integer timesteps ``t (N,)`` (or a
Python int) to ``eps (N, 1, H, W)``; ``H`` and ``W`` must be multiples of 4 (two stride-2 downsamplings).
Layout: input conv; at each resolution a residual block (GroupNorm, SiLU, 3x3 conv, + time bias,
GroupNorm, SiLU, 3x3 conv, + skip) and a stride-2 conv down; a middle block; nearest upsampling,
channel concatenation with the skip and a residual block back up; GroupNorm, SiLU, output conv.
No attention (it would mix every pixel with every other, which SIGE cannot run sparsely).

``UNet.at_step(t)`` returns ``FixedStep``: the same weights (shared, not copied) with every block's
time bias ``(1, C, 1, 1)`` computed once for timestep ``t`` and stored as a buffer, so its
``forward(x)`` has one input and only convolutions, pixel-local ops, GroupNorm and nearest
upsampling — what ``effcourse.sparse.SparseRunner`` traces (GroupNorm with ``norms="reuse"``).
"""
from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["timestep_embedding", "ResBlock", "UNet", "FixedStep", "count_params"]


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """``(N, dim)`` sinusoidal embedding of timesteps ``t (N,)`` (cos half, then sin half)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32) / half)
    args = t.to(torch.float32)[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=1)


class ResBlock(nn.Module):
    """GroupNorm, SiLU, conv, + time bias, GroupNorm, SiLU, conv, + skip (1x1 conv when channels change).

    ``forward(x, tbias)``: ``x (N, cin, H, W)``, ``tbias (N or 1, cout, 1, 1)`` -> ``(N, cout, H, W)``.
    """

    def __init__(self, cin: int, cout: int, tdim: int, groups: int = 8):
        super().__init__()
        self.norm1, self.act1 = nn.GroupNorm(groups, cin), nn.SiLU()
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.temb = nn.Linear(tdim, cout)
        self.norm2, self.act2 = nn.GroupNorm(groups, cout), nn.SiLU()
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor, tbias: torch.Tensor) -> torch.Tensor:
        h = self.conv1(self.act1(self.norm1(x))) + tbias
        h = self.conv2(self.act2(self.norm2(h)))
        return self.skip(x) + h


class UNet(nn.Module):
    """Noise predictor ``eps = UNet(x, t)`` for ``x (N, in_ch, H, W)``, ``t`` int or ``(N,)`` long."""

    def __init__(self, in_ch: int = 1, channels: tuple[int, int, int] = (32, 64, 64), tdim: int = 128,
                 groups: int = 8):
        super().__init__()
        c0, c1, c2 = channels
        self.channels, self.in_ch, self.tdim = tuple(channels), in_ch, tdim
        self.tmlp = nn.Sequential(nn.Linear(tdim, tdim), nn.SiLU(), nn.Linear(tdim, tdim), nn.SiLU())
        self.inc = nn.Conv2d(in_ch, c0, 3, padding=1)
        self.down0 = ResBlock(c0, c0, tdim, groups)
        self.pool0 = nn.Conv2d(c0, c1, 3, stride=2, padding=1)
        self.down1 = ResBlock(c1, c1, tdim, groups)
        self.pool1 = nn.Conv2d(c1, c2, 3, stride=2, padding=1)
        self.mid = ResBlock(c2, c2, tdim, groups)
        self.up1 = nn.Upsample(scale_factor=2, mode="nearest")
        self.dec1 = ResBlock(c2 + c1, c1, tdim, groups)
        self.up0 = nn.Upsample(scale_factor=2, mode="nearest")
        self.dec0 = ResBlock(c1 + c0, c0, tdim, groups)
        self.out_norm, self.out_act = nn.GroupNorm(groups, c0), nn.SiLU()
        self.outc = nn.Conv2d(c0, in_ch, 3, padding=1)
        nn.init.zeros_(self.outc.weight)
        nn.init.zeros_(self.outc.bias)

    BLOCKS = ("down0", "down1", "mid", "dec1", "dec0")

    def time_biases(self, t: torch.Tensor) -> dict[str, torch.Tensor]:
        """``{block: (N, C, 1, 1)}``: each residual block's time bias for timesteps ``t (N,)``."""
        e = self.tmlp(timestep_embedding(t, self.tdim))
        return {b: getattr(self, b).temb(e)[:, :, None, None] for b in self.BLOCKS}

    def body(self, x: torch.Tensor, tb: dict[str, torch.Tensor]) -> torch.Tensor:
        h0 = self.down0(self.inc(x), tb["down0"])
        h1 = self.down1(self.pool0(h0), tb["down1"])
        h2 = self.mid(self.pool1(h1), tb["mid"])
        u1 = self.dec1(torch.cat([self.up1(h2), h1], dim=1), tb["dec1"])
        u0 = self.dec0(torch.cat([self.up0(u1), h0], dim=1), tb["dec0"])
        return self.outc(self.out_act(self.out_norm(u0)))

    def forward(self, x: torch.Tensor, t) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != self.in_ch or x.shape[2] % 4 or x.shape[3] % 4:
            raise ValueError(f"expected x of shape (N, {self.in_ch}, H, W) with H, W multiples of 4, "
                             f"got {tuple(x.shape)}")
        t = torch.as_tensor(t, dtype=torch.long)
        if t.dim() == 0:
            t = t.expand(x.shape[0])
        if t.shape != (x.shape[0],):
            raise ValueError(f"t must be an int or a (N,) tensor with N = {x.shape[0]}, got shape {tuple(t.shape)}")
        return self.body(x, self.time_biases(t))

    def at_step(self, t: int) -> "FixedStep":
        """This network with the timestep fixed to ``t``: ``FixedStep(self, t)``."""
        return FixedStep(self, int(t))


class _StepBlock(nn.Module):
    """A ``ResBlock`` without its time projection (the same submodules, shared): ``forward(x, tbias)``."""

    def __init__(self, block: ResBlock):
        super().__init__()
        for name in ("norm1", "act1", "conv1", "norm2", "act2", "conv2", "skip"):
            setattr(self, name, getattr(block, name))

    forward = ResBlock.forward


class FixedStep(nn.Module):
    """``UNet`` at one timestep: ``forward(x) == unet(x, t)``; the time biases are buffers
    ``tb_<block>`` of shape ``(1, C, 1, 1)``.

    Holds the UNet's convolution path only (no ``nn.Linear``: the time MLP ran once, here), sharing
    its parameters; ``copy.deepcopy`` of it copies them, as the sparse engine does.
    """

    def __init__(self, unet: UNet, t: int):
        super().__init__()
        self.t = int(t)
        for name in ("inc", "pool0", "pool1", "up1", "up0", "out_norm", "out_act", "outc"):
            setattr(self, name, getattr(unet, name))
        for name in UNet.BLOCKS:
            setattr(self, name, _StepBlock(getattr(unet, name)))
        with torch.no_grad():
            for name, b in unet.time_biases(torch.tensor([self.t])).items():
                self.register_buffer(f"tb_{name}", b.detach().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h0 = self.down0(self.inc(x), self.tb_down0)
        h1 = self.down1(self.pool0(h0), self.tb_down1)
        h2 = self.mid(self.pool1(h1), self.tb_mid)
        d1 = self.dec1(torch.cat([self.up1(h2), h1], dim=1), self.tb_dec1)
        d0 = self.dec0(torch.cat([self.up0(d1), h0], dim=1), self.tb_dec0)
        return self.outc(self.out_act(self.out_norm(d0)))

    def extra_repr(self) -> str:
        return f"t={self.t}"


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
