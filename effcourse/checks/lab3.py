"""Self-checks for Lab 3 (GAN Compression). Small examples and invariants only, never the answers."""
from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from .asserts import (
    CheckFailed,
    assert_close,
    assert_shape,
    assert_true,
    call,
    check_tensor,
    clock_seed,
    passed,
    seed_in_failures,
)


def _scalar(name: str, got) -> torch.Tensor:
    got = check_tensor(name, got)
    if got.dim() != 0:
        raise CheckFailed(f"{name}: expected a scalar tensor (shape ()), got shape {tuple(got.shape)}")
    return got


def check_build_mappers(build_mappers) -> None:
    """A ModuleList of one trainable map per feature; each keeps the spatial size and maps
    ``student -> teacher`` channels pixel by pixel."""
    mappers = call("build_mappers", build_mappers, [8, 4, 5], [32, 16, 7])
    assert_true(isinstance(mappers, nn.ModuleList),
                f"build_mappers must return an nn.ModuleList, got {type(mappers).__name__}")
    assert_true(len(mappers) == 3, f"build_mappers([8, 4, 5], [32, 16, 7]): expected 3 mappers, got {len(mappers)}")
    for k, (s, t) in enumerate([(8, 32), (4, 16), (5, 7)]):
        x = torch.randn(2, s, 5, 3)
        y = call(f"mappers[{k}]", mappers[k], x)
        assert_shape(f"mappers[{k}] on (2, {s}, 5, 3)", y, (2, t, 5, 3))
        x2 = x.clone()
        x2[:, :, 2, 1] += 1.0
        changed = (call(f"mappers[{k}]", mappers[k], x2) - y).abs().sum(1) > 1e-6
        assert_true(bool(changed[:, 2, 1].all()) and int(changed.sum()) == 2,
                    f"mappers[{k}] must be a 1x1 convolution: changing one input pixel changed "
                    f"{int(changed.sum())} output pixels (expected exactly that pixel, in each of the 2 images)")
    assert_true(sum(p.numel() for p in mappers.parameters() if p.requires_grad) > 0,
                "the mappers must have trainable weights")
    passed("build_mappers: one 1x1 map per feature, student -> teacher channels")


def check_distill_loss(distill_loss) -> None:
    """Hand-made example with identity-like mappers: the loss is the sum over features of the MSE."""
    torch.manual_seed(0)
    mappers = nn.ModuleList([nn.Conv2d(2, 2, 1, bias=False), nn.Conv2d(3, 3, 1, bias=False)])
    with torch.no_grad():
        for m in mappers:
            m.weight.copy_(torch.eye(m.weight.shape[0]).view_as(m.weight))
    s = [torch.zeros(1, 2, 2, 2), torch.zeros(1, 3, 1, 1)]
    t = [torch.ones(1, 2, 2, 2), torch.full((1, 3, 1, 1), 2.0)]
    got = _scalar("distill_loss", call("distill_loss", distill_loss, s, t, mappers))
    assert_close("distill_loss(zeros vs ones, zeros vs twos) = MSE 1 + MSE 4", got, torch.tensor(5.0))
    same = _scalar("distill_loss", call("distill_loss", distill_loss, t, t, mappers))
    assert_close("distill_loss when the mapped student equals the teacher", same, torch.tensor(0.0))
    passed("distill_loss: sum of per-feature MSEs, zero when the features match")


