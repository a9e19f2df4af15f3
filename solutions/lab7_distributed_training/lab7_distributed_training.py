# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Lab 7 — Kinetics in 15 minutes: data-parallel training with torch.distributed
#
# **You will build** the collectives that large-scale synchronous training rests on, and find its
# three bottlenecks. By hand: a **ring all-reduce** from sends and receives (fitted with the α–β
# model against gloo's), **gradient buckets** all-reduced while the backward pass still runs (how
# much communication hides), and a **two-level all-reduce** inside and across "nodes". Around them:
# the linear learning-rate scaling rule with warm-up and each rank's shard of a shuffled epoch. Then
# you run them on PyTorch's own distributed engine — gloo processes on this machine,
# `DistributedDataParallel`, `DistributedSampler`, `torchrun` — prove that two processes train
# exactly like one with twice the batch, bound the speed-up at 1,536 GPUs with ring, tree and
# hierarchical all-reduce, measure data loading from JPEG files as the frames per clip grow, and
# watch accuracy fall at large batches unless the learning rate is scaled.
#
# **Time:** about 2 hours. **Papers:** Lin, Gan, Han, *Training Kinetics in 15 Minutes: Large-scale
# Distributed Training on Videos*, 2019 (arXiv 1910.00932); Goyal et al., *Accurate, Large
# Minibatch SGD: Training ImageNet in 1 Hour*, 2017.
#
# **Intuition.** Synchronous data parallelism is one big mini-batch cut into pieces. Every process
# (a *rank*, one per GPU) holds the same model, computes the gradient of its own slice of the batch,
# and the ranks *average* their gradients (an all-reduce) before every one of them takes the same
# optimizer step. Done right, W ranks with b clips each compute exactly the step one process would
# compute on W·b clips — only W times faster. Two things decide whether that pays off. First, the
# optimisation: a W-times larger batch means W times fewer steps per epoch, so the learning rate
# must grow with the batch (and ramp up gently at the start). Second, the communication: every step
# sends the whole gradient — as many bytes as the model has parameters — around the network. A
# model with fewer parameters and FLOPs, like TSM, scales further than a 3D CNN.
#
# | Summit (8-frame ResNet-50 TSM, Kinetics: 240k videos × 100 epochs) | time | top-1 | speed-up |
# |---|---|---|---|
# | 1 node, 6 V100 GPUs | 49 h 50 min | 74.1 % | 1× |
# | 128 nodes, 768 GPUs | 28 min | 74.1 % | 106× (ideal 128×) |
# | 256 nodes, 1,536 GPUs | 14 min | 74.0 % | 211× (ideal 256×) |
#
# *Source: the lecture (Lin et al. 2019). The paper's abstract gives 49 h 55 min and 14 min 13 s, with
# a mini-batch of 12,288 clips on 1,536 GPUs, i.e. 8 clips per GPU.*

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
import dataclasses
import json
import math
import os
import shlex
import statistics
import subprocess
import shutil
import sys
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import torch
import torch.distributed as dist
from torch import nn  # noqa: F401 - for your answers
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DistributedSampler

import effcourse
from effcourse import bench, plots
from effcourse.checks import lab7
from effcourse.data import TemporalDigits
from effcourse import learner
from effcourse.training import Loop
from effcourse.video import distributed, large_batch, loading, scaling

# %% tags=["parameters"]
QUICK = False
SEED = 0
DEVICE = "auto"
LAB1_NOTEBOOK = "../lab1_temporal_shift/lab1_temporal_shift.ipynb"   # your Lab 1: its temporal shift makes the TSM here

# %%
QUICK, device = effcourse.setup(QUICK, SEED, DEVICE)
print("the experiments in this notebook run on the CPU over gloo; the GPU/NCCL path is the torchrun "
      "script of section 8 (docs/DISTRIBUTED.md)")

# %% [markdown]
# ## 1. The linear scaling rule, with gradual warm-up
#
# One SGD step on a batch of $kb$ samples moves the weights by $\eta \cdot \frac{1}{kb}\sum_{j} \nabla
# \ell_j$ — the *average* gradient. $k$ steps on batches of $b$ move them by roughly $\eta \cdot
# \sum_{i=1}^{k} \frac{1}{b}\sum_{j\in B_i} \nabla \ell_j$ — $k$ times as far, as long as the gradient
# barely changes over those $k$ steps. So when the mini-batch grows $k$-fold, multiply the learning
# rate by $k$ (Goyal et al. 2017: 0.1 for 256 ImageNet images, $0.1 \cdot kn/256$ for $kn$). The TSM
# repository says the same for Kinetics: lr 0.02 at batch 128, *"if you use a batch size of 256 you
# should set learning rate to 0.04"*.
#
# $$\eta(B) = \eta_{\text{base}} \cdot \frac{B}{B_{\text{base}}}$$
#
# The approximation fails at the very start, when the weights change fast: a large rate there can
# diverge. **Gradual warm-up** ramps the rate linearly over the first steps (Goyal et al.: 5 epochs)
# up to its peak. After the warm-up our schedule decays with a half cosine to zero (TSM's code offers
# the same, `--lr_type cos`):
#
# $$
# \eta_s = \begin{cases}
#  \eta_{\text{peak}} \cdot \dfrac{s+1}{W} & 0 \le s < W \quad\text{(warm-up: } \eta_{\text{peak}}/W,\ 2\eta_{\text{peak}}/W, \dots, \eta_{\text{peak}})\\[2ex]
#  \eta_{\text{peak}} \cdot \tfrac12\Bigl(1 + \cos\bigl(\pi\,\dfrac{s - W}{S - W}\bigr)\Bigr) & W \le s < S
# \end{cases}
# $$
#
# for step $s = 0, 1, \dots, S-1$ of a run of $S$ steps with $W$ warm-up steps ($0 \le W \le S$;
# $W = 0$ means no warm-up).

# %% nbgrader={"grade": false, "grade_id": "scaled_lr", "locked": false, "schema_version": 3, "solution": true, "task": false}
def scaled_lr(base_lr, base_batch, batch):
    """The linear scaling rule (Goyal et al., 2017).

    Args:
        base_lr: a learning rate that works for mini-batches of base_batch samples (float > 0).
        base_batch: that reference mini-batch size (int >= 1).
        batch: the global mini-batch size to train with (int >= 1); it may be smaller than base_batch.

    Returns:
        The learning rate for batch, base_lr * batch / base_batch, as a float.
    """
    ### BEGIN SOLUTION
    return float(base_lr) * batch / base_batch
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_scaled_lr", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
import math
import random

from effcourse.checks import lab7
from effcourse.checks.asserts import CheckFailed, call

lab7.check_scaled_lr(scaled_lr)
### BEGIN HIDDEN TESTS
with lab7.seed_in_failures(lab7.clock_seed()) as _seed:
    _rng = random.Random(_seed)
    _cases = [(0.1, 256, 256), (0.1, 256, 255), (0.05, 32, 100), (1.0, 7, 3), (0.3, 1, 1)]
    _cases += [(_rng.uniform(1e-4, 2.0), _rng.randint(1, 1024), _rng.randint(1, 50000)) for _ in range(30)]
    for _lr, _b0, _b in _cases:
        _what = f"scaled_lr({_lr:.6g}, {_b0}, {_b})"
        _got = lab7.as_float(_what, call(_what, scaled_lr, _lr, _b0, _b))
        _want = _lr * _b / _b0
        if not math.isclose(_got, _want, rel_tol=1e-9, abs_tol=1e-15):
            raise CheckFailed(f"scaled_lr({_lr:.6g}, base_batch={_b0}, batch={_b}): expected {_want:.10g}, "
                              f"got {_got:.10g}")
### END HIDDEN TESTS

# %% nbgrader={"grade": false, "grade_id": "lr_at", "locked": false, "schema_version": 3, "solution": true, "task": false}
def lr_at(step, peak_lr, warmup_steps, total_steps):
    """Learning rate of optimizer step `step`: linear warm-up, then half-cosine decay.

    Args:
        step: the step's index, 0 <= step < total_steps.
        peak_lr: the rate reached at the end of the warm-up (the scaled rate).
        warmup_steps: W, 0 <= W <= total_steps; W = 0 means no warm-up.
        total_steps: S >= 1, the number of steps of the whole run.

    Returns:
        A float: peak_lr * (step + 1) / W while step < W, else
        peak_lr * 0.5 * (1 + cos(pi * (step - W) / (S - W))).
    """
    ### BEGIN SOLUTION
    if step < warmup_steps:
        return peak_lr * (step + 1) / warmup_steps
    progress = (step - warmup_steps) / (total_steps - warmup_steps)
    return peak_lr * 0.5 * (1.0 + math.cos(math.pi * progress))
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_lr_at", "locked": true, "points": 8, "schema_version": 3, "solution": false, "task": false}
import math
import random

from effcourse.checks import lab7
from effcourse.checks.asserts import CheckFailed, call

lab7.check_lr_at(lr_at)
### BEGIN HIDDEN TESTS
with lab7.seed_in_failures(lab7.clock_seed()) as _seed:
    _rng = random.Random(_seed)

    def _ref_lr(s, peak, w, total):
        if s < w:
            return peak * (s + 1) / w
        return peak * 0.5 * (1 + math.cos(math.pi * (s - w) / (total - w)))

    _cfgs = [(1.0, 0, 1), (1.0, 1, 1), (0.4, 5, 5), (2.0, 0, 7), (0.1, 1, 2), (0.8, 3, 4), (0.05, 10, 200)]
    for _ in range(25):
        _total = _rng.randint(1, 300)
        _cfgs.append((_rng.uniform(1e-3, 5.0), _rng.randint(0, _total), _total))
    for _peak, _w, _total in _cfgs:
        for _s in range(_total):
            _want = _ref_lr(_s, _peak, _w, _total)
            _what = f"lr_at({_s}, {_peak:.6g}, {_w}, {_total})"
            _got = lab7.as_float(_what, call(_what, lr_at, _s, _peak, _w, _total))
            if not math.isclose(_got, _want, rel_tol=1e-9, abs_tol=1e-12):
                raise CheckFailed(f"lr_at(step={_s}, peak_lr={_peak:.6g}, warmup_steps={_w}, total_steps={_total}): "
                                  f"expected {_want:.10g}, got {_got:.10g}")
### END HIDDEN TESTS

# %% tags=["experiment"]
fig, ax = plt.subplots(figsize=(6, 3.2))
for batch, warm in [(32, 0), (256, 0), (256, 8)]:
    peak = scaled_lr(0.05, 32, batch)
    total = 64
    ax.plot([lr_at(s, peak, warm, total) for s in range(total)],
            label=f"batch {batch}: peak {peak:.2f}, {warm} warm-up steps")
