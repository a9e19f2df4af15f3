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
    passed,
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
    assert_true(isinstance(mappers, nn.ModuleList), f"build_mappers must return an nn.ModuleList, got {type(mappers).__name__}")
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
    assert_true(sum(p.numel() for p in mappers.parameters() if p.requires_grad) > 0, "the mappers must have trainable weights")
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
    assert_true(got.requires_grad, "generator_objective: the loss carries no gradient (did you call float() or .item()?)")
    got.backward()
    assert_true(distill.grad is not None, "generator_objective: no gradient reached distill (keep it a tensor)")
    assert_close("d loss / d distill with lambda_distill = 2", distill.grad, torch.tensor(2.0))
    assert_true(logits.grad is not None, "generator_objective: no gradient reached d_fake_logits")
    assert_close("d loss / d logits at logits 0 (4 logits): -sigmoid(0) / 4", logits.grad, torch.full((1, 1, 2, 2), -0.125))
    passed("generator_objective: adversarial, reconstruction (paired and unpaired) and distillation terms, with gradients")


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
    assert_true(got == "c", f"search(budget 40): 'b' (50 MACs) is over budget, so the best is 'c' (score 5); got {got!r}")
    got = call("search", search, list(macs), 50, macs.__getitem__, score.__getitem__)
    assert_true(got == "b", f"search(budget 50): a config with MACs equal to the budget fits; expected 'b', got {got!r}")
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
    "CheckFailed",
    "Lookup",
    "OnePass",
    "check_build_mappers",
    "check_distill_loss",
    "check_generator_objective",
    "check_search",
    "check_super_conv",
    "check_super_conv_macs",
    "executed_ops",
]
