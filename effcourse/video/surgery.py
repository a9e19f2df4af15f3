"""Model surgery for temporal shift, and the frame-by-frame streaming runner.

The shift functions themselves are the learner's; everything here takes them as arguments.

* ``insert_shift(model, wrapper, n_segment)`` wraps the first conv of every residual block:
  ``block.conv1 = wrapper(block.conv1, n_segment)`` (residual placement: the identity path stays
  unshifted); ``place="inplace"`` wraps whole blocks instead (the shift also hits the identity path).
* ``OnlineShift(net, n_segment, online_shift)`` is the wrapper for uni-directional TSM. On a batch
  of clips ``(N*T, C, H, W)`` it applies the learner's ``online_shift`` frame after frame inside the
  clip (the offline *past-only* shift); in streaming mode it sees one frame ``(N, C, H, W)`` per call
  and keeps the cache between calls.
* ``FrameBlend(net, n_segment)``: a stand-in "shift" for placement tests (each frame averaged with the
  next one of its clip, then ``net``); not TSM's shift, which is the learner's.
* ``stream(backbone, clips)`` runs a backbone with ``OnlineShift`` modules frame by frame and
  returns the per-frame logits ``(N, T, K)``.
"""
from __future__ import annotations

from typing import Callable, Iterator

import torch
from torch import nn
from torchvision.models.resnet import BasicBlock, Bottleneck

from ..data.clips import check_clips

OnlineShiftFn = Callable[..., tuple]


def residual_blocks(model: nn.Module) -> Iterator[nn.Module]:
    """The residual blocks of a model: torchvision ``BasicBlock``/``Bottleneck`` modules."""
    for m in model.modules():
        if isinstance(m, (BasicBlock, Bottleneck)):
            yield m


PLACES = ("residual", "inplace")


def _parents(model: nn.Module) -> dict[int, tuple[nn.Module, str]]:
    """``{id(child): (parent, attribute name)}`` for every submodule of ``model``."""
    return {id(child): (parent, name) for parent in model.modules() for name, child in parent.named_children()}


def insert_shift(model: nn.Module, wrapper: Callable[[nn.Module, int], nn.Module], n_segment: int,
                 place: str = "residual") -> nn.Module:
    """Put a temporal shift into every residual block of ``model``; modifies it in place and returns it.

    ``wrapper`` is a module class or factory called as ``wrapper(net, n_segment)`` that shifts and then
    calls ``net`` (for example the learner's ``ResidualShift``). ``place`` says where (the TSM paper
    compares the two):

    * ``"residual"`` (the paper's choice): ``block.conv1 = wrapper(block.conv1, n_segment)``, the shift
      sits on the residual branch, the identity path carries each frame's own features unshifted;
    * ``"inplace"``: the whole block is wrapped, ``block -> wrapper(block, n_segment)``, so the shift
      also hits the identity path: the shifted-out channels are lost from every frame's own features.
    """
    if not callable(wrapper):
        raise TypeError(f"wrapper must be a module class or a factory (net, n_segment) -> nn.Module, got {wrapper!r}")
    if int(n_segment) < 1:
        raise ValueError(f"n_segment must be >= 1, got {n_segment}")
    if place not in PLACES:
        raise ValueError(f"place must be one of {PLACES}, got {place!r}")
    blocks = list(residual_blocks(model))
    if not blocks:
        raise ValueError(f"{type(model).__name__} has no torchvision residual block (BasicBlock/Bottleneck) "
                         "to insert a shift into")
    if any(getattr(block, "_effcourse_shifted", False) for block in blocks):
        raise ValueError("this model already has shifts inserted; build a fresh backbone")
    parents = _parents(model)
    for block in blocks:
        target = block.conv1 if place == "residual" else block
        wrapped = wrapper(target, int(n_segment))
        if not isinstance(wrapped, nn.Module):
            raise TypeError(f"wrapper(net, n_segment) must return an nn.Module, got {type(wrapped).__name__}")
        if place == "residual":
            block.conv1 = wrapped
        else:
            parent, name = parents[id(block)]
            setattr(parent, name, wrapped)
        block._effcourse_shifted = True
    return model


class FrameBlend(nn.Module):
    """Stand-in shift for placement tests: ``forward(x) = net(b(x))`` with
    ``b(x)_t = (x_t + x_{t+1}) / 2`` inside each clip (``b(x)_{T-1} = x_{T-1}``).

    ``x`` is ``(N*T, C, H, W)`` with a clip's T = ``n_segment`` frames consecutive."""

    def __init__(self, net: nn.Module, n_segment: int):
        super().__init__()
        self.net, self.n_segment = net, int(n_segment)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        v = x.reshape(-1, self.n_segment, *x.shape[1:])                 # (N, T, C, H, W)
        out = v.clone()
        out[:, :-1] = (v[:, :-1] + v[:, 1:]) / 2
        return self.net(out.reshape_as(x))