ax.set_xlabel("step")
ax.set_ylabel("learning rate")
ax.set_title("Your schedules (64 steps)")
ax.legend(fontsize=8)
plt.show()

# %% [markdown]
# ## 2. Each rank's share of an epoch
#
# With W ranks, an epoch is one random permutation of the data set cut into W shares. PyTorch's
# `DistributedSampler` guarantees, for every data set size $n$ and world size $W$:
#
# * **equal sizes**: every rank gets $\lceil n/W \rceil$ indices, so every rank runs the same number of
#   steps (a rank with one batch fewer would leave the others waiting forever in an all-reduce);
# * **the union is the epoch**: together the shares hold every index of `range(n)`; to make the sizes
#   equal, $\lceil n/W\rceil W - n$ indices are *repeated* (padding), evenly: no index appears more than
#   once more than any other, even when $n < W$;
# * **the same permutation on every rank**, drawn from a generator seeded by `seed` and `epoch` only, so
#   ranks agree without talking to each other; a **fresh order every epoch**
#   (`sampler.set_epoch(epoch)`), and a different one for a different `seed`.
#
# ```
# n = 10, W = 4, a permutation of the epoch:  7 2 9 0 4 1 8 5 3 6 | 7 2   (padded to 12 with its first 2)
# rank 0: 7 4 3    rank 1: 2 1 6    rank 2: 9 8 7    rank 3: 0 5 2       (strided: rank r takes r, r+W, ...)
# ```
#
# Your function must be a function of its arguments only: use a local `torch.Generator` (or NumPy's
# `default_rng`), never the global random state — and leave it untouched.

# %% nbgrader={"grade": false, "grade_id": "shard_indices", "locked": false, "schema_version": 3, "solution": true, "task": false}
def shard_indices(n, rank, world_size, epoch, seed):
    """Rank `rank`'s share of one shuffled epoch of a data set of n samples.

    Args:
        n: the data set size, >= 1.
        rank: this rank, 0 <= rank < world_size.
        world_size: W >= 1 (may exceed n).
        epoch, seed: ints; the epoch's permutation depends on them only.

    Returns:
        A 1-D integer tensor (or a list of ints) of ceil(n / W) indices in range(n). Over the W ranks
        the shares hold every index at least once; the ceil(n / W) * W - n extra entries repeat
        indices, and no index appears more than once more than any other. The order comes from a
        random permutation drawn from a generator seeded by (seed, epoch) alone, identical on all
        ranks, different for another epoch or seed. Neither reads nor changes the global random state.

    Raises:
        ValueError: if world_size < 1 or rank is not in [0, world_size).
    """
    ### BEGIN SOLUTION
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"need world_size >= 1 and 0 <= rank < world_size, got rank={rank}, world_size={world_size}")
    g = torch.Generator().manual_seed(seed + epoch)
    order = torch.randperm(n, generator=g)
    per_rank = math.ceil(n / world_size)
    total = per_rank * world_size
    reps = math.ceil(total / n)
    padded = order.repeat(reps)[:total]             # the permutation, then its start again
    return padded[rank:total:world_size]
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_shard_indices", "locked": true, "points": 12, "schema_version": 3, "solution": false, "task": false}
import math
import random
from collections import Counter

import torch

from effcourse.checks import lab7
from effcourse.checks.asserts import CheckFailed, call

