"""Public self-checks for Lab 4 (Anycost GAN): small examples and invariants, never the answers.

The training step is checked on a tiny GAN full of spies: a generator and a teacher that record every
call, a discriminator that records what it is shown, optimisers (plain SGD) that log their calls, a
*scripted* ``sample_ratios`` that hands out fixed configurations in order (it does not sample), and a
*probe* ``consistency_loss`` (a fixed linear function of the sub-output, not a consistency loss). The
step's own functions are therefore never needed, and a step is judged on what it does with them.
"""
from __future__ import annotations

import contextlib
import copy
import warnings

import torch
import torch.nn.functional as F
from torch import nn

from ..gan import anycost
from .asserts import (
    CheckFailed,
    assert_close,
    assert_raises,
    assert_shape,
    assert_true,
    call,
    clock_seed,
    passed,
    seed_in_failures,
)

CHOICES = anycost.RATIO_CHOICES
D_LR, G_LR = 0.05, 1.0  # learning rates of the spy optimisers (plain SGD: an update is -lr * gradient)


@contextlib.contextmanager
def quiet():
    """Silence warnings while learner code runs: nbgrader scores a grade cell that wrote to stderr 0,
    and a harmless warning (``float()`` of a tensor that requires grad) is not a wrong answer."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _conv(cin: int, cout: int, k: int = 3, seed: int = 0, **kw) -> nn.Conv2d:
    torch.manual_seed(seed)
    return nn.Conv2d(cin, cout, k, padding=k // 2, **kw)


# ---- sort_channels ------------------------------------------------------------------------------
def check_sort_channels(sort_channels) -> None:
    layer, nxt = _conv(3, 6, seed=1), _conv(6, 4, seed=2)
    with torch.no_grad():
        nxt.weight[:, 2] *= 5.0          # the next layer leans hardest on channel 2: the most important
        nxt.weight[:, 4] *= 0.1          # and barely uses channel 4 ...
        layer.weight[4] *= 8.0           # ... although channel 4's own filter is the largest (a decoy)
    net = nn.Sequential(layer, nn.LeakyReLU(0.2), nxt)
    x = torch.randn(2, 3, 7, 7, generator=torch.Generator().manual_seed(0))
    before = net(x).detach()
    old_w, old_next = layer.weight.detach().clone(), nxt.weight.detach().clone()
    perm = call("sort_channels(layer, next_layer)", sort_channels, layer, nxt)
    assert_true(isinstance(perm, torch.Tensor), f"sort_channels should return the permutation (a LongTensor), "
                                                f"got {type(perm).__name__}")
    assert_true(sorted(perm.tolist()) == list(range(6)), f"expected a permutation of 0..5, got {perm.tolist()}")
    perm = perm.long()
    assert_close("layer.weight after sorting (expected old_weight[perm])", layer.weight.detach(), old_w[perm])
    assert_close("next_layer.weight after sorting (expected old_next_weight[:, perm])", nxt.weight.detach(),
                 old_next[:, perm])
    imp = nxt.weight.detach().abs().sum(dim=(0, 2, 3))
    assert_true(int(perm[0]) == 2, f"the next layer's weights on channel 2 have the largest L1 norm, so channel 2 "
                                   f"should come first; perm = {perm.tolist()}")
    assert_true(int(perm[-1]) == 4, "channel 4 has the largest filter of its own but the next layer barely uses it: "
                                    f"it should come last; perm = {perm.tolist()}")
    assert_true(bool((imp[:-1] >= imp[1:]).all()), f"importance should be non-increasing, got {imp.tolist()}")
    assert_close("network output after sorting", net(x).detach(), before, atol=1e-5)
    passed("sort_channels: ranked by the next layer's use of each channel, output unchanged")


# ---- ElasticConv2d ------------------------------------------------------------------------------
def check_elastic_conv(cls) -> None:
    torch.manual_seed(0)
    conv = call("ElasticConv2d(4, 6, 3, padding=1)", cls, 4, 6, 3, padding=1)
    assert_true(isinstance(conv, nn.Conv2d), "ElasticConv2d should subclass nn.Conv2d")
    assert_true(getattr(conv, "ratio", None) == 1.0, f"a new ElasticConv2d should have ratio 1.0, "
                                                     f"got {getattr(conv, 'ratio', None)!r}")
    x = torch.randn(2, 4, 5, 5)
    dense = F.conv2d(x, conv.weight, conv.bias, padding=1)
    assert_close("ratio 1 output (the dense conv)", call("conv(x) at ratio 1", conv, x), dense)
    conv.ratio = 0.5
    out = call("conv(x) at ratio 0.5", conv, x)
    assert_shape("ratio 0.5 output (first 3 of 6 channels)", out, (2, 3, 5, 5))
    assert_close("ratio 0.5 output (a prefix of the dense output)", out, dense[:, :3])
    out = call("conv(x[:, :2]) at ratio 0.5", conv, x[:, :2])
    assert_shape("output for 2 input channels at ratio 0.5", out, (2, 3, 5, 5))
    conv.ratio = 0.01
    assert_shape("ratio 0.01 output (at least one channel)", call("conv(x) at ratio 0.01", conv, x), (2, 1, 5, 5))
    passed("ElasticConv2d: ratio 1 is dense, smaller ratios are prefixes")


# ---- sample_ratios ------------------------------------------------------------------------------
def check_sample_ratios(sample_ratios) -> None:
    for mode in ("uniform", "flexible"):
        r = call(f"sample_ratios(6, CHOICES, {mode!r}, generator)", sample_ratios, 6, CHOICES, mode,
                 torch.Generator().manual_seed(0))
        r = [float(v) for v in r]
        assert_true(len(r) == 6, f"{mode}: expected 6 ratios, got {len(r)}")
        assert_true(all(v in CHOICES for v in r), f"{mode}: ratios must come from {CHOICES}, got {r}")
        again = [float(v) for v in sample_ratios(6, CHOICES, mode, torch.Generator().manual_seed(0))]
        assert_true(again == r, f"{mode}: the same seeded generator should give the same ratios, got {r} then {again}")
    gen = torch.Generator().manual_seed(1)
    draws = [[float(v) for v in sample_ratios(5, CHOICES, "uniform", gen)] for _ in range(20)]
    mixed = [d for d in draws if len(set(d)) > 1]
    assert_true(not mixed, f"uniform mode: one ratio for all layers, got e.g. {mixed[:1]}")
    flex = [[float(v) for v in sample_ratios(8, CHOICES, "flexible", gen)] for _ in range(20)]
    assert_true(any(len(set(d)) > 1 for d in flex), "flexible mode: each layer draws its own ratio, but every draw "
                                                    "gave all layers the same one")
    passed("sample_ratios: choices, uniform and flexible modes, reproducible from the generator")


def check_sample_ratios_validation(sample_ratios) -> None:
    err = assert_raises("sample_ratios with mode='nope'",
                        lambda: sample_ratios(3, CHOICES, "nope", torch.Generator()), Exception)
    assert_true(isinstance(err, ValueError), f"an unknown mode should raise ValueError, got {type(err).__name__}")
    passed("sample_ratios: an unknown mode is a ValueError")


# ---- ArchModulation -----------------------------------------------------------------------------
def check_arch_modulation(cls) -> None:
    torch.manual_seed(0)
    mod = call("ArchModulation(8, 5)", cls, 8, 5)
    h = torch.randn(3, 5, 4, 4)
    code = F.one_hot(torch.tensor([0, 3, 7]), 8).float()
    assert_close("zero-initialised ArchModulation (should be the identity)", call("mod(h, code)", mod, h, code), h)
    assert_true(len(list(mod.parameters())) > 0, "ArchModulation should have parameters (gamma and beta)")
    passed("ArchModulation: zero-initialised it is the identity")


# ---- consistency_loss ---------------------------------------------------------------------------
def check_consistency_loss(consistency_loss) -> None:
    sub = torch.randn(2, 1, 4, 4, requires_grad=True)
    full = F.interpolate(sub.detach(), scale_factor=4, mode="nearest").requires_grad_(True)
    loss = call("consistency_loss(sub, full)", consistency_loss, sub, full)
    assert_true(isinstance(loss, torch.Tensor) and loss.dim() == 0, "consistency_loss should return a scalar tensor")
    assert_true(abs(loss.item()) < 1e-10, f"a sub-output equal to the downsampled full output should give 0, "
                                          f"got {loss.item():.4g}")
    loss = consistency_loss(torch.full((2, 1, 8, 8), 0.5, requires_grad=True), torch.full((2, 1, 16, 16), -0.5))
    assert_true(abs(loss.item() - 1.0) < 1e-6,
                f"constant 0.5 vs constant -0.5 should give MSE 1, got {loss.item():.4g}")
    s = torch.zeros(1, 1, 8, 8, requires_grad=True)
    f = torch.ones(1, 1, 16, 16, requires_grad=True)
    consistency_loss(s, f).backward()
    assert_true(s.grad is not None and s.grad.abs().sum() > 0, "the loss should send gradient into sub_out")
    assert_true(f.grad is None or f.grad.abs().sum() == 0, "no gradient may flow into full_out (detach it)")
    passed("consistency_loss: zero when consistent, MSE at the sub resolution, no gradient into full_out")


# ---- training step: spies -----------------------------------------------------------------------
class _RatioShiftedConv(nn.Conv2d):
    """A plain conv whose output is shifted by ``ratio - 1`` (its ``ratio`` attribute). It is *not* an
    elastic conv: it only makes the spy generator's output depend on the configuration that was set."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.ratio = 1.0

    def forward(self, x):
        return super().forward(x) + (self.ratio - 1.0)