def check_generator_objective(generator_objective) -> None:
    """Each term on a tiny example: adversarial, paired / unpaired reconstruction, distillation."""
    fake = torch.zeros(1, 1, 2, 2)
    target = torch.ones(1, 1, 2, 2)
    teacher = torch.full((1, 1, 2, 2), 0.5)
    logits = torch.zeros(1, 1, 3, 3)
    got = _scalar("generator_objective", call("generator_objective", generator_objective, None, fake, target,
                                               teacher, 0.0, lambda_recon=1.0))
    assert_close("generator_objective(no D, paired, lambda_recon=1): L1 to the target = 1", got, torch.tensor(1.0))
    got = call("generator_objective", generator_objective, None, fake, target, teacher, 0.0, paired=False,
                lambda_recon=1.0)
    assert_close("generator_objective(no D, unpaired, lambda_recon=1): L1 to the teacher's output = 0.5",
                 _scalar("generator_objective", got), torch.tensor(0.5))
    got = call("generator_objective", generator_objective, logits, fake, fake, teacher, torch.tensor(3.0),
                lambda_recon=100.0, lambda_distill=2.0)
    assert_close("generator_objective(logits 0, perfect recon, distill 3, lambda_distill 2): log 2 + 6",
                 _scalar("generator_objective", got), torch.tensor(6.0 + float(torch.log(torch.tensor(2.0)))))
    # every term keeps its gradient: d/d(distill) = lambda_distill, d/d(logit) = -sigmoid(-logit) / n
    distill = torch.tensor(3.0, requires_grad=True)
    logits = torch.zeros(1, 1, 2, 2, requires_grad=True)
    got = _scalar("generator_objective", call("generator_objective", generator_objective, logits, fake, target, None,
                                                distill, lambda_recon=1.0, lambda_distill=2.0))
    assert_true(got.requires_grad,
                "generator_objective: the loss carries no gradient (did you call float() or .item()?)")
    got.backward()
    assert_true(distill.grad is not None, "generator_objective: no gradient reached distill (keep it a tensor)")
    assert_close("d loss / d distill with lambda_distill = 2", distill.grad, torch.tensor(2.0))
    assert_true(logits.grad is not None, "generator_objective: no gradient reached d_fake_logits")
    assert_close("d loss / d logits at logits 0 (4 logits): -sigmoid(0) / 4", logits.grad,
                 torch.full((1, 1, 2, 2), -0.125))
    passed("generator_objective: adversarial, reconstruction (paired and unpaired) and distillation terms, "
           "with gradients")


def check_super_conv(SuperConv2d) -> None:
    """The full width equals a plain convolution; a narrower call uses the first filters and inputs."""
    torch.manual_seed(0)
    conv = call("SuperConv2d(6, 8, 3, padding=1)", SuperConv2d, 6, 8, 3, padding=1)
    assert_true(isinstance(conv, nn.Conv2d), "SuperConv2d must subclass nn.Conv2d (it keeps the supernet's weight)")
    x = torch.randn(2, 6, 5, 5)
    assert_close("SuperConv2d at full width vs nn.Conv2d with the same weight",
                 call("SuperConv2d.forward", conv, x, 8), F.conv2d(x, conv.weight, conv.bias, padding=1), atol=1e-5)
    y = call("SuperConv2d.forward", conv, x[:, :4], 3)
    assert_shape("SuperConv2d(x with 4 channels, out_channels=3)", y, (2, 3, 5, 5))
    assert_close("SuperConv2d(x with 4 channels, out_channels=3) vs the first 3 filters on the first 4 inputs",
                 y, F.conv2d(x[:, :4], conv.weight[:3, :4], conv.bias[:3], padding=1), atol=1e-5)
    passed("SuperConv2d: full width = plain conv, sub-widths use the leading filters")


def check_super_conv_macs(SuperConv2d) -> None:
    """A narrow call executes only its slice: the convolution it runs has the sliced weight's MACs."""
    torch.manual_seed(0)
    conv = call("SuperConv2d(6, 8, 3, padding=1)", SuperConv2d, 6, 8, 3, padding=1)
    x = torch.randn(1, 4, 5, 5)
    ops = executed_ops(conv, x, 3)
    convs = [o for o in ops if o[0] in ("convolution", "_convolution")]
    expected = 5 * 5 * 3 * 4 * 9
    got = sum(math.prod(out) * math.prod(shapes[1][1:]) for _, shapes, out, _ in convs)
    assert_true(not convs or got == expected,
                f"SuperConv2d(6, 8, 3)(x with 4 channels, out_channels=3) ran convolutions with weights "
                f"{[o[1][1] for o in convs]} ({got} MACs); the slice (3, 4, 3, 3) costs {expected}: compute only "
                "the slice, not the full layer and then a crop")
    passed("SuperConv2d: a narrow call executes only its slice")


