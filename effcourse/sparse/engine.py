"""Run a network incrementally with the learner's sparse convolution (SIGE, Lab 5).

The sparse convolution and its kernels are the learner's; everything here takes them as arguments.

* ``convert(model, sparse_cls, tile, norms)`` replaces every ``nn.Conv2d`` of ``model`` (in place)
  by ``sparse_cls(conv, tile=tile)``, rewrites transposed convs as zero stuffing + conv, and refuses
  layers that would break the incremental run, naming them (``norms="reuse"`` freezes InstanceNorm
  and GroupNorm statistics instead, as SIGE does).
* ``set_mode(model, mode)`` sets ``.mode = "full" | "sparse"`` on every converted layer.
* ``SparseRunner(model, sparse_cls, tile, kernels=...)`` keeps the original model for dense
  reference runs and a converted copy: ``full(x)`` runs it densely once and fills the caches;
  ``sparse(x_edited)`` reruns it on the edit only; ``executed_macs`` counts what that run executes
  (``torch.utils.flop_counter`` sees the convolutions on gathered blocks); ``changed_masks`` reports
  each conv's changed input pixels (for plots).

Two ways to run ``sparse``:

**The incremental engine** (``kernels={"active_tiles": ..., "gather": ..., "scatter": ...}``, the
learner's functions). The network is traced once (``torch.fx``) and run op by op, so that a sparse
call does work proportional to the edit:

1. *One difference mask.* The edited image is compared with the cached one once; each op's
   change mask is derived from its inputs' masks (a conv's is its *reach*: the output pixels whose
   window holds a changed pixel, which is ``active_tiles`` with ``tile=1``; a pixel-local op's is the
   union of its inputs'; nearest upsampling maps it). No activation is ever compared with a cache.
   ``masks="per_resolution"`` instead uses one mask per resolution, downsampled from the input's
   and dilated, shared by every layer (official SIGE, ``sige/utils.py``): fewer tiles, but the
   change that spreads further through the network is dropped, so it is approximate.
2. *Persistent buffers.* Each op writes into its own output buffer (a copy of its cached output
   made once). After writing, the pixels the previous call wrote and this one did not are restored
   from the cache (slice copies of rectangles, or indexed rows), so a call touches the previous and
   the current edit only, never the whole activation.
3. *Plans per mask.* What a call derives from its edit mask alone (every op's mask, the pixels it
   writes, what to restore after a given previous mask) is kept for the last ``plans`` masks and
   found again by content: an edit that alternates between a few masks, or reuses one mask through
   every denoising step (Lab 8), derives it once. The learner's layer still finds its own tiles.
4. *Epilogues.* Pixel-local ops right after a conv (BatchNorm, activation, frozen normalisation)
   are handed to the conv as its ``epilogue`` and applied to the recomputed tiles only.
5. Other pixel-local ops (residual additions, scaling, nearest upsampling, zero padding) run on the
   changed pixels only (on slices when those form a few rectangles); pooling and bilinear
   resampling run densely (exact, not faster).

The learner's layer is called as ``layer(x, changed=mask, out=buffer, epilogue=fn)``.

**The compare-with-cache path** (``kernels=None``). The converted network runs as it is: every
sparse layer compares its input with its cached input to find the change and returns a fresh copy
of its cached output with the new tiles; everything between the convs runs densely on full tensors
(so an unchanged pixel stays bitwise unchanged). Exact and simple, but each layer pays several
passes over its whole activation, whatever the edit.
"""
from __future__ import annotations

import copy
import ctypes
import sys
import weakref
from typing import Any, Callable, Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import fx, nn
from torch.utils._pytree import tree_map
from torch.utils.flop_counter import FlopCounterMode

from . import graph
from .surgery import NORMS, FrozenNorm, ZeroStuff, transposed_as_conv

__all__ = ["MODES", "check_conv", "convert", "set_mode", "sparse_layers", "reuse_freed_memory", "SparseRunner",
           "KERNELS", "resolution_masks"]

MODES = ("full", "sparse")
KERNELS = ("active_tiles", "gather", "scatter")

#: Leaf layers the compare-with-cache path runs densely and stays exact with (kept for reference).
SUPPORTED_LEAVES = graph.POINTWISE_MODULES + graph.DENSE_MODULES + (nn.Upsample, nn.UpsamplingNearest2d, ZeroStuff)


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


NORM_POLICIES = ("exact", "reuse")

#: ``(kernel_size, stride, padding)`` of each converted layer, read from the conv it replaced.
GEOMETRY: "weakref.WeakKeyDictionary[nn.Module, tuple[int, int, int]]" = weakref.WeakKeyDictionary()


