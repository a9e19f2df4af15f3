"""TemporalDigits: synthetic action clips made from scikit-learn's bundled 8x8 digits.

Every clip shows one digit moving. The 8 classes come in **time-reversal pairs**::

    0 move right   1 move left
    2 move down    3 move up
    4 rotate ccw   5 rotate cw
    6 zoom in      7 zoom out

A clip of class ``2k + 1`` is *exactly* a clip of class ``2k`` played backwards (same digit, same
nuisance draws), so the two classes have the same distribution of frame *sets*. A model that ignores
frame order (TSN's average over frames) therefore cannot beat 50 % on this dataset; a model that sees
the order can reach ~100 %. It is a miniature of Something-Something.

Clips are float tensors of shape ``(T, 1, size, size)`` with values in ``[0, 1]``; a batch from a
``DataLoader`` is ``(N, T, 1, size, size)``.
"""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

CLASSES = ("move right", "move left", "move down", "move up",
           "rotate ccw", "rotate cw", "zoom in", "zoom out")

# digit images 0..N_TRAIN_IMAGES-1 make training clips, the rest make test clips
N_TRAIN_IMAGES = 1400


@lru_cache(maxsize=1)
def _digit_images() -> torch.Tensor:
    """All 1797 scikit-learn digits as ``(1797, 1, 8, 8)`` floats in [0, 1] (bundled with sklearn)."""
    from sklearn.datasets import load_digits

    images = load_digits().images.astype(np.float32) / 16.0
    return torch.from_numpy(images).unsqueeze(1)


def reverse_partner(label: int) -> int:
    """The class whose clips are this class's clips played backwards (0<->1, 2<->3, ...)."""
    if not 0 <= int(label) < len(CLASSES):
        raise ValueError(f"label must be in 0..{len(CLASSES) - 1}, got {label}")
    return int(label) ^ 1


def _draw_params(gen: torch.Generator, n: int) -> dict[str, torch.Tensor]:
    """Nuisance parameters of n clips; identical distributions for both classes of a pair."""
    u = lambda lo, hi: lo + (hi - lo) * torch.rand(n, generator=gen)  # noqa: E731
    return {
        "cx": u(-0.10, 0.10), "cy": u(-0.10, 0.10),      # centre of the motion (fraction of half-width)
        "span": u(0.45, 0.75),                           # translation distance over the clip
        "angle0": u(-0.3, 0.3), "sweep": u(1.0, 1.6),    # rotation centre and sweep (radians)
        "scale0": u(0.9, 1.1), "zoom": u(0.35, 0.5),     # log-scale centre and range
        "noise_seed": torch.randint(0, 2**31 - 1, (n,), generator=gen),
    }


