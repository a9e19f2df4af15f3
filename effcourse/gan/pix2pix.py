"""GAN Compression plumbing (Lab 3): a paired edges -> digit task, a ResNet generator, a PatchGAN
discriminator, training loops with EMA weights, and a once-for-all supernet.

* ``edge_digit_pairs(split)``: binarised Sobel edge maps ``(N, 1, 32, 32)`` in {-1, 1} and the digits
  they come from, ``(N, 1, 32, 32)`` in [-1, 1]; deterministic, three disjoint splits of scikit-learn's
  digits: ``train`` (1278), ``val`` (160, for choosing) and ``test`` (359, for reporting).
* ``ResnetGenerator(ngf)``: the pix2pix / CycleGAN ResNet generator in miniature -- a 3x3 stem, two
  stride-2 downsamplings, ``n_blocks`` residual blocks at 8x8 with ``4 * ngf`` channels, two transposed
  convs back to 32x32, a 3x3 head and ``tanh``; InstanceNorm throughout. ``forward(x,
  return_features=True)`` also returns the outputs of the residual blocks (what distillation matches).
* ``PatchDiscriminator``: a conditional PatchGAN, logits ``(N, 1, h, w)`` for ``(condition, image)``.
* ``train_generator(..., loop=Loop(...), opts=Pix2PixOptions(...))``: the training loop (an ``EMA`` of
  the weights, a ``History`` of the loss); the learner's ``objective`` (and ``distill``) are passed in.
* ``SuperGenerator(conv_cls, widths)``: a channel-elastic generator whose convs are ``conv_cls``
  instances called as ``conv(x, out_channels)`` (the learner's ``SuperConv2d``); ``forward(x, config)``
  runs the sub-network with the widths in ``config``; ``train_supernet`` runs the learner's
  once-for-all step (one sampled sub-network per step, distilled from the teacher) in a loop.

The answers to the lab's exercises are not here: every learner function is an argument.
"""
from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..training import EMA, History, Loop, eval_mode

SIZE = 32
EDGE_THRESHOLD = 0.25


# --------------------------------------------------------------------------------------------- data
def sobel_edges(images: torch.Tensor, threshold: float = EDGE_THRESHOLD) -> torch.Tensor:
    """Binarised Sobel edge map of ``images (N, 1, H, W)`` in [-1, 1]: ``+1`` where the gradient
    magnitude (Sobel kernels / 8, replicate padding) exceeds ``threshold``, ``-1`` elsewhere."""
    if not isinstance(images, torch.Tensor) or images.dim() != 4 or images.shape[1] != 1:
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"sobel_edges expects images (N, 1, H, W), got {shape}")
    kx = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]]) / 8.0
    kernel = torch.stack([kx, kx.t()]).unsqueeze(1).to(images)
    grad = F.conv2d(F.pad(images, (1, 1, 1, 1), mode="replicate"), kernel)
    mag = grad.pow(2).sum(1, keepdim=True).sqrt()
    return torch.where(mag > threshold, 1.0, -1.0).to(images.dtype)


N_VAL = 160          # the last pairs of the digits' training split, held out for choosing (never trained on)
SPLITS = ("train", "val", "test")


