"""Self-checks for Lab 7 (distributed training). Hand-worked examples and invariants only, never the answer.

The numbers below are worked by hand in the check's comments: Goyal et al.'s 0.1 at 256 images
becoming 3.2 at 8k, the TSM README's 0.02 at 128 clips becoming 0.04 at 256, a 12-step schedule
with 4 warm-up steps, a data set of 10 samples on 4 ranks, two ranks holding gradients 1 and 2.
The full property tests are hidden in the notebook.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from .asserts import CheckFailed, assert_raises, assert_true, call, clock_seed, passed, seed_in_failures

__all__ = [
    "TOY_MODELS",
    "Branchy",
    "as_float",
    "as_index_list",
    "check_grad_buckets",
    "check_hierarchical_allreduce",
    "check_lr_at",
    "check_ring_allreduce",
    "check_scaled_lr",
    "check_shard_indices",
    "check_shard_indices_errors",
    "clock_seed",
    "global_rng_states",
    "last_counts",
    "seed_in_failures",
    "probe_grad_buckets",
    "probe_hierarchical",
    "probe_ring",
    "seed_global_rngs",
    "toy_loss",
    "toy_model",
]


def as_float(name: str, value) -> float:
    """A learner's number as a float (Python, NumPy or a one-element tensor), or a clear failure."""
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise CheckFailed(f"{name}: expected a number, got a tensor of shape {tuple(value.shape)}")
        return float(value.item())
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise CheckFailed(f"{name}: expected a number, got {type(value).__name__}"
                          + (" (did you forget to return it?)" if value is None else "")) from None
    return out


def _close(name: str, got, expected: float, rel: float = 1e-9, abs_: float = 1e-12) -> None:
    got = as_float(name, got)
    if not math.isclose(got, expected, rel_tol=rel, abs_tol=abs_):
        raise CheckFailed(f"{name}: expected {expected:.10g}, got {got:.10g}")


def check_scaled_lr(scaled_lr) -> None:
    """Two published examples and a batch smaller than the base."""
    # Goyal et al. 2017: lr 0.1 for 256 images -> 0.1 * 8192 / 256 = 3.2 for 8k images
    _close("scaled_lr(0.1, 256, 8192)", call("scaled_lr", scaled_lr, 0.1, 256, 8192), 3.2)
    # TSM README: lr 0.02 for batch 128 -> "a batch size of 256 ... learning rate to 0.04"
    _close("scaled_lr(0.02, 128, 256)", call("scaled_lr", scaled_lr, 0.02, 128, 256), 0.04)
    # a smaller batch scales the rate down: 0.1 * 64 / 256 = 0.025
    _close("scaled_lr(0.1, 256, 64)", call("scaled_lr", scaled_lr, 0.1, 256, 64), 0.025)
    passed("scaled_lr: the linear scaling rule on three hand-worked examples")


def check_lr_at(lr_at) -> None:
    """peak 1.0, 4 warm-up steps, 12 steps: 0.25 0.5 0.75 1.0, then a half cosine over 8 steps."""
    expected = {0: 0.25, 1: 0.5, 2: 0.75, 3: 1.0,           # (step + 1) / 4
                4: 1.0,                                     # cos(0): the decay starts at the peak
                8: 0.5,                                     # halfway through the decay: cos(pi/2) = 0
                11: 0.5 * (1 + math.cos(math.pi * 7 / 8))}  # the last step, just above zero
    for step, lr in expected.items():
        _close(f"lr_at({step}, peak_lr=1.0, warmup_steps=4, total_steps=12)",
               call("lr_at", lr_at, step, 1.0, 4, 12), lr)
    _close("lr_at(0, 0.5, warmup_steps=0, total_steps=10) (no warm-up: start at the peak)",
           call("lr_at", lr_at, 0, 0.5, 0, 10), 0.5)
    passed("lr_at: linear warm-up to the peak, then cosine decay (hand-worked 12-step schedule)")


