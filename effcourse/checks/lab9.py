"""Self-checks for Lab 9 (SlowFast, X3D expansion, SCSampler, RRM). Hand-worked examples and invariants.

``ToySpace`` is a public test helper (no answer in it): a fake X3D search space whose ``expand``,
``cost`` and ``evaluate`` are cheap and deterministic, so that a greedy search can be checked
without training anything.
"""
from __future__ import annotations

import math
import random

import torch
from torch import nn

from .asserts import assert_close, assert_shape, assert_true, call, clock_seed, passed, seed_in_failures

__all__ = ["ToySpace", "check_lateral_fuse", "check_greedy_expand", "check_topk_predict", "check_ranking_loss",
           "check_incremental_conv", "check_rrm_exact", "clock_seed", "seed_in_failures"]


class ToySpace:
    """A fake search space: configs are ``{axis: level}``; ``expand`` raises one level (None at
    ``max_level``), ``cost`` = ``base * prod(factors[axis] ** level)`` times a small per-config jitter
    (so that no two costs tie), ``evaluate`` = a fixed pseudo-random accuracy in [0, 1] per config
    (increasing on average with the cost). Every call is appended to ``calls``."""

    def __init__(self, axes=("frames", "res", "width"), seed: int = 0, max_level: int = 3, factor: float = 2.0,
                 base: int = 1000, factors: dict | None = None):
        self.axes, self.seed, self.max_level, self.base = tuple(axes), int(seed), int(max_level), base
        self.factors = {a: float((factors or {}).get(a, factor)) for a in self.axes}       # cost factor per level
        self.calls = []

    def _rng(self, config, salt):
        key = (self.seed, salt) + tuple(int(config[a]) for a in self.axes)
        return random.Random(str(key))          # str seeds are hashed with SHA-512: the same in every process

    def start(self) -> dict:
        return {a: 0 for a in self.axes}

    def expand(self, config, axis):
        self.calls.append(("expand", dict(config), axis))
        if axis not in self.axes:
            raise ValueError(f"unknown axis {axis!r}")
        if int(config[axis]) >= self.max_level:
            return None
        return {**config, axis: int(config[axis]) + 1}

    def cost(self, config) -> float:
        self.calls.append(("cost", dict(config)))
        scale = math.prod(self.factors[a] ** int(config[a]) for a in self.axes)
        return float(round(self.base * scale * (1 + 0.2 * self._rng(config, "c").random())))

    def evaluate(self, config) -> float:
        self.calls.append(("evaluate", dict(config)))
        levels = sum(int(config[a]) for a in self.axes)
        return 1 - math.exp(-0.3 * levels - 0.1) * (0.5 + 0.5 * self._rng(config, "a").random())


def check_lateral_fuse(lateral_fuse) -> None:
    """One clip, 1 channel; fast frames [1, 2, 3, 4], alpha = 2, a 3x1x1 kernel of ones:
    lateral = [0+1+2, 2+3+4] = [3, 9] (zero padding 1, stride 2), concatenated after the slow channel."""
    slow = torch.tensor([10., 20.]).view(1, 1, 2, 1, 1)
    fast = torch.tensor([1., 2., 3., 4.]).view(1, 1, 4, 1, 1)
    out = call("lateral_fuse", lateral_fuse, slow, fast, torch.ones(1, 1, 3, 1, 1), 2)
    assert_close("lateral_fuse(hand-worked example)", out, torch.tensor([[10., 20.], [3., 9.]]).view(1, 2, 2, 1, 1))
    slow = torch.randn(2, 8, 3, 5, 5)
    fast = torch.randn(2, 2, 12, 5, 5)
    out = call("lateral_fuse", lateral_fuse, slow, fast, torch.randn(4, 2, 5, 1, 1), 4)
    assert_shape("lateral_fuse(slow (2, 8, 3, 5, 5), fast (2, 2, 12, 5, 5), weight (4, 2, 5, 1, 1), alpha=4)", out,
                 (2, 12, 3, 5, 5))
    assert_close("lateral_fuse: the first C_slow channels are the slow features, unchanged", out[:, :8], slow)
    passed("lateral_fuse: hand-worked example, shape (C_slow + 2*beta*C channels, T/alpha frames)")


