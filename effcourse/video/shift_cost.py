"""TSM's row of Lab 2's cost table, without shipping Lab 1's answers.

Lab 2 compares the cost of TSN, TSM, I3D and R(2+1)D. The temporal shift is an exercise of Lab 1,
so neither Lab 2 nor this package contains one. The TSM network is built in one of two ways:

* ``learner_wrapper(path)`` loads *the learner's own* ``temporal_shift`` and ``ResidualShift``
  from their Lab 1 notebook (the two exercise cells, found by their nbgrader ids), when that
  notebook is beside Lab 2's and its wrapper runs;
* otherwise ``copy_wrapper`` stands in for it. In front of each residual block's first conv it
  writes the activation into a fresh zero-filled buffer: one zero fill, one read and one write of
  the tensor, about the memory traffic of a shift. It has no temporal meaning at all: its output
  equals its input, frame by frame. It is a cost model, not a temporal model.

Either way the network multiplies exactly what TSN multiplies (a shift or a copy moves numbers, it
does not multiply them), so TSM's MACs equal TSN's by construction; only the latency can differ.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch
from torch import nn

from .. import learner

__all__ = ["ActivationCopy", "copy_wrapper", "learner_wrapper", "tsm_wrapper", "LAB1_NOTEBOOK"]

LAB1_NOTEBOOK = Path("..") / "lab1_temporal_shift" / "lab1_temporal_shift.ipynb"
LAB1_CELLS = ("temporal_shift", "ResidualShift")          # nbgrader grade ids of Lab 1's exercise cells

Wrapper = Callable[[nn.Module, int], nn.Module]


class ActivationCopy(nn.Module):
    """Identity that pays for its memory: ``(N*T, C, H, W)`` in, a zero-filled buffer with the
    input copied in out. Same values as the input; the cost of moving every activation once."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.zeros_like(x)        # the fill a shift also pays for (its clip ends are zeros)
        out.copy_(x)                     # every element read once and written once
        return out


def copy_wrapper(conv: nn.Module, n_segment: int) -> nn.Module:
    """``insert_shift`` factory: ``conv`` preceded by an ``ActivationCopy``. ``n_segment`` is
    accepted for the factory's signature and ignored: the copy never looks across frames."""
    return nn.Sequential(ActivationCopy(), conv)


def _probe(wrapper: Wrapper) -> None:
    """Raise unless ``wrapper(conv, n_segment)`` builds a module that keeps a conv's output shape."""
    conv = nn.Conv2d(16, 16, 3, padding=1)
    module = wrapper(conv, 4)
    if not isinstance(module, nn.Module):
        raise TypeError(f"ResidualShift(conv, n_segment) returned {type(module).__name__}, not an nn.Module")
    with torch.no_grad():
        out = module(torch.randn(8, 16, 5, 5))          # two clips of T = 4 frames
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (8, 16, 5, 5):
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(f"ResidualShift(conv, 4) on (8, 16, 5, 5) returned {got}, expected (8, 16, 5, 5)")


def learner_wrapper(path: str | Path) -> Wrapper:
    """The learner's ``ResidualShift`` class from their Lab 1 notebook at ``path``.

    Runs the notebook's ``temporal_shift`` and ``ResidualShift`` exercise cells (and its import-only
    cells) in a fresh namespace (``effcourse.learner``), then checks that the wrapper runs.
    Raises ``FileNotFoundError``, ``KeyError`` (a cell is missing), ``NotImplementedError`` (an
    untouched stub) or whatever the learner's code raises.
    """
    wrapper = learner.from_notebook(path, LAB1_CELLS)["ResidualShift"]
    if not callable(wrapper):
        raise KeyError(f"{path}: the ResidualShift cell defines no callable ResidualShift")
    _probe(wrapper)
    return wrapper


def tsm_wrapper(lab1_notebook: str | Path | None = LAB1_NOTEBOOK) -> tuple[Wrapper, str]:
    """``(wrapper, what)`` for ``insert_shift``: the learner's ``ResidualShift`` when their Lab 1
    notebook loads and runs, else ``copy_wrapper``; ``what`` says which, and why."""
    if lab1_notebook is None:
        return copy_wrapper, "memory-copy stand-in (Lab 1 not looked up in this run)"
    try:
        return learner_wrapper(lab1_notebook), f"your ResidualShift from {lab1_notebook}"
    except Exception as err:  # noqa: BLE001 - any failure of the learner's Lab 1 falls back to the stand-in
        reason = f"{type(err).__name__}: {err}".strip()
        if len(reason) > 160:
            reason = reason[:157] + "..."
        return copy_wrapper, f"memory-copy stand-in (your Lab 1 shift could not be used: {reason})"
