"""Self-checks for Lab 5 (SIGE, spatially sparse incremental inference).

Small hand-worked examples and invariants only; the property tests on random inputs are hidden in
the notebook. Geometry used throughout: an output tile ``(i, j)`` of ``tile x tile`` pixels needs the
input block of side ``b = (tile - 1) * s + k`` whose top-left corner is ``(tile*s*i - p, tile*s*j - p)``.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from ..sparse.engine import SparseRunner, reuse_freed_memory
from ..sparse.models import ResGenerator, conv_stack, randomize_batchnorm, square_edit
from .asserts import call, assert_close, assert_shape, assert_true, check_tensor, passed

__all__ = ["tile_set", "check_incremental_conv", "check_active_tiles", "check_gather", "check_scatter",
           "check_sparse_conv2d", "kernels_of", "check_network", "LAYOUTS", "with_layout", "ToyEpilogue", "toy_decoder",
           "macs_of_call", "speed_edits", "alternate", "measure_speedup", "SPEED_NET", "AllocationWatch",
           "FullPassWatch", "check_speedup", "EXERCISES", "load_exercises", "bench_table"]


_call = call


def tile_set(tiles, name: str = "tiles") -> set[tuple[int, int]]:
    """The tiles as a set of ``(row, col)``; checks ``(n, 2)`` int64 and no duplicates."""
    tiles = check_tensor(name, tiles)
    assert_true(tiles.dim() == 2 and tiles.shape[1] == 2, f"{name}: expected shape (n, 2), got {tuple(tiles.shape)}")
    assert_true(tiles.dtype == torch.int64, f"{name}: expected dtype torch.int64 (a LongTensor), got {tiles.dtype}")
    out = {(int(a), int(b)) for a, b in tiles.tolist()}
    assert_true(len(out) == tiles.shape[0],
                f"{name}: {tiles.shape[0] - len(out)} duplicate tile(s); list each tile once")
    return out


# ---------------------------------------------------------------------------------------------
def check_incremental_conv(incremental_conv) -> None:
    """A conv with bias, an edit of a 3x3 patch: the update must equal the conv of the edited input."""
    g = torch.Generator().manual_seed(5)
    conv = nn.Conv2d(3, 4, 3, padding=1)
    x_old = torch.randn(2, 3, 9, 11, generator=g)
    x_new = x_old.clone()
    x_new[:, :, 2:5, 6:9] += torch.randn(2, 3, 3, 3, generator=g)
    with torch.no_grad():
        y_old = conv(x_old)
        expected = conv(x_new)
        got = _call("incremental_conv", incremental_conv, conv, x_old, y_old, x_new)
    assert_close("incremental_conv(conv with bias, 3x3 edit) vs conv(x_new)", got, expected, atol=1e-4)
    passed("incremental_conv: y_old + W * (x_new - x_old) equals the conv of the edited input")


def check_active_tiles(active_tiles) -> None:
    """Hand-worked examples (8x8 image, k=3, s=1, p=1, tile=4: a 2x2 grid of tiles, blocks of 6)."""
    def mask(h, w, *pixels):
        m = torch.zeros(h, w, dtype=torch.bool)
        for r, c in pixels:
            m[r, c] = True
        return m

    cases = [
        ("one changed pixel at (1, 1)", mask(8, 8, (1, 1)), (3, 1, 1, 4), {(0, 0)}),
        ("one changed pixel at (3, 3): the halo reaches every tile", mask(8, 8, (3, 3)), (3, 1, 1, 4),
         {(0, 0), (0, 1), (1, 0), (1, 1)}),
        ("one changed pixel at (3, 0)", mask(8, 8, (3, 0)), (3, 1, 1, 4), {(0, 0), (1, 0)}),
        ("kernel 1 (no halo), pixel (3, 3)", mask(8, 8, (3, 3)), (1, 1, 0, 4), {(0, 0)}),
        ("9x9 image, k=3, s=2, p=1, tile=2 (3x3 tiles, blocks of 5), pixel (3, 8)", mask(9, 9, (3, 8)),
         (3, 2, 1, 2), {(0, 2), (1, 2)}),
        ("nothing changed", mask(8, 8), (3, 1, 1, 4), set()),
        ("everything changed, 7x9 image, k=3, s=1, p=1, tile=4", torch.ones(7, 9, dtype=torch.bool), (3, 1, 1, 4),
         {(i, j) for i in range(2) for j in range(3)}),
    ]
    for what, m, (k, s, p, t), expected in cases:
        got = tile_set(_call("active_tiles", active_tiles, m, k, s, p, t), f"active_tiles ({what})")
        assert_true(got == expected, f"active_tiles ({what}): expected tiles {sorted(expected)}, got {sorted(got)}")
    passed("active_tiles: hand-worked examples, the halo, stride 2, empty and full masks")


_X6 = torch.arange(1.0, 37.0).view(1, 1, 6, 6)
# tile=2, k=3, s=1, p=1 -> blocks of b=4; tile (0,0) starts at (-1,-1), tile (2,2) at (3,3)
_BLOCK_00 = torch.tensor([[0., 0., 0., 0.], [0., 1., 2., 3.], [0., 7., 8., 9.], [0., 13., 14., 15.]])
_BLOCK_22 = torch.tensor([[22., 23., 24., 0.], [28., 29., 30., 0.], [34., 35., 36., 0.], [0., 0., 0., 0.]])


def check_gather(gather) -> None:
    """A 6x6 image holding 1..36: two blocks worked out by hand (zeros outside the image), then the
    image-major order for a batch of two images."""
    tiles = torch.tensor([[0, 0], [2, 2]])
    got = _call("gather", gather, _X6.clone(), tiles, 3, 1, 1, 2)
    assert_close("gather(6x6 image 1..36, tiles [(0,0), (2,2)], k=3, s=1, p=1, tile=2)", got,
                 torch.stack([_BLOCK_00, _BLOCK_22])[:, None])
    two = torch.cat([_X6, _X6 + 100]).expand(2, 3, 6, 6).clone()          # N=2, C=3
    got = _call("gather", gather, two, tiles, 3, 1, 1, 2)
    assert_shape("gather(N=2, C=3, two tiles) must be (N*n, C, b, b)", got, (4, 3, 4, 4))
    inside = torch.stack([_BLOCK_00, _BLOCK_22]) != 0
    expected = torch.stack([_BLOCK_00, _BLOCK_22, torch.where(inside[0], _BLOCK_00 + 100, 0.),
                            torch.where(inside[1], _BLOCK_22 + 100, 0.)])[:, None].expand(4, 3, 4, 4)
    assert_close("gather with N=2: block i*n + t is tile t of image i (image-major)", got, expected)
    passed("gather: blocks with their halo, zeros outside the image, image-major order")


def check_scatter(scatter) -> None:
    """Two 2x2 tiles written into a 5x5 zero cache; the tile at (2, 2) is clipped to one pixel. Then
    the in-place form: the same tiles written into ``out`` (a channels-last buffer), returned."""
    cache = torch.zeros(1, 1, 5, 5)
    tiles = torch.tensor([[0, 0], [2, 2]])
    y_tiles = torch.tensor([[[1., 2.], [3., 4.]], [[5., 6.], [7., 8.]]])[:, None]
    got = _call("scatter", scatter, cache, y_tiles, tiles, 2)
    expected = torch.zeros(1, 1, 5, 5)
    expected[0, 0, :2, :2] = torch.tensor([[1., 2.], [3., 4.]])
    expected[0, 0, 4, 4] = 5.0
    assert_close("scatter(5x5 zeros, tiles [(0,0), (2,2)], tile=2)", got, expected)
    assert_true(bool((cache == 0).all()), "scatter wrote into y_cached: return a copy and leave the cache untouched")
    cache3 = torch.zeros(1, 3, 5, 5)
    out = torch.full((1, 3, 5, 5), -1.0).contiguous(memory_format=torch.channels_last)
    got = _call("scatter(..., out=buffer)", scatter, cache3, y_tiles.expand(2, 3, 2, 2), tiles, 2, out=out)
    expected3 = torch.where(expected.expand(1, 3, 5, 5) != 0, expected, -1.0)
    assert_close("scatter(..., out=buffer): the buffer after the call (tiles written, the rest as it was)", out,
                 expected3)
    assert_close("scatter(..., out=buffer): the returned tensor", got, expected3)
    assert_true(bool((cache3 == 0).all()), "scatter(..., out=buffer) wrote into y_cached; write into out only")
    passed("scatter: tiles written, clipped at the image edge, cache untouched; the out= form writes in place")


def _dense_conv(conv, x):
    with torch.no_grad():
        return conv(x)


def check_sparse_conv2d(SparseConv2d) -> None:
    """One 3x3 conv on a 13x11 image: full mode equals the conv; a corner edit and an empty edit in
    sparse mode (found by comparing with the cache) equal the dense conv of the edited input; then
    the engine's way of calling it: a given change mask, an ``out`` buffer and an epilogue."""
    g = torch.Generator().manual_seed(1)
    conv = nn.Conv2d(3, 4, 3, padding=1)
    layer = _call("SparseConv2d(conv, tile=4)", SparseConv2d, conv, tile=4)
    assert_true(isinstance(layer, nn.Module), "SparseConv2d must be an nn.Module")
    x = torch.randn(2, 3, 13, 11, generator=g)
    layer.mode = "full"
    with torch.no_grad():
        y = _call("SparseConv2d in full mode", layer, x)
    assert_close("SparseConv2d in full mode vs the conv", y, _dense_conv(conv, x))
    layer.mode = "sparse"
    for what, edit in (("edit in the bottom-right corner", (slice(10, 13), slice(8, 11))),
                       ("no edit (must return the cached output)", None)):
        xe = x.clone()
        if edit is not None:
            xe[1, :, edit[0], edit[1]] = torch.randn(3, 3, 3, generator=g)
        with torch.no_grad():
            got = _call("SparseConv2d in sparse mode", layer, xe)
        assert_close(f"SparseConv2d sparse mode, {what}, vs dense conv of the edited input", got, _dense_conv(conv, xe))
    tiles = layer.tiles if hasattr(layer, "tiles") else None
    assert_true(isinstance(tiles, torch.Tensor) and tiles.dim() == 2 and tiles.shape[1] == 2,
                "after a sparse call, SparseConv2d.tiles must hold the (n, 2) tiles it recomputed "
                f"(got {type(tiles).__name__})")
    # the engine's call: a change mask (no comparison), a buffer to write into, an epilogue
    def epilogue(t):
        return 2.0 * t + 1.0

    layer = _call("SparseConv2d(conv, tile=4)", SparseConv2d, conv, tile=4)
    layer.mode = "full"
    with torch.no_grad():
        y = _call("SparseConv2d in full mode with an epilogue", layer, x, epilogue=epilogue)
    assert_close("SparseConv2d full mode with epilogue: epilogue(conv(x))", y, epilogue(_dense_conv(conv, x)))
    layer.mode = "sparse"
    xe = x.clone()
    xe[:, :, 0:2, 0:2] = 5.0                                     # inside the mask
    mask = torch.zeros(13, 11, dtype=torch.bool)
    mask[0:2, 0:2] = True
    xe_far = xe.clone()
    xe_far[:, :, 12, 10] = -5.0                                  # outside the mask: must be ignored
    out = y.clone().contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        got = _call("SparseConv2d(x, changed=mask, out=buffer, epilogue=fn)", layer, xe_far, changed=mask, out=out,
                    epilogue=epilogue)
    expected = epilogue(_dense_conv(conv, xe))
    assert_close("SparseConv2d with changed=mask, out=buffer, epilogue: the buffer (only the mask's tiles are "
                 "recomputed; a change outside the mask is not looked for)", out, expected)
    assert_close("SparseConv2d with changed=mask, out=buffer, epilogue: the returned tensor", got, expected)
    passed("SparseConv2d: full mode, edits found against the cache, and the engine's mask / buffer / epilogue")


