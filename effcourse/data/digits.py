"""Bundled digit images for the generative labs: scikit-learn's 1797 8x8 digits, upsampled.

``load_digits(size)`` returns images ``(N, 1, size, size)`` float32 in ``[-1, 1]`` (bilinear
upsampling of the 8x8 originals, whose values 0..16 map linearly to -1..1) and labels ``(N,)`` int64.
The train/test split is fixed (a seeded, class-stratified permutation), so every run and every lab
sees the same images. ``few_shot(n)`` picks a fixed class-balanced ``n``-image training set (the
"100-shot" setting of DiffAugment) and returns every other digit as held-out reals.
"""
from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

N_DIGITS = 1797
SPLITS = ("all", "train", "test")
_SPLIT_SEED = 20231  # fixed: the split is part of the dataset, not of a run


@lru_cache(maxsize=1)
def _raw() -> tuple[torch.Tensor, torch.Tensor]:
    """The 1797 originals ``(N, 1, 8, 8)`` in [0, 1] and their labels (bundled with scikit-learn)."""
    from sklearn.datasets import load_digits as _sk_load

    d = _sk_load()
    images = torch.from_numpy(d.images.astype(np.float32) / 16.0).unsqueeze(1)
    return images, torch.from_numpy(d.target.astype(np.int64))


@lru_cache(maxsize=8)
def _resized(size: int) -> torch.Tensor:
    images, _ = _raw()
    if size != 8:
        images = F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False)
    return (images * 2.0 - 1.0).clamp(-1.0, 1.0).contiguous()


@lru_cache(maxsize=4)
def _test_mask(test_fraction: float) -> torch.Tensor:
    """Class-stratified: each class puts the same fraction of its (shuffled) images in the test set."""
    _, labels = _raw()
    gen = torch.Generator().manual_seed(_SPLIT_SEED)
    mask = torch.zeros(len(labels), dtype=torch.bool)
    for c in range(10):
        idx = (labels == c).nonzero().flatten()
        idx = idx[torch.randperm(len(idx), generator=gen)]
        mask[idx[: int(round(len(idx) * test_fraction))]] = True
    return mask


def _check_size(size) -> int:
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)):
        raise TypeError(f"size must be an int (the output height and width), got {type(size).__name__}")
    if size < 8:
        raise ValueError(f"size must be >= 8 (the digits are 8x8 originals), got {size}")
    return int(size)


def load_digits(size: int = 16, split: str = "all", test_fraction: float = 0.2) -> tuple[torch.Tensor, torch.Tensor]:
    """Digits as ``(images (N, 1, size, size) float32 in [-1, 1], labels (N,) int64)``.

    ``split`` is ``"all"`` (1797 images), ``"train"`` or ``"test"`` (a fixed class-stratified split with
    ``test_fraction`` of each class in the test set; 1438 / 359 images at the default 0.2).
    Returns fresh tensors (safe to modify).
    """
    size = _check_size(size)
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; use one of {SPLITS}")
    if not 0.0 < float(test_fraction) < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    images, (_, labels) = _resized(size), _raw()
    if split == "all":
        return images.clone(), labels.clone()
    mask = _test_mask(float(test_fraction))
    if split == "train":
        mask = ~mask
    return images[mask].clone(), labels[mask].clone()


class FewShot(NamedTuple):
    """A few-shot training set and the held-out reals (every other digit)."""

    images: torch.Tensor           # (n, 1, size, size) in [-1, 1]
    labels: torch.Tensor           # (n,)
    heldout_images: torch.Tensor   # (1797 - n, 1, size, size)
    heldout_labels: torch.Tensor   # (1797 - n,)


def few_shot(n: int = 100, size: int = 16, seed: int = 0) -> FewShot:
    """A fixed class-balanced ``n``-image subset (``n / 10`` images per class) and the rest as held-out.

    The subset depends only on ``(n, seed)``; ``n`` must be a positive multiple of 10 (at most 1730,
    which keeps at least one held-out image of every class)."""
    size = _check_size(size)
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n <= 0 or n % 10:
        raise ValueError(f"n must be a positive multiple of 10 (n/10 images per class), got {n!r}")
    if n > 1730:
        raise ValueError(f"n must be <= 1730 so every class keeps held-out images, got {n}")
    images, (_, labels) = _resized(size), _raw()
    gen = torch.Generator().manual_seed(int(seed))
    chosen = torch.zeros(len(labels), dtype=torch.bool)
    for c in range(10):
        idx = (labels == c).nonzero().flatten()
        chosen[idx[torch.randperm(len(idx), generator=gen)[: n // 10]]] = True
    return FewShot(images[chosen].clone(), labels[chosen].clone(), images[~chosen].clone(), labels[~chosen].clone())
