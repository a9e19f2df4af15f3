"""Data-parallel training on PyTorch's own distributed engine: ``torch.distributed`` (gloo on CPU,
NCCL on GPUs), ``DistributedDataParallel`` and ``DistributedSampler``. The plumbing of Lab 7.

Nothing here implements an exercise and there is no home-made collective: gradients are averaged
by DDP or by the learner's ``GradBuckets`` (its ``wait`` passed as ``sync``); learning rates come from the learner's
functions, passed in as ``lr_fn``; shards come from ``DistributedSampler``.

* ``launch(fn, world_size, *args)`` runs ``fn(rank, world_size, *args)`` in ``world_size``
  processes *forked* from this one (so ``fn`` may be defined in a notebook), each a member of one
  process group, and returns every rank's result. Rendezvous: rank 0 hosts a ``TCPStore`` on
  127.0.0.1 at a free port. The ranks' stdout and stderr go to files (Jupyter would forward them
  into the cell, and nbgrader scores a grade cell with stderr output 0). The process group is
  always destroyed; ranks still running after ``timeout`` seconds (a collective that only some
  ranks call waits forever) are killed and ``launch`` raises ``TimeoutError``.
* ``init_from_env(backend)`` joins the process group of a process that ``torchrun`` started.
* ``clip_model(kind, ...)`` builds the lab's models: ``"tsm"`` (from the learner's Lab 1
  ``ResidualShift`` and ``segment_consensus``), ``"frames2d"`` (TSM's cost twin without the shift)
  and ``"i3d"`` (the 3D twin). All take clips ``(N, T, C, H, W)`` and return logits ``(N, K)``.
* ``train_rank(model, dataset, lr_fn, cfg, sync)`` is one rank's training loop;
  ``evaluate(model, dataset)`` scores each rank's share and sums the counts with ``all_reduce``.
"""
from __future__ import annotations

import dataclasses
import datetime
import json
import logging
import math
import os
import shutil
import socket
import sys
import tempfile
import time
import traceback
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from ..training import History, eval_mode
from .models import WIDTHS, ClipClassifier, resnet2d, resnet3d
from .surgery import insert_shift
from .threed import ChannelsFirst

__all__ = [
    "CLIP_MODELS",
    "RankError",
    "TrainConfig",
    "clip_model",
    "evaluate",
    "free_port",
    "init_from_env",
    "launch",
    "max_param_difference",
    "node_groups",
    "param_bytes",
    "rank_and_world",
    "train_rank",
]

CLIP_MODELS = ("tsm", "frames2d", "i3d")


class RankError(RuntimeError):
    """A rank of ``launch`` raised an exception or died; the message holds that rank's traceback."""


# --------------------------------------------------------------------------------------------------
# Starting ranks: forked from a notebook (launch) or by torchrun (init_from_env)
# --------------------------------------------------------------------------------------------------

def rank_and_world() -> tuple[int, int]:
    """``(rank, world_size)`` of this process: ``(0, 1)`` outside a process group."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _loopback() -> str | None:
    """The loopback interface's name ("lo" on Linux, "lo0" on macOS), if the OS lists one."""
    try:
        names = [name for _, name in socket.if_nameindex()]
    except (OSError, AttributeError):
        return None
    return next((n for n in names if n in ("lo", "lo0")), None)


