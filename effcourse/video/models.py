"""Video backbones and the TSN/TSM clip classifier.

* ``resnet2d``: a narrow torchvision ``ResNet`` (BasicBlock, widths 16-128, stride-2 stem) fit for
  32x32 frames on a CPU. It *is* a ``torchvision.models.ResNet``, so anything written for
  torchvision ResNets (Lab 2's inflation) works on it. Input ``(B, C, H, W)``, output ``(B, K)``.
* ``resnet3d``: the same depth and widths with ``t x 3 x 3`` convolutions everywhere (the shape of an
  inflated I3D ResNet), built fresh. Input ``(N, C, T, H, W)``, output ``(N, K)``.
* ``toy_resnet(seed, ...)``: a small ``resnet2d`` whose weights and BatchNorm statistics come from
  ``seed`` alone (the same network in any process; for hidden tests that build it twice).
* ``ClipClassifier``: runs a 2D backbone on every frame of a clip and fuses the per-frame logits
  with a consensus function (the learner's ``segment_consensus``). Input ``(N, T, C, H, W)``.
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import nn
from torchvision.models.resnet import BasicBlock, Bottleneck, ResNet

from ..data.clips import check_clips

WIDTHS = (16, 32, 64, 128)


def _check_widths(widths: Sequence[int], layers: Sequence[int]) -> None:
    if len(widths) != 4 or len(layers) != 4:
        raise ValueError(f"widths and layers need 4 entries each (one per stage), got {widths} and {layers}")
    if any(int(w) < 1 for w in widths) or any(int(n) < 1 for n in layers):
        raise ValueError(f"widths and layers must be positive, got {widths} and {layers}")


class SmallResNet(ResNet):
    """torchvision's ``ResNet`` with narrow widths and a 3x3 stride-2 stem (no max-pool).

    Only ``__init__`` differs from torchvision: the forward pass, ``_make_layer`` and the block
    class (``BasicBlock``, or ``Bottleneck`` with ``block="bottleneck"``) are torchvision's own.
    """

    def __init__(self, num_classes: int = 8, in_channels: int = 1, widths: Sequence[int] = WIDTHS,
                 layers: Sequence[int] = (1, 1, 1, 1), block: str = "basic"):
        _check_widths(widths, layers)
        if block not in ("basic", "bottleneck"):
            raise ValueError(f"block must be 'basic' or 'bottleneck', got {block!r}")
        kind = BasicBlock if block == "basic" else Bottleneck
        nn.Module.__init__(self)
        self._norm_layer = nn.BatchNorm2d
        self.inplanes, self.dilation, self.groups, self.base_width = widths[0], 1, 1, 64
        self.conv1 = nn.Conv2d(in_channels, widths[0], kernel_size=3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.Identity()
        self.layer1 = self._make_layer(kind, widths[0], layers[0])
        self.layer2 = self._make_layer(kind, widths[1], layers[1], stride=2)
        self.layer3 = self._make_layer(kind, widths[2], layers[2], stride=2)
        self.layer4 = self._make_layer(kind, widths[3], layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(widths[3] * kind.expansion, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)


def resnet2d(num_classes: int = 8, in_channels: int = 1, widths: Sequence[int] = WIDTHS,
             layers: Sequence[int] = (1, 1, 1, 1), block: str = "basic") -> SmallResNet:
    """A narrow ResNet-10 (``layers=(1,1,1,1)``) for small frames: ``(B, C, H, W) -> (B, K)``.
    ``block="bottleneck"`` builds it from torchvision's ``Bottleneck`` blocks (4x wider outputs)."""
    return SmallResNet(num_classes, in_channels, widths, layers, block)


def conv3d(cin: int, cout: int, kernel_size: int = 3, time_kernel: int = 3, stride=1, padding=0) -> nn.Conv3d:
    """The default conv of the 3D ResNet: a bias-free ``time_kernel x kernel_size x kernel_size`` Conv3d.

    Any ``conv`` passed to ``BasicBlock3d``/``SmallResNet3d`` takes these arguments (the learner's
    ``Conv2Plus1d`` does, which is how Lab 2 builds an R(2+1)D twin of the same network)."""
    return nn.Conv3d(cin, cout, (time_kernel, kernel_size, kernel_size), stride, padding, bias=False)