def check_search(search) -> None:
    """Four configs, a budget that rules one out: the best remaining one wins."""
    macs = {"a": 10, "b": 50, "c": 30, "d": 31}
    score = {"a": 1.0, "b": 9.0, "c": 5.0, "d": 4.0}
    got = call("search", search, list(macs), 40, macs.__getitem__, score.__getitem__)
    assert_true(got == "c",
                f"search(budget 40): 'b' (50 MACs) is over budget, so the best is 'c' (score 5); got {got!r}")
    got = call("search", search, list(macs), 50, macs.__getitem__, score.__getitem__)
    assert_true(got == "b",
                f"search(budget 50): a config with MACs equal to the budget fits; expected 'b', got {got!r}")
    passed("search: best score among the configs that fit the budget")


# ---------------------------------------------------------------------------------------------
# Test helpers: public, built in the learner's kernel by the judge (effcourse.judge.build /
# in_kernel), so that what the learner's code receives lives where it runs. None is an answer.
class Lookup:
    """A recording table: ``Lookup(table)(key)`` returns ``table[key]`` and appends ``key`` to
    ``.calls`` (a ``count_macs`` or ``evaluate`` for ``search`` that remembers what it was asked)."""

    def __init__(self, table: Mapping[Hashable, Any]):
        self.table = dict(table)
        self.calls: list = []

    def __call__(self, key):
        self.calls.append(key)
        return self.table[key]


class OnePass:
    """An iterator over ``items`` that can be walked only once, like a generator (it has no ``len``)."""

    def __init__(self, items: Iterable):
        self._items = iter(list(items))

    def __iter__(self):
        return self

    def __next__(self):
        return next(self._items)


class SpySupernet(nn.Module):
    """A stand-in for ``pix2pix.SuperGenerator`` with the same interface (``widths``, ``check_config``,
    ``forward(x, config=None, return_features=False)``), *not* a channel-elastic network: block ``k``'s
    feature is ``tanh(pool(x) * scale[k, :t] + size(config) * shift[k, :t])`` with ``t = config[2]``
    channels (it uses only the leading ``t`` entries of its parameter rows), the output mixes the last
    feature, ``x`` and ``size(config)``. Inputs ``(N, 1, H, W)`` with H, W divisible by 4. Every forward
    appends ``(config, return_features)`` to ``.calls`` (plain data)."""

    def __init__(self, widths=(4, 6, 8, 5), n_blocks: int = 3, seed: int = 0):
        super().__init__()
        self.widths, self.n_blocks = tuple(int(w) for w in widths), int(n_blocks)
        g = torch.Generator().manual_seed(int(seed))
        t = self.widths[2]
        self.scale = nn.Parameter(torch.randn(self.n_blocks, t, generator=g))
        self.shift = nn.Parameter(0.5 * torch.randn(self.n_blocks, t, generator=g))
        self.mix = nn.Parameter(torch.randn(3, generator=g))
        self.calls: list = []

    def check_config(self, config) -> tuple:
        if config is None:
            return self.widths
        cfg = tuple(int(c) for c in config)
        if len(cfg) != 4 or any(not 1 <= c <= w for c, w in zip(cfg, self.widths)):
            raise ValueError(f"config must be 4 widths with 1 <= config[i] <= {self.widths}[i], got {tuple(config)}")
        return cfg

    def forward(self, x, config=None, return_features: bool = False):
        cfg = self.check_config(config)
        self.calls.append((cfg, bool(return_features)))
        s, d, t, i = cfg
        size = (s + 2 * d + 3 * i) / (self.widths[0] + 2 * self.widths[1] + 3 * self.widths[3])
        base = F.avg_pool2d(x, 4).mean(1, keepdim=True)                              # (N, 1, H/4, W/4)
        feats = [torch.tanh(base * self.scale[k, :t].view(1, t, 1, 1) + size * self.shift[k, :t].view(1, t, 1, 1))
                 for k in range(self.n_blocks)]                                       # each (N, t, H/4, W/4)
        up = F.interpolate(feats[-1].mean(1, keepdim=True), scale_factor=4, mode="nearest")
        out = torch.tanh(self.mix[0] * up + self.mix[1] * x + self.mix[2] * size)
        return (out, feats) if return_features else out