def _rank_main(rank: int, world_size: int, port: int, backend: str, timeout: float, threads: int, folder: str,
               fn: Callable, args: tuple) -> None:
    """The body of one forked rank: join the group, run ``fn``, save its result or its error."""
    # The rank's own output goes to files, never to the notebook: Jupyter forwards a process's stderr
    # into the running cell, and nbgrader scores a grade cell with any stderr output 0.
    for fd, name in ((1, "out"), (2, "err.log")):
        target = os.open(os.path.join(folder, f"{rank}.{name}"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(target, fd)
        os.close(target)
    sys.stdout = open(1, "w", buffering=1, encoding="utf-8", closefd=False)  # noqa: SIM115 - for the rank's life
    sys.stderr = open(2, "w", buffering=1, encoding="utf-8", closefd=False)  # noqa: SIM115
    torch.set_num_threads(max(1, int(threads)))
    os.environ["EFFCOURSE_LIVE"] = "0"                    # a forked rank never draws into the notebook
    if "GLOO_SOCKET_IFNAME" not in os.environ and _loopback():
        os.environ["GLOO_SOCKET_IFNAME"] = _loopback()    # every rank is on this machine: talk over loopback
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank),
                      WORLD_SIZE=str(world_size), LOCAL_WORLD_SIZE=str(world_size))

    def report(err: BaseException) -> None:
        path = os.path.join(folder, f"{rank}.err")
        if not os.path.exists(path):
            with open(path, "w", encoding="utf-8") as fh:
                json.dump({"type": type(err).__name__, "message": str(err), "time": time.time(),
                           "traceback": traceback.format_exc()}, fh)

    try:
        store = dist.TCPStore("127.0.0.1", port, world_size, is_master=rank == 0,
                              timeout=datetime.timedelta(seconds=timeout))      # rank 0 hosts the rendezvous
        dist.init_process_group(backend, store=store, rank=rank, world_size=world_size,
                                timeout=datetime.timedelta(seconds=timeout))
        try:
            out = fn(rank, world_size, *args)
        except BaseException as err:
            report(err)                       # before leaving the group: the others fail only after this
            raise
        finally:
            dist.destroy_process_group()
        torch.save(out, os.path.join(folder, f"{rank}.pt"))
    except BaseException as err:
        report(err)
        raise


_PEER_GONE = ("Connection closed by peer", "Connection reset by peer", "Broken pipe", "Timed out waiting")


def _first_error(folder: Path, world_size: int) -> tuple[int, dict] | None:
    """The error that started it: a NotImplementedError (an unfilled stub) first, else the earliest."""
    errs = []
    for r in range(world_size):
        f = folder / f"{r}.err"
        if f.exists():
            try:
                errs.append((r, json.loads(f.read_text(encoding="utf-8"))))
            except (OSError, ValueError):
                continue
    if not errs:
        return None
    stub = [e for e in errs if e[1]["type"] == "NotImplementedError"]
    # a rank that loses its peers fails with a connection error: the cause is the other rank's error
    own = [e for e in errs if not any(s in e[1]["message"] for s in _PEER_GONE)]
    return (stub or sorted(own or errs, key=lambda e: e[1]["time"]))[0]


def _reap(processes: list) -> None:
    for p in processes:
        if p.is_alive():
            p.kill()
    for p in processes:
        p.join(5)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that no process listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def launch(fn: Callable[..., Any], world_size: int, *args: Any, backend: str = "gloo", timeout: float = 120.0,
           threads: int = 1) -> list[Any]:
    """Run ``fn(rank, world_size, *args)`` on ``world_size`` forked ranks; return their results in rank order.

    Each rank joins a process group (``backend``, default gloo: CPU) before ``fn`` runs and leaves it
    after, and uses ``threads`` CPU threads. Rank 0 hosts the rendezvous on 127.0.0.1 at a free port.
    Results travel through ``torch.save`` files, so return tensors, numbers, lists or dicts. The
    ranks' own stdout and stderr go to files, not to this process's output. An exception in a rank
    is re-raised here as ``RankError`` with that rank's traceback (``NotImplementedError`` as
    itself); after ``timeout`` seconds every rank still running is killed and ``TimeoutError`` is
    raised. Needs the ``fork`` start method (Linux, macOS); on Windows use WSL, or torchrun.
    """
    world_size = int(world_size)
    if world_size < 1:
        raise ValueError(f"world_size must be >= 1, got {world_size}")
    if not callable(fn):
        raise TypeError(f"fn must be a function fn(rank, world_size, ...), got {type(fn).__name__}")
    if "fork" not in mp.get_all_start_methods():
        raise RuntimeError("launch forks its ranks, and this platform cannot fork (Windows): use WSL, or write "
                           "the rank function to a file and start it with torchrun")
    if dist.is_initialized():
        raise RuntimeError("launch starts its own process group; call it from a process that is not a rank")
    for attempt in range(3):
        try:
            return _launch_once(fn, world_size, args, backend, timeout, threads)
        except _PortTaken:
            if attempt == 2:
                raise RankError("three free ports were taken by other programs before rank 0 could listen "
                                "on them; try again") from None
    raise AssertionError("unreachable")


