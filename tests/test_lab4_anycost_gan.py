"""Lab 4 (Anycost GAN): plumbing unit tests (fast), the QUICK run's recorded claims, the nbgrader round trip."""
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import harness
from effcourse import bench
from effcourse.checks import lab4
from effcourse.checks.asserts import CheckFailed
from effcourse.gan import anycost
from effcourse.training import Loop

LAB = "lab4_anycost_gan"
pytestmark = pytest.mark.xdist_group(LAB)


# ---- stand-ins for the learner's answers (tests only) ---------------------------------------------
class _Elastic(nn.Conv2d):
    def __init__(self, *a, **k):
        super().__init__(*a, **k)
        self.ratio = 1.0

    def forward(self, x):
        c = max(1, round(self.ratio * self.out_channels))
        return self._conv_forward(x, self.weight[:c, :x.shape[1]], None if self.bias is None else self.bias[:c])


class _Mod(nn.Module):
    def __init__(self, d, c):
        super().__init__()
        self.g, self.b = nn.Linear(d, c), nn.Linear(d, c)
        for p in self.parameters():
            nn.init.zeros_(p)

    def forward(self, h, code):
        return h * (1 + self.g(code)[:, :, None, None]) + self.b(code)[:, :, None, None]


def _sort(layer, nxt):
    with torch.no_grad():
        perm = nxt.weight.abs().sum(dim=(0, 2, 3)).argsort(descending=True)
        layer.weight.copy_(layer.weight[perm])
        if layer.bias is not None:
            layer.bias.copy_(layer.bias[perm])
        nxt.weight.copy_(nxt.weight[:, perm])
    return perm


def _sampler(n, choices=anycost.RATIO_CHOICES, mode="uniform", generator=None):
    if mode not in ("uniform", "flexible"):
        raise ValueError(mode)
    idx = torch.randint(len(choices), (1 if mode == "uniform" else n,), generator=generator).expand(n)
    return [float(choices[i]) for i in idx]


def _cons(sub, full):
    return F.mse_loss(sub, F.adaptive_avg_pool2d(full.detach(), sub.shape[-2:]))


def _step(G, D, real, g_opt, d_opt, generator, teacher, sample_ratios, consistency_loss, choices=anycost.RATIO_CHOICES,
          mode="uniform", n_res=1, lambda_consistency=1.0, resize=True, detach=True, flip=False, zero_d=True):
    n = len(real)
    ratios = sample_ratios(G.n_layers, choices, mode, generator)
    real_ratios = sample_ratios(G.n_layers, choices, mode, generator)
    res = sorted(G.resolutions[int(i)] for i in torch.randperm(len(G.resolutions), generator=generator)[:n_res])
    z = torch.randn(n, G.z_dim, generator=generator)
    G.set_ratio(ratios)
    code, code_real = G.arch_code(ratios).expand(n, -1), G.arch_code(real_ratios).expand(n, -1)
    fakes = dict(zip(G.resolutions, G.forward_all(z)))
    with torch.no_grad():
        target = teacher(z)
    sign = -1.0 if flip else 1.0
    ld = sum(anycost.d_loss(sign * D(anycost.resize(real, r) if resize else real, code_real),
                            sign * D(fakes[r].detach() if detach else fakes[r], code)) for r in res)
    if zero_d:
        d_opt.zero_grad()
    ld.backward()
    d_opt.step()
    c = sum(consistency_loss(fakes[r], target) for r in G.resolutions)
    lg = sum(anycost.g_loss(sign * D(fakes[r], code)) for r in res) + lambda_consistency * c
    g_opt.zero_grad()
    lg.backward()
    g_opt.step()
    G.set_ratio(1.0)
    return {"d_loss": ld.item(), "g_loss": lg.item(), "consistency": c.item(), "resolutions": res, "ratios": ratios}