class ScriptedConfigs:
    """A ``sample_config`` that hands out ``configs`` in order (then starts again); ``.calls`` counts
    its calls and ``.returned`` lists what it returned."""

    def __init__(self, configs):
        self.configs = [tuple(int(c) for c in cfg) for cfg in configs]
        self.calls = 0
        self.returned: list = []

    def __call__(self):
        cfg = self.configs[self.calls % len(self.configs)]
        self.calls += 1
        self.returned.append(cfg)
        return cfg


class ProbeDistill:
    """A stand-in distillation loss (not the MSE): ``sum_k (k + 1) * mean(f_k(S_k) * T_k * w_k)`` with
    fixed random weights ``w_k`` (seeded), linear in each mapped feature. ``.shapes`` logs the shapes of
    the student features of every call."""

    def __init__(self, seed: int = 0):
        self.seed = int(seed)
        self.shapes: list = []

    def __call__(self, student_feats, teacher_feats, mappers):
        self.shapes.append([tuple(s.shape) for s in student_feats])
        g = torch.Generator().manual_seed(self.seed)
        total = 0.0
        for k, (s, t, f) in enumerate(zip(student_feats, teacher_feats, mappers)):
            w = torch.rand(t.shape[1:], generator=g).to(t)
            total = total + (k + 1) * (f(s) * t * w).mean()
        return total


class ProbeObjective:
    """A stand-in generator objective with ``generator_objective``'s signature (not the cGAN + L1 loss):
    ``lambda_recon * mean((fake - ref) * w) + lambda_distill * distill`` (+ ``mean(d_fake_logits)`` when
    given), ``ref = target`` if paired else ``teacher_out``, ``w`` fixed random weights (seeded); linear
    in ``fake`` and in ``distill``. ``.calls`` logs ``{"d_fake_is_none", "paired", "lambda_recon",
    "lambda_distill", "target_shape"}`` per call."""

    def __init__(self, seed: int = 0):
        self.seed = int(seed)
        self.calls: list = []

    def __call__(self, d_fake_logits, fake, target, teacher_out, distill, paired=True, lambda_recon=100.0,
                 lambda_distill=1.0):
        ref = target if paired else teacher_out
        self.calls.append({"d_fake_is_none": d_fake_logits is None, "paired": bool(paired),
                           "lambda_recon": float(lambda_recon), "lambda_distill": float(lambda_distill),
                           "target_shape": None if ref is None else tuple(ref.shape)})
        w = torch.rand(fake.shape[1:], generator=torch.Generator().manual_seed(self.seed)).to(fake)
        loss = lambda_recon * ((fake - ref) * w).mean() + lambda_distill * distill
        return loss if d_fake_logits is None else loss + d_fake_logits.mean()


