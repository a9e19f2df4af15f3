"""TemporalDigits: synthetic action clips made from scikit-learn's bundled 8x8 digits.

Every clip shows one digit moving. The 8 classes come in **time-reversal pairs**::

    0 move right   1 move left
    2 move down    3 move up
    4 rotate ccw   5 rotate cw
    6 zoom in      7 zoom out

Two properties make the direction of motion the *only* thing that tells partners apart:

1. **Reversal.** A clip of class ``2k + 1`` is *exactly* a clip of class ``2k`` played backwards (same
   digit, same nuisance draws), so the two classes have the same distribution of frame *sets*. A
   model that ignores frame order (TSN's average over frames) cannot beat 50 % on this dataset.
2. **No single-frame cue, even with the frame's index.** For every frame index t, frame t of a class
   has the same distribution as frame t of its partner. Each motion has a *phase* drawn uniformly
   over a full period, and the picture is periodic in it:

   * move left/right, up/down: the canvas wraps around (a torus, like an old arcade screen); the
     digit's position along the motion's axis is uniform over the whole canvas;
   * rotate: the starting angle is uniform over the full circle;
   * zoom: an *endless* zoom (the picture analogue of a Shepard tone): copies of the digit an octave
     apart, each fading in while small and out while large, so the picture repeats every octave;
     the octave phase is uniform.

   Frame t of a clip sits at phase ``phase + amount * s_t`` with ``s_t`` running from -1/2 to 1/2;
   its partner's frame t sits at ``phase - amount * s_t``. Both are uniform over the period, so a
   single frame, even with its index, says nothing about the direction. (A start position drawn
   from a bounded range would say a lot: "move right" clips would start on the left.)

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

# the endless zoom: copies of the digit one octave apart, visible between these log2-scales
ZOOM_OCTAVES = (-1.5, 1.5)
_ZOOM_COPIES = range(math.floor(ZOOM_OCTAVES[0]) - 1, math.ceil(ZOOM_OCTAVES[1]) + 1)
# the periodic parameter of each pair ("phase") and its period; see phase_shift_for_partner
PHASES = {0: ("pos", 2.0), 1: ("pos", 2.0), 2: ("angle0", 2 * math.pi), 3: ("zoom_phase", 1.0)}
AMOUNTS = {0: "span", 1: "span", 2: "sweep", 3: "zoom"}


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
    """Nuisance parameters of n clips; the same distribution for every class.

    Each phase (``pos``, ``angle0``, ``zoom_phase``) is uniform over one full period of the picture
    and independent of everything else: that is what hides the direction from single frames.
    """
    u = lambda lo, hi: lo + (hi - lo) * torch.rand(n, generator=gen)  # noqa: E731
    return {
        "cx": u(-0.10, 0.10), "cy": u(-0.10, 0.10),      # centre of the rotations and zooms (canvas = [-1, 1])
        "pos": u(-1.0, 1.0),                             # translations: mid-clip position on the wrapping axis
        "span": u(0.45, 0.75),                           # translation distance over the clip
        "angle0": u(-math.pi, math.pi),                  # rotations: mid-clip angle (radians)
        "sweep": u(1.0, 1.6),                            # rotation over the clip (radians)
        "scale0": u(0.9, 1.1),                           # digit size for translations and rotations
        "zoom_phase": u(0.0, 1.0),                       # zooms: mid-clip octave phase
        "zoom": u(0.5, 0.8),                             # octaves zoomed over the clip
        "noise_seed": torch.randint(0, 2**31 - 1, (n,), generator=gen),
    }


def _wrap(a: torch.Tensor, period: float) -> torch.Tensor:
    """``a`` folded into ``[-period/2, period/2)``."""
    return torch.remainder(a + period / 2, period) - period / 2


def _render_copies(src: torch.Tensor, tx, ty, ang, scale, wrap_x, wrap_y, size: int) -> torch.Tensor:
    """Render digits ``src`` (B, 1, 8, 8) scaled, rotated and moved to (tx, ty): (B, 1, size, size).

    Coordinates are the canvas's normalised ones ([-1, 1], y down). Where ``wrap_x``/``wrap_y`` is
    set the canvas wraps around along that axis (period 2, i.e. exactly ``size`` pixels).
    """
    b = src.shape[0]
    lin = (torch.arange(size, dtype=torch.float32) * 2 + 1) / size - 1          # pixel centres
    gy, gx = torch.meshgrid(lin, lin, indexing="ij")                           # (size, size)
    rx = gx.unsqueeze(0) - tx.view(b, 1, 1)                                     # (B, size, size)
    ry = gy.unsqueeze(0) - ty.view(b, 1, 1)
    if bool(wrap_x.any()):
        rx = torch.where(wrap_x.view(b, 1, 1), _wrap(rx, 2.0), rx)
    if bool(wrap_y.any()):
        ry = torch.where(wrap_y.view(b, 1, 1), _wrap(ry, 2.0), ry)
    # the digit (input coords [-1, 1]) fills `scale / 2` of the half-canvas: in = 2 R^-1 (out - t) / scale
    c, s = torch.cos(ang).view(b, 1, 1), torch.sin(ang).view(b, 1, 1)
    k = (2.0 / scale).view(b, 1, 1)
    ix = k * (c * rx + s * ry)
    iy = k * (-s * rx + c * ry)
    grid = torch.stack([ix, iy], -1)                                            # (B, size, size, 2)
    return F.grid_sample(src, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def _zoom_weight(u: torch.Tensor) -> torch.Tensor:
    """Opacity of a zoom copy at log2-scale ``u``: a sin^2 bump, zero outside ZOOM_OCTAVES."""
    lo, hi = ZOOM_OCTAVES
    w = torch.sin(math.pi * (u - lo) / (hi - lo)) ** 2
    return torch.where((u > lo) & (u < hi), w, torch.zeros_like(w))


def render_clips(digits: torch.Tensor, labels: torch.Tensor, params: dict[str, torch.Tensor],
                 n_frames: int = 8, size: int = 32, noise: float = 0.05, chunk: int = 256) -> torch.Tensor:
    """Render clips ``(n, T, 1, size, size)`` of ``digits`` ``(n, 1, 8, 8)`` moving as ``labels`` say.

    The motion of class ``2k`` runs ``s(t) = -1/2 + t/(T-1)``; class ``2k + 1`` runs it backwards,
    so a clip of an odd class is the time-reverse of the even class's clip with the same params.
    """
    n, T = digits.shape[0], int(n_frames)
    if n > chunk:
        parts = [render_clips(digits[i:i + chunk], labels[i:i + chunk], {k: v[i:i + chunk] for k, v in params.items()},
                              T, size, noise, chunk) for i in range(0, n, chunk)]
        return torch.cat(parts)
    pair = (labels // 2).unsqueeze(1)                                          # (n, 1): which motion
    s = torch.linspace(-0.5, 0.5, T) if T > 1 else torch.zeros(1)
    s = s.unsqueeze(0).expand(n, T).clone()
    s = torch.where((labels % 2 == 1).unsqueeze(1), s.flip(1), s)              # reverse the odd classes
    p = {k: v.unsqueeze(1).float() for k, v in params.items() if k != "noise_seed"}
    zero = torch.zeros_like(s)

    move = p["pos"] + p["span"] * s                                            # position along the motion
    tx = torch.where(pair == 0, move, p["cx"].expand(n, T))
    ty = torch.where(pair == 1, move, p["cy"].expand(n, T))
    ang = torch.where(pair == 2, p["angle0"] + p["sweep"] * s, zero)
    wrap_x, wrap_y = (pair == 0).expand(n, T), (pair == 1).expand(n, T)
    src = digits.unsqueeze(1).expand(n, T, 1, 8, 8).reshape(n * T, 1, 8, 8)
    flat = lambda a: a.reshape(n * T)                                          # noqa: E731

    frames = _render_copies(src, flat(tx), flat(ty), flat(ang), flat(p["scale0"].expand(n, T)),
                            flat(wrap_x), flat(wrap_y), size)                  # (n*T, 1, size, size)
    zi = (pair.squeeze(1) == 3).nonzero().squeeze(1)                            # the zoom clips only
    if len(zi):
        m = len(zi)
        octave = torch.remainder(p["zoom_phase"][zi] + p["zoom"][zi] * s[zi], 1.0)  # (m, T): phase in [0, 1)
        zsrc = digits[zi].unsqueeze(1).expand(m, T, 1, 8, 8).reshape(m * T, 1, 8, 8)
        ztx, zty = tx[zi].reshape(-1), ty[zi].reshape(-1)
        no_wrap = torch.zeros(m * T, dtype=torch.bool)
        zoomed = torch.zeros(m * T, 1, size, size)
        for k in _ZOOM_COPIES:
            u = (octave + k).reshape(-1)
            copy = _render_copies(zsrc, ztx, zty, torch.zeros_like(u), torch.exp2(u), no_wrap, no_wrap, size)
            zoomed = torch.maximum(zoomed, _zoom_weight(u).view(-1, 1, 1, 1) * copy)
        frames = frames.reshape(n, T, 1, size, size)
        frames[zi] = zoomed.reshape(m, T, 1, size, size)
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

