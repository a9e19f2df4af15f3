"""Datasets that run offline: synthetic video from scikit-learn's digits, bundled images."""
from .clips import check_clips
from .temporal_digits import CLASSES as TEMPORAL_DIGITS_CLASSES, TemporalDigits, render_clips, reverse_partner

__all__ = ["check_clips", "TemporalDigits", "TEMPORAL_DIGITS_CLASSES", "render_clips", "reverse_partner", "LongVideos"]
from .long_videos import LongVideos  # noqa: E402  (Lab 9: long videos with a few action clips)