def as_index_list(name: str, out) -> list[int]:
    """A learner's share (a 1-D integer tensor or a list of ints) as a list of ints."""
    if isinstance(out, torch.Tensor):
        if out.dim() != 1:
            raise CheckFailed(f"{name}: expected a 1-D tensor of indices, got shape {tuple(out.shape)}")
        if out.is_floating_point() or out.is_complex() or out.dtype == torch.bool:
            raise CheckFailed(f"{name}: expected integer indices, got dtype {out.dtype}")
        return [int(v) for v in out.tolist()]
    if out is None or not hasattr(out, "__iter__"):
        raise CheckFailed(f"{name}: expected a 1-D tensor or a list of indices, got {type(out).__name__}")
    vals = list(out)
    if any(isinstance(v, float) or (isinstance(v, torch.Tensor) and v.is_floating_point()) for v in vals):
        raise CheckFailed(f"{name}: expected integer indices, got floats")
    return [int(v) for v in vals]


def check_shard_indices(shard_indices) -> None:
    """10 samples on 4 ranks: 3 each, every sample present, 2 repeats, fresh each epoch."""
    shares = [as_index_list(f"shard_indices(10, rank={r}, world_size=4, epoch=0, seed=0)",
                            call("shard_indices", shard_indices, 10, r, 4, 0, 0)) for r in range(4)]
    sizes = [len(s) for s in shares]
    assert_true(sizes == [3, 3, 3, 3],
                f"10 samples on 4 ranks: every rank needs ceil(10/4) = 3 indices, got sizes {sizes}")
    flat = [i for s in shares for i in s]
    assert_true(all(0 <= i < 10 for i in flat), f"indices must lie in range(10), got {sorted(flat)}")
    assert_true(set(flat) == set(range(10)),
                f"together the ranks must cover every sample 0..9, got {sorted(set(flat))}")
    again = as_index_list("shard_indices (second call)", call("shard_indices", shard_indices, 10, 0, 4, 0, 0))
    assert_true(again == shares[0], "shard_indices must be deterministic: the same arguments gave different shares")
    other = [as_index_list("shard_indices", call("shard_indices", shard_indices, 40, 0, 2, e, 0)) for e in range(3)]
    assert_true(len({tuple(o) for o in other}) == 3,
                "rank 0's share of 40 samples was the same in epochs 0, 1 and 2: each epoch needs a fresh shuffle")
    passed("shard_indices: equal sizes with padding, every sample covered, deterministic, reshuffled per epoch")


def check_shard_indices_errors(shard_indices) -> None:
    assert_raises("shard_indices(10, rank=4, world_size=4, ...)", lambda: shard_indices(10, 4, 4, 0, 0), ValueError)
    assert_raises("shard_indices(10, rank=0, world_size=0, ...)", lambda: shard_indices(10, 0, 0, 0, 0), ValueError)
    passed("shard_indices: ValueError for a rank outside [0, world_size) and for world_size < 1")


# --------------------------------------------------------------------------------------------------
# Public helpers of the hidden tests (graded by the judge): toy models, a gloo probe, random state.
# They call the learner's code and report what came out; the verdict is computed elsewhere.
# --------------------------------------------------------------------------------------------------