class BasicBlock3d(nn.Module):
    """A ResNet basic block with ``t x 3 x 3`` convs: ``(N, C, T, H, W) -> (N, C', T, H', W')``.
    Strides are spatial only; ``conv`` builds the two 3x3 convs (default ``conv3d``)."""

    def __init__(self, cin: int, cout: int, stride: int = 1, time_kernel: int = 3,
                 conv: Callable[..., nn.Module] = conv3d):
        super().__init__()
        pad = (time_kernel // 2, 1, 1)
        self.conv1 = conv(cin, cout, kernel_size=3, time_kernel=time_kernel, stride=(1, stride, stride), padding=pad)
        self.bn1 = nn.BatchNorm3d(cout)
        self.conv2 = conv(cout, cout, kernel_size=3, time_kernel=time_kernel, stride=1, padding=pad)
        self.bn2 = nn.BatchNorm3d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv3d(cin, cout, 1, (1, stride, stride), bias=False),
                                            nn.BatchNorm3d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class SmallResNet3d(nn.Module):
    """3D twin of ``resnet2d`` (same widths, depth and spatial strides; every 3x3 conv, stem included,
    is built by ``conv``: by default a ``t x 3 x 3`` Conv3d). Input ``(N, C, T, H, W)``."""

    def __init__(self, num_classes: int = 8, in_channels: int = 1, widths: Sequence[int] = WIDTHS,
                 layers: Sequence[int] = (1, 1, 1, 1), time_kernel: int = 3,
                 conv: Callable[..., nn.Module] = conv3d):
        super().__init__()
        _check_widths(widths, layers)
        if not callable(conv):
            raise TypeError(f"conv must be a module class or factory such as Conv2Plus1d, got {conv!r}")
        self.stem = nn.Sequential(
            conv(in_channels, widths[0], kernel_size=3, time_kernel=time_kernel, stride=(1, 2, 2),
                 padding=(time_kernel // 2, 1, 1)),
            nn.BatchNorm3d(widths[0]), nn.ReLU(inplace=True))
        blocks, cin = [], widths[0]
        for i, (w, n) in enumerate(zip(widths, layers)):
            for j in range(n):
                blocks.append(BasicBlock3d(cin, w, stride=2 if (i > 0 and j == 0) else 1, time_kernel=time_kernel,
                                           conv=conv))
                cin = w
        self.blocks = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool3d(1)
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_clips(x, f"{type(self).__name__}'s input", "(N, C, T, H, W)")
        return self.fc(self.pool(self.blocks(self.stem(x))).flatten(1))  # (N, C', 1, 1, 1) -> (N, C') -> (N, K)


def resnet3d(num_classes: int = 8, in_channels: int = 1, widths: Sequence[int] = WIDTHS,
             layers: Sequence[int] = (1, 1, 1, 1), time_kernel: int = 3,
             conv: Callable[..., nn.Module] = conv3d) -> SmallResNet3d:
    """A 3D ResNet with the depth and widths of ``resnet2d``: ``(N, C, T, H, W) -> (N, K)``."""
    return SmallResNet3d(num_classes, in_channels, widths, layers, time_kernel, conv)


class ClipClassifier(nn.Module):
    """TSN/TSM clip classifier: per-frame 2D backbone, then a consensus over the T segments.

    ``forward(clips)``: ``clips`` is ``(N, T, C, H, W)``; the backbone sees ``(N*T, C, H, W)`` (frames
    of a clip are consecutive), returns ``(N*T, K)``, and ``consensus(logits, T)`` gives ``(N, K)``.
    With a plain backbone this is TSN; with shifts inserted (``insert_shift``) it is TSM.
    """

    def __init__(self, backbone: nn.Module, n_segment: int, consensus: Callable[[torch.Tensor, int], torch.Tensor]):
        super().__init__()
        if int(n_segment) < 1:
            raise ValueError(f"n_segment must be >= 1, got {n_segment}")
        if not callable(consensus):
            raise TypeError("consensus must be a function (logits (N*T, K), n_segment) -> (N, K)")
        self.backbone, self.n_segment, self.consensus = backbone, int(n_segment), consensus

    def frame_logits(self, clips: torch.Tensor) -> torch.Tensor:
        """Per-frame logits ``(N*T, K)`` for clips ``(N, T, C, H, W)``."""
        check_clips(clips)
        if clips.shape[1] != self.n_segment:
            raise ValueError(f"this model was built for T = {self.n_segment} frames, got clips with "
                             f"T = {clips.shape[1]}")
        n, t = clips.shape[:2]
        return self.backbone(clips.reshape(n * t, *clips.shape[2:]))     # (N, T, C, H, W) -> (N*T, C, H, W)

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        out = self.consensus(self.frame_logits(clips), self.n_segment)
        if not isinstance(out, torch.Tensor) or out.dim() != 2 or out.shape[0] != clips.shape[0]:
            got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise ValueError(f"consensus must return (N, K) = ({clips.shape[0]}, K), got {got}")
        return out


def toy_resnet(seed: int, block: str = "basic", widths=(8, 8, 16, 16), layers=(1, 1, 1, 1), num_classes: int = 5,
               in_channels: int = 1) -> SmallResNet:
    """A small torchvision ResNet (``effcourse.video.resnet2d``) whose weights and BatchNorm statistics
    are drawn from ``seed`` alone (the global RNG is left as it was); returned in eval mode.
    Input ``(B, in_channels, H, W)``, output ``(B, num_classes)``."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        model = resnet2d(num_classes, in_channels, tuple(widths), tuple(layers), block)
        with torch.no_grad():
            for m in model.modules():
                if isinstance(m, nn.BatchNorm2d):
                    m.running_mean.normal_(0, 0.3)
                    m.running_var.uniform_(0.5, 2.0)
                    m.weight.uniform_(0.5, 1.5)
                    m.bias.normal_(0, 0.2)
    return model.eval()