class _PortTaken(Exception):
    """Rank 0 could not listen on the port: another program took it after ``free_port`` chose it."""


def _launch_once(fn, world_size: int, args: tuple, backend: str, timeout: float, threads: int) -> list[Any]:
    folder = Path(tempfile.mkdtemp(prefix="effcourse-ranks-"))
    ctx = None
    spawn_log = logging.getLogger("torch.multiprocessing.spawn")
    level = spawn_log.level
    spawn_log.setLevel(logging.ERROR)                     # "Terminating process ... via SIGTERM" is ours to report
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)   # Python >= 3.12 warns on fork with threads
            ctx = mp.start_processes(_rank_main, args=(world_size, free_port(), backend, float(timeout), threads,
                                                       str(folder), fn, args),
                                     nprocs=world_size, join=False, start_method="fork")
        deadline = time.monotonic() + timeout
        while True:
            try:
                if ctx.join(timeout=0.2):
                    break
            except (mp.ProcessRaisedException, mp.ProcessExitedException) as err:
                _reap(ctx.processes)
                first = _first_error(folder, world_size)
                if first is None:
                    raise RankError(f"a rank died without an error report: {err}") from None
                r, e = first
                if e["type"] == "NotImplementedError":
                    raise NotImplementedError(e["message"]) from None
                if r == 0 and "address already in use" in e["message"].lower():
                    raise _PortTaken() from None
                tb = e["traceback"].strip().splitlines()
                log = folder / f"{r}.err.log"
                if log.exists() and log.stat().st_size:
                    tb += ["--- the rank's stderr (tail) ---"] + log.read_text(errors="replace").splitlines()[-8:]
                hint = ""
                if any(s in e["message"] for s in _PEER_GONE):
                    hint = ("\n(this rank waited in a collective while another rank left the process group: "
                            "is there a collective that only some ranks call?)")
                raise RankError(f"rank {r} of {world_size} raised {e['type']}: {e['message']}{hint}\n"
                                + "\n".join(tb[-20:])) from None
            if time.monotonic() > deadline:
                alive = [r for r, p in enumerate(ctx.processes) if p.is_alive()]
                _reap(ctx.processes)
                raise TimeoutError(f"rank(s) {alive} of {world_size} were still running after {timeout:g} s and were "
                                   "killed. A collective that only some ranks call (or that ranks call in a different "
                                   "order or with different sizes) waits forever.")
        return [torch.load(folder / f"{r}.pt", weights_only=False) for r in range(world_size)]
    finally:
        spawn_log.setLevel(level)
        if ctx is not None:
            _reap(ctx.processes)
        shutil.rmtree(folder, ignore_errors=True)