def check_ofa_step(ofa_step) -> None:
    """One step on a stand-in supernet (``SpySupernet``, widths (4, 6, 8, 5), 3 blocks) at the scripted
    config (2, 3, 4, 5): one config drawn, the supernet run at it, the distillation fed features as wide
    as the mappers' input, a scalar loss whose gradient stays in the sampled channels."""
    torch.manual_seed(0)
    net = SpySupernet((4, 6, 8, 5), 3, seed=1)
    mappers = nn.ModuleList([nn.Conv2d(8, 7, 1) for _ in range(3)])
    sampler, distill, objective = ScriptedConfigs([(2, 3, 4, 5)]), ProbeDistill(2), ProbeObjective(3)
    x, y = torch.randn(2, 1, 8, 8), torch.randn(2, 1, 8, 8)
    t_feats = [torch.randn(2, 7, 2, 2) for _ in range(3)]
    loss = _scalar("ofa_step", call("ofa_step", ofa_step, net, mappers, x, y, t_feats, sampler, objective, distill,
                                    lambda_recon=50.0, lambda_distill=10.0))
    assert_true(sampler.calls == 1, f"ofa_step should draw one config per step (call sample_config once), it called "
                                    f"it {sampler.calls} times")
    assert_true(bool(net.calls) and all(c == (2, 3, 4, 5) for c, _ in net.calls),
                "ofa_step should run the supernet at the drawn config (2, 3, 4, 5), it ran it at "
                f"{[c for c, _ in net.calls]}")
    assert_true(distill.shapes == [[(2, 8, 2, 2)] * 3],
                f"distill should get each block output widened to the mappers' 8 input channels, once; got the "
                f"student shapes {distill.shapes}")
    assert_true(len(objective.calls) == 1 and objective.calls[0]["d_fake_is_none"] and objective.calls[0]["paired"],
                f"ofa_step should call the objective once, without discriminator logits (None), paired; got "
                f"{objective.calls}")
    assert_true(loss.requires_grad, "ofa_step's loss carries no gradient")
    loss.backward()
    assert_true(net.scale.grad is not None and net.scale.grad[:, :4].abs().sum() > 0,
                "no gradient reached the sampled channels of the supernet")
    assert_true(net.scale.grad[:, 4:].abs().sum() == 0, "a gradient reached trunk channels 4..7, which the sampled "
                                                         "sub-network (trunk 4) does not use")
    assert_true(all(m.weight.grad is not None and m.weight.grad[:, 4:].abs().sum() == 0 for m in mappers),
                "the mappers' weights for the unused trunk channels 4..7 got a gradient: the sub-network's features "
                "have only 4 channels (pad them with zeros, or slice the mappers' input channels)")
    passed("ofa_step: one drawn config, the supernet at it, features as wide as the mappers, gradients in the "
           "sampled channels")


_MAC_OPS = ("convolution", "_convolution", "mm", "addmm", "bmm", "baddbmm")


class _RecordOps(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.ops: list = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        name = func.overloadpacket.__name__
        if name in _MAC_OPS:
            shapes = [tuple(a.shape) if isinstance(a, torch.Tensor) else None for a in args[:3]]
            transposed = bool(args[6]) if name in ("convolution", "_convolution") and len(args) > 6 else False
            self.ops.append((name, shapes, tuple(out.shape), transposed))
        return out


def executed_ops(fn, *args, **kwargs) -> list:
    """Run ``fn(*args, **kwargs)`` under ``torch.no_grad()`` and list the multiply-accumulate
    heavy ops it executed: ``[(op, [shape of argument 0, 1, 2], output shape, transposed)]`` for
    every convolution and matrix product (``mm``, ``addmm``, ``bmm``, ``baddbmm``), in order.
    The MACs of a run can be computed from these shapes alone."""
    mode = _RecordOps()
    with torch.no_grad(), mode:
        fn(*args, **kwargs)
    return mode.ops


__all__ = [
    "clock_seed",
    "seed_in_failures",
    "CheckFailed",
    "Lookup",
    "OnePass",
    "ProbeDistill",
    "ProbeObjective",
    "ScriptedConfigs",
    "SpySupernet",
    "check_ofa_step",
    "check_build_mappers",
    "check_distill_loss",
    "check_generator_objective",
    "check_search",
    "check_super_conv",
    "check_super_conv_macs",
    "executed_ops",
]