class Branchy(nn.Module):
    """A strided grouped conv with bias, a frozen weight, an unused layer (its grads stay None) and a
    bias-free head. Input ``(N, 4, H, W)``, output ``(N, 3)``."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(4, 6, 3, stride=2, padding=1, groups=2)
        self.frozen = nn.Linear(6, 6)
        self.frozen.weight.requires_grad_(False)
        self.unused = nn.Linear(6, 2)
        self.head = nn.Linear(6, 3, bias=False)

    def forward(self, x):
        return self.head(torch.tanh(self.frozen(torch.relu(self.conv(x)).mean((2, 3)))))


#: the toy models of the all-reduce tests: input shape (without the batch) and number of outputs
TOY_MODELS = {"mlp": ((5,), 4), "branchy": ((4, 5, 7), 3), "linear": ((3,), 2)}


def toy_model(kind: str) -> nn.Module:
    """A float64 toy model: ``"mlp"`` (Linear 5-7, Tanh, Linear 7-4), ``"branchy"`` (``Branchy``)
    or ``"linear"`` (Linear 3-2). Load the weights you want with ``load_state_dict``."""
    if kind == "mlp":
        model = nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 4))
    elif kind == "branchy":
        model = Branchy()
    elif kind == "linear":
        model = nn.Linear(3, 2)
    else:
        raise ValueError(f"unknown toy model {kind!r}; expected one of {sorted(TOY_MODELS)}")
    return model.double()


def toy_loss(out: torch.Tensor, y: torch.Tensor, kind: str) -> torch.Tensor:
    """``"ce"``: cross-entropy of logits ``out`` (N, K) with labels ``y`` (N,); ``"mse"``: mean squared error."""
    if kind == "ce":
        return nn.functional.cross_entropy(out, y)
    if kind == "mse":
        return nn.functional.mse_loss(out, y)
    raise ValueError(f"unknown loss {kind!r}; expected 'ce' or 'mse'")


def _grads(model: nn.Module) -> list:
    return [None if p.grad is None else p.grad.detach().clone() for p in model.parameters()]


def seed_global_rngs(seed: int) -> None:
    """Seed the global random generators of torch, NumPy and Python's ``random`` with ``seed``."""
    import random

    import numpy as np

    torch.manual_seed(int(seed))
    np.random.seed(int(seed) % 2**32)
    random.seed(int(seed))


def global_rng_states() -> dict:
    """The global random states of torch, NumPy and Python's ``random``, as plain data (int64 tensors)."""
    import random

    import numpy as np

    _, keys, pos, has_gauss, gauss = np.random.get_state()
    version, state, gauss_next = random.getstate()
    return {"torch": torch.get_rng_state().to(torch.int64),
            "numpy": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "numpy_pos": [int(pos), int(has_gauss), float(gauss)],
            "python": torch.tensor(state, dtype=torch.int64), "python_gauss": gauss_next}


# --------------------------------------------------------------------------------------------------
# Collectives built by hand: probes that run the learner's code on forked gloo ranks and report
# what came out, by value. The inputs come from the caller (the judge draws them); the probes
# judge nothing. Only ``count=True`` (a probe of how the learner communicates) installs spies.
# --------------------------------------------------------------------------------------------------

_COLLECTIVES = ("all_reduce", "reduce_scatter", "reduce_scatter_tensor", "all_gather", "all_gather_into_tensor",
                "reduce", "broadcast", "all_to_all", "all_to_all_single", "gather", "scatter")
_P2P = ("send", "isend", "recv", "irecv")


class _Spy:
    """Counts calls of torch.distributed's collectives and point-to-point functions while ``on``,
    and asynchronous (``async_op=True``) all_reduce calls made while a backward pass runs."""

    def __init__(self):
        self.on = False
        self.in_backward = False
        self.counts: dict[str, int] = {}
        self.during_backward = 0
        self.depth = 0

    def reset(self):
        self.counts, self.during_backward = {}, 0

    def report(self) -> dict:
        c = self.counts
        return {"sends": c.get("send", 0) + c.get("isend", 0), "recvs": c.get("recv", 0) + c.get("irecv", 0),
                "collectives": {k: v for k, v in c.items() if k in _COLLECTIVES},
                "all_reduce_during_backward": self.during_backward}