def init_from_env(backend: str = "auto", timeout: float = 600.0) -> tuple[int, int, torch.device]:
    """Join the process group of a process started by ``torchrun`` (it sets RANK, WORLD_SIZE,
    LOCAL_RANK, MASTER_ADDR and MASTER_PORT). ``backend="auto"``: NCCL when CUDA is available, else
    gloo. Returns ``(rank, world_size, device)``, the device being ``cuda:LOCAL_RANK`` or the CPU.
    Without torchrun's variables it runs alone: ``(0, 1, device)`` and no process group.
    """
    use_cuda = torch.cuda.is_available() and backend in ("auto", "nccl")
    if backend == "auto":
        backend = "nccl" if use_cuda else "gloo"
    if backend == "nccl" and not torch.cuda.is_available():
        raise RuntimeError("backend 'nccl' needs CUDA GPUs; use --backend gloo on a CPU")
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = torch.device(f"cuda:{local_rank}") if backend == "nccl" else torch.device("cpu")
    if backend == "nccl":
        torch.cuda.set_device(device)
    if "WORLD_SIZE" not in os.environ:
        return 0, 1, device
    dist.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout))
    return dist.get_rank(), dist.get_world_size(), device


# --------------------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------------------

def _torchvision_backbone(arch: str, num_classes: int, in_channels: int, pretrained: bool) -> nn.Module:
    import torchvision

    if arch not in ("resnet18", "resnet34", "resnet50", "resnet101"):
        raise ValueError(f"unknown arch {arch!r}: use 'small' or a torchvision ResNet (resnet18/34/50/101)")
    weights = "DEFAULT" if pretrained else None
    net = getattr(torchvision.models, arch)(weights=weights)
    if in_channels != 3:
        net.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
    net.fc = nn.Linear(net.fc.in_features, num_classes)
    return net


def clip_model(kind: str, n_frames: int, num_classes: int = 8, in_channels: int = 1, widths=WIDTHS,
               arch: str = "small", lab1: dict | None = None, pretrained: bool = False,
               seed: int | None = 0) -> nn.Module:
    """A clip classifier ``(N, T, C, H, W) -> (N, K)``, seeded with ``seed`` (None: not reseeded).

    * ``"tsm"``: a 2D ResNet (``arch``: ``"small"`` = ``resnet2d(widths)``, or a torchvision ResNet)
      with the learner's Lab 1 ``ResidualShift`` in every residual block and the learner's
      ``segment_consensus`` (``lab1`` maps those names to them; see ``effcourse.learner``).
    * ``"frames2d"``: TSM's cost twin without the shift: the same small ResNet run frame by frame
      (1x3x3 convs) with a global average over time, space included. Same parameters and MACs as
      TSM; it cannot see the order of frames.
    * ``"i3d"``: the 3D twin (every 3x3 conv 3x3x3): about 3x the parameters and MACs.
    """
    if kind not in CLIP_MODELS:
        raise ValueError(f"unknown model kind {kind!r}; use one of {CLIP_MODELS}")
    if seed is not None:
        torch.manual_seed(seed)
    if kind == "tsm":
        if not lab1 or "ResidualShift" not in lab1 or "segment_consensus" not in lab1:
            raise ValueError("kind='tsm' needs your Lab 1 functions: "
                             "lab1={'ResidualShift': ..., 'segment_consensus': ...}"
                             " (effcourse.learner.load('.../lab1_temporal_shift.ipynb', [...]))")
        if arch == "small":
            backbone = resnet2d(num_classes, in_channels, widths)
        else:
            backbone = _torchvision_backbone(arch, num_classes, in_channels, pretrained)
        insert_shift(backbone, lab1["ResidualShift"], n_frames)
        return ClipClassifier(backbone, n_frames, lab1["segment_consensus"])
    if arch != "small":
        raise ValueError(f"kind={kind!r} exists for arch='small' only (a 3D or frame-wise twin of the course's ResNet)")
    return ChannelsFirst(resnet3d(num_classes, in_channels, widths, time_kernel=1 if kind == "frames2d" else 3))


def param_bytes(model: nn.Module) -> int:
    """Bytes of the trainable parameters: what one data-parallel step all-reduces (gradients have
    the parameters' shapes and dtype)."""
    return sum(p.numel() * p.element_size() for p in model.parameters() if p.requires_grad)


def max_param_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    """Largest absolute difference between two state dicts with the same keys (floating entries)."""
    if a.keys() != b.keys():
        raise ValueError("the two state dicts have different keys")
    diffs = [(a[k].double() - b[k].double()).abs().max().item() for k in a if a[k].is_floating_point()]
    return max(diffs, default=0.0)


