"""Training and evaluation loops for clip classifiers (``Loop`` options, a ``History`` back).

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

from ..data.clips import check_clips
from ..training import History, Loop, eval_mode


def _tensors(dataset: Dataset) -> tuple[torch.Tensor, torch.Tensor]:
    if hasattr(dataset, "tensors"):
        return dataset.tensors()
    xs, ys = zip(*(dataset[i] for i in range(len(dataset))))
    return torch.stack(xs), torch.as_tensor(ys)


class TensorClips(Dataset):
    """Clips ``(n, T, C, H, W)`` and labels ``(n,)`` held in memory, with ``tensors()`` like ``TemporalDigits``."""

    def __init__(self, clips: torch.Tensor, labels: torch.Tensor, classes=None):
        check_clips(clips)
        if labels.dim() != 1 or clips.shape[0] != labels.shape[0]:
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
    check_clips(clips)
    n, t, _, h, w = clips.shape
    index = torch.arange(t, dtype=clips.dtype, device=clips.device) / max(t - 1, 1)          # (T,)
    index = index.view(1, t, 1, 1, 1).expand(n, t, 1, h, w)                                  # (N, T, 1, H, W)
    return torch.cat([clips, index], 2)                                                      # (N, T, C+1, H, W)


def train_classifier(model: nn.Module, dataset: Dataset, loop: Loop, lr: float = 3e-3, weight_decay: float = 1e-4,
                     eval_every: int = 0, eval_fn: Callable[[nn.Module], float] | None = None) -> History:
    """Train with AdamW and a one-cycle learning rate (15 % warm-up, then cosine annealing) for
    ``loop.steps`` steps of ``loop.batch_size`` clips drawn with replacement (seeded by ``loop.seed``).

    Returns a ``History``: ``"loss"`` at steps 1, 2, ... (every ``loop.log_every``-th and the last);
    ``"eval"``, the value of ``eval_fn(model)`` (run in eval mode), every ``eval_every`` steps and at
    the end when ``eval_fn`` is given. The model is left in eval mode.
    """
    x_all, y_all = _tensors(dataset)
    gen = torch.Generator().manual_seed(loop.seed)
    model.to(loop.device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=loop.steps, pct_start=0.15)
    with loop.history() as hist:
        bar = loop.bar()
        for step in bar:
            idx = torch.randint(0, len(y_all), (loop.batch_size,), generator=gen)
            x, y = x_all[idx].to(loop.device), y_all[idx].to(loop.device)
            loss = _step(model, opt, x, y)
            sched.step()
            if loop.logs(step):
                hist.log(step + 1, loss=loss)
            if step % 10 == 0:
                bar.set_postfix(loss=f"{loss:.3f}")
            if eval_fn is not None and ((eval_every and (step + 1) % eval_every == 0) or step + 1 == loop.steps):
                with eval_mode(model):
                    hist.log(step + 1, eval=eval_fn(model))
    model.eval()
    return hist


def _step(model: nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor) -> float:
    """One cross-entropy step on clips ``x`` ``(B, T, C, H, W)`` and labels ``y`` ``(B,)``; returns the loss."""
    loss = F.cross_entropy(model(x), y)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss.item()


@torch.no_grad()
def predict(model: nn.Module, dataset: Dataset, batch_size: int = 64,
            device: torch.device | str = "cpu") -> torch.Tensor:
    """Logits ``(n, K)`` for every clip of ``dataset`` (eval mode)."""
    x_all, _ = _tensors(dataset)
    model.to(device).eval()
    return torch.cat([model(x_all[i:i + batch_size].to(device)).cpu() for i in range(0, len(x_all), batch_size)])


def accuracy(model: nn.Module, dataset: Dataset, batch_size: int = 64, device: torch.device | str = "cpu") -> float:
    """Top-1 accuracy of ``model`` on ``dataset`` in [0, 1]."""
    _, y = _tensors(dataset)
    return (predict(model, dataset, batch_size, device).argmax(1) == y).float().mean().item()
