"""Communication cost of data-parallel training: measure all-reduce times (gloo's or the learner's
ring), fit the alpha-beta model to them, and extrapolate TSM vs I3D training time from one Summit
node to 1536 GPUs with three topologies.

The alpha-beta models (a message of m bytes costs alpha + m / beta):

* ``ring_seconds``: ring all-reduce, 2 (W - 1) (alpha + n / (W beta)); the latency term grows with W.
* ``tree_seconds``: a pipelined binary tree (reduce up, broadcast down; NCCL's double binary trees
  approach it): 2 ceil(log2 W) alpha + 2 n / beta; the latency term grows with log W.
* ``hierarchical_seconds``: reduce inside each node of k GPUs, ring all-reduce over the W / k node
  leaders, broadcast inside: 2 ((k - 1) alpha_in + n / beta_in) + ring(n, W / k, beta, alpha).

Any such ``ring(n, p, bandwidth, latency)`` is linear in ``latency`` and in ``1 / bandwidth``, so
``fit_alpha_beta`` fits those two numbers by (relative) least squares on the features
``ring(n, p, inf, 1)`` and ``ring(n, p, 1, 0)``.
"""
from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

__all__ = ["KINETICS", "NVLINK", "SUMMIT_LINK", "extrapolate", "fit_alpha_beta", "hierarchical_seconds",
           "measure_allreduce", "resnet50_costs", "ring_seconds", "tree_seconds"]

Ring = Callable[[float, int, float, float], float]

#: The paper's workload and reference point, with their sources.
KINETICS = {
    "train_clips": 240_000,        # lecture: "Kinetics (240k training videos) x 100 epoch"
    "epochs": 100,                 # lecture
    "frames": 8,                   # lecture: "8-frame ResNet-50 TSM"
    "clips_per_gpu": 8,            # paper abstract: 12,288 clips on 1,536 GPUs = 8 per GPU
    "one_node_gpus": 6,            # lecture: one Summit node has 6 V100 GPUs
    "one_node_seconds": (49 * 60 + 50) * 60,   # lecture: 49 h 50 min on 1 node (the abstract says 49 h 55 min)
}

#: Summit's network as the lecture gives it: dual-rail EDR InfiniBand, 23 GB/s. The latency is an
#: assumption (a few microseconds is typical of InfiniBand), not a number from the paper.
SUMMIT_LINK = {"bandwidth": 23e9, "latency": 5e-6}

#: Inside a Summit node: NVLink 2.0 between the GPUs, taken as 50 GB/s and 2 us (assumptions of the
#: same kind: the order of magnitude of NVLink, not numbers from the paper).
NVLINK = {"bandwidth": 50e9, "latency": 2e-6}


def ring_seconds(n_bytes: float, world_size: int, bandwidth: float, latency: float) -> float:
    """Ring all-reduce of ``n_bytes`` over ``world_size`` ranks: 2 (W - 1) (alpha + n / (W beta))."""
    w = int(world_size)
    return 0.0 if w <= 1 else 2 * (w - 1) * (latency + n_bytes / (w * bandwidth))


def tree_seconds(n_bytes: float, world_size: int, bandwidth: float, latency: float) -> float:
    """Pipelined binary-tree all-reduce: 2 ceil(log2 W) alpha + 2 n / beta (0 for W = 1)."""
    w = int(world_size)
    return 0.0 if w <= 1 else 2 * math.ceil(math.log2(w)) * latency + 2 * n_bytes / bandwidth