# --------------------------------------------------------------------------------------------------
# One rank's training loop, and evaluation
# --------------------------------------------------------------------------------------------------

@dataclasses.dataclass
class TrainConfig:
    """One data-parallel run; every rank gets the same."""

    batch_per_rank: int = 16        # clips per rank and step; the global batch is world_size times this
    epochs: float = 1.0             # passes over the training set (a fraction stops part-way)
    max_steps: int | None = None    # stop after this many optimizer steps (None: all the epochs)
    momentum: float = 0.9           # SGD momentum (Goyal et al. 2017 use 0.9)
    weight_decay: float = 1e-4
    seed: int = 0                   # DistributedSampler's shuffling
    freeze_bn: bool = False         # BatchNorm normalises with its running statistics (eval mode)
    num_workers: int = 0            # DataLoader workers per rank
    amp: bool = False               # bfloat16 autocast on CUDA

    def __post_init__(self):
        if int(self.batch_per_rank) < 1:
            raise ValueError(f"batch_per_rank must be >= 1, got {self.batch_per_rank}")
        if not self.epochs > 0:
            raise ValueError(f"epochs must be > 0, got {self.epochs}")
        if self.max_steps is not None and int(self.max_steps) < 1:
            raise ValueError(f"max_steps must be >= 1 or None, got {self.max_steps}")


def _unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def _set_train(model: nn.Module, freeze_bn: bool) -> None:
    model.train()
    if freeze_bn:
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.eval()


def train_rank(model: nn.Module, dataset: Dataset, lr_fn: Callable[[int, int], float], cfg: TrainConfig,
               sync: Callable[[nn.Module], Any] | None = None, device: torch.device | str = "cpu",
               log: Callable[[str], Any] | None = None, log_every: int = 0) -> History:
    """Train ``model`` on this rank's share of ``dataset`` with SGD (momentum ``cfg.momentum``).

    Runs inside a process group of W ranks (or alone: W = 1). Each step takes ``cfg.batch_per_rank``
    clips from this rank's ``DistributedSampler`` shard (reshuffled every epoch with
    ``set_epoch``), computes the mean cross-entropy, backpropagates, then synchronises gradients:
    ``sync=None`` when ``model`` is wrapped in ``DistributedDataParallel`` (DDP all-reduces during
    backward) or runs alone; otherwise ``sync(model)`` is called after ``backward`` (the learner's
    ``GradBuckets.wait``). The learning rate of step ``s`` of ``S`` is ``lr_fn(s, S)``.

    Returns a ``History`` with the series ``"loss"``, ``"lr"``, ``"step_seconds"`` and
    ``"sync_seconds"`` at steps 1, 2, ..., and ``meta`` ``steps``, ``steps_per_epoch``,
    ``global_batch``, ``world_size``. ``log(message)`` is called every ``log_every`` steps (0: never).
    A rank forked by ``launch`` draws no live curve; to send its history back, return ``hist.to_dict()``.
    """
    rank, world = rank_and_world()
    device = torch.device(device)
    sampler = DistributedSampler(dataset, num_replicas=world, rank=rank, shuffle=True, seed=cfg.seed)
    loader = DataLoader(dataset, batch_size=int(cfg.batch_per_rank), sampler=sampler, drop_last=True,
                        num_workers=cfg.num_workers, pin_memory=device.type == "cuda",
                        persistent_workers=cfg.num_workers > 0)
    per_epoch = len(loader)
    if per_epoch == 0:
        raise ValueError(f"a rank's shard ({len(sampler)} clips) is smaller than batch_per_rank = {cfg.batch_per_rank}")
    total = max(1, math.ceil(cfg.epochs * per_epoch))
    if cfg.max_steps is not None:
        total = min(total, int(cfg.max_steps))
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.0, momentum=cfg.momentum,
                          weight_decay=cfg.weight_decay)
    hist = History(title=f"rank {rank} of {world}")
    hist.meta.update(steps=total, steps_per_epoch=per_epoch, global_batch=world * int(cfg.batch_per_rank),
                     world_size=world)
    _set_train(model, cfg.freeze_bn)
    inner = _unwrap(model)
    step, epoch = 0, 0
    while step < total:
        sampler.set_epoch(epoch)                          # a fresh shuffle, the same on every rank
        for x, y in loader:
            if step >= total:
                break
            t0 = time.perf_counter()
            lr = float(lr_fn(step, total))
            for group in opt.param_groups:
                group["lr"] = lr
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.amp and device.type == "cuda"):
                loss = F.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()                               # DDP all-reduces gradient buckets here
            t1 = time.perf_counter()
            if sync is not None:
                sync(inner)                               # the learner's all-reduce
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            t2 = time.perf_counter()
            opt.step()
            loss_value = loss.item()
            step += 1
            hist.log(step, loss=loss_value, lr=lr, sync_seconds=t2 - t1, step_seconds=time.perf_counter() - t0)
            if log is not None and log_every and (step % log_every == 0 or step == total):
                log(f"step {step}/{total}  epoch {epoch}  loss {loss_value:.4f}  lr {lr:.4g}")
        epoch += 1
    return hist.close()


