"""Self-checks for Lab 1 (temporal shift). Small hand-worked examples and invariants only.

In the examples below a clip has T = 3 frames of C = 4 channels (1x1 pixels) and ``fold_div = 4``,
so ``fold = 1``: channel 0 is shifted one way, channel 1 the other, channels 2-3 stay. Frame t of
the input holds ``10*t + [1, 2, 3, 4]``.

``FrameBlend`` (in ``effcourse.video.surgery``) is a stand-in "shift" for the placement tests: every
frame takes the average of itself and the next frame of its clip (the last frame keeps itself), then
the layer it wraps is called. It is no temporal shift (the shift is the learner's), but like one it
moves values between frames, and it does not commute with a block's ReLUs and biases, so where it
sits in a residual block shows in the output. ``toy_resnet(seed, ...)`` (in
``effcourse.video.models``) builds the same small ResNet (basic or bottleneck blocks, random
BatchNorm statistics) wherever it is called with the same arguments. Both live outside this module:
the kernel runs them for the hidden tests, and never runs code of a module that holds the asserts
(a student's trace function could rebind them there, which the judge flags as tampering).
"""
from __future__ import annotations

import torch
from torch import nn

from ..video.models import toy_resnet
from ..video.surgery import FrameBlend, frame_blend
from .asserts import (CheckFailed, assert_close, assert_shape, assert_true, call, check_tensor, clock_seed, passed,
                      seed_in_failures)

__all__ = ["check_temporal_shift", "check_errors", "check_residual_shift", "check_segment_consensus",
           "check_insert_temporal_shift", "check_online_shift", "check_streaming_matches_offline",
           "FrameBlend", "frame_blend", "toy_resnet", "clock_seed", "seed_in_failures"]


_X = torch.tensor([[1., 2., 3., 4.], [11., 12., 13., 14.], [21., 22., 23., 24.]]).view(3, 4, 1, 1)
# offline bi-directional: channel 0 takes frame t+1, channel 1 takes frame t-1, zeros at the ends
_OFFLINE = torch.tensor([[11., 0., 3., 4.], [21., 2., 13., 14.], [0., 12., 23., 24.]]).view(3, 4, 1, 1)
# online (past only): channel 0 takes frame t-1's channel 0, zeros for the first frame
_ONLINE = torch.tensor([[0., 2., 3., 4.], [1., 12., 13., 14.], [11., 22., 23., 24.]]).view(3, 4, 1, 1)


def check_temporal_shift(temporal_shift) -> None:
    """Hand-worked example, two clips in one batch, shape/dtype kept, input untouched."""
    x = _X.clone()
    out = call("temporal_shift", temporal_shift, x, 3, fold_div=4)
    assert_close("temporal_shift(one clip of T=3, fold_div=4)", out, _OFFLINE)
    assert_true(torch.equal(x, _X), "temporal_shift modified its input in place; return a new tensor")
    two = torch.cat([_X, _X + 100])                     # N = 2 clips of T = 3 -> (6, 4, 1, 1)
    expected = torch.cat([_OFFLINE, torch.where(_OFFLINE == 0, 0.0, _OFFLINE + 100)])
    # careful: zeros that enter at the clip ends stay zeros in the second clip too
    assert_close("temporal_shift(two clips, T=3): values must never cross from one clip into the next",
                 call("temporal_shift", temporal_shift, two, 3, fold_div=4), expected)
    y = call("temporal_shift", temporal_shift, torch.randn(16, 16, 5, 7, dtype=torch.float64), 8)
    assert_shape("temporal_shift on (16, 16, 5, 7)", y, (16, 16, 5, 7))
    assert_true(y.dtype == torch.float64, f"temporal_shift must keep the dtype (float64), got {y.dtype}")
    passed("temporal_shift: hand-worked example, clip boundaries, shape and dtype")


def check_residual_shift(ResidualShift, temporal_shift) -> None:
    """The wrapper shifts, then calls the wrapped layer; the layer's parameters stay registered."""
    conv = nn.Conv2d(16, 8, 3, padding=1)
    wrapped = call("ResidualShift(conv, n_segment=4)", ResidualShift, conv, 4)
    assert_true(isinstance(wrapped, nn.Module), "ResidualShift must be an nn.Module")
    params = {id(p) for p in wrapped.parameters()}
    assert_true(all(id(p) in params for p in conv.parameters()),
                "the wrapped conv's parameters must be parameters of ResidualShift (store it as a submodule)")
    x = torch.randn(8, 16, 6, 6)
    with torch.no_grad():
        expected = conv(temporal_shift(x.clone(), 4, 8))          # your shift, on a copy of x
        assert_close("ResidualShift(conv, 4)(x)", call("ResidualShift(conv, 4)(x)", wrapped, x.clone()),
                     expected, atol=1e-5)
    passed("ResidualShift: forward(x) == net(temporal_shift(x, n_segment, fold_div)), parameters registered")