def edge_digit_pairs(split: str = "train", n: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The paired task: ``(edges, digits)``, each ``(N, 1, 32, 32)``.

    ``split``: ``"train"`` (1278 pairs: what every network trains on), ``"val"`` (the 160 pairs that
    follow them in the digits' training split: held out to *choose* things, e.g. a sub-network, like
    GAN Compression's ``train2`` split) or ``"test"`` (359 pairs: held out to *report*). The three are
    disjoint. ``n`` keeps the first ``n`` pairs (the order is fixed).
    """
    from ..data.digits import load_digits

    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    digits, _ = load_digits(SIZE, "test" if split == "test" else "train")
    if split == "train":
        digits = digits[:-N_VAL]
    elif split == "val":
        digits = digits[-N_VAL:]
    if n is not None:
        if int(n) < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        digits = digits[: int(n)]
    return sobel_edges(digits), digits


# ----------------------------------------------------------------------------------------- networks
def _norm_relu(c: int) -> list[nn.Module]:
    return [nn.InstanceNorm2d(c), nn.ReLU(inplace=True)]


class ResnetBlock(nn.Module):
    """``x + IN(conv(ReLU(IN(conv(x)))))`` at constant width."""

    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1), *_norm_relu(channels),
                                  nn.Conv2d(channels, channels, 3, padding=1), nn.InstanceNorm2d(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class SeparableConv2d(nn.Sequential):
    """Depthwise-separable 3x3 convolution ``(N, C_in, H, W) -> (N, C_out, H, W)``: a depthwise 3x3 conv
    (``groups = C_in``, one filter per channel), InstanceNorm, then a pointwise 1x1 conv ``C_in -> C_out``.
    MACs per pixel ``9 C_in + C_in C_out`` instead of ``9 C_in C_out``. The layout of GAN Compression's
    ``SeparableConv2d`` (mit-han-lab/gan-compression, ``models/modules/mobile_modules.py``)."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(nn.Conv2d(in_channels, in_channels, 3, padding=1, groups=in_channels),
                         nn.InstanceNorm2d(in_channels), nn.Conv2d(in_channels, out_channels, 1))


class MobileResnetBlock(nn.Module):
    """The "mobile" residual block of GAN Compression's efficient design space: ``ResnetBlock`` with
    each 3x3 conv replaced by a ``SeparableConv2d``; ``x + IN(sep(ReLU(IN(sep(x)))))``."""

    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(SeparableConv2d(channels, channels), *_norm_relu(channels),
                                  SeparableConv2d(channels, channels), nn.InstanceNorm2d(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


BLOCKS = {"plain": ResnetBlock, "mobile": MobileResnetBlock}


class ResnetGenerator(nn.Module):
    """ResNet image-to-image generator, ``(N, in_channels, H, W) -> (N, out_channels, H, W)`` in
    [-1, 1]; H and W divisible by 4. Width ``ngf``: stem ``ngf``, downsamplings ``2 ngf`` and
    ``4 ngf``, ``n_blocks`` residual blocks at ``4 ngf`` channels (at H/4 x W/4), then back up.
    ``forward(x, return_features=True)`` returns ``(out, [block_1_out, ..., block_n_out])``, each
    ``(N, 4 ngf, H/4, W/4)``. ``block="mobile"`` builds the residual blocks from depthwise-separable
    convs (``MobileResnetBlock``, GAN Compression's ``mobile_resnet`` generators); the rest is unchanged."""

    def __init__(self, ngf: int = 32, n_blocks: int = 4, in_channels: int = 1, out_channels: int = 1,
                 block: str = "plain"):
        super().__init__()
        if int(ngf) < 1 or int(n_blocks) < 1:
            raise ValueError(f"ngf and n_blocks must be >= 1, got {ngf} and {n_blocks}")
        if block not in BLOCKS:
            raise ValueError(f"block must be one of {tuple(BLOCKS)}, got {block!r}")
        self.ngf, self.n_blocks, self.block = int(ngf), int(n_blocks), block
        c1, c2, c3 = ngf, 2 * ngf, 4 * ngf
        self.down = nn.Sequential(
            nn.Conv2d(in_channels, c1, 3, padding=1), *_norm_relu(c1),
            nn.Conv2d(c1, c2, 3, stride=2, padding=1), *_norm_relu(c2),
            nn.Conv2d(c2, c3, 3, stride=2, padding=1), *_norm_relu(c3))
        self.blocks = nn.ModuleList([BLOCKS[block](c3) for _ in range(n_blocks)])
        self.up = nn.Sequential(
            nn.ConvTranspose2d(c3, c2, 3, stride=2, padding=1, output_padding=1), *_norm_relu(c2),
            nn.ConvTranspose2d(c2, c1, 3, stride=2, padding=1, output_padding=1), *_norm_relu(c1),
            nn.Conv2d(c1, out_channels, 3, padding=1), nn.Tanh())

    @property
    def feature_channels(self) -> list[int]:
        """Channels of each block output exposed for distillation."""
        return [4 * self.ngf] * self.n_blocks

    def forward(self, x: torch.Tensor, return_features: bool = False):
        _check_input(x)
        h = self.down(x)
        feats = []
        for block in self.blocks:
            h = block(h)
            feats.append(h)
        out = self.up(h)
        return (out, feats) if return_features else out


def _check_input(x) -> None:
    if not isinstance(x, torch.Tensor) or x.dim() != 4:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"generator input must be (N, C, H, W), got {shape}")
    if x.shape[-1] % 4 or x.shape[-2] % 4:
        raise ValueError(f"generator input height and width must be divisible by 4, got {tuple(x.shape[-2:])}")


class PatchDiscriminator(nn.Module):
    """Conditional PatchGAN: ``forward(condition, image)`` -> logits ``(N, 1, h, w)``, one per patch
    (for 32x32 inputs each logit sees a 22x22 patch; 6x6 logits)."""

    def __init__(self, ndf: int = 16, in_channels: int = 2):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, ndf, 4, stride=2, padding=1), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ndf, 2 * ndf, 4, stride=2, padding=1), nn.InstanceNorm2d(2 * ndf),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(2 * ndf, 4 * ndf, 3, padding=1), nn.InstanceNorm2d(4 * ndf), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(4 * ndf, 1, 3, padding=0))

    def forward(self, condition: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([condition, image], 1))