# ---- plumbing -----------------------------------------------------------------------------------
def test_generator_shapes_early_exit_and_ratio_setter():
    G = anycost.AnycostGenerator(_Elastic, z_dim=8, channels=(12, 8, 4))
    z = torch.randn(3, 8)
    assert G.resolutions == (8, 16, 32) and G.n_layers == 6
    for res in G.resolutions:
        assert G(z, res).shape == (3, 1, res, res)
    assert [x.shape[-1] for x in G.forward_all(z)] == [8, 16, 32]
    G.set_ratio(0.5)
    assert G.ratios == [0.5] * 6
    G.set_ratio([0.25, 0.5, 0.75, 1.0, 0.5, 0.25])
    assert G(z).shape == (3, 1, 32, 32)
    with pytest.raises(ValueError, match="6 ratios"):
        G.set_ratio([0.5, 0.5])
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        G.set_ratio(0.0)
    with pytest.raises(ValueError, match="target_resolution"):
        G(z, 12)
    with pytest.raises(ValueError, match="z must be"):
        G(torch.randn(3, 5))
    with pytest.raises(TypeError, match="subclass of nn.Conv2d"):
        anycost.AnycostGenerator(nn.Linear)


def test_early_exit_costs_less_and_ratio_shrinks_macs():
    G = anycost.AnycostGenerator(_Elastic).eval()
    z = torch.randn(1, G.z_dim)
    m = {res: bench.count_macs(G, z, res) for res in G.resolutions}
    assert m[8] < m[16] < m[32]
    G.set_ratio(0.25)
    assert bench.count_macs(G, z, 32) <= m[32] / 8


def test_arch_code_is_one_hot_per_layer():
    G = anycost.AnycostGenerator(_Elastic, z_dim=4, channels=(4, 4))
    code = G.arch_code([0.25, 1.0, 0.5, 0.75])
    assert code.shape == (G.code_dim,) == (16,)
    assert code.view(4, 4).argmax(1).tolist() == [0, 3, 1, 2] and code.sum() == 4
    with pytest.raises(ValueError, match="not one of the choices"):
        G.arch_code([0.3, 1.0, 1.0, 1.0])


def test_generator_sort_channels_keeps_the_output_and_ranks_by_the_next_layer():
    torch.manual_seed(0)
    G = anycost.AnycostGenerator(_Elastic, z_dim=8, channels=(12, 8, 6)).eval()
    z = torch.randn(4, 8)
    before = [x.detach() for x in G.forward_all(z)]
    G.sort_channels(_sort)
    for a, b in zip(G.forward_all(z), before):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    stages = list(G.stages)
    for i, s in enumerate(stages):
        nxt_b = stages[i + 1].conv_a if i + 1 < len(stages) else s.to_img
        for nxt in (s.conv_b, nxt_b):
            imp = nxt.weight.abs().sum(dim=(0, 2, 3))
            assert bool((imp[:-1] >= imp[1:]).all())
    order = []
    G.sort_channels(lambda a, b: order.append(a) or torch.arange(a.out_channels))
    assert order == list(reversed(G.elastic_layers())), "layers are sorted from the output back"
    with pytest.raises(TypeError, match="return the permutation"):
        G.sort_channels(lambda a, b: None)


def test_frozen_copy_is_a_detached_full_width_teacher():
    G = anycost.AnycostGenerator(_Elastic, z_dim=8, channels=(8, 4, 4)).set_ratio(0.5)
    T = anycost.frozen_copy(G)
    assert T.ratios == [1.0] * 6 and not T.training and not any(p.requires_grad for p in T.parameters())
    assert G.ratios == [0.5] * 6 and all(p.requires_grad for p in G.parameters())


