"""Run a network incrementally with the learner's sparse convolution (SIGE, Lab 5).

The sparse convolution itself is the learner's class; everything here takes it as an argument.

* ``convert(model, sparse_cls, tile)`` replaces every ``nn.Conv2d`` of ``model`` (in place) by
  ``sparse_cls(conv, tile=tile)`` and refuses layers that would break exactness, naming them.
* ``set_mode(model, mode)`` sets ``.mode = "full" | "sparse"`` on every converted layer.
* ``SparseRunner(model, sparse_cls, tile)`` keeps the original model for dense reference runs and a
  converted copy: ``full(x)`` runs it densely once and fills the caches; ``sparse(x_edited)`` reruns
  it, each converted conv recomputing only the tiles whose input changed against its cache;
  ``executed_macs(x_edited)`` counts the MACs that run really executes (``torch.utils.flop_counter``
  sees the convolutions on gathered blocks); ``changed_masks(x_edited)`` reports each conv's changed
  input pixels (for plots).

Why everything between the convs can stay dense and still be exact: elementwise layers (activations,
eval-mode BatchNorm), residual additions and local resampling (nearest/bilinear upsampling, pooling)
are computed on the full tensor in both runs, so an unchanged input pixel gives a bitwise unchanged
output pixel; each converted conv then finds exactly the pixels that changed and recomputes the
tiles that see them. Layers whose output at a pixel depends on the whole image or on randomness
(normalisation with per-image statistics, global pooling, linear layers, attention, dropout in
training, transposed convs, ...) are refused.
"""
from __future__ import annotations

import copy
import ctypes
import sys
from typing import Callable

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

MODES = ("full", "sparse")

#: Leaf layers that are computed densely and keep the incremental run exact (pixel-local).
SUPPORTED_LEAVES: tuple[type[nn.Module], ...] = (
    nn.Identity, nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.ELU, nn.SELU, nn.CELU, nn.GELU, nn.SiLU,
    nn.Mish, nn.Sigmoid, nn.Tanh, nn.Hardtanh, nn.Hardswish, nn.Hardsigmoid, nn.Softplus,
    nn.BatchNorm2d, nn.Upsample, nn.UpsamplingNearest2d, nn.UpsamplingBilinear2d, nn.AvgPool2d,
    nn.MaxPool2d, nn.PixelShuffle, nn.PixelUnshuffle, nn.Dropout, nn.Dropout2d,
)


def _square(name: str, value, what: str) -> int:
    if isinstance(value, str):
        raise ValueError(f"conv {name!r}: padding={value!r} is not supported; give the padding as an integer")
    vals = tuple(value) if isinstance(value, (tuple, list)) else (value, value)
    if len(set(vals)) != 1:
        raise ValueError(f"conv {name!r}: non-square {what} {vals} is not supported (tiles are square)")
    return int(vals[0])


def check_conv(conv: nn.Conv2d, name: str = "conv") -> tuple[int, int, int]:
    """``(kernel_size, stride, padding)`` of a conv the tile geometry supports, else a clear error."""
    k = _square(name, conv.kernel_size, "kernel_size")
    s = _square(name, conv.stride, "stride")
    p = _square(name, conv.padding, "padding")
    if _square(name, conv.dilation, "dilation") != 1:
        raise ValueError(f"conv {name!r}: dilation {conv.dilation} is not supported (the block geometry "
                         "(tile-1)*s + k assumes dilation 1)")
    if conv.padding_mode != "zeros":
        raise ValueError(f"conv {name!r}: padding_mode={conv.padding_mode!r} is not supported; gathered blocks "
                         "are zero-padded, so only padding_mode='zeros' stays exact")
    return k, s, p


def _unsupported(name: str, module: nn.Module) -> str | None:
    """Why ``module`` (a leaf) cannot run incrementally, or None when it can."""
    if isinstance(module, nn.Conv2d):
        return None
    if isinstance(module, SUPPORTED_LEAVES):
        return None
    kind = type(module).__name__
    if isinstance(module, (nn.ConvTranspose2d,)):
        why = "transposed convs are not converted; use nn.Upsample followed by nn.Conv2d"
    elif isinstance(module, (nn.InstanceNorm2d, nn.GroupNorm, nn.LayerNorm)):
        why = "it normalises with statistics of the whole image, so a local edit changes every pixel"
    elif isinstance(module, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d, nn.Linear, nn.Flatten,
                             nn.MultiheadAttention)):
        why = "its output at a pixel depends on the whole image, so a local edit changes every pixel"
    else:
        why = "it is not a known pixel-local layer"
    return (f"layer {name!r} ({kind}) is not supported by the incremental engine: {why}. Supported leaves: "
            f"nn.Conv2d and {', '.join(sorted({c.__name__ for c in SUPPORTED_LEAVES}))}")


