"""Measurement: parameter counts, MACs (``torch.utils.flop_counter``) and latency medians
(``torch.utils.benchmark``), measured together in one run so that ratios are meaningful.
"""
from __future__ import annotations

import statistics
from typing import Any, Callable, Mapping

import torch
from torch import nn
from torch.utils.benchmark import Timer
from torch.utils.flop_counter import FlopCounterMode


def count_params(model: nn.Module) -> int:
    """Number of parameters (trainable or not)."""
    return sum(p.numel() for p in model.parameters())


def count_macs(fn: Callable[..., Any] | nn.Module, *args: Any, **kwargs: Any) -> int:
    """Multiply-accumulates executed by ``fn(*args, **kwargs)``: FLOPs counted by
    ``torch.utils.flop_counter`` divided by two. Runs under ``torch.no_grad()``."""
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        fn(*args, **kwargs)
    return counter.get_total_flops() // 2


def latency(fn: Callable[[], Any], min_run_time: float = 0.5, warmup: int = 2) -> float:
    """Median seconds per call of ``fn()`` after ``warmup`` calls (``torch.utils.benchmark``)."""
    for _ in range(warmup):
        fn()
    m = Timer(stmt="fn()", globals={"fn": fn}, num_threads=torch.get_num_threads()).blocked_autorange(
        min_run_time=min_run_time)
    return float(m.median)


def compare_latency(fns: Mapping[str, Callable[[], Any]], repeats: int = 7, number: int = 3,
                    warmup: int = 2) -> dict[str, float]:
    """Median seconds per call of each function, measured *interleaved* in one run.

    Each round times every function once (``number`` calls each, in turn), so slow drifts of a
    shared machine hit all of them alike; the median over ``repeats`` rounds is returned.
    """
    rounds = latency_rounds(fns, repeats=repeats, number=number, warmup=warmup)
    return {k: statistics.median(v) for k, v in rounds.items()}


def cost_table(models: Mapping[str, tuple[nn.Module, tuple]], repeats: int = 7, number: int = 3,
               baseline: str | None = None) -> list[dict[str, Any]]:
    """Params, MACs and latency (ms, interleaved medians) for ``{name: (model, example_args)}``.

    Models are put in eval mode and run under ``torch.no_grad()``. When ``baseline`` names one of
    the models, each row also gets ``macs_ratio`` and ``latency_ratio`` relative to it.
    """
    rows = []
    fns = {}
    for name, (model, args) in models.items():
        model.eval()

        def run(model=model, args=args):
            with torch.no_grad():
                return model(*args)

        fns[name] = run
        rows.append({"model": name, "params": count_params(model), "macs": count_macs(model, *args)})
    times = compare_latency(fns, repeats=repeats, number=number)
    for row in rows:
        row["latency_ms"] = 1e3 * times[row["model"]]
    if baseline is not None:
        if baseline not in models:
            raise KeyError(f"baseline {baseline!r} is not one of {list(models)}")
        base = next(r for r in rows if r["model"] == baseline)
        for row in rows:
            row["macs_ratio"] = row["macs"] / max(base["macs"], 1)
            row["latency_ratio"] = row["latency_ms"] / base["latency_ms"]
    return rows


def latency_rounds(fns: Mapping[str, Callable[[], Any]], repeats: int = 7, number: int = 3,
                   warmup: int = 2) -> dict[str, list[float]]:
    """Seconds per call of each function in every round, measured *interleaved* (each round times
    every function once, ``number`` calls each; ``compare_latency`` returns the medians). Use it for
    per-round ratios: two functions
    timed back to back in one round share that moment's load, so the median of their per-round
    ratio is steadier on a busy machine than the ratio of their medians."""
    if repeats < 1 or number < 1:
        raise ValueError(f"repeats and number must be >= 1, got {repeats} and {number}")
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    timers = {k: Timer(stmt="fn()", globals={"fn": f}, num_threads=torch.get_num_threads()) for k, f in fns.items()}
    samples: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for k, t in timers.items():
            samples[k].append(t.timeit(number).mean)
    return samples