def discriminator_loss(d_real_logits: torch.Tensor, d_fake_logits: torch.Tensor) -> torch.Tensor:
    """Logistic GAN loss for D: ``softplus(-D(real)) + softplus(D(fake))``, averaged."""
    return F.softplus(-d_real_logits).mean() + F.softplus(d_fake_logits).mean()


# ------------------------------------------------------------------------------------------ training
@dataclass
class Pix2PixOptions:
    """The generator loops' own options (the shared ones are their ``Loop``): Adam's ``lr`` (betas
    (0.5, 0.999)), the objective's ``lambda_recon`` and ``lambda_distill``, the ``EMA`` decay
    ``ema_decay``, and ``paired`` (reconstruct the target; ``False``: the teacher's output)."""

    lr: float = 5e-4
    lambda_recon: float = 100.0
    lambda_distill: float = 1.0
    ema_decay: float = 0.995
    paired: bool = True


@torch.no_grad()
def generate(model: nn.Module, x: torch.Tensor, batch_size: int = 256, return_features: bool = False, **kwargs):
    """Run ``model`` in eval mode over ``x`` in batches (no gradients); returns the outputs, or
    ``(outputs, [features per block])`` with ``return_features=True``. The model's mode is restored."""
    outs, feats = [], []
    with eval_mode(model):
        for chunk in x.split(batch_size):
            if return_features:
                o, f = model(chunk, return_features=True, **kwargs)
                feats.append([t.detach() for t in f])
            else:
                o = model(chunk, **kwargs)
            outs.append(o.detach())
    out = torch.cat(outs)
    if not return_features:
        return out
    return out, [torch.cat(parts) for parts in zip(*feats)]


def _discriminator_optimizer(discriminator: nn.Module | None, lr: float, device) -> torch.optim.Optimizer | None:
    if discriminator is None:
        return None
    discriminator.to(device).train()
    return torch.optim.Adam(discriminator.parameters(), lr=lr, betas=(0.5, 0.999))


def _adversarial_step(discriminator: nn.Module, opt_d: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor,
                      fake: torch.Tensor) -> torch.Tensor:
    """One D step on the logistic loss (real pairs vs detached fakes), then D's logits for ``fake`` with
    D frozen, so the generator's loss sends gradients into G only (the caller unfreezes D after G's step)."""
    d_loss = discriminator_loss(discriminator(x, y), discriminator(x, fake.detach()))
    opt_d.zero_grad(set_to_none=True)
    d_loss.backward()
    opt_d.step()
    discriminator.requires_grad_(False)
    return discriminator(x, fake)


def _check_sizes(edges: torch.Tensor, targets: torch.Tensor) -> None:
    if edges.shape[0] != targets.shape[0]:
        raise ValueError(f"edges and targets must pair up, got {edges.shape[0]} and {targets.shape[0]} images")