class SpyGenerator(anycost.AnycostGenerator):
    """An AnycostGenerator that logs every forward: ``{"z", "target", "ratios", "images", "grad"}``."""

    def __init__(self, *args, log: list | None = None, name: str = "G", **kwargs):
        super().__init__(*args, **kwargs)
        self.calls: list[dict] = []
        self._log = log if log is not None else []
        self._name = name

    def forward_all(self, z, target_resolution=None):
        images = super().forward_all(z, target_resolution)
        self.calls.append({"z": z.detach().clone(), "target": images[-1].shape[-1], "ratios": tuple(self.ratios),
                           "images": [x.detach().clone() for x in images], "grad": torch.is_grad_enabled()})
        self._log.append((self._name, len(self.calls) - 1))
        return images


class SpyDiscriminator(nn.Module):
    """Wraps a discriminator; logs ``(images, code, images.requires_grad)`` of every call."""

    def __init__(self, D: nn.Module, log: list | None = None):
        super().__init__()
        self.D = D
        self.calls: list[tuple] = []
        self._log = log if log is not None else []

    def forward(self, x, code=None):
        self.calls.append((x.detach().clone(), None if code is None else torch.as_tensor(code).detach().clone(),
                           bool(x.requires_grad)))
        self._log.append(("D", len(self.calls) - 1))
        return self.D(x, code)


