"""Asset ``digit_features``: the digit classifier behind the digit-feature Fréchet distance.

Trains ``effcourse.metrics.DigitFeatures`` on the fixed train split of the bundled digits at 16x16
(small random shifts as augmentation), deterministically from a seed on one CPU thread; reports the
test accuracy (about 98 %). ``build(quick=True)`` is a few-step smoke build for the tests.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from effcourse.data.digits import load_digits
from effcourse.metrics import DigitFeatures

SEED = 0
STEPS, QUICK_STEPS = 1500, 10
BATCH = 128


def _shift(x: torch.Tensor, gen: torch.Generator, max_shift: int = 1) -> torch.Tensor:
    """Each image moved by a random integer offset in [-max_shift, max_shift] per axis, background (-1) fill."""
    n, _, h, w = x.shape
    m = max_shift
    pad = F.pad(x, (m, m, m, m), value=-1.0)
    dy = torch.randint(0, 2 * m + 1, (n,), generator=gen)
    dx = torch.randint(0, 2 * m + 1, (n,), generator=gen)
    rows = (dy[:, None] + torch.arange(h)[None]).view(n, 1, h, 1).expand(n, 1, h, w + 2 * m)
    pad = pad.gather(2, rows)
    cols = (dx[:, None] + torch.arange(w)[None]).view(n, 1, 1, w).expand(n, 1, h, w)
    return pad.gather(3, cols)


def accuracy(net: DigitFeatures, images: torch.Tensor, labels: torch.Tensor) -> float:
    with torch.no_grad():
        return float((net.eval()(images).argmax(1) == labels).float().mean())


def build(quick: bool = False) -> dict:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(SEED)
        gen = torch.Generator().manual_seed(SEED)
        x, y = load_digits(16, "train")
        xt, yt = load_digits(16, "test")
        net = DigitFeatures()
        steps = QUICK_STEPS if quick else STEPS
        opt = torch.optim.Adam(net.parameters(), lr=3e-3)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
        net.train()
        for _ in range(steps):
            idx = torch.randint(0, len(x), (BATCH,), generator=gen)
            loss = F.cross_entropy(net(_shift(x[idx], gen)), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        print(f"digit_features: {steps} steps, train acc {accuracy(net, x, y):.3f}, "
              f"test acc {accuracy(net, xt, yt):.3f}")
        return {k: v.detach().clone().contiguous() for k, v in net.state_dict().items()}
    finally:
        torch.set_num_threads(threads)
