"""Lab 5 (SIGE): the plumbing in effcourse.sparse, effcourse.data.photos and effcourse.checks.lab5
(fast, no notebook), then the QUICK solution run's recorded claims and the nbgrader round trip."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import harness
from effcourse.checks import CheckFailed, lab5
from effcourse.data.photos import PHOTOS, load_photo
from effcourse.sparse import engine
from effcourse.sparse.engine import SparseRunner, convert, set_mode
from effcourse.sparse.models import ResGenerator, conv_stack, edit_mask, randomize_batchnorm, square_edit

LAB = "lab5_sige"
pytestmark = pytest.mark.xdist_group(LAB)


# ------------------------------------------------------------------ test doubles (the tests need *a* correct one)

class BoxSparseConv(nn.Module):
    """A correct but simple sparse conv: recompute the bounding box of the changed pixels' reach."""

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
    out = [xp[i, :, t * s * r:t * s * r + b, t * s * c:t * s * c + b] for i in range(x.shape[0]) for r, c in tiles.tolist()]
    return torch.stack(out)


def _scatter_loop(y, yt, tiles, t):
    out = y.clone()
    n = len(tiles)
    for i in range(y.shape[0]):
        for j, (r, c) in enumerate(tiles.tolist()):
            blk = out[i, :, t * r:t * r + t, t * c:t * c + t]
            blk.copy_(yt[i * n + j, :, :blk.shape[1], :blk.shape[2]])
    return out


# ------------------------------------------------------------------ engine

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
    (nn.InstanceNorm2d(4), ["'1'", "InstanceNorm2d", "whole image"]),
    (nn.ConvTranspose2d(4, 4, 2, 2), ["ConvTranspose2d", "Upsample"]),
    (nn.AdaptiveAvgPool2d(1), ["AdaptiveAvgPool2d"]),
    (nn.Conv2d(4, 4, 3, padding=2, dilation=2), ["dilation"]),
    (nn.Conv2d(4, 4, 3, padding=1, padding_mode="reflect"), ["padding_mode"]),
    (nn.Conv2d(4, 4, (3, 1), padding=(1, 0)), ["non-square kernel_size"]),
    (nn.Conv2d(4, 4, 3, padding="same"), ["padding='same'"]),
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


def test_runner_is_exact_through_a_residual_generator_and_macs_fall():
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

def test_checks_accept_correct_doubles():
    lab5.check_active_tiles(_tiles_brute)
    lab5.check_gather(_gather_pad)
    lab5.check_scatter(_scatter_loop)
    lab5.check_sparse_conv2d(BoxSparseConv)
    lab5.check_network(BoxSparseConv)
    lab5.check_incremental_conv(lambda conv, xo, yo, xn: yo + F.conv2d(xn - xo, conv.weight, None, conv.stride,
                                                                         conv.padding))


def test_checks_reject_typical_mistakes():
    def tiles_without_halo(m, k, s, p, t):
        return _tiles_brute(m, 1, s, 0, t)

    def gather_without_padding_offset(x, tiles, k, s, p, t):
        return _gather_pad(x, tiles, k, s, 0, t)

    def scatter_in_place(y, yt, tiles, t):
        out = _scatter_loop(y, yt, tiles, t)
        y.copy_(out)
        return y

    with pytest.raises(CheckFailed, match="expected tiles"):
        lab5.check_active_tiles(tiles_without_halo)
    with pytest.raises(CheckFailed, match="differ"):
        lab5.check_gather(gather_without_padding_offset)
    with pytest.raises(CheckFailed, match="cache untouched"):
        lab5.check_scatter(scatter_in_place)
    with pytest.raises(CheckFailed, match="bias|differ"):
        lab5.check_incremental_conv(lambda conv, xo, yo, xn: yo + conv(xn - xo))
    with pytest.raises(CheckFailed, match="duplicate"):
        lab5.tile_set(torch.tensor([[0, 0], [0, 0]]))


def test_measure_speedup_rows_and_one_thread_restored():
    torch.set_num_threads(1)
    rows = lab5.measure_speedup(BoxSparseConv, fractions=(0.02, 0.2), channels=4, depth=3, size=48, repeats=1)
    assert [round(r["edited_%"]) for r in rows] == [2, 20]
    assert rows[0]["mac_ratio"] > rows[1]["mac_ratio"] > 1
    assert all(r["max_err"] <= 1e-5 for r in rows)
    assert torch.get_num_threads() == 1


# ------------------------------------------------------------------ the notebook

# a plausible mistake: tiles from the changed pixels alone, forgetting the halo and the padding shift
WRONG_ACTIVE_TILES = '''def active_tiles(changed, kernel_size, stride, padding, tile):
    """Tiles holding a changed pixel (wrong: no halo)."""
    H, W = changed.shape
    Ho = (H + 2 * padding - kernel_size) // stride + 1
    Wo = (W + 2 * padding - kernel_size) // stride + 1
    out = []
    step = tile * stride
    for i in range(-(-Ho // tile)):
        for j in range(-(-Wo // tile)):
            if changed[i * step:(i + 1) * step, j * step:(j + 1) * step].any():
                out.append((i, j))
    return torch.tensor(out, dtype=torch.long).reshape(-1, 2)
'''


@pytest.mark.notebook
def test_recorded_claims():
    rec = harness.records(LAB)
    assert rec["exact_max_err"] <= 1e-5
    assert rec["photo_max_err"] <= 1e-5
    assert rec["speedup_2pct"] >= 2.0, rec["speedup_2pct"]
    assert rec["macs_ratio_1p2pct"] >= 10.0, rec["macs_ratio_1p2pct"]
    areas, mac_ratios, speedups = zip(*rec["speedup_vs_area"])
    assert list(areas) == [0.5, 1.2, 5.0, 10.0, 25.0]
    assert all(a > b for a, b in zip(mac_ratios, mac_ratios[1:])), mac_ratios
    assert all(s <= m for s, m in zip(speedups, mac_ratios)), "a speedup above the MAC ratio means a broken measurement"
    assert rec["photo_macs_ratio"] >= 5.0
    assert 0.0 < rec["full_size_share"] <= 1.5


@pytest.mark.notebook
def test_nbgrader_roundtrip():
    harness.check_roundtrip(LAB, "active_tiles", WRONG_ACTIVE_TILES,
                            loses={"test_active_tiles", "test_sparse_conv2d", "test_sparse_network", "test_sparse_speed"})