def kernels_of(active_tiles, gather, scatter) -> dict:
    """The ``kernels`` mapping the incremental engine takes: ``{"active_tiles", "gather", "scatter"}``."""
    return {"active_tiles": active_tiles, "gather": gather, "scatter": scatter}


def check_network(SparseConv2d, kernels, tile: int = 4) -> None:
    """A small residual generator (stride-2 conv, eval BatchNorm, residual blocks, upsampling, 1x1 conv)
    run incrementally must equal the dense network on the edited image: through the incremental
    engine (two edits in a row, with your kernels) and through the compare-with-cache path."""
    g = torch.Generator().manual_seed(2)
    torch.manual_seed(2)
    model = randomize_batchnorm(ResGenerator(channels=6, n_blocks=1), g)
    x = torch.rand(1, 3, 33, 30, generator=g)
    for path, kern in (("engine", kernels), ("compare-with-cache path", None)):
        runner = _call(f"SparseRunner(..., kernels) [{path}]", SparseRunner, model, SparseConv2d, tile=tile,
                       kernels=kern)
        _call(f"runner.full [{path}]", runner.full, x)
        for top, left in ((3, 20), (20, 2)):
            xe, _ = square_edit(x, 0.05, top=top, left=left, generator=g)
            got = _call(f"runner.sparse [{path}]", runner.sparse, xe)
            assert_close(f"incremental run of a residual generator ({path}, edit at {top},{left}) vs the dense network",
                         got, runner.dense(xe))
    passed("SparseConv2d inside a residual generator: the engine and the compare path equal the dense network")


