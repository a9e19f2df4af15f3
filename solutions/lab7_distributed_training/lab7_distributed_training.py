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
# **You will build** the four pieces that large-scale synchronous training rests on: the linear
# learning-rate scaling rule with gradual warm-up, the per-rank shard of a shuffled epoch, the
# gradient all-reduce, and the α–β cost model of ring all-reduce. Then you will run them on
# PyTorch's own distributed engine — two gloo processes on this machine, `DistributedDataParallel`,
# `DistributedSampler`, `torchrun` — prove that two processes train exactly like one process with
# twice the batch, measure what communication costs here, extrapolate TSM and I3D from one Summit
# node to 1,536 GPUs, and watch accuracy fall at large batches unless the learning rate is scaled.
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
import dataclasses
import json
import math
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import matplotlib.pyplot as plt
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DistributedSampler

import effcourse
from effcourse import bench, plots
from effcourse.checks import lab7
from effcourse.data import TemporalDigits
from effcourse import learner
from effcourse.video import distributed, large_batch, scaling

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


# %% nbgrader={"grade": true, "grade_id": "test_scaled_lr", "locked": true, "points": 6, "schema_version": 3, "solution": false, "task": false}
import math
import random
import time

from effcourse.checks import lab7
from effcourse.checks.asserts import CheckFailed, call

lab7.check_scaled_lr(scaled_lr)
### BEGIN HIDDEN TESTS
_seed = int(time.time() * 1000) % 2**31
_rng = random.Random(_seed)
_cases = [(0.1, 256, 256), (0.1, 256, 255), (0.05, 32, 100), (1.0, 7, 3), (0.3, 1, 1)]
_cases += [(_rng.uniform(1e-4, 2.0), _rng.randint(1, 1024), _rng.randint(1, 50000)) for _ in range(30)]
for _lr, _b0, _b in _cases:
    _what = f"scaled_lr({_lr:.6g}, {_b0}, {_b}) (seed {_seed})"
    _got = lab7.as_float(_what, call(_what, scaled_lr, _lr, _b0, _b))
    _want = _lr * _b / _b0
    if not math.isclose(_got, _want, rel_tol=1e-9, abs_tol=1e-15):
        raise CheckFailed(f"scaled_lr({_lr:.6g}, base_batch={_b0}, batch={_b}): expected {_want:.10g}, "
                          f"got {_got:.10g} (seed {_seed})")
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


# %% nbgrader={"grade": true, "grade_id": "test_lr_at", "locked": true, "points": 14, "schema_version": 3, "solution": false, "task": false}
import math
import random
import time

from effcourse.checks import lab7
from effcourse.checks.asserts import CheckFailed, call

lab7.check_lr_at(lr_at)
### BEGIN HIDDEN TESTS
_seed = int(time.time() * 1000) % 2**31
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
        _what = f"lr_at({_s}, {_peak:.6g}, {_w}, {_total}) (seed {_seed})"
        _got = lab7.as_float(_what, call(_what, lr_at, _s, _peak, _w, _total))
        if not math.isclose(_got, _want, rel_tol=1e-9, abs_tol=1e-12):
            raise CheckFailed(f"lr_at(step={_s}, peak_lr={_peak:.6g}, warmup_steps={_w}, total_steps={_total}): "
                              f"expected {_want:.10g}, got {_got:.10g} (seed {_seed})")
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


# %% nbgrader={"grade": true, "grade_id": "test_shard_indices", "locked": true, "points": 16, "schema_version": 3, "solution": false, "task": false}
import math
import random
import time
from collections import Counter

import torch

from effcourse.checks import lab7
from effcourse.checks.asserts import CheckFailed, call

lab7.check_shard_indices(shard_indices)
### BEGIN HIDDEN TESTS
_seed = int(time.time() * 1000) % 2**31
_rng = random.Random(_seed)


def _fail(msg):
    raise CheckFailed(f"{msg} (seed {_seed})")


def _share(n, r, w, e, s):
    what = f"shard_indices({n}, rank={r}, world_size={w}, epoch={e}, seed={s}) (seed {_seed})"
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

