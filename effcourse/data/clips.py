"""The one clip-shape check: every clip tensor in ``data`` and ``video`` goes through ``check_clips``."""
from __future__ import annotations

import torch

__all__ = ["check_clips", "CLIPS"]

CLIPS = "(N, T, C, H, W)"


def check_clips(clips, what: str = "clips", layout: str = CLIPS) -> torch.Tensor:
    """Return ``clips`` if it is a tensor with one dimension per name of ``layout`` (default
    ``(N, T, C, H, W)``), else raise ``ValueError`` naming ``what``, the layout, its rank and shape."""
    rank = layout.count(",") + 1
    if not isinstance(clips, torch.Tensor):
        raise ValueError(f"{what} must be a tensor {layout}, got {type(clips).__name__}")
    if clips.dim() != rank:
        raise ValueError(f"{what} must be {layout}, got a tensor of rank {clips.dim()} with shape {tuple(clips.shape)}")
    return clips