lab7.check_shard_indices(shard_indices)
### BEGIN HIDDEN TESTS
with lab7.seed_in_failures(lab7.clock_seed()) as _seed:
    _rng = random.Random(_seed)

    def _fail(msg):
        raise CheckFailed(f"{msg}")

    def _share(n, r, w, e, s):
        what = f"shard_indices({n}, rank={r}, world_size={w}, epoch={e}, seed={s})"
        return lab7.as_index_list(what, call(what, shard_indices, n, r, w, e, s))

    _cases = [(10, 4), (1, 1), (1, 3), (2, 5), (7, 7), (97, 1), (97, 2), (100, 3), (64, 8), (3, 8), (1000, 6), (13, 12)]
    _cases += [(_rng.randint(1, 300), _rng.randint(1, 16)) for _ in range(8)]
    for _n, _w in _cases:
        _e, _s = _rng.randint(0, 50), _rng.randint(0, 10**6)
        _shares = [_share(_n, _r, _w, _e, _s) for _r in range(_w)]
        _m = math.ceil(_n / _w)
        _sizes = sorted({len(x) for x in _shares})
        if _sizes != [_m]:
            _fail(f"n={_n}, world_size={_w}: every rank needs ceil(n/W) = {_m} indices, got sizes {[len(x) for x in _shares]}")
        _flat = [i for x in _shares for i in x]
        if any(not 0 <= i < _n for i in _flat):
            _fail(f"n={_n}, world_size={_w}: indices must lie in range({_n}), got {[i for i in _flat if not 0 <= i < _n][:5]}")
        _cnt = Counter(_flat)
        if len(_cnt) != _n:
            _fail(f"n={_n}, world_size={_w}, epoch={_e}, seed={_s}: the ranks' shares together miss "
                  f"{_n - len(_cnt)} of the {_n} samples")
        if max(_cnt.values()) - min(_cnt.values()) > 1:
            _fail(f"n={_n}, world_size={_w}: the padding must repeat indices evenly, but one index appears "
                  f"{max(_cnt.values())} times and another {min(_cnt.values())} times")
    # a fresh permutation every epoch (rank 0's *set* changes, not only its order), another for another seed
    for _n, _w in [(60, 2), (61, 3), (40, 4)]:
        _s = _rng.randint(0, 10**6)
        _sets = [frozenset(_share(_n, 0, _w, _e, _s)) for _e in range(4)]
        if len(set(_sets)) < 4:
            _fail(f"n={_n}, world_size={_w}: rank 0 got the same samples in two of epochs 0-3; "
                  "every epoch must be a fresh shuffle of the whole data set")
        if _share(_n, 0, _w, 3, _s) == _share(_n, 0, _w, 3, _s + 7919):
            _fail(f"n={_n}, world_size={_w}: seeds {_s} and {_s + 7919} gave rank 0 the same share; the seed must matter")
    # a shuffle, not a rotation, reversal or stride of range(n): neighbours in a share are not neighbours
    # (or a fixed step apart) in the data set, and a class-sorted data set (W blocks of n/W samples) does
    # not give a rank a run of one class. With n = W*m (no padding) each share of a correct answer is m
    # distinct indices in the order of a uniformly random permutation, so, revealing it left to right, each
    # of the m-1 steps s[i+1]-s[i] (mod n) equals a given d with probability <= 1/(n-m+1) whatever came
    # before. Hence P(some d occurs >= c times in a share) <= (n-1) * C(m-1, c) / (n-m+1)^c, and a share
    # holds >= ceil(m/2) of one block (hypergeometric, mean m/W; Hoeffding for sampling without
    # replacement) with probability <= exp(-2 (ceil(m/2) - m/W)^2 / m). With c = 12, summed over the W
    # shares, the W blocks and the three cases below: a correct shuffle fails here with probability
    # < 1e-8 (steps: 1.4e-11 + 3.8e-15 + 1.5e-9; blocks: 8.3e-16 + 3.4e-15 + 2.0e-9; total < 3.6e-9; recomputed
    # by tests/test_lab7_distributed_training.py). A rotation, a reversal or
    # an affine stride (cut contiguously or strided) repeats one step m-1 >= 142 times; a rotation cut
    # contiguously holds >= ceil(m/2) of one block.
    _C = 12
    for _n, _w in [(1200, 4), (1001, 7), (1200, 3)]:
        _e, _s = _rng.randint(0, 50), _rng.randint(0, 10**6)
        _m = _n // _w
        for _r in range(_w):
            _sh = _share(_n, _r, _w, _e, _s)
            _d, _k = Counter((_b - _a) % _n for _a, _b in zip(_sh, _sh[1:])).most_common(1)[0]
            if _k >= _C:
                _fail(f"shard_indices({_n}, rank={_r}, world_size={_w}, epoch={_e}, seed={_s}): {_k} of the {_m - 1} "
                      f"neighbours in the share are {_d} apart (mod {_n}); a random permutation does that fewer than "
                      f"{_C} times except with probability < 1e-8. Shuffle the epoch (a random permutation), do not "
                      "rotate, reverse or stride range(n)")
            _blk = Counter(i // _m for i in _sh).most_common(1)[0]
            if _blk[1] >= (_m + 1) // 2:
                _fail(f"shard_indices({_n}, rank={_r}, world_size={_w}, epoch={_e}, seed={_s}): {_blk[1]} of the share's "
                      f"{_m} indices lie in range({_blk[0] * _m}, {(_blk[0] + 1) * _m}), one {_w}th of the data set "
                      f"(a random share holds about {_m // _w}): on a data set sorted by class this rank would see "
                      "mostly one class. Shuffle the whole epoch before cutting it into shares")
    # a function of its arguments only, and the global random state untouched (the random states are
    # seeded and read where your code runs)
    from effcourse import judge

    judge.manual_seed(_seed)
    judge.in_kernel("effcourse.checks.lab7.seed_global_rngs", _seed)
    _a = _share(50, 1, 3, 2, 5)
    judge.in_kernel("effcourse.checks.lab7.seed_global_rngs", _seed + 1)
    judge.in_kernel("torch.rand", 3)
    _b = _share(50, 1, 3, 2, 5)
    if _a != _b:
        _fail("shard_indices(50, 1, 3, 2, 5) changed when the global random state changed: "
              "draw from a generator seeded by (seed, epoch), not from the global one")
    judge.in_kernel("effcourse.checks.lab7.seed_global_rngs", _seed + 2)
    judge.in_kernel("torch.rand", 1)                 # a state no reseed-and-shuffle produces
    _before = judge.in_kernel("effcourse.checks.lab7.global_rng_states")
    _share(50, 0, 3, 2, 5)
    _after = judge.in_kernel("effcourse.checks.lab7.global_rng_states")
    _same = set(_before) == set(_after) and all(
        torch.equal(_before[k], _after[k]) if isinstance(_before[k], torch.Tensor) else _before[k] == _after[k]
        for k in _before)
    if not _same:
        _fail("shard_indices changed the global random state (torch, NumPy or Python); use a local generator")
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "test_shard_indices_errors", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
from effcourse.checks import lab7
from effcourse.checks.asserts import assert_raises

lab7.check_shard_indices_errors(shard_indices)
### BEGIN HIDDEN TESTS
assert_raises("shard_indices(5, rank=-1, world_size=2, ...)", lambda: shard_indices(5, -1, 2, 0, 0), ValueError)
assert_raises("shard_indices(5, rank=2, world_size=2, ...)", lambda: shard_indices(5, 2, 2, 0, 0), ValueError)
_ = assert_raises("shard_indices(5, rank=0, world_size=-3, ...)", lambda: shard_indices(5, 0, -3, 0, 0), ValueError)
### END HIDDEN TESTS

# %% [markdown]
# Your shares against PyTorch's `DistributedSampler` (the one the experiments use): both must meet
# the guarantees. If you drew the same permutation the same way (`torch.randperm` with a generator
# seeded `seed + epoch`, padded with its start, strided), they are even identical.

# %% tags=["experiment"]
n_demo, w_demo = 10, 4
mine = [lab7.as_index_list("shard_indices", shard_indices(n_demo, r, w_demo, 0, SEED)) for r in range(w_demo)]
torch_shares = [list(DistributedSampler(range(n_demo), num_replicas=w_demo, rank=r, shuffle=True, seed=SEED))
                for r in range(w_demo)]
plots.table([{"rank": r, "shard_indices": mine[r], "DistributedSampler": torch_shares[r]} for r in range(w_demo)],
            title=f"n = {n_demo}, W = {w_demo}, epoch 0")
same = mine == torch_shares
effcourse.record("shards_identical_to_sampler", same)
print("identical to DistributedSampler" if same else "different shares, same guarantees (both are correct)")

# %% [markdown]
# ## 3. Ring all-reduce, by hand
#
# After `loss.backward()` each rank holds the gradient of *its* slice of the batch. An **all-reduce**
# combines a tensor across all ranks and leaves the result on every one: the mean of the ranks'
# gradients is exactly the gradient of the mean loss over the whole global batch (equal local batches),
#
# $$\frac{1}{W}\sum_{r=1}^{W} \frac{1}{b}\sum_{j \in B_r} \nabla\ell_j \;=\; \frac{1}{Wb}\sum_{j \in B_1\cup\dots\cup B_W} \nabla\ell_j .$$
#
# `torch.distributed.all_reduce` does it in one call. Here you build the algorithm behind it (Baidu
# brought it to deep learning in 2017; NCCL uses it alongside trees): **ring all-reduce**. The W
# ranks form a ring, rank r sends to r+1 and receives from r−1 (mod W), and the tensor is cut into W
# chunks (`torch.tensor_split(flat, W)`: sizes differ by at most one, some may be empty when W does
# not divide n).
#
# * **Reduce-scatter**, steps s = 0, …, W−2: rank r sends chunk (r − s) mod W and receives chunk
#   (r − s − 1) mod W, which it **adds** to its own. Afterwards rank r holds the full sum of chunk
#   (r + 1) mod W.
# * **All-gather**, steps s = 0, …, W−2: rank r sends chunk (r + 1 − s) mod W (a finished one) and
#   receives chunk (r − s) mod W, which it **overwrites**.
#
# ```
# W = 3, chunks a b c; after reduce-scatter: rank 0 owns Σb, rank 1 owns Σc, rank 2 owns Σa
# step:        rs 0            rs 1            ag 0            ag 1
# rank 0 sends a0 → 1     c0+c2 → 1       Σb → 1          Σa → 1
# ```
#
# Every step each rank sends one message of about n/W elements and receives one: 2(W−1) sends per
# rank. Pair the sends and receives so that no rank waits forever: `dist.isend` (returns a request:
# `req.wait()`) and `dist.recv`, or `dist.send`/`dist.recv` in an order where someone always listens
# first. The function works on any process group: `dist.get_world_size(group)`,
# `dist.get_rank(group)` (this rank's index in the group), and `group_dst=`/`group_src=` name peers by
# their index in the group (`dist.isend(t, group=group, group_dst=j)`); `group=None` is every rank.

# %% nbgrader={"grade": false, "grade_id": "ring_allreduce", "locked": false, "schema_version": 3, "solution": true, "task": false}
def ring_allreduce(tensor, group=None):
    """Sum `tensor` over the ranks of `group`, in place, with a ring: reduce-scatter, then all-gather.

    Call it on every rank of `group` (None: the default group) with a contiguous tensor of the same
    shape and dtype. Afterwards every rank's `tensor` holds the elementwise sum over the ranks. The
    flattened tensor is cut with torch.tensor_split into W = dist.get_world_size(group) chunks; every
    rank sends 2(W - 1) messages with dist.send/isend and receives as many with dist.recv/irecv,
    and calls no collective (no dist.all_reduce, reduce_scatter, all_gather, ...). W = 1: nothing
    to send, the tensor is unchanged. Returns None.
    """
    ### BEGIN SOLUTION
    world = dist.get_world_size(group)
    if world == 1:
        return
    rank = dist.get_rank(group)
    right, left = (rank + 1) % world, (rank - 1) % world
    chunks = tensor.view(-1).tensor_split(world)
    for s in range(world - 1):                               # reduce-scatter: add what arrives
        send, recv = chunks[(rank - s) % world], chunks[(rank - s - 1) % world]
        incoming = torch.empty_like(recv)
        req = dist.isend(send, group=group, group_dst=right)
        dist.recv(incoming, group=group, group_src=left)
        req.wait()
        recv += incoming
    for s in range(world - 1):                               # all-gather: overwrite with finished chunks
        send, recv = chunks[(rank + 1 - s) % world], chunks[(rank - s) % world]
        req = dist.isend(send, group=group, group_dst=right)
        dist.recv(recv, group=group, group_src=left)
        req.wait()
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_ring_allreduce", "locked": true, "points": 22, "schema_version": 3, "solution": false, "task": false}

import torch

from effcourse.checks import lab7
from effcourse.checks.asserts import CheckFailed

lab7.check_ring_allreduce(ring_allreduce)
### BEGIN HIDDEN TESTS
# Judged here, on values: the judge draws every rank's input, the kernel forks 4 gloo ranks that run
# ring_allreduce on them and sends every rank's output back by value, and the sums are computed and
# compared here. A kernel that forged the returned tensors would have to compute the right sums for
# inputs it first sees now, i.e. contain a correct all-reduce: these points are decided by the judge.
# How the sums were communicated (by hand, no collective) only the kernel sees: test_ring_by_hand.
import random

from effcourse import judge

with lab7.seed_in_failures(lab7.clock_seed()) as _seed:
    _g = torch.Generator().manual_seed(_seed)
    _rng = random.Random(_seed)

    def _x(shape, kind):
        if kind == "int":                 # integers in float64: every order of summation gives the exact sum
            return torch.randint(-10**6, 10**6, shape, generator=_g).double()
        return torch.randn(shape, generator=_g, dtype=torch.float64 if kind == "f64" else torch.float32)

    _cases = []
    for _ranks, _shape, _kind in [(None, (10,), "int"), (None, (3, 5), "int"), (None, (2,), "int"), (None, (1,), "f64"),
                                  (None, (_rng.randint(5, 300),), "f64"), (None, (4, 7), "f32"),
                                  (sorted(_rng.sample(range(4), 3)), (_rng.randint(4, 50),), "int"),
                                  (sorted(_rng.sample(range(4), 3)), (2, 1), "int"),
                                  (sorted(_rng.sample(range(4), 2)), (_rng.randint(3, 40),), "int"),
                                  ([_rng.randrange(4)], (6,), "int")]:
        _w = 4 if _ranks is None else len(_ranks)
        _cases.append({"ranks": _ranks, "inputs": [_x(_shape, _kind) for _ in range(_w)], "kind": _kind})
    _res = judge.in_kernel("effcourse.checks.lab7.probe_ring", ring_allreduce,
                           [{"ranks": c["ranks"], "inputs": c["inputs"]} for c in _cases], 4, count=True, timeout=15)
    if _res["error"] is not None:
        raise CheckFailed(f"ring_allreduce on 4 gloo ranks (and groups of 3, 2, 1) failed: {_res['error']}")
    if len(_res["ranks"]) != 4:
        raise CheckFailed(f"4 ranks were launched but {len(_res['ranks'])} reported")
    for _i, _c in enumerate(_cases):
        _members = list(range(4)) if _c["ranks"] is None else _c["ranks"]
        _want = torch.stack(_c["inputs"]).sum(0)
        _what = (f"ring_allreduce on {len(_members)} rank(s) {_members}" + (" (group=None)" if _c["ranks"] is None else
                 " (a group)") + f", tensor of shape {tuple(_want.shape)} {_want.dtype}")
        for _r in _members:
            _got = _res["ranks"][_r][_i]["out"] if _res["ranks"][_r][_i] else None
            if not isinstance(_got, torch.Tensor) or _got.shape != _want.shape or _got.dtype != _want.dtype:
                raise CheckFailed(f"{_what}: rank {_r}'s tensor changed shape or dtype")
            _ok = (torch.equal(_got, _want) if _c["kind"] == "int" else
                   torch.allclose(_got, _want, rtol=1e-12 if _c["kind"] == "f64" else 1e-5, atol=1e-12 if _c["kind"] == "f64" else 1e-5))
            if not _ok:
                _bad = (_got != _want).flatten().nonzero()
                _j = int(_bad[0]) if len(_bad) else 0
                raise CheckFailed(f"{_what}: rank {_r} holds {_got.flatten()[_j].item():.10g} at flat index {_j}, the sum "
                                  f"over the ranks is {_want.flatten()[_j].item():.10g}")
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "test_ring_by_hand", "locked": true, "points": 4, "schema_version": 3, "solution": false, "task": false}
from effcourse.checks.asserts import CheckFailed

### BEGIN HIDDEN TESTS
# Observed in the kernel (forgeable, hence few points): during the last test, how each rank
# communicated inside ring_allreduce: no collective, and 2(W - 1) sends per rank in a group of W.
from effcourse import judge

_counts = judge.in_kernel("effcourse.checks.lab7.last_counts", "ring")
if not _counts:
    raise CheckFailed("ring_allreduce did not complete the previous test, so how it communicates is unknown")
for _r, _per_case in enumerate(_counts):
    for _c in _per_case:
        if _c is None:
            continue
        _w = _c["world"]
        if _c["collectives"]:
            raise CheckFailed(f"ring_allreduce called {sorted(_c['collectives'])} (rank {_r}, {_w} ranks): build the "
                              "sum from sends and receives only")
        if _c["sends"] != 2 * (_w - 1):
            raise CheckFailed(f"rank {_r} of a group of {_w} sent {_c['sends']} messages in ring_allreduce; a ring "
                              f"all-reduce sends 2(W - 1) = {2 * (_w - 1)}: one chunk per step of reduce-scatter and "
                              "of all-gather")
