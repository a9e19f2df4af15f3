"""The op vocabulary of the incremental engine (SIGE, Lab 5): which layers and functions it can run
on a changed region only, and the ``torch.fx`` tracing that lists a network's ops in order.

Every op of a converted network falls in one of these kinds:

* ``conv``: the learner's sparse conv (it recomputes tiles).
* ``pointwise``: each output pixel depends only on the same pixel of the inputs (activations,
  eval-mode BatchNorm, frozen normalisation, residual additions, scaling, channel concatenation).
  Run on the changed pixels only; a chain of them right after a conv is fused into the conv as its
  *epilogue* (applied to the recomputed tiles).
* ``resample``: each output pixel copies one input pixel or is zero (nearest upsampling, zero
  padding, zero stuffing). Run as an index map on the changed pixels.
* ``dense``: pixel-local but not index-mappable (pooling, bilinear upsampling, pixel shuffle). Run
  densely on the whole tensor and compared with the cache: exact, but as slow as the dense layer.
* ``meta``: ops on shapes and constants (``x.shape``, integer arithmetic), evaluated as they are.

Anything else (a layer whose output pixel depends on the whole image) is refused with a message
naming it.
"""
from __future__ import annotations

import operator
from typing import Any, Iterable

import torch
import torch.nn.functional as F
from torch import fx, nn

from .surgery import FrozenNorm, ZeroStuff

__all__ = ["POINTWISE_MODULES", "DENSE_MODULES", "is_pointwise", "is_resample", "is_dense", "is_meta",
           "trace", "call_node", "unsupported_leaf"]

POINTWISE_MODULES: tuple[type[nn.Module], ...] = (
    nn.Identity, nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.ELU, nn.SELU, nn.CELU, nn.GELU, nn.SiLU, nn.Mish,
    nn.Sigmoid, nn.Tanh, nn.Hardtanh, nn.Hardswish, nn.Hardsigmoid, nn.Softplus, nn.BatchNorm2d, nn.Dropout,
    nn.Dropout2d, FrozenNorm,
)
DENSE_MODULES: tuple[type[nn.Module], ...] = (
    nn.UpsamplingBilinear2d, nn.AvgPool2d, nn.MaxPool2d, nn.PixelShuffle, nn.PixelUnshuffle,
)
_POINTWISE_FUNCTIONS = {
    operator.add, operator.sub, operator.mul, operator.truediv, operator.neg, operator.pos,
    torch.add, torch.sub, torch.mul, torch.div, torch.neg, torch.relu, torch.tanh, torch.sigmoid, torch.clamp,
    torch.exp, torch.abs, torch.where, F.relu, F.relu6, F.leaky_relu, F.gelu, F.silu, F.elu, F.hardtanh,
    F.hardswish, F.softplus, F.mish, torch.sigmoid, torch.cat,
}
_POINTWISE_METHODS = {
    "add", "sub", "mul", "div", "neg", "relu", "tanh", "sigmoid", "clamp", "clamp_min", "clamp_max", "abs", "exp",
    "contiguous", "float", "__add__", "__mul__", "__sub__", "__radd__", "__rmul__",
}
_META_METHODS = {"size", "dim"}


def _module_kind(module: nn.Module) -> str | None:
    if isinstance(module, POINTWISE_MODULES):
        return "pointwise"
    if isinstance(module, ZeroStuff) or isinstance(module, nn.UpsamplingNearest2d):
        return "resample"
    if isinstance(module, nn.Upsample):
        return "resample" if module.mode == "nearest" else "dense"
    if isinstance(module, DENSE_MODULES):
        return "dense"
    return None


def unsupported_leaf(name: str, module: nn.Module, sparse_cls: type | None = None) -> str | None:
    """Why a leaf ``module`` cannot run incrementally (a message naming it), or None when it can."""
    if (sparse_cls is not None and isinstance(module, sparse_cls)) or isinstance(module, nn.Conv2d):
        return None
    if _module_kind(module) is not None:
        return None
    kind = type(module).__name__
    if isinstance(module, (nn.InstanceNorm2d, nn.GroupNorm)):
        why = ("it normalises with statistics of the whole image, so a local edit changes every pixel; pass "
               "norms='reuse' to reuse the original image's statistics (SIGE's approximation)")
    elif isinstance(module, nn.LayerNorm):
        why = "it normalises with statistics of the whole image, so a local edit changes every pixel"
    elif isinstance(module, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d, nn.Linear, nn.Flatten, nn.MultiheadAttention)):
        why = "its output at a pixel depends on the whole image, so a local edit changes every pixel"
    else:
        why = "it is not a known pixel-local layer"
    known = sorted({c.__name__ for c in POINTWISE_MODULES + DENSE_MODULES} | {"Upsample", "UpsamplingNearest2d"})
    return (f"layer {name!r} ({kind}) is not supported by the incremental engine: {why}. Supported leaves: "
            f"nn.Conv2d, nn.ConvTranspose2d and {', '.join(known)}")