class _CodeShift(nn.Module):
    """The spy D's conditioning: adds a code-dependent shift to the features (not ``ArchModulation``)."""

    def __init__(self, code_dim: int, channels: int):
        super().__init__()
        self.beta = nn.Linear(code_dim, channels)

    def forward(self, h, code):
        return h + self.beta(code)[:, :, None, None]


class SpySGD:
    """Plain SGD (``p -= lr * p.grad``) that logs its ``zero_grad`` and ``step`` calls under its name.
    It has the parts of the ``torch.optim.Optimizer`` interface a training step uses."""

    def __init__(self, params, lr: float, log: list, name: str):
        self.param_groups = [{"params": list(params), "lr": float(lr)}]
        self.state: dict = {}
        self._log, self._name = log, name

    def zero_grad(self, set_to_none: bool = True):
        self._log.append((f"{self._name}.zero_grad", None))
        for p in self.param_groups[0]["params"]:
            if p.grad is not None:
                if set_to_none:
                    p.grad = None
                else:
                    p.grad.detach_().zero_()

    @torch.no_grad()
    def step(self, closure=None):
        self._log.append((f"{self._name}.step", None))
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    p.add_(p.grad, alpha=-group["lr"])
        return loss


class ScriptedSampler:
    """Stands in for ``sample_ratios`` without sampling: call i returns ``configs[i]`` (cycling) and the
    call's arguments are recorded. It ignores ``mode`` and never touches the generator."""

    def __init__(self, configs, log: list | None = None):
        self.configs = [list(map(float, c)) for c in configs]
        self.calls: list[dict] = []
        self.returned: list[list[float]] = []
        self._log = log if log is not None else []

    def __call__(self, n_layers, choices=CHOICES, mode="uniform", generator=None):
        out = list(self.configs[len(self.calls) % len(self.configs)])
        self.calls.append({"n_layers": n_layers, "choices": tuple(float(c) for c in choices), "mode": mode,
                           "generator": generator})
        self.returned.append(out)
        self._log.append(("sample_ratios", len(self.calls) - 1))
        return list(out)


class ProbeConsistency:
    """Stands in for ``consistency_loss``: a fixed linear probe of the sub-output, ``mean(w_r * sub_out)``
    (``w_r`` random, one per resolution). Not a consistency loss: it only makes the term's gradient
    traceable. Records ``(sub_out, full_out)`` of every call."""

    def __init__(self, resolutions, img_channels: int = 1, seed: int = 0, log: list | None = None):
        g = torch.Generator().manual_seed(int(seed) + 11)
        self.w = {int(r): torch.randn(1, img_channels, r, r, generator=g) for r in resolutions}
        self.calls: list[tuple] = []
        self._log = log if log is not None else []

    def value(self, sub_out):
        r = int(sub_out.shape[-1])
        if r not in self.w:
            raise ValueError(f"consistency_loss got a sub-output at {tuple(sub_out.shape[-2:])}, not one of the "
                             f"generator's resolutions {sorted(self.w)}")
        return (sub_out * self.w[r]).mean()

    def __call__(self, sub_out, full_out):
        self.calls.append((sub_out, full_out))
        self._log.append(("consistency_loss", len(self.calls) - 1))
        return self.value(sub_out)


def tiny_gan(seed: int = 0, choices=CHOICES, log: list | None = None, g_lr: float = G_LR, d_lr: float = D_LR):
    """The spies' tiny GAN: ``(G, D, teacher, g_opt, d_opt, log)``.

    G and the teacher are ``SpyGenerator``s (8/16/32 px, ``_RatioShiftedConv`` layers); the
    teacher has its own weights and requires no gradient. D is a ``SpyDiscriminator`` around a conditioned
    ``AnycostDiscriminator``. The optimisers are ``SpySGD`` with learning rates ``g_lr`` and ``d_lr``.
    """
    log = [] if log is None else log
    torch.manual_seed(seed)
    kw = {"z_dim": 4, "channels": (6, 4, 3), "choices": tuple(choices), "log": log}
    G = SpyGenerator(_RatioShiftedConv, name="G", **kw)
    teacher = SpyGenerator(_RatioShiftedConv, name="teacher", **kw)
    teacher.eval().requires_grad_(False)
    D = anycost.AnycostDiscriminator(channels=(3, 4, 5))
    D.add_modulation(_CodeShift, G.code_dim)
    D = SpyDiscriminator(D, log)
    g_opt = SpySGD(G.parameters(), g_lr, log, "g_opt")
    d_opt = SpySGD(D.parameters(), d_lr, log, "d_opt")
    return G, D, teacher, g_opt, d_opt, log


def _configs(seed: int, n_layers: int, choices, mode: str) -> list[list[float]]:
    """Two different configurations for the scripted sampler; where the choices allow it, neither is the
    all-ones configuration a generator starts in (so that a step which never sets it is caught)."""
    g = torch.Generator().manual_seed(int(seed) + 3)
    k = len(choices)
    ones = [max(choices)] * n_layers
    pairs = []
    for _ in range(100):
        if mode == "flexible":
            a, b = (torch.randint(k, (n_layers,), generator=g) for _ in range(2))
        else:
            a, b = (torch.randint(k, (1,), generator=g).expand(n_layers) for _ in range(2))
        pair = [[float(choices[i]) for i in a], [float(choices[i]) for i in b]]
        if pair[0] != pair[1] or k == 1:
            if ones not in pair:
                return pair
            pairs.append(pair)
    return pairs[0]