### END HIDDEN TESTS

# %% [markdown]
# **Your ring against gloo's.** Time your ring and `dist.all_reduce` on two ranks, interleaved, for
# messages from 1 kB up, and fit the α–β model to each: a message of m bytes costs α + m/β, so a
# ring of W ranks costs
#
# $$T_{\text{ring}}(n, W) = 2(W-1)\Bigl(\alpha + \frac{n}{W\beta}\Bigr).$$
#
# (`scaling.fit_alpha_beta` fits α and 1/β by least squares on the relative error.) With W = 2 your
# ring is two messages of n/2 bytes each way.

# %% tags=["experiment"]
AR_SIZES = effcourse.pick(full=[2**k for k in range(10, 25)], quick=[2**k for k in range(10, 23, 3)],
                          smoke=[2**10, 2**20])
AR_REPEATS = effcourse.pick(full=15, quick=5, smoke=2)


def allreduce_timing_rank(rank, world):
    return scaling.measure_allreduce(AR_SIZES, repeats=AR_REPEATS, fns={"gloo": dist.all_reduce,
                                                                          "your ring": ring_allreduce})


measured = distributed.launch(allreduce_timing_rank, 2, timeout=300)[0]
fits = {name: scaling.fit_alpha_beta(scaling.ring_seconds, list(m), list(m.values()), 2)
        for name, m in measured.items()}
for name, (a, b) in fits.items():
    effcourse.record(f"fit_{name.replace(' ', '_')}", {"latency_s": a, "bandwidth_Bps": b})
alpha, beta = fits["gloo"]
fig, ax = plt.subplots(figsize=(5.5, 3.5))
for name, m in measured.items():
    a, b = fits[name]
    line = ax.loglog(list(m), [1e3 * s for s in m.values()], "o", label=f"{name} (median)")[0]
    ax.loglog(list(m), [1e3 * scaling.ring_seconds(n, 2, b, a) for n in m], "-", color=line.get_color(),
              label=f"fit: α = {1e6 * a:.0f} µs, β = {b / 1e9:.2f} GB/s")
ax.set_xlabel("bytes all-reduced")
ax.set_ylabel("ms")
ax.legend(fontsize=8)
ax.set_title("all-reduce on 2 gloo ranks, this machine")
plt.show()
_ = plots.table([{"all-reduce": name, "α (µs)": 1e6 * a, "β (GB/s)": b / 1e9} for name, (a, b) in fits.items()],
                floatfmt=".3g", title="α–β fits, W = 2")

# %% [markdown]
# Gloo's own all-reduce is one Python call: it runs in C++ threads and picks its algorithm by size.
# Your ring makes 2(W−1) Python calls, each paying its overhead, so expect its α to be no smaller;
# both β are set by the same loopback copies. On a busy two-core machine the scheduler's noise can
# exceed either difference (the QUICK run's medians come from 5 repetitions): read the fits as the
# order of magnitude of a latency (a hundred microseconds or so) and a bandwidth (GB/s).
#
# ## 4. Overlap: all-reduce buckets while backward still runs
#
# Waiting for the whole backward pass and then all-reducing leaves the network idle during compute
# and the processors idle during communication. The gradients of the *last* layers are ready first,
# so their all-reduce can start while earlier layers are still being differentiated. PyTorch's DDP
# does this: gradients are packed into **buckets** (25 MB by default) in the order backward produces
# them, and each full bucket is all-reduced asynchronously.
#
# Build it. `param.register_post_accumulate_grad_hook(fn)` calls `fn(param)` the moment
# `param.grad` is final in a backward pass. Append the parameter to the open bucket; once the
# bucket's gradients hold `bucket_bytes` bytes or more, flatten them into one tensor
# (`torch.cat([g.reshape(-1) ...])`) and start `dist.all_reduce(flat, group=group, async_op=True)`,
# which returns a handle at once. `wait()` (called after `backward`) starts the last, partly full
# bucket, waits for every handle (`work.wait()`), and writes each parameter's slice of its bucket,
# divided by the world size, back into `param.grad`; it leaves the object ready for the next step.

# %% nbgrader={"grade": false, "grade_id": "GradBuckets", "locked": false, "schema_version": 3, "solution": true, "task": false}
class GradBuckets:
    """Average gradients over the ranks of `group` in buckets, overlapped with the backward pass.

    GradBuckets(model, bucket_bytes, group=None) registers a post-accumulate-grad hook on every
    parameter of `model` that requires grad. During each backward pass the hooks put the ready
    gradients into buckets in the order they arrive; a bucket is all-reduced (dist.all_reduce with
    async_op=True, on its flattened gradients) as soon as its gradients hold >= bucket_bytes bytes.
    wait(), called on every rank after backward: all-reduces the remaining bucket, waits for all,
    and sets every such parameter's .grad to the mean over the ranks of the .grad they held.
    Parameters whose .grad is None (unused in that pass) are left alone; parameter values are not
    changed. After wait() the next backward pass starts with empty buckets.
    """

    def __init__(self, model, bucket_bytes=2**20, group=None):
        ### BEGIN SOLUTION
        self.bucket_bytes, self.group = bucket_bytes, group
        self.open, self.open_bytes, self.pending = [], 0, []
        for p in model.parameters():
            if p.requires_grad:
                p.register_post_accumulate_grad_hook(self._ready)
        ### END SOLUTION

    def _ready(self, param):
        """The hook: `param.grad` is final for this backward pass."""
        ### BEGIN SOLUTION
        self.open.append(param)
        self.open_bytes += param.grad.numel() * param.grad.element_size()
        if self.open_bytes >= self.bucket_bytes:
            self._start_bucket()
        ### END SOLUTION

    def _start_bucket(self):
        """Start the open bucket's asynchronous all-reduce (if it holds any gradient); open a new one."""
        ### BEGIN SOLUTION
        if self.open:
            flat = torch.cat([p.grad.reshape(-1) for p in self.open])
            work = dist.all_reduce(flat, group=self.group, async_op=True)
            self.pending.append((work, flat, self.open))
        self.open, self.open_bytes = [], 0
        ### END SOLUTION

    def wait(self):
        ### BEGIN SOLUTION
        self._start_bucket()
        world = dist.get_world_size(self.group)
        for work, flat, params in self.pending:
            work.wait()
            flat /= world
            for p, g in zip(params, flat.split([p.numel() for p in params])):
                p.grad.copy_(g.view_as(p.grad))
        self.pending = []
        ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_GradBuckets", "locked": true, "points": 18, "schema_version": 3, "solution": false, "task": false}

import torch

from effcourse.checks import lab7
from effcourse.checks.asserts import CheckFailed

lab7.check_grad_buckets(GradBuckets)
### BEGIN HIDDEN TESTS
# Judged here, on values: the judge draws the models' weights and every rank's batches; the kernel
# forks 3 gloo ranks that train-step GradBuckets on them and returns every rank's gradients by value;
# the reference (one process, the whole batch) and the comparisons are computed here. Forged
# gradients pass only if they are the right ones, for data the kernel first sees now.
from effcourse import judge

with lab7.seed_in_failures(lab7.clock_seed()) as _seed:
    _g = torch.Generator().manual_seed(_seed)
    _W, _B, _STEPS = 3, 2, 2

    def _case(kind, loss, bucket_bytes):
        model = lab7.toy_model(kind)
        with torch.no_grad():
            for p in model.parameters():
                p.copy_(torch.randn(p.shape, generator=_g, dtype=p.dtype) * 0.5)
        shape, k = lab7.TOY_MODELS[kind]
        n = _W * _B
        x = torch.randn(_STEPS, n, *shape, generator=_g, dtype=torch.float64)
        y = (torch.randint(0, k, (_STEPS, n), generator=_g) if loss == "ce"
             else torch.randn(_STEPS, n, k, generator=_g, dtype=torch.float64))
        return {"model": kind, "state": {k_: v.clone() for k_, v in model.state_dict().items()}, "x": x, "y": y,
                "loss": loss, "bucket_bytes": bucket_bytes}

    def _reference(case, step):
        model = lab7.toy_model(case["model"])
        model.load_state_dict(case["state"])
        lab7.toy_loss(model(case["x"][step]), case["y"][step], case["loss"]).backward()
        return [None if p.grad is None else p.grad.detach().clone() for p in model.parameters()]

    _cases = [("MLP, a bucket per parameter", _case("mlp", "ce", 1)),
              ("conv net with frozen and unused parameters, 200-byte buckets", _case("branchy", "ce", 200)),
              ("linear regression, one bucket", _case("linear", "mse", 10**9)),
              ("MLP, 300-byte buckets", _case("mlp", "mse", 300))]
    _res = judge.in_kernel("effcourse.checks.lab7.probe_grad_buckets", GradBuckets, [c for _, c in _cases], _W, _B,
                           count=True, timeout=20)
    if _res["error"] is not None:
        raise CheckFailed(f"GradBuckets on {_W} gloo ranks failed: {_res['error']}")
    if len(_res["ranks"]) != _W:
        raise CheckFailed(f"{_W} ranks were launched but {len(_res['ranks'])} reported")
    for _c, (_name, _case_) in enumerate(_cases):
        for _r in range(_W):
            _got = _res["ranks"][_r][_c]
            if _got["params_changed"]:
                raise CheckFailed(f"{_name}, rank {_r}: GradBuckets changed parameter values")
            for _s in range(_STEPS):
                _want = _reference(_case_, _s)
                _grads = _got["steps"][_s]["grads"]
                for _i, (_w, _y) in enumerate(zip(_want, _grads)):
                    if _w is None:
                        if _y is not None:
                            raise CheckFailed(f"{_name}, rank {_r}: parameter {_i} had no gradient (None) and must keep "
                                              f"none")
                        continue
                    if _y is None or _y.shape != _w.shape or not torch.allclose(_y, _w, rtol=1e-9, atol=1e-11):
                        _err = (_y - _w).abs().max().item() if _y is not None and _y.shape == _w.shape else float("nan")
                        raise CheckFailed(f"{_name}, rank {_r} of {_W}, step {_s + 1}: parameter {_i}'s gradient after "
                                          f"wait() is not the gradient of the mean loss over all ranks' samples (max error "
                                          f"{_err:.3g})")
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "test_GradBuckets_overlap", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
from effcourse.checks.asserts import CheckFailed

### BEGIN HIDDEN TESTS
# Observed in the kernel (forgeable, hence few points): in the last test, with a bucket per parameter
# (the MLP's 4 tensors), how many all_reduce calls started while backward was still running.
from effcourse import judge