def check_insert_temporal_shift(insert_temporal_shift) -> None:
    """Where the shift goes, with the ``FrameBlend`` stand-in: on the residual branch only, or on
    the block's input (identity path included)."""
    block_in = torch.randn(4, 8, 3, 3, generator=torch.Generator().manual_seed(0))   # one clip of T = 4 frames
    blended = FrameBlend(nn.Identity(), 4)(block_in)
    for place in ("residual", "inplace"):
        model = toy_resnet(0, widths=(8, 8, 8, 8))
        out = call(f"insert_temporal_shift(model, FrameBlend, 4, place={place!r})", insert_temporal_shift,
                   model, FrameBlend, 4, place=place)
        assert_true(isinstance(out, nn.Module),
                    f"insert_temporal_shift must return the model, got {type(out).__name__}")
        block = call(f"model.layer1[0] after insert_temporal_shift(..., place={place!r}) (each block is wrapped or "
                     f"changed in its stage)", lambda out=out: out.layer1[0])
        with torch.no_grad():
            ref_branch = toy_resnet(0, widths=(8, 8, 8, 8)).layer1[0]
            if place == "residual":        # identity unshifted: relu(x + F(s(x)))
                b = ref_branch
                f = b.bn2(b.conv2(b.relu(b.bn1(b.conv1(blended)))))
                expected = torch.relu(f + block_in)
            else:                          # the whole block sees the shifted clip: block(s(x))
                expected = ref_branch(blended)
            got = call(f"layer1[0] after insert_temporal_shift(..., place={place!r})", block, block_in)
        assert_close(f"insert_temporal_shift(place={place!r}): the first residual block on a clip of 4 frames",
                     got, expected, atol=1e-5)
    passed("insert_temporal_shift: residual placement keeps the identity path, in-place shifts the block's input")


def check_segment_consensus(segment_consensus) -> None:
    """Two clips of T=2 frames, K=3 classes: the average over each clip's frames."""
    logits = torch.tensor([[1., 2., 3.], [3., 2., 1.], [0., 0., 4.], [2., 2., 0.]])
    out = call("segment_consensus", segment_consensus, logits, 2)
    assert_close("segment_consensus(4 frame logits, n_segment=2)", out,
                 torch.tensor([[2., 2., 2.], [1., 1., 2.]]))
    out1 = call("segment_consensus", segment_consensus, logits, 1)
    assert_close("segment_consensus(..., n_segment=1) must return the logits unchanged", out1, logits)
    passed("segment_consensus: average over each clip's segments")


def check_online_shift(online_shift) -> None:
    """Stream the T=3 example frame by frame: channel 0 must come from the previous frame."""
    cache = None
    for t in range(3):
        x_t = _X[t:t + 1].clone()
        out = call("online_shift", online_shift, x_t, cache, fold_div=4)
        if not (isinstance(out, tuple) and len(out) == 2):
            raise CheckFailed(f"online_shift must return a pair (shifted, new_cache), got {type(out).__name__}")
        shifted, cache = out
        check_tensor("shifted", shifted)
        assert_close(f"online_shift at frame t={t}", shifted, _ONLINE[t:t + 1])
        assert_true(torch.equal(x_t, _X[t:t + 1]), "online_shift modified its input frame in place")
        assert_close(f"new_cache after frame t={t} (the frame's channels [0:fold])", cache, _X[t:t + 1, :1])
    passed("online_shift: zeros at the first frame, then the previous frame's first fold of channels")


def check_streaming_matches_offline(max_err: float, tol: float = 1e-5) -> None:
    if not max_err <= tol:
        raise CheckFailed(f"streaming logits differ from the clip-at-once logits by {max_err:.3g} (> {tol:g}); "
                          "the cache must carry exactly the previous frame's channels [0:fold]")
    passed(f"streaming equals the offline past-only shift (max |difference| = {max_err:.2g})")


def _expect_value_error(name: str, fn) -> None:
    try:
        fn()
    except ValueError:
        return
    except NotImplementedError:
        raise
    except Exception as err:  # noqa: BLE001 - say what was raised instead
        raise CheckFailed(f"{name}: expected a ValueError with a clear message, "
                          f"got {type(err).__name__}: {err}") from err
    raise CheckFailed(f"{name}: expected a ValueError, but the call returned normally")


def check_errors(temporal_shift) -> None:
    """Bad input gets a clear ValueError (the contract's "Raises")."""
    _expect_value_error("temporal_shift on a rank-3 tensor", lambda: temporal_shift(torch.zeros(8, 4, 4), 8))
    _expect_value_error("temporal_shift with N*T = 10 frames and n_segment = 4",
                        lambda: temporal_shift(torch.zeros(10, 8, 2, 2), 4))
    passed("temporal_shift: clear errors for a wrong rank and for N*T not divisible by n_segment")