# ---------------------------------------------------------------------------------------------
# public test helpers: the hidden tests build these where the learner's code runs (effcourse.judge)

#: the memory layouts the tests give tensors in
LAYOUTS = ("contiguous", "channels-last", "transposed view")


def with_layout(x: torch.Tensor, layout: str) -> torch.Tensor:
    """A tensor with ``x``'s values (a copy) in memory layout ``layout``: ``"contiguous"`` (NCHW),
    ``"channels-last"`` (``torch.channels_last``) or ``"transposed view"`` (a non-contiguous view of
    an NCWH tensor: the strides of H and W swapped)."""
    if layout == "contiguous":
        return x.clone(memory_format=torch.contiguous_format)
    if layout == "channels-last":
        return x.clone(memory_format=torch.channels_last)
    if layout == "transposed view":
        return x.transpose(-1, -2).contiguous().transpose(-1, -2)
    raise ValueError(f"unknown layout {layout!r}; expected one of {LAYOUTS}")


class ToyEpilogue(nn.Module):
    """``relu(batchnorm(y)) * 2 + 0.5`` with a ``BatchNorm2d(channels)``, made in eval mode (running
    statistics): a pixel-local epilogue that is not idempotent (applied twice, it shows)."""

    def __init__(self, channels: int):
        super().__init__()
        self.bn = nn.BatchNorm2d(channels)
        self.eval()

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.bn(y)) * 2.0 + 0.5