def check_greedy_expand(greedy_expand) -> None:
    """A fake space where expanding 'b' always gains most per added cost."""
    space = _Linear()
    path = call("greedy_expand", greedy_expand, {"a": 0, "b": 0}, ["a", "b"], space.expand, space.evaluate,
                space.cost, 8)
    assert_true(isinstance(path, list) and len(path) > 0, f"greedy_expand must return a non-empty list, got {path!r}")
    steps = [p[0] for p in path]
    assert_true(steps == [None, "b", "b", "b"],
                f"expected the path [None, 'b', 'b', 'b'] (start, then 'b' while it fits the budget 8), got {steps}")
    assert_true(path[-1][1] == {"a": 0, "b": 3} and path[-1][3] == 8, f"last step: expected ({{'a': 0, 'b': 3}}, "
                f"cost 8), got {path[-1]}")
    passed("greedy_expand: picks the best accuracy gain per added cost, stops at the budget")


class _Linear:
    """cost = 1 + a + b + 2b... : 'a' adds 1 and gains 0.01, 'b' adds 2 and gains 0.1 per level."""

    def expand(self, config, axis):
        return {**config, axis: config[axis] + 1} if config[axis] < 5 else None

    def cost(self, config):
        return 2 + config["a"] + 2 * config["b"]

    def evaluate(self, config):
        return 0.1 + 0.01 * config["a"] + 0.1 * config["b"]


def check_topk_predict(topk_predict) -> None:
    sal = torch.tensor([[0.1, 0.9, 0.5, 0.2]])
    lg = torch.tensor([[[1., 0.], [0., 4.], [2., 2.], [8., 8.]]])
    out = call("topk_predict", topk_predict, sal, lg, 2)
    assert_close("topk_predict(k=2): mean logits of clips 1 and 2 (the two highest scores)", out,
                 torch.tensor([[1., 3.]]))
    out = call("topk_predict", topk_predict, sal, lg, 9)
    assert_close("topk_predict(k > M) averages all clips", out, lg.mean(1))
    passed("topk_predict: hand-worked example, k > M")


def check_ranking_loss(ranking_loss) -> None:
    s = torch.tensor([[2.0, 0.0, 0.5]])
    t = torch.tensor([[1.0, 3.0, 2.0]])
    # pairs (i more salient than j): (1,0): 1-(0-2)=3; (1,2): 1-(0-0.5)=1.5; (2,0): 1-(0.5-2)=2.5 -> mean 7/3
    out = call("ranking_loss", ranking_loss, s, t)
    assert_close("ranking_loss(hand-worked example, margin 1)", out, torch.tensor(7 / 3))
    out = call("ranking_loss", ranking_loss, torch.tensor([[5.0, 0.0]]), torch.tensor([[1.0, 0.0]]))
    assert_close("ranking_loss when the order is right by more than the margin", out, torch.tensor(0.0))
    passed("ranking_loss: hand-worked example, zero loss beyond the margin")


def check_incremental_conv(IncrementalConv) -> None:
    """Threshold 0 is exact on a random stream; the bias is counted once."""
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 4, 3, padding=1).double()
    with torch.no_grad():
        conv.bias.fill_(1.0)
    inc = call("IncrementalConv(conv, 0.0)", IncrementalConv, conv, 0.0)
    frames = torch.randn(5, 2, 3, 6, 6, dtype=torch.float64)
    with torch.no_grad():
        for t in range(5):
            y = call(f"IncrementalConv forward, frame {t}", inc, frames[t])
            assert_close(f"IncrementalConv(threshold 0) at frame {t} vs conv(frame) (bias once!)", y, conv(frames[t]),
                         atol=1e-9)
        assert_true(inc.last_delta is not None and torch.equal(inc.last_delta, frames[4] - frames[3]) or
                    torch.allclose(inc.last_delta, frames[4] - frames[3], atol=1e-12),
                    "last_delta must be the (thresholded) input difference the conv ran on")
        call("IncrementalConv.reset()", inc.reset)
        y = call("IncrementalConv forward after reset", inc, frames[0] * 2)
        assert_close("after reset() the next frame is computed in full", y, conv(frames[0] * 2), atol=1e-9)
    passed("IncrementalConv: exact at threshold 0, bias once, reset")


def check_rrm_exact(max_err: float) -> None:
    assert_true(max_err <= 1e-4, f"an incremental network at threshold 0 must match the dense one; max error {max_err}")
    passed(f"the incremental network at threshold 0 matches the dense one (max error {max_err:.1e})")
