"""Unit tests of the video plumbing, the data set and the runtime (no notebooks)."""
import json

import pytest
import torch
from torch import nn

import effcourse
from effcourse import bench, video
from effcourse.data import TemporalDigits, reverse_partner
from effcourse.data.temporal_digits import AMOUNTS, PHASES, _digit_images, _draw_params, render_clips
from effcourse.training import History, Loop


def _past_shift_fn(x_t, cache, fold_div=8):
    """A test double for the learner's online shift (the tests need *a* correct one)."""
    fold = x_t.shape[1] // fold_div
    out = x_t.clone()
    out[:, :fold] = 0 if cache is None else cache
    return out, x_t[:, :fold].clone()


class Spy(nn.Module):
    """Records what it wraps and what it is called with."""

    def __init__(self, net, n_segment):
        super().__init__()
        self.net, self.n_segment, self.calls = net, n_segment, 0

    def forward(self, x):
        self.calls += 1
        return self.net(x)


# ---------------------------------------------------------------- TemporalDigits

def test_reversed_partner_clip_is_the_time_reverse():
    """Same digit and nuisance draws: class 2k+1's clip is class 2k's clip played backwards."""
    gen = torch.Generator().manual_seed(123)
    n = 8
    digits = _digit_images()[torch.randint(0, 1797, (n,), generator=gen)]
    params = _draw_params(gen, n)
    for pair in range(4):
        fwd = render_clips(digits, torch.full((n,), 2 * pair), params)
        bwd = render_clips(digits, torch.full((n,), 2 * pair + 1), params)
        assert torch.allclose(bwd, fwd.flip(1), atol=1e-6), f"pair {pair}"
        assert not torch.allclose(fwd, fwd.flip(1), atol=1e-3), "motion must be visible"


def test_partner_classes_have_the_same_frame_set_distribution():
    """Sorted-frame statistics of a class and its partner agree (same distribution of frame sets)."""
    ds = TemporalDigits("train", 1600, seed=3)
    x, y = ds.tensors()
    energy = x.flatten(2).sum(-1)                    # (n, T)
    bag = energy.sort(1).values                      # order-free summary of each clip
    for k in range(4):
        a, b = bag[y == 2 * k].mean(0), bag[y == 2 * k + 1].mean(0)
        assert torch.allclose(a, b, rtol=0.06), (k, a, b)


def test_every_phase_is_uniform_over_one_full_period():
    """The periodic parameter of each motion covers its whole period (what hides the direction)."""
    params = _draw_params(torch.Generator().manual_seed(0), 20000)
    for pair, (key, period) in PHASES.items():
        v = params[key]
        lo = v.min().item()
        assert v.max().item() - lo == pytest.approx(period, rel=2e-3), (pair, key)
        counts = torch.histc(v, bins=10, min=lo, max=lo + period)
        assert counts.min() > 0.9 * counts.mean(), (pair, key, counts)


@pytest.mark.parametrize("pair", range(4))
def test_frame_t_of_a_class_equals_frame_t_of_its_partner_at_a_shifted_phase(pair):
    """Exact single-frame indistinguishability: frame t of class 2k with phase p is frame t of class
    2k+1 with phase p + 2 * amount * s_t. The phase is uniform over its period and the picture is
    periodic in it, so this shift preserves its distribution: frame t has the same law in both classes."""
    gen = torch.Generator().manual_seed(7 + pair)
    n, T = 6, 8
    digits = _digit_images()[torch.randint(0, 1797, (n,), generator=gen)]
    params = _draw_params(gen, n)
    key, period = PHASES[pair]
    amount = params[AMOUNTS[pair]]
    fwd = render_clips(digits, torch.full((n,), 2 * pair), params, T)
    s = torch.linspace(-0.5, 0.5, T)
    for t in range(T):
        moved = dict(params)
        moved[key] = torch.remainder(params[key] + 2 * amount * s[t] + period / 2, period) - period / 2
        bwd = render_clips(digits, torch.full((n,), 2 * pair + 1), moved, T)
        assert torch.allclose(bwd[:, t], fwd[:, t], atol=2e-4), (pair, t, (bwd[:, t] - fwd[:, t]).abs().max())