class _Counted:
    """A spy around one of torch.distributed's functions; equal to the function it wraps (so
    ``P2POp``'s check that its op is ``isend`` or ``irecv`` holds for either)."""

    def __init__(self, spy: _Spy, name: str, orig):
        self.spy, self.name, self.orig = spy, name, orig
        self.__name__ = name
        self.__doc__ = orig.__doc__

    def __call__(self, *args, **kwargs):
        spy = self.spy
        if spy.on and not spy.depth:                     # send calls isend, recv irecv: count the outer call
            spy.counts[self.name] = spy.counts.get(self.name, 0) + 1
            async_op = kwargs.get("async_op", args[3] if len(args) > 3 else False)
            if self.name == "all_reduce" and spy.in_backward and async_op:
                spy.during_backward += 1
        spy.depth += 1
        try:
            return self.orig(*args, **kwargs)
        finally:
            spy.depth -= 1

    def __eq__(self, other):
        return other is self or other is self.orig

    def __hash__(self):
        return hash(self.orig)


def _install_spy() -> _Spy:
    """Wrap torch.distributed's public names (and the c10d module's, which they are) in a forked rank."""
    import torch.distributed as dist
    from torch.distributed import distributed_c10d as c10d

    spy = _Spy()
    for name in _COLLECTIVES + _P2P:
        orig = getattr(c10d, name, None)
        if orig is None:
            continue
        wrapper = _Counted(spy, name, orig)
        setattr(c10d, name, wrapper)
        setattr(dist, name, wrapper)
    return spy


#: what the last counting probe of this process saw, by probe: the in-kernel grade cells read it
_LAST_COUNTS: dict[str, list] = {}


def last_counts(probe: str) -> list | None:
    """The calls counted by the last ``probe_ring`` / ``probe_grad_buckets`` run with ``count=True``
    in this process: per rank, per case, the counts (``None`` if that probe has not run)."""
    return _LAST_COUNTS.get(probe)


def _split_counts(probe: str, ranks: list, key: str) -> list:
    """Keep the outputs in ``ranks``; move the counts to ``_LAST_COUNTS[probe]``."""
    counts = [[None if c is None else {k: v for k, v in c.items() if k != key} for c in rank] for rank in ranks]
    _LAST_COUNTS[probe] = counts
    return counts


def _launch(body, world_size, *args, timeout):
    from ..video.distributed import RankError, launch

    try:
        return None, launch(body, int(world_size), *args, timeout=float(timeout))
    except (RankError, TimeoutError) as err:
        return f"{type(err).__name__}: {err}"[:3000], []


def _ring_rank(rank, world, cases, fn, count):
    import torch.distributed as dist

    groups = [None if c["ranks"] is None else dist.new_group(sorted(int(r) for r in c["ranks"])) for c in cases]
    spy = _install_spy() if count else None
    out = []
    for case, group in zip(cases, groups):
        members = list(range(world)) if case["ranks"] is None else sorted(int(r) for r in case["ranks"])
        if rank in members:
            t = case["inputs"][members.index(rank)].clone()
            if spy is not None:
                spy.reset()
                spy.on = True
            try:
                fn(t, group)
            finally:
                if spy is not None:
                    spy.on = False
            out.append({"out": t, "world": len(members), **(spy.report() if spy is not None else {})})
        else:
            out.append(None)
        dist.barrier()
    return out


def probe_ring(ring_allreduce, cases: list, world_size: int = 4, count: bool = False, timeout: float = 30.0) -> dict:
    """Run ``ring_allreduce(tensor, group)`` on ``world_size`` forked gloo ranks; report every output.

    ``cases``: ``[{"ranks": None (the whole world) or a list of ranks (a group), "inputs": [one tensor
    per member, in rank order]}]``. Every rank creates every case's group, then each member calls
    ``ring_allreduce(its input's copy, group)`` (``group`` None for the world). Returns ``{"error":
    None or why the ranks failed, "ranks": [[{"out": the tensor after the call, "world": the group's
    size} or None (not a member) per case] per rank]}``; with ``count=True`` each entry also holds
    the calls the rank made during the call: ``sends``, ``recvs`` and ``collectives`` (a dict of
    counts), and ``last_counts("ring")`` returns them (with ``"world"``) afterwards."""
    _LAST_COUNTS.pop("ring", None)
    err, ranks = _launch(_ring_rank, world_size, list(cases), ring_allreduce, bool(count), timeout=timeout)
    if count and not err:
        _split_counts("ring", ranks, "out")
    return {"error": err, "ranks": ranks}