def _params(module: nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.parameters()]


def _fingerprint(generator) -> int | None:
    """What the judge can compare of a ``torch.Generator`` that reached a spy: its initial seed."""
    return int(generator.initial_seed()) if isinstance(generator, torch.Generator) else None


class StepRig:
    """The spies of one training step, built where the learner's code runs (the hidden tests build it
    with ``effcourse.judge.build("effcourse.checks.lab4.StepRig", ...)``; locally it is just an object).

    ``args()`` are the step's positional arguments ``(G, D, real, g_opt, d_opt, generator, teacher,
    sample_ratios, consistency_loss)`` on the spies' tiny GAN (``tiny_gan(seed, choices)``), with a
    scripted sampler and a probe consistency loss; ``step_kwargs()`` its keyword arguments.
    ``report()`` is everything the spies logged, as plain data (tensors, numbers, lists, dicts):
    ``G_calls``/``T_calls`` (the generator's and the teacher's forwards), ``D_calls`` ``(images, code,
    requires_grad)``, ``log`` (the order of events), ``sampler_calls`` (arguments; ``generator`` is the
    initial seed of the generator it got), ``sampler_returned``, ``cons_calls`` ``(sub_out,
    sub_out.requires_grad, full_out)``, ``dG``/``dD`` (each parameter's change since construction) and
    ``teacher_changed``. With ``garbage`` every parameter's ``.grad`` is pre-filled with large random
    values (a correct step clears them before each backward).
    """

    def __init__(self, seed: int = 0, batch: int = 3, mode: str = "uniform", n_res: int = 1,
                 lambda_consistency: float = 1.0, choices=CHOICES, garbage: bool = True, g_lr: float = G_LR,
                 d_lr: float = D_LR):
        seed = int(seed)
        self.choices = tuple(float(c) for c in choices)
        self.G, self.D, self.teacher, self.g_opt, self.d_opt, self.log = tiny_gan(seed, self.choices, g_lr=g_lr,
                                                                                   d_lr=d_lr)
        if garbage:
            gg = torch.Generator().manual_seed(seed + 5)
            for p in list(self.G.parameters()) + list(self.D.parameters()):
                p.grad = 100 * torch.randn(p.shape, generator=gg)
        self.real = torch.rand(batch, 1, 32, 32, generator=torch.Generator().manual_seed(seed + 100)) * 2 - 1
        self.sampler = ScriptedSampler(_configs(seed, self.G.n_layers, self.choices, mode), self.log)
        self.cons = ProbeConsistency(self.G.resolutions, seed=seed, log=self.log)
        self.gen = torch.Generator().manual_seed(seed + 7)
        self.kwargs = {"choices": self.choices, "mode": mode, "n_res": int(n_res),
                       "lambda_consistency": float(lambda_consistency)}
        self._before = (_params(self.G), _params(self.D), _params(self.teacher))

    def args(self) -> tuple:
        return (self.G, self.D, self.real, self.g_opt, self.d_opt, self.gen, self.teacher, self.sampler, self.cons)

    def step_kwargs(self) -> dict:
        return dict(self.kwargs)

    def report(self) -> dict:
        before_g, before_d, before_t = self._before
        return {
            "G_calls": list(self.G.calls), "T_calls": list(self.teacher.calls), "D_calls": list(self.D.calls),
            "log": list(self.log),
            "sampler_calls": [{**c, "generator": _fingerprint(c["generator"])} for c in self.sampler.calls],
            "sampler_returned": [list(r) for r in self.sampler.returned],
            "cons_calls": [(s.detach().clone(), bool(s.requires_grad), torch.as_tensor(f).detach().clone())
                           for s, f in self.cons.calls],
            "dG": [a.detach() - b for a, b in zip(self.G.parameters(), before_g)],
            "dD": [a.detach() - b for a, b in zip(self.D.parameters(), before_d)],
            "teacher_changed": any(not torch.equal(a.detach(), b) for a, b in zip(self.teacher.parameters(), before_t)),
        }


def _moved(module: nn.Module, deltas: list[torch.Tensor]) -> nn.Module:
    """A copy of ``module`` with each parameter moved by the matching delta."""
    m = copy.deepcopy(module)
    with torch.no_grad():
        for p, d in zip(m.parameters(), deltas):
            p.add_(torch.as_tensor(d).to(p.dtype).reshape(p.shape))
    return m


