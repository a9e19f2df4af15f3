"""effcourse: plumbing for the Efficient Video & Generative Models labs.

Layers import one way only: runtime -> data -> {video, gan, sparse} -> bench/metrics -> plots/widgets
-> judge -> checks -> grading/cli. The exercises' answers are never here: learners' functions are passed in.
"""
from .runtime import (get_device, is_quick, is_smoke, pick, profile, read_records, record, recorded, seed_everything,
                      setup)

__version__ = "0.1.0"
LABS = ("lab1_temporal_shift", "lab2_3d_convs", "lab3_gan_compression", "lab4_anycost_gan", "lab5_sige",
        "lab6_diffaugment", "lab7_distributed_training", "lab8_diffusion_editing", "lab9_efficient_video")

__all__ = ["setup", "get_device", "is_quick", "is_smoke", "profile", "pick", "seed_everything", "record", "recorded",
           "read_records", "LABS", "__version__"]
