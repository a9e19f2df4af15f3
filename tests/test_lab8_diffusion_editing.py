"""Lab 8 (diffusion editing): the plumbing in effcourse.diffusion, the engine's diffusion support in
effcourse.sparse (a one-input UNet per step, a given edit mask, the output kept outside it, cache
bytes) and effcourse.checks.lab8 (fast, no notebook); then the QUICK solution run's recorded claims
and the nbgrader round trip.

The engine needs a correct sparse conv; the tests take the solution's (``learner.from_notebook``
runs the given cell of the solution notebook).
"""
import functools
import json

import pytest
import torch

import harness
from effcourse.assets import load_asset
from effcourse.checks import CheckFailed, lab8
from effcourse.diffusion import data as ddata
from effcourse.diffusion.train import load_pretrained
from effcourse.diffusion.unet import timestep_embedding
from effcourse.sparse.engine import SparseRunner

LAB = "lab8_diffusion_editing"
pytestmark = pytest.mark.xdist_group(LAB)


EXERCISES = ("linear_schedule", "q_sample", "ddim_timesteps", "ddim_step", "sdedit", "edit_mask", "sige_steps")


@functools.lru_cache(maxsize=None)
def solution() -> dict:
    """The solution's exercises, its Lab 5 kernels (the cell that defines SparseConv2d) and the given
    ``KERNELS``/``make_runner`` cell, in one namespace, run from the solution notebook."""
    nb = json.loads(harness.solution_path(LAB).read_text(encoding="utf-8"))
    ns = {"__name__": "lab8_solution", "torch": torch, "nn": torch.nn, "F": torch.nn.functional,
          "SparseRunner": SparseRunner, "TILE": 4}
    for cell in nb["cells"]:
        src = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        gid = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        if cell["cell_type"] == "code" and (gid in EXERCISES or "class SparseConv2d" in src or "KERNELS = {" in src):
            exec(compile(src, f"{LAB} ({gid or 'given kernels'})", "exec"), ns)  # noqa: S102 - our solution
    return ns


def runner(net, t=500, tile=4):
    s = solution()
    return SparseRunner(net.at_step(t), s["SparseConv2d"], tile=tile, kernels=s["KERNELS"], norms="reuse",
                        masks="per_resolution", dilation=0)


# ------------------------------------------------------------------ the model

def test_unet_shapes_time_embedding_and_errors():
    net = lab8.tiny_unet()
    x = torch.randn(3, 1, 12, 20)
    assert net(x, 10).shape == x.shape
    assert net(x, torch.tensor([1, 2, 3])).shape == x.shape
    assert not torch.allclose(net(x, 10), net(x, 900))                     # the time matters
    assert timestep_embedding(torch.tensor([0, 5]), 8).shape == (2, 8)
    with pytest.raises(ValueError, match="multiples of 4"):
        net(torch.randn(1, 1, 10, 12), 3)
    with pytest.raises(ValueError, match=r"\(N,\) tensor"):
        net(x, torch.tensor([1, 2]))


def test_at_step_is_the_unet_with_its_time_fixed_and_has_no_linear_layer():
    net = lab8.tiny_unet(1)
    x = torch.randn(2, 1, 16, 16)
    fixed = net.at_step(321)
    with torch.no_grad():
        assert torch.allclose(fixed(x), net(x, 321), atol=1e-5)
    assert not any(isinstance(m, torch.nn.Linear) for m in fixed.modules())
    assert fixed.inc.weight is net.inc.weight                                # shared, not copied


def test_shipped_model_loads_and_denoises_better_than_zero():
    net, cfg = load_pretrained()
    assert cfg["T"] == 1000 and cfg["steps"] >= 1000, cfg
    raw = load_asset("lab8_ddpm")
    assert all(v.dtype == torch.float16 for v in raw["unet"].values())
    g = torch.Generator().manual_seed(0)
    x0 = ddata.digit_grids(4, 4, 4, g)
    _, abar = lab8.default_schedule()
    eps = torch.randn(x0.shape, generator=g)
    t = torch.tensor([100, 300, 500, 700])
    xt = abar[t].sqrt().view(-1, 1, 1, 1) * x0 + (1 - abar[t]).sqrt().view(-1, 1, 1, 1) * eps
    with torch.no_grad():
        mse = float((net(xt, t) - eps).pow(2).mean())
    assert mse < 0.3, f"the trained model's noise prediction error {mse:.3f} (predicting 0 gives 1.0)"


