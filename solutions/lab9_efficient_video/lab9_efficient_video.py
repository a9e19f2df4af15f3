# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Lab 9 — Efficient video beyond TSM: SlowFast, X3D, SCSampler, RRM
#
# **You will build** four more ways to spend less on video, each on data where it matters:
#
# 1. **SlowFast** — the lateral connection that fuses a cheap, fast pathway (many frames, few
#    channels) into a slow one (few frames, many channels);
# 2. **X3D** — the greedy search that grows a tiny network one axis at a time (frames, resolution,
#    width, depth), keeping the best accuracy per added MAC;
# 3. **SCSampler** — in a long video, a cheap scorer ranks the clips and only the top ones reach the
#    expensive classifier: you write the top-k aggregation and the ranking loss that trains the scorer;
# 4. **RRM** — neighbouring frames are alike, so a convolution can work on the frame *difference*:
#    $y_{t+1} = y_t + F(x_{t+1} - x_t)$. You write the incremental convolution with a threshold.
#
# Two of them (SCSampler, RRM) are about *which computation to skip* — the idea of SIGE (Lab 5), in
# time instead of space. **Time:** about 110 minutes. **Papers:** Feichtenhofer et al., *SlowFast
# Networks for Video Recognition*, ICCV 2019; Feichtenhofer, *X3D: Expanding Architectures for
# Efficient Video Recognition*, CVPR 2020; Korbar, Tran, Torresani, *SCSampler: Sampling Salient
# Clips from Video for Efficient Action Recognition*, ICCV 2019; Pan et al., *Recurrent Residual
# Module for Fast Inference in Videos*, CVPR 2018. All four are in the lecture's "Other efficient
# methods" slides.
#
# **Data.** Sections 1–2 use TemporalDigits clips (Lab 1: a digit moves, rotates or zooms; the 8
# classes come in time-reversal pairs, so only motion tells partners apart) at 16×16 pixels.
# Sections 3–4 use `LongVideos`: 8 clips of 4 frames each, in which the digit sits still, performs
# its action during **2** consecutive clips, and sits still again; some still clips are
# *distractors* in which the digit jumps around at random; every frame has sensor noise, so still
# stretches are *near* static.

