"""Plots and tables for the notebooks (matplotlib; tables as Markdown through ``tabulate``)."""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import matplotlib.pyplot as plt
import torch


def table(rows: Sequence[Mapping[str, Any]], floatfmt: str = ".3g", title: str | None = None) -> str:
    """Render rows of dicts as a Markdown table; displayed in a notebook, returned as text."""
    from tabulate import tabulate

    text = tabulate([dict(r) for r in rows], headers="keys", tablefmt="github", floatfmt=floatfmt)
    if title:
        text = f"**{title}**\n\n{text}"
    try:
        from IPython import get_ipython
        from IPython.display import Markdown, display

        if get_ipython() is not None:
            display(Markdown(text))
            return text
    except ImportError:  # pragma: no cover
        pass
    print(text)
    return text


def curves(series: Mapping[str, tuple[Sequence[float], Sequence[float]]], xlabel: str, ylabel: str,
           title: str | None = None, ax=None, hline: float | None = None, hline_label: str | None = None):
    """Plot ``{label: (xs, ys)}`` as lines on one axes; returns the axes."""
    if ax is None:
        _, ax = plt.subplots(figsize=(5.5, 3.5))
    for label, (xs, ys) in series.items():
        ax.plot(list(xs), list(ys), marker="o" if len(xs) < 20 else None, label=label)
    if hline is not None:
        ax.axhline(hline, color="gray", ls="--", lw=1, label=hline_label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    return ax


def image_grid(images: torch.Tensor, nrow: int = 8, title: str | None = None, ax=None, vmin: float | None = None,
               vmax: float | None = None):
    """Show images ``(B, C, H, W)`` (C = 1 or 3) as one grid; returns the axes."""
    import torchvision

    if images.dim() != 4:
        raise ValueError(f"images must be (B, C, H, W), got rank {images.dim()}")
    lo = images.min().item() if vmin is None else vmin
    hi = images.max().item() if vmax is None else vmax
    grid = torchvision.utils.make_grid(((images.detach().cpu().float() - lo) / max(hi - lo, 1e-8)).clamp(0, 1),
                                       nrow=nrow, padding=1, pad_value=1.0)
    if ax is None:
        _, ax = plt.subplots(figsize=(min(12, nrow * 0.9), max(1.5, 0.9 * (images.shape[0] + nrow - 1) // nrow)))
    ax.imshow(grid.permute(1, 2, 0).numpy(), cmap="gray" if images.shape[1] == 1 else None, interpolation="nearest")
    ax.axis("off")
    if title:
        ax.set_title(title)
    return ax


def clip_strip(clip: torch.Tensor, title: str | None = None, ax=None):
    """Show the frames of one clip ``(T, C, H, W)`` side by side."""
    if clip.dim() != 4:
        raise ValueError(f"clip must be (T, C, H, W), got rank {clip.dim()}")
    return image_grid(clip, nrow=clip.shape[0], title=title, ax=ax)


def expansion_path(log: Sequence[Mapping[str, Any]], path: Sequence[tuple], ax=None):
    """Lab 9 (X3D): every evaluated candidate (MACs, accuracy) as a dot, the greedy path as a line
    labelled with the axis expanded at each step. ``log`` rows have ``macs`` and ``acc``; ``path``
    holds ``(axis, config, accuracy, macs)`` tuples. Returns the axes."""
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.8))
    ax.scatter([r["macs"] / 1e3 for r in log], [100 * r["acc"] for r in log], s=18, color="gray", alpha=0.6,
               label="candidates tried")
    xs, ys = [m / 1e3 for _, _, _, m in path], [100 * a for _, _, a, _ in path]
    ax.plot(xs, ys, "-o", color="C0", label="greedy path")
    for (axis, _, a, m) in path:
        ax.annotate(axis or "X0", (m / 1e3, 100 * a), textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel("kMACs per clip (log)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("X3D-style expansion")
    ax.grid(alpha=0.3)
    ax.legend()
    return ax


def rrm_tradeoff(results: Mapping[tuple, tuple], axes=None):
    """Lab 9 (RRM): ``{(stream kind, threshold): (error, executed MAC fraction)}`` as two panels
    against the threshold, one line per stream kind. Returns the axes."""
    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(10, 3.5))
    kinds = sorted({k for k, _ in results})
    for kind in kinds:
        taus = sorted(t for k, t in results if k == kind)
        axes[0].plot(taus, [100 * results[(kind, t)][1] for t in taus], "-o", label=kind)
        axes[1].plot(taus, [results[(kind, t)][0] for t in taus], "-o", label=kind)
    axes[0].set_ylabel("executed conv MACs (% of dense)")
    axes[1].set_ylabel("relative output error")
    for a in axes:
        a.set_xlabel("threshold τ")
        a.grid(alpha=0.3)
        a.legend()
    return axes
