"""DiffAugment plumbing (Lab 6): a small DCGAN for 16x16 digits and a few-shot training loop.

* ``Generator(nz, ngf)``: ``z (N, nz)`` -> images ``(N, 1, 16, 16)`` in [-1, 1] (transposed convs
  1 -> 4 -> 8 -> 16, BatchNorm, ReLU, ``tanh``).
* ``Discriminator(ndf)``: images ``(N, 1, 16, 16)`` -> logits ``(N,)`` (strided convs 16 -> 8 -> 4 -> 1,
  LeakyReLU, no normalisation so a sample's logit does not depend on the rest of its batch).
* ``train_gan(G, D, reals, d_loss, g_loss, augment, loop=Loop(...), opts=GANOptions(...))``:
  alternating D / G steps with the learner's ``d_loss``, ``g_loss`` and ``augment`` (in both
  steps, or in D's step only); keeps an EMA copy of G and tracks D's mean output
  (sigmoid) on the *training* reals and on *held-out* reals -- the gap between the two is the
  discriminator's memorisation -- and D's mean logit on the same fakes ``G(z)`` un-augmented and
  augmented, ``D(G(z))`` vs ``D(T(G(z)))`` (how far apart D judges what G's step sees and what D's
  step trains on); returns ``(G_ema, History)``; ``gap(hist)`` and ``fake_aug_gap(hist)`` read it.
* ``artifact_rate(images)``: how many samples show a zeroed square or a zeroed border line (what
  "augment the reals only" teaches the generator to draw).

The answers to the lab's exercises are not here: the augmentations and the losses are arguments.
"""
from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..training import EMA, History, Loop, eval_mode

SIZE = 16


class Generator(nn.Module):
    """DCGAN generator for 16x16 single-channel images; ``forward(z)`` with ``z`` of shape ``(N, nz)``."""

    def __init__(self, nz: int = 64, ngf: int = 32):
        super().__init__()
        self.nz = nz
        self.net = nn.Sequential(
            nn.ConvTranspose2d(nz, 4 * ngf, 4, 1, 0, bias=False), nn.BatchNorm2d(4 * ngf), nn.ReLU(True),      # 4x4
            nn.ConvTranspose2d(4 * ngf, 2 * ngf, 4, 2, 1, bias=False), nn.BatchNorm2d(2 * ngf), nn.ReLU(True),  # 8x8
            nn.ConvTranspose2d(2 * ngf, 1, 4, 2, 1), nn.Tanh(),                                                # 16x16
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if z.dim() != 2 or z.shape[1] != self.nz:
            raise ValueError(f"Generator expects z of shape (N, {self.nz}), got {tuple(z.shape)}")
        return self.net(z[:, :, None, None])

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None, batch_size: int = 500) -> torch.Tensor:
        """``n`` samples ``(n, 1, 16, 16)`` in eval mode (BatchNorm running statistics), on the CPU."""
        dev = next(self.parameters()).device
        z = torch.randn(n, self.nz, generator=generator)
        with eval_mode(self):
            return torch.cat([self(c.to(dev)).cpu() for c in z.split(batch_size)])


class Discriminator(nn.Module):
    """DCGAN discriminator for ``(N, 1, 16, 16)`` images in [-1, 1]; returns logits ``(N,)``."""

    def __init__(self, ndf: int = 32, batchnorm: bool = False):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(1, ndf, 4, 2, 1), nn.LeakyReLU(0.2, True),                              # 8x8
            nn.Conv2d(ndf, 2 * ndf, 4, 2, 1, bias=not batchnorm),
            nn.BatchNorm2d(2 * ndf) if batchnorm else nn.Identity(), nn.LeakyReLU(0.2, True),  # 4x4
            nn.Conv2d(2 * ndf, 1, 4, 1, 0),                                                   # 1x1
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != 1:
            raise ValueError(f"Discriminator expects images (N, 1, H, W), got {tuple(x.shape)}")
        if x.shape[-2:] != (SIZE, SIZE):
            raise ValueError(f"Discriminator expects {SIZE}x{SIZE} images, got {tuple(x.shape[-2:])}")
        return self.net(x).flatten()


def _init_weights(m: nn.Module) -> None:
    if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(m.weight, 0.0, 0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.BatchNorm2d):
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.zeros_(m.bias)


def make_gan(nz: int = 64, ngf: int = 32, ndf: int = 32, seed: int = 0,
             d_batchnorm: bool = False) -> tuple[Generator, Discriminator]:
    """A freshly initialised ``(G, D)`` pair (DCGAN init, N(0, 0.02) weights), the same for a given seed."""
    torch.manual_seed(seed)
    G, D = Generator(nz, ngf), Discriminator(ndf, d_batchnorm)
    G.apply(_init_weights)
    D.apply(_init_weights)
    return G, D