def run_step(anycost_step, seed: int = 0, batch: int = 3, mode: str = "uniform", n_res: int = 1,
             lambda_consistency: float = 1.0, choices=CHOICES, garbage: bool = True, global_seed: int | None = None,
             copies: bool = True) -> dict:
    """One call of the learner's step on a ``StepRig`` (built where the learner's code runs: in the judge
    through ``effcourse.judge.build``, locally as a plain object); returns what was seen, as plain data.

    With ``global_seed`` torch's global RNG (in the learner's kernel too) is seeded with it right before
    the call (a step should draw from its generator only). Keys: ``out`` (what the step returned),
    ``rep`` (``StepRig.report()``), ``real``, ``gen_seed`` (the initial seed of the generator passed in),
    ``g_lr``, ``d_lr``, ``G0``/``D0`` (the tiny GAN before the step, rebuilt here from its seed),
    ``G``/``D`` (the same moved by the reported changes), ``cons`` (the probe), ``dG``/``dD``.
    ``copies`` is accepted for compatibility (the models are always rebuilt here).
    """
    from ..judge import api as judge

    choices = tuple(float(c) for c in choices)
    rig = judge.build("effcourse.checks.lab4.StepRig", seed=int(seed), batch=int(batch), mode=mode, n_res=int(n_res),
                      lambda_consistency=float(lambda_consistency), choices=choices, garbage=bool(garbage))
    args, kwargs = rig.args(), rig.step_kwargs()
    if global_seed is not None:
        judge.manual_seed(int(global_seed))
    with quiet():
        out = call("anycost_step(G, D, real, g_opt, d_opt, generator, teacher, sample_ratios, consistency_loss, ...)",
                   anycost_step, *args, **kwargs)
    rep = rig.report()
    G0, D0, teacher0, _, _, _ = tiny_gan(int(seed), choices)
    real = torch.rand(batch, 1, 32, 32, generator=torch.Generator().manual_seed(int(seed) + 100)) * 2 - 1
    dG, dD = list(rep["dG"]), list(rep["dD"])
    assert_true(len(dG) == len(list(G0.parameters())) and len(dD) == len(list(D0.parameters())),
                "the spies' report does not match the tiny GAN (its parameters changed in number)")
    return {"out": out, "rep": rep, "real": real, "gen_seed": int(seed) + 7, "g_lr": G_LR, "d_lr": D_LR,
            "G0": G0, "D0": D0, "G": _moved(G0, dG), "D": _moved(D0, dD), "teacher": teacher0,
            "cons": ProbeConsistency(G0.resolutions, seed=int(seed)), "lambda": float(lambda_consistency),
            "n_res": n_res, "mode": mode, "choices": choices, "dG": dG, "dD": dD,
            "teacher_changed": bool(rep["teacher_changed"])}


def _resolutions(out, n_res: int, G) -> list[int]:
    res = out.get("resolutions")
    if isinstance(res, (int, float)) or (isinstance(res, torch.Tensor) and res.numel() == 1):
        res = [res]
    assert_true(isinstance(res, (list, tuple, torch.Tensor)),
                f"out['resolutions'] should be the list of sampled resolutions, got {type(res).__name__}")
    res = [int(r) for r in res]
    assert_true(len(res) == n_res and len(set(res)) == n_res and set(res) <= set(G.resolutions),
                f"with n_res={n_res} the step should sample {n_res} different resolutions of {G.resolutions}, "
                f"returned {res}")
    return res


def _rows_match(a: torch.Tensor, pool: list[torch.Tensor]) -> bool:
    """Every row (image) of ``a`` appears among the rows of ``pool``."""
    if not pool:
        return False
    seen = torch.cat([p.flatten(1) for p in pool]).double()
    return bool((torch.cdist(a.flatten(1).double(), seen).min(dim=1).values < 1e-5).all())


def facts(run: dict) -> dict:
    """What the step did, read from the spies' report (raises ``CheckFailed`` when it cannot be read).

    ``res`` (the sampled resolutions), ``fake_ratios``/``real_ratios`` (the two scripted configurations:
    the one G was run with, and the other), ``z``, ``fakes`` ({resolution: G's output}),
    ``teacher_out``, ``d_step``/``g_step`` (D's calls before / after ``d_opt.step()``).
    """
    out, G, rep = run["out"], run["G"], run["rep"]
    log, d_calls, g_calls = rep["log"], rep["D_calls"], rep["G_calls"]
    assert_true(isinstance(out, dict), f"anycost_step should return a dict, got {type(out).__name__}")
    missing = {"d_loss", "g_loss", "consistency", "resolutions", "ratios"} - set(out)
    assert_true(not missing, f"the returned dict lacks {sorted(missing)}")
    res = _resolutions(out, run["n_res"], G)
    calls = rep["sampler_calls"]
    assert_true(len(calls) == 2,
                f"sample_ratios should be called twice per step (one configuration for the fakes, an independent "
                f"one for the reals' code), was called {len(calls)} time(s)")
    for c in calls:
        ok_gen = c["generator"] == run["gen_seed"]
        assert_true(c["n_layers"] == G.n_layers and c["mode"] == run["mode"] and tuple(c["choices"]) == run["choices"]
                    and ok_gen,
                    f"sample_ratios should get (G.n_layers={G.n_layers}, choices={run['choices']}, "
                    f"mode={run['mode']!r}, "
                    f"generator); got n_layers={c['n_layers']}, choices={tuple(c['choices'])}, mode={c['mode']!r}, "
                    f"generator {'ok' if ok_gen else 'not the one passed in'}")
    assert_true(len(g_calls) > 0, "the step never ran G")
    used = {tuple(float(r) for r in c["ratios"]) for c in g_calls}
    configs = [tuple(float(v) for v in r) for r in rep["sampler_returned"]]
    assert_true(len(used) == 1 and next(iter(used)) in configs,
                f"G should run with one configuration, a sample_ratios draw ({configs}); it ran with {sorted(used)}")
    fake_ratios = list(next(iter(used)))
    real_ratios = list(configs[1 - configs.index(tuple(fake_ratios))])
    got = [float(r) for r in out["ratios"]]
    assert_true(got == fake_ratios, f"out['ratios'] is {got}, but G was run with {fake_ratios}")
    z = g_calls[0]["z"]
    assert_true(all(c["z"].shape == z.shape and torch.equal(c["z"], z) for c in g_calls),
                "every run of G in one step should use the same latents z")
    assert_true(len(z) == len(run["real"]), f"z should have one row per real image ({len(run['real'])}), got {len(z)}")
    fakes = {}
    for c in g_calls:
        for img in c["images"]:
            fakes.setdefault(img.shape[-1], img)
    assert_true(set(G.resolutions) <= set(fakes),
                f"the step should produce G's output at every resolution {G.resolutions} (the consistency term covers "
                f"all of them); it produced {sorted(fakes)}")
    t_calls = rep["T_calls"]
    assert_true(len(t_calls) > 0, "the step never ran the teacher")
    top = G.resolutions[-1]
    tcalls = [c for c in t_calls if c["target"] == top and c["z"].shape == z.shape and torch.equal(c["z"], z)]
    assert_true(bool(tcalls), f"the teacher should be run on the same z at its top resolution {top} (teacher(z))")
    assert_true(not run["teacher_changed"], "the teacher is frozen: the step must not change its weights")
    steps = [i for i, (ev, _) in enumerate(log) if ev == "d_opt.step"]
    gsteps = [i for i, (ev, _) in enumerate(log) if ev == "g_opt.step"]
    assert_true(len(steps) == 1 and len(gsteps) == 1,
                f"one step calls d_opt.step() once and g_opt.step() once; got {len(steps)} and {len(gsteps)}")
    d_step = [d_calls[i] for j, (ev, i) in enumerate(log) if ev == "D" and j < steps[0]]
    g_step = [d_calls[i] for j, (ev, i) in enumerate(log) if ev == "D" and j > steps[0]]
    return {"res": res, "fake_ratios": fake_ratios, "real_ratios": real_ratios, "z": z, "fakes": fakes,
            "teacher_out": tcalls[0]["images"][-1], "d_step": d_step, "g_step": g_step,
            "d_before_g": steps[0] < gsteps[0]}