def frame_blend():
    """The ``FrameBlend`` class itself (for ``judge.build``, which calls what it is given)."""
    return FrameBlend


class OnlineShift(nn.Module):
    """Uni-directional (online) temporal shift in front of ``net``, built on the learner's
    ``online_shift(x_t, cache, fold_div) -> (shifted, new_cache)``.

    * clip mode (default): ``x`` is ``(N*T, C, H, W)``; frames are shifted one after the other within
      each clip, the cache starting empty at every clip. Equals the offline past-only shift.
    * streaming mode (``streaming = True``): ``x`` is one frame ``(N, C, H, W)``; the cache lives on
      between calls until ``reset()``.
    """

    def __init__(self, net: nn.Module, n_segment: int, online_shift: OnlineShiftFn, fold_div: int = 8):
        super().__init__()
        self.net, self.n_segment, self.online_shift, self.fold_div = net, int(n_segment), online_shift, int(fold_div)
        self.streaming = False
        self.cache = None

    def reset(self) -> None:
        self.cache = None

    def _call(self, x_t: torch.Tensor, cache):
        out = self.online_shift(x_t, cache, self.fold_div)
        if not (isinstance(out, tuple) and len(out) == 2):
            raise TypeError("online_shift must return a pair (shifted, new_cache)")
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4:
            raise ValueError(f"OnlineShift expects (N*T, C, H, W) or one frame (N, C, H, W), got rank {x.dim()}")
        if self.streaming:
            shifted, self.cache = self._call(x, self.cache)
            return self.net(shifted)
        nt = x.shape[0]
        if nt % self.n_segment:
            raise ValueError(f"batch of {nt} frames is not a whole number of clips of T = {self.n_segment}")
        clips = x.reshape(nt // self.n_segment, self.n_segment, *x.shape[1:])    # (N, T, C, H, W)
        cache, frames = None, []
        for t in range(self.n_segment):
            shifted, cache = self._call(clips[:, t], cache)
            frames.append(shifted)
        return self.net(torch.stack(frames, 1).reshape_as(x))                 # (N, T, C, H, W) -> (N*T, C, H, W)


def online_wrapper(online_shift: OnlineShiftFn, fold_div: int = 8) -> Callable[[nn.Module, int], OnlineShift]:
    """A wrapper for ``insert_shift`` that builds ``OnlineShift`` modules around the learner's function."""
    return lambda net, n_segment: OnlineShift(net, n_segment, online_shift, fold_div)


def _online_modules(model: nn.Module) -> list[OnlineShift]:
    mods = [m for m in model.modules() if isinstance(m, OnlineShift)]
    if not mods:
        raise ValueError("the model has no OnlineShift modules: insert them with "
                         "insert_shift(backbone, online_wrapper(online_shift), T)")
    return mods


@torch.no_grad()
def stream(backbone: nn.Module, clips: torch.Tensor) -> torch.Tensor:
    """Run ``backbone`` one frame at a time over ``clips`` ``(N, T, C, H, W)``; per-frame logits ``(N, T, K)``.

    Each ``OnlineShift`` keeps its cache from one frame to the next, as a live video stream would.
    The backbone is put in eval mode.
    """
    check_clips(clips)
    mods = _online_modules(backbone)
    backbone.eval()
    for m in mods:
        m.reset()
        m.streaming = True
    try:
        return torch.stack([backbone(clips[:, t]) for t in range(clips.shape[1])], 1)   # T x (N, K) -> (N, T, K)
    finally:
        for m in mods:
            m.streaming = False
            m.reset()


class FrameStreamer:
    """Stateful per-frame runner for latency measurement: ``step(frame (N, C, H, W)) -> logits (N, K)``."""

    def __init__(self, backbone: nn.Module):
        self.backbone, self.mods = backbone.eval(), _online_modules(backbone)
        for m in self.mods:
            m.streaming = True

    def reset(self) -> None:
        for m in self.mods:
            m.reset()

    @torch.no_grad()
    def step(self, frame: torch.Tensor) -> torch.Tensor:
        return self.backbone(frame)

    def close(self) -> None:
        for m in self.mods:
            m.streaming = False
            m.reset()
