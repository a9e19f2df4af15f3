"""Quality metrics for the generative labs.

* ``psnr(a, b)``: peak signal-to-noise ratio, averaged over the images of a batch.
* ``frechet_distance(real, fake)``: the **digit-feature Fréchet distance** -- the FID formula
  ``||mu_r - mu_f||^2 + Tr(S_r + S_f - 2 (S_r S_f)^{1/2})`` computed by torchmetrics'
  ``FrechetInceptionDistance`` on the 64-d features of a small digit classifier that ships with
  the package (``DigitFeatures``, trained by ``data_scripts/asset_digit_features.py``). It is *not*
  Inception FID: the numbers are comparable only with each other, never with papers' FIDs.
  It has a finite-sample floor: two disjoint halves of the 1797 real digits score about 2.3 and a
  perfect memoriser of 100 training images (2000 draws from them, against all digits) about 5.
  (The prototype of COURSE.md section 6, with a differently scaled feature net, measured 13 and
  20: only ratios and rankings carry over between feature nets.)
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .training import eval_mode

FEATURE_SIZE = 16  # DigitFeatures resizes every input to 16x16


def psnr(a: torch.Tensor, b: torch.Tensor, data_range: float = 2.0) -> float:
    """Mean over the batch of per-image PSNR in dB, ``10 log10(data_range^2 / MSE)``.

    ``a`` and ``b`` are ``(N, ...)`` with the same shape; ``data_range`` is max - min of the signal
    (2 for images in [-1, 1]). Identical images give ``inf``."""
    if not isinstance(a, torch.Tensor) or not isinstance(b, torch.Tensor):
        raise TypeError("psnr expects two tensors")
    if a.shape != b.shape:
        raise ValueError(f"psnr: shapes differ, {tuple(a.shape)} vs {tuple(b.shape)}")
    if a.dim() < 2:
        raise ValueError(f"psnr expects a batch (N, ...), got shape {tuple(a.shape)}")
    if data_range <= 0:
        raise ValueError(f"data_range must be positive, got {data_range}")
    mse = (a.detach().double() - b.detach().double()).pow(2).flatten(1).mean(1)
    return float((10 * torch.log10(data_range ** 2 / mse)).mean())


@torch.no_grad()
def l1_psnr(fake: torch.Tensor, target: torch.Tensor) -> dict[str, float]:
    """``{"l1": mean |fake - target|, "psnr": mean per-image PSNR (dB, data range 2)}`` for images
    ``(N, C, H, W)`` in [-1, 1]; ``fake`` is clamped to that range first."""
    if fake.shape != target.shape:
        raise ValueError(f"fake and target shapes differ: {tuple(fake.shape)} vs {tuple(target.shape)}")
    return {"l1": (fake - target).abs().mean().item(), "psnr": psnr(fake.clamp(-1, 1), target)}


class DigitFeatures(nn.Module):
    """A 3-conv digit classifier; its 64-d penultimate features feed the Fréchet distance.

    Input ``(N, 1, H, W)`` in [-1, 1], any H and W (resized to 16x16 inside). ``features(x)`` ->
    ``(N, 64)``; ``forward(x)`` -> logits ``(N, 10)``."""

    num_features = 64

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),     # 16 -> 8
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),    # 8 -> 4
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(inplace=True),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )
        self.head = nn.Linear(64, 10)

    @staticmethod
    def _prepare(x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[1] != 1:
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"DigitFeatures expects images (N, 1, H, W) in [-1, 1], got {shape}")
        x = x.float()
        if x.shape[-2:] != (FEATURE_SIZE, FEATURE_SIZE):
            x = F.interpolate(x, size=(FEATURE_SIZE, FEATURE_SIZE), mode="bilinear", align_corners=False,
                              antialias=x.shape[-1] > FEATURE_SIZE)
        return x

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(self._prepare(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class _FeatureExtractor(nn.Module):
    """What torchmetrics' FID calls: ``forward`` returns the features, ``num_features`` names their size."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net
        self.num_features = int(getattr(net, "num_features", 64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.features(x)


def load_digit_features() -> DigitFeatures:
    """The bundled, SHA-256-checked ``DigitFeatures`` in eval mode (a clear error if missing or corrupt)."""
    from .assets import load_asset

    net = DigitFeatures()
    net.load_state_dict(load_asset("digit_features"))
    return net.eval().requires_grad_(False)


_CACHED: dict[str, DigitFeatures] = {}


def _default_net() -> DigitFeatures:
    if "net" not in _CACHED:
        _CACHED["net"] = load_digit_features()
    return _CACHED["net"]


def _check_images(name: str, x) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a tensor of images (N, 1, H, W) in [-1, 1], got {type(x).__name__}")
    if x.dim() != 4 or x.shape[1] != 1:
        raise ValueError(f"{name} must be images (N, 1, H, W) in [-1, 1], got shape {tuple(x.shape)}")
    if x.shape[0] < 2:
        raise ValueError(f"{name} needs at least 2 images for a covariance, got {x.shape[0]}")
    return x.detach().float().cpu()


@torch.no_grad()
def frechet_distance(real: torch.Tensor, fake: torch.Tensor, feature_net: nn.Module | None = None,
                     batch_size: int = 512) -> float:
    """Digit-feature Fréchet distance (not Inception FID) between two image sets.

    ``real`` and ``fake``: ``(N, 1, H, W)`` in [-1, 1], any H, W and N >= 2 (use hundreds or more:
    the estimate is biased upwards for small N). ``feature_net`` defaults to the bundled
    ``DigitFeatures``; any module with a ``features(x) -> (N, D)`` method and a ``num_features``
    attribute works. Computed by torchmetrics' ``FrechetInceptionDistance(feature=...)``.
    """
    from torchmetrics.image.fid import FrechetInceptionDistance

    real, fake = _check_images("real", real), _check_images("fake", fake)
    net = _default_net() if feature_net is None else feature_net
    with eval_mode(net):
        fid = FrechetInceptionDistance(feature=_FeatureExtractor(net), normalize=True)
        for x, is_real in ((real, True), (fake, False)):
            for chunk in x.split(batch_size):
                fid.update(chunk, real=is_real)
        return float(fid.compute())