_counts = judge.in_kernel("effcourse.checks.lab7.last_counts", "buckets")
if not _counts:
    raise CheckFailed("GradBuckets did not complete the previous test, so its overlap is unknown")
for _r, _per_case in enumerate(_counts):
    for _s, _step in enumerate(_per_case[0]):
        if _step["all_reduce_during_backward"] < 3:
            raise CheckFailed(f"rank {_r}, step {_s + 1}: with bucket_bytes = 1 (every gradient fills a bucket) only "
                              f"{_step['all_reduce_during_backward']} of the MLP's 4 buckets were all-reduced while "
                              "backward was running; start each full bucket's all_reduce (async_op=True) in the hook")
### END HIDDEN TESTS

# %% [markdown]
# ## 5. Hierarchy: inside the node, then across
#
# Summit's nodes hold 6 GPUs joined by NVLink; nodes talk over InfiniBand, a slower link with a larger
# latency. A flat ring over 1,536 GPUs pays 2(W−1) latencies and pushes every byte across node
# boundaries. A **two-level** all-reduce first combines inside each node, then only the nodes'
# *leaders* (one rank per node) all-reduce across nodes, and each leader hands the result back to its
# node:
#
# 1. `dist.reduce(tensor, dst=leader, group=node_group)`: the node's sum lands on its leader;
# 2. on leaders only: `dist.all_reduce(tensor, group=leader_group)`: the sum over nodes;
# 3. `dist.broadcast(tensor, src=leader, group=node_group)`: every rank of the node gets it.
#
# `effcourse.video.distributed.node_groups(k)` makes the groups for nodes of k consecutive ranks
# (every rank must create every group, in the same order, so it is done for you) and returns
# `(node_group, leader_group, leader)`: `leader_group` is `None` on ranks that are not leaders, and
# `leader` is the leader's *global* rank (what `dst=`/`src=` take; `group_dst=0` would name it by its
# index in the node group).

# %% nbgrader={"grade": false, "grade_id": "hierarchical_allreduce", "locked": false, "schema_version": 3, "solution": true, "task": false}
def hierarchical_allreduce(tensor, node_group, leader_group, leader):
    """Sum `tensor` over all ranks, in place, in two levels: reduce inside the node to its leader,
    all-reduce across the leaders, broadcast inside the node.

    Args:
        tensor: this rank's tensor (same shape and dtype on every rank).
        node_group: this rank's node's process group (from node_groups).
        leader_group: the group of the nodes' leaders on a leader rank, None on the others.
        leader: the global rank of this node's leader.

    Afterwards every rank's `tensor` holds the elementwise sum over all ranks. Returns None.
    """
    ### BEGIN SOLUTION
    dist.reduce(tensor, dst=leader, group=node_group)
    if leader_group is not None:
        dist.all_reduce(tensor, group=leader_group)
    dist.broadcast(tensor, src=leader, group=node_group)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_hierarchical_allreduce", "locked": true, "points": 12, "schema_version": 3, "solution": false, "task": false}

import torch

from effcourse.checks import lab7
from effcourse.checks.asserts import CheckFailed

lab7.check_hierarchical_allreduce(hierarchical_allreduce)
### BEGIN HIDDEN TESTS
# Judged here, on values: the judge draws every rank's tensor, 4 gloo ranks forked in the kernel run
# hierarchical_allreduce on them (nodes of 2, of 1 and of 4 ranks) and send every output back by
# value; the sums, and the flat all-reduce they must equal, are computed here.
from effcourse import judge

with lab7.seed_in_failures(lab7.clock_seed()) as _seed:
    _g = torch.Generator().manual_seed(_seed)
    _cases = []
    for _k, _shape, _kind in [(2, (9,), "int"), (2, (3, 4), "f64"), (1, (5,), "int"), (4, (7,), "int"), (2, (1,), "f32")]:
        if _kind == "int":              # integers in float64: every order of summation gives the exact sum
            _xs = [torch.randint(-10**6, 10**6, _shape, generator=_g).double() for _ in range(4)]
        else:
            _xs = [torch.randn(_shape, generator=_g, dtype=torch.float64 if _kind == "f64" else torch.float32)
                   for _ in range(4)]
        _cases.append((_k, _kind, _xs))
    _res = judge.in_kernel("effcourse.checks.lab7.probe_hierarchical", hierarchical_allreduce,
                           [{"ranks_per_node": k, "inputs": xs} for k, _, xs in _cases], 4, timeout=15)
    if _res["error"] is not None:
        raise CheckFailed(f"hierarchical_allreduce on 4 gloo ranks failed: {_res['error']}")
    if len(_res["ranks"]) != 4:
        raise CheckFailed(f"4 ranks were launched but {len(_res['ranks'])} reported")
    for _i, (_k, _kind, _xs) in enumerate(_cases):
        _want = torch.stack(_xs).sum(0)
        for _r in range(4):
            _got = _res["ranks"][_r][_i]
            if not isinstance(_got, torch.Tensor) or _got.shape != _want.shape or _got.dtype != _want.dtype:
                raise CheckFailed(f"{4 // _k} node(s) of {_k} rank(s): rank {_r}'s tensor changed shape or dtype")
            _ok = torch.equal(_got, _want) if _kind == "int" else torch.allclose(_got, _want, rtol=1e-5, atol=1e-5)
            if not _ok:
                raise CheckFailed(f"{4 // _k} node(s) of {_k} rank(s): rank {_r} (leader {_r - _r % _k}) holds "
                                  f"{_got.flatten()[:4].tolist()}..., the sum over the 4 ranks is "
                                  f"{_want.flatten()[:4].tolist()}...")
### END HIDDEN TESTS

# %% [markdown]
# Four ranks on this machine, as 2 "nodes" × 2: gloo's flat all-reduce, your ring over all four, and
# your two-level all-reduce, interleaved. Here every "node boundary" is the same loopback, so these
# times say nothing about real nodes: four processes share two cores, and the differences are
# mostly scheduling. The point is the exactness check, and the message pattern you can now time on
# a real cluster (docs/DISTRIBUTED.md).

# %% tags=["experiment"]
H_SIZES = effcourse.pick(full=[2**12, 2**16, 2**20, 2**23], quick=[2**12, 2**20], smoke=[2**12])
H_REPEATS = effcourse.pick(full=9, quick=3, smoke=1)


def hierarchy_timing_rank(rank, world):
    node, leaders, leader = distributed.node_groups(2)
    exact = torch.randint(-1000, 1000, (1001,), generator=torch.Generator().manual_seed(rank)).double()
    flat, mine = exact.clone(), exact.clone()
    dist.all_reduce(flat)
    hierarchical_allreduce(mine, node, leaders, leader)
    times = scaling.measure_allreduce(H_SIZES, repeats=H_REPEATS, warmup=1, fns={
        "gloo, flat": dist.all_reduce, "your ring, flat": ring_allreduce,
        "yours, 2 nodes x 2": lambda t: hierarchical_allreduce(t, node, leaders, leader)})
    return {"exact": torch.equal(flat, mine), "times": times}


hier = distributed.launch(hierarchy_timing_rank, 4, timeout=300)
effcourse.record("hierarchical_equals_flat", all(h["exact"] for h in hier))
_ = plots.table([{"all-reduce (4 ranks)": name, **{f"{n / 1e3:.0f} kB (ms)": 1e3 * s for n, s in t.items()}}
                 for name, t in hier[0]["times"].items()], floatfmt=".3g",
                title="4 gloo ranks on one machine (medians); the hierarchical sum equals the flat one: "
                      f"{all(h['exact'] for h in hier)}")

# %% [markdown]
# ## 6. Two processes train like one: TSM on two gloo ranks
#
# The models: **TSM** built from *your Lab 1* `ResidualShift` and `segment_consensus` (read from
# `LAB1_NOTEBOOK`; if they are missing or unfinished, TSM's *cost twin* stands in: the same ResNet
# run frame by frame with the same parameters and MACs, but no shift), and **I3D**, the 3D twin of the
# same ResNet (every 3×3 conv 3×3×3). Clips are T = 4 frames of 16×16 — small, because everything
# here runs on two CPU cores; TemporalDigits' time-reversed class pairs are still there.

# %% tags=["experiment"]
T, SIZE, WIDTHS = 4, 16, (8, 16, 32, 64)
N_TRAIN = effcourse.pick(full=2048, quick=1024, smoke=96)
N_TEST = effcourse.pick(full=800, quick=400, smoke=48)
train_set = TemporalDigits("train", N_TRAIN, T, SIZE, seed=SEED)
test_set = TemporalDigits("test", N_TEST, T, SIZE, seed=SEED)
NUM_CLASSES = len(train_set.classes)
LAB1_NAMES = ["temporal_shift", "ResidualShift", "segment_consensus"]


def _probe(fns):
    model = distributed.clip_model("tsm", 2, NUM_CLASSES, 1, WIDTHS, lab1=fns)
    model(torch.zeros(2, 2, 1, SIZE, SIZE))


lab1, why = learner.usable(LAB1_NOTEBOOK, LAB1_NAMES, _probe)
KIND = "tsm" if lab1 is not None else "frames2d"
print(f"TSM from your Lab 1 ({LAB1_NOTEBOOK})" if lab1 is not None else
      f"Lab 1 not usable ({why}); using TSM's cost twin 'frames2d' (same parameters and MACs, no shift)")
effcourse.record("model_kind", KIND)


def make_model(kind=None):
    """A fresh clip model, seeded: every rank builds the same weights."""
    return distributed.clip_model(kind or KIND, T, NUM_CLASSES, 1, WIDTHS, lab1=lab1, seed=SEED)


# %% [markdown]
# **Equivalence.** One process with a batch of 32 clips, and two processes with 16 clips each —
# synchronised by your `GradBuckets`, and by `DistributedDataParallel` — run the same first steps
# with your learning-rate schedule. `DistributedSampler` gives each rank its share; the two ranks'
# batches at step k together are exactly the one process's batch k. One caveat: BatchNorm normalises
# each process's batch with *that batch's* statistics (DDP does not synchronise them; `SyncBatchNorm`
# would), so 2 × 16 clips are normalised differently from 32. For the exact check, BatchNorm is
# frozen (normalising with its running statistics).

# %% tags=["experiment"]
BASE_LR, BASE_BATCH = 0.05, 32          # tuned on one process with 32 clips
B_RANK = 16                             # clips per rank and step
EQUIV_STEPS = effcourse.pick(full=10, quick=4, smoke=2)
G = 2 * B_RANK


