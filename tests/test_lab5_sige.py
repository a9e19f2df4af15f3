"""Lab 5 (SIGE): the plumbing in effcourse.sparse, effcourse.data.photos and effcourse.checks.lab5
(fast, no notebook), then the QUICK solution run's recorded claims and the nbgrader round trip.

The incremental engine needs a correct sparse conv and kernels; the tests take the solution's
(``lab5.load_exercises`` runs the exercise cells of the solution notebook), plus small test doubles.
"""
import functools

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import harness
from effcourse.checks import CheckFailed, lab5
from effcourse.data.photos import PHOTOS, load_photo
from effcourse.sparse.engine import SparseRunner, convert, resolution_masks, set_mode
from effcourse.sparse.models import (EncoderDecoder, ResGenerator, conv_stack, edit_mask, randomize_batchnorm,
                                     square_edit, tile_images)
from effcourse.sparse.surgery import FrozenNorm, ZeroStuff, transposed_as_conv

LAB = "lab5_sige"
pytestmark = pytest.mark.xdist_group(LAB)


@functools.lru_cache(maxsize=None)
def solution() -> dict:
    """The solution's exercises, run from the solution notebook."""
    return lab5.load_exercises(harness.solution_path(LAB))


def kernels() -> dict:
    s = solution()
    return lab5.kernels_of(s["active_tiles"], s["gather"], s["scatter"])


# ------------------------------------------------------------------ test doubles (the tests need *a* correct one)