def convert(model: nn.Module, sparse_cls: Callable[..., nn.Module], tile: int = 8, norms: str = "exact") -> nn.Module:
    """Replace every ``nn.Conv2d`` of ``model`` by ``sparse_cls(conv, tile=tile)``, in place.

    Transposed convs become ``ZeroStuff`` + an equivalent ``nn.Conv2d`` first (then converted).
    ``norms="reuse"`` wraps every InstanceNorm2d / GroupNorm in ``FrozenNorm`` (statistics of the
    full run reused in sparse runs, as SIGE does); with ``norms="exact"`` they are refused. The model
    is put in eval mode and in-place activations are switched to out-of-place (an in-place op on a
    conv's output would overwrite that conv's cache). Raises ``ValueError`` naming the first layer
    that cannot run incrementally. Returns ``model``.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    if not (isinstance(sparse_cls, type) and issubclass(sparse_cls, nn.Module)):
        raise TypeError(f"sparse_cls must be an nn.Module subclass such as your SparseConv2d, got {sparse_cls!r}")
    if int(tile) < 1:
        raise ValueError(f"tile must be a positive integer, got {tile}")
    if norms not in NORM_POLICIES:
        raise ValueError(f"norms must be one of {NORM_POLICIES}, got {norms!r}")
    if isinstance(model, (nn.Conv2d, nn.ConvTranspose2d)):
        raise ValueError("convert() needs a network that contains convs; wrap a single conv yourself: "
                         "sparse_cls(conv, tile=...)")
    for name, m in model.named_modules():
        if isinstance(m, (sparse_cls, FrozenNorm)) or any(True for _ in m.children()):
            continue
        if isinstance(m, nn.ConvTranspose2d):
            transposed_as_conv(m, name)                     # raises for unsupported geometry
            continue
        if isinstance(m, NORMS) and norms == "reuse":
            continue
        if isinstance(m, nn.InstanceNorm2d) and m.track_running_stats:
            continue                                        # eval mode: running statistics, pixel-local
        why = graph.unsupported_leaf(name, m, sparse_cls)
        if why:
            raise ValueError(why)
        if isinstance(m, nn.Conv2d):
            check_conv(m, name)

    def swap(parent: nn.Module, prefix: str) -> None:
        for child_name, child in parent.named_children():
            full = f"{prefix}{child_name}"
            if isinstance(child, (sparse_cls, FrozenNorm)):
                continue
            if isinstance(child, nn.ConvTranspose2d):
                seq = transposed_as_conv(child, full)
                seq[1] = _make(seq[1], f"{full}.1")
                setattr(parent, child_name, seq)
            elif isinstance(child, nn.Conv2d):
                setattr(parent, child_name, _make(child, full))
            elif isinstance(child, NORMS) and norms == "reuse" and not getattr(child, "track_running_stats", False):
                setattr(parent, child_name, FrozenNorm(child))
            else:
                swap(child, f"{full}.")

    def _make(conv: nn.Conv2d, name: str) -> nn.Module:
        new = sparse_cls(conv, tile=int(tile))
        if not isinstance(new, nn.Module):
            raise TypeError(f"sparse_cls(conv, tile) must return an nn.Module, got {type(new).__name__}")
        GEOMETRY[new] = check_conv(conv, name)
        return new

    swap(model, "")
    for m in model.modules():
        if getattr(m, "inplace", False) is True:
            m.inplace = False
    model.eval()
    return model


def set_mode(model: nn.Module, mode: str, sparse_cls: type | None = None) -> None:
    """Set ``.mode`` on every converted layer (modules of ``sparse_cls``, or every module that has a
    ``mode`` attribute and wraps a ``conv`` when ``sparse_cls`` is None) and every ``FrozenNorm``."""
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; use one of {MODES}")
    for m in model.modules():
        if isinstance(m, FrozenNorm) or (sparse_cls is not None and isinstance(m, sparse_cls)) or (
                sparse_cls is None and isinstance(getattr(m, "conv", None), nn.Conv2d) and hasattr(m, "mode")):
            m.mode = mode


def resolution_masks(changed: torch.Tensor, sizes, dilation: int = 1, threshold: float = 0.3) -> dict:
    """One change mask per resolution, as official SIGE makes them (``downsample_mask`` in
    ``sige/utils.py``): the input's ``(H, W)`` mask resized bilinearly to each ``(h, w)`` of
    ``sizes``, thresholded at ``min(threshold, max - 1e-3)`` and dilated by ``dilation`` pixels."""
    H, W = changed.shape
    src = changed.view(1, 1, H, W).to(torch.float32)                 # (1, 1, H, W)
    out = {}
    for h, w in sizes:
        m = src if (h, w) == (H, W) else F.interpolate(src, size=(h, w), mode="bilinear", align_corners=False)
        top = float(m.max())
        m = m > min(threshold, top - 1e-3) if top > 0 else m > 0
        if dilation > 0:
            m = F.max_pool2d(m.to(torch.float32), 2 * dilation + 1, 1, dilation) > 0
        out[(h, w)] = m[0, 0]
    return out


CHANNELS_LAST = torch.channels_last


def _rows(t: torch.Tensor) -> torch.Tensor:
    """``(N*H*W, C)``: one row per pixel, image-major (a view of a channels-last tensor, else a copy)."""
    n, c, h, w = t.shape
    return t.permute(0, 2, 3, 1).reshape(n * h * w, c)                  # (N, H, W, C) -> (N*H*W, C)


def _row_view(buf: torch.Tensor) -> torch.Tensor:
    """``(N*H*W, C)`` view of the channels-last ``buf`` to write rows into (an error, never a copy)."""
    n, c, h, w = buf.shape
    return buf.permute(0, 2, 3, 1).view(n * h * w, c)                   # (N, H, W, C) -> (N*H*W, C)


def _batch_index(idx: torch.Tensor, n: int, hw: int) -> torch.Tensor:
    """Flat pixel positions ``idx`` in every one of ``n`` images of ``hw`` pixels (image-major)."""
    return idx if n == 1 else (torch.arange(n)[:, None] * hw + idx).reshape(-1)     # (n, P) -> (n*P,)


def _pixels(t: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """``(N, C, P, 1)``: the pixels at flat positions ``idx`` of every image of ``t`` ``(N, C, H, W)``."""
    n, c, h, w = t.shape
    return _take(t, _batch_index(idx, n, h * w))


def _take(t: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """``(N, C, P, 1)``: the pixels at rows ``rows`` (from ``_batch_index``) of ``t`` ``(N, C, H, W)``."""
    n, c = t.shape[:2]
    return _rows(t).index_select(0, rows).view(n, -1, 1, c).permute(0, 3, 1, 2)    # (N, P, 1, C) -> (N, C, P, 1)


def _tile_mask(tiles: torch.Tensor, tile: int, size: tuple[int, int]) -> torch.Tensor:
    """``(H, W)`` bool: the pixels of an ``size`` output that the tiles ``(n, 2)`` of side ``tile`` cover."""
    h, w = size
    grid = torch.zeros(-(-h // tile), -(-w // tile), dtype=torch.bool)   # (tile rows, tile cols)
    grid[tiles[:, 0], tiles[:, 1]] = True
    return grid.repeat_interleave(tile, 0).repeat_interleave(tile, 1)[:h, :w].contiguous()   # (H, W)


def _region(m: torch.Tensor, n: int, limit: int = 16) -> list | torch.Tensor:
    """The set pixels of the ``(H, W)`` mask ``m`` as at most ``limit`` rectangles ``[(y0, y1, x0, x1)]``
    (consecutive rows with the same runs merged; a square edit is one), else as the rows of ``_rows``
    in every one of ``n`` images. Rectangles are copied as slices, far faster than indexed rows."""
    a = m.contiguous().numpy()
    ys = np.flatnonzero(a.any(1))
    if ys.size == 0:
        return []
    y0, y1 = int(ys[0]), int(ys[-1]) + 1
    xs = np.flatnonzero(a[y0:y1].any(0))
    x0, x1 = int(xs[0]), int(xs[-1]) + 1
    crop = a[y0:y1, x0:x1]
    if crop.all():
        return [(y0, y1, x0, x1)]
    new = np.ones(len(crop), dtype=bool)
    new[1:] = (crop[1:] != crop[:-1]).any(1)
    starts = np.flatnonzero(new).tolist() + [len(crop)]
    rects = []
    for g0, g1 in zip(starts[:-1], starts[1:]):
        edges = np.diff(np.concatenate(([0], crop[g0].view(np.int8), [0])))   # (w + 1,): +1 run starts, -1 ends
        for r0, r1 in zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist()):
            rects.append((y0 + g0, y0 + g1, x0 + r0, x0 + r1))
        if len(rects) > limit:
            return _batch_index(m.reshape(-1).nonzero().squeeze(1), n, m.numel())   # (H*W,) -> (n*P,)
    return rects


def _copy_region(dst: torch.Tensor, src: torch.Tensor, region: list | torch.Tensor) -> None:
    """``dst[region] = src[region]`` for ``(N, C, H, W)`` tensors, ``region`` from ``_region``."""
    if isinstance(region, list):
        for y0, y1, x0, x1 in region:
            dst[:, :, y0:y1, x0:x1].copy_(src[:, :, y0:y1, x0:x1])
    elif region.numel():
        _row_view(dst).index_copy_(0, region, _rows(src).index_select(0, region))


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    """``torch.equal`` for bool masks, compared 8 pixels at a time when they allow an int64 view."""
    if a.shape != b.shape:
        return False
    if a.is_contiguous() and b.is_contiguous() and a.numel() % 8 == 0:
        try:
            return torch.equal(a.reshape(-1).view(torch.int64), b.reshape(-1).view(torch.int64))   # (H*W/8,)
        except RuntimeError:
            pass
    return torch.equal(a, b)


class _Plan:
    """What a sparse run derives from its edit mask alone, kept per mask by ``SparseRunner`` (an edit
    that alternates between a few masks, or reuses one through every denoising step, derives it
    once): the per-resolution masks, each op's change mask, liveness and skip flag, the pixels it
    rewrites (``rows``, ``idx``) and, per predecessor mask, the rows it must restore (``stale``)."""

    __slots__ = ("serial", "key", "per_res", "done", "mask", "live", "skip", "idx", "rows", "written", "stale",
                 "last_masks")

    def __init__(self, serial: int, key: torch.Tensor, per_res: dict | None):
        self.serial, self.key, self.per_res, self.done = serial, key, per_res, False
        self.mask: dict = {}
        self.live: dict = {}
        self.skip: dict = {}
        self.idx: dict = {}
        self.rows: dict = {}
        self.written: dict = {}
        self.stale: dict = {}
        self.last_masks: dict = {}

    def tensors(self) -> list:
        """Every tensor the plan holds (masks, index lists)."""
        out = [self.key] + list((self.per_res or {}).values()) + list(self.mask.values())
        out += list(self.idx.values()) + list(self.rows.values()) + list(self.written.values())
        out += [r for _, r in self.stale.values()]
        return [t for t in out if isinstance(t, torch.Tensor)]


def _channels_last(t: torch.Tensor) -> torch.Tensor:
    if t.is_contiguous(memory_format=CHANNELS_LAST):
        return t
    return torch.empty_like(t, memory_format=CHANNELS_LAST).copy_(t)


def changed_pixels(x: torch.Tensor, cached: torch.Tensor) -> torch.Tensor:
    """``(H, W)`` bool: pixels where ``x`` differs from ``cached`` in any image and channel (NaN counts
    as a change). A float max over the outer dims: on the CPU it is several times faster than
    ``(x != cached).any(1).any(0)``, whose boolean reductions are slow."""
    return (x - cached).abs_().amax(dim=(0, 1)) != 0


class SparseRunner:
    """A cached, incrementally re-runnable copy of ``model`` built on the learner's ``sparse_cls``.

    ``runner.dense(x)``: the original model (untouched). ``runner.full(x)``: dense run that fills
    every cache (the image is copied first, so editing it in place later is safe).
    ``runner.sparse(x_edited)``: the incremental run; same shape as the cached image, after ``full``.
    ``kernels``: the learner's ``{"active_tiles", "gather", "scatter"}`` for the incremental engine,
    or None for the compare-with-cache path (see the module docstring). ``norms``: ``"exact"``
    refuses per-image normalisation, ``"reuse"`` freezes its statistics at the full run (SIGE).
    ``masks``: ``"reach"`` (exact) or ``"per_resolution"`` (SIGE's shared masks, approximate; the
    engine only). Inputs are ``(N, C, H, W)``; everything runs under ``torch.no_grad()``.
    """

    #: the engine: remember what a sparse call derives from its edit mask alone (masks, tile rows; a
    #: ``_Plan``) for the last ``plans`` masks, found again by content; restore only the pixels the last
    #: call wrote that this one does not rewrite (none when the mask is the same: a diffusion edit
    #: reuses one mask at every step). False: rebuild every call and restore everything the last call
    #: wrote before writing (the ablation; the output is the same, bit for bit).
    reuse_mask = True
    plans = 4
    #: a pixel-local op whose mask is at most this many rectangles runs on slices of them (no indexing)
    boxes = 4

    def __init__(self, model: nn.Module, sparse_cls: type, tile: int = 8, kernels: Mapping[str, Callable] | None = None,
                 norms: str = "exact", masks: str = "reach", dilation: int = 1):
        self.dense_model = model.eval()
        self.sparse_cls = sparse_cls
        self.tile = int(tile)
        self.model = convert(copy.deepcopy(model), sparse_cls, tile, norms)
        self.layers = sparse_layers(self.model, sparse_cls)
        if not self.layers:
            raise ValueError(f"{type(model).__name__} has no nn.Conv2d to make sparse")
        if masks not in ("reach", "per_resolution"):
            raise ValueError(f"masks must be 'reach' or 'per_resolution', got {masks!r}")
        if kernels is None and masks != "reach":
            raise ValueError("masks='per_resolution' needs the incremental engine: pass kernels=")
        self.kernels = None
        if kernels is not None:
            missing = [k for k in KERNELS if not callable(dict(kernels).get(k))]
            if missing:
                raise ValueError(f"kernels must map {KERNELS} to your functions; missing or not callable: {missing}")
            self.kernels = {k: kernels[k] for k in KERNELS}
        self.masks, self.dilation = masks, int(dilation)
        self.path = "compare" if kernels is None else "engine"
        self._shape: tuple | None = None
        self._inputs: dict[str, torch.Tensor] = {}
        self._mode: str | None = None
        self.last_masks: dict[str, torch.Tensor] = {}
        if self.kernels is not None:
            self._plan()

    # -- the engine's plan ----------------------------------------------------------------------------
    def _plan(self) -> None:
        self.graph = graph.trace(self.model, (self.sparse_cls,))
        self.modules = dict(self.model.named_modules())
        # constants (get_attr) first: torch.fx creates them at first use, which may fall after a conv
        # whose epilogue reads them (a time-embedding bias added right after the conv)
        nodes = list(self.graph.nodes)
        self.nodes = [n for n in nodes if n.op == "get_attr"] + [n for n in nodes if n.op != "get_attr"]
        layer_calls: dict[str, int] = {}
        for node in self.nodes:
            if node.op == "call_module" and isinstance(self.modules[node.target], self.sparse_cls):
                layer_calls[node.target] = layer_calls.get(node.target, 0) + 1
        twice = [n for n, c in layer_calls.items() if c > 1]
        if twice:
            raise ValueError(f"conv {twice[0]!r} is called more than once in forward; each call needs its own cache, "
                             "so give every call its own conv module")
        # fusion: a chain of single-input pointwise ops right after a conv or a pointwise op
        self.chain: dict[fx.Node, list[fx.Node]] = {}
        self.end: dict[fx.Node, fx.Node] = {}
        fused: set[fx.Node] = set()
        for node in self.nodes:
            if node in fused or not (self._is_conv(node) or graph.is_pointwise(node, self.modules)):
                continue
            chain, cur = [], node
            while len(cur.users) == 1:
                nxt = next(iter(cur.users))
                if not graph.is_pointwise(nxt, self.modules) or not self._unary_on(nxt, cur):
                    break
                chain.append(nxt)
                fused.add(nxt)
                cur = nxt
            self.chain[node] = chain
            self.end[node] = cur
        self.fused = fused
        self.steps = [n for n in self.nodes if n not in fused]
        #: nodes whose change mask some later op reads (not only the output)
        self.masked = {n for n in self.nodes if any(u.op != "output" for u in n.users)}
        self.kind: dict[fx.Node, str] = {}
        self.spatial: set[fx.Node] = set()
        self.ref: dict[fx.Node, torch.Tensor] = {}
        self.maps: dict[fx.Node, tuple[torch.Tensor, torch.Tensor]] = {}

    def _is_conv(self, node: fx.Node) -> bool:
        return node.op == "call_module" and isinstance(self.modules.get(node.target), self.sparse_cls)

    @staticmethod
    def _unary_on(node: fx.Node, src: fx.Node) -> bool:
        """``node`` reads ``src`` and otherwise only constants or attributes."""
        inputs = node.all_input_nodes
        return src in inputs and all(n is src or n.op == "get_attr" for n in inputs)

    def _args(self, node: fx.Node, env: dict, replace: Callable[[fx.Node], Any] | None = None):
        look = replace or (lambda n: env[n])
        return fx.node.map_arg(node.args, look), fx.node.map_arg(node.kwargs, look)

    def _epilogue(self, node: fx.Node, env: dict) -> Callable | None:
        chain = self.chain.get(node) or []
        if not chain:
            return None
        if len(chain) == 1 and chain[0].op == "call_module" and chain[0].args == (node,) and not chain[0].kwargs:
            return self.modules[chain[0].target]            # one module on the tensor alone (an activation)

        def epilogue(t: torch.Tensor, chain=chain, src=node) -> torch.Tensor:
            prev = src
            for step in chain:
                args, kwargs = self._args(step, env, lambda n, prev=prev, t=t: t if n is prev else env[n])
                t = graph.call_node(step, args, kwargs, self.modules, self.model)
                prev = step
            return t

        return epilogue

    # -- runs -----------------------------------------------------------------------------------------
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
        self._set("full")
        with torch.no_grad():
            if self.kernels is None:
                self._inputs = {}
                hooks = [m.register_forward_pre_hook(lambda mod, args, name=n: self._inputs.__setitem__(name, args[0]))
                         for n, m in self.layers]
                try:
                    y = self.model(x)
                finally:
                    for h in hooks:
                        h.remove()
            else:
                y = self._full_engine(_channels_last(x))
        self._shape, self._dtype, self._x = tuple(x.shape), x.dtype, x.contiguous()
        return y

    def sparse(self, x: torch.Tensor, changed: torch.Tensor | None = None) -> torch.Tensor:
        """Incremental run on an edited image of the cached shape; returns the output (a new tensor).

        ``changed``: an ``(H, W)`` bool mask of the input pixels to treat as changed (the engine
        only), instead of comparing ``x`` with the cached image. Pixels outside it are taken as
        unchanged even if they differ (with ``masks="per_resolution"`` every resolution's mask is
        made from it: SIGE's one edit mask, reused through all denoising steps in Lab 8, and the
        output outside the mask is the cached output exactly)."""
        if self._shape is None:
            raise RuntimeError("sparse run before any full run: call runner.full(original_image) first, "
                               "so that every layer has a cache to compare against")
        if not isinstance(x, torch.Tensor) or tuple(x.shape) != self._shape:
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"the edited image has shape {got}, but the cache holds an image of shape {self._shape}; "
                             "call runner.full(new_image) to cache a new image first")
        if x.dtype != self._dtype:
            raise ValueError(f"the edited image has dtype {x.dtype}, the cached one {self._dtype}")
        if changed is not None:
            if self.kernels is None:
                raise ValueError("changed= needs the incremental engine: pass kernels= to SparseRunner")
            if not isinstance(changed, torch.Tensor) or changed.dtype != torch.bool or \
                    tuple(changed.shape) != self._shape[-2:]:
                got = (tuple(changed.shape), changed.dtype) if isinstance(changed, torch.Tensor) \
                    else type(changed).__name__
                raise ValueError(f"changed must be an (H, W) = {self._shape[-2:]} bool mask, got {got}")
        self._set("sparse")
        if self.kernels is None:
            with torch.no_grad():
                return self.model(x)
        with torch.inference_mode():                    # less per-op bookkeeping than no_grad
            out = self._sparse_engine(x, changed)
        return tree_map(lambda t: t.clone() if isinstance(t, torch.Tensor) else t, out)

    # -- the engine: full run -------------------------------------------------------------------------
    def _full_engine(self, x: torch.Tensor) -> torch.Tensor:
        env: dict[fx.Node, Any] = {}
        self.kind, self.spatial, self.ref, self.maps = {}, set(), {}, {}
        self._bufs: dict[fx.Node, torch.Tensor] = {}
        # per buffer, (serial of the plan, rows) of the last write: what the next one must restore
        self._dirty: dict[fx.Node, tuple[int, torch.Tensor] | None] = {}
        self._plans: list[_Plan] = []
        self._serial = getattr(self, "_serial", 0)
        self._empty: dict[tuple, torch.Tensor] = {}
        self._resolutions: set[tuple[int, int]] = set()
        out = None
        for node in self.nodes:
            if node in self.fused:
                continue
            end = self.end.get(node, node)
            if node.op == "placeholder":
                if "input" in self.kind.values():
                    raise ValueError("the incremental engine supports models with one input image")
                value, kind = x, "input"
            elif node.op == "output":
                self.kind[node] = "output"
                out = fx.node.map_arg(node.args[0], lambda n: env[n].clone() if n in self.spatial else env[n])
                continue
            elif node.op == "get_attr":
                value, kind = graph.call_node(node, (), {}, self.modules, self.model), "meta"
            else:
                args, kwargs = self._args(node, env)
                spatial_in = [n for n in node.all_input_nodes if n in self.spatial]
                if self._is_conv(node):
                    kind = "conv"
                    value = self.modules[node.target](args[0], epilogue=self._epilogue(node, env))
                elif not spatial_in or graph.is_meta(node):
                    kind = "meta"
                    value = graph.call_node(node, args, kwargs, self.modules, self.model)
                elif graph.is_pointwise(node, self.modules):
                    kind = "pointwise"
                    value = graph.call_node(node, args, kwargs, self.modules, self.model)
                    ep = self._epilogue(node, env)
                    value = ep(value) if ep is not None else value
                elif graph.is_resample(node, self.modules) and len(spatial_in) == 1:
                    kind = "resample"
                    value = graph.call_node(node, args, kwargs, self.modules, self.model)
                    self.maps[node] = self._probe(node, spatial_in[0], env, value)
                    if self.maps[node] is None:
                        kind = "dense"
                elif graph.is_dense(node, self.modules):
                    kind = "dense"
                    value = graph.call_node(node, args, kwargs, self.modules, self.model)
                else:
                    what = node.target if node.op != "call_module" else type(self.modules[node.target]).__name__
                    raise ValueError(f"op {node.name!r} ({what}) is not supported by the incremental engine: it is not "
                                     "known to be pixel-local. Use nn.Conv2d, pointwise ops, nearest upsampling or "
                                     "zero padding, or run without kernels= (the compare-with-cache path)")
                if kind in ("pointwise", "resample", "dense"):
                    self._check_spatial(node, spatial_in, value, kind)
            self.kind[node] = kind
            if isinstance(value, torch.Tensor) and value.dim() == 4 and kind != "meta" or kind == "input":
                value = _channels_last(value)
                self.spatial.add(end)
                self.ref[end] = value
                self._resolutions.add(tuple(value.shape[-2:]))
                if kind in ("conv", "pointwise", "resample"):
                    self._bufs[end] = value.clone()         # the persistent buffer, made once, here
            env[end] = value
        self.spatial_in = {n: [i for i in n.all_input_nodes if i in self.spatial] for n in self.steps}
        # a plan depends on the edit mask alone unless some op's change mask is read off its values
        self._plannable = self.masks == "per_resolution" or "dense" not in self.kind.values()
        return out

    def _check_spatial(self, node: fx.Node, spatial_in: list, value: Any, kind: str) -> None:
        if not (isinstance(value, torch.Tensor) and value.dim() == 4):
            raise ValueError(f"op {node.name!r} returns {type(value).__name__}, not an (N, C, H, W) tensor")
        if kind == "pointwise":
            sizes = {tuple(self.ref[n].shape[-2:]) for n in spatial_in} | {tuple(value.shape[-2:])}
            if len(sizes) != 1:
                raise ValueError(f"op {node.name!r} combines tensors of different sizes {sorted(sizes)}; the engine "
                                 "runs pixel-local ops on tensors of one size")

    def _probe(self, node: fx.Node, src: fx.Node, env: dict, value: torch.Tensor):
        """Index map of a resampling op: for each output pixel, the input pixel it copies (-1: zero).
        Found by running the op on an image of pixel numbers; None when the op is not such a copy."""
        ref_in = self.ref[src]
        h, w = ref_in.shape[-2:]
        probe = (torch.arange(1, h * w + 1, dtype=torch.float64).view(1, 1, h, w)
                 .expand(ref_in.shape[0], 1, h, w).contiguous())               # (N, 1, H, W)
        args, kwargs = self._args(node, env, lambda n: probe if n is src else env[n])
        try:
            got = graph.call_node(node, args, kwargs, self.modules, self.model)
        except Exception:  # noqa: BLE001 - not index-mappable: run densely
            return None
        if got.shape[-2:] != value.shape[-2:] or not torch.equal(got, got[:1].expand_as(got)):
            return None
        idx = got[0, 0].reshape(-1).round().long() - 1                         # (Ho*Wo,), -1 = zero
        ok = idx >= 0
        check = _pixels(ref_in, idx.clamp(min=0)) * ok.view(1, 1, -1, 1)     # (N, C, Ho*Wo, 1)
        if check.numel() != value.numel() or not torch.equal(check.reshape(value.shape), value):
            return None
        return idx, ok

    # -- the engine: sparse run -----------------------------------------------------------------------
    def _buffer(self, node: fx.Node) -> torch.Tensor:
        buf = self._bufs.get(node)
        if buf is None:
            buf = self._bufs[node] = self.ref[node].clone()
        return buf

    def _no_change(self, shape: tuple[int, int]) -> torch.Tensor:
        m = self._empty.get(shape)
        if m is None:
            m = self._empty[shape] = torch.zeros(shape, dtype=torch.bool)
        return m

    def _plan_of(self, changed0: torch.Tensor) -> _Plan:
        """The plan of the edit mask ``changed0``: a remembered one with equal content (moved to the
        front), else a new, empty one that the run fills (remembered once the run completes)."""
        if self.reuse_mask and self._plannable:
            for i, plan in enumerate(self._plans):
                if _same(plan.key, changed0):
                    if i:
                        self._plans.insert(0, self._plans.pop(i))
                    return plan
        self._serial += 1
        key = changed0.clone()
        per_res = resolution_masks(key, sorted(self._resolutions), self.dilation) \
            if self.masks == "per_resolution" else None
        return _Plan(self._serial, key, per_res)

    def _remember(self, plan: _Plan) -> None:
        if plan.done or not (self.reuse_mask and self._plannable):
            return
        plan.done = True
        self._plans.insert(0, plan)
        del self._plans[self.plans:]

    def _restore(self, end: fx.Node, buf: torch.Tensor, plan: _Plan | None) -> None:
        """Put the cached values back into ``buf`` where the last write to it left other values.

        ``plan`` None (the ablation, before writing): every pixel the last write touched. Otherwise
        (after writing ``plan.written[end]``): only the last write's pixels that this one did not
        rewrite, remembered per predecessor plan (an edit alternating between a few masks).

        Eager on purpose. A lazy restore (copy back only the stale pixels a later op reads) was
        measured on Lab 8's 1 % / 5 % / 20 % sequence: it takes the bulk copy off the 1 % edit but
        leaves stale rings around the next edits' blocks, copied as many small slices in every op,
        so one UNet step at 5 % went from 5.2 to 6.0 ms (96 px, 1 thread)."""
        prev = self._dirty.get(end)
        if prev is None:
            return
        serial, done = prev
        if plan is None:
            region = _region(done, buf.shape[0])
        elif serial == plan.serial:
            return                                          # the same mask wrote the same pixels
        else:
            memo = plan.stale.get(end)
            if memo is not None and memo[0] == serial:
                region = memo[1]
            else:
                region = _region(done & ~plan.written[end], buf.shape[0])
                plan.stale[end] = (serial, region)
        _copy_region(buf, self.ref[end], region)
        self._dirty[end] = None

    def _sparse_engine(self, x: torch.Tensor, changed: torch.Tensor | None = None) -> torch.Tensor:
        K, t = self.kernels, self.tile
        env: dict[fx.Node, Any] = {}
        changed0 = changed_pixels(x, self._x) if changed is None else changed
        plan = self._plan_of(changed0)
        fresh, reuse = not plan.done, self.reuse_mask
        mask, live, per_res = plan.mask, plan.live, plan.per_res
        x = _channels_last(x)
        out = None
        for node in self.steps:
            kind, end = self.kind[node], self.end.get(node, node)
            if kind == "input":
                env[node] = x
                if fresh:
                    mask[node] = per_res[tuple(x.shape[-2:])] if per_res else plan.key
                    live[node] = bool(mask[node].any())
                continue
            if kind == "output":
                if per_res is not None and changed is not None:
                    # a given mask is the edit region: outside it, the output is the cached one exactly
                    # (the last conv writes whole tiles, which reach a little past the mask)
                    out = fx.node.map_arg(node.args[0], lambda n: torch.where(
                        per_res[tuple(env[n].shape[-2:])], env[n], self.ref[n])
                        if n in self.spatial and tuple(env[n].shape[-2:]) in per_res else env[n])
                else:
                    out = fx.node.map_arg(node.args[0], lambda n: env[n])
                continue
            if kind == "meta":
                args, kwargs = self._args(node, env)
                env[node] = graph.call_node(node, args, kwargs, self.modules, self.model)
                continue
            ref = self.ref[end]
            size = tuple(ref.shape[-2:])
            if fresh:
                plan.skip[end] = not any(live[n] for n in self.spatial_in[node])
            if plan.skip[end]:
                env[end] = ref
                if fresh:
                    mask[end], live[end] = self._no_change(size), False
                    if kind == "conv":
                        plan.last_masks[node.target] = mask[node.args[0]]
                continue
            if kind == "dense":
                args, kwargs = self._args(node, env)
                value = graph.call_node(node, args, kwargs, self.modules, self.model)
                env[end] = value
                if per_res is None:                       # (then plans are off: value-dependent)
                    mask[end] = (value != ref).any(dim=1).any(dim=0)
                    live[end] = bool(mask[end].any())
                elif fresh:
                    mask[end], live[end] = per_res[size], bool(per_res[size].any())
                continue
            buf = self._buffer(end)
            if not reuse:
                self._restore(end, buf, None)
            if kind == "conv":
                src = node.args[0]
                m_in = mask[src]
                layer = self.modules[node.target]
                env[end] = layer(env[src], changed=m_in, out=buf, epilogue=self._epilogue(node, env))
                if end not in plan.written:
                    k, s, p = GEOMETRY[layer]
                    tiles = getattr(layer, "tiles", None)
                    if not isinstance(tiles, torch.Tensor):
                        tiles = K["active_tiles"](m_in, k, s, p, t)
                    plan.written[end] = _tile_mask(tiles, t, size)
                if fresh:
                    plan.last_masks[node.target] = m_in
                    if per_res is not None:
                        mask[end], live[end] = per_res[size], True
                    elif end not in self.masked:            # only the output reads it: no mask needed
                        mask[end], live[end] = self._no_change(size), True
                    else:
                        k, s, p = GEOMETRY[layer]
                        reach = K["active_tiles"](m_in, k, s, p, 1)
                        m_out = torch.zeros(size, dtype=torch.bool)
                        m_out.view(-1).index_fill_(0, reach[:, 0] * size[1] + reach[:, 1], True)   # (H*W,)
                        mask[end], live[end] = m_out, reach.shape[0] > 0
            else:
                if fresh:
                    if kind == "pointwise":
                        if per_res is not None:
                            m_out = per_res[size]
                        else:
                            m_out = None
                            for n in self.spatial_in[node]:
                                if live[n]:
                                    m_out = mask[n] if m_out is None else m_out | mask[n]
                        idx = m_out.view(-1).nonzero().squeeze(1)                      # (H*W,) -> (P,)
                    else:                                                       # resample
                        pix, ok = self.maps[node]
                        src = self.spatial_in[node][0]
                        if per_res is not None:
                            m_flat = per_res[size].view(-1) & ok                       # (Ho*Wo,)
                        else:
                            m_flat = ok & mask[src].view(-1)[pix.clamp(min=0)]         # (Ho*Wo,)
                        m_out = m_flat.view(size)                                      # (Ho, Wo)
                        idx = m_flat.nonzero().squeeze(1)
                        src_hw = self.ref[src].shape[-2] * self.ref[src].shape[-1]
                        plan.idx[end] = _batch_index(pix[idx], ref.shape[0], src_hw)
                    plan.rows[end] = _batch_index(idx, ref.shape[0], size[0] * size[1])
                    plan.written[end] = m_out
                    mask[end], live[end] = m_out, idx.numel() > 0
                    if kind == "pointwise":
                        region = _region(m_out, ref.shape[0], limit=self.boxes)
                        plan.idx[end] = region if isinstance(region, list) and region else None
                rows = plan.rows[end]
                if kind == "pointwise":
                    boxes = plan.idx[end]
                    ep = self._epilogue(node, env)
                    if boxes is not None:                   # a few rectangles: run on slices, write slices
                        for box in boxes:
                            args, kwargs = self._args(node, env, lambda n, b=box: env[n][:, :, b[0]:b[1], b[2]:b[3]]
                                                      if n in self.spatial else env[n])
                            vals = graph.call_node(node, args, kwargs, self.modules, self.model)
                            vals = ep(vals) if ep is not None else vals
                            buf[:, :, box[0]:box[1], box[2]:box[3]].copy_(vals)
                    else:
                        args, kwargs = self._args(node, env, lambda n, take=rows: _take(env[n], take)
                                                  if n in self.spatial else env[n])
                        vals = graph.call_node(node, args, kwargs, self.modules, self.model)
                        vals = ep(vals) if ep is not None else vals
                        _row_view(buf).index_copy_(0, rows, _rows(vals))
                else:
                    _row_view(buf).index_copy_(0, rows, _rows(_take(env[self.spatial_in[node][0]], plan.idx[end])))
                env[end] = buf
            if reuse:
                self._restore(end, buf, plan)
            self._dirty[end] = (plan.serial, plan.written[end])
        self.last_masks = dict(plan.last_masks)
        self._remember(plan)
        return out

    # -- measurement ----------------------------------------------------------------------------------
    def executed_macs(self, x: torch.Tensor, changed: torch.Tensor | None = None) -> int:
        """MACs executed by ``sparse(x, changed)`` (convs on the gathered blocks; FLOPs / 2)."""
        with FlopCounterMode(display=False) as counter:
            self.sparse(x, changed)
        return counter.get_total_flops() // 2

    def cache_bytes(self) -> int:
        """Bytes this runner keeps for its cached run: the cached activations, the persistent
        buffers, the cached input, the frozen normalisation statistics (after ``full``) and the plans
        of the last edit masks."""
        seen, total = set(), 0
        tensors = list(getattr(self, "ref", {}).values()) + list(getattr(self, "_bufs", {}).values())
        tensors += [t for plan in getattr(self, "_plans", []) for t in plan.tensors()]
        tensors += [getattr(self, "_x", None)] + list(self._inputs.values())
        for m in self.model.modules():
            if isinstance(m, FrozenNorm):
                tensors += [m.scale, m.shift]
            if isinstance(m, self.sparse_cls):
                tensors += [v for v in vars(m).values() if isinstance(v, torch.Tensor)]
        for t in tensors:
            if isinstance(t, torch.Tensor) and t.data_ptr() not in seen:
                seen.add(t.data_ptr())
                total += t.numel() * t.element_size()
        return total

    def dense_macs(self, x: torch.Tensor) -> int:
        """MACs of the original model on ``x``."""
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            self.dense_model(x)
        return counter.get_total_flops() // 2

    def changed_masks(self, x: torch.Tensor) -> list[tuple[str, nn.Module, torch.Tensor]]:
        """``[(name, layer, changed)]``: for each converted conv, the ``(H, W)`` bool mask of its input
        pixels treated as changed during ``sparse(x)`` (the engine's masks; on the compare path, the
        pixels that differ from the cached run in any image and channel)."""
        if self._shape is None:
            raise RuntimeError("changed_masks before any full run: call runner.full(original_image) first")
        if self.kernels is not None:
            self.sparse(x)
            masks = self.last_masks
        else:
            masks = {}

            def hook(mod, args, name):
                masks[name] = (args[0] != self._inputs[name]).any(dim=1).any(dim=0)

            hooks = [m.register_forward_pre_hook(lambda mod, args, name=n: hook(mod, args, name))
                     for n, m in self.layers]
            try:
                self.sparse(x)
            finally:
                for h in hooks:
                    h.remove()
        shapes = {}
        if self.kernels is not None:
            shapes = {node.target: tuple(self.ref[node.args[0]].shape[-2:]) for node in self.nodes
                      if self.kind.get(node) == "conv"}
        return [(n, m, masks[n] if n in masks else torch.zeros(shapes[n], dtype=torch.bool))
                for n, m in self.layers if n in masks or n in shapes]

