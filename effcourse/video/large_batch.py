"""Large mini-batches on one process by gradient accumulation (Lab 7's accuracy-vs-batch experiment).

A step over a global batch of B clips sums the gradients of B / b micro-batches of b clips, each
weighted b / B, which is the mean-loss gradient of the whole batch: what B / b GPUs holding b clips
each would compute with data-parallel training, BatchNorm statistics per micro-batch included
(DDP does not synchronise them). The learning rate comes from the caller's ``lr_fn(step,
total_steps)`` (the learner's ``scaled_lr`` and ``lr_at``); nothing here chooses it.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from .train import _tensors

__all__ = ["train_accumulated"]


def train_accumulated(model: nn.Module, dataset: Dataset, global_batch: int, micro_batch: int, epochs: int,
                      lr_fn: Callable[[int, int], float], seed: int = 0, momentum: float = 0.9,
                      weight_decay: float = 1e-4, desc: str | None = None) -> dict[str, Any]:
    """SGD with momentum for ``epochs`` passes over ``dataset`` in steps of ``global_batch`` clips.

    Every epoch is a fresh permutation (seeded by ``seed``) cut into ``len(dataset) // global_batch``
    steps (the remainder is dropped); each step accumulates ``global_batch // micro_batch``
    micro-batch gradients. The learning rate of step ``s`` of ``S`` is ``lr_fn(s, S)``.
    Returns ``{"loss": [...], "lr": [...], "steps": S}``; the model is left in eval mode.
    """
    global_batch, micro_batch, epochs = int(global_batch), int(micro_batch), int(epochs)
    if micro_batch < 1 or global_batch % micro_batch:
        raise ValueError(f"global_batch ({global_batch}) must be a positive multiple of micro_batch ({micro_batch})")
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    x_all, y_all = _tensors(dataset)
    per_epoch = len(y_all) // global_batch
    if per_epoch < 1:
        raise ValueError(f"global_batch {global_batch} is larger than the data set ({len(y_all)} clips)")
    total = per_epoch * epochs
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.SGD(model.parameters(), lr=0.0, momentum=momentum, weight_decay=weight_decay)
    hist: dict[str, Any] = {"loss": [], "lr": [], "steps": total}
    model.train()
    bar = tqdm(total=total, desc=desc or f"batch {global_batch}", leave=False)
    step = 0
    for _ in range(epochs):
        perm = torch.randperm(len(y_all), generator=gen)
        for s in range(per_epoch):
            idx = perm[s * global_batch:(s + 1) * global_batch]          # this step's global batch
            lr = float(lr_fn(step, total))
            for group in opt.param_groups:
                group["lr"] = lr
            opt.zero_grad(set_to_none=True)
            loss_sum = 0.0
            for part in idx.split(micro_batch):                          # one "GPU" each
                loss = F.cross_entropy(model(x_all[part]), y_all[part]) * (len(part) / global_batch)
                loss.backward()
                loss_sum += loss.item()
            opt.step()
            hist["loss"].append(loss_sum)
            hist["lr"].append(lr)
            step += 1
            bar.update(1)
    bar.close()
    model.eval()
    return hist