# %% nbgrader={"grade": true, "grade_id": "test_shard_indices_errors", "locked": true, "points": 4, "schema_version": 3, "solution": false, "task": false}
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
# ## 3. Averaging gradients: all-reduce
#
# After `loss.backward()` each rank holds the gradient of *its* slice of the batch. An **all-reduce**
# combines a tensor across all ranks and leaves the result on every one of them:
# `torch.distributed.all_reduce(t)` replaces `t` on every rank by the sum over ranks. Dividing by the
# world size gives the mean — which, when every rank's loss is the mean over an equal-sized local
# batch, is exactly the gradient of the mean loss over the whole global batch:
#
# $$\frac{1}{W}\sum_{r=1}^{W} \frac{1}{b}\sum_{j \in B_r} \nabla\ell_j \;=\; \frac{1}{Wb}\sum_{j \in B_1\cup\dots\cup B_W} \nabla\ell_j$$
#
# This is what `DistributedDataParallel` does for you, in buckets of gradients that it sends while
# the backward pass is still running. Write the plain version: one `all_reduce` per parameter (or
# one on all of them flattened — your choice), summing (the default `ReduceOp.SUM`), then divide by
# `dist.get_world_size()`. (`ReduceOp.AVG` does both on NCCL, and on gloo only in recent PyTorch
# versions; sum-then-divide works everywhere.) Parameters without a gradient (frozen or unused:
# `p.grad is None`) are skipped.
#
# The check below starts 2 and 3 ranks **forked from this notebook** (`effcourse.video.distributed
# .launch`), each in a gloo process group, and compares your gradients with DDP's and with one
# process's on the concatenated batch. A rank that waits in a collective the others never call hangs;
# `launch` kills it after a time limit and says so.

# %% nbgrader={"grade": false, "grade_id": "allreduce_mean_grads", "locked": false, "schema_version": 3, "solution": true, "task": false}
def allreduce_mean_grads(model):
    """Average model's gradients over all ranks of the default process group.

    Call it on every rank after loss.backward(). Afterwards, on every rank, each parameter's .grad
    (changed in place or replaced by a new tensor) is the mean over ranks of the .grad the ranks held
    before the call. Uses torch.distributed.all_reduce; works with the gloo backend (CPU) and with
    world_size 1. Parameters whose .grad is None are left alone; parameter values are not changed.
    Returns None.
    """
    ### BEGIN SOLUTION
    world = dist.get_world_size()
    for p in model.parameters():
        if p.grad is not None:
            dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)
            p.grad /= world
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_allreduce_mean_grads", "locked": true, "points": 28, "schema_version": 3, "solution": false, "task": false}
import time

import torch

from effcourse.checks import lab7
from effcourse.checks.asserts import CheckFailed

lab7.check_allreduce_mean_grads(allreduce_mean_grads)
### BEGIN HIDDEN TESTS
from effcourse import judge

_seed = int(time.time() * 1000) % 2**31
_g = torch.Generator().manual_seed(_seed)


def _case(kind, n, loss):
    """A toy model with random weights and n samples, as plain data (the ranks rebuild the model)."""
    model = lab7.toy_model(kind)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=_g, dtype=p.dtype) * 0.5)
    shape, k = lab7.TOY_MODELS[kind]
    x = torch.randn(n, *shape, generator=_g, dtype=torch.float64)
    y = (torch.randint(0, k, (n,), generator=_g) if loss == "ce"
         else torch.randn(n, k, generator=_g, dtype=torch.float64))
    return {"model": kind, "state": {k_: v.clone() for k_, v in model.state_dict().items()}, "x": x, "y": y,
            "loss": loss}


def _reference(case):
    """One process, the concatenated batch: the gradients every rank must hold, and the weights."""
    model = lab7.toy_model(case["model"])
    model.load_state_dict(case["state"])
    weights = [p.detach().clone() for p in model.parameters()]
    lab7.toy_loss(model(case["x"]), case["y"], case["loss"]).backward()
    return [None if p.grad is None else p.grad.detach().clone() for p in model.parameters()], weights