@torch.no_grad()
def evaluate(model: nn.Module, dataset: Dataset, batch_size: int = 64, device: torch.device | str = "cpu") -> float:
    """Top-1 accuracy on ``dataset``: rank r scores clips r, r+W, r+2W, ... and the counts are summed
    with ``all_reduce`` (every clip counted once, no padding). Works alone too."""
    rank, world = rank_and_world()
    device = torch.device(device)
    idx = list(range(rank, len(dataset), world))
    correct = torch.zeros(2, dtype=torch.float64)
    with eval_mode(model):
        for i in range(0, len(idx), batch_size):
            xs, ys = zip(*(dataset[j] for j in idx[i:i + batch_size]))
            x = torch.stack(xs).to(device)                                  # (B, T, C, H, W)
            pred = model(x).argmax(1).cpu()
            correct[0] += (pred == torch.as_tensor(ys)).sum().item()
            correct[1] += len(ys)
    if world > 1:
        buf = correct.to(device) if dist.get_backend() == "nccl" else correct
        dist.all_reduce(buf)
        correct = buf.cpu()
    return (correct[0] / correct[1].clamp(min=1)).item()


def log_rank0(message: str) -> None:
    """Print on rank 0 only (flushed: torchrun interleaves the ranks' output)."""
    if rank_and_world()[0] == 0:
        print(message, file=sys.stdout, flush=True)


# --------------------------------------------------------------------------------------------------
# Process groups of a two-level (node, then leaders) topology
# --------------------------------------------------------------------------------------------------

def node_groups(ranks_per_node: int) -> tuple[Any, Any, int]:
    """Cut the default group's ranks into "nodes" of ``ranks_per_node`` consecutive ranks.

    Call it on every rank (``dist.new_group`` is collective: every rank creates every group, in the
    same order). Returns ``(node_group, leader_group, leader)``: this rank's node's group, the
    group of the nodes' first ranks (the *leaders*; ``None`` on a rank that is not a leader), and
    the global rank of this node's leader. ``world_size`` must be a multiple of ``ranks_per_node``.
    """
    rank, world = rank_and_world()
    k = int(ranks_per_node)
    if k < 1 or world % k:
        raise ValueError(f"ranks_per_node must divide the world size {world}, got {ranks_per_node}")
    nodes = [dist.new_group(list(range(i, i + k))) for i in range(0, world, k)]
    leaders = dist.new_group(list(range(0, world, k)))
    leader = rank - rank % k
    return nodes[rank // k], (leaders if rank == leader else None), leader