def _rows(calls: list[tuple]) -> list[tuple]:
    """D's recorded calls split into single images: ``(image (1, C, R, R), code (code_dim,), requires_grad)``."""
    rows = []
    for x, c, g in calls:
        if c is None:
            raise CheckFailed("D must be called with an architecture code: D(images, code)")
        c = c.reshape(-1, c.shape[-1]).expand(len(x), -1)
        rows += [(x[i:i + 1], c[i], g) for i in range(len(x))]
    return rows


def _gap(D, real, fakes, res, code_real, code_fake) -> float:
    with torch.no_grad():
        return sum(float(D(anycost.resize(real, r), code_real).mean() - D(fakes[r], code_fake).mean()) for r in res)


def verify_step(anycost_step, seed: int = 0, batch: int = 3, mode: str = "uniform", n_res: int = 1,
                lambda_consistency: float = 1.0, choices=CHOICES, signs: bool = True) -> dict:
    """The properties of one training step (the visible check; the hidden tests call it too). Returns the
    main run (``run_step`` with garbage-filled gradients) with its ``facts`` under ``"facts"``.

    ``signs``: also check that D's step widens D's real-minus-fake logit gap and that G's step (without
    the consistency term) makes the updated D rate the fakes as more real. These are first-order
    statements about one finite SGD step: true for the reference at the visible check's seed, not
    guaranteed at every seed (the hidden tests compare the updates with a replay instead)."""
    if lambda_consistency <= 0:
        raise ValueError("verify_step needs lambda_consistency > 0 (it also runs the step with 0 and twice the value)")
    run = run_step(anycost_step, seed, batch, mode, n_res, lambda_consistency, choices)
    f = facts(run)
    G, res, n = run["G"], f["res"], batch
    code = G.arch_code(f["fake_ratios"]).expand(n, -1)
    code_real = G.arch_code(f["real_ratios"]).expand(n, -1)
    fakes = f["fakes"]
    # D's step: reals resized to each sampled resolution with the reals' code, fakes detached with theirs
    assert_true(bool(f["d_step"]), "D should be trained before G in each step: no call of D before d_opt.step()")
    assert_true(all(not g for _, _, g in f["d_step"]),
                "in D's step the fakes must be detached from G (D's loss may not reach G): pass fake.detach() to D")
    for x, c, _ in f["d_step"] + f["g_step"]:
        assert_true(c is not None, "D must be called with an architecture code: D(images, code)")
        assert_true(x.shape[-1] in res, f"D was shown images of size {tuple(x.shape[-2:])}, but this step sampled "
                                        f"the resolutions {res} (reals are resized to match with anycost.resize)")
    shown = _rows(f["d_step"])
    for r in res:
        real_r = anycost.resize(run["real"], r)
        reals = [x for x, c, _ in shown if x.shape[-1] == r and torch.allclose(c, code_real[0])]
        assert_true(_rows_match(real_r, reals),
                    f"in D's step, D should see the reals resized to {r}x{r} (anycost.resize(real, {r})) with the code "
                    f"of the *other* sample_ratios draw ({f['real_ratios']}), the reals' random architecture code")
        fakes_shown = [x for x, c, _ in shown if x.shape[-1] == r and torch.allclose(c, code[0])]
        assert_true(_rows_match(fakes[r], fakes_shown),
                    f"in D's step, D should see G's {r}x{r} output with the code of G's configuration "
                    f"{f['fake_ratios']}")
    assert_true(bool(f["g_step"]), "G's step should ask the updated D (after d_opt.step()) to judge the fakes")
    for r in res:
        judged = [x for x, c, g in _rows(f["g_step"]) if x.shape[-1] == r and g and torch.allclose(c, code[0])]
        assert_true(_rows_match(fakes[r], judged),
                    f"in G's step, D (after its update) should judge G's {r}x{r} output, with its gradient and the "
                    f"code of G's configuration")
    assert_true(all(x.shape[-1] in res for x, _, _ in f["g_step"]),
                f"the adversarial terms are taken only at the sampled resolutions {res}")
    # the consistency term: every resolution of G against the teacher's output
    cons_calls = run["rep"]["cons_calls"]
    sizes = sorted(int(s.shape[-1]) for s, _, _ in cons_calls)
    assert_true(sizes == sorted(G.resolutions),
                f"consistency_loss should be called once per resolution of G {G.resolutions} (distillation at every "
                f"resolution), got calls at {sizes}")
    for s, grad, full in cons_calls:
        assert_true(grad, "the sub-output passed to consistency_loss should carry G's gradient")
        assert_close(f"sub_out at {s.shape[-1]}x{s.shape[-1]} (G's output with the sampled configuration)",
                     s, fakes[s.shape[-1]], atol=1e-6)
        assert_close("full_out passed to consistency_loss (the teacher's output teacher(z))", full,
                     f["teacher_out"], atol=1e-6)
    for k in ("d_loss", "g_loss", "consistency"):
        v = run["out"][k]
        assert_true(isinstance(v, (float, int)) or (isinstance(v, torch.Tensor) and v.numel() == 1),
                    f"out[{k!r}] should be a number, got {type(v).__name__}")
    assert_true(any(d.abs().sum() > 0 for d in run["dG"]), "G's weights did not change: call g_opt.step()")
    assert_true(any(d.abs().sum() > 0 for d in run["dD"]), "D's weights did not change: call d_opt.step()")
    if signs:
        # D's step widens D's real-minus-fake logit gap
        gap0 = _gap(run["D0"], run["real"], fakes, res, code_real, code)
        gap1 = _gap(run["D"], run["real"], fakes, res, code_real, code)
        assert_true(gap1 > gap0, "after D's step, D should separate the reals from the fakes better: its logit gap "
                                 "(real - fake, summed over the sampled resolutions) went from "
                                 f"{gap0:.4g} to {gap1:.4g}")
    # the same step from clean gradients with lambda 0 and 2 * lambda: D's update must not change, G's update
    # must be linear in lambda, and the main run (stale gradients) must sit exactly half-way between them
    adv = run_step(anycost_step, seed, batch, mode, n_res, 0.0, choices, garbage=False, copies=False)
    double = run_step(anycost_step, seed, batch, mode, n_res, 2 * lambda_consistency, choices, garbage=False,
                      copies=False)
    same = lambda xs, ys, tol=1e-6: all(torch.allclose(a, b, atol=tol, rtol=1e-4) for a, b in zip(xs, ys))  # noqa: E731
    assert_true(same(adv["dD"], double["dD"]), "D's update should not depend on lambda_consistency")
    assert_true(same(run["dD"], adv["dD"]), "D's update depends on gradients left over from before the step: call "
                                            "d_opt.zero_grad() before D's backward")
    assert_true(not same(adv["dG"], double["dG"]),
                "G's update is the same with and without the consistency term: add lambda_consistency * consistency")
    half = [(a + b) / 2 for a, b in zip(adv["dG"], double["dG"])]
    if not same(run["dG"], half, 1e-5):
        clean = run_step(anycost_step, seed, batch, mode, n_res, lambda_consistency, choices, garbage=False,
                         copies=False)
        assert_true(same(run["dG"], clean["dG"]), "G's update depends on gradients left over from before G's "
                                                  "backward: call g_opt.zero_grad() right before it")
        raise CheckFailed("the consistency term should enter G's loss as lambda_consistency * (the sum of "
                          "consistency_loss over the resolutions): G's update is not linear in lambda_consistency")
    if signs:
        # G's step (without the consistency term) makes the updated D rate the fakes as more real
        fa = facts(adv)
        G1 = adv["G"]
        with torch.no_grad():
            G1.set_ratio(fa["fake_ratios"])
            new = dict(zip(G1.resolutions, G1.forward_all(fa["z"])))
            code = G1.arch_code(fa["fake_ratios"]).expand(n, -1)
            before = sum(float(adv["D"](fa["fakes"][r], code).mean()) for r in fa["res"])
            after = sum(float(adv["D"](new[r], code).mean()) for r in fa["res"])
        assert_true(after > before, f"G's step should make the updated D rate the fakes as more real: with "
                                    f"lambda_consistency=0, D's mean logit of the fakes went from {before:.4g} to "
                                    f"{after:.4g}")
    run["facts"] = f
    return run


