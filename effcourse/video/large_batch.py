"""Large mini-batches on one process by gradient accumulation (Lab 7's accuracy-vs-batch experiment).

A step over a global batch of B clips sums the gradients of B / b micro-batches of b clips, each
weighted b / B, which is the mean-loss gradient of the whole batch: what B / b GPUs holding b clips
each would compute with data-parallel training, BatchNorm statistics per micro-batch included
(DDP does not synchronise them). The learning rate comes from the caller's ``lr_fn(step,
total_steps)`` (the learner's ``scaled_lr`` and ``lr_at``); nothing here chooses it.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from ..training import History, Loop
from .train import _tensors

__all__ = ["train_accumulated", "steps_for"]


def steps_for(n_clips: int, global_batch: int, epochs: int) -> int:
    """Steps of ``epochs`` passes over ``n_clips`` clips in global batches (the remainder of each pass dropped)."""
    per_epoch = int(n_clips) // int(global_batch)
    if per_epoch < 1:
        raise ValueError(f"global_batch {global_batch} is larger than the data set ({n_clips} clips)")
    if int(epochs) < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    return per_epoch * int(epochs)


def train_accumulated(model: nn.Module, dataset: Dataset, lr_fn: Callable[[int, int], float], loop: Loop,
                      micro_batch: int, momentum: float = 0.9, weight_decay: float = 1e-4) -> History:
    """SGD with momentum for ``loop.steps`` steps of ``loop.batch_size`` clips (the global batch B).

    Each pass over ``dataset`` is a fresh permutation (seeded by ``loop.seed``) cut into
    ``len(dataset) // B`` steps (the remainder is dropped; ``steps_for`` counts the steps of whole
    epochs); each step accumulates ``B // micro_batch`` micro-batch gradients. The learning rate of
    step ``s`` of ``S`` is ``lr_fn(s, S)``. Returns a ``History`` with ``"loss"`` and ``"lr"`` at steps
    1, 2, ... (every ``loop.log_every``-th and the last) and ``meta`` ``steps``, ``steps_per_epoch``,
    ``global_batch``, ``micro_batch``. The model is left in eval mode.
    """
    global_batch, micro_batch = loop.batch_size, int(micro_batch)
    if micro_batch < 1 or global_batch % micro_batch:
        raise ValueError(f"the global batch ({global_batch}) must be a positive multiple of "
                         f"micro_batch ({micro_batch})")
    x_all, y_all = _tensors(dataset)
    per_epoch = steps_for(len(y_all), global_batch, 1)
    gen = torch.Generator().manual_seed(loop.seed)
    opt = torch.optim.SGD(model.parameters(), lr=0.0, momentum=momentum, weight_decay=weight_decay)
    model.train()
    with loop.history() as hist:
        hist.meta.update(steps=loop.steps, steps_per_epoch=per_epoch, global_batch=global_batch,
                         micro_batch=micro_batch)
        for step in loop.bar():
            if step % per_epoch == 0:
                perm = torch.randperm(len(y_all), generator=gen)           # a fresh pass over the data
            s = step % per_epoch
            idx = perm[s * global_batch:(s + 1) * global_batch]           # this step's global batch
            lr = float(lr_fn(step, loop.steps))
            loss = _accumulated_step(model, opt, x_all, y_all, idx, micro_batch, lr)
            if loop.logs(step):
                hist.log(step + 1, loss=loss, lr=lr)
    model.eval()
    return hist


def _accumulated_step(model: nn.Module, opt: torch.optim.Optimizer, x_all: torch.Tensor, y_all: torch.Tensor,
                      idx: torch.Tensor, micro_batch: int, lr: float) -> float:
    """One SGD step at rate ``lr`` on the clips ``idx`` ``(B,)``, summing the gradients of micro-batches
    of ``micro_batch`` clips weighted ``b / B``; returns the global batch's mean loss."""
    for group in opt.param_groups:
        group["lr"] = lr
    opt.zero_grad(set_to_none=True)
    loss_sum = 0.0
    for part in idx.split(micro_batch):                                  # one "GPU" each
        loss = F.cross_entropy(model(x_all[part]), y_all[part]) * (len(part) / len(idx))
        loss.backward()
        loss_sum += loss.item()
    opt.step()
    return loss_sum
