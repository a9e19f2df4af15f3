"""Plumbing for Lab 2 (3D convolutions): channel-order adapter, digit-frame pre-training data,
an R(2+1)D ResNet built from the learner's ``Conv2Plus1d`` class, and a random re-initialiser.

Nothing here implements an exercise: the (2+1)D block is passed in as ``conv_cls``.

Shapes: the course's clip tensors are ``(N, T, C, H, W)`` (what ``TemporalDigits``,
``train_classifier`` and ``ClipClassifier`` use); PyTorch's 3D layers want ``(N, C, T, H, W)``.
``ChannelsFirst`` converts between the two.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn

from ..data.clips import check_clips
from ..data.temporal_digits import N_TRAIN_IMAGES
from ..training import eval_mode
from .models import WIDTHS, SmallResNet3d


class ChannelsFirst(nn.Module):
    """Run a 3D model ``(N, C, T, H, W) -> (N, K)`` on course clips ``(N, T, C, H, W)``."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        return self.model(check_clips(clips).transpose(1, 2))           # (N, T, C, H, W) -> (N, C, T, H, W)


class DigitFrames(torch.utils.data.Dataset):
    """Single frames ``(1, H, W)`` of a ``TemporalDigits`` dataset, labelled with the *digit* (0-9).

    The image-classification task a 2D network is pre-trained on before inflation (the miniature of
    ImageNet pre-training). ``frames_per_clip`` frames are taken from each clip, evenly spaced.
    """

    def __init__(self, clips_dataset, frames_per_clip: int | None = None):
        from sklearn.datasets import load_digits

        for attr in ("clips", "digit_index", "split"):
            if not hasattr(clips_dataset, attr):
                raise TypeError(f"DigitFrames needs a TemporalDigits dataset, got {type(clips_dataset).__name__}")
        clips = clips_dataset.clips                                   # (n, T, 1, H, W)
        n, t = clips.shape[:2]
        k = t if frames_per_clip is None else int(frames_per_clip)
        if not 1 <= k <= t:
            raise ValueError(f"frames_per_clip must be in 1..{t}, got {frames_per_clip}")
        idx = torch.from_numpy(np.linspace(0, t - 1, k).round().astype(np.int64))
        targets = torch.as_tensor(load_digits().target)
        pool = targets[:N_TRAIN_IMAGES] if clips_dataset.split == "train" else targets[N_TRAIN_IMAGES:]
        self.x = clips[:, idx].reshape(n * k, *clips.shape[2:]).contiguous()   # (n, k, C, H, W) -> (n*k, C, H, W)
        self.y = pool[clips_dataset.digit_index].repeat_interleave(k)

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int):
        return self.x[i], int(self.y[i])

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """All frames ``(n, 1, H, W)`` and digit labels ``(n,)``."""
        return self.x, self.y


def r2plus1d(conv_cls: Callable[..., nn.Module], num_classes: int = 8, in_channels: int = 1,
             widths: Sequence[int] = WIDTHS, layers: Sequence[int] = (1, 1, 1, 1),
             time_kernel: int = 3) -> SmallResNet3d:
    """R(2+1)D twin of ``resnet2d``/``resnet3d``: the same network with every 3x3 conv (stem
    included) built by ``conv_cls`` (the learner's ``Conv2Plus1d``). Input ``(N, C, T, H, W)``.

    Each ``conv_cls(cin, cout, kernel_size=3, time_kernel=t, stride=..., padding=...)`` computes
    its own mid-plane count from its own ``cin -> cout`` (the paper's rule, conv by conv).
    """
    if not callable(conv_cls):
        raise TypeError(f"conv_cls must be a module class such as your Conv2Plus1d, got {conv_cls!r}")
    return SmallResNet3d(num_classes, in_channels, widths, layers, time_kernel, conv=conv_cls)


@torch.no_grad()
def reinit_(model: nn.Module) -> nn.Module:
    """Re-initialise ``model`` in place from scratch (torchvision's ResNet recipe): convs Kaiming-normal
    (fan-out), norms weight 1 / bias 0 / fresh running statistics, linears their default. Returns it."""
    for m in model.modules():
        if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)):
            m.reset_parameters()
        elif isinstance(m, nn.Linear):
            m.reset_parameters()
    return model


def capture_input(model: nn.Module, module: nn.Module, *args) -> torch.Tensor:
    """The tensor that ``module`` (a submodule of ``model``) receives when ``model(*args)`` runs (eval, no grad)."""
    seen: list[torch.Tensor] = []
    handle = module.register_forward_hook(lambda _m, inp, _out: seen.append(inp[0].detach()))
    try:
        with eval_mode(model), torch.no_grad():
            model(*args)
    finally:
        handle.remove()
    if not seen:
        raise ValueError("the module never ran during model(*args): is it a submodule of the model?")
    return seen[0]
