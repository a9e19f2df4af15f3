"""LongVideos: long TemporalDigits videos in which the action fills only a few clips.

A video is ``n_clips`` consecutive clips of ``clip_frames`` frames. One digit sits still, performs
one TemporalDigits action (move, rotate, zoom; the 8 classes of ``TemporalDigits``) during
``n_action`` consecutive clips placed at random, and sits still again. Some of the still clips are
*distractors*: the digit jumps to a random wrap-around position at every frame (busy, but no
direction of motion). Every frame gets independent sensor noise, so a still stretch is *near*
static, not exactly static::

    clip:   0       1       2        3        4       5       6       7
            still   jitter  ACTION   ACTION   still   still   jitter  still

Only the action clips say which class the video is; the rest are noise to the classifier. Shapes:
``videos`` ``(n, n_clips, T, 1, size, size)`` in [0, 1], ``labels`` ``(n,)``, ``salient``
``(n, n_clips)`` bool (True on action clips).
"""
from __future__ import annotations

import torch
from torch.utils.data import Dataset

from .temporal_digits import CLASSES, N_TRAIN_IMAGES, _digit_images, _draw_params, render_clips


class LongVideos(Dataset):
    """Deterministic long videos; ``dataset[i] -> (video (n_clips, T, 1, size, size), label)``.

    Args:
        split: ``"train"`` or ``"test"`` (disjoint digit images, as in ``TemporalDigits``).
        n_videos: number of videos (balanced over the 8 classes).
        n_clips: clips per video (M >= n_action).
        clip_frames: T, frames per clip.
        size: frame height and width (>= 8).
        n_action: consecutive clips that hold the action.
        p_jitter: probability that a non-action clip is a jittering distractor.
        sensor_noise: std of the independent per-frame noise.
        seed: the same arguments always give the same videos.
    """

    classes = CLASSES

    def __init__(self, split: str = "train", n_videos: int = 200, n_clips: int = 8, clip_frames: int = 4,
                 size: int = 16, n_action: int = 2, p_jitter: float = 0.4, sensor_noise: float = 0.02,
                 seed: int = 0):
        if split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
        if int(n_videos) < 1 or int(clip_frames) < 1 or int(n_action) < 1:
            raise ValueError(f"n_videos, clip_frames and n_action must be >= 1, got {n_videos}, {clip_frames}, "
                             f"{n_action}")
        if int(n_clips) < int(n_action):
            raise ValueError(f"n_clips ({n_clips}) must be >= n_action ({n_action})")
        if int(size) < 8:
            raise ValueError(f"size must be >= 8 pixels, got {size}")
        if not 0.0 <= p_jitter <= 1.0:
            raise ValueError(f"p_jitter must be in [0, 1], got {p_jitter}")
        n, M, T, A, S = int(n_videos), int(n_clips), int(clip_frames), int(n_action), int(size)
        self.split, self.n_clips, self.clip_frames, self.size, self.n_action = split, M, T, S, A
        images = _digit_images()
        pool = images[:N_TRAIN_IMAGES] if split == "train" else images[N_TRAIN_IMAGES:]
        gen = torch.Generator().manual_seed(1000 + int(seed) * 2 + (split == "test"))
        self.labels = (torch.arange(n) % len(CLASSES))[torch.randperm(n, generator=gen)]
        digits = pool[torch.randint(0, pool.shape[0], (n,), generator=gen)]
        params = _draw_params(gen, n)
        # the action: one TemporalDigits motion over A*T frames, cut into A clips (no sensor noise yet)
        action = render_clips(digits, self.labels, params, A * T, S, noise=0.0)      # (n, A*T, 1, S, S)
        start = torch.randint(0, M - A + 1, (n,), generator=gen)                       # first action clip
        jitter = torch.rand(n, M, generator=gen) < p_jitter
        clip_idx = torch.arange(M).unsqueeze(0)                                        # (1, M)
        self.salient = (clip_idx >= start.unsqueeze(1)) & (clip_idx < (start + A).unsqueeze(1))   # (n, M)
        jitter &= ~self.salient
        first, last = action[:, :1], action[:, -1:]                                    # still poses (n, 1, 1, S, S)
        before = (clip_idx < start.unsqueeze(1)).view(n, M, 1, 1, 1, 1)
        still = torch.where(before, first.unsqueeze(1), last.unsqueeze(1)).expand(n, M, T, 1, S, S)
        videos = still.clone()
        # jitter: the still pose rolled to a random wrap-around position at every frame
        shifts = torch.randint(0, S, (n, M, T, 2), generator=gen)
        for i, c in jitter.nonzero().tolist():
            for t in range(T):
                dy, dx = shifts[i, c, t].tolist()
                videos[i, c, t] = torch.roll(still[i, c, t], (dy, dx), dims=(-2, -1))
        for i in range(n):
            s = int(start[i])
            videos[i, s:s + A] = action[i].reshape(A, T, 1, S, S)
        if sensor_noise > 0:
            videos = videos + sensor_noise * torch.randn(videos.shape, generator=gen)
        self.videos = videos.clamp(0.0, 1.0)
        self.jitter = jitter

    def __len__(self) -> int:
        return self.videos.shape[0]

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.videos[i], int(self.labels[i])

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """All videos ``(n, M, T, 1, S, S)`` and labels ``(n,)``."""
        return self.videos, self.labels

    def action_clips(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The action clips only, ``(n * n_action, T, 1, S, S)``, with their video's label ``(n * n_action,)``:
        what a clip classifier trains on."""
        clips = self.videos[self.salient]                                              # (n*A, T, 1, S, S)
        labels = self.labels.repeat_interleave(self.n_action)
        return clips, labels

    def __repr__(self) -> str:
        return (f"LongVideos(split={self.split!r}, n_videos={len(self)}, n_clips={self.n_clips}, "
                f"clip_frames={self.clip_frames}, size={self.size}, n_action={self.n_action})")