_names = ["MLP", "conv net with frozen and unused parameters", "linear regression"]
for _world, _b in [(3, 2)]:                  # 2 ranks: the visible check; 3 catches a hard-coded 2
    _cs = [_case("mlp", _world * _b, "ce"), _case("branchy", _world * _b, "ce"), _case("linear", _world * _b, "mse")]
    # the ranks are forked where your code runs; they report their gradients, judged here
    _res = judge.in_kernel("effcourse.checks.lab7.probe_allreduce_mean_grads", allreduce_mean_grads, _cs, _world, _b,
                           timeout=90)
    if _res["error"] is not None:
        raise CheckFailed(f"allreduce_mean_grads on {_world} gloo ranks failed (seed {_seed}): {_res['error']}")
    if len(_res["ranks"]) != _world:
        raise CheckFailed(f"{_world} ranks were launched but {len(_res['ranks'])} reported (seed {_seed})")
    for _c, (_name, _case_) in enumerate(zip(_names, _cs)):
        _want, _weights = _reference(_case_)
        for _r in range(_world):
            _got = _res["ranks"][_r][_c]
            if len(_got["grads"]) != len(_want) or len(_got["params"]) != len(_want):
                raise CheckFailed(f"{_name}, rank {_r}: the model has {len(_want)} parameters, "
                                  f"{len(_got['grads'])} gradients came back (seed {_seed})")
            if any(not torch.equal(_p, _q) for _p, _q in zip(_got["params"], _weights)):
                raise CheckFailed(f"{_name}, rank {_r} of {_world}: allreduce_mean_grads changed parameter values "
                                  f"(seed {_seed})")
            for _i, (_w, _y_, _d) in enumerate(zip(_want, _got["grads"], _got["ddp"])):
                if _w is None:
                    if _y_ is not None:
                        raise CheckFailed(f"{_name}, rank {_r}: parameter {_i} had no gradient (None) and must keep "
                                          f"none, got a tensor (seed {_seed})")
                    continue
                if _y_ is None:
                    raise CheckFailed(f"{_name}, rank {_r}: parameter {_i} lost its gradient (seed {_seed})")
                if _y_.shape != _w.shape or not torch.allclose(_y_, _w, rtol=1e-9, atol=1e-11):
                    _err = (_y_ - _w).abs().max().item() if _y_.shape == _w.shape else float("nan")
                    raise CheckFailed(f"{_name}, rank {_r} of {_world}: parameter {_i}'s gradient after "
                                      f"allreduce_mean_grads is not the gradient of the mean loss over all {_world} "
                                      f"ranks' clips (max error {_err:.3g}, seed {_seed})")
                if _d is not None and not torch.allclose(_y_, _d, rtol=1e-9, atol=1e-11):
                    raise CheckFailed(f"{_name}, rank {_r}: your gradient differs from DistributedDataParallel's "
                                      f"(max error {(_y_ - _d).abs().max().item():.3g}, seed {_seed})")
### END HIDDEN TESTS

# %% [markdown]
# ## 4. What an all-reduce costs: the α–β model of ring all-reduce
#
# Ring all-reduce (brought to deep learning by Baidu in 2017; NCCL uses it, alongside trees) arranges
# the W ranks in a ring and cuts the gradient of $n$ bytes into W chunks. In $W-1$ steps of
# **reduce-scatter** each rank passes one chunk to its neighbour, which adds its own; afterwards every
# rank owns one fully summed chunk. In $W-1$ steps of **all-gather** the summed chunks travel round
# the ring until every rank has all of them.
#
# ```
#            step 1            step 2            ...  2(W-1) steps, each: every rank sends n/W bytes
#  rank 0 ──chunk──▶ rank 1 ──chunk──▶ rank 2 ──▶ ... ──▶ rank W-1 ──▶ rank 0
# ```
#
# A message of $m$ bytes costs $\alpha + m/\beta$: a fixed **latency** $\alpha$ (seconds) and the bytes
# over the **bandwidth** $\beta$ (bytes/s). All ranks send at once, so each step costs one message of
# $n/W$ bytes:
#
# $$T_{\text{ring}}(n, W) = 2(W-1)\Bigl(\alpha + \frac{n}{W\beta}\Bigr)$$
#
# The bytes term tends to $2n/\beta$, *independent of W*: the ring is bandwidth-optimal. The latency
# term grows with W. A single rank ($W = 1$) sends nothing. `bandwidth` may be `math.inf` (no cost
# per byte): the fit of section 6 uses that to separate the two terms.