def replay(run: dict) -> dict:
    """Ingredients to recompute one recorded step by hand (the hidden tests use it): fresh copies ``G0``,
    ``D0`` (before the step) and ``D1`` (after D's update), ``teacher``, ``probe`` (the consistency
    stand-in), ``z``, ``real``, ``res``, ``fake_ratios``, ``real_ratios``, ``lam``, ``g_lr``, ``d_lr``, and the
    measured parameter changes ``dG``, ``dD``."""
    f = run.get("facts") or facts(run)
    fresh = lambda m: copy.deepcopy(m.D if isinstance(m, SpyDiscriminator) else m)  # noqa: E731
    D1 = _moved(fresh(run["D0"]), run["dD"])
    return {"G0": fresh(run["G0"]), "D0": fresh(run["D0"]), "D1": D1, "teacher": fresh(run["teacher"]),
            "probe": run["cons"].value, "z": f["z"], "real": run["real"], "res": f["res"],
            "fake_ratios": f["fake_ratios"], "real_ratios": f["real_ratios"], "lam": run["lambda"],
            "g_lr": run["g_lr"], "d_lr": run["d_lr"], "dG": run["dG"], "dD": run["dD"]}


def sampled_resolutions(anycost_step, n_steps: int, n_res: int, seed: int = 0) -> list[list[int]]:
    """The resolutions the learner's step samples in ``n_steps`` calls on one ``StepRig`` (learning rates
    0: the spies' weights never move), all drawing from one generator seeded with ``seed``; each step's
    list as returned (``out["resolutions"]``). Built and called through ``effcourse.judge`` (works
    locally too)."""
    from ..judge import api as judge

    rig = judge.build("effcourse.checks.lab4.StepRig", seed=int(seed), batch=1, n_res=int(n_res), garbage=False,
                      g_lr=0.0, d_lr=0.0)
    args, kwargs = list(rig.args()), rig.step_kwargs()
    gen = torch.Generator().manual_seed(int(seed))
    args[5] = gen
    drawn = []
    for i in range(int(n_steps)):
        with quiet():
            out = call(f"anycost_step(..., n_res={n_res}), call {i + 1} of {n_steps}", anycost_step, *args, **kwargs)
        assert_true(isinstance(out, dict) and "resolutions" in out,
                    f"anycost_step should return a dict with 'resolutions', got {type(out).__name__}")
        res = out["resolutions"]
        if isinstance(res, (int, float)) or (isinstance(res, torch.Tensor) and res.numel() == 1):
            res = [res]
        drawn.append([int(r) for r in res])
    return drawn