def _single_frame_separability(params_fn, pair, t, n=1000, seed=0):
    """Held-out accuracy of a ridge classifier that sees only frame t (8x8-pooled) of class 2k vs 2k+1."""
    gen = torch.Generator().manual_seed(seed)
    labels = torch.tensor([2 * pair, 2 * pair + 1]).repeat(n // 2)
    digits = _digit_images()[torch.randint(0, 1797, (n,), generator=gen)]
    params = params_fn(_draw_params(gen, n))
    frames = render_clips(digits, labels, params, 8, noise=0.0)[:, t]        # (n, 1, 32, 32)
    feats = torch.nn.functional.avg_pool2d(frames, 4).flatten(1).double()    # (n, 64)
    feats = torch.cat([feats, torch.ones(n, 1, dtype=torch.double)], 1)
    target = (labels % 2).double() * 2 - 1
    half = n // 2
    a, b = feats[:half], target[:half]
    w = torch.linalg.solve(a.T @ a + 1e-2 * torch.eye(a.shape[1], dtype=torch.double), a.T @ b)
    return ((feats[half:] @ w).sign() == target[half:]).double().mean().item()


@pytest.mark.parametrize("pair", range(4))
def test_a_single_frame_and_its_index_cannot_separate_partners(pair):
    """A classifier on the first frame alone is at chance; with a bounded start position or angle (the
    old data set) the same classifier separates the partners: the test has the power to see a cue."""
    for t in (0, 7):
        assert abs(_single_frame_separability(lambda p: p, pair, t) - 0.5) < 0.07, (pair, t)
    key = PHASES[pair][0]

    def bounded(p):                                       # like the old data: the phase in a narrow range
        p = dict(p)
        p[key] = p[key] * 0.1
        return p

    assert _single_frame_separability(bounded, pair, 0) > 0.75, pair


def test_dataset_is_deterministic_balanced_and_split_by_digit():
    a, b = TemporalDigits("test", 64, seed=1), TemporalDigits("test", 64, seed=1)
    assert torch.equal(a.clips, b.clips) and torch.equal(a.labels, b.labels)
    assert a.clips.shape == (64, 8, 1, 32, 32) and 0 <= a.clips.min() and a.clips.max() <= 1
    assert torch.bincount(a.labels, minlength=8).tolist() == [8] * 8
    assert not torch.equal(TemporalDigits("train", 64, seed=1).clips, a.clips)
    assert TemporalDigits("train", 8, n_frames=1).clips.shape == (8, 1, 1, 32, 32)
    assert [reverse_partner(c) for c in range(8)] == [1, 0, 3, 2, 5, 4, 7, 6]


@pytest.mark.parametrize("kwargs, msg", [({"split": "val"}, "split"), ({"n_frames": 0}, "n_frames"),
                                         ({"n_clips": 0}, "n_clips"), ({"size": 4}, "size")])
def test_dataset_bad_arguments(kwargs, msg):
    with pytest.raises(ValueError, match=msg):
        TemporalDigits(**kwargs)


def test_tsn_is_exactly_invariant_to_time_reversal():
    torch.manual_seed(0)
    model = video.ClipClassifier(video.resnet2d(), 8, lambda lg, t: lg.reshape(-1, t, lg.shape[1]).mean(1)).eval()
    x = TemporalDigits("test", 16).clips
    with torch.no_grad():
        assert torch.allclose(model(x), model(x.flip(1)), atol=1e-5)


# ---------------------------------------------------------------- models and surgery

def test_resnet2d_is_a_torchvision_resnet_and_resnet3d_matches_its_depth():
    from torchvision.models import ResNet

    m2, m3 = video.resnet2d(), video.resnet3d()
    assert isinstance(m2, ResNet)
    assert m2(torch.randn(2, 1, 32, 32)).shape == (2, 8)
    assert m3(torch.randn(2, 1, 8, 32, 32)).shape == (2, 8)
    n2 = sum(isinstance(m, nn.Conv2d) for m in m2.modules())
    n3 = sum(isinstance(m, nn.Conv3d) for m in m3.modules())
    assert n2 == n3
    with pytest.raises(ValueError, match="rank"):
        m3(torch.randn(2, 1, 32, 32))


def test_insert_shift_wraps_every_block_first_conv_only():
    m = video.resnet2d()
    convs = [b.conv1 for b in video.residual_blocks(m)]
    video.insert_shift(m, Spy, 4)
    blocks = list(video.residual_blocks(m))
    assert len(blocks) == 4
    for b, c in zip(blocks, convs):
        assert isinstance(b.conv1, Spy) and b.conv1.net is c and b.conv1.n_segment == 4
        assert isinstance(b.conv2, nn.Conv2d)
    m(torch.randn(8, 1, 32, 32))
    assert all(b.conv1.calls == 1 for b in blocks)
    with pytest.raises(ValueError, match="already"):
        video.insert_shift(m, Spy, 4)
    with pytest.raises(ValueError, match="residual block"):
        video.insert_shift(nn.Sequential(nn.Conv2d(1, 1, 1)), Spy, 4)
    with pytest.raises(TypeError, match="nn.Module"):
        video.insert_shift(video.resnet2d(), lambda net, t: 3, 4)


def test_insert_shift_inplace_wraps_whole_blocks():
    m = video.resnet2d()
    blocks = list(video.residual_blocks(m))
    video.insert_shift(m, Spy, 4, place="inplace")
    spies = [s for s in m.modules() if isinstance(s, Spy)]
    assert [s.net for s in spies] == blocks and all(isinstance(b.conv1, nn.Conv2d) for b in blocks)
    assert m(torch.randn(8, 1, 32, 32)).shape == (8, 8) and all(s.calls == 1 for s in spies)
    with pytest.raises(ValueError, match="already"):
        video.insert_shift(m, Spy, 4)
    with pytest.raises(ValueError, match="place"):
        video.insert_shift(video.resnet2d(), Spy, 4, place="everywhere")


def test_inplace_shift_moves_the_identity_path_and_residual_does_not():
    """With an all-zero residual branch a block is identity + ReLU: in-place shifting changes it, residual does not."""
    def shift_all_from_past(x, T=2):                    # a test double: every channel from frame t-1
        v = x.reshape(-1, T, *x.shape[1:])
        return torch.cat([torch.zeros_like(v[:, :1]), v[:, :-1]], 1).reshape_as(x)

    class Shifted(nn.Module):
        def __init__(self, net, n_segment):
            super().__init__()
            self.net = net

        def forward(self, x):
            return self.net(shift_all_from_past(x))

    from torchvision.models.resnet import BasicBlock
    x = torch.rand(4, 16, 4, 4)
    for place, expect in (("residual", x), ("inplace", shift_all_from_past(x))):
        block = BasicBlock(16, 16).eval()
        torch.nn.init.zeros_(block.bn2.weight)          # residual branch outputs 0
        model = nn.Sequential(block)
        video.insert_shift(model, Shifted, 2, place=place)
        with torch.no_grad():
            assert torch.allclose(model(x), expect), place


def test_frame_index_channel():
    from effcourse.video.train import TensorClips, add_frame_index

    ds = TemporalDigits("train", 16, n_frames=5)
    x = add_frame_index(ds.clips)
    assert x.shape == (16, 5, 2, 32, 32) and torch.equal(x[:, :, :1], ds.clips)
    assert torch.allclose(x[3, :, 1, 7, 9], torch.tensor([0, 0.25, 0.5, 0.75, 1.0]))
    assert add_frame_index(torch.zeros(2, 1, 1, 4, 4))[:, :, 1].abs().sum() == 0
    with pytest.raises(ValueError, match="rank"):
        add_frame_index(torch.zeros(3, 1, 4, 4))
    indexed = TensorClips(x, ds.labels)
    assert len(indexed) == 16 and indexed[2][1] == int(ds.labels[2]) and indexed.tensors()[0] is x
    with pytest.raises(ValueError, match="labels"):
        TensorClips(x, ds.labels[:3])


def test_clip_classifier_errors_name_the_problem():
    model = video.ClipClassifier(video.resnet2d(), 8, lambda lg, t: lg.reshape(-1, t, lg.shape[1]).mean(1))
    with pytest.raises(ValueError, match="rank 4"):
        model(torch.randn(8, 1, 32, 32))
    with pytest.raises(ValueError, match="T = 8"):
        model(torch.randn(2, 4, 1, 32, 32))
    bad = video.ClipClassifier(video.resnet2d(), 8, lambda lg, t: lg)
    with pytest.raises(ValueError, match="consensus must return"):
        bad(torch.randn(2, 8, 1, 32, 32))


@pytest.mark.parametrize("T", [1, 3, 8])
def test_streaming_equals_clip_at_once(T):
    torch.manual_seed(T)
    bb = video.insert_shift(video.resnet2d(), video.online_wrapper(_past_shift_fn), T).eval()
    x = torch.randn(3, T, 1, 32, 32)
    with torch.no_grad():
        at_once = bb(x.reshape(3 * T, 1, 32, 32)).reshape(3, T, -1)
    assert torch.allclose(video.stream(bb, x), at_once, atol=1e-5)
    # the stream leaves the model in clip mode with empty caches
    assert all(not m.streaming and m.cache is None for m in bb.modules() if isinstance(m, video.OnlineShift))


def test_stream_needs_online_modules_and_clips():
    with pytest.raises(ValueError, match="OnlineShift"):
        video.stream(video.resnet2d(), torch.randn(1, 2, 1, 32, 32))
    bb = video.insert_shift(video.resnet2d(), video.online_wrapper(_past_shift_fn), 2)
    with pytest.raises(ValueError, match="rank"):
        video.stream(bb, torch.randn(2, 1, 32, 32))
    with pytest.raises(ValueError, match="whole number of clips"):
        bb(torch.randn(3, 1, 32, 32))


def test_training_loop_learns_and_reports_progress():
    ds = TemporalDigits("train", 64)
    torch.manual_seed(0)
    model = video.ClipClassifier(video.resnet2d(), 8, lambda lg, t: lg.reshape(-1, t, lg.shape[1]).mean(1))
    hist = video.train_classifier(model, ds, Loop(steps=30, batch_size=8, progress=False), eval_every=10,
                                  eval_fn=lambda m: video.accuracy(m, ds))
    assert isinstance(hist, History) and hist.steps("loss") == list(range(1, 31)) and hist.steps("eval") == [10, 20, 30]
    assert sum(hist["loss"][-5:]) < sum(hist["loss"][:5])
    assert not model.training and all(0.0 <= a <= 1.0 for a in hist["eval"])
    sparse = video.train_classifier(model, ds, Loop(steps=7, batch_size=8, log_every=3, progress=False))
    assert sparse.steps("loss") == [3, 6, 7] and "eval" not in sparse
    with pytest.raises(ValueError, match="steps"):
        video.train_classifier(model, ds, Loop(steps=0))



def test_sampler_and_accumulation_loops_return_histories():
    from effcourse.video import large_batch, sampler
    from effcourse.video.train import TensorClips

    torch.manual_seed(0)
    videos, targets = torch.rand(6, 3, 4, 1, 8, 8), torch.rand(6, 3)            # (N, M, T, C, S, S), (N, M)
    scorer = sampler.SaliencyNet()
    hist = sampler.train_sampler(scorer, videos, targets, lambda s, t: ((s - t) ** 2).mean(),
                                 Loop(steps=5, batch_size=2, log_every=2, progress=False))
    assert isinstance(hist, History) and hist.steps("loss") == [2, 4, 5] and not scorer.training
    with pytest.raises(ValueError, match=r"videos must be \(N, M, T, C, S, S\)"):
        sampler.train_sampler(scorer, videos[0], targets, lambda s, t: s.sum(), Loop(steps=1))

    clips = TensorClips(torch.randn(10, 2, 1, 4, 4), torch.arange(10) % 3)
    assert large_batch.steps_for(10, 4, 2) == 4
    runs = {}
    for micro in (4, 2):                       # no BatchNorm: micro-batches change nothing but rounding
        torch.manual_seed(1)
        model = nn.Sequential(nn.Flatten(), nn.Linear(32, 3))
        runs[micro] = large_batch.train_accumulated(model, clips, lambda s, total: 0.1 * (1 - s / total),
                                                    Loop(steps=4, batch_size=4, seed=3, progress=False), micro)
    assert runs[4].steps("loss") == [1, 2, 3, 4] and runs[4]["lr"] == pytest.approx([0.1, 0.075, 0.05, 0.025])
    assert runs[4].meta == {"steps": 4, "steps_per_epoch": 2, "global_batch": 4, "micro_batch": 4}
    assert runs[4]["loss"] == pytest.approx(runs[2]["loss"], abs=1e-6)
    with pytest.raises(ValueError, match="multiple of micro_batch"):
        large_batch.train_accumulated(model, clips, lambda s, t: 0.1, Loop(steps=1, batch_size=4), 3)
    with pytest.raises(ValueError, match="larger than the data set"):
        large_batch.train_accumulated(model, clips, lambda s, t: 0.1, Loop(steps=1, batch_size=12), 4)


def test_one_rank_alone_returns_a_history_that_travels_as_json():
    from effcourse.video import distributed

    ds = TemporalDigits("train", 24, n_frames=2, size=16)
    torch.manual_seed(0)
    model = video.ClipClassifier(video.resnet2d(in_channels=1), 2, lambda lg, t: lg.reshape(-1, t, lg.shape[1]).mean(1))
    cfg = distributed.TrainConfig(batch_per_rank=8, max_steps=3)
    hist = distributed.train_rank(model, ds, lambda s, total: 0.01, cfg)
    assert isinstance(hist, History) and hist.steps("loss") == [1, 2, 3]
    assert set(hist.keys()) == {"loss", "lr", "sync_seconds", "step_seconds"} and min(hist["step_seconds"]) > 0
    assert hist.meta == {"steps": 3, "steps_per_epoch": 3, "global_batch": 8, "world_size": 1}
    back = History.from_dict(json.loads(json.dumps(hist.to_dict())))
    assert back["loss"] == hist["loss"] and back.meta == hist.meta
    model.train()
    assert 0.0 <= distributed.evaluate(model, ds) <= 1.0 and model.training       # its own mode restored


# ---------------------------------------------------------------- measurement and runtime

def test_count_macs_matches_the_conv_formula():
    conv = nn.Conv2d(3, 8, 3, padding=1, bias=False)
    assert bench.count_macs(conv, torch.randn(2, 3, 10, 10)) == 2 * 8 * 10 * 10 * 3 * 9


def test_cost_table_has_ratios_and_latencies():
    lin = nn.Linear(16, 16)
    rows = bench.cost_table({"a": (lin, (torch.randn(4, 16),)), "b": (nn.Sequential(lin, lin), (torch.randn(4, 16),))},
                            repeats=3, number=2, baseline="a")
    by = {r["model"]: r for r in rows}
    assert by["b"]["macs_ratio"] == pytest.approx(2.0)
    assert all(r["latency_ms"] > 0 for r in rows)
    with pytest.raises(KeyError):
        bench.cost_table({"a": (lin, (torch.randn(4, 16),))}, baseline="zzz", repeats=1, number=1)


def test_setup_threads_default_cap_and_override(monkeypatch):
    """A lab may ask for more CPU threads; never more than the cores; EFFCOURSE_THREADS wins."""
    from effcourse import runtime

    before = torch.get_num_threads()
    monkeypatch.setattr(runtime, "_PROFILE", dict(runtime._PROFILE))   # setup() sets the run profile
    try:
        monkeypatch.delenv("EFFCOURSE_THREADS", raising=False)
        effcourse.setup(True, 0, "cpu")
        assert torch.get_num_threads() == 1
        monkeypatch.setattr("os.cpu_count", lambda: 2)
        effcourse.setup(True, 0, "cpu", threads=8)
        assert torch.get_num_threads() == 2
        monkeypatch.setenv("EFFCOURSE_THREADS", "1")
        effcourse.setup(True, 0, "cpu", threads=2)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_record_round_trips_through_notebook_metadata(capsys):
    effcourse.record("acc", torch.tensor(0.75))
    assert "recorded acc = 0.75" in capsys.readouterr().out
    nb = {"cells": [{"cell_type": "code", "outputs": [
        {"output_type": "display_data", "data": {"text/plain": "x"}, "metadata": {"effcourse_record": {"a": 1}}}]}]}
    assert effcourse.read_records(nb) == {"a": 1}
    with pytest.raises(ValueError):
        effcourse.record("not an identifier", 1)
    with pytest.raises(TypeError):
        effcourse.record("obj", object())
    json.dumps(effcourse.recorded())


def test_device_and_quick(monkeypatch):
    assert effcourse.get_device("cpu").type == "cpu"
    assert effcourse.get_device("auto").type in ("cpu", "cuda")
    with pytest.raises(ValueError, match="unknown device"):
        effcourse.get_device("tpu9")
    monkeypatch.delenv("NBGRADER_EXECUTION", raising=False)
    assert effcourse.is_quick(False) is False
    monkeypatch.setenv("NBGRADER_EXECUTION", "autograde")
    assert effcourse.is_quick(False) is True
    g1, g2 = effcourse.seed_everything(5), effcourse.seed_everything(5)
    assert torch.equal(torch.rand(3, generator=g1), torch.rand(3, generator=g2))