# %% nbgrader={"grade": false, "grade_id": "ring_allreduce_seconds", "locked": false, "schema_version": 3, "solution": true, "task": false}
def ring_allreduce_seconds(n_bytes, world_size, bandwidth, latency):
    """Time of a ring all-reduce of n_bytes over world_size ranks in the alpha-beta model.

    Args:
        n_bytes: size of the tensor being all-reduced, in bytes (>= 0).
        world_size: W >= 1 ranks.
        bandwidth: beta, bytes per second of every link (> 0; may be math.inf).
        latency: alpha, seconds per message (>= 0).

    Returns:
        2 * (W - 1) * (latency + n_bytes / (W * bandwidth)) seconds, as a float (0 for W = 1).
    """
    ### BEGIN SOLUTION
    steps = 2 * (world_size - 1)
    return float(steps * (latency + n_bytes / world_size / bandwidth))
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_ring_allreduce_seconds", "locked": true, "points": 10, "schema_version": 3, "solution": false, "task": false}
import math
import random
import time

from effcourse.checks import lab7
from effcourse.checks.asserts import CheckFailed, call

lab7.check_ring_allreduce_seconds(ring_allreduce_seconds)
### BEGIN HIDDEN TESTS
_seed = int(time.time() * 1000) % 2**31
_rng = random.Random(_seed)


def _ref_ring(n, w, bw, lat):
    return 2 * (w - 1) * (lat + n / (w * bw))


_cases = [(97e6, 6, 23e9, 5e-6), (97e6, 1536, 23e9, 5e-6), (1, 2, 1e9, 0.0), (0, 8, 1e9, 1e-5), (4e6, 1, 1e6, 1e-3),
          (1e9, 3, math.inf, 2e-5), (12345, 7, math.inf, 0.0)]
_cases += [(_rng.uniform(0, 1e10), _rng.randint(1, 4096), 10 ** _rng.uniform(6, 12), _rng.uniform(0, 1e-3))
           for _ in range(40)]
_cases += [(_rng.randint(0, 10**9), _rng.randint(1, 64), _rng.randint(10**6, 10**10), 0) for _ in range(5)]
for _n, _w, _bw, _lat in _cases:
    _want = _ref_ring(_n, _w, _bw, _lat)
    _what = f"ring_allreduce_seconds({_n:.6g}, {_w}, {_bw:.6g}, {_lat:.3g}) (seed {_seed})"
    _got = lab7.as_float(_what, call(_what, ring_allreduce_seconds, _n, _w, _bw, _lat))
    if not math.isclose(_got, _want, rel_tol=1e-9, abs_tol=1e-15):
        raise CheckFailed(f"ring_allreduce_seconds(n_bytes={_n:.6g}, world_size={_w}, bandwidth={_bw:.6g}, "
                          f"latency={_lat:.3g}): expected {_want:.10g} s, got {_got:.10g} s (seed {_seed})")
### END HIDDEN TESTS

# %% [markdown]
# ## 5. Two processes train like one: TSM on two gloo ranks
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
# synchronised by your `allreduce_mean_grads`, and by `DistributedDataParallel` — run the same first
# steps with your learning-rate schedule. `DistributedSampler` gives each rank its share; the two
# ranks' batches at step k together are exactly the one process's batch k. One caveat: BatchNorm
# normalises each process's batch with *that batch's* statistics (DDP does not synchronise them;
# `SyncBatchNorm` would), so 2 × 16 clips are normalised differently from 32. For the exact check,
# BatchNorm is frozen (normalising with its running statistics).