def lr_equiv(step, total):
    return lr_at(step, scaled_lr(BASE_LR, BASE_BATCH, G), min(2, total), total)


cfg_one = distributed.TrainConfig(batch_per_rank=G, max_steps=EQUIV_STEPS, freeze_bn=True, seed=SEED)
cfg_two = dataclasses.replace(cfg_one, batch_per_rank=B_RANK)


def equivalence_rank(rank, world, sync_with):
    model = make_model()
    if sync_with == "DDP":
        hist = distributed.train_rank(DistributedDataParallel(model), train_set, lr_equiv, cfg_two)
    else:
        buckets = GradBuckets(model, 2**14)
        hist = distributed.train_rank(model, train_set, lr_equiv, cfg_two, sync=lambda m: buckets.wait())
    return {"state": model.state_dict(), "loss": hist["loss"]}


start = make_model().state_dict()
one = make_model()
one_hist = distributed.train_rank(one, train_set, lr_equiv, cfg_one)        # this process alone, W = 1
runs = {name: distributed.launch(equivalence_rank, 2, name, timeout=300) for name in ("yours", "DDP")}

change = distributed.max_param_difference(start, one.state_dict())
rows, equiv = [], {}
for name, (r0, r1) in runs.items():
    diff = distributed.max_param_difference(one.state_dict(), r0["state"])
    ranks = distributed.max_param_difference(r0["state"], r1["state"])
    loss = max(abs(a - (b + c) / 2) for a, b, c in zip(one_hist["loss"], r0["loss"], r1["loss"]))
    rows.append({"2 ranks synced by": name, "max |Δ weight| vs 1 process": diff, "rank 0 vs rank 1": ranks,
                 "max |Δ loss|": loss})
    equiv[name] = effcourse.record(f"equiv_max_diff_{name.lower()}", diff)
    effcourse.record(f"equiv_rank_disagreement_{name.lower()}", ranks)
effcourse.record("equiv_param_change", change)
_ = plots.table(rows, floatfmt=".2g", title=f"After {EQUIV_STEPS} steps (weights moved by up to {change:.2g})")

# %% [markdown]
# The weights agree to float32 rounding: the sums are the same numbers added in a different order.
# That is the whole promise of synchronous data parallelism — and why a good large-batch recipe found
# on a few GPUs transfers to many.
#
# **How much communication hides behind backward.** Train TSM on two ranks with your `GradBuckets`
# and sweep the bucket size, from one bucket (everything all-reduced after backward: nothing hidden)
# down to small buckets. Per step, `wait()`'s time is the communication still *exposed* after
# backward; with one bucket it is all of it, $T_c$. The share hidden by bucket size b is
# $1 - \text{exposed}(b)/T_c$, and the step-time saving $(\text{step}(\infty) - \text{step}(b))/T_c$
# says whether hiding it really shortened the step (on two shared cores, communication and compute
# also compete for the processors). Then one rank alone, and DDP, for TSM and I3D: weak scaling,
# 16 clips per rank, as on Summit.

# %% tags=["experiment"]
THROUGHPUT_STEPS = effcourse.pick(full=24, quick=6, smoke=3)
cfg_speed = distributed.TrainConfig(batch_per_rank=B_RANK, max_steps=THROUGHPUT_STEPS, seed=SEED)
TOTAL_BYTES = distributed.param_bytes(make_model())
BUCKETS = effcourse.pick(full=[None, 1 / 2, 1 / 8, 1 / 32], quick=[None, 1 / 8], smoke=[None, 1 / 8])


def throughput_rank(rank, world, kind, sync_with, fraction=None):
    model = make_model(kind)
    if sync_with == "DDP":
        hist = distributed.train_rank(DistributedDataParallel(model), train_set, lr_equiv, cfg_speed)
    elif world == 1:
        hist = distributed.train_rank(model, train_set, lr_equiv, cfg_speed)
    else:
        size = 2**62 if fraction is None else max(1, int(fraction * distributed.param_bytes(model)))
        buckets = GradBuckets(model, size)
        hist = distributed.train_rank(model, train_set, lr_equiv, cfg_speed, sync=lambda m: buckets.wait())
    steady = slice(min(2, len(hist["step_seconds"]) - 1), None)      # skip the first steps (warm-up)
    return {"step": statistics.median(hist["step_seconds"][steady]),
            "exposed": statistics.median(hist["sync_seconds"][steady])}


sweep = {f: distributed.launch(throughput_rank, 2, KIND, "yours", f, timeout=600)[0] for f in BUCKETS}
t_comm = sweep[None]["exposed"]
overlap_rows, hidden = [], {}
for f, h in sweep.items():
    hidden[f] = 1 - h["exposed"] / t_comm
    overlap_rows.append({"bucket": "one (after backward)" if f is None else f"{f:.3g} of the gradient",
                         "buckets per step": 1 if f is None else math.ceil(1 / f),
                         "step (ms)": 1e3 * h["step"], "exposed all-reduce (ms)": 1e3 * h["exposed"],
                         "hidden share": hidden[f], "step saving / T_c": (sweep[None]["step"] - h["step"]) / t_comm})
best = max((f for f in BUCKETS if f is not None), key=lambda f: hidden[f])
_ = plots.table(overlap_rows, floatfmt=".3g", title=f"{KIND}, 2 ranks, your GradBuckets: T_c = {1e3 * t_comm:.3g} ms "
                                                    f"of all-reduce per step ({TOTAL_BYTES / 1e3:.0f} kB)")
effcourse.record("overlap_hidden_share", {str(f): v for f, v in hidden.items()})
effcourse.record("overlap_best_bucket_fraction", best)

speed_rows, speed = [], {}
clip1 = train_set[0][0].unsqueeze(0)
for kind in (KIND, "i3d"):
    net = make_model(kind)
    for world, sync_with, f in [(1, "-", None), (2, "yours", best), (2, "DDP", None)]:
        h = sweep[f] if (kind, world, sync_with) == (KIND, 2, "yours") else \
            distributed.launch(throughput_rank, world, kind, sync_with, f, timeout=600)[0]
        speed[kind, world, sync_with] = world * B_RANK / h["step"]
        speed_rows.append({"model": kind, "ranks": world, "sync": sync_with if sync_with != "yours" else
                           f"yours ({f:.3g} buckets)", "all-reduced per step (kB)": distributed.param_bytes(net) / 1e3,
                           "MMACs per clip": bench.count_macs(net, clip1) / 1e6, "clips/s": speed[kind, world, sync_with]})
efficiency = {f"{kind}_{how}": speed[kind, 2, how] / (2 * speed[kind, 1, "-"])
              for kind in (KIND, "i3d") for how in ("yours", "DDP")}
_ = plots.table(speed_rows, floatfmt=".3g", title="Training throughput, 1 vs 2 gloo ranks (CPU, 1 thread each)")
print("scaling efficiency (2-rank throughput / twice the 1-rank throughput): "
      + ", ".join(f"{k} {100 * v:.0f} %" for k, v in efficiency.items()))
effcourse.record("scaling_efficiency", efficiency)
effcourse.record("throughput_clips_per_s", {"_".join(map(str, k)): v for k, v in speed.items()})
effcourse.record("allreduce_bytes", {k: distributed.param_bytes(make_model(k)) for k in (KIND, "i3d")})
_ = effcourse.record("tsm_over_i3d_throughput_2ranks", speed[KIND, 2, "DDP"] / speed["i3d", 2, "DDP"])

# %% [markdown]
# **Reading the tables.** These models are tiny: a step of 16 clips computes for tens of
# milliseconds and an all-reduce through loopback costs a real part of that, so two CPU ranks are far
# from twice as fast — by how much depends on how busy the machine is. Buckets start communicating
# while backward still runs; the share hidden grows as buckets shrink, until each bucket's latency α
# costs more than the overlap gains. The I3D twin all-reduces three times the bytes of TSM and
# computes three times the MACs.
#
# ## 7. The α–β model at Summit's scale: ring, tree, hierarchy
#
# Counted here (meta tensors, no weights): 8-frame ResNet-50 TSM and its I3D twin (every 3×3 conv and
# the 7×7 stem given a temporal kernel of 3). Three ways to all-reduce n bytes over W GPUs
# (`effcourse.video.scaling`), and the term of each that grows with W:
#
# | topology | time | grows with W |
# |---|---|---|
# | flat ring | $2(W-1)\alpha + 2\frac{W-1}{W}\frac{n}{\beta}$ | latency, linearly |
# | pipelined binary tree | $2\lceil\log_2 W\rceil\alpha + 2\frac{n}{\beta}$ | latency, as $\log W$ |
# | hierarchical (nodes of k) | $2\bigl((k-1)\alpha_{\text{in}} + \frac{n}{\beta_{\text{in}}}\bigr) + 2(\frac{W}{k}-1)\alpha + 2\frac{W-k}{W}\frac{n}{\beta}$ | latency over W/k leaders |
#
# Links: across nodes Summit's 23 GB/s dual-rail EDR InfiniBand (lecture) with an *assumed* α = 5 µs;
# inside a node NVLink, *assumed* 50 GB/s and 2 µs. The bytes: TSM-R50's gradient in float32.

# %% tags=["experiment"]
GPUS = [6, 24, 96, 384, 768, 1536]
costs = scaling.resnet50_costs()
n_tsm = 4 * costs["TSM"]["params"]
link = scaling.SUMMIT_LINK


def hierarchical(n, p, bandwidth, latency):
    """Nodes of 6 GPUs on NVLink; with bandwidth = inf, the latency terms of both levels alone."""
    inside = scaling.NVLINK if bandwidth < math.inf else {"bandwidth": math.inf, "latency": scaling.NVLINK["latency"]}
    return scaling.hierarchical_seconds(n, p, bandwidth, latency, per_node=6, inside=inside)


TOPOLOGIES = {"flat ring": scaling.ring_seconds, "binary tree": scaling.tree_seconds, "hierarchical": hierarchical}
terms = []
for p in GPUS:
    row = {"GPUs": p}
    for name, fn in TOPOLOGIES.items():
        lat = fn(n_tsm, p, math.inf, link["latency"])                 # the latency term alone
        row[f"{name}: latency (ms)"] = 1e3 * lat
        row[f"{name}: total (ms)"] = 1e3 * fn(n_tsm, p, link["bandwidth"], link["latency"])
    terms.append(row)
_ = plots.table(terms, floatfmt=".3g", title=f"All-reduce of TSM-R50's gradient ({n_tsm / 1e6:.0f} MB), Summit links")