class BoxSparseConv(nn.Module):
    """A correct but simple sparse conv for the compare path: recompute the bounding box of the
    changed pixels' reach."""

    def __init__(self, conv, tile=8):
        super().__init__()
        self.conv, self.tile, self.mode = conv, tile, "full"
        self.x = self.y = None

    def forward(self, x):
        if self.mode == "full":
            self.x, self.y = x, self.conv(x)
            return self.y
        changed = (x != self.x).any(1).any(0)
        if not changed.any():
            return self.y.clone()
        k, s, p = self.conv.kernel_size[0], self.conv.stride[0], self.conv.padding[0]
        rows, cols = changed.any(1).nonzero()[:, 0], changed.any(0).nonzero()[:, 0]
        Ho, Wo = self.y.shape[-2:]
        r0, r1 = max(0, -(-(int(rows[0]) + p - k + 1) // s)), min(Ho - 1, (int(rows[-1]) + p) // s)
        c0, c1 = max(0, -(-(int(cols[0]) + p - k + 1) // s)), min(Wo - 1, (int(cols[-1]) + p) // s)
        xp = F.pad(x, (p, p, p, p))
        crop = xp[..., r0 * s:r1 * s + k, c0 * s:c1 * s + k]
        out = self.y.clone()
        out[..., r0:r1 + 1, c0:c1 + 1] = F.conv2d(crop, self.conv.weight, self.conv.bias, s)
        return out


def _tiles_brute(m, k, s, p, t):
    H, W = m.shape
    nh, nw = -(-((H + 2 * p - k) // s + 1) // t), -(-((W + 2 * p - k) // s + 1) // t)
    b = (t - 1) * s + k
    out = [(i, j) for i in range(nh) for j in range(nw)
           if m[max(t * s * i - p, 0):max(t * s * i - p + b, 0), max(t * s * j - p, 0):max(t * s * j - p + b, 0)].any()]
    return torch.tensor(out, dtype=torch.long).reshape(-1, 2)


def _gather_pad(x, tiles, k, s, p, t):
    b = (t - 1) * s + k
    xp = F.pad(x, (p, p + s + b, p, p + s + b))
    out = [xp[i, :, t * s * r:t * s * r + b, t * s * c:t * s * c + b]
           for i in range(x.shape[0]) for r, c in tiles.tolist()]
    return torch.stack(out) if out else x.new_zeros(0, x.shape[1], b, b)


def _scatter_loop(y, yt, tiles, t, out=None):
    out = y.clone() if out is None else out
    n = len(tiles)
    for i in range(y.shape[0]):
        for j, (r, c) in enumerate(tiles.tolist()):
            blk = out[i, :, t * r:t * r + t, t * c:t * c + t]
            blk.copy_(yt[i * n + j, :, :blk.shape[1], :blk.shape[2]])
    return out


DOUBLES = {"active_tiles": _tiles_brute, "gather": _gather_pad, "scatter": _scatter_loop}


# ------------------------------------------------------------------ conversion

def test_convert_replaces_every_conv_and_keeps_the_rest():
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(inplace=True), nn.BatchNorm2d(4),
                          nn.Sequential(nn.Conv2d(4, 4, 1), nn.Upsample(scale_factor=2)))
    model.train()
    out = convert(model, BoxSparseConv, tile=4)
    assert out is model
    assert isinstance(model[0], BoxSparseConv) and isinstance(model[3][0], BoxSparseConv)
    assert model[0].tile == 4
    assert model[1].inplace is False, "in-place activations would overwrite a conv's cache"
    assert not any(m.training for m in model.modules())
    set_mode(model, "sparse", BoxSparseConv)
    assert model[0].mode == model[3][0].mode == "sparse"
    with pytest.raises(ValueError, match="unknown mode"):
        set_mode(model, "dense", BoxSparseConv)


@pytest.mark.parametrize("layer, words", [
    (nn.InstanceNorm2d(4), ["'1'", "InstanceNorm2d", "whole image", "norms='reuse'"]),
    (nn.GroupNorm(2, 4), ["GroupNorm", "norms='reuse'"]),
    (nn.LayerNorm([4, 8, 8]), ["LayerNorm", "whole image"]),
    (nn.AdaptiveAvgPool2d(1), ["AdaptiveAvgPool2d"]),
    (nn.Conv2d(4, 4, 3, padding=2, dilation=2), ["dilation"]),
    (nn.Conv2d(4, 4, 3, padding=1, padding_mode="reflect"), ["padding_mode"]),
    (nn.Conv2d(4, 4, (3, 1), padding=(1, 0)), ["non-square kernel_size"]),
    (nn.Conv2d(4, 4, 3, padding="same"), ["padding='same'"]),
    (nn.ConvTranspose2d(4, 4, 3, 2, padding=3), ["padding 3 > kernel_size - 1"]),
])
def test_convert_names_unsupported_layers(layer, words):
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), layer)
    with pytest.raises(ValueError) as err:
        convert(model, BoxSparseConv)
    for w in words:
        assert w in str(err.value), str(err.value)


def test_convert_rejects_bad_arguments():
    with pytest.raises(TypeError, match="nn.Module subclass"):
        convert(conv_stack(4, 2), lambda conv, tile: conv)
    with pytest.raises(ValueError, match="tile"):
        convert(conv_stack(4, 2), BoxSparseConv, tile=0)
    with pytest.raises(ValueError, match="norms"):
        convert(conv_stack(4, 2), BoxSparseConv, norms="approximate")


@pytest.mark.parametrize("k, s, p, op, groups", [(3, 2, 1, 1, 1), (2, 2, 0, 0, 1), (4, 2, 1, 0, 2), (3, 1, 1, 0, 1),
                                                 (5, 3, 2, 2, 1)])
def test_transposed_conv_equals_zero_stuffing_and_a_conv(k, s, p, op, groups):
    torch.manual_seed(0)
    deconv = nn.ConvTranspose2d(4, 6, k, s, p, output_padding=op, groups=groups)
    seq = transposed_as_conv(deconv)
    assert isinstance(seq[0], ZeroStuff) and isinstance(seq[1], nn.Conv2d) and seq[1].stride == (1, 1)
    x = torch.randn(2, 4, 7, 5)
    with torch.no_grad():
        torch.testing.assert_close(seq(x), deconv(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("norm", [nn.InstanceNorm2d(6), nn.InstanceNorm2d(6, affine=True), nn.GroupNorm(3, 6),
                                  nn.GroupNorm(1, 6, affine=False)])
def test_frozen_norm_measures_in_full_mode_and_reuses_in_sparse_mode(norm):
    torch.manual_seed(0)
    if getattr(norm, "weight", None) is not None:
        with torch.no_grad():
            norm.weight.uniform_(0.5, 1.5)
            norm.bias.normal_()
    frozen = FrozenNorm(norm)
    x = torch.randn(2, 6, 5, 7) * 3 + 1
    torch.testing.assert_close(frozen(x), norm(x), rtol=1e-5, atol=1e-5)
    frozen.mode = "sparse"
    x2 = x.clone()
    x2[..., :2, :2] += 5.0
    reused = frozen(x2)
    torch.testing.assert_close(reused[..., 2:, 2:], norm(x)[..., 2:, 2:], rtol=1e-5, atol=1e-5)   # pixel-local
    assert not torch.allclose(reused, norm(x2), atol=1e-3)             # the statistics are the original image's
    # pieces of the batch in image-major order (tiles: 3 per image) get their own image's statistics
    tiles = torch.cat([x[:1, :, :2, :2]] * 3 + [x[1:, :, :2, :2]] * 3)
    torch.testing.assert_close(frozen(tiles)[3:4], norm(x)[1:, :, :2, :2], rtol=1e-5, atol=1e-5)
    with pytest.raises(TypeError):
        FrozenNorm(nn.BatchNorm2d(3))


# ------------------------------------------------------------------ the compare-with-cache path

def test_runner_errors_are_clear():
    runner = SparseRunner(conv_stack(4, 3), BoxSparseConv, tile=4)
    x = torch.rand(1, 3, 16, 16)
    with pytest.raises(RuntimeError, match="before any full run"):
        runner.sparse(x)
    runner.full(x)
    with pytest.raises(ValueError, match=r"shape \(1, 3, 16, 17\).*\(1, 3, 16, 16\)"):
        runner.sparse(torch.rand(1, 3, 16, 17))
    with pytest.raises(ValueError, match="dtype"):
        runner.sparse(x.double())
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        runner.full(torch.rand(3, 16, 16))
    runner.model.train()
    with pytest.raises(RuntimeError, match="training mode"):
        runner.full(x)
    with pytest.raises(ValueError, match="missing or not callable"):
        SparseRunner(conv_stack(4, 3), BoxSparseConv, kernels={"active_tiles": _tiles_brute})
    with pytest.raises(ValueError, match="needs the incremental engine"):
        SparseRunner(conv_stack(4, 3), BoxSparseConv, masks="per_resolution")


def test_compare_path_is_exact_through_a_residual_generator_and_macs_fall():
    gen = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    runner = SparseRunner(randomize_batchnorm(ResGenerator(8, 2), gen), BoxSparseConv)
    x = torch.rand(2, 3, 37, 30, generator=gen)
    y0 = runner.full(x)
    torch.testing.assert_close(y0, runner.dense(x))
    x_before = x.clone()
    x[:, :, 0, 0] = 5.0                                            # editing the caller's tensor in place is safe
    torch.testing.assert_close(runner.sparse(x_before), y0, rtol=0, atol=0)
    macs = []
    for frac in (0.01, 0.05, 0.3):
        xe, _ = square_edit(x_before, frac, top=0, left=1, generator=gen)
        torch.testing.assert_close(runner.sparse(xe), runner.dense(xe), rtol=1e-5, atol=1e-5)
        macs.append(runner.executed_macs(xe))
    assert macs[0] < macs[1] < macs[2] < runner.dense_macs(x_before)
    masks = runner.changed_masks(square_edit(x_before, 0.05, generator=gen)[0])
    assert [n for n, _, _ in masks] == [n for n, _ in runner.layers]
    assert masks[0][2].shape == (37, 30) and masks[0][2].dtype == torch.bool
    assert masks[2][2].shape == (19, 15)                           # after the stride-2 conv


def test_dense_model_is_untouched():
    model = conv_stack(4, 3)
    runner = SparseRunner(model, BoxSparseConv)
    assert all(type(m) is not BoxSparseConv for m in model.modules())
    assert runner.dense_model is model


# ------------------------------------------------------------------ the incremental engine

def _edit_sequence(x, gen):
    """Edits in a row: growing, shrinking, disjoint, the border, one image only, everything, none."""
    H, W = x.shape[-2:]
    patch = torch.rand(x.shape, generator=gen)
    for r, c, h, w, img in [(H // 2, W // 3, 3, 3, None), (H // 2 - 2, W // 3 - 2, 9, 8, None),
                            (H // 2, W // 3, 2, 2, None),
                            (1, W - 6, 4, 5, None), (H - 3, W - 2, 3, 2, None), (2, 2, 4, 4, -1), (0, 0, H, W, None),
                            (0, 0, 0, 0, None)]:
        xe = x.clone()
        sl = (slice(None) if img is None else slice(img, None), slice(None), slice(r, r + h), slice(c, c + w))
        xe[sl] = patch[sl]
        yield f"edit at ({r}, {c}) size {h}x{w}" + ("" if img is None else " in the last image"), xe


@pytest.mark.parametrize("name, make, shape, tile", [
    ("conv stack", lambda g: conv_stack(6, 4), (2, 3, 29, 34), 4),
    ("residual generator (stride 2, BN, residual, upsample, skip pad)",
     lambda g: randomize_batchnorm(ResGenerator(8, 2), g),
     (2, 3, 37, 30), 4),
    ("residual generator, tile 8", lambda g: randomize_batchnorm(ResGenerator(6, 1), g), (1, 3, 33, 41), 8),
    ("stride-2 conv, 1x1 conv, max pool, bilinear up, cat",
     lambda g: _Mixed(), (2, 3, 24, 26), 3),
])
def test_engine_is_exact_over_sequences_of_edits(name, make, shape, tile):
    gen = torch.Generator().manual_seed(1)
    torch.manual_seed(1)
    runner = SparseRunner(make(gen), solution()["SparseConv2d"], tile=tile, kernels=kernels())
    x = torch.rand(*shape, generator=gen)
    y0 = runner.full(x)
    torch.testing.assert_close(y0, runner.dense(x), rtol=1e-5, atol=1e-5)
    for what, xe in _edit_sequence(x, gen):
        torch.testing.assert_close(runner.sparse(xe), runner.dense(xe), rtol=1e-5, atol=1e-5, msg=f"{name}: {what}")
    torch.testing.assert_close(runner.sparse(x.clone()), y0, rtol=1e-6, atol=1e-6)


class _Mixed(nn.Module):
    """Ops beyond the lab's generators: a stride-2 conv, pooling and bilinear resampling (run densely),
    channel concatenation and a residual with a scaled branch (pixel-local)."""

    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(3, 4, 3, padding=1)
        self.down = nn.Conv2d(4, 4, 3, stride=2, padding=1)
        self.pool = nn.MaxPool2d(3, stride=1, padding=1)
        self.b = nn.Conv2d(8, 3, 1)

    def forward(self, x):
        h = torch.relu(self.a(x))
        d = self.pool(self.down(h))
        u = F.interpolate(d, size=h.shape[-2:], mode="bilinear", align_corners=False)
        return x + 0.5 * torch.tanh(self.b(torch.cat([h, u], dim=1)))


def test_engine_with_reused_norms_matches_the_compare_path_on_the_trained_generator_shape():
    torch.manual_seed(2)
    net = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.InstanceNorm2d(8), nn.ReLU(),
                        nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.GroupNorm(4, 16, affine=True), nn.ReLU(),
                        nn.ConvTranspose2d(16, 8, 3, stride=2, padding=1, output_padding=1), nn.InstanceNorm2d(8),
                        nn.ReLU(), nn.Conv2d(8, 1, 3, padding=1), nn.Tanh()).eval()
    S = solution()["SparseConv2d"]
    eng = SparseRunner(net, S, tile=4, kernels=kernels(), norms="reuse")
    cmp_ = SparseRunner(net, S, tile=4, norms="reuse")
    x = torch.rand(2, 1, 32, 28)
    torch.testing.assert_close(eng.full(x), net(x), rtol=1e-4, atol=1e-4)
    cmp_.full(x)
    for what, xe in _edit_sequence(x, torch.Generator().manual_seed(3)):
        torch.testing.assert_close(eng.sparse(xe), cmp_.sparse(xe), rtol=1e-5, atol=1e-5, msg=what)


def test_engine_counts_fewer_macs_and_reports_its_masks():
    torch.manual_seed(0)
    S = solution()["SparseConv2d"]
    runner = SparseRunner(randomize_batchnorm(ResGenerator(8, 2)), S, tile=4, kernels=kernels())
    x = torch.rand(1, 3, 48, 40)
    runner.full(x)
    macs = [runner.executed_macs(square_edit(x, f, top=5, left=6)[0]) for f in (0.01, 0.05, 0.3)]
    assert macs[0] < macs[1] < macs[2] < runner.dense_macs(x)
    masks = runner.changed_masks(square_edit(x, 0.02, top=10, left=10)[0])
    assert [n for n, _, _ in masks] == [n for n, _ in runner.layers]
    first, second = masks[0][2], masks[1][2]
    assert first.shape == (48, 40) and first.dtype == torch.bool and int(first.sum()) == 36    # the edit: 6x6
    assert second.shape == (48, 40) and int(second.sum()) == 64                               # its reach: 8x8


def test_per_resolution_masks_are_approximate_and_cheaper():
    torch.manual_seed(0)
    S = solution()["SparseConv2d"]
    net = randomize_batchnorm(ResGenerator(8, 3))
    x = torch.rand(1, 3, 64, 64)
    exact = SparseRunner(net, S, tile=4, kernels=kernels())
    sige = SparseRunner(net, S, tile=4, kernels=kernels(), masks="per_resolution", dilation=1)
    exact.full(x)
    sige.full(x)
    xe, _ = square_edit(x, 0.02, top=20, left=30)
    assert sige.executed_macs(xe) < exact.executed_macs(xe)
    assert (sige.sparse(xe) - exact.dense(xe)).abs().max() > 1e-4          # changes beyond the masks are dropped
    m = resolution_masks(torch.zeros(8, 8, dtype=torch.bool).index_put_((torch.tensor([3]), torch.tensor([4])),
                                                                         torch.tensor(True)), [(8, 8), (4, 4)], 1)
    assert int(m[(8, 8)].sum()) == 9 and bool(m[(4, 4)][1, 2])


def test_engine_refuses_unknown_ops_and_shared_convs():
    S = solution()["SparseConv2d"]

    class Global(nn.Module):
        def __init__(self):
            super().__init__()
            self.c = nn.Conv2d(3, 3, 3, padding=1)

        def forward(self, x):
            return self.c(x) - x.mean(dim=(2, 3), keepdim=True)

    runner = SparseRunner(Global(), S, kernels=kernels())
    with pytest.raises(ValueError, match="not known to be pixel-local"):
        runner.full(torch.rand(1, 3, 8, 8))

    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.c = nn.Conv2d(3, 3, 3, padding=1)

        def forward(self, x):
            return self.c(self.c(x))

    with pytest.raises(ValueError, match="more than once"):
        SparseRunner(Twice(), S, kernels=kernels())


def test_encoder_decoder_and_tile_images():
    class G(nn.Module):
        def __init__(self):
            super().__init__()
            self.down, self.blocks, self.up = nn.Conv2d(1, 2, 1), nn.ModuleList([nn.Identity()]), nn.Conv2d(2, 1, 1)

    g = G().eval()
    x = torch.rand(1, 1, 4, 4)
    torch.testing.assert_close(EncoderDecoder(g)(x), g.up(g.down(x)))
    with pytest.raises(TypeError, match="down"):
        EncoderDecoder(nn.Conv2d(1, 1, 1))
    imgs = torch.arange(6.0).view(6, 1, 1, 1).expand(6, 1, 2, 2)
    pic = tile_images(imgs, 2, 3)
    assert pic.shape == (1, 1, 4, 6) and pic[0, 0, 2, 4] == 5 and pic[0, 0, 0, 2] == 1


# ------------------------------------------------------------------ models, photos

def test_models_and_edits():
    y = ResGenerator(4, 1)(torch.rand(1, 3, 21, 18))
    assert y.shape == (1, 3, 22, 18)
    assert len([m for m in conv_stack(8, 5).modules() if isinstance(m, nn.Conv2d)]) == 5
    x = torch.zeros(2, 3, 40, 50)
    xe, (top, left, side) = square_edit(x, 0.02, generator=torch.Generator().manual_seed(0))
    assert side == round((0.02 * 2000) ** 0.5)
    changed = (xe != x).any(1).any(0)
    assert torch.equal(changed, edit_mask((40, 50), top, left, side))
    assert torch.equal(x, torch.zeros(2, 3, 40, 50))
    with pytest.raises(ValueError, match="fraction"):
        square_edit(x, 1.5)


def test_photos():
    for name in PHOTOS:
        img = load_photo(name, 64)
        assert img.shape == (3, 64, 64) and img.dtype == torch.float32
        assert 0.0 <= img.min() and img.max() <= 1.0 and img.std() > 0.05
    with pytest.raises(ValueError, match="unknown photo"):
        load_photo("mona_lisa")


# ------------------------------------------------------------------ public self-checks accept right and reject wrong

def test_checks_accept_correct_answers():
    lab5.check_active_tiles(_tiles_brute)
    lab5.check_gather(_gather_pad)
    lab5.check_scatter(_scatter_loop)
    s = solution()
    lab5.check_sparse_conv2d(s["SparseConv2d"])
    lab5.check_network(s["SparseConv2d"], DOUBLES)
    lab5.check_network(s["SparseConv2d"], kernels())
    lab5.check_incremental_conv(lambda conv, xo, yo, xn: yo + F.conv2d(xn - xo, conv.weight, None, conv.stride,
                                                                         conv.padding))


def test_checks_reject_typical_mistakes():
    def tiles_without_halo(m, k, s, p, t):
        return _tiles_brute(m, 1, s, 0, t)

    def gather_without_padding_offset(x, tiles, k, s, p, t):
        return _gather_pad(x, tiles, k, s, 0, t)

    def scatter_in_place(y, yt, tiles, t, out=None):
        out = _scatter_loop(y, yt, tiles, t)
        y.copy_(out)
        return y

    def scatter_ignoring_out(y, yt, tiles, t, out=None):
        return _scatter_loop(y, yt, tiles, t)

    with pytest.raises(CheckFailed, match="expected tiles"):
        lab5.check_active_tiles(tiles_without_halo)
    with pytest.raises(CheckFailed, match="differ"):
        lab5.check_gather(gather_without_padding_offset)
    with pytest.raises(CheckFailed, match="cache untouched"):
        lab5.check_scatter(scatter_in_place)
    with pytest.raises(CheckFailed, match="the buffer after the call"):
        lab5.check_scatter(scatter_ignoring_out)
    with pytest.raises(CheckFailed, match="bias|differ"):
        lab5.check_incremental_conv(lambda conv, xo, yo, xn: yo + conv(xn - xo))
    with pytest.raises(CheckFailed, match="duplicate"):
        lab5.tile_set(torch.tensor([[0, 0], [0, 0]]))
    with pytest.raises(CheckFailed):                               # no changed=/out=/epilogue= support
        lab5.check_sparse_conv2d(BoxSparseConv)


def test_measure_speedup_rows_and_one_thread_restored():
    torch.set_num_threads(1)
    s = solution()
    rows = lab5.measure_speedup(s["SparseConv2d"], kernels(), fractions=(0.02, 0.2), channels=4, depth=3, size=48,
                                repeats=1, compare=(0.02,))
    assert [round(r["edited_%"]) for r in rows] == [2, 20]
    assert rows[0]["mac_ratio"] > rows[1]["mac_ratio"] > 1
    assert all(r["max_err"] <= 1e-5 for r in rows)
    assert "compare_speedup" in rows[0] and "compare_speedup" not in rows[1]
    assert torch.get_num_threads() == 1
    table = lab5.bench_table(s, s, fractions=(0.05,), size=40, repeats=1)
    assert set(table[0]) >= {"edited %", "MAC ratio", "after ×", "before ×", "after realized", "before realized"}


def test_speed_edits_differ_and_stay_inside():
    x = torch.rand(1, 3, 64, 64)
    a, b = lab5.speed_edits(x, 0.02)
    ma, mb = (a != x).any(1)[0], (b != x).any(1)[0]
    assert ma.sum() == mb.sum() == round((0.02 * 64 * 64) ** 0.5) ** 2
    assert not torch.equal(ma, mb)


# ------------------------------------------------------------------ the judge's helpers and the full-pass watch

def test_full_pass_watch_sees_in_place_and_allocating_passes_but_not_indexed_ones():
    cache = torch.rand(1, 8, 16, 16).contiguous(memory_format=torch.channels_last)
    buf = cache.clone(memory_format=torch.channels_last)
    rows = torch.tensor([3, 70, 200])
    limit = 0.5 * cache.numel()
    with lab5.FullPassWatch(limit) as watch:                       # what the engine and the solution do
        view = buf.permute(0, 2, 3, 1).view(-1, 8)
        picked = cache.permute(0, 2, 3, 1).reshape(-1, 8).index_select(0, rows)
        view.index_copy_(0, rows, picked + 1)
        buf[:, :, 2:4, 5:9] = cache[:, :, 2:4, 5:9]
        _ = cache[:, :, torch.tensor([1, 2]), torch.tensor([3, 4])]
    assert watch.passes == [], watch.passes
    for name, fn in {"copy_": lambda: buf.copy_(cache), "clone": lambda: cache.clone(), "ne": lambda: buf != cache,
                     "fill_": lambda: buf.fill_(0.0), "sum": lambda: cache.sum(),
                     "pad": lambda: F.pad(cache, (1, 1, 1, 1))}.items():
        with lab5.FullPassWatch(limit) as watch:
            fn()
        assert watch.passes, f"{name} was not seen"


def test_check_speedup_fails_a_layer_that_copies_the_cache_into_out():
    s = solution()

    class CopiesTheCache(s["SparseConv2d"]):
        def forward(self, x, changed=None, out=None, epilogue=None):
            if self.mode == "sparse" and out is not None:
                out.copy_(self.y_cache)                          # issue 24: a full in-place pass, no allocation
            return super().forward(x, changed=changed, out=out, epilogue=epilogue)

    with pytest.raises(CheckFailed, match="read or write a whole activation"):
        lab5.check_speedup(CopiesTheCache, kernels(), repeats=1)


def test_public_test_helpers():
    x = torch.rand(2, 3, 5, 7)
    for layout in lab5.LAYOUTS:
        y = lab5.with_layout(x, layout)
        assert torch.equal(y, x) and y.data_ptr() != x.data_ptr()
    assert lab5.with_layout(x, "channels-last").is_contiguous(memory_format=torch.channels_last)
    assert not lab5.with_layout(x, "transposed view").is_contiguous()
    with pytest.raises(ValueError, match="unknown layout"):
        lab5.with_layout(x, "nhwc")
    epi = lab5.ToyEpilogue(3)
    assert not epi.training and not epi.bn.training
    y = torch.randn(2, 3, 4, 4)
    torch.testing.assert_close(epi(y), torch.relu(y / (1 + 1e-5) ** 0.5) * 2 + 0.5)
    assert lab5.toy_decoder()(torch.rand(1, 3, 8, 6)).shape == (1, 3, 8, 6)
    out, macs = lab5.macs_of_call(nn.Conv2d(3, 4, 3, padding=1), torch.rand(1, 3, 5, 5))
    assert out.shape == (1, 4, 5, 5) and macs == 4 * 3 * 9 * 25


# ------------------------------------------------------------------ the notebook

# a plausible mistake: tiles from the changed pixels alone, forgetting the halo and the padding shift
WRONG_ACTIVE_TILES = '''def active_tiles(changed, kernel_size, stride, padding, tile):
    """Tiles holding a changed pixel (wrong: no halo)."""
    H, W = changed.shape
    Ho = (H + 2 * padding - kernel_size) // stride + 1
    Wo = (W + 2 * padding - kernel_size) // stride + 1
    step = tile * stride
    nh, nw = -(-Ho // tile), -(-Wo // tile)
    m = torch.nn.functional.pad(changed[None, None].float(), (0, nw * step, 0, nh * step))
    hit = torch.nn.functional.max_pool2d(m, step, step)[0, 0, :nh, :nw]
    return hit.nonzero()
'''


@pytest.mark.notebook
def test_recorded_claims():
    rec = harness.records(LAB)
    assert rec["exact_max_err"] <= 1e-5
    assert rec["speedup_2pct"] >= 3.0, rec["speedup_2pct"]
    assert rec["macs_ratio_1p2pct"] >= 30.0, rec["macs_ratio_1p2pct"]
    areas, mac_ratios, speedups = zip(*rec["speedup_vs_area"])
    assert list(areas) == [0.5, 1.2, 5.0, 10.0, 25.0]
    assert all(a > b for a, b in zip(mac_ratios, mac_ratios[1:])), mac_ratios
    # the engine realises up to ~0.7 of the MAC ratio at 25 %: far above it means a broken measurement, a little
    # is timing noise on a loaded machine
    assert all(s <= 1.5 * m for s, m in zip(speedups, mac_ratios)), \
        "a speedup far above the MAC ratio means a broken measurement"
    # the engine beats the compare-with-cache design it replaced (robust: 2x apart even on a busy machine)
    assert rec["speedup_1p2pct"] > 1.5 * rec["compare_speedup_1p2pct"], \
        (rec["speedup_1p2pct"], rec["compare_speedup_1p2pct"])
    # the engine's fixed cost: at 1.2 % the reference realises 0.4-0.7 of the MAC ratio; a floor that holds
    # on a loaded 2-core machine in QUICK mode (a ratio of one run, never a wall-clock time)
    assert rec["realized_1p2pct"] > 0.25, rec["realized_1p2pct"]
    assert 0.0 < rec["fixed_cost_share"] < 1.0
    # normalisation: reusing statistics is an approximation, recomputing them moves far-away pixels
    assert 1e-3 < rec["norm_reuse_max_err_1digit"] < 0.5
    assert rec["norm_reuse_psnr_1digit"] > 25.0
    assert rec["norm_recompute_moves_outside_1digit"] > 1.0
    # the trained generator: the engine equals the reused-statistics network; SIGE's masks cost fewer MACs
    assert rec["gen_engine_err_vs_reuse"] <= 1e-4
    assert rec["gen_macs_ratio_per_resolution"] > 1.5 * rec["gen_macs_ratio_reach"] > 1.5
    # the prose's halving claim: a one-pixel edit vanishes from the engine's 1/4-resolution mask, not from
    # SIGE's step-by-step halving (if the engine is changed to halve like SIGE, update section 10's prose)
    assert rec["per_res_one_pixel_quarter_engine"] == 0 and rec["per_res_one_pixel_quarter_sige"] >= 1, rec


@pytest.mark.notebook
def test_nbgrader_roundtrip():
    harness.check_roundtrip(LAB, "active_tiles", WRONG_ACTIVE_TILES,
                            loses={"test_active_tiles", "test_sparse_conv2d", "test_sparse_network",
                                   "test_sparse_speed"})