def train_generator(generator: nn.Module, edges: torch.Tensor, targets: torch.Tensor, objective: Callable, *,
                    loop: Loop, opts: Pix2PixOptions | None = None, distill: Callable | None = None,
                    mappers: nn.Module | None = None, teacher_features: Sequence[torch.Tensor] | None = None,
                    teacher_outputs: torch.Tensor | None = None,
                    discriminator: nn.Module | None = None) -> tuple[nn.Module, History]:
    """Train ``generator`` for ``loop.steps`` Adam steps on random batches of ``loop.batch_size``
    pairs ``(edges, targets)`` (indices from a generator seeded with ``loop.seed``); returns
    ``(ema_generator, history)``, the history's ``loss`` logged every ``loop.log_every`` steps.

    Each step computes the generator loss as
    ``objective(d_fake_logits, fake, target, teacher_out, distill_value, paired=opts.paired,
    lambda_recon=opts.lambda_recon, lambda_distill=opts.lambda_distill)``, where ``d_fake_logits`` is
    ``discriminator(edges, fake)`` or ``None`` when no discriminator is given, ``teacher_out`` is the
    batch of ``teacher_outputs`` (or ``None``), and ``distill_value`` is
    ``distill(student_feats, teacher_feats, mappers)`` when ``distill`` is given (the mappers train
    with the generator), else ``0.0``. The teacher's block features (``teacher_features``, a list of
    ``(N, C_t, h, w)`` tensors aligned with ``edges``) are precomputed once: the teacher never runs here.
    With a discriminator, D takes one step per G step on the logistic loss.
    """
    opts = opts or Pix2PixOptions()
    _check_sizes(edges, targets)
    if distill is not None and (mappers is None or teacher_features is None):
        raise ValueError("distillation needs both mappers and teacher_features")
    if teacher_features is not None and any(f.shape[0] != edges.shape[0] for f in teacher_features):
        raise ValueError("teacher_features must have one entry per training pair")
    if not opts.paired and teacher_outputs is None:
        raise ValueError("unpaired training reconstructs the teacher's output: pass teacher_outputs")
    device = loop.device
    gen = torch.Generator().manual_seed(loop.seed)
    torch.manual_seed(loop.seed)
    generator.to(device).train()
    params = list(generator.parameters()) + (list(mappers.parameters()) if (distill and mappers is not None) else [])
    opt = torch.optim.Adam(params, lr=opts.lr, betas=(0.5, 0.999))
    opt_d = _discriminator_optimizer(discriminator, opts.lr, device)
    if mappers is not None:
        mappers.to(device).train()
    ema = EMA(generator, opts.ema_decay)
    hist = loop.history()
    bar = loop.bar()
    for step in bar:
        idx = torch.randint(0, edges.shape[0], (loop.batch_size,), generator=gen)
        x, y = edges[idx].to(device), targets[idx].to(device)
        t_out = teacher_outputs[idx].to(device) if teacher_outputs is not None else None
        if distill is not None:
            fake, s_feats = generator(x, return_features=True)
            t_feats = [f[idx].to(device) for f in teacher_features]
            distill_value = distill(s_feats, t_feats, mappers)
        else:
            fake = generator(x)
            distill_value = 0.0
        d_fake = _adversarial_step(discriminator, opt_d, x, y, fake) if discriminator is not None else None
        loss = objective(d_fake, fake, y, t_out, distill_value, paired=opts.paired, lambda_recon=opts.lambda_recon,
                         lambda_distill=opts.lambda_distill)
        if not isinstance(loss, torch.Tensor) or loss.dim() != 0:
            raise TypeError(f"objective must return a scalar tensor, got {type(loss).__name__}"
                            + (f" of shape {tuple(loss.shape)}" if isinstance(loss, torch.Tensor) else ""))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if discriminator is not None:
            discriminator.requires_grad_(True)
        ema.update(generator)
        if loop.logs(step):
            hist.log(step + 1, loss=loss)
            bar.set_postfix(loss=f"{hist.last('loss'):.3f}")
    generator.eval()
    hist.close()
    return ema.model, hist


