"""Lab 9: the QUICK solution run's recorded claims (SlowFast, X3D path, SCSampler, RRM) and the
nbgrader round trip."""
import pytest

import harness

LAB = "lab9_efficient_video"
pytestmark = [pytest.mark.notebook, pytest.mark.xdist_group(LAB)]

# a plausible mistake: the lowest-scored clips instead of the highest
WRONG_TOPK = '''def topk_predict(saliency, clip_logits, k):
    """Average the k least salient clips (wrongly)."""
    k = min(k, saliency.shape[1])
    idx = saliency.topk(k, dim=1, largest=False).indices
    return clip_logits[torch.arange(len(idx)).unsqueeze(1), idx].mean(1)
'''


def test_slowfast_sees_motion_that_slow_only_cannot():
    """QUICK (seed 0): Slow-only 41.7 %, SlowFast 71.7 %, one pathway at equal MACs 49.0 % (400 test clips,
    about +-2.5 % noise). Only the order-free cap and SlowFast's margin over it are asserted."""
    sf = harness.records(LAB)["slowfast"]
    assert sf["Slow-only"]["acc"] <= 0.56, sf
    assert sf["SlowFast"]["acc"] >= sf["Slow-only"]["acc"] + 0.1, sf
    assert sf["SlowFast"]["macs"] > sf["Slow-only"]["macs"] > 0
    # the single pathway is matched to SlowFast's MACs (an integer width: within a factor ~1.5)
    single = sf["single pathway"]
    assert 0.6 <= single["macs"] / sf["SlowFast"]["macs"] <= 1.5, single


def test_x3d_path_grows_one_axis_at_a_time_within_the_budget():
    path = harness.records(LAB)["x3d_path"]
    assert path[0]["axis"] is None and len(path) >= 2, path
    axes = ("frames", "res", "width", "depth")
    for a, b in zip(path, path[1:]):
        assert b["macs"] > a["macs"]
        changed = [ax for ax in axes if a[ax] != b[ax]]
        assert changed == [b["axis"]], (a, b)
    assert path[-1]["macs"] <= 6.0 * path[0]["macs"]           # QUICK's budget: 6x X0


def test_scsampler_beats_all_clips_at_a_fraction_of_the_cost():
    """QUICK (seed 0): scorer 0.35 % of the classifier's MACs, its top-2 are action clips 99.8 % of the time;
    top-1 94.5 % and top-2 97 % vs 62 % with all 8 clips."""
    sc = harness.records(LAB)["scsampler"]
    assert sc["scorer_macs_ratio"] < 0.05
    assert sc["hit_rate"] >= 0.8
    top, uni = sc["curve"]["SCSampler top-k"], sc["curve"]["uniform k"]
    assert top[1] >= uni[-1] + 15, (top, uni)
    assert sc["cost_at_equal"] <= 0.5


def test_rrm_is_exact_at_zero_and_saves_more_on_near_static_streams():
    r = harness.records(LAB)["rrm"]
    assert r["exact_max_err"] <= 1e-4
    taus = (0.0, 0.01, 0.02, 0.05, 0.1, 0.2)
    for kind in ("near-static", "busy"):
        macs = [r[f"{kind}@{t}"]["macs"] for t in taus]
        assert all(b <= a + 1e-9 for a, b in zip(macs, macs[1:])), (kind, macs)
        assert r[f"{kind}@0.05"]["err"] < 0.05
    assert r["near-static@0.05"]["macs"] < r["busy@0.05"]["macs"]


def test_nbgrader_roundtrip():
    harness.check_roundtrip(LAB, "topk_predict", WRONG_TOPK, loses={"test_topk_predict"})