@dataclass
class GANOptions:
    """``train_gan``'s step-specific options (the shared ones are its ``Loop``).

    ``lr``, ``betas``: Adam for both nets; ``ema_decay``: G_ema's decay (with warm-up);
    ``augment_g_step``: ``augment`` in G's step too (``False``: D's step only);
    ``probe_every``: iterations between probes of D; ``eval_every``: between ``evaluate(G_ema)``
    calls; ``probe_fakes``: fakes per probe."""

    lr: float = 5e-4
    betas: tuple[float, float] = (0.5, 0.999)
    ema_decay: float = 0.999
    augment_g_step: bool = True
    probe_every: int = 100
    eval_every: int = 500
    probe_fakes: int = 128


def gap(hist: History, logits: bool = True) -> list[float]:
    """D's train minus held-out mean logit (``logits=False``: mean sigmoid output) at each probe of a
    ``train_gan`` history (0: no memorisation; the logit does not saturate like the sigmoid)."""
    a, b = ("logit_train", "logit_heldout") if logits else ("d_train", "d_heldout")
    return [x - y for x, y in zip(hist[a], hist[b])]


def fake_aug_gap(hist: History) -> list[float]:
    """D's mean logit on un-augmented minus augmented fakes at each probe: ``D(G(z)) - D(T(G(z)))``."""
    return [x - y for x, y in zip(hist["logit_fake"], hist["logit_fake_aug"])]


@torch.no_grad()
def _logits(D: nn.Module, images: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    dev = next(D.parameters()).device
    return torch.cat([D(c.to(dev)).float().cpu() for c in images.split(batch_size)])


def d_output(D: nn.Module, images: torch.Tensor, batch_size: int = 500, logits: bool = False) -> float:
    """Mean of ``sigmoid(D(x))`` over ``images`` (D's probability that they are real), or of the
    logits ``D(x)`` with ``logits=True``."""
    out = _logits(D, images, batch_size)
    return float(out.mean() if logits else torch.sigmoid(out).mean())


def _identity(x: torch.Tensor) -> torch.Tensor:
    return x


def train_gan(G: Generator, D: nn.Module, reals: torch.Tensor, d_loss: Callable, g_loss: Callable,
              augment: Callable | None = None, real_transform: Callable | None = None, *,
              loop: Loop | None = None, opts: GANOptions | None = None, heldout: torch.Tensor | None = None,
              evaluate: Callable | None = None) -> tuple[Generator, History]:
    """Train ``G`` and ``D`` on ``reals`` ``(N, 1, 16, 16)``; returns ``(G_ema, history)``.

    ``loop`` (default ``Loop(steps=2000, desc="GAN")``): iterations, batch size, seed, device, bar;
    ``opts`` (default ``GANOptions()``): the GAN's own options. Each iteration draws a batch of reals
    (with replacement) and ``z ~ N(0, I)``, then

    * D step: ``d_loss(D, real, G(z), augment)`` -- the learner's loss; it must detach the fake;
    * G step: ``g_loss(D, G(z), augment)`` on the same fakes (gradients flow through ``augment``),
      with D's parameters frozen (``requires_grad`` off: only G's gradient is computed).

    ``augment`` (default: the identity) is what the losses apply to everything D sees: DiffAugment.
    With ``opts.augment_g_step=False`` G's step gets the identity instead, so ``augment`` acts in D's
    step only, on reals and (detached) fakes -- the lecture's "augment reals & fakes for D only".
    ``real_transform`` (default: none) is applied to the real batch *before* ``d_loss``, like a
    classic data-set augmentation: used alone, it shows what augmenting only the reals does.
    Adam for both nets; ``G_ema`` is an ``EMA`` of G's weights with warm-up, the copy to sample from.

    The history's series: ``d_loss``, ``g_loss`` (every ``loop.log_every`` iterations); at every
    ``opts.probe_every``-th iteration (and the last) D's mean sigmoid output ``d_train`` /
    ``d_heldout`` and mean logit ``logit_train`` / ``logit_heldout`` on the training reals and on
    ``heldout`` reals (``gap(hist)``: their difference), and D's mean logit on ``opts.probe_fakes``
    fakes ``G(z)`` (fixed ``z``; G in training mode, as the steps see it, on a copy so its BatchNorm
    statistics are untouched), as they are (``logit_fake``) and through ``augment``
    (``logit_fake_aug``); at every ``opts.eval_every``-th iteration (and the last) ``eval``, the
    result of ``evaluate(G_ema)`` if given. The probes draw from their own random streams, so a run's
    training is the same with or without them.
    """
    loop = loop or Loop(steps=2000, desc="GAN")
    opts = opts or GANOptions()
    if reals.dim() != 4 or reals.shape[1:] != (1, SIZE, SIZE):
        raise ValueError(f"reals must be (N, 1, {SIZE}, {SIZE}), got {tuple(reals.shape)}")
    if opts.probe_every < 1 or opts.eval_every < 1:
        raise ValueError(f"probe_every and eval_every must be positive, got {opts.probe_every}, {opts.eval_every}")
    augment = augment or _identity
    device, seed = torch.device(loop.device), loop.seed
    G, D = G.to(device).train(), D.to(device).train()
    ema = EMA(G, opts.ema_decay, warmup=True)
    fused = device.type in ("cpu", "cuda")           # one kernel per step instead of ~12 per tensor
    opt_g = torch.optim.Adam(G.parameters(), lr=opts.lr, betas=opts.betas, fused=fused)
    opt_d = torch.optim.Adam(D.parameters(), lr=opts.lr, betas=opts.betas, fused=fused)
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)   # the augmentations draw from the global generator
    reals_dev = reals.to(device)
    z_probe = torch.randn(opts.probe_fakes, G.nz, generator=torch.Generator().manual_seed(seed + 12345)).to(device)
    hist = loop.history()

    def probe(step: int) -> None:
        with eval_mode(D):
            on_train = _logits(D, reals)                      # one pass each: the probabilities and logits
            on_heldout = _logits(D, heldout) if heldout is not None else torch.full((1,), float("nan"))
            with torch.no_grad(), torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
                torch.manual_seed(seed + step)
                fakes = copy.deepcopy(G).train()(z_probe)        # a copy: G's BatchNorm running statistics stay
                on_fake = float(D(fakes).float().mean())
                on_fake_aug = on_fake if augment is _identity else float(D(augment(fakes)).float().mean())
        hist.log(step, d_train=torch.sigmoid(on_train).mean(), d_heldout=torch.sigmoid(on_heldout).mean(),
                 logit_train=on_train.mean(), logit_heldout=on_heldout.mean(),
                 logit_fake=on_fake, logit_fake_aug=on_fake_aug)

    bar = loop.bar()
    for i in bar:
        step = i + 1
        idx = torch.randint(0, len(reals), (loop.batch_size,), generator=gen).to(device)
        real = reals_dev[idx]
        if real_transform is not None:
            real = real_transform(real)
        z = torch.randn(loop.batch_size, G.nz, generator=gen).to(device)
        fake = G(z)

        loss_d = d_loss(D, real, fake, augment)
        _check_loss("d_loss", loss_d)
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()

        D.requires_grad_(False)      # G's step: gradients for G only (D's weight gradients are not needed)
        try:
            loss_g = g_loss(D, fake, augment if opts.augment_g_step else _identity)
            _check_loss("g_loss", loss_g)
            opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
        except RuntimeError as err:
            if "second time" in str(err):
                raise RuntimeError("g_loss could not backpropagate into G: d_loss already freed G's graph. "
                                   "Detach the fake inside d_loss (fake.detach()).") from err
            raise
        finally:
            D.requires_grad_(True)
        opt_g.step()

        ema.update(G)                # warm-up: early on, G_ema follows G closely
        if loop.logs(i):
            hist.log(step, d_loss=loss_d, g_loss=loss_g)
        if step % opts.probe_every == 0 or step == loop.steps:
            probe(step)
            bar.set_postfix(D_train=f"{hist.last('d_train'):.2f}", D_heldout=f"{hist.last('d_heldout'):.2f}")
        if evaluate is not None and (step % opts.eval_every == 0 or step == loop.steps):
            hist.log(step, eval=evaluate(ema.model.eval()))
    hist.close()
    return ema.model.cpu(), hist