def elastic_macs(conv: nn.Module, x: torch.Tensor) -> int:
    """Multiply-accumulates that ``conv(x)`` executes (``effcourse.bench.count_macs``: every convolution
    and matrix product that runs, whatever its result is used for). A probe: the hidden tests run it
    where the learner's code lives (``effcourse.judge.in_kernel``)."""
    from .. import bench

    return int(bench.count_macs(conv, x))


def check_anycost_step(anycost_step) -> None:
    verify_step(anycost_step, seed=0)
    passed("anycost_step: sampled configuration and resolution, coded D with resized reals, detached fakes, "
           "distillation from the teacher at every resolution, fresh gradients, the right signs")


__all__ = ["check_sort_channels", "check_elastic_conv", "check_sample_ratios", "check_sample_ratios_validation",
           "check_arch_modulation", "check_consistency_loss", "check_anycost_step", "check_elastic_cost",
           "check_step_sampling", "verify_step", "run_step", "facts", "replay", "quiet", "tiny_gan", "SpyGenerator",
           "SpyDiscriminator", "SpySGD", "ScriptedSampler", "ProbeConsistency", "StepRig", "sampled_resolutions",
           "elastic_macs", "CheckFailed", "clock_seed", "seed_in_failures"]


def check_elastic_cost(cls) -> None:
    """A sub-network must cost less: at ratio 0.5 on half the input channels, ``forward`` executes the
    MACs of the sliced convolution only (a quarter of the full one), counted with ``bench.count_macs``."""
    torch.manual_seed(0)
    conv = call("ElasticConv2d(8, 8, 3, padding=1)", cls, 8, 8, 3, padding=1)
    conv.ratio = 0.5
    x = torch.randn(1, 4, 6, 6)
    got = call("counting the MACs of conv(x) at ratio 0.5 on 4 input channels", elastic_macs, conv, x)
    full = 8 * 8 * 9 * 36
    assert_true(got <= full // 4, f"at ratio 0.5 on 4 of 8 input channels the forward should execute at most "
                                  f"{full // 4} MACs (4 filters x 4 input channels x 3 x 3 x 36 pixels), it executes "
                                  f"{got} (the full conv: {full}): convolve with the sliced weight only")
    passed("ElasticConv2d: a sub-network executes only its own MACs")


def check_step_sampling(anycost_step) -> None:
    """12 steps with ``n_res=2``: two different resolutions of (8, 16, 32) each time; the pairs drawn are
    printed (12 steps are too few to judge uniformity: that is left to the hidden tests)."""
    drawn = sampled_resolutions(anycost_step, n_steps=12, n_res=2)
    assert_true(all(len(d) == 2 and len(set(d)) == 2 and set(d) <= {8, 16, 32} for d in drawn),
                f"n_res=2 should give 2 different resolutions of (8, 16, 32) per step, got {drawn}")
    pairs = sorted({tuple(sorted(d)) for d in drawn})
    print(f"resolution pairs drawn in 12 steps with n_res=2: {pairs} (a uniform draw gives each pair about 1/3 "
          f"of the time)")
    passed("anycost_step: n_res different resolutions per step")
