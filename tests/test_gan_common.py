"""Shared generative plumbing: bundled digits, PSNR, the digit-feature Fréchet distance and its asset, the DDPM loop."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import scipy.linalg
import torch
import torch.nn.functional as F

import effcourse.assets as assets
from effcourse.data.digits import N_DIGITS, few_shot, load_digits
from effcourse.metrics import DigitFeatures, frechet_distance, load_digit_features, psnr


# ---------------------------------------------------------------- digits
@pytest.mark.parametrize("size", [8, 16, 32])
def test_digits_shapes_ranges(size):
    x, y = load_digits(size)
    assert x.shape == (N_DIGITS, 1, size, size) and x.dtype == torch.float32
    assert y.shape == (N_DIGITS,) and y.dtype == torch.int64
    assert x.min() >= -1 and x.max() <= 1 and x.min() == -1
    assert set(y.tolist()) == set(range(10))


def test_digits_split_is_fixed_disjoint_and_stratified():
    xa, ya = load_digits(16, "train")
    xb, yb = load_digits(16, "test")
    assert len(xa) + len(xb) == N_DIGITS and len(xb) == 359
    xa2, _ = load_digits(16, "train")
    assert torch.equal(xa, xa2)
    allx, _ = load_digits(16)
    sums = lambda t: torch.sort(t.double().flatten(1).sum(1)).values  # noqa: E731
    assert torch.allclose(sums(torch.cat([xa, xb])), sums(allx))  # a partition of all digits
    counts = torch.bincount(yb, minlength=10)
    assert counts.min() >= 34 and counts.max() <= 37


def test_digits_returns_copies():
    x, _ = load_digits(16)
    x.zero_()
    assert load_digits(16)[0].abs().sum() > 0


def test_digits_bad_args():
    with pytest.raises(ValueError, match="split"):
        load_digits(16, "val")
    with pytest.raises(ValueError, match="size"):
        load_digits(4)
    with pytest.raises(TypeError, match="size"):
        load_digits(16.0)
    with pytest.raises(ValueError, match="multiple of 10"):
        few_shot(95)
    with pytest.raises(ValueError, match="1730"):
        few_shot(1800)


def test_few_shot_balanced_fixed_and_disjoint():
    fs = few_shot(100, 16, seed=0)
    assert fs.images.shape == (100, 1, 16, 16) and fs.heldout_images.shape == (N_DIGITS - 100, 1, 16, 16)
    assert torch.bincount(fs.labels, minlength=10).tolist() == [10] * 10
    again = few_shot(100, 16, seed=0)
    assert torch.equal(fs.images, again.images) and torch.equal(fs.heldout_labels, again.heldout_labels)
    other = few_shot(100, 16, seed=1)
    assert not torch.equal(fs.images, other.images)
    allx, ally = load_digits(16)
    merged = torch.cat([fs.images, fs.heldout_images])
    assert torch.equal(torch.sort(merged.flatten(1).sum(1)).values, torch.sort(allx.flatten(1).sum(1)).values)


# ---------------------------------------------------------------- psnr
def test_psnr():
    a = torch.zeros(2, 1, 4, 4)
    b = a.clone()
    b[0] += 0.1
    b[1] += 0.2
    expected = np.mean([10 * np.log10(4 / 0.01), 10 * np.log10(4 / 0.04)])
    assert psnr(a, b) == pytest.approx(expected, rel=1e-6)
    assert psnr(a, b, data_range=1.0) == pytest.approx(expected - 10 * np.log10(4), rel=1e-6)
    with pytest.raises(ValueError, match="shapes differ"):
        psnr(a, b[:1])


# ---------------------------------------------------------------- feature net + Fréchet distance
@pytest.fixture(scope="module")
def net():
    return load_digit_features()


@pytest.fixture(scope="module")
def digits():
    return load_digits(16)


def test_feature_net_is_a_good_classifier(net):
    x, y = load_digits(16, "test")
    acc = (net(x).argmax(1) == y).float().mean().item()
    assert acc > 0.95, f"bundled digit classifier test accuracy {acc:.3f}"
    assert net.features(load_digits(32, "test")[0]).shape == (359, 64)
    assert DigitFeatures.num_features == 64
    with pytest.raises(ValueError, match=r"\(N, 1, H, W\)"):
        net.features(torch.zeros(2, 3, 16, 16))


def _scipy_frechet(f1: np.ndarray, f2: np.ndarray) -> float:
    mu1, mu2 = f1.mean(0), f2.mean(0)
    s1, s2 = np.cov(f1, rowvar=False), np.cov(f2, rowvar=False)
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean))


@pytest.mark.filterwarnings("ignore::scipy.linalg.LinAlgWarning")  # a few ReLU features never fire
def test_frechet_matches_scipy_reference(net, digits):
    x, _ = digits
    gen = torch.Generator().manual_seed(0)
    fake = (x[:800] + 0.3 * torch.randn(x[:800].shape, generator=gen)).clamp(-1, 1)
    real = x[800:]
    with torch.no_grad():
        ref = _scipy_frechet(net.features(real).double().numpy(), net.features(fake).double().numpy())
    got = frechet_distance(real, fake)
    assert got == pytest.approx(ref, rel=2e-3, abs=1e-2)


def test_frechet_identical_is_zero_and_grows_with_corruption(digits):
    x, _ = digits
    assert abs(frechet_distance(x, x)) < 1e-3
    gen = torch.Generator().manual_seed(1)
    noise = [frechet_distance(x, (x + s * torch.randn(x.shape, generator=gen)).clamp(-1, 1)) for s in (0.1, 0.3, 0.6)]
    assert noise[0] < noise[1] < noise[2], noise
    blur = [frechet_distance(x, F.avg_pool2d(x, k, stride=1, padding=k // 2, count_include_pad=False))
            for k in (3, 5, 7)]
    assert blur[0] < blur[1] < blur[2], blur


def test_frechet_any_resolution_and_bad_input(digits):
    x, _ = digits
    assert frechet_distance(load_digits(32)[0], x) < 10
    with pytest.raises(ValueError, match=r"\(N, 1, H, W\)"):
        frechet_distance(x[:, 0], x)
    with pytest.raises(ValueError, match="at least 2"):
        frechet_distance(x, x[:1])


def test_frechet_custom_feature_net(digits):
    x, _ = digits
    net = DigitFeatures()  # untrained, still a valid feature module
    assert abs(frechet_distance(x[:300], x[:300], feature_net=net)) < 1e-3
    assert net.training  # mode restored


# ---------------------------------------------------------------- asset checks and the build script
def test_asset_sha_check_names_the_problem(tmp_path, monkeypatch):
    shutil.copy(assets.asset_path("digit_features"), tmp_path / "digit_features.pt")
    data = bytearray((tmp_path / "digit_features.pt").read_bytes())
    data[-100] ^= 0xFF
    (tmp_path / "digit_features.pt").write_bytes(bytes(data))
    monkeypatch.setattr(assets, "ASSET_DIR", tmp_path)
    with pytest.raises(ValueError, match="SHA-256"):
        load_digit_features()
    (tmp_path / "digit_features.pt").unlink()
    with pytest.raises(FileNotFoundError, match="build_assets digit_features"):
        load_digit_features()


def test_asset_is_small_and_in_manifest():
    entry = assets.manifest()["digit_features"]
    assert entry["bytes"] < 200_000
    assert entry["sha256"] == assets.sha256(assets.asset_path("digit_features"))


def test_build_assets_quick(tmp_path):
    from data_scripts import build_assets

    before = assets.MANIFEST.read_text()
    assert build_assets.main(["digit_features", "--quick", "--out", str(tmp_path)]) == 0
    state = torch.load(tmp_path / "digit_features.pt", weights_only=True)
    DigitFeatures().load_state_dict(state)
    assert assets.MANIFEST.read_text() == before
    json.loads(before)


# ---------------------------------------------------------------- DDPM training loop (Lab 8's instructor asset)
def _q_sample(x0, t, eps, abar):
    a = abar[t].view(-1, 1, 1, 1)
    return a.sqrt() * x0 + (1 - a).sqrt() * eps


def test_train_ddpm_history_and_ema_warmup_from_step_0():
    """``train_ddpm`` returns (EMA copy, History of the loss every step), is deterministic, and its EMA warm-up
    counts steps from 0 (decay 0.1 at the first step), the stream the shipped ``lab8_ddpm`` weights came from."""
    from effcourse.diffusion.train import train_ddpm
    from effcourse.diffusion.unet import UNet
    from effcourse.training import Loop

    abar = torch.cumprod(1 - torch.linspace(1e-4, 0.02, 50), 0)
    runs = []
    for steps in (1, 3, 3):
        torch.manual_seed(0)
        unet = UNet(in_ch=1, channels=(8, 8, 8), tdim=16)
        w0 = [p.detach().clone() for p in unet.parameters()]
        ema, hist = train_ddpm(unet, _q_sample, abar, crop=(2, 2),
                               loop=Loop(steps=steps, batch_size=2, seed=3, progress=False, live=False))
        runs.append((unet, ema, hist, w0))
    unet, ema, hist, w0 = runs[0]
    for e, w, p in zip(ema.parameters(), w0, unet.parameters()):
        torch.testing.assert_close(e, w + 0.9 * (p.detach() - w))       # decay min(0.995, 1 / 10) at step 0
    (_, ema3, h3, _), (_, ema3b, h3b, _) = runs[1:]
    assert h3.steps("loss") == [1, 2, 3] and h3["loss"] == h3b["loss"] and not ema3.training
    assert all(torch.equal(a, b) for a, b in zip(ema3.state_dict().values(), ema3b.state_dict().values()))