# %% tags=["experiment"]
BASE_LR, BASE_BATCH = 0.05, 32          # tuned on one process with 32 clips
B_RANK = 16                             # clips per rank and step
EQUIV_STEPS = effcourse.pick(full=10, quick=5, smoke=2)
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
        hist = distributed.train_rank(model, train_set, lr_equiv, cfg_two, sync=allreduce_mean_grads)
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
# **Throughput.** Now time training steps of TSM and I3D on one process and on two, 16 clips per
# rank (*weak scaling*: the batch grows with the ranks, as on Summit), synchronised by your
# all-reduce (its time is measured separately) and by DDP. Your version pays the latency α once per
# parameter *tensor*, after the backward pass; DDP packs gradients into buckets (25 MB by default)
# and all-reduces each bucket while the rest of the backward pass is still running. Each rank uses
# one CPU thread; on a shared two-core machine the numbers are noisy — read the ratios.

# %% tags=["experiment"]
THROUGHPUT_STEPS = effcourse.pick(full=30, quick=10, smoke=3)
cfg_speed = distributed.TrainConfig(batch_per_rank=B_RANK, max_steps=THROUGHPUT_STEPS, seed=SEED)


def throughput_rank(rank, world, kind, sync_with):
    model = make_model(kind)
    if sync_with == "DDP":
        hist = distributed.train_rank(DistributedDataParallel(model), train_set, lr_equiv, cfg_speed)
    else:
        hist = distributed.train_rank(model, train_set, lr_equiv, cfg_speed,
                                      sync=allreduce_mean_grads if world > 1 else None)
    return {"step": hist["step_seconds"], "sync": hist["sync_seconds"]}


speed_rows, speed = [], {}
clip1 = train_set[0][0].unsqueeze(0)
for kind in (KIND, "i3d"):
    net = make_model(kind)
    for world, sync_with in [(1, "-"), (2, "yours"), (2, "DDP")]:
        h = distributed.launch(throughput_rank, world, kind, sync_with, timeout=600)[0]
        steady = slice(min(2, len(h["step"]) - 1), None)            # skip the first steps (warm-up)
        step_s = statistics.median(h["step"][steady])
        sync_s = statistics.median(h["sync"][steady])
        speed[kind, world, sync_with] = world * B_RANK / step_s
        speed_rows.append({"model": kind, "ranks": world, "sync": sync_with, "tensors": len(list(net.parameters())),
                           "all-reduced per step (kB)": distributed.param_bytes(net) / 1e3,
                           "MMACs per clip": bench.count_macs(net, clip1) / 1e6,
                           "clips/s": speed[kind, world, sync_with],
                           "all-reduce ms/step": f"{1e3 * sync_s:.3g}" if sync_with == "yours" else "—",
                           "all-reduce share": f"{100 * sync_s / step_s:.0f} %" if sync_with == "yours" else "—"})
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
# **Reading the table.** These models are tiny: a step of 16 clips computes for tens of
# milliseconds, and an all-reduce through loopback costs a large part of that, so two CPU ranks are
# far from twice as fast — by how much depends on how busy the machine is. The ratios still tell the
# paper's story: the I3D twin all-reduces three times the bytes of TSM and computes three times the
# MACs, and your all-reduce pays the latency once per parameter tensor, after the backward pass,
# where DDP pays it once per bucket while the backward pass is still running.
#
# ## 6. Fit the α–β model here, extrapolate to Summit
#
# Time `all_reduce` on two gloo ranks for message sizes from 1 kB up, and fit *your* model's two
# numbers — the latency α and the bandwidth β — to the times (`scaling.fit_alpha_beta` minimises
# the relative error; your function is linear in α and in 1/β, so it evaluates your function for
# the features).

# %% tags=["experiment"]
AR_SIZES = effcourse.pick(full=[2**k for k in range(10, 25)], quick=[2**k for k in range(10, 23, 2)],
                          smoke=[2**10, 2**16, 2**22])
AR_REPEATS = effcourse.pick(full=25, quick=10, smoke=3)