def test_discriminator_all_resolutions_and_conditioning():
    D = anycost.AnycostDiscriminator(channels=(4, 6, 8))
    for res in (8, 16, 32):
        assert D(torch.randn(2, 1, res, res)).shape == (2,)
    with pytest.raises(ValueError, match="square images"):
        D(torch.randn(2, 1, 12, 12))
    x, code = torch.randn(3, 1, 16, 16), F.one_hot(torch.tensor([0, 1, 2]), 5).float()
    Dc = anycost.conditioned_copy(D, _Mod, 5)
    assert not D.conditioned and Dc.conditioned
    torch.testing.assert_close(Dc(x, code), D(x))          # zero-initialised modulation: same D
    with pytest.raises(ValueError, match="pass code"):
        Dc(x)
    with pytest.raises(ValueError, match="5 entries"):
        Dc(x, torch.zeros(3, 4))


def test_resize_and_losses():
    x = torch.randn(2, 1, 32, 32)
    torch.testing.assert_close(anycost.resize(x, 8), F.avg_pool2d(x, 4))
    assert anycost.resize(x, 32) is x and anycost.resize(x, 64).shape[-1] == 64
    assert math.isclose(anycost.d_loss(torch.zeros(3), torch.zeros(3)).item(), 2 * math.log(2), rel_tol=1e-6)
    assert math.isclose(anycost.g_loss(torch.zeros(3)).item(), math.log(2), rel_tol=1e-6)


def _loop(steps):
    return Loop(steps=steps, batch_size=4, progress=False, live=False)


def test_train_loop_runs_the_step_and_restores_ratio():
    G = anycost.AnycostGenerator(_Elastic, z_dim=8, channels=(8, 4, 4))
    D = anycost.conditioned_copy(anycost.AnycostDiscriminator(channels=(4, 4, 4)), _Mod, G.code_dim)
    data = torch.rand(20, 1, 32, 32) * 2 - 1
    hist = anycost.train(G, D, data, _step, loop=_loop(6), ema=0.5, teacher=anycost.frozen_copy(G),
                         sample_ratios=_sampler, consistency_loss=_cons, n_res=2)
    assert hist.steps("d_loss") == [1, 2, 3, 4, 5, 6]
    assert all(len(r) == 2 and set(r) <= {8, 16, 32} for r in hist["resolutions"])
    assert G.ratios == [1.0] * 6 and not G.training
    with pytest.raises(ValueError, match="data must be images"):
        anycost.train(G, D, torch.rand(4, 1, 16, 16), _step, loop=_loop(1))
    with pytest.raises(TypeError, match="dict"):
        anycost.train(G, D, data, lambda *a, **k: 0.0, loop=_loop(1))


def test_checks_pass_the_reference_and_catch_wrong_answers():
    lab4.check_sort_channels(_sort)
    lab4.check_elastic_conv(_Elastic)
    lab4.check_sample_ratios(_sampler)
    lab4.check_sample_ratios_validation(_sampler)
    lab4.check_arch_modulation(_Mod)
    lab4.check_consistency_loss(_cons)
    lab4.check_anycost_step(_step)
    for seed, mode, n_res in ((1, "flexible", 2), (2, "uniform", 3)):
        lab4.verify_step(_step, seed=seed, batch=2, mode=mode, n_res=n_res, lambda_consistency=2.0)
    with pytest.raises(CheckFailed, match="detach"):
        lab4.check_consistency_loss(lambda s, f: F.mse_loss(s, F.adaptive_avg_pool2d(f, s.shape[-2:])))

    def filter_l1(layer, nxt):
        with torch.no_grad():
            perm = layer.weight.abs().sum(dim=(1, 2, 3)).argsort(descending=True)
            layer.weight.copy_(layer.weight[perm])
            layer.bias.copy_(layer.bias[perm])
            nxt.weight.copy_(nxt.weight[:, perm])
        return perm

    with pytest.raises(CheckFailed, match="channel 2"):
        lab4.check_sort_channels(filter_l1)


