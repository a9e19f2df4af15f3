"""Recurrent Residual Module (RRM) in miniature: a per-frame CNN run incrementally on a stream.

``frame_cnn`` is a small 2D CNN (conv-ReLU x3, pool, linear). ``incremental(net, wrapper, threshold)``
returns a copy in which every ``Conv2d`` is replaced by the learner's ``wrapper(conv, threshold)``
(e.g. ``IncrementalConv``), whose ``last_delta`` is the thresholded input difference it computed
on (None on a stream's first frame). ReLUs, pooling and the linear head run on the full,
accumulated activations: each conv keeps its own input and output, which is how the identity
``y_{t+1} = y_t + F(x_{t+1} - x_t)``, true only of a linear F, survives the nonlinearities.
``run_stream`` feeds a clip frame by frame and counts the MACs the convolutions executed.
"""
from __future__ import annotations

import copy
from typing import Callable

import torch
from torch import nn


def frame_cnn(in_channels: int = 1, widths=(8, 16, 16), num_classes: int = 8) -> nn.Module:
    layers, cin = [], in_channels
    for i, w in enumerate(widths):
        layers += [nn.Conv2d(cin, w, 3, stride=1 if i == 0 else 2, padding=1), nn.ReLU()]
        cin = w
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, num_classes))


def incremental(net: nn.Module, wrapper: Callable[[nn.Conv2d, float], nn.Module], threshold: float) -> nn.Module:
    """A deep copy of ``net`` with every Conv2d replaced by ``wrapper(conv, threshold)``."""
    net = copy.deepcopy(net)
    for mod in list(net.modules()):
        for cname, child in list(mod.named_children()):
            if isinstance(child, nn.Conv2d):
                setattr(mod, cname, wrapper(child, threshold))
    return net.eval()


def _convs(net: nn.Module) -> list[nn.Module]:
    return [m for m in net.modules() if hasattr(m, "last_delta") and isinstance(getattr(m, "conv", None), nn.Conv2d)]


def dense_conv_macs(conv: nn.Conv2d, out_hw: tuple[int, int]) -> int:
    kh, kw = conv.kernel_size
    return out_hw[0] * out_hw[1] * conv.out_channels * (conv.in_channels // conv.groups) * kh * kw


@torch.no_grad()
def run_stream(inc_net: nn.Module, frames: torch.Tensor) -> tuple[torch.Tensor, int, int]:
    """Feed ``frames`` ``(T, C, H, W)`` one at a time (batch 1) to ``inc_net`` (from ``incremental``;
    fresh state). Returns ``(outputs (T, K), executed conv MACs, dense conv MACs)``; a frame's
    executed MACs per conv are ``nnz(last_delta) * C_out * kh * kw / (stride_h * stride_w)``
    (each non-zero input change touches that many outputs), dense on the first frame."""
    convs = _convs(inc_net)
    if not convs:
        raise ValueError("no incremental conv found: build the network with incremental(net, IncrementalConv, t); "
                         "the wrapper must keep the conv as .conv and set .last_delta")
    out_hw = {}
    hooks = [m.register_forward_hook(lambda mod, i, o: out_hw.__setitem__(mod, tuple(o.shape[-2:]))) for m in convs]
    outs, executed, dense = [], 0, 0
    try:
        for t in range(frames.shape[0]):
            outs.append(inc_net(frames[t:t + 1]))
            for m in convs:
                full = dense_conv_macs(m.conv, out_hw[m])
                dense += full
                d = m.last_delta
                if d is None or t == 0:
                    executed += full
                else:
                    kh, kw = m.conv.kernel_size
                    sh, sw = m.conv.stride
                    per = m.conv.out_channels // m.conv.groups * kh * kw / (sh * sw)
                    executed += int(torch.count_nonzero(d)) * per
    finally:
        for h in hooks:
            h.remove()
    return torch.cat(outs), int(executed), int(dense)