def train_supernet(supernet: nn.Module, edges: torch.Tensor, targets: torch.Tensor,
                   configs: Sequence[tuple[int, ...]], step: Callable, objective: Callable, distill: Callable,
                   mappers: nn.Module, teacher_features: Sequence[torch.Tensor], *, loop: Loop,
                   opts: Pix2PixOptions | None = None) -> tuple[nn.Module, History]:
    """Once-for-all training of a ``SuperGenerator`` on the pairs ``(edges, targets)`` with the
    learner's ``step``; returns ``(ema_supernet, history)``.

    Each of the ``loop.steps`` iterations draws a batch of ``loop.batch_size`` (indices from a
    generator seeded with ``loop.seed``), then calls ``loss = step(supernet, mappers, x, y,
    teacher_feats, sample_config, objective, distill, lambda_recon=opts.lambda_recon,
    lambda_distill=opts.lambda_distill)``, where ``teacher_feats`` are the batch's rows of
    ``teacher_features`` (the teacher's block outputs on ``edges``, computed once) and
    ``sample_config()`` returns one config drawn uniformly from ``configs`` (from the same generator),
    and takes one Adam step (``opts.lr``, betas (0.5, 0.999)) of the supernet and the ``mappers`` on
    ``loss``. The history logs ``loss`` and ``config`` (the last config drawn) every
    ``loop.log_every`` steps. No discriminator here.
    """
    opts = opts or Pix2PixOptions()
    if not configs:
        raise ValueError("train_supernet needs at least one config")
    _check_sizes(edges, targets)
    if any(f.shape[0] != edges.shape[0] for f in teacher_features):
        raise ValueError("teacher_features must have one entry per training pair")
    configs = [tuple(c) for c in configs]
    device = loop.device
    gen = torch.Generator().manual_seed(loop.seed)
    supernet.to(device).train()
    mappers.to(device).train()
    opt = torch.optim.Adam(list(supernet.parameters()) + list(mappers.parameters()), lr=opts.lr, betas=(0.5, 0.999))
    ema = EMA(supernet, opts.ema_decay)
    drawn: list[tuple[int, ...]] = []

    def sample_config() -> tuple[int, ...]:
        drawn.append(configs[int(torch.randint(0, len(configs), (1,), generator=gen))])
        return drawn[-1]

    hist = loop.history()
    bar = loop.bar()
    for i in bar:
        idx = torch.randint(0, edges.shape[0], (loop.batch_size,), generator=gen)
        x, y = edges[idx].to(device), targets[idx].to(device)
        t_feats = [f[idx].to(device) for f in teacher_features]
        loss = step(supernet, mappers, x, y, t_feats, sample_config, objective, distill,
                    lambda_recon=opts.lambda_recon, lambda_distill=opts.lambda_distill)
        if not isinstance(loss, torch.Tensor) or loss.dim() != 0:
            raise TypeError(f"step must return a scalar tensor, got {type(loss).__name__}")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        ema.update(supernet)
        if loop.logs(i):
            hist.log(i + 1, loss=loss, config=drawn[-1] if drawn else None)
            bar.set_postfix(loss=f"{hist.last('loss'):.3f}")
    supernet.eval()
    hist.close()
    return ema.model, hist


