"""SCSampler in miniature: an expensive clip classifier and a cheap saliency scorer on long videos.

* ``clip_classifier``: a small 3D CNN on one clip ``(N, T, 1, S, S)`` -> logits ``(N, K)``.
* ``SaliencyNet``: the cheap scorer. It sees a clip at half resolution through its frame
  differences (motion is where the action is), a few channels wide: clip -> one score. Its MACs are a
  small fraction of the classifier's.
* ``per_clip(model, videos)``: runs a clip model on every clip of videos ``(N, M, T, C, S, S)`` ->
  ``(N, M, ...)``.
* ``train_sampler``: trains the scorer with the learner's ranking loss on per-clip targets.
* ``uniform_indices(M, k)``: k clips evenly spaced over the video, the baseline.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..data.clips import check_clips
from ..training import History, Loop


def clip_classifier(num_classes: int = 8, in_channels: int = 1, widths=(16, 32, 64)) -> nn.Module:
    """A 3x3x3 CNN (three conv-BN-ReLU units, spatial stride 2 after the first), pooled and classified."""
    layers, cin = [], in_channels
    for i, w in enumerate(widths):
        layers += [nn.Conv3d(cin, w, 3, stride=(1, 1 if i == 0 else 2, 1 if i == 0 else 2), padding=1, bias=False),
                   nn.BatchNorm3d(w), nn.ReLU(inplace=True)]
        cin = w
    return _Clip3d(nn.Sequential(*layers), nn.Linear(cin, num_classes))


class _Clip3d(nn.Module):
    def __init__(self, body, head):
        super().__init__()
        self.body, self.head = body, head

    def forward(self, clips):                                        # (N, T, C, H, W) -> (N, K)
        return self.head(self.body(clips.transpose(1, 2)).mean((2, 3, 4)))   # (N, C, T, H, W) -> (N, C') -> (N, K)


class SaliencyNet(nn.Module):
    """Cheap clip scorer: clip ``(N, T, C, S, S)`` -> score ``(N,)``, from frame differences at S/2.

    Two small convs on every frame difference, pooled over space; the mean and the spread over time
    of these features (smooth motion vs. random jumps vs. sensor noise) go through a tiny MLP.
    """

    def __init__(self, in_channels: int = 1, width: int = 6, hidden: int = 16):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, width, 3, padding=1)
        self.conv2 = nn.Conv2d(width, width, 3, stride=2, padding=1)
        self.mlp = nn.Sequential(nn.Linear(2 * width, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        check_clips(clips, layout="(N, T, C, S, S)")
        n, t, c, h, w = clips.shape
        x = F.avg_pool2d(clips.reshape(n * t, c, h, w), 2)             # (N*T, C, S/2, S/2)
        x = x.reshape(n, t, c, h // 2, w // 2)                          # (N, T, C, S/2, S/2)
        d = 10 * ((x[:, 1:] - x[:, :-1]) if t > 1 else x)             # frame differences (N, T-1, C, S/2, S/2), scaled
        z = F.relu(self.conv2(F.relu(self.conv1(d.flatten(0, 1)))))   # (N*(T-1), width, S/4, S/4)
        z = z.mean((2, 3)).reshape(n, d.shape[1], -1)                 # (N, T-1, width)
        feat = torch.cat([z.mean(1), z.std(1, unbiased=False)], 1)    # (N, 2 * width)
        return self.mlp(feat).squeeze(1)                                # (N, 1) -> (N,)


@torch.no_grad()
def per_clip(model: nn.Module, videos: torch.Tensor, batch_size: int = 256, device="cpu") -> torch.Tensor:
    """``model`` on every clip of ``videos`` ``(N, M, T, C, S, S)`` -> ``(N, M, ...)`` (eval mode)."""
    check_clips(videos, "videos", "(N, M, T, C, S, S)")
    n, m = videos.shape[:2]
    flat = videos.flatten(0, 1)                                          # (N*M, T, C, S, S)
    model.to(device).eval()
    out = torch.cat([model(flat[i:i + batch_size].to(device)).cpu() for i in range(0, len(flat), batch_size)])
    return out.reshape(n, m, *out.shape[1:])                             # (N*M, ...) -> (N, M, ...)


def train_sampler(sampler: nn.Module, videos: torch.Tensor, targets: torch.Tensor,
                  ranking_loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], loop: Loop,
                  lr: float = 1e-2) -> History:
    """Train ``sampler`` with Adam so that its scores ``(B, M)`` rank each video's clips like ``targets``
    ``(N, M)``, with the learner's ``ranking_loss(scores, targets)``: ``loop.steps`` steps of
    ``loop.batch_size`` videos drawn with replacement (seeded by ``loop.seed``).

    Returns a ``History`` with ``"loss"`` at steps 1, 2, ... (every ``loop.log_every``-th and the
    last). The sampler is left in eval mode.
    """
    check_clips(videos, "videos", "(N, M, T, C, S, S)")
    gen = torch.Generator().manual_seed(loop.seed)
    sampler.to(loop.device).train()
    opt = torch.optim.Adam(sampler.parameters(), lr=lr)
    n, m = videos.shape[:2]
    with loop.history() as hist:
        for step in loop.bar():
            idx = torch.randint(0, n, (loop.batch_size,), generator=gen)
            v = videos[idx].to(loop.device)                                     # (B, M, T, C, S, S)
            scores = sampler(v.flatten(0, 1)).reshape(loop.batch_size, m)      # (B*M, T, C, S, S) -> (B, M)
            loss = ranking_loss(scores, targets[idx].to(loop.device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if loop.logs(step):
                hist.log(step + 1, loss=loss)
    sampler.eval()
    return hist


def uniform_indices(n_clips: int, k: int) -> torch.Tensor:
    """``k`` clip indices evenly spaced over ``n_clips`` (the centres of k equal segments)."""
    if not 1 <= int(k) <= int(n_clips):
        raise ValueError(f"k must be in 1..{n_clips}, got {k}")
    return ((torch.arange(k) + 0.5) * n_clips / k).floor().long()