def render_clips(digits: torch.Tensor, labels: torch.Tensor, params: dict[str, torch.Tensor],
                 n_frames: int = 8, size: int = 32, noise: float = 0.05) -> torch.Tensor:
    """Render clips ``(n, T, 1, size, size)`` of ``digits`` ``(n, 1, 8, 8)`` moving as ``labels`` say.

    The trajectory of class ``2k`` runs ``s(t) = -1/2 + t/(T-1)``; class ``2k + 1`` runs it backwards,
    so a clip of an odd class is the time-reverse of the even class's clip with the same params.
    """
    n = digits.shape[0]
    T = n_frames
    pair = (labels // 2).float().unsqueeze(1)                 # (n, 1): which motion
    s = torch.linspace(-0.5, 0.5, T) if T > 1 else torch.zeros(1)
    s = s.unsqueeze(0).expand(n, T).clone()
    s = torch.where((labels % 2 == 1).unsqueeze(1), s.flip(1), s)   # reverse the odd classes

    p = {k: v.unsqueeze(1) for k, v in params.items() if k != "noise_seed"}
    tx = p["cx"] + torch.where(pair == 0, p["span"] * s, torch.zeros_like(s))
    ty = p["cy"] + torch.where(pair == 1, p["span"] * s, torch.zeros_like(s))
    ang = p["angle0"] * (pair == 2) + torch.where(pair == 2, p["sweep"] * s, torch.zeros_like(s))
    log_scale = torch.log(p["scale0"]) + torch.where(pair == 3, p["zoom"] * s * 2, torch.zeros_like(s))
    scale = torch.exp(log_scale)

    # grid_sample maps output coords to input coords: inverse transform of (scale, rotate, translate)
    inv = 1.0 / scale
    cos, sin = torch.cos(ang) * inv, torch.sin(ang) * inv
    # the digit fills about half the canvas at scale 1: input coords = 2 * R^-1 (out - t) / scale
    theta = torch.stack([
        torch.stack([2 * cos, 2 * sin, -2 * (cos * tx + sin * ty)], -1),
        torch.stack([-2 * sin, 2 * cos, -2 * (-sin * tx + cos * ty)], -1),
    ], -2)                                                     # (n, T, 2, 3)
    src = digits.unsqueeze(1).expand(n, T, 1, 8, 8).reshape(n * T, 1, 8, 8)
    grid = F.affine_grid(theta.reshape(n * T, 2, 3), (n * T, 1, size, size), align_corners=False)
    frames = F.grid_sample(src, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    frames = frames.reshape(n, T, 1, size, size)
    if noise > 0:
        # the same noise field on every frame: a nuisance that carries no temporal signal
        noise_fields = torch.stack([
            torch.randn(1, size, size, generator=torch.Generator().manual_seed(int(k))) for k in params["noise_seed"]
        ])
        frames = frames + noise * noise_fields.unsqueeze(1)
    return frames.clamp(0.0, 1.0)


class TemporalDigits(Dataset):
    """Deterministic synthetic clips; ``dataset[i] -> (clip (T, 1, size, size), label)``.

    Args:
        split: ``"train"`` (digit images 0..1399) or ``"test"`` (images 1400..1796, unseen digits).
        n_clips: number of clips (balanced over the 8 classes).
        n_frames: T, frames per clip (>= 1).
        size: frame height and width in pixels (>= 8).
        seed: the same (split, n_clips, n_frames, size, seed) always gives the same clips.
    """

    classes = CLASSES

    def __init__(self, split: str = "train", n_clips: int = 800, n_frames: int = 8, size: int = 32,
                 seed: int = 0, noise: float = 0.05):
        if split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
        if int(n_clips) < 1:
            raise ValueError(f"n_clips must be >= 1, got {n_clips}")
        if int(n_frames) < 1:
            raise ValueError(f"n_frames (T) must be >= 1, got {n_frames}")
        if int(size) < 8:
            raise ValueError(f"size must be >= 8 pixels, got {size}")
        self.split, self.n_frames, self.size = split, int(n_frames), int(size)
        images = _digit_images()
        pool = images[:N_TRAIN_IMAGES] if split == "train" else images[N_TRAIN_IMAGES:]
        gen = torch.Generator().manual_seed(int(seed) * 2 + (split == "test"))
        n = int(n_clips)
        self.labels = torch.arange(n) % len(CLASSES)
        self.labels = self.labels[torch.randperm(n, generator=gen)]
        self.digit_index = torch.randint(0, pool.shape[0], (n,), generator=gen)
        self.params = _draw_params(gen, n)
        self.clips = render_clips(pool[self.digit_index], self.labels, self.params, self.n_frames, self.size, noise)

    def __len__(self) -> int:
        return self.clips.shape[0]

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.clips[i], int(self.labels[i])

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """All clips ``(n, T, 1, size, size)`` and labels ``(n,)`` at once."""
        return self.clips, self.labels

    def __repr__(self) -> str:
        return (f"TemporalDigits(split={self.split!r}, n_clips={len(self)}, n_frames={self.n_frames}, "
                f"size={self.size})")

