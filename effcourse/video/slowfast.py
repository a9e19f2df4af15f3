"""A miniature SlowFast network whose lateral connections call the learner's ``lateral_fuse``.

Input clips ``(N, T, C, H, W)``. The **fast** pathway sees all T frames with few channels
(``beta`` times the slow widths) and temporal kernels 3; the **slow** pathway sees frames
0, alpha, 2*alpha, ... (T / alpha frames) with many channels and *no* temporal extent
(1x3x3 kernels, as the paper's early slow stages). After the stem and after every stage but the
last, ``slow = lateral_fuse(slow, fast, weight, alpha)`` concatenates a time-strided convolution
of the fast features (kernel 5x1x1, stride alpha, 2*beta*C output channels) to the slow ones.
Both pathways are pooled globally, concatenated and classified. ``mode="slow"`` drops the fast
pathway (Slow-only); ``mode="single"`` is one pathway on all T frames with 3x3x3 kernels (a plain
3D CNN), whose width is set to match a MAC target with ``match_width``.
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import nn

from torch.utils.flop_counter import FlopCounterMode

from ..data.clips import check_clips


def _unit(cin: int, cout: int, kt: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv3d(cin, cout, (kt, 3, 3), stride=(1, stride, stride), padding=(kt // 2, 1, 1),
                                   bias=False), nn.BatchNorm3d(cout), nn.ReLU(inplace=True))


class SlowFastNet(nn.Module):
    """Slow + fast pathways (stem and len(widths) - 1 stages), fused by ``fuse`` after all but the last.

    Args:
        fuse: the learner's ``lateral_fuse(slow, fast, weight, alpha) -> slow'`` (mode "slowfast" only).
        widths: slow-pathway widths of the stem and the stages (each stage halves H and W).
        alpha: frame ratio (fast frames / slow frames); T must be a multiple of it.
        beta: channel ratio (fast width / slow width).
        mode: "slowfast", "slow" (slow pathway alone) or "single" (one 3x3x3 pathway on all frames).
        lateral_kernel: temporal kernel of the lateral convolutions (the paper's 5).
    """

    def __init__(self, fuse: Callable | None = None, widths: Sequence[int] = (8, 16, 32), alpha: int = 4,
                 beta: float = 0.25, num_classes: int = 8, in_channels: int = 1, mode: str = "slowfast",
                 lateral_kernel: int = 5):
        super().__init__()
        if mode not in ("slowfast", "slow", "single"):
            raise ValueError(f"mode must be 'slowfast', 'slow' or 'single', got {mode!r}")
        if mode == "slowfast" and not callable(fuse):
            raise TypeError("mode 'slowfast' needs fuse = your lateral_fuse function")
        if int(alpha) < 1:
            raise ValueError(f"alpha must be >= 1, got {alpha}")
        self.fuse, self.alpha, self.mode = fuse, int(alpha), mode
        kt_slow = 3 if mode == "single" else 1
        fast_w = [max(1, round(w * beta)) for w in widths] if mode == "slowfast" else []
        lat = 2 if mode == "slowfast" else 0          # the lateral adds 2 * beta * C channels to the slow input
        slow, fastp, lats = [], [], nn.ParameterList()
        cin_s, cin_f = in_channels, in_channels
        for i, w in enumerate(widths):
            slow.append(_unit(cin_s, w, kt_slow, 1 if i == 0 else 2))
            cin_s = w
            if fast_w:
                fastp.append(_unit(cin_f, fast_w[i], 3, 1 if i == 0 else 2))
                cin_f = fast_w[i]
                if i < len(widths) - 1:
                    wt = torch.empty(lat * fast_w[i], fast_w[i], lateral_kernel, 1, 1)
                    nn.init.kaiming_normal_(wt, mode="fan_out", nonlinearity="relu")
                    lats.append(nn.Parameter(wt))
                    cin_s += lat * fast_w[i]
        self.slow, self.fastp, self.laterals = nn.ModuleList(slow), nn.ModuleList(fastp), lats
        self.head = nn.Linear(widths[-1] + (fast_w[-1] if fast_w else 0), num_classes)

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        x = check_clips(clips).transpose(1, 2)                                   # (N, C, T, H, W)
        if self.mode != "single" and x.shape[2] % self.alpha:
            raise ValueError(f"T = {x.shape[2]} frames is not a multiple of alpha = {self.alpha}")
        s = x if self.mode == "single" else x[:, :, ::self.alpha]   # slow: frames 0, alpha, 2 alpha, ...
        f = x
        for i, unit in enumerate(self.slow):
            s = unit(s)
            if self.mode == "slowfast":
                f = self.fastp[i](f)
                if i < len(self.laterals):
                    s = self.fuse(s, f, self.laterals[i], self.alpha)
        feats = [s.mean((2, 3, 4))] + ([f.mean((2, 3, 4))] if self.mode == "slowfast" else [])
        return self.head(torch.cat(feats, 1))


def count_macs(model: nn.Module, *args) -> int:
    """MACs of ``model(*args)`` (``torch.utils.flop_counter`` FLOPs / 2, under no_grad); the same count as
    ``effcourse.bench.count_macs``, here because ``video`` sits below ``bench`` in the package's layers."""
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(*args)
    return counter.get_total_flops() // 2


def match_width(make: Callable[[int], nn.Module], target_macs: float, clip: torch.Tensor, lo: int = 1,
                hi: int = 256) -> tuple[int, int]:
    """The integer base width ``w`` whose ``make(w)`` costs closest to ``target_macs`` on ``clip``
    (MACs grow with w; bisection). Returns ``(w, macs)``."""
    best = None
    while lo <= hi:
        mid = (lo + hi) // 2
        macs = count_macs(make(mid).eval(), clip)
        if best is None or abs(macs - target_macs) < abs(best[1] - target_macs):
            best = (mid, macs)
        if macs < target_macs:
            lo = mid + 1
        else:
            hi = mid - 1
    return best