@pytest.mark.parametrize("wrong, message", [
    ({"flip": True, "zero_d": False}, "logit gap|zero_grad"),   # both objectives flipped, no d_opt.zero_grad()
    ({"flip": True}, "logit gap"),
    ({"zero_d": False}, "d_opt.zero_grad"),
    ({"detach": False}, "detached|second time"),
    ({"resize": False}, "resize"),
    ({"lambda_consistency": None}, "with and without the consistency term"),
])
def test_the_step_check_catches_wrong_steps(wrong, message):
    def step(*args, **kwargs):
        kwargs.update(wrong)
        if kwargs.get("lambda_consistency", 1.0) is None:
            kwargs["lambda_consistency"] = 0.0
        return _step(*args, **kwargs)

    with pytest.raises(CheckFailed, match=message):
        lab4.verify_step(step, seed=3, n_res=2)


def test_step_spies_hold_no_answer():
    # the scripted sampler ignores mode and generator; the probe is linear in the sub-output
    sampler = lab4.ScriptedSampler([[0.5] * 4, [0.25] * 4])
    assert sampler(4, mode="flexible") == [0.5] * 4 and sampler(4) == [0.25] * 4 and sampler(4) == [0.5] * 4
    probe = lab4.ProbeConsistency((8,), seed=0)
    x = torch.randn(2, 1, 8, 8)
    full = torch.randn(2, 1, 32, 32)
    torch.testing.assert_close(probe(2 * x, full), 2 * probe(x, torch.zeros_like(full)))


def test_elastic_cost_check_catches_a_conv_that_computes_every_channel():
    lab4.check_elastic_cost(_Elastic)

    class Padded(_Elastic):        # values right, no cost saved (issue 24)
        def forward(self, x):
            c = max(1, round(self.ratio * self.out_channels))
            x = F.pad(x, (0, 0, 0, 0, 0, self.in_channels - x.shape[1]))
            return self._conv_forward(x, self.weight, self.bias)[:, :c]

    with pytest.raises(CheckFailed, match="sliced weight"):
        lab4.check_elastic_cost(Padded)
    conv = _Elastic(6, 8, 3, padding=1)
    conv.ratio = 0.5
    assert lab4.elastic_macs(conv, torch.randn(2, 3, 5, 5)) == 2 * 4 * 3 * 9 * 25


def test_step_rig_reports_plain_data_only():
    from effcourse.judge import wire

    rig = lab4.StepRig(seed=1, batch=2, n_res=2)
    _step(*rig.args(), **rig.step_kwargs())
    rep = rig.report()

    def refuse(v):
        raise TypeError(f"not plain data: {type(v).__name__}")

    wire.Encoder(refuse)(rep)        # what travels from the kernel to the judge: tensors, numbers, containers
    assert [c["generator"] for c in rep["sampler_calls"]] == [1 + 7, 1 + 7]
    assert [ev for ev, _ in rep["log"]].count("d_opt.step") == 1 and len(rep["cons_calls"]) == 3


def test_sampling_test_bound_and_what_it_separates():
    from math import comb

    # the hidden sampling test's false-failure bound (solutions/..., test_anycost_step_sampling)
    assert 6 * sum(comb(60, k) * (1 / 3) ** k * (2 / 3) ** (60 - k) for k in range(3)) <= 7.8e-8
    drawn = lab4.sampled_resolutions(_step, n_steps=30, n_res=2, seed=0)
    assert all(len(set(d)) == 2 and set(d) <= {8, 16, 32} for d in drawn)
    assert {tuple(sorted(d)) for d in drawn} == {(8, 16), (8, 32), (16, 32)}

    def top_first(G, D, real, g_opt, d_opt, generator, *args, n_res=1, **kwargs):
        out = _step(G, D, real, g_opt, d_opt, generator, *args, n_res=n_res, **kwargs)
        return {**out, "resolutions": sorted({32, *out["resolutions"]})[-n_res:]}

    assert all(32 in d for d in lab4.sampled_resolutions(top_first, n_steps=10, n_res=2, seed=0))