def test_digit_pictures_and_edits():
    pic = ddata.picture(3, 5, seed=1)
    assert pic.shape == (1, 1, 24, 40) and float(pic.min()) >= -1 and float(pic.max()) <= 1
    assert torch.equal(pic, ddata.picture(3, 5, seed=1))
    new = ddata.replace_cells(pic, [(1, 2)], torch.ones(1, 1, 8, 8))
    diff = (new != pic)[0, 0]
    assert diff.any() and not diff[:8].any() and not diff[:, :16].any()
    edited, (top, left, side) = ddata.square_patch(pic, 0.05, ddata.picture(3, 5, seed=2))
    assert side == round((0.05 * 24 * 40) ** 0.5)
    outside = torch.ones(24, 40, dtype=torch.bool)
    outside[top:top + side, left:left + side] = False
    assert torch.equal(edited[..., outside], pic[..., outside])
    with pytest.raises(ValueError, match="fraction"):
        ddata.square_patch(pic, 0.0, pic)


# ------------------------------------------------------------------ the engine on a diffusion UNet

def test_engine_runs_the_unet_at_a_step_exactly_with_a_full_mask():
    net = lab8.tiny_unet(2)
    r = runner(net)
    x = torch.randn(1, 1, 16, 24)
    with torch.no_grad():
        y = r.full(x)
        assert torch.allclose(y, net(x, 500), atol=1e-5)
        # an unedited picture: the cached output exactly
        assert torch.equal(r.sparse(x.clone(), changed=torch.zeros(16, 24, dtype=torch.bool)), y)


def test_given_mask_keeps_the_output_outside_it_and_costs_fewer_macs():
    net = lab8.tiny_unet(3)
    r = runner(net)
    x = torch.randn(1, 1, 32, 32)
    with torch.no_grad():
        y = r.full(x)
    xe = x.clone()
    xe[..., 10:14, 12:16] += 1.0
    mask = torch.zeros(32, 32, dtype=torch.bool)
    mask[8:16, 10:18] = True
    out = r.sparse(xe, changed=mask)
    assert torch.equal(out[..., ~mask], y[..., ~mask])
    assert float((out - y)[..., mask].abs().max()) > 1e-3
    assert r.executed_macs(xe, mask) * 2 < r.dense_macs(x)
    assert r.cache_bytes() > x.numel() * 4 * 10
    with pytest.raises(ValueError, match="bool mask"):
        r.sparse(xe, changed=mask.float())
    with pytest.raises(ValueError, match="bool mask"):
        r.sparse(xe, changed=mask[:4])


def test_compare_path_refuses_a_given_mask():
    net = lab8.tiny_unet(4)
    s = solution()
    r = SparseRunner(net.at_step(3), s["SparseConv2d"], tile=4, norms="reuse")
    x = torch.randn(1, 1, 8, 8)
    r.full(x)
    with pytest.raises(ValueError, match="incremental engine"):
        r.sparse(x, changed=torch.ones(8, 8, dtype=torch.bool))


# ------------------------------------------------------------------ the public checks

def test_checks_accept_the_solution():
    s = solution()
    lab8.check_schedule(s["linear_schedule"], s["q_sample"])
    lab8.check_ddim(s["ddim_timesteps"], s["ddim_step"], lab8.default_schedule()[1])
    lab8.check_sdedit(s["sdedit"])
    lab8.check_edit_mask(s["edit_mask"])
    lab8.check_sige_steps(s["cache_original"], s["sparse_edit"],
                          lambda m: SparseRunner(m, s["SparseConv2d"], tile=4, kernels=s["KERNELS"], norms="reuse",
                                                 masks="per_resolution", dilation=0))