# ------------------------------------------------------------------------------------------ supernet
class SuperGenerator(nn.Module):
    """A channel-elastic ResNet generator built from ``conv_cls`` (the learner's ``SuperConv2d``:
    an ``nn.Conv2d`` subclass whose ``forward(x, out_channels)`` uses the first ``out_channels``
    filters and the first ``x.shape[1]`` input channels).

    ``widths = (stem, down, trunk, inner)`` are the largest widths: a 3x3 stem to ``stem`` channels,
    stride-2 convs to ``down`` and ``trunk`` channels, ``n_blocks`` residual blocks whose first conv
    goes ``trunk -> inner`` and second ``inner -> trunk``, then nearest-neighbour 2x upsampling with
    3x3 convs back to ``down`` and ``stem`` channels and a 3x3 head to ``out_channels`` + tanh.
    ``forward(x, config=None)`` runs the sub-network with widths ``config`` (each ``1 <= config[i] <=
    widths[i]``; ``None`` = the full widths); ``return_features=True`` also returns the ``n_blocks``
    block outputs, each ``(N, config[2], H/4, W/4)``. InstanceNorm without affine parameters works at
    any width.
    """

    def __init__(self, conv_cls: type, widths: Sequence[int] = (8, 16, 32, 32), n_blocks: int = 4,
                 in_channels: int = 1, out_channels: int = 1):
        super().__init__()
        widths = tuple(int(w) for w in widths)
        if len(widths) != 4 or min(widths) < 1:
            raise ValueError(f"widths must be four positive ints (stem, down, trunk, inner), got {widths}")
        self.widths, self.out_channels = widths, int(out_channels)
        s, d, t, i = widths
        self.stem = conv_cls(in_channels, s, 3, padding=1)
        self.down1 = conv_cls(s, d, 3, stride=2, padding=1)
        self.down2 = conv_cls(d, t, 3, stride=2, padding=1)
        self.blocks = nn.ModuleList([nn.ModuleList([conv_cls(t, i, 3, padding=1), conv_cls(i, t, 3, padding=1)])
                                     for _ in range(n_blocks)])
        self.up1 = conv_cls(t, d, 3, padding=1)
        self.up2 = conv_cls(d, s, 3, padding=1)
        self.head = conv_cls(s, out_channels, 3, padding=1)

    def check_config(self, config) -> tuple[int, ...]:
        if config is None:
            return self.widths
        cfg = tuple(int(c) for c in config)
        if len(cfg) != 4 or any(not 1 <= c <= w for c, w in zip(cfg, self.widths)):
            raise ValueError(f"config must be 4 widths with 1 <= config[i] <= {self.widths}[i], got {tuple(config)}")
        return cfg

    def forward(self, x: torch.Tensor, config: Sequence[int] | None = None, return_features: bool = False):
        _check_input(x)
        s, d, t, i = self.check_config(config)

        def nr(h):
            return F.relu(F.instance_norm(h))

        h = nr(self.stem(x, s))                                  # (N, s, H, W)
        h = nr(self.down1(h, d))                                 # (N, d, H/2, W/2)
        h = nr(self.down2(h, t))                                 # (N, t, H/4, W/4)
        feats = []
        for conv_a, conv_b in self.blocks:
            h = h + F.instance_norm(conv_b(nr(conv_a(h, i)), t))   # (N, t, H/4, W/4)
            feats.append(h)
        h = nr(self.up1(F.interpolate(h, scale_factor=2, mode="nearest"), d))   # (N, d, H/2, W/2)
        h = nr(self.up2(F.interpolate(h, scale_factor=2, mode="nearest"), s))   # (N, s, H, W)
        out = torch.tanh(self.head(h, self.out_channels))        # (N, out_channels, H, W)
        return (out, feats) if return_features else out


def config_space(widths: Sequence[int], fractions: Sequence[float] = (0.25, 0.5, 1.0)) -> list[tuple[int, ...]]:
    """Every config whose width ``i`` is ``max(1, round(f * widths[i]))`` for ``f`` in ``fractions``
    (duplicates removed, sorted)."""
    choices = [sorted({max(1, round(f * w)) for f in fractions}) for w in widths]
    return sorted(itertools.product(*choices))


# ------------------------------------------------------------------------------------------ teacher
TEACHER_NGF = 32


def pack_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Compact storage for a state dict: tensors with >= 2 dims become int8 with one float32 scale
    per slice along dim 0 (``key`` and ``key + "@scale"``); others are stored in float16."""
    out = {}
    for key, value in state.items():
        value = value.detach().float()
        if value.dim() >= 2:
            scale = value.flatten(1).abs().amax(1).clamp_min(1e-12) / 127.0
            out[key] = (value / scale.view(-1, *[1] * (value.dim() - 1))).round().clamp(-127, 127).to(torch.int8)
            out[key + "@scale"] = scale
        else:
            out[key] = value.half()
    return out


def unpack_state(packed: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Inverse of ``pack_state`` (float32 tensors)."""
    out = {}
    for key, value in packed.items():
        if key.endswith("@scale"):
            continue
        if value.dtype == torch.int8:
            scale = packed[key + "@scale"]
            out[key] = value.float() * scale.view(-1, *[1] * (value.dim() - 1))
        else:
            out[key] = value.float()
    return out


def load_teacher() -> ResnetGenerator:
    """The bundled teacher, ``ResnetGenerator(ngf=32)`` in eval mode (``data_scripts/asset_lab3_teacher.py``;
    SHA-256 checked, a clear error if missing)."""
    from ..assets import load_asset

    net = ResnetGenerator(ngf=TEACHER_NGF)
    try:
        net.load_state_dict(unpack_state(load_asset("lab3_teacher")))
    except RuntimeError as err:
        raise ValueError("the bundled lab3_teacher does not fit ResnetGenerator(ngf=32); rebuild it with "
                         "`python -m data_scripts.build_assets lab3_teacher`") from err
    return net.eval()
