"""Bundled photographs that work offline: scikit-image's sample images (shipped inside its wheel).

``load_photo(name, size)`` returns one photo as ``(3, size, size)`` float32 in ``[0, 1]``: the
largest centred square of the original, resized with antialiasing. ``PHOTOS`` lists the names.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket")


@lru_cache(maxsize=8)
def _raw(name: str) -> torch.Tensor:
    import skimage.data

    if name not in PHOTOS:
        raise ValueError(f"unknown photo {name!r}; bundled photos: {', '.join(PHOTOS)}")
    img = getattr(skimage.data, name)()
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"photo {name!r} is not an RGB image (shape {img.shape})")
    return torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1).float() / 255.0


def load_photo(name: str = "astronaut", size: int = 256) -> torch.Tensor:
    """The photo ``name`` as ``(3, size, size)`` float32 in [0, 1] (centre square, antialiased resize)."""
    if int(size) < 1:
        raise ValueError(f"size must be a positive integer, got {size}")
    img = _raw(name)
    _, h, w = img.shape
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    img = img[:, top:top + side, left:left + side]
    if side != size:
        img = F.interpolate(img[None], size=(int(size), int(size)), mode="bilinear", align_corners=False,
                            antialias=True)[0]
    return img.clamp(0.0, 1.0).contiguous()
