"""DiffAugment plumbing (Lab 6): a small DCGAN for 16x16 digits and a few-shot training loop.

* ``Generator(nz, ngf)``: ``z (N, nz)`` -> images ``(N, 1, 16, 16)`` in [-1, 1] (transposed convs
  1 -> 4 -> 8 -> 16, BatchNorm, ReLU, ``tanh``).
* ``Discriminator(ndf)``: images ``(N, 1, 16, 16)`` -> logits ``(N,)`` (strided convs 16 -> 8 -> 4 -> 1,
  LeakyReLU, no normalisation so a sample's logit does not depend on the rest of its batch).
* ``train_gan(...)``: alternating D / G steps with the learner's ``d_loss``, ``g_loss`` and
  ``augment`` (in both steps, or in D's step only); keeps an EMA copy of G and tracks D's mean output
  (sigmoid) on the *training* reals and on *held-out* reals -- the gap between the two is the
  discriminator's memorisation -- and D's mean logit on the same fakes ``G(z)`` un-augmented and
  augmented, ``D(G(z))`` vs ``D(T(G(z)))`` (how far apart D judges what G's step sees and what D's
  step trains on).
* ``artifact_rate(images)``: how many samples show a zeroed square or a zeroed border line (what
  "augment the reals only" teaches the generator to draw).

The answers to the lab's exercises are not here: the augmentations and the losses are arguments.
"""
from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

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
        was = self.training
        self.eval()
        dev = next(self.parameters()).device
        z = torch.randn(n, self.nz, generator=generator)
        out = torch.cat([self(c.to(dev)).cpu() for c in z.split(batch_size)])
        self.train(was)
        return out


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
class History:
    """What ``train_gan`` measured: iterations at which D was probed and its mean sigmoid outputs."""

    steps: list = field(default_factory=list)
    d_train: list = field(default_factory=list)     # mean sigmoid(D(x)) on the training reals
    d_heldout: list = field(default_factory=list)   # ... on held-out reals (never trained on)
    logit_train: list = field(default_factory=list)    # mean logit D(x) on the training reals
    logit_heldout: list = field(default_factory=list)  # ... on the held-out reals
    eval_steps: list = field(default_factory=list)  # iterations at which ``evaluate(G_ema)`` ran
    evals: list = field(default_factory=list)       # its results (e.g. a Fréchet distance)
    logit_fake: list = field(default_factory=list)      # mean logit D(G(z)) on fixed z, un-augmented
    logit_fake_aug: list = field(default_factory=list)  # ... D(T(G(z))) on the same fakes, T = ``augment``
    d_loss: list = field(default_factory=list)      # running mean of the losses since the last probe
    g_loss: list = field(default_factory=list)

    @property
    def gap(self) -> list:
        """D's train minus held-out mean output at each probe (0: no memorisation)."""
        return [a - b for a, b in zip(self.d_train, self.d_heldout)]

    @property
    def logit_gap(self) -> list:
        """D's train minus held-out mean *logit* at each probe (does not saturate like the sigmoid)."""
        return [a - b for a, b in zip(self.logit_train, self.logit_heldout)]

    @property
    def fake_aug_gap(self) -> list:
        """D's mean logit on un-augmented minus augmented fakes at each probe: ``D(G(z)) - D(T(G(z)))``."""
        return [a - b for a, b in zip(self.logit_fake, self.logit_fake_aug)]


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
              augment_g_step: bool = True, heldout: torch.Tensor | None = None, iters: int = 2000, batch_size: int = 32, lr: float = 5e-4,
              betas: tuple[float, float] = (0.5, 0.999), ema_decay: float = 0.999, probe_every: int = 100,
              seed: int = 0, device: str | torch.device = "cpu", desc: str = "GAN",
              evaluate: Callable | None = None, eval_every: int = 500, probe_fakes: int = 128,
              progress: bool = True) -> tuple[Generator, History]:
    """Train ``G`` and ``D`` on ``reals`` ``(N, 1, 16, 16)``; returns ``(G_ema, history)``.

    Each iteration draws a batch of reals (with replacement) and ``z ~ N(0, I)``, then

    * D step: ``d_loss(D, real, G(z), augment)`` -- the learner's loss; it must detach the fake;
    * G step: ``g_loss(D, G(z), augment)`` on the same fakes (gradients flow through ``augment``),
      with D's parameters frozen (``requires_grad`` off: only G's gradient is computed).

    ``augment`` (default: the identity) is what the losses apply to everything D sees: DiffAugment.
    With ``augment_g_step=False`` G's step gets the identity instead, so ``augment`` acts in D's step
    only, on reals and (detached) fakes -- the lecture's "augment reals & fakes for D only".
    ``real_transform`` (default: none) is applied to the real batch *before* ``d_loss``, like a
    classic data-set augmentation: used alone, it shows what augmenting only the reals does.
    Adam (``lr``, ``betas``) for both nets; ``G_ema`` is an exponential moving average of G's
    weights (decay ``min(ema_decay, (1 + t) / (10 + t))`` at step t), the copy to sample from. Every ``probe_every`` iterations the history
    records D's mean sigmoid output (and mean logit) on the training reals and on ``heldout`` reals;
    every ``eval_every`` iterations (and at the end) ``evaluate(G_ema)``, if given, is recorded too.
    Each probe also records D's mean logit on ``probe_fakes`` fakes ``G(z)`` (fixed ``z``; G in
    training mode, as the steps see it, on a copy so its BatchNorm statistics are untouched), as they
    are and through ``augment``; the probes draw from their own random streams, so a run's training
    is the same with or without them.
    """
    if reals.dim() != 4 or reals.shape[1:] != (1, SIZE, SIZE):
        raise ValueError(f"reals must be (N, 1, {SIZE}, {SIZE}), got {tuple(reals.shape)}")
    if iters < 1 or batch_size < 1 or probe_every < 1:
        raise ValueError(f"iters, batch_size and probe_every must be positive, got {iters}, {batch_size}, {probe_every}")
    augment = augment or _identity
    device = torch.device(device)
    G, D = G.to(device).train(), D.to(device).train()
    G_ema = copy.deepcopy(G).eval().requires_grad_(False)
    fused = device.type in ("cpu", "cuda")           # one kernel per step instead of ~12 per tensor
    opt_g = torch.optim.Adam(G.parameters(), lr=lr, betas=betas, fused=fused)
    opt_d = torch.optim.Adam(D.parameters(), lr=lr, betas=betas, fused=fused)
    ema_params, g_params = list(G_ema.parameters()), list(G.parameters())
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)   # the augmentations draw from the global generator
    reals_dev = reals.to(device)
    z_probe = torch.randn(probe_fakes, G.nz, generator=torch.Generator().manual_seed(seed + 12345)).to(device)
    hist = History()
    run_d, run_g, n_run = 0.0, 0.0, 0

    def probe(step: int) -> None:
        nonlocal run_d, run_g, n_run
        D.eval()
        hist.steps.append(step)
        on_train = _logits(D, reals)                      # one pass each: the probabilities and logits
        on_heldout = _logits(D, heldout) if heldout is not None else torch.full((1,), float("nan"))
        hist.d_train.append(float(torch.sigmoid(on_train).mean()))
        hist.d_heldout.append(float(torch.sigmoid(on_heldout).mean()))
        hist.logit_train.append(float(on_train.mean()))
        hist.logit_heldout.append(float(on_heldout.mean()))
        with torch.no_grad(), torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(seed + step)
            fakes = copy.deepcopy(G).train()(z_probe)        # a copy: G's BatchNorm running statistics stay
            hist.logit_fake.append(float(D(fakes).float().mean()))
            hist.logit_fake_aug.append(hist.logit_fake[-1] if augment is _identity else
                                       float(D(augment(fakes)).float().mean()))
        hist.d_loss.append(run_d / max(n_run, 1))
        hist.g_loss.append(run_g / max(n_run, 1))
        run_d, run_g, n_run = 0.0, 0.0, 0
        D.train()

    bar = tqdm(range(1, iters + 1), desc=desc, disable=not progress, mininterval=1.0)
    for step in bar:
        idx = torch.randint(0, len(reals), (batch_size,), generator=gen).to(device)
        real = reals_dev[idx]
        if real_transform is not None:
            real = real_transform(real)
        z = torch.randn(batch_size, G.nz, generator=gen).to(device)
        fake = G(z)

        loss_d = d_loss(D, real, fake, augment)
        _check_loss("d_loss", loss_d)
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()

        D.requires_grad_(False)      # G's step: gradients for G only (D's weight gradients are not needed)
        try:
            loss_g = g_loss(D, fake, augment if augment_g_step else _identity)
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

        with torch.no_grad():
            decay = min(ema_decay, (1.0 + step) / (10.0 + step))   # warm-up: early on, follow G closely
            torch._foreach_lerp_(ema_params, g_params, 1.0 - decay)
            for be, b in zip(G_ema.buffers(), G.buffers()):
                be.copy_(b)
        run_d += float(loss_d.detach())
        run_g += float(loss_g.detach())
        n_run += 1
        if step % probe_every == 0 or step == iters:
            probe(step)
            bar.set_postfix(D_train=f"{hist.d_train[-1]:.2f}", D_heldout=f"{hist.d_heldout[-1]:.2f}")
        if evaluate is not None and (step % eval_every == 0 or step == iters):
            G_ema.eval()
            hist.eval_steps.append(step)
            hist.evals.append(evaluate(G_ema))
    return G_ema.cpu(), hist


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
