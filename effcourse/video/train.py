"""Training and evaluation loops for clip classifiers (with tqdm progress).

Training is budgeted in *steps*, not seconds: the wall speed of a shared machine varies a lot.
Models take clips ``(N, T, C, H, W)`` and return logits ``(N, K)``.

``add_frame_index`` and ``TensorClips`` build Lab 1's control, a TSN that is told each frame's index:
the index becomes one more input channel.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset
from tqdm.auto import tqdm


def _tensors(dataset: Dataset) -> tuple[torch.Tensor, torch.Tensor]:
    if hasattr(dataset, "tensors"):
        return dataset.tensors()
    xs, ys = zip(*(dataset[i] for i in range(len(dataset))))
    return torch.stack(xs), torch.as_tensor(ys)


class TensorClips(Dataset):
    """Clips ``(n, T, C, H, W)`` and labels ``(n,)`` held in memory, with ``tensors()`` like ``TemporalDigits``."""

    def __init__(self, clips: torch.Tensor, labels: torch.Tensor, classes=None):
        if clips.dim() != 5 or labels.dim() != 1 or clips.shape[0] != labels.shape[0]:
            raise ValueError(f"need clips (n, T, C, H, W) and labels (n,), got {tuple(clips.shape)} and "
                             f"{tuple(labels.shape)}")
        self.clips, self.labels, self.classes = clips, labels, classes

    def __len__(self) -> int:
        return self.clips.shape[0]

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.clips[i], int(self.labels[i])

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.clips, self.labels


def add_frame_index(clips: torch.Tensor) -> torch.Tensor:
    """Clips ``(N, T, C, H, W)`` -> ``(N, T, C + 1, H, W)``: the extra channel of frame t is the constant t/(T-1)
    (0 for T = 1), so a per-frame network knows which frame it sees."""
    if clips.dim() != 5:
        raise ValueError(f"clips must be (N, T, C, H, W), got a tensor of rank {clips.dim()}")
    n, t, _, h, w = clips.shape
    index = torch.arange(t, dtype=clips.dtype, device=clips.device) / max(t - 1, 1)          # (T,)
    index = index.view(1, t, 1, 1, 1).expand(n, t, 1, h, w)                                  # (N, T, 1, H, W)
    return torch.cat([clips, index], 2)                                                      # (N, T, C+1, H, W)


def train_classifier(model: nn.Module, dataset: Dataset, steps: int, batch_size: int = 16, lr: float = 3e-3,
                     weight_decay: float = 1e-4, device: torch.device | str = "cpu", seed: int = 0,
                     desc: str = "train", eval_every: int = 0,
                     eval_fn: Callable[[nn.Module], float] | None = None) -> dict[str, list]:
    """Train with AdamW and a one-cycle learning rate (15 % warm-up, then cosine annealing) for ``steps``
    steps of ``batch_size`` clips drawn with replacement.

    Returns ``{"loss": [...per step], "eval_step": [...], "eval": [...]}``; ``eval_fn(model)`` is
    called every ``eval_every`` steps (and at the end) when given.
    """
    if int(steps) < 1 or int(batch_size) < 1:
        raise ValueError(f"steps and batch_size must be >= 1, got {steps} and {batch_size}")
    x_all, y_all = _tensors(dataset)
    gen = torch.Generator().manual_seed(seed)
    model.to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=int(steps), pct_start=0.15)
    hist: dict[str, list] = {"loss": [], "eval_step": [], "eval": []}
    bar = tqdm(range(int(steps)), desc=desc, leave=False)
    for step in bar:
        idx = torch.randint(0, len(y_all), (batch_size,), generator=gen)
        x, y = x_all[idx].to(device), y_all[idx].to(device)
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        hist["loss"].append(loss.item())
        if step % 10 == 0:
            bar.set_postfix(loss=f"{loss.item():.3f}")
        last = step == int(steps) - 1
        if eval_fn is not None and ((eval_every and (step + 1) % eval_every == 0) or last):
            hist["eval_step"].append(step + 1)
            hist["eval"].append(eval_fn(model))
            model.train()
    model.eval()
    return hist


@torch.no_grad()
def predict(model: nn.Module, dataset: Dataset, batch_size: int = 64, device: torch.device | str = "cpu") -> torch.Tensor:
    """Logits ``(n, K)`` for every clip of ``dataset`` (eval mode)."""
    x_all, _ = _tensors(dataset)
    model.to(device).eval()
    return torch.cat([model(x_all[i:i + batch_size].to(device)).cpu() for i in range(0, len(x_all), batch_size)])


def accuracy(model: nn.Module, dataset: Dataset, batch_size: int = 64, device: torch.device | str = "cpu") -> float:
    """Top-1 accuracy of ``model`` on ``dataset`` in [0, 1]."""
    _, y = _tensors(dataset)
    return (predict(model, dataset, batch_size, device).argmax(1) == y).float().mean().item()
