"""Self-checks for Lab 5 (SIGE, spatially sparse incremental inference).

Small hand-worked examples and invariants only; the property tests on random inputs are hidden in
the notebook. Geometry used throughout: an output tile ``(i, j)`` of ``tile x tile`` pixels needs the
input block of side ``b = (tile - 1) * s + k`` whose top-left corner is ``(tile*s*i - p, tile*s*j - p)``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..bench import compare_latency
from ..sparse.engine import SparseRunner, reuse_freed_memory
from ..sparse.models import ResGenerator, conv_stack, randomize_batchnorm, square_edit
from .asserts import call, CheckFailed, assert_close, assert_shape, assert_true, check_tensor, passed


_call = call


def tile_set(tiles, name: str = "tiles") -> set[tuple[int, int]]:
    """The tiles as a set of ``(row, col)``; checks ``(n, 2)`` int64 and no duplicates."""
    tiles = check_tensor(name, tiles)
    assert_true(tiles.dim() == 2 and tiles.shape[1] == 2, f"{name}: expected shape (n, 2), got {tuple(tiles.shape)}")
    assert_true(tiles.dtype == torch.int64, f"{name}: expected dtype torch.int64 (a LongTensor), got {tiles.dtype}")
    out = {(int(a), int(b)) for a, b in tiles.tolist()}
    assert_true(len(out) == tiles.shape[0], f"{name}: {tiles.shape[0] - len(out)} duplicate tile(s); list each tile once")
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
    """Two 2x2 tiles written into a 5x5 zero cache; the tile at (2, 2) is clipped to one pixel."""
    cache = torch.zeros(1, 1, 5, 5)
    tiles = torch.tensor([[0, 0], [2, 2]])
    y_tiles = torch.tensor([[[1., 2.], [3., 4.]], [[5., 6.], [7., 8.]]])[:, None]
    got = _call("scatter", scatter, cache, y_tiles, tiles, 2)
    expected = torch.zeros(1, 1, 5, 5)
    expected[0, 0, :2, :2] = torch.tensor([[1., 2.], [3., 4.]])
    expected[0, 0, 4, 4] = 5.0
    assert_close("scatter(5x5 zeros, tiles [(0,0), (2,2)], tile=2)", got, expected)
    assert_true(bool((cache == 0).all()), "scatter wrote into y_cached: return a copy and leave the cache untouched")
    passed("scatter: tiles written, clipped at the image edge, cache untouched")


def _dense_conv(conv, x):
    with torch.no_grad():
        return conv(x)


def check_sparse_conv2d(SparseConv2d) -> None:
    """One 3x3 conv on a 13x11 image: full mode equals the conv; a corner edit and an empty edit in
    sparse mode equal the dense conv of the edited input."""
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
    passed("SparseConv2d: full mode, a corner edit and an empty edit match the dense conv")


def check_network(SparseConv2d, tile: int = 4) -> None:
    """A small residual generator (stride-2 conv, eval BatchNorm, residual blocks, upsampling, 1x1 conv)
    run incrementally must equal the dense network on the edited image."""
    g = torch.Generator().manual_seed(2)
    torch.manual_seed(2)
    model = randomize_batchnorm(ResGenerator(channels=6, n_blocks=1), g)
    runner = SparseRunner(model, SparseConv2d, tile=tile)
    x = torch.rand(1, 3, 33, 30, generator=g)
    runner.full(x)
    xe, _ = square_edit(x, 0.05, top=3, left=20, generator=g)
    assert_close("incremental run of a residual generator vs the dense network", runner.sparse(xe), runner.dense(xe))
    passed("SparseConv2d inside a residual generator: the incremental run equals the dense network")


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


def _alternate(fn, a, b):
    state = [0]

    def run():
        state[0] ^= 1
        return fn(a if state[0] else b)

    return run


def measure_speedup(SparseConv2d, kernels=None, fractions=(0.02,), channels: int = 64, depth: int = 6,
                    size: int = 256, tile: int = 8, repeats: int = 10, seed: int = 0, compare: bool = False,
                    warmup: int = 1) -> list[dict]:
    """Dense vs incremental run of ``conv_stack(channels, depth)`` on a ``size x size`` image, for two
    square edits (``speed_edits``) per fraction of ``fractions``, in one interleaved measurement.

    ``kernels`` (the learner's ``active_tiles``, ``gather``, ``scatter``) selects the incremental
    engine; None the compare-with-cache path (see ``effcourse.sparse.engine``). ``compare=True`` with
    kernels also times the compare-with-cache path (the *before* of the lab's table).
    Every round times the dense network (channels-last input, its faster layout here) and each
    sparse run; each sparse timing is the mean of one run on edit A and one on edit B. The speedup is
    the median over rounds of that round's dense / sparse time. Each row: ``edited_%``,
    ``mac_ratio`` (dense MACs / executed MACs), ``speedup``, ``realized`` (speedup / MAC ratio),
    ``dense_ms``, ``sparse_ms`` (medians), ``max_err`` (against the dense network, both edits),
    ``dense_nchw_ms`` (the dense network on the default layout) and, with ``compare``,
    ``compare_speedup``, ``compare_ms``, ``compare_realized``. One CPU thread (restored afterwards);
    freed memory is kept for reuse (``reuse_freed_memory``)."""
    reuse_freed_memory()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _measure(SparseConv2d, kernels, fractions, channels, depth, size, tile, repeats, seed, compare, warmup)
    finally:
        torch.set_num_threads(threads)


def _median(v):
    v = sorted(v)
    n = len(v)
    return v[n // 2] if n % 2 else 0.5 * (v[n // 2 - 1] + v[n // 2])


def _measure(SparseConv2d, kernels, fractions, channels, depth, size, tile, repeats, seed, compare, warmup):
    from ..bench import latency_rounds

    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    net = conv_stack(channels, depth)
    runner = SparseRunner(net, SparseConv2d, tile=tile, kernels=kernels)
    x = torch.rand(1, 3, size, size, generator=g)
    runner.full(x)
    before = SparseRunner(net, SparseConv2d, tile=tile) if compare and kernels is not None else None
    if before is not None:
        before.full(x)
    x_cl = x.contiguous(memory_format=torch.channels_last)
    edits = {f: speed_edits(x, f, g) for f in fractions}
    rows = []
    fns = {"dense": lambda: runner.dense(x_cl)}
    if compare:
        fns["dense_nchw"] = lambda: runner.dense(x)
    for f, (xa, xb) in edits.items():
        err = max((runner.sparse(e) - runner.dense(e)).abs().max().item() for e in (xa, xb, xa))
        dense_macs = runner.dense_macs(xa)
        macs = 0.5 * (runner.executed_macs(xa) + runner.executed_macs(xb))
        rows.append({"edited_%": 100 * f, "mac_ratio": dense_macs / max(macs, 1), "max_err": err,
                     "dense_macs": dense_macs, "executed_macs": macs})
        fns[("sparse", f)] = _alternate(runner.sparse, xa, xb)
        if before is not None:
            fns[("compare", f)] = _alternate(before.sparse, xa, xb)
    with torch.no_grad():
        samples = latency_rounds(fns, repeats=repeats, number=2, warmup=max(2 * warmup, 0))
    dense = samples["dense"]
    for row, f in zip(rows, edits):
        row["dense_ms"] = 1e3 * _median(dense)
        row["sparse_ms"] = 1e3 * _median(samples[("sparse", f)])
        row["speedup"] = _median([d / s for d, s in zip(dense, samples[("sparse", f)])])
        row["realized"] = row["speedup"] / row["mac_ratio"]
        if compare:
            row["dense_nchw_ms"] = 1e3 * _median(samples["dense_nchw"])
        if before is not None:
            row["compare_ms"] = 1e3 * _median(samples[("compare", f)])
            row["compare_speedup"] = _median([d / s for d, s in zip(dense, samples[("compare", f)])])
            row["compare_realized"] = row["compare_speedup"] / row["mac_ratio"]
    return rows


def check_speedup(SparseConv2d, minimum: float = 2.0, repeats: int = 10) -> dict:
    """The graded performance test: at a 2 % edit of a 256x256 image, a stack of six 3x3 convs (64
    channels) run incrementally must be exact and at least ``minimum`` times faster than the dense
    network, end to end (change detection included), median of ``repeats`` interleaved runs."""
    row = measure_speedup(SparseConv2d, fractions=(0.02,), repeats=repeats)[0]
    print(f"2 % edit: dense {row['dense_ms']:.1f} ms, sparse {row['sparse_ms']:.1f} ms -> speedup "
          f"{row['speedup']:.2f}x (MAC ratio {row['mac_ratio']:.1f}x), max error {row['max_err']:.2g}")
    assert_true(row["max_err"] <= 1e-5, f"the incremental run is not exact: max error {row['max_err']:.3g} "
                                        "against the dense network (tolerance 1e-5)")
    assert_true(row["speedup"] >= minimum, f"the incremental run is only {row['speedup']:.2f}x faster than dense at a "
                                           f"2 % edit; expected at least {minimum}x. Look for full-size copies, "
                                           "Python loops over pixels or per-tile convs.")
    passed(f"incremental run {row['speedup']:.1f}x faster than dense at a 2 % edit")
    return row
