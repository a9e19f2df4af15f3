"""Efficient video understanding: backbones, shift surgery, streaming, training loops.

The learner's functions (shifts, consensus) are passed in; nothing here implements an exercise.
"""
from .models import ClipClassifier, SmallResNet, resnet2d, resnet3d
from .surgery import FrameStreamer, OnlineShift, insert_shift, online_wrapper, residual_blocks, stream
from .train import accuracy, predict, train_classifier

__all__ = ["ClipClassifier", "SmallResNet", "resnet2d", "resnet3d", "insert_shift", "OnlineShift",
           "online_wrapper", "residual_blocks", "stream", "FrameStreamer", "train_classifier", "predict",
           "accuracy"]

# Lab 9 (efficient video beyond TSM): SlowFast, X3D expansion, SCSampler, RRM
from . import rrm, sampler, slowfast, x3d  # noqa: E402
from .slowfast import SlowFastNet, match_width  # noqa: E402

__all__ += ["SlowFastNet", "match_width", "slowfast", "x3d", "sampler", "rrm"]