def toy_decoder() -> nn.Sequential:
    """A small decoder in eval mode: a stride-2 conv, InstanceNorm (affine), ReLU, a transposed conv
    (stride 2), InstanceNorm, LeakyReLU, a 1x1 conv and tanh; ``(N, 3, H, W) -> (N, 3, H, W)`` for
    even H, W. Its norms need ``norms="reuse"`` in ``SparseRunner``."""
    return nn.Sequential(nn.Conv2d(3, 6, 3, 2, 1), nn.InstanceNorm2d(6, affine=True), nn.ReLU(),
                         nn.ConvTranspose2d(6, 4, 3, 2, 1, output_padding=1), nn.InstanceNorm2d(4), nn.LeakyReLU(0.2),
                         nn.Conv2d(4, 3, 1), nn.Tanh()).eval()


def macs_of_call(fn, *args, **kwargs) -> tuple:
    """``(fn(*args, **kwargs), MACs)``: the call's result and the multiply-accumulates it executed
    (``torch.utils.flop_counter``: FLOPs / 2), under ``torch.no_grad()``."""
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        out = fn(*args, **kwargs)
    return out, counter.get_total_flops() // 2


# ---------------------------------------------------------------------------------------------
def speed_edits(x: torch.Tensor, fraction: float, generator: torch.Generator | None = None):
    """Two different square edits ``(A, B)`` of ``x`` covering ``fraction`` of the image each: A starts
    at a tile corner near the centre (a kernel that forgets the halo misses the row and column just
    above and left of it), B is the same size 40 pixels higher and 24 to the left (or lower/right
    when it would leave the image). Timed runs alternate between them, so every run has work to do
    even for an implementation that refreshes its cache after each edit."""
    size = x.shape[-1]
    side = int(round((fraction * x.shape[-2] * size) ** 0.5))
    top = min(112 * size // 256 // 8 * 8, x.shape[-2] - side)
    left = min(112 * size // 256 // 8 * 8, size - side)
    top_b = top - 40 if top >= 40 else min(top + 40, x.shape[-2] - side)
    left_b = left - 24 if left >= 24 else min(left + 24, size - side)
    a, _ = square_edit(x, fraction, top=top, left=left, generator=generator)
    b, _ = square_edit(x, fraction, top=top_b, left=left_b, generator=generator)
    return a, b


def alternate(fn, a, b):
    """A function of no arguments that calls ``fn(a)``, ``fn(b)``, ``fn(a)``, ... in turn."""
    state = [0]

    def run():
        state[0] ^= 1
        return fn(a if state[0] else b)

    return run


def measure_speedup(SparseConv2d, kernels=None, fractions=(0.02,), channels: int = 64, depth: int = 6,
                    size: int = 256, tile: int = 8, repeats: int = 10, seed: int = 0, compare=False,
                    warmup: int = 1, before_cls=None) -> list[dict]:
    """Dense vs incremental run of ``conv_stack(channels, depth)`` on a ``size x size`` image, for two
    square edits (``speed_edits``) per fraction of ``fractions``, in one interleaved measurement.

    ``kernels`` (the learner's ``active_tiles``, ``gather``, ``scatter``) selects the incremental
    engine; None the compare-with-cache path (see ``effcourse.sparse.engine``). ``compare`` (True, or
    some of ``fractions``) with kernels also times the compare-with-cache path there (the *before*),
    with ``before_cls`` (default: ``SparseConv2d``) as the sparse layer.
    Every round times the dense network (channels-last input, its faster layout here) and each
    sparse run; each sparse timing is the mean of one run on edit A and one on edit B. The speedup is
    the median over rounds of that round's dense / sparse time. Each row: ``edited_%``,
    ``mac_ratio`` (dense MACs / executed MACs), ``speedup``, ``realized`` (speedup / MAC ratio),
    ``dense_ms``, ``sparse_ms`` (medians), ``max_err`` (against the dense network, both edits),
    ``dense_nchw_ms`` (the dense network on the default layout, with ``compare=True``) and, with ``compare``,
    ``compare_speedup``, ``compare_ms``, ``compare_realized``. One CPU thread (restored afterwards);
    freed memory is kept for reuse (``reuse_freed_memory``)."""
    reuse_freed_memory()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _measure(SparseConv2d, kernels, fractions, channels, depth, size, tile, repeats, seed, compare, warmup,
                        before_cls or SparseConv2d)
    finally:
        torch.set_num_threads(threads)


def _median(v):
    v = sorted(v)
    n = len(v)
    return v[n // 2] if n % 2 else 0.5 * (v[n // 2 - 1] + v[n // 2])


def _measure(SparseConv2d, kernels, fractions, channels, depth, size, tile, repeats, seed, compare, warmup, before_cls):
    from ..bench import latency_rounds

    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    net = conv_stack(channels, depth)
    runner = SparseRunner(net, SparseConv2d, tile=tile, kernels=kernels)
    x = torch.rand(1, 3, size, size, generator=g)
    runner.full(x)
    compare_at = set(fractions) if compare is True else set(compare or ())
    before = SparseRunner(net, before_cls, tile=tile) if compare_at and kernels is not None else None
    if before is not None:
        before.full(x)
    x_cl = x.contiguous(memory_format=torch.channels_last)
    edits = {f: speed_edits(x, f, g) for f in fractions}
    rows = []
    fns = {"dense": lambda: runner.dense(x_cl)}
    if compare is True:
        fns["dense_nchw"] = lambda: runner.dense(x)
    dense_macs = runner.dense_macs(x)
    for f, (xa, xb) in edits.items():
        err = max((runner.sparse(e) - runner.dense(e)).abs().max().item() for e in (xa, xb))
        macs = 0.5 * (runner.executed_macs(xa) + runner.executed_macs(xb))
        rows.append({"edited_%": 100 * f, "mac_ratio": dense_macs / max(macs, 1), "max_err": err,
                     "dense_macs": dense_macs, "executed_macs": macs})
        fns[("sparse", f)] = alternate(runner.sparse, xa, xb)
        if before is not None and f in compare_at:
            fns[("compare", f)] = alternate(before.sparse, xa, xb)
    with torch.no_grad():
        samples = latency_rounds(fns, repeats=repeats, number=2, warmup=max(2 * warmup, 0))
    dense = samples["dense"]
    for row, f in zip(rows, edits):
        row["dense_ms"] = 1e3 * _median(dense)
        row["sparse_ms"] = 1e3 * _median(samples[("sparse", f)])
        row["speedup"] = _median([d / s for d, s in zip(dense, samples[("sparse", f)])])
        row["realized"] = row["speedup"] / row["mac_ratio"]
        if "dense_nchw" in samples:
            row["dense_nchw_ms"] = 1e3 * _median(samples["dense_nchw"])
        if ("compare", f) in samples:
            row["compare_ms"] = 1e3 * _median(samples[("compare", f)])
            row["compare_speedup"] = _median([d / s for d, s in zip(dense, samples[("compare", f)])])
            row["compare_realized"] = row["compare_speedup"] / row["mac_ratio"]
    return rows


#: The graded speed measurement: network, image side, edited fraction.
SPEED_NET = {"channels": 64, "depth": 4, "size": 192, "tile": 8, "fraction": 0.02}


class AllocationWatch(TorchDispatchMode):
    """Watches every ATen op run inside it and records ``(op, shape, numel)`` of each tensor an op
    returns that shares no storage with the op's tensor arguments: a fresh allocation, not a view or
    an in-place write into an existing buffer. Timing-free evidence of full-size work."""

    def __init__(self):
        super().__init__()
        self.fresh: list[tuple[str, tuple, int]] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        inputs = set()
        for a in list(args) + list(kwargs.values()):
            for t in (a if isinstance(a, (list, tuple)) else [a]):
                if isinstance(t, torch.Tensor):
                    inputs.add(t.untyped_storage().data_ptr())
        for t in (out if isinstance(out, (list, tuple)) else [out]):
            if isinstance(t, torch.Tensor) and t.untyped_storage().data_ptr() not in inputs:
                self.fresh.append((str(func).replace("aten.", "").replace(".default", ""), tuple(t.shape), t.numel()))
        return out


#: ATen ops that touch only the elements they index, whatever the size of the tensor they index into
_INDEXED_OPS = frozenset({"index_select", "index", "index_put", "index_put_", "_index_put_impl_", "_unsafe_index",
                          "_unsafe_index_put", "index_copy", "index_copy_", "index_add", "index_add_", "index_fill",
                          "index_fill_", "gather", "scatter", "scatter_", "scatter_add", "scatter_add_", "take",
                          "put", "put_", "embedding"})


class FullPassWatch(TorchDispatchMode):
    """Watches every ATen op run inside it and records ``(op, shape)`` of each op that takes or
    returns a tensor of ``limit`` elements or more: a full-size pass, whether it allocates (a padded
    copy, a comparison) or not (an in-place ``copy_`` of a whole buffer, a ``fill_``, a reduction).
    Views (``permute``, ``view``, slicing) and indexed reads and writes (``index_select``,
    ``index_copy_``, advanced indexing) of a big tensor touch only what they index and are not
    recorded; a view op that copies instead (``reshape`` of a tensor it cannot view) is.
    Timing-free evidence of full-size work."""

    def __init__(self, limit: float):
        super().__init__()
        self.limit = limit
        self.passes: list[tuple[str, tuple]] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        name = func.overloadpacket.__name__
        if func.is_view:
            # a view op that had to copy (``reshape`` of a channels-last tensor into NCHW rows: under
            # inference mode it arrives whole, not as its clone) is a full-size pass like any copy
            src = next((a for a in args if isinstance(a, torch.Tensor)), None)
            if isinstance(out, torch.Tensor) and src is not None and out.numel() >= self.limit and \
                    out.untyped_storage().data_ptr() != src.untyped_storage().data_ptr():
                self.passes.append((name, tuple(out.shape)))
        else:
            # an indexed op may index into a big tensor (its first argument; its result when in place),
            # but not with a big index or a big source
            values = list(args[1:]) + list(kwargs.values()) if name in _INDEXED_OPS \
                else list(args) + list(kwargs.values()) + [out]
            seen = []
            for a in values:
                seen += [t for t in (a if isinstance(a, (list, tuple)) else [a]) if isinstance(t, torch.Tensor)]
            big = [t for t in seen if t.numel() >= self.limit]
            if big:
                self.passes.append((name, tuple(big[0].shape)))
        return out


def check_speedup(SparseConv2d, kernels, minimum: float = 2.5, repeats: int = 5, seed: int = 0) -> dict:
    """The graded performance test. ``conv_stack(64, depth=4)`` (four 3x3 convs, ReLUs between) on a
    192x192 image, run through the incremental engine with your class and kernels, for two
    different 2 % edits in turn. First, quickly and without timing: both edits and a return to the
    first must be exact (1e-5), execute at most half the dense MACs, and run no op that reads or
    writes a tensor of half an activation or more (``FullPassWatch``: no full-size pass, allocating
    or in place). Then ``repeats`` interleaved rounds,
    each timing the dense network and one run on each edit; the score is the median over rounds of
    that round's dense / sparse time, which must reach ``minimum``."""
    reuse_freed_memory()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        cfg = SPEED_NET
        g = torch.Generator().manual_seed(seed)
        torch.manual_seed(seed)
        runner = _call("SparseRunner(conv_stack, SparseConv2d, kernels=...)", SparseRunner,
                       conv_stack(cfg["channels"], cfg["depth"]), SparseConv2d, tile=cfg["tile"], kernels=kernels)
        x = torch.rand(1, 3, cfg["size"], cfg["size"], generator=g)
        _call("runner.full", runner.full, x)
        xa, xb = speed_edits(x, cfg["fraction"], g)
        for what, e in (("edit A", xa), ("edit B", xb), ("edit A again", xa)):
            got = _call("runner.sparse", runner.sparse, e)
            assert_close(f"speed test network, {what}: incremental vs dense", got, runner.dense(e))
        dense_macs, macs = runner.dense_macs(xa), runner.executed_macs(xb)
        assert_true(macs <= 0.5 * dense_macs,
                    f"a 2 % edit executed {macs / 1e6:.0f} M of the dense {dense_macs / 1e6:.0f} M "
                                              "MACs: the convs are not run on the active tiles only")
        limit = 0.5 * cfg["channels"] * cfg["size"] ** 2          # half of one activation of the network
        for what, e in (("edit B", xb), ("edit A", xa)):
            with FullPassWatch(limit) as watch:
                runner.sparse(e)
            big = watch.passes
            assert_true(not big, f"a sparse call at a 2 % edit ({what}) ran {len(big)} op(s) that read or write a "
                                 f"whole activation (half of one or more), e.g. {big[:3]}: a full-size pass (padding, "
                                 "copying or comparing a whole activation, an NCHW copy of a channels-last tensor, a "
                                 "copy of the cache, into a new tensor or in place into the out= buffer) costs more "
                                 "than the convs on the blocks; read and write the active tiles only")
        from ..bench import latency_rounds

        x_cl = x.contiguous(memory_format=torch.channels_last)
        with torch.no_grad():       # a round: the dense network once, then edit A and edit B (averaged)
            samples = latency_rounds({"dense": lambda: runner.dense(x_cl),
                                      "sparse A+B": lambda: (runner.sparse(xa), runner.sparse(xb))},
                                     repeats=repeats, number=1, warmup=1)
    finally:
        torch.set_num_threads(threads)
    sparse = [0.5 * t for t in samples["sparse A+B"]]
    ratios = [d / s for d, s in zip(samples["dense"], sparse)]
    row = {"speedup": _median(ratios), "dense_ms": 1e3 * _median(samples["dense"]),
           "sparse_ms": 1e3 * _median(sparse), "mac_ratio": dense_macs / max(macs, 1), "rounds": ratios}
    print(f"2 % edit: dense {row['dense_ms']:.1f} ms, sparse {row['sparse_ms']:.1f} ms -> speedup "
          f"{row['speedup']:.2f}x (median of {repeats} rounds; MAC ratio {row['mac_ratio']:.1f}x)")
    assert_true(row["speedup"] >= minimum, f"the incremental run is only {row['speedup']:.2f}x faster than dense at a "
                                           f"2 % edit; expected at least {minimum}x. Look for full-size copies or "
                                           "comparisons, Python loops over pixels or tiles, and per-tile convs.")
    passed(f"incremental run {row['speedup']:.1f}x faster than dense at a 2 % edit")
    return row


# ---------------------------------------------------------------------------------------------
# the speedup table of the lab (scripts/bench_lab5.py, `make bench`) builds on these

EXERCISES = ("incremental_conv", "active_tiles", "gather", "scatter", "SparseConv2d")


def load_exercises(notebook) -> dict:
    """``{name: object}`` for Lab 5's exercises, run from a notebook (a path, or its JSON as a dict):
    the solution or a learner's filled-in copy (``effcourse.learner.from_notebook``)."""
    from .. import learner

    return learner.from_notebook(notebook, EXERCISES)


def bench_table(after: dict, before: dict | None = None, fractions=(0.005, 0.012, 0.05, 0.10, 0.25), size: int = 256,
                repeats: int = 15, tile: int = 8) -> list[dict]:
    """One interleaved run at ``size`` x ``size`` (six 3x3 convs, 64 channels): the dense network,
    ``after`` (exercises from ``load_exercises``) through the incremental engine, and — when
    ``before`` is given — ``before``'s ``SparseConv2d`` on the compare-with-cache path (that is how
    the lab ran before the engine). Rows: edited %, MAC ratio, speedups, realized fractions, ms."""
    kernels = kernels_of(after["active_tiles"], after["gather"], after["scatter"])
    rows = measure_speedup(after["SparseConv2d"], kernels, fractions=fractions, size=size, repeats=repeats, tile=tile,
                           compare=before is not None, before_cls=(before or {}).get("SparseConv2d"))
    out = []
    for r in rows:
        row = {"edited %": r["edited_%"], "MAC ratio": r["mac_ratio"], "dense ms": r["dense_ms"],
               "dense ms (NCHW input)": r.get("dense_nchw_ms", float("nan")), "after ms": r["sparse_ms"],
               "after ×": r["speedup"], "after realized": r["realized"]}
        if "compare_speedup" in r:
            row.update({"before ms": r["compare_ms"], "before ×": r["compare_speedup"],
                        "before realized": r["compare_realized"]})
        row["max err"] = r["max_err"]
        out.append(row)
    return out