_MALLOC_REUSE = False


def reuse_freed_memory() -> bool:
    """Ask glibc's ``malloc`` to keep freed large blocks for reuse (Linux only; process-wide).

    By default glibc serves big allocations (a 64x256x256 float32 activation is 16 MB) with fresh
    ``mmap`` pages and gives them back to the kernel when freed, so every new full-size tensor costs
    thousands of page faults (the kernel zeroes each 4 KB page on first touch). PyTorch's GPU
    allocator caches freed blocks; on the CPU it relies on ``malloc``. Raising ``M_MMAP_THRESHOLD``
    and ``M_TRIM_THRESHOLD`` makes freed blocks stay in the heap, so the next tensor of that size
    reuses already-mapped pages. Returns True when the setting was applied (now or before).
    """
    global _MALLOC_REUSE
    if _MALLOC_REUSE:
        return True
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3
        ok = libc.mallopt(m_mmap_threshold, 1 << 30) == 1 and libc.mallopt(m_trim_threshold, 1 << 31) == 1
    except (OSError, AttributeError):
        return False
    _MALLOC_REUSE = bool(ok)
    return _MALLOC_REUSE


def sparse_layers(model: nn.Module, sparse_cls: type) -> list[tuple[str, nn.Module]]:
    """``[(name, layer)]`` of every module of type ``sparse_cls`` in ``model``, in order."""
    return [(n, m) for n, m in model.named_modules() if isinstance(m, sparse_cls)]