def allreduce_timing_rank(rank, world):
    return scaling.measure_allreduce(AR_SIZES, repeats=AR_REPEATS)


measured = distributed.launch(allreduce_timing_rank, 2, timeout=300)[0]
sizes, secs = list(measured), list(measured.values())
alpha, beta = scaling.fit_alpha_beta(ring_allreduce_seconds, sizes, secs, 2)
effcourse.record("fit_latency_s", alpha)
effcourse.record("fit_bandwidth_Bps", beta)
fit = [ring_allreduce_seconds(n, 2, beta, alpha) for n in sizes]
fig, ax = plt.subplots(figsize=(5.5, 3.5))
ax.loglog(sizes, [1e3 * s for s in secs], "o", label="measured (2 gloo ranks, median)")
ax.loglog(sizes, [1e3 * s for s in fit], "-", label=f"your model: α = {1e6 * alpha:.0f} µs, β = {beta / 1e9:.2f} GB/s")
ax.set_xlabel("bytes all-reduced")
ax.set_ylabel("ms")
ax.legend(fontsize=8)
ax.set_title("all_reduce on this machine")
plt.show()

# %% [markdown]
# Now the paper's scale. Counted here (meta tensors, no weights): 8-frame ResNet-50 TSM and its I3D
# twin (every 3×3 conv and the 7×7 stem given a temporal kernel of 3). The model of a training run:
#
# * every GPU holds 8 clips per step (the abstract's 12,288 clips on 1,536 GPUs) — weak scaling;
# * a step = compute + one ring all-reduce of all gradients (float32) over **all** GPUs, with **no**
#   overlap of the two and data loading for free (real systems overlap communication with the backward
#   pass, all-reduce hierarchically — NVLink inside a node, InfiniBand between nodes — and the paper
#   shows that I/O matters too);
# * TSM's compute per step is calibrated so one Summit node (6 GPUs) takes the lecture's 49 h 50 min;
#   I3D's compute is TSM's times their MAC ratio (equal FLOP/s utilisation — the paper measured
#   *better* utilisation for TSM, so this flatters I3D);
# * the link: Summit's 23 GB/s dual-rail EDR InfiniBand (lecture) with an assumed latency of 5 µs, or
#   the α and β you just measured on this machine.

# %% tags=["experiment"]
GPUS = [6, 24, 96, 384, 768, 1536]
costs = scaling.resnet50_costs()
summit = scaling.extrapolate(ring_allreduce_seconds, costs, GPUS, **scaling.SUMMIT_LINK)
here = scaling.extrapolate(ring_allreduce_seconds, costs, GPUS, bandwidth=beta, latency=alpha,
                           calibration_link=scaling.SUMMIT_LINK)
paper = {6: "49 h 50 min, 1×", 768: "28 min, 106×", 1536: "14 min, 211×"}
by = {(r["model"], r["gpus"]): r for r in summit}
by_here = {(r["model"], r["gpus"]): r for r in here}


def fmt_time(minutes):
    return f"{minutes / 60:.1f} h" if minutes >= 120 else f"{minutes:.1f} min"


plots.table([{"GPUs": p,
              "TSM (Summit link)": f"{fmt_time(by['TSM', p]['minutes'])}, {by['TSM', p]['speedup']:.0f}×",
              "TSM all-reduce share": f"{100 * by['TSM', p]['comm_share']:.0f} %",
              "I3D (Summit link)": f"{fmt_time(by['I3D', p]['minutes'])}, {by['I3D', p]['speedup']:.0f}×",
              "I3D / TSM time": by["I3D", p]["minutes"] / by["TSM", p]["minutes"],
              "TSM on this machine's link": f"{fmt_time(by_here['TSM', p]['minutes'])}, "
                                            f"{by_here['TSM', p]['speedup']:.0f}×",
              "its all-reduce share": f"{100 * by_here['TSM', p]['comm_share']:.0f} %",
              "paper (TSM)": paper.get(p, "")} for p in GPUS],
            floatfmt=".2f",
            title=f"Kinetics, 100 epochs: TSM-R50 {costs['TSM']['params'] / 1e6:.1f} M parameters, "
                  f"{costs['TSM']['macs'] / 1e9:.1f} GMACs/clip; I3D twin {costs['I3D']['params'] / 1e6:.1f} M, "
                  f"{costs['I3D']['macs'] / 1e9:.1f} GMACs")