# %% [markdown]
# Now a training run. The model of a step, for every topology: compute + one all-reduce of all
# gradients, where every GPU holds 8 clips (the abstract's 12,288 clips on 1,536 GPUs: weak scaling),
# TSM's compute is calibrated so one node (6 GPUs) takes the lecture's 49 h 50 min, I3D's compute is
# TSM's times their MAC ratio, and **everything else is perfect**: compute scales exactly, nothing is
# overlapped, data loading is free, no GPU waits for a slower one. The speed-ups below are
# therefore **upper bounds under these assumptions**, not predictions: what they leave out —
# stragglers, I/O, the real behaviour at the node boundary, BatchNorm and evaluation — is where a
# real run loses.

# %% tags=["experiment"]
by = {}
for name, fn in TOPOLOGIES.items():
    for r in scaling.extrapolate(fn, costs, GPUS, **link):
        by[name, r["model"], r["gpus"]] = r


def fmt_time(minutes):
    return f"{minutes / 60:.1f} h" if minutes >= 120 else f"{minutes:.1f} min"


_ = plots.table([{"GPUs": p, **{f"TSM, {name}": f"{by[name, 'TSM', p]['speedup']:.0f}× "
                                              f"({100 * by[name, 'TSM', p]['comm_share']:.0f} % comm.)"
                                for name in TOPOLOGIES},
                  "I3D, flat ring": f"{by['flat ring', 'I3D', p]['speedup']:.0f}×",
                  "I3D / TSM time": by["flat ring", "I3D", p]["minutes"] / by["flat ring", "TSM", p]["minutes"]}
                 for p in GPUS], floatfmt=".2f",
                title=f"Upper bounds on the speed-up over one node (ideal: GPUs / 6); TSM-R50 "
                      f"{costs['TSM']['params'] / 1e6:.1f} M parameters, {costs['TSM']['macs'] / 1e9:.1f} GMACs/clip; "
                      f"I3D twin {costs['I3D']['params'] / 1e6:.1f} M, {costs['I3D']['macs'] / 1e9:.1f} GMACs")
bound = {name: {p: by[name, "TSM", p]["speedup"] for p in GPUS} for name in TOPOLOGIES}
effcourse.record("model_tsm_speedup", bound)
effcourse.record("model_i3d_over_tsm_1536", by["flat ring", "I3D", 1536]["minutes"] / by["flat ring", "TSM", 1536]["minutes"])
here = scaling.extrapolate(scaling.ring_seconds, costs, GPUS, bandwidth=beta, latency=alpha, calibration_link=link)
here_1536 = next(r for r in here if r["model"] == "TSM" and r["gpus"] == 1536)
effcourse.record("here_link_tsm_speedup_1536", here_1536["speedup"])
_ = effcourse.record("resnet50_costs", costs)
print(f"on this machine's gloo link (α = {1e6 * alpha:.0f} µs, β = {beta / 1e9:.2f} GB/s) the flat-ring bound at "
      f"1,536 GPUs is {here_1536['speedup']:.0f}×, the all-reduce {100 * here_1536['comm_share']:.0f} % of a step")

# %% [markdown]
# **What the bound says, and what it does not.** On Summit's links every topology leaves TSM's
# all-reduce a modest share of the step, so the bounds sit near the ideal 128× and 256×. The
# two-level scheme you built sends the whole gradient across nodes (only leaders talk), so its bytes
# term is no smaller than the ring's; it wins on latency at large W, and real stacks cut its bytes
# too (a reduce-scatter inside the node, so each GPU carries 1/k of the gradient across). The paper
# measured 106× at 768 GPUs and 211× at 1,536: its speed-up doubles almost exactly from 768 to
# 1,536, so what it lost, it lost between one node and many — not by a cost that grows with W, which
# is all a flat ring's latency term can express. The model cannot say what that loss was; the paper
# names computation, data loading and communication as the three bottlenecks. The tree and the
# hierarchy show how real stacks keep the latency term from growing linearly; the data-loading
# experiment below shows the second bottleneck on this machine.
#
# ## 8. Data loading: frames decoded from disk
#
# Every training step reads T frames per clip: decode, resize, stack. Here the clips are written once
# as real JPEG files (96×96 RGB, Pillow) and a `DataLoader` decodes them every step
# (`effcourse.video.loading`). For T = 4, 8, 16 frames, the step time is split into **loading**
# (waiting for the batch) and **compute** (forward, backward, SGD), loading in this process
# (`num_workers=0`: its full cost) and in one worker process (`num_workers=1`: only what the worker
# does not hide behind compute).

# %% tags=["experiment"]
FRAMES = effcourse.pick(full=[4, 8, 16], quick=[4, 8, 16], smoke=[4])
LOAD_CLIPS = effcourse.pick(full=64, quick=24, smoke=8)
LOAD_STEPS = effcourse.pick(full=8, quick=4, smoke=1)
LOAD_BATCH = 8
clip_dir = Path(tempfile.mkdtemp(prefix="lab7-clips-"))
loading.write_jpeg_clips(TemporalDigits("train", LOAD_CLIPS, max(FRAMES), SIZE, seed=SEED), clip_dir, frame_size=96)
n_files = sum(1 for _ in clip_dir.rglob("*.jpg"))
print(f"{n_files} JPEG files, {sum(f.stat().st_size for f in clip_dir.rglob('*.jpg')) / 1e6:.1f} MB in {clip_dir}")
load_rows, load_split = [], {}
for frames in FRAMES:
    data = loading.JpegClips(clip_dir, frames, SIZE)
    for kind, workers in [(KIND, 0), (KIND, 1), ("i3d", 0)]:
        loader = torch.utils.data.DataLoader(data, batch_size=LOAD_BATCH, shuffle=True, num_workers=workers,
                                             drop_last=True, persistent_workers=False)
        model = distributed.clip_model(kind, frames, NUM_CLASSES, 1, WIDTHS, lab1=lab1, seed=SEED)
        t = loading.split_step_time(loader, model, LOAD_STEPS)
        load_split[kind, frames, workers] = t
        load_rows.append({"model": kind, "frames": frames, "workers": workers, "load (ms)": 1e3 * t["load"],
                          "compute (ms)": 1e3 * t["compute"], "loading share": t["load"] / (t["load"] + t["compute"])})
shutil.rmtree(clip_dir, ignore_errors=True)
_ = plots.table(load_rows, floatfmt=".3g", title=f"A step of {LOAD_BATCH} clips decoded from JPEG files")
effcourse.record("loading_split", {f"{k}_{t}_{w}": v for (k, t, w), v in load_split.items()})

# %% [markdown]
# Loading grows with the frames as compute does: halving T halves both the files to decode and TSM's
# MACs, which is the paper's guideline — fewer input frames (8 for TSM rather than I3D's 32 or more)
# train faster end to end. I3D computes more per frame, so the same loading is a smaller share of its
# step; TSM, cheap to compute, is the model for which loading matters most. A worker process hides
# loading behind compute only while it has a core of its own.

#
# ## 9. Accuracy vs global batch: the scaling rule and warm-up at work
#
# The same number of epochs at growing global batches, each step's batch made of micro-batches of
# 32 clips whose gradients are summed (gradient accumulation: what 1, 2, 4, 8, ... GPUs with 32
# clips each compute, per-GPU BatchNorm included). At every batch: the **unscaled** base rate (0.05
# tuned for 32 clips), the **scaled** rate without warm-up, and the scaled rate **with** warm-up over
# the first eighth of the steps — all with your `lr_at` (cosine decay) and `scaled_lr`.

# %% tags=["experiment"]
EPOCHS = effcourse.pick(full=8, quick=4, smoke=1)
BATCHES = effcourse.pick(full=[32, 64, 128, 256, 512], quick=[32, 256], smoke=[32, 64])
MICRO = 32
WARMUP_FRACTION = 1 / 8                 # of the run's steps (Goyal et al.: 5 of 90 epochs)
arms = {"unscaled": (False, 0), "scaled": (True, 0), "scaled + warm-up": (True, WARMUP_FRACTION)}
acc_rows, acc = [], {}
for batch in BATCHES:
    for name, (scale, warm_fraction) in arms.items():
        if batch == BASE_BATCH and name != "unscaled":
            continue                                  # at the base batch all three are the same run
        peak = scaled_lr(BASE_LR, BASE_BATCH, batch) if scale else BASE_LR
        steps = large_batch.steps_for(len(train_set), batch, EPOCHS)
        warm = round(warm_fraction * steps)
        model = make_model()
        hist = large_batch.train_accumulated(
            model, train_set, lambda s, total, peak=peak, warm=warm: lr_at(s, peak, min(warm, total), total),
            Loop(steps=steps, batch_size=batch, seed=SEED, desc=f"batch {batch}, {name}"), micro_batch=MICRO)
        acc[batch, name] = distributed.evaluate(model, test_set)
        acc_rows.append({"global batch": batch, "rule": name, "peak lr": peak, "steps": hist.meta["steps"],
                         "final loss": hist["loss"][-1], "test accuracy": acc[batch, name]})
plots.table(acc_rows, floatfmt=".3g", title=f"{EPOCHS} epochs of {N_TRAIN} clips, micro-batches of {MICRO}")
largest = BATCHES[-1]
effcourse.record("largest_batch", largest)
effcourse.record("acc_base_batch", acc[BATCHES[0], "unscaled"])
for name in arms:
    effcourse.record("acc_largest_" + name.replace(" + ", "_").replace("-", "").replace(" ", "_"), acc[largest, name])
fig, ax = plt.subplots(figsize=(5.5, 3.5))
for name in arms:
    pts = [(b, 100 * acc[b, name if b != BASE_BATCH else "unscaled"]) for b in BATCHES]
    ax.plot(*zip(*pts), "o-", label=name)
ax.set_xscale("log", base=2)
ax.set_xlabel("global batch (clips)")
ax.set_ylabel("test accuracy (%)")
ax.set_title(f"Same {EPOCHS} epochs, growing batch")
ax.legend(fontsize=8)
plt.show()

# %% [markdown]
# At the largest batch there are only a few steps in the whole run: with the base rate they move the
# weights far too little; scaled, they move them about as far as the small-batch run's many steps —
# though not all the way back to its accuracy: the rule holds until the batch is so large that the
# "gradient barely changes over k steps" argument breaks. On Kinetics the paper found no loss up to
# 12,288 clips (Goyal et al.: 8k images on ImageNet); with 1,024 tiny clips the limit comes much
# sooner. Warm-up guards against divergence in the first steps at a large rate; at these modest
# rates it has little to guard against and mostly costs a few steps at a lower rate — compare the
# two scaled runs.
#
# ## 10. The same training, launched with `torchrun`
#
# On real hardware you start one process per GPU with `torchrun`; PyTorch sets `RANK`,
# `WORLD_SIZE`, `LOCAL_RANK` and the rendezvous for each. `effcourse.video.ddp_train` is such a script:
# DDP (or `--sync answers`: your `GradBuckets`), `DistributedSampler`, your `scaled_lr` and
# `lr_at` — read from **this notebook's file** (save it first) — and TSM from your Lab 1. Here it runs
# for a few steps on 2 CPU processes over gloo; on GPUs the same command uses NCCL. See
# `docs/DISTRIBUTED.md` for multi-node commands and real data sets (the CI runs only this CPU path;
# the NCCL path is written and documented but has not been run on GPUs here).

