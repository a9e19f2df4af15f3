"""The plumbing every training loop shares: one ``History``, one ``EMA``, exception-safe mode switches,
loop options, and a live loss curve.

Each lab keeps its *step* in view (the step is the lesson); the loops in ``video``, ``gan`` and
``diffusion`` are thin: draw a batch, call the step, ``hist.log(step, loss=...)``.

``History`` is the one format every loop returns. It holds named series of ``(step, value)`` pairs;
each series has its own steps, so a loss logged every step and an evaluation logged every 500
steps live side by side::

    hist = History()
    hist.log(1, loss=0.69)
    hist.log(500, loss=0.12, fid=31.0)
    hist["loss"]           # [0.69, 0.12]      the values
    hist.steps("fid")      # [500]             the steps they were logged at
    hist.meta["world_size"] = 4               # run-level facts (not series)

Numbers (Python or one-element tensors) are stored as floats; anything else (a drawn config, a
dict of metrics) is stored as it is. ``to_dict``/``from_dict`` round-trip through JSON.

**Live curve.** In a JupyterLab kernel a ``History`` draws its numeric series as a small figure
that updates in place at most once per ``LIVE_EVERY_S`` seconds, the first time only after a loop
has run that long (short loops draw nothing). It is off under nbgrader (the smoke profile), in
plain Python, and wherever ``EFFCOURSE_LIVE=0`` (papermill runs in CI and ``effcourse
run-solutions`` set it); ``EFFCOURSE_LIVE=1`` forces it on.
"""
from __future__ import annotations

import contextlib
import copy
import io
import math
import os
import sys
import time
from dataclasses import dataclass
from typing import Any, Iterable, Iterator, Sequence

import torch
from torch import nn

from .runtime import is_smoke

__all__ = ["History", "EMA", "Loop", "eval_mode", "train_mode", "live_enabled", "no_live_kernels", "LIVE_EVERY_S"]

LIVE_EVERY_S = 1.0


def live_enabled() -> bool:
    """Whether a ``History`` draws a live curve here (see the module docstring)."""
    flag = os.environ.get("EFFCOURSE_LIVE")
    if flag in ("0", "1"):
        return flag == "1"
    if is_smoke() or "ipykernel" not in sys.modules:
        return False
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


@contextlib.contextmanager
def no_live_kernels() -> Iterator[None]:
    """``with no_live_kernels(): papermill.execute_notebook(...)`` — kernels started inside draw no live
    curves (``EFFCOURSE_LIVE=0`` in their environment); the caller's environment is restored after."""
    before = os.environ.get("EFFCOURSE_LIVE")
    os.environ["EFFCOURSE_LIVE"] = "0"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("EFFCOURSE_LIVE", None)
        else:
            os.environ["EFFCOURSE_LIVE"] = before


def _scalar(value: Any) -> Any:
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return float(value.detach())
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return value


