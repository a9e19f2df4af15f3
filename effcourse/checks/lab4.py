"""Public self-checks for Lab 4 (Anycost GAN): small examples and invariants, never the answers.

Also the spies the hidden tests reuse: a generator that records its calls, a discriminator that
records what it is shown, and stand-ins for ``sample_ratios`` / ``consistency_loss`` so that the
training step can be checked on its own.
"""
from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from ..gan import anycost
from .asserts import CheckFailed, assert_close, assert_raises, assert_shape, assert_true, passed

CHOICES = anycost.RATIO_CHOICES


def _conv(cin: int, cout: int, k: int = 3, seed: int = 0, **kw) -> nn.Conv2d:
    torch.manual_seed(seed)
    return nn.Conv2d(cin, cout, k, padding=k // 2, **kw)


# ---- sort_channels ------------------------------------------------------------------------------
def check_sort_channels(sort_channels) -> None:
    layer, nxt = _conv(3, 6, seed=1), _conv(6, 4, seed=2)
    with torch.no_grad():
        layer.weight[2] *= 5.0                            # make channel 2 clearly the most important
    net = nn.Sequential(layer, nn.ReLU(), nxt)
    x = torch.randn(2, 3, 7, 7)
    before = net(x).detach()
    old_w = layer.weight.detach().clone()
    perm = sort_channels(layer, nxt)
    assert_true(isinstance(perm, torch.Tensor), f"sort_channels should return the permutation (a LongTensor), "
                                                f"got {type(perm).__name__}")
    assert_true(sorted(perm.tolist()) == list(range(6)), f"expected a permutation of 0..5, got {perm.tolist()}")
    assert_close("layer.weight after sorting (expected old_weight[perm])", layer.weight.detach(), old_w[perm])
    imp = layer.weight.detach().abs().sum(dim=(1, 2, 3))
    assert_true(bool((imp[:-1] >= imp[1:]).all()), f"importance should be non-increasing, got {imp.tolist()}")
    assert_true(int(perm[0]) == 2, f"channel 2 has the largest L1 norm and should come first; perm = {perm.tolist()}")
    assert_close("network output after sorting", net(x).detach(), before, atol=1e-5)
    passed("sort_channels: importance non-increasing, output unchanged")


# ---- ElasticConv2d ------------------------------------------------------------------------------
def check_elastic_conv(cls) -> None:
    torch.manual_seed(0)
    conv = cls(4, 6, 3, padding=1)
    assert_true(isinstance(conv, nn.Conv2d), "ElasticConv2d should subclass nn.Conv2d")
    assert_true(getattr(conv, "ratio", None) == 1.0, f"a new ElasticConv2d should have ratio 1.0, "
                                                     f"got {getattr(conv, 'ratio', None)!r}")
    x = torch.randn(2, 4, 5, 5)
    dense = F.conv2d(x, conv.weight, conv.bias, padding=1)
    assert_close("ratio 1 output (the dense conv)", conv(x), dense)
    conv.ratio = 0.5
    out = conv(x)
    assert_shape("ratio 0.5 output (first 3 of 6 channels)", out, (2, 3, 5, 5))
    assert_close("ratio 0.5 output (a prefix of the dense output)", out, dense[:, :3])
    out = conv(x[:, :2])
    assert_shape("output for 2 input channels at ratio 0.5", out, (2, 3, 5, 5))
    conv.ratio = 0.01
    assert_shape("ratio 0.01 output (at least one channel)", conv(x), (2, 1, 5, 5))
    passed("ElasticConv2d: ratio 1 is dense, smaller ratios are prefixes")


# ---- sample_ratios ------------------------------------------------------------------------------
def check_sample_ratios(sample_ratios) -> None:
    for mode in ("uniform", "flexible"):
        r = sample_ratios(6, CHOICES, mode, torch.Generator().manual_seed(0))
        r = [float(v) for v in r]
        assert_true(len(r) == 6, f"{mode}: expected 6 ratios, got {len(r)}")
        assert_true(all(v in CHOICES for v in r), f"{mode}: ratios must come from {CHOICES}, got {r}")
        again = [float(v) for v in sample_ratios(6, CHOICES, mode, torch.Generator().manual_seed(0))]
        assert_true(again == r, f"{mode}: the same seeded generator should give the same ratios, got {r} then {again}")
    gen = torch.Generator().manual_seed(1)
    draws = [[float(v) for v in sample_ratios(5, CHOICES, "uniform", gen)] for _ in range(20)]
    assert_true(all(len(set(d)) == 1 for d in draws), f"uniform mode: one ratio for all layers, got e.g. "
                                                      f"{next(d for d in draws if len(set(d)) > 1) if any(len(set(d)) > 1 for d in draws) else ''}")
    assert_raises("sample_ratios with mode='nope'", lambda: sample_ratios(3, CHOICES, "nope", gen))
    passed("sample_ratios: choices, uniform mode, reproducible, unknown mode rejected")


# ---- ArchModulation -----------------------------------------------------------------------------
def check_arch_modulation(cls) -> None:
    torch.manual_seed(0)
    mod = cls(8, 5)
    h = torch.randn(3, 5, 4, 4)
    code = F.one_hot(torch.tensor([0, 3, 7]), 8).float()
    assert_close("zero-initialised ArchModulation (should be the identity)", mod(h, code), h)
    assert_true(len(list(mod.parameters())) > 0, "ArchModulation should have parameters (gamma and beta)")
    passed("ArchModulation: zero-initialised it is the identity")


# ---- consistency_loss ---------------------------------------------------------------------------
def check_consistency_loss(consistency_loss) -> None:
    sub = torch.randn(2, 1, 4, 4, requires_grad=True)
    full = F.interpolate(sub.detach(), scale_factor=4, mode="nearest").requires_grad_(True)
    loss = consistency_loss(sub, full)
    assert_true(isinstance(loss, torch.Tensor) and loss.dim() == 0, "consistency_loss should return a scalar tensor")
    assert_true(abs(loss.item()) < 1e-10, f"a sub-output equal to the downsampled full output should give 0, "
                                          f"got {loss.item():.4g}")
    loss = consistency_loss(torch.full((2, 1, 8, 8), 0.5, requires_grad=True), torch.full((2, 1, 16, 16), -0.5))
    assert_true(abs(loss.item() - 1.0) < 1e-6, f"constant 0.5 vs constant -0.5 should give MSE 1, got {loss.item():.4g}")
    s = torch.zeros(1, 1, 8, 8, requires_grad=True)
    f = torch.ones(1, 1, 16, 16, requires_grad=True)
    consistency_loss(s, f).backward()
    assert_true(s.grad is not None and s.grad.abs().sum() > 0, "the loss should send gradient into sub_out")
    assert_true(f.grad is None or f.grad.abs().sum() == 0, "no gradient may flow into full_out (detach it)")
    passed("consistency_loss: zero when consistent, MSE at the sub resolution, no gradient into full_out")


# ---- training step: spies and stand-ins -----------------------------------------------------------
class SpyGenerator(anycost.AnycostGenerator):
    """An AnycostGenerator that records every call: ``(z, target_resolution, ratios, output)``."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.calls: list[tuple] = []

    def forward(self, z, target_resolution=None):
        out = super().forward(z, target_resolution)
        res = self.resolutions[-1] if target_resolution is None else int(target_resolution)
        self.calls.append((z.detach().clone(), res, tuple(self.ratios), out.detach().clone()))
        return out


class SpyDiscriminator(nn.Module):
    """Wraps a discriminator and records ``(images, code, images.requires_grad)`` of every call."""

    def __init__(self, D: nn.Module):
        super().__init__()
        self.D = D
        self.calls: list[tuple] = []

    def forward(self, x, code=None):
        self.calls.append((x.detach().clone(), None if code is None else torch.as_tensor(code).detach().clone(),
                           x.requires_grad))
        return self.D(x, code)


class _RecordingModulation(nn.Module):
    """A stand-in modulation for the spy D (identity plus a learnable, code-dependent shift)."""

    def __init__(self, code_dim: int, channels: int):
        super().__init__()
        self.beta = nn.Linear(code_dim, channels)

    def forward(self, h, code):
        return h + self.beta(code)[:, :, None, None]


class StandInSampler:
    """Stand-in for ``sample_ratios``: draws one ratio per call with ``generator`` (any mode) and records calls."""

    def __init__(self):
        self.calls: list[dict] = []
        self.returned: list[list[float]] = []

    def __call__(self, n_layers, choices=CHOICES, mode="uniform", generator=None):
        i = int(torch.randint(len(choices), (1,), generator=generator))
        out = [float(choices[i])] * int(n_layers)
        self.calls.append({"n_layers": n_layers, "choices": tuple(choices), "mode": mode, "generator": generator})
        self.returned.append(out)
        return out


class StandInConsistency:
    """Stand-in for ``consistency_loss``: squared difference of means (not the real loss); records calls."""

    def __init__(self):
        self.calls: list[tuple] = []

    def __call__(self, sub_out, full_out):
        self.calls.append((sub_out, full_out))
        return (sub_out.mean() - full_out.detach().mean()).pow(2)


def tiny_gan(seed: int = 0, conditioned: bool = True):
    """A tiny ``SpyGenerator`` (plain convs: every ratio runs at full width, fine for checking the
    step's plumbing) and a ``SpyDiscriminator`` around a conditioned D, with their optimisers."""
    torch.manual_seed(seed)
    G = SpyGenerator(nn.Conv2d, z_dim=4, channels=(6, 4, 3))
    D = anycost.AnycostDiscriminator(channels=(3, 4, 5))
    if conditioned:
        D.add_modulation(_RecordingModulation, G.code_dim)
    D = SpyDiscriminator(D)
    g_opt = torch.optim.Adam(G.parameters(), lr=1e-2)
    d_opt = torch.optim.Adam(D.parameters(), lr=1e-2)
    return G, D, g_opt, d_opt


def run_step(anycost_step, seed: int = 0, batch: int = 3, lambda_consistency: float = 1.0, mode: str = "uniform",
             choices=CHOICES):
    """One call of the learner's step on a tiny GAN with spies; returns a dict with everything seen."""
    G, D, g_opt, d_opt = tiny_gan(seed)
    g0 = [p.detach().clone() for p in G.parameters()]
    d0 = [p.detach().clone() for p in D.parameters()]
    real = torch.rand(batch, 1, 32, 32, generator=torch.Generator().manual_seed(seed + 100)) * 2 - 1
    sampler, cons = StandInSampler(), StandInConsistency()
    gen = torch.Generator().manual_seed(seed + 7)
    out = anycost_step(G, D, real, g_opt, d_opt, gen, sampler, cons, choices=choices, mode=mode,
                       lambda_consistency=lambda_consistency)
    return {"out": out, "G": G, "D": D, "real": real, "sampler": sampler, "cons": cons, "gen": gen,
            "g_changed": any(not torch.equal(a, b) for a, b in zip(g0, G.parameters())),
            "d_changed": any(not torch.equal(a, b) for a, b in zip(d0, D.parameters()))}


def verify_step(anycost_step, seed: int = 0, batch: int = 3, lambda_consistency: float = 1.0,
                mode: str = "uniform") -> dict:
    """The properties of one training step (used by the visible check and the hidden tests)."""
    run = run_step(anycost_step, seed, batch, lambda_consistency, mode)
    out, G, D, sampler, cons = run["out"], run["G"], run["D"], run["sampler"], run["cons"]
    assert_true(isinstance(out, dict), f"anycost_step should return a dict, got {type(out).__name__}")
    missing = {"d_loss", "g_loss", "consistency", "resolution", "ratios"} - set(out)
    assert_true(not missing, f"the returned dict lacks {sorted(missing)}")
    assert_true(len(sampler.calls) == 1, f"sample_ratios should be called once per step, was called "
                                         f"{len(sampler.calls)} times")
    call = sampler.calls[0]
    assert_true(call["n_layers"] == G.n_layers and call["mode"] == mode and call["generator"] is run["gen"],
                f"sample_ratios should get (G.n_layers={G.n_layers}, choices, mode={mode!r}, generator); got "
                f"n_layers={call['n_layers']}, mode={call['mode']!r}, "
                f"generator {'ok' if call['generator'] is run['gen'] else 'not the one passed in'}")
    ratios = sampler.returned[0]
    assert_true([float(r) for r in out["ratios"]] == ratios,
                f"returned ratios {out['ratios']} are not what sample_ratios drew ({ratios})")
    res = int(out["resolution"])
    assert_true(res in G.resolutions, f"resolution {res} is not one of G.resolutions {G.resolutions}")
    # discriminator: images at the step's resolution (sub) or the top one (full), each with its code
    top = G.resolutions[-1]
    code, code_full = G.arch_code(ratios), G.arch_code([1.0] * G.n_layers)
    assert_true(len(D.calls) >= 2, f"D should be called for the D step and the G step, got {len(D.calls)} call(s)")
    shown = {res: [], top: []}
    full_trained = False
    for x, c, grad in D.calls:
        size = tuple(x.shape[-2:])
        assert_true(size in ((res, res), (top, top)),
                    f"D was shown images of size {size} in a step at resolution {res}: expected {res}x{res} "
                    f"(sub-generator, reals resized to match) or {top}x{top} (full generator)")
        assert_true(c is not None, "D must be called with the architecture code: D(images, code)")
        c = c.reshape(-1, c.shape[-1]).expand(len(x), -1)
        allowed = ([code] if size[0] == res else []) + ([code_full] if size[0] == top else [])
        for i in range(len(x)):
            assert_true(any(torch.allclose(c[i], a) for a in allowed),
                        f"an image of size {size} was shown to D with code {c[i].tolist()}; expected "
                        + (f"G.arch_code() of the sampled ratios {ratios}" if size[0] == res else "")
                        + (" or " if len(allowed) == 2 else "")
                        + ("the full generator's code (all ratios 1)" if size[0] == top else "")
                        + f" (the sub-generator's reals must be resized to {res}x{res} with anycost.resize)")
        shown[size[0]].append(x.flatten(1))
        full_trained |= bool(grad and size[0] == top and torch.allclose(c, code_full.expand(len(x), -1)))
    for r_, what in ((res, f"the reals resized to {res}x{res} (anycost.resize(real, {res}))"),
                     (top, f"the reals at {top}x{top}")):
        real_r = anycost.resize(run["real"], r_).flatten(1)
        seen = torch.cat(shown[r_]) if shown[r_] else torch.empty(0, real_r.shape[1])
        ok = len(seen) > 0 and bool((torch.cdist(real_r.double(), seen.double()).min(dim=1).values < 1e-4).all())
        assert_true(ok, f"D never saw {what}")
    assert_true(any(not g for _, _, g in D.calls), "in the D step, the fakes should be detached from G")
    assert_true(any(g for _, _, g in D.calls), "in the G step, D should see fakes that carry G's gradient")
    assert_true(full_trained, f"the full generator's output ({top}x{top}, code of all ratios 1) should be shown to D "
                              f"with its gradient in the G step: the full generator is trained every step")
    # consistency: sub-output at res from the sampled ratios, full output from ratio 1 at the top, same z
    assert_true(len(cons.calls) == 1, f"consistency_loss should be called once, got {len(cons.calls)}")
    sub, full = cons.calls[0]
    assert_true(tuple(sub.shape[-2:]) == (res, res), f"sub_out should be at the step's resolution {res}, "
                                                     f"got {tuple(sub.shape[-2:])}")
    assert_true(tuple(full.shape[-2:]) == (top, top), f"full_out should be at G's top resolution {top}, "
                                                      f"got {tuple(full.shape[-2:])}")
    assert_true(sub.requires_grad, "sub_out should carry G's gradient")
    full_calls = [c for c in G.calls if c[1] == top and all(r == 1.0 for r in c[2]) and c[3].shape == full.shape
                  and torch.allclose(c[3], full.detach(), atol=1e-6)]
    assert_true(bool(full_calls), "full_out should be G(z) with every ratio 1 at the top resolution")
    sub_calls = [c for c in G.calls if c[1] == res and list(c[2]) == ratios and c[3].shape == sub.shape
                 and torch.allclose(c[3], sub.detach(), atol=1e-6)]
    assert_true(bool(sub_calls), "sub_out should be G(z, res) with the sampled ratios set")
    assert_true(any(torch.equal(a[0], b[0]) for a in full_calls for b in sub_calls),
                "the full and the sub output should come from the same latents z")
    assert_true(run["g_changed"], "G's weights did not change: call g_opt.step()")
    assert_true(run["d_changed"], "D's weights did not change: call d_opt.step()")
    for k in ("d_loss", "g_loss", "consistency"):
        v = out[k]
        assert_true(isinstance(v, (float, int)) or (isinstance(v, torch.Tensor) and v.numel() == 1),
                    f"out[{k!r}] should be a number, got {type(v).__name__}")
    return run


def check_anycost_step(anycost_step) -> None:
    verify_step(anycost_step, seed=0)
    passed("anycost_step: sampled resolution and ratios, resized reals, coded D, consistency to the full output")


__all__ = ["check_sort_channels", "check_elastic_conv", "check_sample_ratios", "check_arch_modulation",
           "check_consistency_loss", "check_anycost_step", "verify_step", "run_step", "tiny_gan", "SpyGenerator",
           "SpyDiscriminator", "StandInSampler", "StandInConsistency", "CheckFailed"]