def convert(model: nn.Module, sparse_cls: Callable[..., nn.Module], tile: int = 8) -> nn.Module:
    """Replace every ``nn.Conv2d`` of ``model`` by ``sparse_cls(conv, tile=tile)``, in place.

    The model is put in eval mode and in-place activations are switched to out-of-place (an in-place
    op on a conv's output would overwrite that conv's cache). Raises ``ValueError`` naming the first
    layer that cannot run incrementally. Returns ``model``.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    if not (isinstance(sparse_cls, type) and issubclass(sparse_cls, nn.Module)):
        raise TypeError(f"sparse_cls must be an nn.Module subclass such as your SparseConv2d, got {sparse_cls!r}")
    if int(tile) < 1:
        raise ValueError(f"tile must be a positive integer, got {tile}")
    for name, m in model.named_modules():
        if isinstance(m, sparse_cls) or any(True for _ in m.children()):
            continue
        why = _unsupported(name, m)
        if why:
            raise ValueError(why)
        if isinstance(m, nn.Conv2d):
            check_conv(m, name)

    def swap(parent: nn.Module, prefix: str) -> None:
        for child_name, child in parent.named_children():
            full = f"{prefix}.{child_name}" if prefix else child_name
            if isinstance(child, sparse_cls):
                continue
            if isinstance(child, nn.Conv2d):
                new = sparse_cls(child, tile=int(tile))
                if not isinstance(new, nn.Module):
                    raise TypeError(f"sparse_cls(conv, tile) must return an nn.Module, got {type(new).__name__}")
                setattr(parent, child_name, new)
            else:
                swap(child, full)

    if isinstance(model, nn.Conv2d):
        raise ValueError("convert() needs a network that contains convs; wrap a single conv yourself: "
                         "sparse_cls(conv, tile=...)")
    swap(model, "")
    for m in model.modules():
        if getattr(m, "inplace", False) is True:
            m.inplace = False
    model.eval()
    return model


def set_mode(model: nn.Module, mode: str, sparse_cls: type | None = None) -> None:
    """Set ``.mode`` on every converted layer (modules of ``sparse_cls``, or every module that has a
    ``mode`` attribute and wraps a ``conv`` when ``sparse_cls`` is None)."""
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; use one of {MODES}")
    for m in model.modules():
        if (sparse_cls is not None and isinstance(m, sparse_cls)) or (
                sparse_cls is None and isinstance(getattr(m, "conv", None), nn.Conv2d) and hasattr(m, "mode")):
            m.mode = mode


class SparseRunner:
    """A cached, incrementally re-runnable copy of ``model`` built on the learner's ``sparse_cls``.

    ``runner.dense(x)``: the original model (untouched). ``runner.full(x)``: dense run that fills
    every cache (the image is copied first, so editing it in place later is safe).
    ``runner.sparse(x_edited)``: the incremental run; same shape as the cached image, after ``full``.
    Inputs are ``(N, C, H, W)``; everything runs under ``torch.no_grad()``.
    """

    def __init__(self, model: nn.Module, sparse_cls: type, tile: int = 8):
        self.dense_model = model.eval()
        self.sparse_cls = sparse_cls
        self.tile = int(tile)
        self.model = convert(copy.deepcopy(model), sparse_cls, tile)
        self.layers = sparse_layers(self.model, sparse_cls)
        if not self.layers:
            raise ValueError(f"{type(model).__name__} has no nn.Conv2d to make sparse")
        self._shape: tuple | None = None
        self._inputs: dict[str, torch.Tensor] = {}
        self._mode: str | None = None

    # -- runs ---------------------------------------------------------------------------------------
    def _check_input(self, x) -> None:
        if not isinstance(x, torch.Tensor) or x.dim() != 4:
            got = f"rank {x.dim()}" if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"expected an image batch (N, C, H, W), got {got}")
        bad = [n for n, m in self.model.named_modules() if m.training]
        if bad:
            raise RuntimeError(f"module {bad[0] or type(self.model).__name__!r} is in training mode; the incremental "
                               "run needs eval mode (call runner.model.eval())")

    def _set(self, mode: str) -> None:
        if self._mode != mode:
            set_mode(self.model, mode, self.sparse_cls)
            self._mode = mode

    def dense(self, x: torch.Tensor) -> torch.Tensor:
        """The original model on ``x`` (the dense reference)."""
        with torch.no_grad():
            return self.dense_model(x)

    def full(self, x: torch.Tensor) -> torch.Tensor:
        """Dense run of the converted model that fills every layer's cache; returns the output."""
        self._check_input(x)
        x = x.detach().clone()
        self._inputs = {}
        hooks = [m.register_forward_pre_hook(lambda mod, args, name=n: self._inputs.__setitem__(name, args[0]))
                 for n, m in self.layers]
        try:
            self._set("full")
            with torch.no_grad():
                y = self.model(x)
        finally:
            for h in hooks:
                h.remove()
        self._shape, self._dtype = tuple(x.shape), x.dtype
        return y

    def sparse(self, x: torch.Tensor) -> torch.Tensor:
        """Incremental run on an edited image of the cached shape; returns the output."""
        if self._shape is None:
            raise RuntimeError("sparse run before any full run: call runner.full(original_image) first, "
                               "so that every layer has a cache to compare against")
        if not isinstance(x, torch.Tensor) or tuple(x.shape) != self._shape:
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"the edited image has shape {got}, but the cache holds an image of shape {self._shape}; "
                             "call runner.full(new_image) to cache a new image first")
        if x.dtype != self._dtype:
            raise ValueError(f"the edited image has dtype {x.dtype}, the cached one {self._dtype}")
        self._set("sparse")
        with torch.no_grad():
            return self.model(x)

    # -- measurement --------------------------------------------------------------------------------
    def executed_macs(self, x: torch.Tensor) -> int:
        """MACs executed by ``sparse(x)`` (convs on the gathered blocks; FLOPs / 2)."""
        with FlopCounterMode(display=False) as counter:
            self.sparse(x)
        return counter.get_total_flops() // 2

    def dense_macs(self, x: torch.Tensor) -> int:
        """MACs of the original model on ``x``."""
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            self.dense_model(x)
        return counter.get_total_flops() // 2

    def changed_masks(self, x: torch.Tensor) -> list[tuple[str, nn.Module, torch.Tensor]]:
        """``[(name, layer, changed)]``: for each converted conv, the ``(H, W)`` bool mask of its input
        pixels that differ from the cached run (any image, any channel), during ``sparse(x)``."""
        if self._shape is None:
            raise RuntimeError("changed_masks before any full run: call runner.full(original_image) first")
        masks: dict[str, torch.Tensor] = {}

        def hook(mod, args, name):
            masks[name] = (args[0] != self._inputs[name]).any(dim=1).any(dim=0)

        hooks = [m.register_forward_pre_hook(lambda mod, args, name=n: hook(mod, args, name)) for n, m in self.layers]
        try:
            self.sparse(x)
        finally:
            for h in hooks:
                h.remove()
        return [(n, m, masks[n]) for n, m in self.layers if n in masks]