def _check_loss(name: str, loss) -> None:
    if not isinstance(loss, torch.Tensor) or loss.dim() != 0:
        got = tuple(loss.shape) if isinstance(loss, torch.Tensor) else type(loss).__name__
        raise TypeError(f"{name} must return a scalar tensor (a mean over the batch), got {got}")
    if not torch.isfinite(loss):
        raise FloatingPointError(f"{name} returned {float(loss)}")


@torch.no_grad()
def artifact_rate(images: torch.Tensor, square: int = 4, tol: float = 0.1) -> dict[str, float]:
    """Fractions of ``images (N, 1, H, W)`` in [-1, 1] that show augmentation artifacts.

    ``square``: a ``square x square`` window with every pixel within ``tol`` of 0 (a cutout patch:
    cutout writes zeros, a mid-grey here, where digits have a -1 background). ``edge``: a whole first
    or last row or column within ``tol`` of 0 (translation's zero fill). ``any``: either one.
    Real digits score 0 on all three."""
    if images.dim() != 4 or images.shape[1] != 1:
        raise ValueError(f"images must be (N, 1, H, W), got {tuple(images.shape)}")
    near0 = (images.abs() <= tol).float()
    sq = F.avg_pool2d(near0, square, stride=1) >= 1.0 - 1e-6
    has_square = sq.flatten(1).any(1)
    m = near0[:, 0] >= 0.5
    has_edge = m[:, 0].all(1) | m[:, -1].all(1) | m[:, :, 0].all(1) | m[:, :, -1].all(1)
    return {"square": float(has_square.float().mean()), "edge": float(has_edge.float().mean()),
            "any": float((has_square | has_edge).float().mean())}