def _hier_rank(rank, world, cases, fn):
    import torch.distributed as dist

    from ..video.distributed import node_groups

    topo = [node_groups(int(c["ranks_per_node"])) for c in cases]
    out = []
    for case, (node, leaders, leader) in zip(cases, topo):
        t = case["inputs"][rank].clone()
        fn(t, node, leaders, leader)
        out.append(t)
        dist.barrier()
    return out


def probe_hierarchical(hierarchical_allreduce, cases: list, world_size: int = 4, timeout: float = 30.0) -> dict:
    """Run ``hierarchical_allreduce(tensor, node_group, leader_group, leader)`` on forked gloo ranks.

    ``cases``: ``[{"ranks_per_node": k, "inputs": [one tensor per rank]}]``; the groups come from
    ``effcourse.video.distributed.node_groups(k)``. Returns ``{"error", "ranks": [[tensor after the
    call per case] per rank]}``."""
    err, ranks = _launch(_hier_rank, world_size, list(cases), hierarchical_allreduce, timeout=timeout)
    return {"error": err, "ranks": ranks}


def _buckets_rank(rank, world, cases, per_rank, cls, count):
    spy = _install_spy() if count else None
    out = []
    for case in cases:
        model = toy_model(case["model"])
        model.load_state_dict(case["state"])
        before = [p.detach().clone() for p in model.parameters()]
        buckets = cls(model, case["bucket_bytes"])
        steps = []
        for s in range(case["x"].shape[0]):
            lo, hi = rank * per_rank, (rank + 1) * per_rank
            model.zero_grad(set_to_none=True)
            loss = toy_loss(model(case["x"][s, lo:hi]), case["y"][s, lo:hi], case["loss"])
            if spy is not None:
                spy.reset()
                spy.on = spy.in_backward = True
            try:
                loss.backward()
                if spy is not None:
                    spy.in_backward = False
                buckets.wait()
            finally:
                if spy is not None:
                    spy.on = spy.in_backward = False
            steps.append({"grads": _grads(model), **(spy.report() if spy is not None else {})})
        out.append({"steps": steps, "params_changed": any(not torch.equal(b, p.detach())
                                                          for b, p in zip(before, model.parameters()))})
    return out


def probe_grad_buckets(GradBuckets, cases: list, world_size: int, per_rank: int, count: bool = False,
                       timeout: float = 30.0) -> dict:
    """Train-step ``GradBuckets`` on ``world_size`` forked gloo ranks; report every rank's gradients.

    ``cases``: ``[{"model": toy_model kind, "state": its state_dict, "x": (steps, world_size *
    per_rank, ...), "y": (steps, world_size * per_rank, ...), "loss": "ce" | "mse", "bucket_bytes":
    int}]``. On every rank: build the model, ``buckets = GradBuckets(model, bucket_bytes)``, then per
    step zero the gradients (None), back-propagate ``toy_loss`` on the rank's slice ``[rank *
    per_rank, (rank + 1) * per_rank)`` and call ``buckets.wait()``. Returns ``{"error", "ranks":
    [[{"steps": [{"grads": [...]}], "params_changed": bool} per case] per rank]}``; with
    ``count=True`` each step also reports the calls made during backward and ``wait``
    (``all_reduce_during_backward``: all_reduce calls with ``async_op=True`` launched while backward still ran), and
    ``last_counts("buckets")`` returns them afterwards (per rank, case and step)."""
    _LAST_COUNTS.pop("buckets", None)
    err, ranks = _launch(_buckets_rank, world_size, list(cases), int(per_rank), GradBuckets, bool(count),
                         timeout=timeout)
    if count and not err:
        _LAST_COUNTS["buckets"] = [[[{k: v for k, v in st.items() if k != "grads"} for st in c["steps"]] for c in rank]
                                   for rank in ranks]
    return {"error": err, "ranks": ranks}