class History:
    """Named series of ``(step, value)`` pairs, plus ``meta`` for run-level facts.

    ``live``: ``None`` (default) draws a live curve where ``live_enabled()``; ``False`` never;
    ``True`` draws every numeric series; a sequence of names draws those series only.
    """

    def __init__(self, live: bool | Sequence[str] | None = None, title: str = ""):
        self._steps: dict[str, list[int]] = {}
        self._values: dict[str, list[Any]] = {}
        self.meta: dict[str, Any] = {}
        self.title = title
        self._live = _LiveCurve(self, live, title) if (live is None and live_enabled()) or (
            live is not None and live is not False) else None

    # -- writing
    def log(self, step: int, **values: Any) -> None:
        """Append each ``name=value`` to its series at ``step`` (then maybe redraw the live curve)."""
        for name, value in values.items():
            self._steps.setdefault(name, []).append(int(step))
            self._values.setdefault(name, []).append(_scalar(value))
        if self._live is not None:
            self._live.maybe_draw()

    def close(self) -> History:
        """End of training: the live curve, if one is shown, gets its final frame. Returns ``self``."""
        if self._live is not None:
            self._live.finish()
        return self

    def __enter__(self) -> History:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- reading
    def __getitem__(self, name: str) -> list[Any]:
        if name not in self._values:
            raise KeyError(f"no series {name!r} in this history; it has {sorted(self._values)}")
        return self._values[name]

    def steps(self, name: str) -> list[int]:
        """The steps at which series ``name`` was logged."""
        self[name]
        return self._steps[name]

    def get(self, name: str, default: Any = None) -> Any:
        return self._values.get(name, default)

    def last(self, name: str) -> Any:
        """The latest value of series ``name``."""
        values = self[name]
        if not values:
            raise ValueError(f"series {name!r} is empty")
        return values[-1]

    def mean(self, name: str, last: int | None = None) -> float:
        """Mean of series ``name`` (of its ``last`` values when given)."""
        values = self[name][-last:] if last else self[name]
        if not values:
            raise ValueError(f"series {name!r} is empty")
        return sum(values) / len(values)

    def keys(self) -> list[str]:
        return list(self._values)

    def __contains__(self, name: object) -> bool:
        return name in self._values

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        sizes = ", ".join(f"{k}: {len(v)}" for k, v in self._values.items())
        return f"History({sizes})"

    # -- storage
    def to_dict(self) -> dict[str, Any]:
        """``{"series": {name: {"step": [...], "value": [...]}}, "meta": {...}}`` (JSON-able when the values are)."""
        return {"series": {k: {"step": list(self._steps[k]), "value": list(self._values[k])} for k in self._values},
                "meta": dict(self.meta)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> History:
        hist = cls(live=False)
        for name, s in data.get("series", {}).items():
            hist._steps[name], hist._values[name] = list(s["step"]), list(s["value"])
        hist.meta.update(data.get("meta", {}))
        return hist

    def numeric(self) -> list[str]:
        """The names of series whose values are all finite numbers (what a curve can show)."""
        return [k for k, v in self._values.items()
                if v and all(isinstance(x, float) and math.isfinite(x) for x in v)]

    def plot(self, names: Sequence[str] | None = None, axes=None, smooth: int = 1):
        """One small panel per series (default: every numeric one, at most 4); ``smooth`` > 1 adds a
        running mean over that many points. Returns the matplotlib figure."""
        import matplotlib.pyplot as plt

        names = list(names or self.numeric()[:4])
        if axes is None:
            fig, axes = plt.subplots(1, max(len(names), 1), figsize=(3.2 * max(len(names), 1), 2.4), squeeze=False)
            axes = axes[0]
        else:
            fig = axes[0].figure
        for ax, name in zip(axes, names):
            xs, ys = self._steps[name], self._values[name]
            ax.plot(xs, ys, lw=0.8, alpha=0.5 if smooth > 1 else 1.0)
            if smooth > 1 and len(ys) >= smooth:
                run = torch.tensor(ys).unfold(0, smooth, 1).mean(1).tolist()
                ax.plot(xs[smooth - 1:], run, lw=1.5)
            ax.set_title(name, fontsize=9)
            ax.set_xlabel("step", fontsize=8)
            ax.tick_params(labelsize=7)
        if self.title:
            fig.suptitle(self.title, fontsize=9)
        fig.tight_layout()
        return fig


class _LiveCurve:
    """Draws a ``History`` as a PNG that updates in place through one IPython display id."""

    def __init__(self, hist: History, live: bool | Sequence[str] | None, title: str):
        self.hist, self.title = hist, title
        self.names = None if live in (None, True) else list(live)
        self.started = self.last = time.monotonic()
        self.handle = None

    def _frame(self):
        from IPython.display import Image
        import matplotlib
        import matplotlib.pyplot as plt

        names = self.names or self.hist.numeric()[:4]
        names = [n for n in names if n in self.hist and self.hist[n]]
        if not names:
            return None
        with matplotlib.rc_context({"figure.dpi": 80}):
            fig = self.hist.plot(names, smooth=10 if max(len(self.hist[n]) for n in names) > 50 else 1)
            buf = io.BytesIO()
            fig.savefig(buf, format="png")
            plt.close(fig)
        return Image(data=buf.getvalue(), format="png")

    def maybe_draw(self) -> None:
        now = time.monotonic()
        if now - self.last < LIVE_EVERY_S:
            return
        self.last = now
        self.draw()

    def draw(self) -> None:
        frame = self._frame()
        if frame is None:
            return
        if self.handle is None:
            from IPython.display import display
            self.handle = display(frame, display_id=True)
        else:
            self.handle.update(frame)

    def finish(self) -> None:
        if self.handle is not None:
            self.draw()


class EMA:
    """An exponential moving average of a model's weights, ``ema ← decay·ema + (1 − decay)·w``.

    ``.model`` is the averaged copy (eval mode, no gradients). With ``warmup=True`` step t uses
    ``min(decay, (1 + t) / (10 + t))``, so early on the average follows the model closely. With
    ``buffers=True`` buffers (BatchNorm statistics) are copied as they are, not averaged. ``start``
    is the warm-up's step count before the first update (the first update is step ``start + 1``).
    """

    def __init__(self, model: nn.Module, decay: float, warmup: bool = False, buffers: bool = True,
                 start: int = 0):
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay must be in [0, 1), got {decay}")
        self.decay, self.warmup, self.buffers = float(decay), bool(warmup), bool(buffers)
        self.model = copy.deepcopy(model).eval().requires_grad_(False)
        self.updates = int(start)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """One averaging step toward ``model``'s current weights."""
        self.updates += 1
        t = self.updates
        decay = min(self.decay, (1.0 + t) / (10.0 + t)) if self.warmup else self.decay
        mine, theirs = list(self.model.parameters()), [p.detach() for p in model.parameters()]
        if len(mine) != len(theirs):
            raise ValueError(f"EMA: the model has {len(theirs)} parameters, the average {len(mine)}")
        torch._foreach_lerp_(mine, theirs, 1.0 - decay)
        if self.buffers:
            for e, b in zip(self.model.buffers(), model.buffers()):
                e.copy_(b)

    @torch.no_grad()
    def copy_to(self, model: nn.Module) -> None:
        """Write the averaged parameters into ``model`` (its buffers stay)."""
        for p, e in zip(model.parameters(), self.model.parameters()):
            p.copy_(e)


@contextlib.contextmanager
def _mode(modules: Iterable[nn.Module], training: bool) -> Iterator[None]:
    saved = [(m, m.training) for top in modules for m in top.modules()]
    try:
        for m, _ in saved:
            m.training = training
        yield
    finally:
        for m, was in saved:
            m.training = was


def eval_mode(*modules: nn.Module):
    """``with eval_mode(G, D): ...`` — every submodule in eval mode inside, each one's own mode restored
    after, even when the block raises."""
    return _mode(modules, False)


def train_mode(*modules: nn.Module):
    """``with train_mode(model): ...`` — the training-mode twin of ``eval_mode``."""
    return _mode(modules, True)


@dataclass
class Loop:
    """Options every training loop shares (the step-specific ones stay the loop's own arguments).

    ``steps``: optimisation steps; ``batch_size``: examples per step; ``seed``: the loop's data
    stream; ``device``; ``desc``: the progress bar's label; ``progress``: show the bar;
    ``log_every``: steps between logged points (1: every step); ``live``: see ``History``.
    """

    steps: int = 100
    batch_size: int = 32
    seed: int = 0
    device: str | torch.device = "cpu"
    desc: str = "train"
    progress: bool = True
    log_every: int = 1
    live: bool | Sequence[str] | None = None

    def __post_init__(self):
        for name in ("steps", "batch_size", "log_every"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"Loop.{name} must be a positive integer, got {value!r}")

    def history(self) -> History:
        """A fresh ``History`` titled with ``desc``, live as ``live`` says."""
        return History(live=self.live, title=self.desc)

    def bar(self, start: int = 0):
        """A tqdm progress bar over the step indices ``start .. steps - 1`` (at most one refresh a second)."""
        from tqdm.auto import tqdm
        return tqdm(range(start, self.steps), desc=self.desc, disable=not self.progress, leave=False,
                    mininterval=1.0)

    def logs(self, step: int) -> bool:
        """Whether 0-based ``step`` is one to log (every ``log_every``-th, and the last)."""
        return (step + 1) % self.log_every == 0 or step + 1 == self.steps
