"""Pictures made of bundled digits for Lab 8: ``(N, 1, rows*8, cols*8)`` grids of the 8x8 digits.

``digit_grids(n, rows, cols, generator)`` draws random digits (values in [-1, 1], background -1);
``picture(rows, cols, seed)`` one fixed picture; ``replace_cells(pic, cells, digits)`` an edit that
swaps whole digits; ``square_patch(pic, fraction, ...)`` an edit that pastes a patch of another
picture over a square of about ``fraction`` of the image.
"""
from __future__ import annotations

import math

import torch

from effcourse.data.digits import load_digits

__all__ = ["DIGIT", "digits", "digit_grids", "picture", "replace_cells", "square_patch"]

DIGIT = 8          # side of one digit in pixels (the bundled digits' own resolution)


def digits() -> torch.Tensor:
    """All 1797 bundled digits, ``(1797, 1, 8, 8)`` in [-1, 1]."""
    return load_digits(DIGIT)[0]


def digit_grids(n: int, rows: int, cols: int, generator: torch.Generator | None = None,
                pool: torch.Tensor | None = None) -> torch.Tensor:
    """``(n, 1, rows*8, cols*8)``: each picture a ``rows x cols`` grid of randomly drawn digits."""
    pool = digits() if pool is None else pool
    idx = torch.randint(len(pool), (n * rows * cols,), generator=generator)
    d = pool[idx].reshape(n, rows, cols, 1, DIGIT, DIGIT)
    return d.permute(0, 3, 1, 4, 2, 5).reshape(n, 1, rows * DIGIT, cols * DIGIT).contiguous()


def picture(rows: int = 8, cols: int = 8, seed: int = 0) -> torch.Tensor:
    """One fixed ``(1, 1, rows*8, cols*8)`` picture of digits, drawn with ``seed``."""
    return digit_grids(1, rows, cols, torch.Generator().manual_seed(seed))


def replace_cells(pic: torch.Tensor, cells, new_digits: torch.Tensor) -> torch.Tensor:
    """A copy of ``pic`` with the digit in each grid cell ``(row, col)`` of ``cells`` replaced by the
    matching ``(1, 8, 8)`` image of ``new_digits`` (a ``(len(cells), 1, 8, 8)`` tensor)."""
    out = pic.clone()
    for (r, c), d in zip(cells, new_digits):
        out[:, :, r * DIGIT:(r + 1) * DIGIT, c * DIGIT:(c + 1) * DIGIT] = d
    return out


def square_patch(pic: torch.Tensor, fraction: float, source: torch.Tensor, top: int | None = None,
                 left: int | None = None) -> tuple[torch.Tensor, tuple[int, int, int]]:
    """``(edited, (top, left, side))``: ``pic`` with a square of side ``round(sqrt(fraction) * H)``
    copied from ``source`` (same shape); centred unless ``top``/``left`` are given."""
    H, W = pic.shape[-2:]
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    side = max(1, min(H, W, round(math.sqrt(fraction * H * W))))
    top = (H - side) // 2 if top is None else int(top)
    left = (W - side) // 2 if left is None else int(left)
    out = pic.clone()
    out[..., top:top + side, left:left + side] = source[..., top:top + side, left:left + side]
    return out, (top, left, side)