# %%
# >>> effcourse bootstrap (hosted notebooks: docs/HOSTED.md)
# On Colab or a JupyterHub without effcourse this cell installs it; everywhere else it does nothing.
EFFCOURSE_VERSION, EFFCOURSE_WHEEL = "0.1.0", None  # wheel: a URL or path your instructor may set
import importlib.util
if importlib.util.find_spec("effcourse") is None:  # not installed: install the kit's wheel, keep torch
    import glob, importlib.metadata, re, subprocess, sys
    pattern = f"effcourse-{EFFCOURSE_VERSION}-*.whl"
    found = glob.glob(pattern) + glob.glob(f"../../wheels/{pattern}") + [None]
    wheel = EFFCOURSE_WHEEL or found[0]
    if wheel is None:
        raise ModuleNotFoundError(f"no effcourse here and no {pattern} beside this notebook: docs/HOSTED.md")
    pip = [sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    subprocess.run(pip + ["--no-deps", wheel], check=True)
    importlib.invalidate_caches()
    skip = ("torch", "torchvision", "jupyterlab", "nbgrader", "papermill")  # the platform's torch stays
    needs = [r for r in importlib.metadata.requires("effcourse") or []
             if "extra ==" not in r and re.match(r"[\w.-]+", r)[0].lower() not in skip]
    subprocess.run(pip + needs, check=True)
# <<< effcourse bootstrap

# %%
import time

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from torch import nn

import effcourse
from effcourse import bench, plots
from effcourse.checks import lab9
from effcourse.data import LongVideos, TemporalDigits
from effcourse.training import Loop
from effcourse.video import rrm, sampler, slowfast, x3d
from effcourse.video.train import TensorClips, accuracy, train_classifier

# %% tags=["parameters"]
QUICK = False
SEED = 0
DEVICE = "auto"

# %%
QUICK, device = effcourse.setup(QUICK, SEED, DEVICE)
SIZE = 16                                                          # pixels per side, everywhere
N_TRAIN = effcourse.pick(full=1600, quick=800, smoke=32)
N_TEST = effcourse.pick(full=800, quick=400, smoke=16)
SF_STEPS = effcourse.pick(full=300, quick=100, smoke=2)            # SlowFast: steps of 16 clips per model
X3D_STEPS = effcourse.pick(full=150, quick=60, smoke=2)            # X3D: steps per evaluated candidate
X3D_BUDGET = effcourse.pick(full=12.0, quick=6.0, smoke=2.5)       # X3D: MAC budget, in units of X0's MACs
N_VIDEOS = effcourse.pick(full=(600, 300), quick=(300, 200), smoke=(16, 16))   # long videos (train, test)
CLF_STEPS = effcourse.pick(full=300, quick=150, smoke=2)           # SCSampler: the clip classifier
SAMPLER_STEPS = effcourse.pick(full=400, quick=300, smoke=2)       # SCSampler: the saliency scorer
RRM_STREAMS = effcourse.pick(full=20, quick=6, smoke=1)            # RRM: videos per kind
THRESHOLDS = (0.0, 0.01, 0.02, 0.05, 0.1, 0.2)
t_start = time.perf_counter()

# %% tags=["experiment"]
train_set = TemporalDigits("train", N_TRAIN, n_frames=8, size=SIZE, seed=SEED)
test_set = TemporalDigits("test", N_TEST, n_frames=8, size=SIZE, seed=SEED)
long_train = LongVideos("train", N_VIDEOS[0], size=SIZE, seed=SEED)
long_test = LongVideos("test", N_VIDEOS[1], size=SIZE, seed=SEED)
CLASSES = list(train_set.classes)
print(train_set, test_set, long_train, long_test, sep="\n")
v, y = long_test[0]
fig, ax = plt.subplots(figsize=(10, 1.6))
plots.clip_strip(v.flatten(0, 1), ax=ax, title=f"a long video ({CLASSES[y]}); action clips: "
                 f"{long_test.salient[0].nonzero().flatten().tolist()}, jitter clips: "
                 f"{long_test.jitter[0].nonzero().flatten().tolist()}")
plt.show()

# %% [markdown]
# ## 1. SlowFast: two pathways and a lateral connection
#
# A clip of $T$ frames feeds two pathways. The **Slow** one sees every $\alpha$-th frame ($T/\alpha$
# frames) with $C$ channels; the **Fast** one sees all $T$ frames with only $\beta C$ channels
# (the paper: $\alpha = 8$, $\beta = 1/8$; here $\alpha = 4$, $\beta = 1/4$). Cheap in channels,
# the fast pathway can afford temporal resolution; rich in channels, the slow one can afford
# spatial semantics. After each stage a **lateral connection** sends fast features into the slow
# pathway. Their shapes differ in time ($T$ vs $T/\alpha$) and channels; the paper's best lateral is
# a **time-strided convolution**: kernel $5\times1\times1$, stride $\alpha$ in time, $2\beta C$ output
# channels, whose output is **concatenated** to the slow features:
#
# $$\text{slow}' = \big[\,\text{slow}\;\big\|\; W \ast_{(\alpha,1,1)} \text{fast}\,\big]_{\text{channels}},
# \qquad \text{output length} = \Big\lfloor \tfrac{T + 2\lfloor k_t/2\rfloor - k_t}{\alpha}\Big\rfloor + 1 = T/\alpha .$$
#
# Features are `(N, C, T, H, W)` here (PyTorch's `Conv3d` layout). The paper's lateral is followed
# by batch norm and ReLU in the official code; here the next stage's own BN/ReLU does that job (one
# sentence of difference).

# %% nbgrader={"grade": false, "grade_id": "lateral_fuse", "locked": false, "schema_version": 3, "solution": true, "task": false}
def lateral_fuse(slow, fast, weight, alpha):
    """SlowFast's lateral connection: a time-strided conv of the fast features, concatenated to the slow ones.

    Args:
        slow: (N, C_s, T_s, H, W) slow-pathway features.
        fast: (N, C_f, T_f, H, W) fast-pathway features, T_f = alpha * T_s (same H, W).
        weight: (C_l, C_f, k_t, 1, 1) the lateral conv's weight (k_t odd; the paper: k_t = 5, C_l = 2 C_f).
        alpha: the frame ratio, the conv's temporal stride.

    Returns:
        (N, C_s + C_l, T_s, H, W): torch.cat([slow, lateral], dim=1), where lateral is the 3D convolution
        of fast with weight, no bias, stride (alpha, 1, 1), zero padding (k_t // 2, 0, 0).
        Gradients flow to slow, fast and weight.
    """
    ### BEGIN SOLUTION
    k_t = weight.shape[2]
    lateral = F.conv3d(fast, weight, None, stride=(alpha, 1, 1), padding=(k_t // 2, 0, 0))   # (N, C_l, T_s, H, W)
    return torch.cat([slow, lateral], dim=1)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_lateral_fuse", "locked": true, "points": 15, "schema_version": 3, "solution": false, "task": false}
import time

import torch
import torch.nn.functional as F

from effcourse.checks import lab9
from effcourse.checks.asserts import assert_close, assert_shape, assert_true, call

lab9.check_lateral_fuse(lateral_fuse)
### BEGIN HIDDEN TESTS
with lab9.seed_in_failures(lab9.clock_seed()) as _seed:
    _g = torch.Generator().manual_seed(_seed)
    for (N, Cs, Ts, H, W, Cf, Cl, kt, a) in [(2, 8, 2, 4, 4, 2, 4, 5, 4), (1, 3, 3, 5, 3, 4, 8, 5, 8), (3, 5, 4, 2, 3, 3, 6, 3, 2),
                                             (2, 4, 1, 3, 3, 2, 4, 5, 8), (1, 6, 5, 1, 2, 1, 2, 7, 3), (2, 2, 3, 2, 2, 5, 3, 1, 2),
                                             (1, 7, 2, 3, 1, 2, 4, 5, 1), (4, 3, 2, 2, 2, 3, 6, 3, 5)]:
        slow = torch.randn(N, Cs, Ts, H, W, generator=_g, dtype=torch.float64, requires_grad=True)
        fast = torch.randn(N, Cf, a * Ts, H, W, generator=_g, dtype=torch.float64, requires_grad=True)
        wt = torch.randn(Cl, Cf, kt, 1, 1, generator=_g, dtype=torch.float64, requires_grad=True)
        what = (f"lateral_fuse(slow {tuple(slow.shape)}, fast {tuple(fast.shape)}, weight {tuple(wt.shape)}, "
                f"alpha={a})")
        s0, f0, w0 = slow.detach().clone(), fast.detach().clone(), wt.detach().clone()
        out = call(what, lateral_fuse, slow, fast, wt, a)
        sr, fr, wr = (t.clone().requires_grad_(True) for t in (s0, f0, w0))
        ref = torch.cat([sr, F.conv3d(fr, wr, None, stride=(a, 1, 1), padding=(kt // 2, 0, 0))], 1)
        assert_shape(what, out, tuple(ref.shape))
        assert_close(what, out, ref.detach(), atol=1e-10)
        assert_true(torch.equal(slow.detach(), s0) and torch.equal(fast.detach(), f0), f"{what} modified its inputs")
        gout = torch.randn(ref.shape, generator=_g, dtype=torch.float64)
        assert_true(out.requires_grad, f"{what}: the result must carry gradients (do not detach)")
        (out * gout).sum().backward()
        (ref * gout).sum().backward()
        for name, t, r in [("slow", slow, sr), ("fast", fast, fr), ("weight", wt, wr)]:
            assert_true(t.grad is not None, f"{what}: no gradient reached {name}")
            assert_close(f"{what}: gradient with respect to {name}", t.grad, r.grad, atol=1e-9)
    # float32 keeps float32
    o = call("lateral_fuse on float32", lateral_fuse, torch.randn(1, 2, 2, 3, 3), torch.randn(1, 1, 8, 3, 3),
             torch.randn(2, 1, 5, 1, 1), 4)
    assert_true(o.dtype == torch.float32, f"lateral_fuse changed float32 to {o.dtype}")
### END HIDDEN TESTS

# %% [markdown]
# **Experiment.** Three networks on TemporalDigits clips (T = 8 frames, 16×16), trained the same
# number of steps: **Slow-only** (2 frames, no temporal kernel: a bag of two frames), **SlowFast**
# (the same slow pathway + a fast pathway on all 8 frames with a quarter of the channels, fused by
# your `lateral_fuse`), and a **single pathway at equal MACs** (one 3×3×3 CNN on all 8 frames whose
# width is chosen so that it costs about what SlowFast costs). MACs are counted with
# `torch.utils.flop_counter` (`bench.count_macs`).

# %% tags=["experiment"]
clip1 = test_set.tensors()[0][:1]                                 # (1, 8, 1, 16, 16)


def sf_build(mode, widths=(8, 16, 32)):
    torch.manual_seed(SEED)
    return slowfast.SlowFastNet(lateral_fuse if mode == "slowfast" else None, widths=widths, alpha=4, beta=0.25,
                                mode=mode)


sf_models = {"Slow-only": sf_build("slow"), "SlowFast": sf_build("slowfast")}
sf_macs = {k: bench.count_macs(m.eval(), clip1) for k, m in sf_models.items()}
w_single, _ = slowfast.match_width(lambda w: sf_build("single", (w, 2 * w, 4 * w)), sf_macs["SlowFast"], clip1)
sf_models[f"single pathway (width {w_single})"] = sf_build("single", (w_single, 2 * w_single, 4 * w_single))
sf_rows = []
for name, m in sf_models.items():
    t0 = time.perf_counter()
    train_classifier(m, train_set, Loop(steps=SF_STEPS, batch_size=16, seed=SEED, device=device, desc=name))
    acc = accuracy(m, test_set, device=device)
    macs = bench.count_macs(m.cpu().eval(), clip1)
    sf_rows.append({"model": name, "test accuracy %": 100 * acc, "MMACs per clip": macs / 1e6,
                    "params": bench.count_params(m)})
    print(f"{name}: {100 * acc:.1f} %  ({time.perf_counter() - t0:.1f} s)")
plots.table(sf_rows, floatfmt=".3g", title="SlowFast vs Slow-only vs a single pathway at equal MACs")
sf = {r["model"].split(" (")[0]: r for r in sf_rows}
effcourse.record("slowfast", {k: {"acc": r["test accuracy %"] / 100, "macs": r["MMACs per clip"] * 1e6}
                              for k, r in sf.items()})
fast_share = 1 - sf["Slow-only"]["MMACs per clip"] / sf["SlowFast"]["MMACs per clip"]
print(f"the fast pathway and the laterals add {100 * fast_share:.0f} % of SlowFast's MACs")

# %% [markdown]
# **Read the table.** Slow-only has no temporal kernel, so it is a bag of (two) frames: on
# TemporalDigits it cannot beat the order-free 50 % (Lab 1). The fast pathway brings the motion in,
# for a share of the MACs that is larger here than in the paper (the slow pathway, two frames of
# 1×3×3 convolutions, is very cheap). The single pathway at the same cost must spread its MACs over
# all 8 frames with 3×3×3 kernels, so it ends up very narrow; whether that beats SlowFast depends on
# the widths, the training budget and the seed — with β = 1/8 and twice the widths, a plain 3D CNN of
# equal cost wins on this toy data. Motion is everything here and spatial semantics are trivial
# (an 8×8 digit); SlowFast's bet — spatial semantics need channels, motion needs frames — pays off
# where both matter, as on Kinetics.

# %% [markdown]
# ## 2. X3D: expand one axis at a time
#
# X3D starts from a tiny network X0 and grows it step by step. At every step it tries expanding
# **each axis on its own** — frames (X3D's $\gamma_t, \gamma_\tau$), resolution ($\gamma_s$), width
# ($\gamma_w$), depth ($\gamma_d$); X3D also has the bottleneck width $\gamma_b$ — each candidate
# costing about the same factor more (×2 here), trains each candidate briefly, and keeps the one with
# the best trade-off, until a complexity budget is reached. Write the search. A configuration is any
# dict; the three functions define the space:
#
# * `expand(config, axis)` → the config with that axis one step larger, or `None` when it cannot grow;
# * `evaluate(config)` → accuracy after brief training (expensive: call it once per candidate);
# * `cost(config)` → MACs.
#
# From the current config $c$ (accuracy $a$, cost $m$), each candidate $c'$ with `cost(c') ≤ budget`
# gets the score $(a' - a) / (m' - m)$, accuracy gained per MAC added (expansions always add MACs).
# Move to the candidate with the highest score (on a tie, the one whose axis comes first in `axes`),
# even if the score is negative, and repeat; stop when no candidate fits the budget.

# %% nbgrader={"grade": false, "grade_id": "greedy_expand", "locked": false, "schema_version": 3, "solution": true, "task": false}
def greedy_expand(config, axes, expand, evaluate, cost, budget):
    """X3D-style greedy coordinate expansion under a MAC budget.

    Args:
        config: the starting configuration X0 (a dict; not modified).
        axes: the axis names, in tie-break order.
        expand, evaluate, cost: the space's functions (see above).
        budget: the largest cost a configuration on the path may have.

    Returns:
        The path, a list of tuples (axis, config, accuracy, macs): first (None, X0, evaluate(X0), cost(X0)),
        then one tuple per step (the axis expanded, the new config, its accuracy, its cost).
    """
    ### BEGIN SOLUTION
    current, acc, macs = dict(config), evaluate(config), cost(config)
    path = [(None, current, acc, macs)]
    while True:
        best = None
        for axis in axes:
            cand = expand(current, axis)
            if cand is None:
                continue
            c = cost(cand)
            if c > budget:
                continue
            a = evaluate(cand)
            score = (a - acc) / (c - macs)
            if best is None or score > best[0]:
                best = (score, axis, cand, a, c)
        if best is None:
            return path
        _, axis, current, acc, macs = best
        path.append((axis, current, acc, macs))
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_greedy_expand", "locked": true, "points": 15, "schema_version": 3, "solution": false, "task": false}
import random
import time

from effcourse import judge
from effcourse.checks import lab9
from effcourse.checks.asserts import CheckFailed, assert_true, call

lab9.check_greedy_expand(greedy_expand)
### BEGIN HIDDEN TESTS
def _ref_greedy(space, config, axes, budget):
    cur, acc, macs = dict(config), space.evaluate(config), space.cost(config)
    path = [(None, cur, acc, macs)]
    while True:
        best = None
        for ax in axes:
            cand = space.expand(cur, ax)
            if cand is None or space.cost(cand) > budget:
                continue
            a, c = space.evaluate(cand), space.cost(cand)
            s = (a - acc) / (c - macs)
            if best is None or s > best[0]:
                best = (s, ax, cand, a, c)
        if best is None:
            return path
        _, ax, cur, acc, macs = best
        path.append((ax, cur, acc, macs))


with lab9.seed_in_failures(lab9.clock_seed()) as _seed:
    _rng = random.Random(_seed)
    _cases = [(("frames", "res", "width", "depth"), 3, 40.0), (("t", "s"), 2, 1e9), (("a", "b", "c"), 3, 8.0),
              (("a", "b", "c"), 3, 20.0), (("u", "v"), 4, 30.0),
              (("w", "d", "r", "t"), 2, 1.5), (("x",), 4, 1e9), (("a", "b", "c"), 2, 0.5)]
    for axes, max_level, rel_budget in _cases + [(("p", "q", "r"), 3, _rng.uniform(2, 30)) for _ in range(6)]:
        s = _rng.randrange(10**6)
        # axes that grow the cost at different rates: one may leave the budget while the others still fit
        factors = {a: _rng.choice([1.5, 2.0, 3.0, 4.0]) for a in axes}
        mine = lab9.ToySpace(axes, seed=s, max_level=max_level, factors=factors)
        theirs = judge.build("effcourse.checks.lab9.ToySpace", axes, seed=s, max_level=max_level, factors=factors)
        start = mine.start()
        budget = rel_budget * mine.cost(start)
        ref = _ref_greedy(mine, start, list(axes), budget)
        what = f"greedy_expand on a fake space (axes {axes}, {max_level} levels, budget {budget:.0f})"
        got = call(what, greedy_expand, dict(start), list(axes), theirs.expand, theirs.evaluate, theirs.cost, budget)
        try:
            got = [tuple(p) for p in got]
        except TypeError:
            raise CheckFailed(f"{what} must return a list of (axis, config, accuracy, macs) tuples, got {got!r}") from None
        steps = [p[0] for p in got]
        assert_true(len(got) == len(ref) and all(len(p) == 4 for p in got),
                    f"{what}: expected a path of {len(ref)} steps {[p[0] for p in ref]}, got {steps}")
        for i, (p, r) in enumerate(zip(got, ref)):
            ok = (p[0] == r[0] and dict(p[1]) == r[1] and abs(float(p[2]) - r[2]) < 1e-9 and abs(float(p[3]) - r[3]) < 1e-6)
            assert_true(ok, f"{what}: step {i}: expected {r}, got {p} (the expected path is {[q[0] for q in ref]}, "
                            f"yours {steps})")
### END HIDDEN TESTS

# %% [markdown]
# **Experiment.** The space: frames ∈ {2, 4, 8} (sampled evenly over the clip), resolution ∈ {8, 12,
# 16}, width ∈ {4, 6, 8, 12, 16, 24}, blocks per stage ∈ {1, 2, 4}; one step up an axis costs about ×2
# MACs. X0 = (2 frames, 8×8, width 4, depth 1). Every candidate is trained for `X3D_STEPS` steps from
# the same seed and tested on the test clips; the budget is `X3D_BUDGET` × X0's MACs.

# %% tags=["experiment"]
space = x3d.X3DSpace(train_set.tensors(), test_set.tensors(), steps=X3D_STEPS, seed=SEED, device=device)
x0 = {a: 0 for a in x3d.AXES}
t0 = time.perf_counter()
path = greedy_expand(x0, list(x3d.AXES), space.expand, space.evaluate, space.cost, X3D_BUDGET * space.cost(x0))
print(f"search: {len(space.log)} candidates trained in {time.perf_counter() - t0:.1f} s")
path_rows = [{"step": i, "expanded": ax or "(X0)", **x3d.values(c), "kMACs": m / 1e3, "accuracy %": 100 * a}
             for i, (ax, c, a, m) in enumerate(path)]
plots.table(path_rows, floatfmt=".3g", title="The path the greedy search took")
effcourse.record("x3d_path", [{"axis": ax, **x3d.values(c), "acc": a, "macs": m} for ax, c, a, m in path])
plots.expansion_path(space.log, path)
plt.show()

# %% [markdown]
# **What it picks, and why.** Two frames taken at the ends of the clip already show the direction of
# motion, and an 8×8 digit at 8×8 pixels still shows its shape, so on this data more frames or
# pixels add cost but little information: the search spends its budget on capacity (depth and
# width), which the short training rewards (full run, seed 0: X0 51 % → depth 68 % → width 74 % →
# width 75 %, at 6.3× X0's MACs; the next step would break the 12× budget). X3D on Kinetics found the opposite kind of network —
# "networks with high spatiotemporal resolution can perform well, while being extremely light in
# terms of network width and parameters" (X3D abstract) — because there the information lives in
# fine detail and longer context. The greedy search does not know any of this in advance; it
# measures. Its accuracies come from brief, single-seed training, so close calls (a point or two)
# are noise, and in QUICK mode the path is short.

# %% [markdown]
# ## 3. SCSampler: score every clip cheaply, classify only the best
#
# A long video holds $M$ clips; the expensive classifier $f$ gives clip $m$ the logits $f(x_m)$.
# The usual video prediction averages all $M$ of them — the cost is $M$ classifier runs, and the
# clips without the action add noise. SCSampler runs a **cheap saliency scorer** $s$ on every clip
# and the classifier only on the $k$ clips with the highest scores:
#
# $$\hat y = \frac1k \sum_{m \in \text{top-}k(s)} f(x_m).$$
#
# **Exercise 3a.** Write the selection and aggregation.

# %% nbgrader={"grade": false, "grade_id": "topk_predict", "locked": false, "schema_version": 3, "solution": true, "task": false}
def topk_predict(saliency, clip_logits, k):
    """Video logits from the k most salient clips of every video.

    Args:
        saliency: (N, M) scores, higher = more salient (no ties).
        clip_logits: (N, M, K) the classifier's logits for every clip.
        k: clips to keep per video (k >= 1); k >= M keeps all M.

    Returns:
        (N, K): row n is the mean of clip_logits[n, m] over the k clips m with the highest saliency[n, m].
        Gradients flow to clip_logits.
    """
    ### BEGIN SOLUTION
    k = min(int(k), saliency.shape[1])
    idx = saliency.topk(k, dim=1).indices                                            # (N, k)
    chosen = clip_logits.gather(1, idx.unsqueeze(-1).expand(-1, -1, clip_logits.shape[2]))   # (N, k, K)
    return chosen.mean(dim=1)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_topk_predict", "locked": true, "points": 10, "schema_version": 3, "solution": false, "task": false}
import time

import torch

from effcourse.checks import lab9
from effcourse.checks.asserts import assert_close, assert_true, call

lab9.check_topk_predict(topk_predict)
### BEGIN HIDDEN TESTS
with lab9.seed_in_failures(lab9.clock_seed()) as _seed:
    _g = torch.Generator().manual_seed(_seed)
    for (N, M, K, k) in [(3, 8, 5, 2), (1, 5, 3, 1), (4, 7, 2, 7), (2, 6, 4, 9), (5, 3, 1, 2), (2, 10, 8, 4), (1, 1, 3, 1)]:
        sal = torch.randn(N, M, generator=_g, dtype=torch.float64)
        lg = torch.randn(N, M, K, generator=_g, dtype=torch.float64, requires_grad=True)
        what = f"topk_predict(saliency {tuple(sal.shape)}, clip_logits {tuple(lg.shape)}, k={k})"
        out = call(what, topk_predict, sal, lg, k)
        kk = min(k, M)
        ref = torch.stack([lg.detach()[n, sal[n].argsort(descending=True)[:kk]].mean(0) for n in range(N)])
        assert_close(what, out, ref, atol=1e-10)
        assert_true(out.requires_grad, f"{what}: the result must carry gradients to clip_logits")
        out.sum().backward()
        gref = torch.zeros(N, M, K, dtype=torch.float64)
        for n in range(N):
            gref[n, sal[n].argsort(descending=True)[:kk]] = 1.0 / kk
        assert_close(f"gradient of {what} (1/k on the chosen clips, 0 elsewhere)", lg.grad, gref, atol=1e-10)
### END HIDDEN TESTS

# %% [markdown]
# **Training the scorer.** SCSampler defines a clip's saliency through the classifier itself. Here a
# clip's target is the classifier's probability of the video's true class on that clip — high on
# the action clips, low on still and jittering ones — and the scorer only needs to **rank** clips
# within a video, not to predict these numbers. A pairwise hinge (ranking) loss says exactly that:
# for every pair of clips $(i, j)$ of the same video with target $t_i > t_j$,
#
# $$\ell_{ij} = \max\big(0,\; \text{margin} - (s_i - s_j)\big),$$
#
# and the loss is the **mean of $\ell_{ij}$ over all such ordered pairs** of all videos in the batch
# (pairs with $t_i = t_j$ do not count; 0 when there is no such pair). SCSampler's paper trains its
# samplers with classification or such a saliency-ranking loss.
#
# **Exercise 3b.** Write the ranking loss.

# %% nbgrader={"grade": false, "grade_id": "ranking_loss", "locked": false, "schema_version": 3, "solution": true, "task": false}
def ranking_loss(scores, targets, margin=1.0):
    """Pairwise hinge ranking loss over the clips of each video.

    Args:
        scores: (N, M) the scorer's outputs.
        targets: (N, M) the saliency targets.
        margin: the hinge's margin.

    Returns:
        A 0-dim tensor: mean over all (n, i, j) with targets[n, i] > targets[n, j] of
        max(0, margin - (scores[n, i] - scores[n, j])); 0 when there is no such pair. Differentiable in scores.
    """
    ### BEGIN SOLUTION
    diff = scores.unsqueeze(2) - scores.unsqueeze(1)                 # (N, M, M): s_i - s_j
    more = targets.unsqueeze(2) > targets.unsqueeze(1)               # (N, M, M): t_i > t_j
    if not bool(more.any()):
        return scores.sum() * 0.0
    return F.relu(margin - diff[more]).mean()
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_ranking_loss", "locked": true, "points": 10, "schema_version": 3, "solution": false, "task": false}
import time

import torch

from effcourse.checks import lab9
from effcourse.checks.asserts import assert_close, assert_true, call

lab9.check_ranking_loss(ranking_loss)
### BEGIN HIDDEN TESTS
def _ref_rank(s, t, margin):
    terms = [max(0.0, margin - (s[n, i] - s[n, j]).item()) for n in range(s.shape[0]) for i in range(s.shape[1])
             for j in range(s.shape[1]) if t[n, i] > t[n, j]]
    return sum(terms) / len(terms) if terms else 0.0


with lab9.seed_in_failures(lab9.clock_seed()) as _seed:
    _g = torch.Generator().manual_seed(_seed)
    for (N, M, margin, ties) in [(3, 8, 1.0, False), (1, 5, 0.5, True), (4, 3, 2.0, True), (2, 6, None, False),
                                 (5, 2, 1.0, True), (1, 7, 0.1, False)]:
        s = (0.7 * torch.randn(N, M, generator=_g, dtype=torch.float64)).requires_grad_(True)
        t = (torch.randint(0, 3, (N, M), generator=_g) if ties else torch.randn(N, M, generator=_g)).double()
        what = f"ranking_loss(scores {tuple(s.shape)}, targets{' with ties' if ties else ''}, margin={margin})"
        out = call(what, ranking_loss, s, t) if margin is None else call(what, ranking_loss, s, t, margin)
        m = 1.0 if margin is None else margin
        assert_close(what, out, torch.tensor(_ref_rank(s.detach(), t, m), dtype=torch.float64), atol=1e-10)
        sr = s.detach().clone().requires_grad_(True)
        pairs = [(n, i, j) for n in range(N) for i in range(M) for j in range(M) if t[n, i] > t[n, j]]
        if pairs:
            ref = torch.stack([F.relu(m - (sr[n, i] - sr[n, j])) for n, i, j in pairs]).mean()
            ref.backward()
            out.backward()
            assert_true(s.grad is not None, f"{what}: no gradient reached the scores")
            assert_close(f"gradient of {what}", s.grad, sr.grad, atol=1e-10)
    # no ordered pair at all: equal targets
    z = call("ranking_loss with all targets equal", ranking_loss, torch.randn(2, 4, generator=_g),
             torch.ones(2, 4))
    assert_close("ranking_loss with all targets equal (no pair)", z, torch.tensor(0.0), atol=0)
### END HIDDEN TESTS

# %% [markdown]
# **Experiment.** The classifier (a 3×3×3 CNN) is trained on the action clips of the training
# videos. The scorer sees each clip at half resolution through its frame differences, with a few
# channels: its MACs are a fraction of a percent of the classifier's. It is trained with your
# ranking loss on the training videos' targets; then, on the test videos, accuracy as a function of
# $k$: your top-$k$ clips vs $k$ clips spaced uniformly (the usual dense/uniform testing).

# %% tags=["experiment"]
clips_tr, labels_tr = long_train.action_clips()
torch.manual_seed(SEED)
classifier = sampler.clip_classifier(len(CLASSES))
train_classifier(classifier, TensorClips(clips_tr, labels_tr),
                 Loop(steps=CLF_STEPS, batch_size=16, seed=SEED, device=device, desc="clip classifier"))
clips_te, labels_te = long_test.action_clips()
clip_acc = accuracy(classifier, TensorClips(clips_te, labels_te), device=device)
V_tr, Y_tr = long_train.tensors()
logits_tr = sampler.per_clip(classifier, V_tr, device=device)                            # (N, M, K)
targets_tr = logits_tr.softmax(-1).gather(2, Y_tr.view(-1, 1, 1).expand(-1, V_tr.shape[1], 1)).squeeze(2)
torch.manual_seed(SEED)
scorer = sampler.SaliencyNet()
sampler_hist = sampler.train_sampler(scorer, V_tr, targets_tr, ranking_loss,
                                     Loop(steps=SAMPLER_STEPS, batch_size=16, seed=SEED, device=device, desc="sampler"),
                                     lr=3e-3)
first_losses = sampler_hist["loss"][:10]
print(f"ranking loss: {sum(first_losses) / len(first_losses):.3f} over the first 10 steps, "
      f"{sampler_hist.mean('loss', last=10):.3f} over the last 10")
V_te, Y_te = long_test.tensors()
M = V_te.shape[1]
logits_te = sampler.per_clip(classifier, V_te, device=device)
sal_te = sampler.per_clip(scorer, V_te, device=device)                                   # (N, M)
one_clip = V_te[0, :1]
clf_macs, scorer_macs = bench.count_macs(classifier.cpu().eval(), one_clip), bench.count_macs(scorer.cpu().eval(), one_clip)
curve = {"SCSampler top-k": [], "uniform k": [], "oracle (true action clips)": []}
oracle = long_test.salient.double() + 1e-3 * torch.rand(V_te.shape[:2], generator=torch.Generator().manual_seed(SEED))
with torch.no_grad():
    for k in range(1, M + 1):
        curve["SCSampler top-k"].append(100 * (topk_predict(sal_te, logits_te, k).argmax(1) == Y_te).float().mean().item())
        u = sampler.uniform_indices(M, k)
        curve["uniform k"].append(100 * (logits_te[:, u].mean(1).argmax(1) == Y_te).float().mean().item())
        curve["oracle (true action clips)"].append(
            100 * (topk_predict(oracle, logits_te, k).argmax(1) == Y_te).float().mean().item())
hit = long_test.salient.gather(1, sal_te.topk(long_test.n_action, 1).indices).float().mean().item()
ks = list(range(1, M + 1))
cost = {k: (k * clf_macs + M * scorer_macs) / (M * clf_macs) for k in ks}       # relative to all M clips, no scorer
all_clips = curve["uniform k"][-1]
k_eq = next((k for k in ks if curve["SCSampler top-k"][k - 1] >= all_clips), M)
print(f"classifier on action clips: {100 * clip_acc:.1f} %; scorer MACs = {100 * scorer_macs / clf_macs:.2f} % "
      f"of the classifier's; the scorer's top-{long_test.n_action} clips are action clips {100 * hit:.1f} % of the time")
print(f"all {M} clips: {all_clips:.1f} %; SCSampler reaches it with k = {k_eq} "
      f"({curve['SCSampler top-k'][k_eq - 1]:.1f} %), at {100 * cost[k_eq]:.1f} % of the cost")
effcourse.record("scsampler", {"curve": curve, "clip_acc": clip_acc, "hit_rate": hit, "scorer_macs_ratio":
                               scorer_macs / clf_macs, "k_equal": k_eq, "cost_at_equal": cost[k_eq]})
plots.curves({k: (ks, v) for k, v in curve.items()}, "clips classified per video (k)", "video accuracy (%)",
             "SCSampler vs uniform sampling", hline=100 / len(CLASSES), hline_label="chance")
plt.show()

# %% [markdown]
# **Read the curve.** Uniform sampling gets *better* with more clips, because more clips mean more
# chances to hit the action — but the clips without it keep voting, and even all $M$ clips stay far
# from what the classifier does on action clips. The scorer's top-2 clips are (nearly) the action
# clips, so a couple of classifier runs beat all eight; the accuracy then *falls* as $k$ grows and
# the still and jittering clips get their vote back. That is SCSampler's double claim, fewer runs and
# higher accuracy, on data built to show it: here 2 clips of 8 hold the action, while Sports1M's
# videos are minutes long.

# %% [markdown]
# ## 4. RRM: compute on the difference between frames
#
# For a convolution without bias $F$ (a linear map), $F(x_{t+1}) = F(x_t) + F(x_{t+1} - x_t)$, so
# with the bias $b$ counted once, $y_{t+1} = y_t + F(\Delta)$. When consecutive frames are alike,
# $\Delta$ is small; zeroing its entries with $|\Delta| \le \tau$ makes it **sparse**, and a sparse
# convolution executes about $\mathrm{nnz}(\Delta)\cdot C_{out} k^2$ MACs instead of the dense
# $H'W'C_{out}C_{in}k^2$ (Lab 5 used the same identity for edits in space).
#
# Keep a **reference input** $x^{ref}$ such that the cached output is exactly $y = \mathrm{conv}(x^{ref})$.
# On a new frame $x$: $\Delta = x - x^{ref}$; $\hat\Delta = \Delta$ where $|\Delta| > \tau$, else 0;
# $y \leftarrow y + F(\hat\Delta)$; $x^{ref} \leftarrow x^{ref} + \hat\Delta$. Then $|x - x^{ref}| \le \tau$
# element-wise at every frame: a change that creeps in below the threshold over many frames is caught
# as soon as it adds up past $\tau$ (storing $x$ itself as the reference would drop it forever). At
# $\tau = 0$ the result is exact.
#
# **The nonlinearity problem.** The identity holds for one *linear* layer. It does not hold through
# ReLU: $\mathrm{relu}(y + d) \ne \mathrm{relu}(y) + \mathrm{relu}(d)$, so one cannot push $\Delta$
# through the whole network. RRM handles this as you will: every linear layer keeps its own previous
# input and output, the nonlinearities (ReLU, pooling) run on the full, accumulated outputs, and the
# next linear layer takes the difference of *its* full input again. (`rrm.incremental` builds such a
# network from your module.)

# %% nbgrader={"grade": false, "grade_id": "IncrementalConv", "locked": false, "schema_version": 3, "solution": true, "task": false}
class IncrementalConv(nn.Module):
    """A Conv2d run incrementally on a stream of frames (RRM), on the thresholded input difference.

    Args:
        conv: the nn.Conv2d to run (any kernel, stride, padding, dilation, groups; bias or not; zero padding),
            stored as self.conv (a submodule).
        threshold: tau >= 0; entries of the difference with |delta| <= tau are dropped.

    forward(x): x (N, C_in, H, W), the next frame of N streams. Returns (N, C_out, H', W'):
        * the first frame after construction or reset(): conv(x), in full; x_ref = x; self.last_delta = None.
        * later frames: delta = x - x_ref with entries |delta| <= threshold set to 0;
          y = y_prev + (conv of delta with the conv's weight, stride, padding, dilation, groups, no bias);
          x_ref = x_ref + delta; self.last_delta = delta (the sparse difference computed on).
        So the output is always conv(x_ref), exactly when threshold = 0.
    reset(): forget the stream (the next frame is a first frame).
    """

    def __init__(self, conv, threshold=0.0):
        super().__init__()
        ### BEGIN SOLUTION
        self.conv = conv
        self.threshold = float(threshold)
        self.reset()
        ### END SOLUTION

    def reset(self):
        ### BEGIN SOLUTION
        self.x_ref, self.y, self.last_delta = None, None, None
        ### END SOLUTION

    def forward(self, x):
        ### BEGIN SOLUTION
        if self.x_ref is None:                                       # first frame: dense
            self.x_ref, self.y, self.last_delta = x.clone(), self.conv(x), None
            return self.y
        delta = x - self.x_ref
        delta = torch.where(delta.abs() > self.threshold, delta, torch.zeros_like(delta))
        c = self.conv
        self.y = self.y + F.conv2d(delta, c.weight, None, c.stride, c.padding, c.dilation, c.groups)
        self.x_ref = self.x_ref + delta
        self.last_delta = delta
        return self.y
        ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_IncrementalConv", "locked": true, "points": 20, "schema_version": 3, "solution": false, "task": false}
import time

import torch
import torch.nn.functional as F
from torch import nn

from effcourse import judge
from effcourse.checks import lab9
from effcourse.checks.asserts import assert_close, assert_true, call

lab9.check_incremental_conv(IncrementalConv)
### BEGIN HIDDEN TESTS
with lab9.seed_in_failures(lab9.clock_seed()) as _seed:
    _g = torch.Generator().manual_seed(_seed)
    for (N, cin, cout, k, stride, pad, groups, bias, tau, T_) in [
            (2, 3, 4, 3, 1, 1, 1, True, 0.0, 4), (1, 4, 6, 3, 2, 1, 2, True, 0.3, 6), (3, 2, 5, 1, 1, 0, 1, False, 0.5, 5),
            (2, 6, 3, 3, 1, 0, 3, True, 0.8, 4), (1, 3, 3, 5, 2, 2, 1, True, 0.05, 7), (2, 5, 2, 3, 1, 2, 1, False, 1.2, 5)]:
        conv = nn.Conv2d(cin, cout, k, stride=stride, padding=pad, groups=groups, bias=bias).double()
        if bias:
            with torch.no_grad():
                conv.bias.add_(torch.randn(cout, generator=_g, dtype=torch.float64))
        yours = judge.twin(conv, "torch.nn.Conv2d", cin, cout, k, stride=stride, padding=pad, groups=groups, bias=bias,
                           dtype=torch.float64)
        what = f"IncrementalConv(Conv2d({cin}, {cout}, {k}, stride={stride}, padding={pad}, groups={groups}, bias={bias}), {tau})"
        m = call(what, IncrementalConv, yours, tau)
        # a stream whose frames drift slowly (changes below tau that add up) and sometimes jump
        x = torch.randn(N, cin, 7, 6, generator=_g, dtype=torch.float64)
        frames = [x]
        for _ in range(1, T_):
            step = 0.4 * tau * torch.rand(N, cin, 7, 6, generator=_g, dtype=torch.float64)
            jump = (torch.rand(N, cin, 7, 6, generator=_g) < 0.2).double() * torch.randn(N, cin, 7, 6, generator=_g,
                                                                                          dtype=torch.float64)
            frames.append(frames[-1] + step + jump)
        for rep in range(2):                       # the second pass follows reset(): a new stream
            x_ref = None
            for t, xt in enumerate(frames):
                xt = xt + rep
                with torch.no_grad():
                    if x_ref is None:
                        x_ref, d = xt.clone(), None
                    else:
                        d = xt - x_ref
                        d = torch.where(d.abs() > tau, d, torch.zeros_like(d))
                        x_ref = x_ref + d
                    ref = conv(x_ref)
                y = call(f"{what}, frame {t}", m, xt.clone())
                assert_close(f"{what}: output at frame {t}{' after reset()' if rep else ''} (must be conv(x_ref))",
                             y, ref, atol=1e-9)
                ld = judge.get(m, "last_delta")
                if d is None:
                    assert_true(ld is None, f"{what}: last_delta must be None after a first frame (t={t})")
                else:
                    assert_close(f"{what}: last_delta at frame {t} (the thresholded difference)", ld, d, atol=1e-12)
            if rep == 0:
                call(f"{what}.reset()", m.reset)
        n_params = sum(p.numel() for p in call(f"{what}.parameters()", m.parameters))
        assert_true(n_params == sum(p.numel() for p in conv.parameters()),
                    f"{what}: its parameters must be exactly the conv's (store it as self.conv)")
        assert_true(judge.isinstance_of(judge.get(m, "conv"), "torch.nn.Conv2d"), f"{what}: self.conv must be the conv")
### END HIDDEN TESTS

# %% [markdown]
# **Experiment.** A small per-frame CNN (three conv + ReLU layers, pooled, linear; random weights:
# we measure how far the incremental outputs drift from the dense ones, not accuracy) runs on two
# kinds of streams of 32 frames from `LongVideos`: **near-static** (still clips and the action,
# no jitter) and **busy** (jitter in every non-action clip). For each threshold: the relative error
# of the outputs against the dense network, and the executed conv MACs as a share of the dense ones.

# %% tags=["experiment"]
torch.manual_seed(SEED)
frame_net = rrm.frame_cnn(widths=(8, 16, 16), num_classes=len(CLASSES)).eval()
streams = {"near-static": LongVideos("test", RRM_STREAMS, size=SIZE, p_jitter=0.0, seed=SEED + 1).videos.flatten(1, 2),
           "busy": LongVideos("test", RRM_STREAMS, size=SIZE, p_jitter=1.0, seed=SEED + 1).videos.flatten(1, 2)}
rrm_rows, rrm_res = [], {}
for kind, vids in streams.items():
    for tau in THRESHOLDS:
        errs, executed, dense = [], 0, 0
        for frames in vids:
            out, e, d = rrm.run_stream(rrm.incremental(frame_net, IncrementalConv, tau), frames)
            with torch.no_grad():
                ref = frame_net(frames)
            errs.append(((out - ref).norm() / ref.norm()).item() if tau > 0 else (out - ref).abs().max().item())
            executed, dense = executed + e, dense + d
        rrm_res[(kind, tau)] = (sum(errs) / len(errs), executed / dense)
        rrm_rows.append({"stream": kind, "threshold": tau, "relative error": rrm_res[(kind, tau)][0] if tau > 0 else 0.0,
                         "executed MACs %": 100 * executed / dense})
exact_err = max(rrm_res[(k, 0.0)][0] for k in streams)
lab9.check_rrm_exact(exact_err)
plots.table(rrm_rows, floatfmt=".3g", title="RRM: error and executed MACs vs threshold")
effcourse.record("rrm", {"exact_max_err": exact_err, **{f"{k}@{tau}": {"err": e, "macs": f}
                                                         for (k, tau), (e, f) in rrm_res.items()}})
plots.rrm_tradeoff(rrm_res)
plt.show()

# %% [markdown]
# **Read the table.** At $\tau = 0$ the outputs equal the dense ones (to rounding), and even then many
# MACs are skipped: after a ReLU, what is zero in both frames stays zero in the difference. On
# near-static streams a threshold just above the sensor noise removes most of the remaining work for
# a tiny error; busy streams keep changing, so the same threshold saves much less. The MACs counted
# here are *executed* MACs of a sparse convolution; a dense GPU kernel would not run faster on a
# sparse $\Delta$ — the lecture's point that RRM "needs specialized hardware to exploit fine-grained
# sparsity".

# %% [markdown]
# ## 5. Paper vs. you
#
# The papers train ResNet-50-sized networks on Kinetics-400 or Sports1M at 224×224; you trained
# networks of a few thousand to a million MACs on 16×16 digits for a few hundred steps. Compare
# directions and ratios, not values.

# %% tags=["experiment"]
plots.table([
    {"claim": "SlowFast vs Slow-only (accuracy, cost)",
     "paper": "75.6 % vs 72.6 % top-1, 36.1 vs 27.3 GFLOPs (4×16, R-50, Kinetics-400)",
     "you": f"{sf['SlowFast']['test accuracy %']:.1f} % vs {sf['Slow-only']['test accuracy %']:.1f} %, "
            f"{sf['SlowFast']['MMACs per clip']:.2f} vs {sf['Slow-only']['MMACs per clip']:.2f} MMACs"},
    {"claim": "share of the cost in the fast pathway", "paper": "about 20 %",
     "you": f"{100 * fast_share:.0f} % (fast pathway + laterals)"},
    {"claim": "SlowFast vs one pathway at equal cost", "paper": "not in the paper in this form",
     "you": f"{sf['SlowFast']['test accuracy %']:.1f} % vs {sf['single pathway']['test accuracy %']:.1f} %"},
    {"claim": "X3D: what the search grows", "paper": "high spatiotemporal resolution, narrow width",
     "you": " → ".join(r["expanded"] for r in path_rows)},
    {"claim": "X3D efficiency", "paper": "4.8× fewer multiply-adds for similar accuracy (X3D-M: 76.2 %, K400)",
     "you": f"{path_rows[-1]['accuracy %']:.1f} % at {path_rows[-1]['kMACs'] / path_rows[0]['kMACs']:.1f}× X0's MACs"},
    {"claim": "SCSampler: accuracy gain over all clips", "paper": "+7 % (Sports1M)",
     "you": f"{max(curve['SCSampler top-k']) - all_clips:+.1f} points (best k vs all {M} clips)"},
    {"claim": "SCSampler: cost reduction", "paper": "more than 15× (Sports1M)",
     "you": f"{1 / cost[k_eq]:.1f}× at equal accuracy (k = {k_eq} of {M}; the scorer counted)"},
    {"claim": "RRM: speed-up", "paper": "2× on average (AlexNet, ResNet); 9× on XNOR-Nets",
     "you": f"{1 / rrm_res[('near-static', 0.05)][1]:.1f}× (near-static) and {1 / rrm_res[('busy', 0.05)][1]:.1f}× (busy) "
            f"fewer executed MACs at threshold 0.05"},
], title="Paper vs. you")

# %% [markdown]
# Sources. SlowFast: the paper's ablation on Kinetics-400 (SlowFast 4×16 vs Slow-only 4×16, R-50,
# 30-view GFLOPs) and its statement that the Fast pathway takes about 20 % of the computation; the
# 5×1×1, stride-α, 2βC lateral is the paper's "time-strided convolution"; α = 8, β = 1/8 are its
# defaults. X3D: the abstract ("4.8× and 5.5× fewer multiply-adds and parameters for similar
# accuracy"; "high spatiotemporal resolution ... extremely light in terms of network width") and the
# official PySlowFast MODEL_ZOO (X3D-M 76.2 % top-1, 30 views). SCSampler: the abstract (Sports1M:
# +7 % accuracy, more than 15× less computation). RRM: the abstract (about 2× on AlexNet and ResNet,
# 9× on XNOR-Nets; "feature maps of each frame are precisely computed"). The lecture's slides name the
# four methods and state RRM's identity and its need for sparse hardware.
#
# Differences, one sentence each. *SlowFast:* 3 stages of one 3D conv each on 16×16 frames with
# α = 4, β = 1/4 and no temporal kernels in the slow pathway at all (the paper has them in res4–5).
# *X3D:* four axes (no bottleneck width), levels about ×2 MACs apart, tens of training steps per
# candidate and a single seed, and no backward contraction step. *SCSampler:* one scorer on frame
# differences instead of the paper's compressed-video or audio samplers, 8 clips per video instead
# of minutes of video. *RRM:* MACs counted, not time, and random weights instead of a trained
# detector or pose network.
#
# ## 6. Questions

# %% tags=["experiment"]
print(f"QUICK={QUICK}: the notebook ran in {time.perf_counter() - t_start:.0f} s")

# %% [markdown]
# **Q1 (10 points).** Use your section 1 table. Why does Slow-only stay near 50 % on TemporalDigits?
# What share of SlowFast's MACs does the fast pathway (with the laterals) take, and what does it buy?
# The single pathway at equal MACs saw all 8 frames with temporal kernels: say why it did worse (or
# better) than SlowFast here.

# %% [markdown] nbgrader={"grade": true, "grade_id": "q1_slowfast", "locked": false, "points": 10, "schema_version": 3, "solution": true, "task": false}
# Slow-only has no temporal extent (1×3×3 kernels) and pools over its 2 frames: it is a bag of frames,
# and TemporalDigits' reversal pairs have the same frame sets, so it can name the kind of motion but
# not its direction: about 50 % at best (full run: 48.5 %; QUICK: 42 %). The fast pathway + laterals
# take about 60 % of SlowFast's MACs here (the paper: about 20 %; our slow pathway is unusually cheap)
# and bring motion into the slow pathway: SlowFast reaches 92 % (QUICK: 72 %). The single pathway at the
# same MACs had to run 3×3×3 convs on all 8 frames, so its width was only 3 channels — too narrow
# (76 %; QUICK: 49 %); SlowFast spends the MACs asymmetrically (channels where frames are few, frames
# where channels are few). (A learner whose single pathway won should say why: e.g. the data's spatial
# content is trivial, so channels for spatial semantics buy little.)

# %% [markdown]
# **Q2 (10 points).** Give the path your X3D search took (axes in order, final MACs and accuracy).
# Why did it (not) expand frames and resolution on this data? Name one thing about the search that
# makes its choices unreliable here, and how X3D's paper makes them more reliable.

# %% [markdown] nbgrader={"grade": true, "grade_id": "q2_x3d", "locked": false, "points": 10, "schema_version": 3, "solution": true, "task": false}
# (Answers quote the learner's own path, e.g. X0 → depth → width → width, ~6× X0's MACs, ~75 %.)
# Two frames at the clip's ends already show the direction of motion, and an 8×8 digit needs no more
# than 8×8 pixels, so frames and resolution add MACs and little information; depth/width add capacity,
# which short training rewards. Unreliable: each candidate is trained for a few dozen steps from one
# seed and tested on a few hundred clips, so differences of a few points are noise, and brief training
# favours what trains fast, not what is best when trained long. X3D trains each candidate on the full
# data (a fraction of the schedule, on Kinetics), expands in many small steps and then contracts
# backwards to hit the target complexity exactly; several seeds would help too.

# %% [markdown]
# **Q3 (10 points).** (a) From your section 3 curve: at which k does SCSampler first match the accuracy of
# all 8 clips, and what fraction of the cost does that take (count the scorer)? Why does accuracy
# *fall* when k grows past 2? (b) From your section 4 table: at threshold 0.05, how many executed MACs
# remain on near-static and on busy streams, and at what error? Why can an RRM network not simply
# propagate Δ through the ReLUs, and what does it do instead?

# %% [markdown] nbgrader={"grade": true, "grade_id": "q3_sampler_rrm", "locked": false, "points": 10, "schema_version": 3, "solution": true, "task": false}
# (a) With k = 1 (or 2) the top clips are the action clips, already above the all-clips accuracy: one
# or two classifier runs instead of eight plus eight cheap scorer runs, i.e. about 1/8–1/4 of the cost
# (the scorer adds well under 1 %). Past k = 2 the extra clips are still or jittering ones, whose
# logits carry no class information and vote for arbitrary classes, diluting the average.
# (b) Near-static streams keep only a few percent of the MACs (the threshold removes the sensor noise),
# busy ones about a fifth, at relative errors of a few tenths of a percent. relu(y + d) ≠ relu(y) +
# relu(d), so Δ after a ReLU is not relu(Δ); RRM keeps every linear layer's previous input and output,
# applies the nonlinearity to the full accumulated output and takes the next layer's difference anew.
