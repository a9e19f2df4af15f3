"""Networks and edits for the incremental-inference lab (random weights: only the compute pattern
matters, the engine is exact for any weights).

* ``conv_stack(channels, depth)``: 3x3 convs with ReLUs at full resolution, the graded speed test's
  network (``in_channels -> channels -> ... -> out_channels``).
* ``ResGenerator(channels, n_blocks)``: a small image-to-image generator with every layer kind the
  engine keeps exact: a stride-2 conv down, eval-mode BatchNorm, residual blocks, nearest upsampling,
  a 1x1 output conv and a skip from the input image.
* ``square_edit(x, fraction, ...)``: paste a square of random content covering ``fraction`` of the
  image; ``edit_mask`` is its ``(H, W)`` bool mask.
"""
from __future__ import annotations

import math

import torch
from torch import nn


def conv_stack(channels: int = 32, depth: int = 6, in_channels: int = 3, out_channels: int = 3) -> nn.Sequential:
    """``depth`` 3x3 convs (stride 1, padding 1) with ReLUs between them, in eval mode."""
    if depth < 2:
        raise ValueError(f"depth must be >= 2, got {depth}")
    widths = [in_channels] + [channels] * (depth - 1) + [out_channels]
    layers: list[nn.Module] = []
    for i in range(depth):
        layers.append(nn.Conv2d(widths[i], widths[i + 1], 3, padding=1))
        if i < depth - 1:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers).eval()


class ResBlock(nn.Module):
    """conv3x3-BN-ReLU-conv3x3-BN plus the identity, then ReLU (out-of-place throughout)."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.act = nn.ReLU()
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(x + self.bn2(self.conv2(self.act(self.bn1(self.conv1(x))))))


class ResGenerator(nn.Module):
    """Image ``(N, 3, H, W)`` -> image ``(N, 3, H', W')`` with ``H' = 2 * ceil(H / 2)``.

    stem 3x3 -> stride-2 3x3 down -> ``n_blocks`` residual blocks -> nearest x2 up -> 3x3 -> 1x1 out,
    plus ``x`` itself (padded by one row/column when H or W is odd) so the output looks like the photo.
    """

    def __init__(self, channels: int = 16, n_blocks: int = 2, in_channels: int = 3):
        super().__init__()
        c = channels
        self.stem = nn.Sequential(nn.Conv2d(in_channels, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU())
        self.down = nn.Sequential(nn.Conv2d(c, 2 * c, 3, stride=2, padding=1), nn.BatchNorm2d(2 * c), nn.ReLU())
        self.blocks = nn.Sequential(*[ResBlock(2 * c) for _ in range(n_blocks)])
        self.up = nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(2 * c, c, 3, padding=1),
                                nn.BatchNorm2d(c), nn.LeakyReLU(0.2))
        self.out = nn.Conv2d(c, in_channels, 1)
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.out(self.up(self.blocks(self.down(self.stem(x)))))
        h, w = y.shape[-2:]
        skip = nn.functional.pad(x, (0, w - x.shape[-1], 0, h - x.shape[-2]))
        return skip + 0.25 * torch.tanh(y)


def randomize_batchnorm(model: nn.Module, generator: torch.Generator | None = None) -> nn.Module:
    """Give every BatchNorm random running statistics and affine parameters (so eval-mode BN is not
    the identity in tests). In place; returns ``model``."""
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            n = m.num_features
            with torch.no_grad():
                m.running_mean.copy_(0.2 * torch.randn(n, generator=generator))
                m.running_var.copy_(0.5 + torch.rand(n, generator=generator))
                m.weight.copy_(0.8 + 0.4 * torch.rand(n, generator=generator))
                m.bias.copy_(0.1 * torch.randn(n, generator=generator))
    return model


def square_edit(x: torch.Tensor, fraction: float, top: int | None = None, left: int | None = None,
                generator: torch.Generator | None = None) -> tuple[torch.Tensor, tuple[int, int, int]]:
    """A copy of ``x`` ``(N, C, H, W)`` with one square of uniform noise covering about ``fraction``
    of each image (side ``round(sqrt(fraction * H * W))``, clipped to the image). Without ``top`` /
    ``left`` the square is centred. Returns ``(edited, (top, left, side))``."""
    if x.dim() != 4:
        raise ValueError(f"x must be (N, C, H, W), got rank {x.dim()}")
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must be in [0, 1], got {fraction}")
    H, W = x.shape[-2:]
    side = min(H, W, int(round(math.sqrt(fraction * H * W))))
    top = (H - side) // 2 if top is None else int(top)
    left = (W - side) // 2 if left is None else int(left)
    out = x.clone()
    patch = out[..., top:top + side, left:left + side]
    patch.copy_(torch.rand(patch.shape, generator=generator, dtype=x.dtype).to(x.device))
    return out, (top, left, side)


def edit_mask(shape: tuple[int, int], top: int, left: int, side_h: int, side_w: int | None = None) -> torch.Tensor:
    """``(H, W)`` bool mask of a rectangle (clipped to the image)."""
    H, W = shape
    m = torch.zeros(H, W, dtype=torch.bool)
    m[max(0, top):max(0, top + side_h), max(0, left):max(0, left + (side_h if side_w is None else side_w))] = True
    return m


class EncoderDecoder(nn.Module):
    """``generator.up(blocks(generator.down(x)))`` for a generator built as ``down`` / ``blocks`` /
    ``up`` (such as Lab 3's ``pix2pix.ResnetGenerator``), without its input checks, so that
    ``torch.fx`` can trace it for the incremental engine. Shares the generator's modules."""

    def __init__(self, generator: nn.Module):
        super().__init__()
        for part in ("down", "blocks", "up"):
            if not hasattr(generator, part):
                raise TypeError(f"{type(generator).__name__} has no .{part}; expected a generator built as "
                                "down / blocks / up")
        self.down, self.blocks, self.up = generator.down, generator.blocks, generator.up
        self.train(generator.training)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.down(x)
        for block in self.blocks:
            h = block(h)
        return self.up(h)


def tile_images(images: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
    """``(rows*cols, C, h, w)`` images laid out as one ``(1, C, rows*h, cols*w)`` picture, row by row."""
    n, c, h, w = images.shape
    if n < rows * cols:
        raise ValueError(f"need {rows * cols} images for a {rows}x{cols} layout, got {n}")
    grid = images[: rows * cols].reshape(rows, cols, c, h, w)
    return grid.permute(2, 0, 3, 1, 4).reshape(1, c, rows * h, cols * w)