effcourse.record("model_tsm_speedup", {p: by["TSM", p]["speedup"] for p in GPUS})
effcourse.record("model_tsm_minutes_1536", by["TSM", 1536]["minutes"])
effcourse.record("model_i3d_over_tsm_1536", by["I3D", 1536]["minutes"] / by["TSM", 1536]["minutes"])
effcourse.record("here_link_tsm_speedup_1536", by_here["TSM", 1536]["speedup"])
_ = effcourse.record("resnet50_costs", costs)

# %% [markdown]
# The model is more optimistic than Summit was: it has no I/O, no stragglers and a perfect network.
# Yet it shows where the time goes. On Summit's link the all-reduce stays a small share of a TSM step
# even at 1,536 GPUs, and I3D's doubled parameters and MACs double its time at every scale. Compare
# the all-reduce share on this machine's link (loopback gloo between busy CPU processes is a far
# slower "network" than InfiniBand): the slower the link, the more the bytes — the parameter count —
# decide.
#
# ## 7. Accuracy vs global batch: the scaling rule and warm-up at work
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
        warm = round(warm_fraction * EPOCHS * (N_TRAIN // batch))
        model = make_model()
        hist = large_batch.train_accumulated(
            model, train_set, batch, MICRO, EPOCHS,
            lambda s, total, peak=peak, warm=warm: lr_at(s, peak, min(warm, total), total),
            seed=SEED, desc=f"batch {batch}, {name}")
        acc[batch, name] = distributed.evaluate(model, test_set)
        acc_rows.append({"global batch": batch, "rule": name, "peak lr": peak, "steps": hist["steps"],
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
# ## 8. The same training, launched with `torchrun`
#
# On real hardware you start one process per GPU with `torchrun`; PyTorch sets `RANK`,
# `WORLD_SIZE`, `LOCAL_RANK` and the rendezvous for each. `effcourse.video.ddp_train` is such a script:
# DDP (or `--sync answers`: your `allreduce_mean_grads`), `DistributedSampler`, your `scaled_lr` and
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
# ## 9. Paper vs. you

# %% tags=["experiment"]
rows = [
    {"claim": "2 ranks x 16 clips = 1 process x 32 clips", "paper": "synchronous SGD: the same step",
     "you": f"max |Δw| {equiv['yours']:.1e} (yours), {equiv['DDP']:.1e} (DDP) after {EQUIV_STEPS} steps"},
    {"claim": "speed-up, 128 nodes (768 GPUs)", "paper": "106× (ideal 128×), 28 min [lecture]",
     "you": f"model: {by['TSM', 768]['speedup']:.0f}×, {fmt_time(by['TSM', 768]['minutes'])}"},
    {"claim": "speed-up, 256 nodes (1,536 GPUs)", "paper": "211× (ideal 256×), 14 min [lecture]",
     "you": f"model: {by['TSM', 1536]['speedup']:.0f}×, {fmt_time(by['TSM', 1536]['minutes'])}; "
            f"{by_here['TSM', 1536]['speedup']:.0f}× on this machine's link"},
    {"claim": "TSM vs I3D training speed", "paper": "1.6× and 2.9× faster than I3D models [lecture, abstract]",
     "you": f"model at 1,536 GPUs: I3D twin {by['I3D', 1536]['minutes'] / by['TSM', 1536]['minutes']:.2f}× slower; "
            f"measured here (2 ranks, DDP): {speed[KIND, 2, 'DDP'] / speed['i3d', 2, 'DDP']:.2f}× the throughput"},
    {"claim": "gradient bytes per step", "paper": "TSM: fewer parameters to all-reduce",
     "you": f"R50: TSM {4 * costs['TSM']['params'] / 1e6:.0f} MB vs I3D twin {4 * costs['I3D']['params'] / 1e6:.0f} MB"},
    {"claim": "accuracy at large batch", "paper": "74.1 % → 74.0 % up to 12,288 clips [lecture, abstract]",
     "you": f"batch {BATCHES[0]}: {100 * acc[BATCHES[0], 'unscaled']:.1f} %, batch {largest}: "
            f"{100 * acc[largest, 'scaled + warm-up']:.1f} % scaled + warm-up, "
            f"{100 * acc[largest, 'unscaled']:.1f} % unscaled"},
]
_ = plots.table(rows, title="Paper vs. you")

# %% [markdown]
# ## 10. Questions
#
# **Q1 (11 points).** In your extrapolation, what fraction of a TSM step is communication at 1,536
# GPUs on Summit's link, and on this machine's link? Use the ring formula to explain (a) why adding
# GPUs barely raises the *bytes* term but does raise the total, and (b) why I3D suffers more than TSM.
# Name two things the model leaves out that made the paper's real speed-up (211× of an ideal 256×)
# differ from a prediction like yours.

# %% [markdown] nbgrader={"grade": true, "grade_id": "q1_communication", "locked": false, "points": 11, "schema_version": 3, "solution": true, "task": false}
# The bytes term of a ring all-reduce is 2(W-1)/W * n/beta, which tends to 2n/beta: each rank sends
# about twice the gradient whatever the number of GPUs, so going from 768 to 1,536 GPUs leaves it
# almost unchanged (a few percent of a TSM step on a 23 GB/s link). What grows is the latency term,
# 2(W-1)*alpha (about 15 ms at 1,536 GPUs with alpha = 5 us), and, since the global batch grows
# with the GPUs, the number of steps falls while the per-step communication does not: its share
# of the step rises. On this machine's link (loopback gloo between busy CPU processes: latency in
# the hundreds of microseconds, a bandwidth of 0.1 to a few GB/s depending on the load) the all-reduce
# takes a large share of every step (half or more), so the same GPUs would finish far later.
# (b) I3D has about twice the parameters (47 M vs 24 M), so twice the bytes per all-reduce, and
# about twice the MACs; the MAC ratio slows every step, the parameter ratio makes its communication
# larger. Left out: overlap of all-reduce with the backward pass (DDP buckets; helps), hierarchical
# all-reduce (NVLink inside a node, InfiniBand between nodes), data loading / I/O from disk (the
# paper's second bottleneck; I3D reads 4x the frames), stragglers and load imbalance, BatchNorm and
# evaluation overheads, and FLOP utilisation that differs between operators.

# %% [markdown]
# **Q2 (11 points).** At the largest batch, compare your unscaled and scaled runs. Explain with the
# argument of section 1 why the learning rate must grow with the batch when the number of epochs is
# fixed, what warm-up protects against (and whether it helped here), and why the rule cannot hold for
# arbitrarily large batches.

# %% [markdown] nbgrader={"grade": true, "grade_id": "q2_scaling_rule", "locked": false, "points": 11, "schema_version": 3, "solution": true, "task": false}
# With a fixed number of epochs, a k-times larger batch gives k times fewer steps. Each step with the
# base rate moves the weights by eta times the average gradient, about as far as ONE small-batch
# step, so the large-batch run covers about 1/k of the distance and stays under-trained (the
# unscaled run's accuracy drops). Scaling the rate by k makes one large step approximate k small
# ones (same total movement), provided the gradient changes little over those k steps. Early in
# training the weights and gradients change fast, so a k-times rate can overshoot and diverge:
# warm-up starts small and ramps to the peak while the network settles. Here, at a factor of 8 and a
# peak of 0.4, the network (with BatchNorm) did not diverge without it, so warm-up did not help and
# could cost a little (two of sixteen steps at a lower rate); it matters at larger factors and
# rates. The rule breaks when k steps can no longer be approximated by one: the batch's gradient
# noise is already small, a larger step just overshoots, and the number of steps becomes too small
# to converge (the critical batch size; Goyal: ~8k images, the paper: up to 12,288 clips).