def test_checks_reject_typical_mistakes():
    def abar_from_one(T, b0=1e-4, b1=0.02):
        betas = torch.linspace(b0, b1, T)
        return betas, torch.cat([torch.ones(1), torch.cumprod(1 - betas, 0)[:-1]])

    def q_no_sqrt(x0, t, noise, abar):
        a = abar[t].view(-1, 1, 1, 1)
        return a * x0 + (1 - a) * noise

    def step_clipped(eps, t, tp, x, abar):
        a, ap = abar[t], abar[tp] if tp >= 0 else torch.tensor(1.0)
        x0 = ((x - (1 - a).sqrt() * eps) / a.sqrt()).clamp(-0.5, 0.5)
        return ap.sqrt() * x0 + (1 - ap).sqrt() * eps

    with pytest.raises(CheckFailed, match=r"1 - betas\[0\]"):
        lab8.check_schedule(abar_from_one, None)
    with pytest.raises(CheckFailed, match="abar = 0.25"):
        lab8.check_schedule(None, q_no_sqrt)
    with pytest.raises(CheckFailed, match="must return x0"):
        lab8.check_ddim(None, step_clipped, None)
    with pytest.raises(CheckFailed, match="decrease"):
        lab8.check_ddim(lambda T, n: torch.arange(n) * (T // n), None, None)
    with pytest.raises(CheckFailed, match="cover"):
        lab8.check_edit_mask(lambda a, b, d: (a != b).any(1).any(0))


def test_measurement_helpers():
    a = torch.zeros(1, 1, 8, 8)
    assert lab8.psnr(a, a) == float("inf")
    assert abs(lab8.psnr(a, a + 0.2) - 10 * torch.log10(torch.tensor(4 / 0.04)).item()) < 1e-4
    pool = ddata.digits()
    pic = ddata.replace_cells(torch.full((1, 1, 16, 16), -1.0), [(0, 1)], pool[5:6])
    assert lab8.nearest_digit_distance(pic, [(0, 1)]) < 1e-6


# ------------------------------------------------------------------ the notebook

@pytest.mark.notebook
def test_recorded_claims():
    rec = harness.records(LAB)
    lo, hi = rec["sample_range"]
    assert -5 < lo < hi < 5, rec["sample_range"]
    trade = rec["sdedit_tradeoff"]                      # [t0, PSNR outside, distance to nearest digit], t0 falling
    assert [r[0] for r in trade] == sorted((r[0] for r in trade), reverse=True)
    assert trade[-1][1] > trade[0][1], "a smaller t0 must keep the rest of the picture more faithfully"
    rows = rec["sige_rows"]                             # [edit %, mask %, MAC ratio, speedup, max err, PSNR]
    assert [r[0] for r in rows] == [1.0, 5.0, 20.0]
    ratios = [r[2] for r in rows]
    assert all(a > b for a, b in zip(ratios, ratios[1:])), ratios
    assert ratios[0] > 4.0, ratios
    # the MAC ratio counts convs only (the dense run also pays full-size GroupNorm and SiLU), and at 20 % the
    # engine realises ~0.8 of it in QUICK mode: far above it means a broken measurement, a little is noise
    assert all(r[3] <= 1.5 * r[2] for r in rows), "a speedup far above the MAC ratio means a broken measurement"
    assert all(r[5] > 20.0 for r in rows), [r[5] for r in rows]
    assert rec["cache_mb_per_step"] > 0.5
    # the whole edit at ~5 %: the reference realises about half of the MAC ratio; a floor that holds on a
    # loaded 2-core machine in QUICK mode (a ratio of one run, never a wall-clock time)
    assert 0.25 < rec["realised_5pct"] <= 1.0, rec["realised_5pct"]


WRONG_EDIT_MASK = '''def edit_mask(x0, x0_edit, dilation):
    """Changed pixels (wrong: not dilated)."""
    return (x0 != x0_edit).any(dim=1).any(dim=0)
'''


@pytest.mark.notebook
def test_nbgrader_roundtrip():
    harness.check_roundtrip(LAB, "edit_mask", WRONG_EDIT_MASK, loses={"test_edit_mask"})


def test_reusing_one_mask_skips_restores_and_changes_nothing(monkeypatch):
    net = lab8.tiny_unet(5)
    r = runner(net)
    x = torch.randn(1, 1, 32, 32)
    with torch.no_grad():
        r.full(x)
    m1 = torch.zeros(32, 32, dtype=torch.bool)
    m1[4:12, 6:14] = True
    m2 = torch.zeros(32, 32, dtype=torch.bool)
    m2[18:30, 16:28] = True
    edits = [(x + 0.5 * m1, m1), (x + 0.5 * m1, m1.clone()), (x - 0.3 * m2, m2), (x + 0.5 * m1, m1), (x, m1)]
    got = {}
    for flag in (False, True):
        monkeypatch.setattr(SparseRunner, "reuse_mask", flag)
        with torch.no_grad():
            r.full(x)
            got[flag] = [r.sparse(e, changed=m) for e, m in edits]
    for a, b in zip(got[False], got[True]):
        assert torch.equal(a, b)