def test_widget_redraws_headless():
    pytest.importorskip("ipywidgets")
    from effcourse.widgets import anycost_preview as preview

    G = anycost.AnycostGenerator(_Elastic, z_dim=8, channels=(8, 4, 4))
    box = preview(G, n_samples=4, min_run_time=0.01)
    assert "ratio 1" in box.status.value and "MACs" in box.status.value
    box.ratio.value = 0.25
    assert "ratio 0.25" in box.status.value
    box.resolution.value = 8
    assert "8x8" in box.status.value
    assert G.ratios == [1.0] * 6


# ---- the notebook ---------------------------------------------------------------------------------
@pytest.mark.notebook
def test_quarter_width_costs_at_most_an_eighth_of_the_macs():
    rec = harness.records(LAB)
    assert 0 < rec["macs_ratio_025"] <= 1 / 8, rec["macs_ratio_025"]
    # the latency speedup is measured and reported, never asserted (wall-clock on a shared machine)
    assert isinstance(rec["speedup_025"], float) and rec["speedup_025"] > 0


@pytest.mark.notebook
def test_distillation_makes_sub_generators_consistent():
    rec = harness.records(LAB)
    assert rec["psnr_with_consistency"] > rec["psnr_without_consistency"] + 2.0, rec


@pytest.mark.notebook
def test_both_sort_criteria_beat_no_sorting_for_the_wider_sub_generators():
    # deterministic given the bundled asset: no training happens before this measurement
    rec = harness.records(LAB)
    for ratio in ("0.5", "0.75"):
        assert rec["sort_psnr_next"][ratio] > rec["sort_psnr_none"][ratio], rec
        assert rec["sort_psnr_filter"][ratio] > rec["sort_psnr_none"][ratio], rec


@pytest.mark.notebook
def test_quality_and_widget_recorded():
    rec = harness.records(LAB)
    for key in ("fd_conditioned", "fd_same_d", "fd_no_consistency"):
        assert set(rec[key]) == {"0.25", "0.5", "0.75", "1.0"}
        assert all(isinstance(v, float) and v > 0 for v in rec[key].values())
    assert rec["fd_teacher"] > 0
    assert "MACs" in rec["widget_status"]


@pytest.mark.notebook
def test_the_width_orderings_the_prose_states():
    """Section 7's claims on the recorded run (QUICK: 76 / 15 / 8.2 / 9.3 G-conditioned): in every arm the
    0.25x generator is the worst by far and 0.5x is worse than 1x (0.75x vs 1x is left open: close, either
    order); without distillation the full width is worse than either distilled full width."""
    rec = harness.records(LAB)
    for key in ("fd_conditioned", "fd_same_d", "fd_no_consistency"):
        fd = rec[key]
        assert fd["0.25"] > 2 * max(fd["0.5"], fd["0.75"], fd["1.0"]), (key, fd)
        assert fd["0.5"] > fd["1.0"], (key, fd)
    assert rec["fd_no_consistency"]["1.0"] > max(rec["fd_conditioned"]["1.0"], rec["fd_same_d"]["1.0"]), rec
    # the sorting paragraph: the filter norm wins at 0.5x and 0.75x, the official criterion at 0.25x,
    # where the filter norm is below no sorting (deterministic: measured on the bundled asset)
    for ratio in ("0.5", "0.75"):
        assert rec["sort_psnr_filter"][ratio] > rec["sort_psnr_next"][ratio], rec
    assert rec["sort_psnr_filter"]["0.25"] < rec["sort_psnr_none"]["0.25"] < rec["sort_psnr_next"]["0.25"], rec


# a plausible mistake: the consistency loss lets gradient flow into the full (teacher) output
WRONG_CONSISTENCY = '''def consistency_loss(sub_out, full_out):
    """MSE to the full output shrunk to the sub-output's size (wrongly: not detached)."""
    target = F.adaptive_avg_pool2d(full_out, sub_out.shape[-2:])
    return F.mse_loss(sub_out, target)
'''


@pytest.mark.notebook
def test_nbgrader_roundtrip():
    harness.check_roundtrip(LAB, "consistency_loss", WRONG_CONSISTENCY, loses={"test_consistency_loss"})