def hierarchical_seconds(n_bytes: float, world_size: int, bandwidth: float, latency: float,
                         per_node: int = 6, inside: dict | None = None) -> float:
    """Reduce inside nodes of ``per_node`` GPUs (link ``inside``, default ``NVLINK``), ring all-reduce
    over the W / per_node leaders (``bandwidth``, ``latency``), broadcast inside:
    2 ((k - 1) alpha_in + n / beta_in) + ring(n, W / k). W must be a multiple of k (or below it)."""
    inside = inside or NVLINK
    w, k = int(world_size), min(int(per_node), int(world_size))
    if w % k:
        raise ValueError(f"world_size {w} is not a multiple of per_node {k}")
    local = 0.0 if k == 1 else 2 * ((k - 1) * inside["latency"] + n_bytes / inside["bandwidth"])
    return local + ring_seconds(n_bytes, w // k, bandwidth, latency)


def measure_allreduce(sizes: Sequence[int], repeats: int = 15, warmup: int = 3,
                      fns: dict[str, Callable] | None = None) -> dict[str, dict[int, float]]:
    """Median seconds of one all-reduce of ``n`` bytes (float32) for each ``n`` in ``sizes``.

    ``fns``: ``{name: fn(tensor)}`` all-reduces to time (default ``{"gloo": dist.all_reduce}``),
    interleaved: for each size and repetition every function runs once. Call it on every rank of
    a process group. Each repetition starts after a barrier; its time is the slowest rank's (a MAX
    all-reduce of the timings, outside the timed region). Returns ``{name: {n: seconds}}``.
    """
    fns = fns or {"gloo": dist.all_reduce}
    out: dict[str, dict[int, float]] = {name: {} for name in fns}
    for n in sizes:
        buf = torch.ones(max(1, int(n) // 4))
        for fn in fns.values():
            for _ in range(warmup):
                fn(buf)
        times: dict[str, list] = {name: [] for name in fns}
        for _ in range(repeats):
            for name, fn in fns.items():
                dist.barrier()
                t0 = time.perf_counter()
                fn(buf)
                times[name].append(time.perf_counter() - t0)
        for name in fns:
            slowest = torch.tensor(times[name], dtype=torch.float64)
            dist.all_reduce(slowest, op=dist.ReduceOp.MAX)
            out[name][int(n)] = statistics.median(slowest.tolist())
    return out


def fit_alpha_beta(ring: Ring, sizes: Sequence[float], seconds: Sequence[float],
                   world_size: int) -> tuple[float, float]:
    """Fit ``(latency, bandwidth)`` of the model ``ring`` to measured all-reduce times.

    Minimises the squared *relative* error over the measurements (times span orders of magnitude),
    with latency >= 0 and bandwidth > 0. Returns latency in seconds and bandwidth in bytes/s.
    When noisy times do not grow with the message size, the best fit is latency alone: the
    bandwidth returned is then ``math.inf`` (the plot and the extrapolation still run).
    """
    sizes = [float(n) for n in sizes]
    t = np.asarray(seconds, dtype=float)
    if len(sizes) != len(t) or len(t) < 2:
        raise ValueError("need at least two (size, seconds) measurements of the same length")
    if not np.all(t > 0):
        raise ValueError(f"measured times must be positive, got {t.tolist()}")
    a = np.array([float(ring(n, world_size, math.inf, 1.0)) for n in sizes])   # seconds per second of latency
    b = np.array([float(ring(n, world_size, 1.0, 0.0)) for n in sizes])        # seconds per (second / byte)
    if not (np.all(a >= 0) and np.all(b > 0)):
        raise ValueError("the cost model must grow with the latency and with the bytes sent "
                         f"(latency features {a.tolist()}, bandwidth features {b.tolist()})")
    w = 1.0 / t
    A = np.stack([a * w, b * w], axis=1)
    (alpha, inv_bw), *_ = np.linalg.lstsq(A, t * w, rcond=None)
    if alpha < 0:                                    # refit the bandwidth alone
        alpha, inv_bw = 0.0, float(np.dot(b * w, t * w) / np.dot(b * w, b * w))
    elif inv_bw <= 0:                                # refit the latency alone (b > 0 and t > 0: inv_bw > 0 above)
        alpha, inv_bw = float(np.dot(a * w, t * w) / np.dot(a * w, a * w)), 0.0
    return float(alpha), (math.inf if inv_bw == 0 else float(1.0 / inv_bw))


def _conv_macs(model: nn.Module, x: torch.Tensor) -> dict[nn.Conv2d, int]:
    macs: dict[nn.Conv2d, int] = {}

    def hook(mod, inp, out):
        macs[mod] = out.numel() * (mod.in_channels // mod.groups) * mod.kernel_size[0] * mod.kernel_size[1]

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.Conv2d)]
    try:
        model(x)
    finally:
        for h in handles:
            h.remove()
    return macs


def resnet50_costs(n_frames: int = 8, size: int = 224, num_classes: int = 400, time_kernel: int = 3) -> dict[str, dict]:
    """Parameters and MACs per clip of the paper-scale models, counted (no weights, meta tensors).

    * ``"TSM"``: torchvision's ResNet-50 on ``n_frames`` frames (the shift adds nothing).
    * ``"I3D"``: its 3D twin, every conv with a k x k kernel (k > 1: the 3x3s and the 7x7 stem)
      made ``time_kernel`` x k x k with temporal padding and stride 1, so it keeps all frames:
      those convs' parameters and MACs times ``time_kernel``; 1x1 convs, BN and fc unchanged.
    Returns ``{"TSM": {"params", "macs"}, "I3D": {"params", "macs"}}``.
    """
    import torchvision

    with torch.device("meta"):
        net = torchvision.models.resnet50(num_classes=num_classes)
        x = torch.empty(n_frames, 3, size, size)
    with torch.no_grad():
        macs = _conv_macs(net, x)
    fc = net.fc.in_features * net.fc.out_features * n_frames
    params = sum(p.numel() for p in net.parameters())
    big = [m for m in macs if m.kernel_size[0] > 1]
    extra_params = sum(m.weight.numel() for m in big) * (time_kernel - 1)
    extra_macs = sum(macs[m] for m in big) * (time_kernel - 1)
    tsm_macs = sum(macs.values()) + fc
    return {"TSM": {"params": params, "macs": tsm_macs},
            "I3D": {"params": params + extra_params, "macs": tsm_macs + extra_macs}}


def extrapolate(ring: Ring, costs: dict[str, dict], gpus: Sequence[int], bandwidth: float, latency: float,
                workload: dict | None = None, bytes_per_param: int = 4,
                calibration_link: dict | None = None) -> list[dict]:
    """Predicted training time of each model in ``costs`` on each GPU count in ``gpus``.

    The model (its assumptions are the lab's to state): every GPU holds ``clips_per_gpu`` clips per
    step (weak scaling: the global batch grows with the GPUs), a step costs compute + one ring
    all-reduce of all gradients (``ring(params * bytes_per_param, p, bandwidth, latency)``, flat
    ring over all GPUs, no overlap with the backward pass, data loading free), TSM's compute per
    step is calibrated so that one node, communicating over ``calibration_link`` (default: the
    link being modelled), matches the paper's time, and I3D's compute is TSM's times their MAC
    ratio (the same FLOP/s). Rows: ``{"gpus", "model", "hours", "minutes", "speedup",
    "efficiency", "comm_share"}`` with the speedup relative to the same model on one node.
    """
    wl = dict(KINETICS, **(workload or {}))
    node = wl["one_node_gpus"]

    def steps(p):
        return math.ceil(wl["train_clips"] * wl["epochs"] / (wl["clips_per_gpu"] * p))

    def comm(model, p, link=None):
        link = link or {"bandwidth": bandwidth, "latency": latency}
        return float(ring(costs[model]["params"] * bytes_per_param, p, link["bandwidth"], link["latency"]))

    step_node = wl["one_node_seconds"] / steps(node)
    compute_tsm = step_node - comm("TSM", node, calibration_link)
    if compute_tsm <= 0:
        raise ValueError("with the calibration link, one node's all-reduce alone takes longer than the paper's "
                         "whole step: calibrate on a faster link (calibration_link=SUMMIT_LINK)")
    rows = []
    for model in costs:
        compute = compute_tsm * costs[model]["macs"] / costs["TSM"]["macs"]
        base = steps(node) * (compute + comm(model, node))
        for p in gpus:
            c = comm(model, p)
            total = steps(p) * (compute + c)
            rows.append({"gpus": int(p), "model": model, "hours": total / 3600, "minutes": total / 60,
                         "speedup": base / total, "efficiency": base / total / (p / node),
                         "comm_share": c / (compute + c)})
    return rows