# %% tags=["experiment"]
RUN_TORCHRUN = effcourse.pick(full=True, quick=False, smoke=False)   # 3 fresh Python processes: full mode only
                                                                     # (CI runs the same command in its tests)
NOTEBOOK = "lab7_distributed_training.ipynb"
TORCHRUN_STEPS = effcourse.pick(full=40, quick=6, smoke=2)
summary_path = Path(tempfile.mkdtemp(prefix="lab7-torchrun-")) / "summary.json"
cmd = ["torchrun", "--nproc_per_node", "2", "-m", "effcourse.video.ddp_train", "--answers", NOTEBOOK,
       "--lab1", LAB1_NOTEBOOK, "--model", KIND, "--frames", str(T), "--size", str(SIZE),
       "--train-clips", str(N_TRAIN), "--test-clips", str(N_TEST), "--batch-per-rank", str(B_RANK),
       "--base-lr", str(BASE_LR), "--base-batch", str(BASE_BATCH), "--epochs", "1",
       "--max-steps", str(TORCHRUN_STEPS), "--out", str(summary_path)]
print(" ".join(shlex.quote(c) for c in cmd))
torchrun_summary = None
if RUN_TORCHRUN:
    if not Path(NOTEBOOK).exists():
        print(f"{NOTEBOOK} is not in the working folder: run this cell from the notebook's folder")
    else:
        # `python -m torch.distributed.run` is torchrun, with this notebook's interpreter
        proc = subprocess.run([sys.executable, "-m", "torch.distributed.run"] + cmd[1:], check=False, capture_output=True,
                              text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
        print(proc.stdout[-3000:])
        if proc.returncode != 0:
            print(proc.stderr[-3000:])
        elif summary_path.exists():
            torchrun_summary = json.loads(summary_path.read_text())
            effcourse.record("torchrun_summary", torchrun_summary)


# %% [markdown]
# ## 11. Paper vs. you

# %% tags=["experiment"]
rows = [
    {"claim": "2 ranks x 16 clips = 1 process x 32 clips", "paper": "synchronous SGD: the same step",
     "you": f"max |Δw| {equiv['yours']:.1e} (your GradBuckets), {equiv['DDP']:.1e} (DDP) after {EQUIV_STEPS} steps"},
    {"claim": "ring all-reduce, W = 2", "paper": "(the algorithm NCCL and gloo use)",
     "you": f"yours α = {1e6 * fits['your ring'][0]:.0f} µs, β = {fits['your ring'][1] / 1e9:.2f} GB/s; gloo α = "
            f"{1e6 * fits['gloo'][0]:.0f} µs, β = {fits['gloo'][1] / 1e9:.2f} GB/s"},
    {"claim": "communication hidden behind backward", "paper": "(DDP's buckets; the paper overlaps too)",
     "you": f"{100 * hidden[best]:.0f} % hidden with buckets of {best:.3g} of the gradient"},
    {"claim": "speed-up, 768 and 1,536 GPUs", "paper": "106× and 211× measured (ideal 128×, 256×) [lecture]",
     "you": f"not a prediction: the model's upper bounds (perfect compute, no I/O, no stragglers) are "
            f"{bound['flat ring'][768]:.0f}× / {bound['flat ring'][1536]:.0f}× (flat ring) to "
            f"{bound['binary tree'][768]:.0f}× / {bound['binary tree'][1536]:.0f}× (tree); they do not explain "
            "where the paper lost its 17 %"},
    {"claim": "TSM vs I3D training speed", "paper": "1.6× and 2.9× faster than I3D models [lecture, abstract]",
     "you": f"model: I3D twin {by['flat ring', 'I3D', 1536]['minutes'] / by['flat ring', 'TSM', 1536]['minutes']:.2f}× "
            f"slower at 1,536 GPUs; measured here (2 ranks, DDP): {speed[KIND, 2, 'DDP'] / speed['i3d', 2, 'DDP']:.2f}× "
            "the throughput"},
    {"claim": "fewer input frames train faster", "paper": "a guideline of the paper (data loading is a bottleneck)",
     "you": f"{KIND}, {FRAMES[-1]} → {FRAMES[0]} frames: loading {1e3 * load_split[KIND, FRAMES[-1], 0]['load']:.0f} → "
            f"{1e3 * load_split[KIND, FRAMES[0], 0]['load']:.0f} ms, compute "
            f"{1e3 * load_split[KIND, FRAMES[-1], 0]['compute']:.0f} → {1e3 * load_split[KIND, FRAMES[0], 0]['compute']:.0f} ms"},
    {"claim": "accuracy at large batch", "paper": "74.1 % → 74.0 % up to 12,288 clips [lecture, abstract]",
     "you": f"batch {BATCHES[0]}: {100 * acc[BATCHES[0], 'unscaled']:.1f} %, batch {largest}: "
            f"{100 * acc[largest, 'scaled + warm-up']:.1f} % scaled + warm-up, "
            f"{100 * acc[largest, 'unscaled']:.1f} % unscaled"},
]
_ = plots.table(rows, title="Paper vs. you")

# %% [markdown]
# ## 12. Questions
#
# **Q1 (7 points).** From your tables: which term of the flat ring's cost grows with W, and how do
# the tree and the hierarchy change that? The paper's speed-up goes 106× → 211× from 768 to 1,536
# GPUs. What does that doubling say about *where* its loss relative to the ideal happened, and why
# can your model's bound not explain it? Name two things the bound leaves out.

# %% [markdown] nbgrader={"grade": true, "grade_id": "q1_communication", "locked": false, "points": 7, "schema_version": 3, "solution": true, "task": false}
# The flat ring's bytes term 2(W-1)/W * n/beta tends to 2n/beta and hardly changes with W; its latency
# term 2(W-1)*alpha grows linearly (about 15 ms at 1,536 GPUs with alpha = 5 us, comparable to the
# bytes term of ~8 ms for TSM's 97 MB). A pipelined tree pays 2*ceil(log2 W)*alpha instead (22
# latencies at 1,536, not 3,070), and the hierarchy runs the ring only over the W/6 node leaders (its
# cross-node latency term is six times smaller; the leaders still carry the whole gradient, so its
# bytes term is no smaller). Even the flat ring leaves the all-reduce a small share (about 6 %) of a
# TSM step on Summit's link, so every bound sits near the ideal: about 125x at 768 GPUs and 245x to
# 256x at 1,536. The paper's speed-up doubles almost
# exactly from 768 to 1,536 GPUs (106 -> 211): adding GPUs beyond 768 cost nearly nothing, so its
# loss (106 of an ideal 128) happened between one node and many, a roughly constant factor, not a
# cost that grows with W. A flat-ring model can only lose efficiency through terms that grow with W,
# so it cannot reproduce that; it is an upper bound under its assumptions. Left out: stragglers
# (every step waits for the slowest GPU), data loading / I/O from the shared file system, the
# node boundary's real behaviour (contention, NCCL's choices, overlap of communication with backward),
# BatchNorm and evaluation overheads, and FLOP utilisation that differs between operators.

# %% [markdown]
# **Q2 (5 points).** At the largest batch of your run, compare your unscaled and scaled runs. Explain
# with the argument of section 1 why the learning rate must grow with the batch when the number of
# epochs is fixed, what warm-up protects against (and whether it helped here), and why the rule
# cannot hold for arbitrarily large batches.

# %% [markdown] nbgrader={"grade": true, "grade_id": "q2_scaling_rule", "locked": false, "points": 5, "schema_version": 3, "solution": true, "task": false}
# (Full mode, the default: batches 32 to 512, 8 epochs of 2,048 clips.) With a fixed number of epochs,
# a k-times larger batch gives k times fewer steps: at batch 512 (k = 16) the whole run is 32 steps
# instead of 512. Each step with the base rate 0.05 moves the weights by eta times the average
# gradient, about as far as ONE small-batch step, so the unscaled run covers about 1/16 of the
# distance and stays under-trained (its accuracy is far below the batch-32 run's). Scaling the rate
# by k (0.05 * 16 = 0.8) makes one large step approximate k small ones, provided the gradient changes
# little over those k steps, and recovers most of the accuracy. Early in training the weights and
# gradients change fast, so a k-times rate can overshoot and diverge: warm-up (here 4 of the 32
# steps) starts small and ramps to the peak while the network settles. With BatchNorm and a peak of
# 0.8 the scaled run does not diverge without it, so warm-up helps little or not at all here (compare
# your two scaled runs); it matters at larger factors and rates. The rule breaks when k steps can no
# longer be approximated by one: the batch's gradient noise is already small, a larger step only
# overshoots, and too few steps remain to converge (the critical batch size; Goyal: ~8k images, the
# paper: up to 12,288 clips).

# %% [markdown]
# **Q3 (5 points).** From your data-loading table: how do loading and compute per step change as the
# frames per clip go from 16 to 4, for TSM and for I3D? Which model's step does loading dominate, and
# what does that say about the paper's guideline "fewer input frames"? When does a worker process
# (`num_workers=1`) hide the loading, and why did it (or not) here?

# %% [markdown] nbgrader={"grade": true, "grade_id": "q3_data_loading", "locked": false, "points": 5, "schema_version": 3, "solution": true, "task": false}
# Both shrink about in proportion to the frames: 4x fewer JPEG files to decode per clip and 4x fewer
# frame-level MACs for TSM (the 2D network runs per frame). For TSM the compute per frame is small,
# so decoding is a large share of the step (on this machine a half or more with num_workers=0); the
# I3D twin computes about three times as much per frame for the same loading, so loading is a smaller
# share of its step. The guideline follows: a model that needs fewer frames saves on both sides of the
# step, and for a cheap 2D model like TSM the saving in loading matters as much as the saving in
# compute; the paper trains TSM on 8 frames where I3D uses 32 or more. A worker hides loading only
# when it has its own core and the decode of the next batch takes no longer than the compute of this
# one; on two shared cores the worker and the training process compete, so the hidden part is small
# (and the exposed loading per step varies with the load of the machine).