# ------------------------------------------------------------------------ visible self-checks (advice)

def _ints(n, rank, dtype=torch.float64):
    return torch.arange(n, dtype=dtype) * 10 + rank + 1          # rank r holds 10 i + r + 1


def check_ring_allreduce(ring_allreduce, timeout: float = 30.0) -> None:
    """2 ranks with 5 numbers, 3 ranks with 7 (3 does not divide 7), 3 ranks with 2 (a chunk is
    empty): rank r holds 10 i + r + 1, so the sum over W ranks is 10 W i + W (W + 1) / 2."""
    for world, n in ((2, 5), (3, 7), (3, 2)):
        res = probe_ring(ring_allreduce, [{"ranks": None, "inputs": [_ints(n, r) for r in range(world)]}],
                         world, timeout=timeout)
        if res["error"]:
            raise CheckFailed(f"ring_allreduce on {world} ranks, {n} numbers: {res['error']}")
        want = sum(_ints(n, r) for r in range(world))
        for r in range(world):
            got = res["ranks"][r][0]["out"]
            assert_true(torch.equal(got, want), f"ring_allreduce, {world} ranks, {n} numbers each (rank r holds "
                        f"10 i + r + 1): rank {r} holds {got.tolist()}, the sum is {want.tolist()}")
    passed("ring_allreduce: sums on 2 and 3 ranks, 3 not dividing the size, an empty chunk")


def check_hierarchical_allreduce(hierarchical_allreduce, timeout: float = 30.0) -> None:
    """4 ranks as 2 nodes of 2: rank r holds 10 i + r + 1; every rank must end with the sum."""
    res = probe_hierarchical(hierarchical_allreduce, [{"ranks_per_node": 2, "inputs": [_ints(5, r) for r in range(4)]}],
                             4, timeout=timeout)
    if res["error"]:
        raise CheckFailed(f"hierarchical_allreduce on 2 nodes x 2 ranks: {res['error']}")
    want = sum(_ints(5, r) for r in range(4))
    for r in range(4):
        got = res["ranks"][r][0]
        assert_true(torch.equal(got, want), f"hierarchical_allreduce, 2 nodes x 2 ranks: rank {r} holds "
                    f"{got.tolist()}, the sum over the 4 ranks is {want.tolist()}")
    passed("hierarchical_allreduce: 2 nodes x 2 ranks, every rank holds the sum")


def check_grad_buckets(GradBuckets, timeout: float = 30.0) -> None:
    """2 ranks, a Linear 3-2 with MSE, buckets of 8 bytes: both ranks end with the full batch's gradient."""
    g = torch.Generator().manual_seed(0)
    model = toy_model("linear")
    x = torch.randn(1, 4, 3, generator=g, dtype=torch.float64)
    y = torch.randn(1, 4, 2, generator=g, dtype=torch.float64)
    case = {"model": "linear", "state": model.state_dict(), "x": x, "y": y, "loss": "mse", "bucket_bytes": 8}
    res = probe_grad_buckets(GradBuckets, [case], 2, 2, timeout=timeout)
    if res["error"]:
        raise CheckFailed(f"GradBuckets on 2 ranks: {res['error']}")
    toy_loss(model(x[0]), y[0], "mse").backward()
    for r in range(2):
        got = res["ranks"][r][0]["steps"][0]["grads"]
        for i, (p, q) in enumerate(zip(model.parameters(), got)):
            assert_true(q is not None and torch.allclose(q, p.grad),
                        f"rank {r}: parameter {i}'s gradient after wait() is not the mean over the 2 ranks "
                        "(the gradient of the whole batch's mean loss)")
    passed("GradBuckets: 2 ranks, both hold the whole batch's gradient after wait()")
