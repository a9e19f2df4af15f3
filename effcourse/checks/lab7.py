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

from .asserts import CheckFailed, assert_raises, assert_true, call, passed

__all__ = [
    "TOY_MODELS",
    "Branchy",
    "as_float",
    "as_index_list",
    "check_allreduce_mean_grads",
    "check_lr_at",
    "check_ring_allreduce_seconds",
    "check_scaled_lr",
    "check_shard_indices",
    "check_shard_indices_errors",
    "global_rng_states",
    "probe_allreduce_mean_grads",
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
    assert_true(sizes == [3, 3, 3, 3], f"10 samples on 4 ranks: every rank needs ceil(10/4) = 3 indices, got sizes {sizes}")
    flat = [i for s in shares for i in s]
    assert_true(all(0 <= i < 10 for i in flat), f"indices must lie in range(10), got {sorted(flat)}")
    assert_true(set(flat) == set(range(10)), f"together the ranks must cover every sample 0..9, got {sorted(set(flat))}")
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


def _two_ranks_body(rank, world_size, fn):
    model = nn.Sequential(nn.Linear(3, 2), nn.ReLU(), nn.Linear(2, 1))
    model[2].weight.requires_grad_(False)           # frozen: no gradient
    for p in model.parameters():
        if p.requires_grad:
            p.grad = torch.full_like(p, float(rank + 1))   # rank 0 holds 1s, rank 1 holds 2s
    before = [p.detach().clone() for p in model.parameters()]
    call("allreduce_mean_grads", fn, model)
    return {"grads": [None if p.grad is None else p.grad.clone() for p in model.parameters()],
            "changed": any(not torch.equal(b, p.detach()) for b, p in zip(before, model.parameters()))}


def check_allreduce_mean_grads(allreduce_mean_grads, timeout: float = 60.0) -> None:
    """Two ranks over gloo: gradients of 1s and 2s must both become 1.5s; a None gradient stays None."""
    from ..video.distributed import RankError, launch

    try:
        out = launch(_two_ranks_body, 2, allreduce_mean_grads, timeout=timeout)
    except (RankError, TimeoutError) as err:
        raise CheckFailed(f"allreduce_mean_grads on 2 ranks over gloo failed: {err}") from None
    for r, res in enumerate(out):
        assert_true(not res["changed"], f"rank {r}: allreduce_mean_grads changed the parameters' values; only .grad may change")
        for i, g in enumerate(res["grads"]):
            if i == 2:
                assert_true(g is None, f"rank {r}: a frozen parameter's .grad (None) must stay None")
                continue
            assert_true(g is not None, f"rank {r}: parameter {i} lost its gradient")
            assert_true(torch.allclose(g, torch.full_like(g, 1.5)),
                        f"rank {r}: ranks held gradients of 1s and 2s, so the mean is 1.5 everywhere; parameter {i} "
                        f"has {g.flatten()[:4].tolist()}...")
    passed("allreduce_mean_grads: 2 ranks over gloo, gradients 1 and 2 averaged to 1.5 on both, None left alone")


def check_ring_allreduce_seconds(ring_allreduce_seconds) -> None:
    """p = 1 costs nothing; 1 MB on 4 ranks: 6 steps of (10 us + 250 kB / 1 GB/s) = 1.56 ms."""
    _close("ring_allreduce_seconds(1e6, world_size=1, ...)",
           call("ring_allreduce_seconds", ring_allreduce_seconds, 1e6, 1, 1e9, 1e-5), 0.0)
    _close("ring_allreduce_seconds(1e6 bytes, world_size=4, bandwidth=1e9, latency=1e-5)",
           call("ring_allreduce_seconds", ring_allreduce_seconds, 1e6, 4, 1e9, 1e-5), 1.56e-3)
    passed("ring_allreduce_seconds: a single rank is free; the hand-worked 4-rank example")


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


def _probe_rank(rank, world_size, cases, per_rank, fn):
    from torch.nn.parallel import DistributedDataParallel

    out = []
    for case in cases:
        lo, hi = rank * per_rank, (rank + 1) * per_rank
        xs, ys = case["x"][lo:hi], case["y"][lo:hi]
        model = toy_model(case["model"])
        model.load_state_dict(case["state"])
        toy_loss(model(xs), ys, case["loss"]).backward()
        call("allreduce_mean_grads", fn, model)
        twin = toy_model(case["model"])
        twin.load_state_dict(case["state"])
        ddp = DistributedDataParallel(twin, find_unused_parameters=case["model"] == "branchy")
        toy_loss(ddp(xs), ys, case["loss"]).backward()
        out.append({"grads": _grads(model), "ddp": _grads(ddp.module),
                    "params": [p.detach().clone() for p in model.parameters()]})
    return out


def probe_allreduce_mean_grads(allreduce_mean_grads, cases: list, world_size: int, per_rank: int,
                               timeout: float = 90.0) -> dict:
    """Run ``allreduce_mean_grads`` on ``world_size`` gloo ranks forked from this process; report, by value.

    ``cases``: plain specs ``{"model": toy_model kind, "state": its state_dict, "x": inputs, "y":
    targets, "loss": "ce" | "mse"}`` holding ``world_size * per_rank`` samples. On every rank and for
    every case, rank ``r`` builds the model, back-propagates ``toy_loss`` on samples ``[r * per_rank,
    (r + 1) * per_rank)`` and calls ``allreduce_mean_grads(model)``; a ``DistributedDataParallel``
    twin does the same step for comparison. Returns ``{"error": None or why the ranks failed,
    "ranks": [[{"grads": [...], "ddp": [...], "params": [...]} per case] per rank]}`` (a gradient
    that is None stays None). It judges nothing: what the gradients should be is for the caller."""
    from ..video.distributed import RankError, launch

    try:
        ranks = launch(_probe_rank, int(world_size), list(cases), int(per_rank), allreduce_mean_grads,
                       timeout=float(timeout))
    except (RankError, TimeoutError) as err:
        return {"error": f"{type(err).__name__}: {err}"[:3000], "ranks": []}
    return {"error": None, "ranks": ranks}


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
            "numpy": torch.from_numpy(np.asarray(keys, dtype=np.int64)), "numpy_pos": [int(pos), int(has_gauss), float(gauss)],
            "python": torch.tensor(state, dtype=torch.int64), "python_gauss": gauss_next}
