"""X3D-style expansion in miniature: a tiny 3D network grown along one axis at a time.

A configuration is a dict of *levels*, one per axis (``AXES``); ``LEVELS[axis][level]`` is the
value used: frames sampled from the clip (``"frames"``: X3D's gamma_t/gamma_tau together, the clip's
duration is fixed), input resolution (``"res"``, gamma_s), width of the first stage (``"width"``,
gamma_w) and blocks per stage (``"depth"``, gamma_d). One level up costs about 2x MACs on every
axis (X3D's expansion steps double the complexity too). ``X3DSpace`` gives the three functions the
learner's greedy search takes: ``expand(config, axis)`` (None at an axis's last level),
``cost(config)`` (MACs of one clip) and ``evaluate(config)`` (train briefly, test accuracy).

``x3d_net``: stem 1x3x3 conv, then two stages of blocks [1x3x3 conv -> 3x1x1 channel-wise conv]
(X3D uses channel-wise 3x3x3 convs in its bottlenecks), global pool, linear. Input ``(N, T, C, H, W)``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..training import Loop
from .slowfast import count_macs
from .train import TensorClips, accuracy, train_classifier

AXES = ("frames", "res", "width", "depth")
LEVELS = {"frames": (2, 4, 8), "res": (8, 12, 16), "width": (4, 6, 8, 12, 16, 24), "depth": (1, 2, 4)}


def values(config: dict) -> dict:
    """Levels -> the values they stand for."""
    return {a: LEVELS[a][int(config[a])] for a in AXES}


class _Block(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.spatial = nn.Sequential(nn.Conv3d(cin, cout, (1, 3, 3), (1, stride, stride), (0, 1, 1), bias=False),
                                     nn.BatchNorm3d(cout), nn.ReLU(inplace=True))
        self.temporal = nn.Sequential(nn.Conv3d(cout, cout, (3, 1, 1), padding=(1, 0, 0), groups=cout, bias=False),
                                      nn.BatchNorm3d(cout))
        self.skip = stride == 1 and cin == cout

    def forward(self, x):
        y = self.temporal(self.spatial(x))
        return F.relu(y + x if self.skip else y)


def x3d_net(config: dict, num_classes: int = 8, in_channels: int = 1) -> nn.Module:
    """The network of a configuration (only width and depth shape it; frames and res shape the input)."""
    v = values(config)
    w, d = v["width"], v["depth"]
    layers = [nn.Conv3d(in_channels, w, (1, 3, 3), padding=(0, 1, 1), bias=False), nn.BatchNorm3d(w), nn.ReLU()]
    cin = w
    for cout in (w, 2 * w):
        for b in range(d):
            layers.append(_Block(cin, cout, 2 if b == 0 else 1))
            cin = cout
    return _Net(nn.Sequential(*layers), nn.Linear(cin, num_classes))


class _Net(nn.Module):
    def __init__(self, body, head):
        super().__init__()
        self.body, self.head = body, head

    def forward(self, clips):
        return self.head(self.body(clips.transpose(1, 2)).mean((2, 3, 4)))   # (N, C, T, H, W) -> (N, C') -> (N, K)


def resample(clips: torch.Tensor, frames: int, res: int) -> torch.Tensor:
    """Clips ``(N, T, C, H, W)`` -> ``(N, frames, C, res, res)``: frames evenly spaced over the clip,
    area/bilinear resize."""
    n, t, c, h, w = clips.shape
    idx = torch.linspace(0, t - 1, frames).round().long()
    x = clips[:, idx].reshape(n * frames, c, h, w)                       # (N*frames, C, H, W)
    x = F.interpolate(x, size=(res, res), mode="area" if res <= h else "bilinear",
                      **({} if res <= h else {"align_corners": False}))
    return x.reshape(n, frames, c, res, res)                             # (N, frames, C, res, res)


class X3DSpace:
    """The search space on a data set: ``expand``, ``cost`` and ``evaluate`` for the learner's search.

    Args:
        train, test: (clips (N, T, C, H, W), labels) at the largest frames/res the levels use.
        steps: training steps per evaluated configuration (batch 16, the same for all).
    """

    def __init__(self, train, test, steps: int = 60, seed: int = 0, device="cpu", num_classes: int = 8,
                 lr: float = 1e-2):
        self.train, self.test, self.steps, self.seed, self.device = train, test, int(steps), seed, device
        self.num_classes, self.log, self.lr = num_classes, [], lr
        self._acc, self._cost = {}, {}

    @staticmethod
    def _key(config):
        return tuple(int(config[a]) for a in AXES)

    def expand(self, config: dict, axis: str):
        if axis not in AXES:
            raise ValueError(f"unknown axis {axis!r}; axes are {AXES}")
        if int(config[axis]) + 1 >= len(LEVELS[axis]):
            return None
        return {**config, axis: int(config[axis]) + 1}

    def cost(self, config: dict) -> int:
        k = self._key(config)
        if k not in self._cost:
            v = values(config)
            clip = torch.zeros(1, v["frames"], self.train[0].shape[2], v["res"], v["res"])
            self._cost[k] = count_macs(x3d_net(config, self.num_classes, clip.shape[2]).eval(), clip)
        return self._cost[k]

    def evaluate(self, config: dict) -> float:
        k = self._key(config)
        if k not in self._acc:
            v = values(config)
            tr = TensorClips(resample(self.train[0], v["frames"], v["res"]), self.train[1])
            te = TensorClips(resample(self.test[0], v["frames"], v["res"]), self.test[1])
            torch.manual_seed(self.seed)
            net = x3d_net(config, self.num_classes, tr.clips.shape[2])
            train_classifier(net, tr, Loop(steps=self.steps, batch_size=16, seed=self.seed, device=self.device,
                                           desc=str(v)), lr=self.lr)
            self._acc[k] = accuracy(net, te, device=self.device)
            self.log.append({**v, "macs": self.cost(config), "acc": self._acc[k]})
        return self._acc[k]
