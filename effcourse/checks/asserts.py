"""Assertions whose failure messages tell a learner what was expected and what came back.

Used by the public self-checks and by the hidden tests inside the notebooks. Learner code is
always called through ``call``: an unexpected exception becomes a ``CheckFailed`` that names the
call and what was raised, never a bare traceback from deep inside torch.
"""
from __future__ import annotations

import contextlib
import time
import warnings
from typing import Any, Callable, Iterator

import torch

__all__ = ["CheckFailed", "call", "check_tensor", "assert_shape", "assert_close", "assert_true",
           "assert_raises", "passed", "clock_seed", "seed_in_failures"]


class CheckFailed(AssertionError):
    """A self-check failed; the message says what was expected and what came back."""


def _fmt_index(flat: int, shape: torch.Size) -> tuple[int, ...]:
    idx = []
    for size in reversed(shape):
        idx.append(flat % size)
        flat //= size
    return tuple(reversed(idx))


def check_tensor(name: str, got: Any) -> torch.Tensor:
    if not isinstance(got, torch.Tensor):
        raise CheckFailed(f"{name}: expected a torch.Tensor, got {type(got).__name__}"
                          + (" (did you forget to return it?)" if got is None else ""))
    return got


def assert_shape(name: str, got: Any, shape: tuple[int, ...]) -> None:
    got = check_tensor(name, got)
    if tuple(got.shape) != tuple(shape):
        raise CheckFailed(f"{name}: expected shape {tuple(shape)}, got {tuple(got.shape)}")


def assert_close(name: str, got: Any, expected: torch.Tensor, atol: float = 1e-5, rtol: float = 1e-5) -> None:
    """Shape, dtype and values; the message names the first mismatching index and the max error."""
    got = check_tensor(name, got)
    if tuple(got.shape) != tuple(expected.shape):
        raise CheckFailed(f"{name}: expected shape {tuple(expected.shape)}, got {tuple(got.shape)}")
    if got.dtype != expected.dtype:
        raise CheckFailed(f"{name}: expected dtype {expected.dtype}, got {got.dtype}")
    g = got.detach().cpu().double()
    e = expected.detach().cpu().double()
    bad = ~torch.isclose(g, e, atol=atol, rtol=rtol, equal_nan=True)
    if bad.any():
        flat = int(bad.flatten().nonzero()[0])
        idx = _fmt_index(flat, g.shape)
        err = (g - e).abs().nan_to_num(float("inf")).max().item()
        raise CheckFailed(
            f"{name}: {int(bad.sum())} of {bad.numel()} values differ; first at index {idx}: "
            f"expected {e[idx].item():.6g}, got {g[idx].item():.6g}; max abs error {err:.3g} (tolerance {atol:g})"
        )


def assert_true(cond: bool, message: str) -> None:
    if not cond:
        raise CheckFailed(message)


def assert_raises(name: str, fn: Callable[[], Any], exc: type[BaseException] | tuple = Exception) -> BaseException:
    try:
        fn()
    except exc as err:  # noqa: PERF203
        return err
    raise CheckFailed(f"{name}: expected an error ({getattr(exc, '__name__', exc)}), but the call returned normally")


def call(name: str, fn, *args, **kwargs):
    """Call the learner's ``fn``; an unexpected exception becomes a ``CheckFailed`` naming the call.
    ``NotImplementedError`` (an untouched stub) passes through unchanged. Warnings raised inside are
    silenced: a grade cell is judged on what the function returns, and nbgrader scores a cell that
    writes to stderr 0."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return fn(*args, **kwargs)
    except (NotImplementedError, CheckFailed):
        raise
    except Exception as err:  # noqa: BLE001 - report the learner's error with context
        raise CheckFailed(f"{name} raised {type(err).__name__}: {err}") from err


def clock_seed() -> int:
    """A fresh seed from the clock (milliseconds), for hidden tests on new random inputs."""
    return int(time.time() * 1000) % 2**31


@contextlib.contextmanager
def seed_in_failures(seed: int) -> Iterator[int]:
    """``with seed_in_failures(seed):`` — any exception inside becomes a ``CheckFailed`` whose
    message ends with the seed (an untouched stub's ``NotImplementedError`` passes through)."""
    try:
        yield seed
    except NotImplementedError:
        raise
    except Exception as err:  # noqa: BLE001 - every failure must carry the seed
        raise CheckFailed(f"{err} [random inputs drawn with seed {seed}]") from err


def passed(what: str) -> None:
    print(f"\u2714 {what}")