def _dim_arg(node: fx.Node, position: int, default: int) -> Any:
    if len(node.args) > position:
        return node.args[position]
    return node.kwargs.get("dim", default)


def is_pointwise(node: fx.Node, modules: dict[str, nn.Module]) -> bool:
    """The op maps each pixel of its inputs to the same pixel of its output."""
    if node.op == "call_module":
        return _module_kind(modules[node.target]) == "pointwise"
    if node.op == "call_function":
        if node.target is torch.cat:
            return _dim_arg(node, 1, 0) in (1, -3)
        return node.target in _POINTWISE_FUNCTIONS
    if node.op == "call_method":
        return node.target in _POINTWISE_METHODS
    return False


def is_resample(node: fx.Node, modules: dict[str, nn.Module]) -> bool:
    """The op copies one input pixel (or a zero) into each output pixel: nearest upsampling, zero
    stuffing, constant-zero padding."""
    if node.op == "call_module":
        return _module_kind(modules[node.target]) == "resample"
    if node.op == "call_function" and node.target is F.interpolate:
        mode = node.kwargs.get("mode", node.args[3] if len(node.args) > 3 else "nearest")
        return mode == "nearest"
    if node.op == "call_function" and node.target is F.pad:
        mode = node.kwargs.get("mode", node.args[2] if len(node.args) > 2 else "constant")
        value = node.kwargs.get("value", node.args[3] if len(node.args) > 3 else None)
        return mode == "constant" and value in (None, 0, 0.0)
    return False


def is_dense(node: fx.Node, modules: dict[str, nn.Module]) -> bool:
    """Pixel-local, but run on the whole tensor (pooling, bilinear upsampling, pixel shuffle)."""
    if node.op == "call_module":
        return _module_kind(modules[node.target]) == "dense"
    if node.op == "call_function":
        return node.target in (F.interpolate, F.max_pool2d, F.avg_pool2d, F.pixel_shuffle, F.pixel_unshuffle)
    return False


def is_meta(node: fx.Node) -> bool:
    """An op on shapes or attributes (``x.shape``, ``x.size(2)``)."""
    if node.op == "call_function" and node.target is getattr:
        return node.args[1] in ("shape", "dtype", "device")
    return node.op == "call_method" and node.target in _META_METHODS


class _Tracer(fx.Tracer):
    def __init__(self, leaves: tuple[type, ...]):
        super().__init__()
        self.leaves = leaves

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return isinstance(m, self.leaves) or super().is_leaf_module(m, qualname)


def trace(model: nn.Module, leaves: Iterable[type]) -> fx.Graph:
    """The ops of ``model.forward`` in order (``torch.fx``), with ``leaves`` kept as single calls."""
    try:
        return _Tracer(tuple(leaves) + (FrozenNorm, ZeroStuff)).trace(model)
    except Exception as err:  # noqa: BLE001 - say what the engine needs
        raise ValueError(f"the incremental engine could not trace {type(model).__name__}.forward with torch.fx "
                         f"({type(err).__name__}: {err}). It needs a forward without Python control flow on tensor "
                         "values; run without kernels= to use the compare-with-cache path, which needs no "
                         "tracing") from err


def call_node(node: fx.Node, args: tuple, kwargs: dict, modules: dict[str, nn.Module], root: nn.Module) -> Any:
    """Run one traced op on concrete arguments."""
    if node.op == "call_module":
        return modules[node.target](*args, **kwargs)
    if node.op == "call_function":
        return node.target(*args, **kwargs)
    if node.op == "call_method":
        obj, *rest = args
        return getattr(obj, node.target)(*rest, **kwargs)
    if node.op == "get_attr":
        obj = root
        for part in node.target.split("."):
            obj = getattr(obj, part)
        return obj
    raise ValueError(f"cannot run node {node.name} ({node.op})")
