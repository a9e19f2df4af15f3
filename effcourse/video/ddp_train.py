"""Data-parallel clip training, launched the way PyTorch users launch it: ``torchrun``.

    torchrun --nproc_per_node 2 -m effcourse.video.ddp_train \\
        --answers labs/lab7_distributed_training/lab7_distributed_training.ipynb --epochs 4

One process per GPU (NCCL) or per CPU slot (gloo); multi-node with ``--nnodes``, ``--node_rank``
and ``--rdzv_endpoint`` (see docs/DISTRIBUTED.md). Gradients are averaged by
``DistributedDataParallel`` (or, with ``--sync answers``, by your ``GradBuckets``); the
data is sharded by ``DistributedSampler``; the learning rate is your ``scaled_lr`` and ``lr_at``,
read from your Lab 7 notebook (``--answers``). ``--model tsm`` builds TSM from your Lab 1 notebook
(``--lab1``). Rank 0 prints progress and a JSON summary (also written to ``--out``).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from ..data.registry import video_dataset
from .. import learner
from .distributed import (
    CLIP_MODELS,
    TrainConfig,
    clip_model,
    evaluate,
    init_from_env,
    log_rank0,
    param_bytes,
    train_rank,
)

LAB7_NAMES = ["scaled_lr", "lr_at"]
LAB1_NAMES = ["temporal_shift", "ResidualShift", "segment_consensus"]


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="torchrun --nproc_per_node N -m effcourse.video.ddp_train",
                                description="Data-parallel clip training with torchrun (see docs/DISTRIBUTED.md).",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--answers", required=True,
                   help="your Lab 7 notebook (.ipynb) or a .py defining scaled_lr and lr_at")
    p.add_argument("--lab1", default=None, help="your Lab 1 notebook, for --model tsm "
                   "(default: ../lab1_temporal_shift/lab1_temporal_shift.ipynb beside --answers)")
    p.add_argument("--model", default="tsm", choices=CLIP_MODELS)
    p.add_argument("--arch", default="small", help="'small' (the course's ResNet) or resnet18/34/50/101 (tsm only)")
    p.add_argument("--pretrained", action="store_true", help="torchvision's ImageNet weights for --arch resnet*")
    p.add_argument("--dataset", default="temporal_digits",
                   help="temporal_digits, or a data set prepared by data_scripts")
    p.add_argument("--data-root", default=None, help="data folder (default $EFFCOURSE_DATA or ~/effcourse_data)")
    p.add_argument("--frames", type=int, default=8, help="T, frames per clip")
    p.add_argument("--size", type=int, default=32, help="frame height and width")
    p.add_argument("--train-clips", type=int, default=None, help="a subset of the training clips (default: all / 800)")
    p.add_argument("--test-clips", type=int, default=None)
    p.add_argument("--epochs", type=float, default=10)
    p.add_argument("--max-steps", type=int, default=None, help="stop after this many steps (a smoke test)")
    p.add_argument("--batch-per-rank", type=int, default=16, help="clips per process and step")
    p.add_argument("--base-lr", type=float, default=0.05, help="learning rate at --base-batch")
    p.add_argument("--base-batch", type=int, default=32, help="the global batch --base-lr was tuned for")
    p.add_argument("--warmup-epochs", type=float, default=1.0)
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--sync", default="ddp", choices=("ddp", "answers"),
                   help="ddp: DistributedDataParallel; answers: your GradBuckets (buckets all-reduced during backward)")
    p.add_argument("--bucket-mb", type=float, default=1.0, help="--sync answers: GradBuckets' bucket size in MiB")
    p.add_argument("--backend", default="auto", choices=("auto", "gloo", "nccl"), help="auto: nccl on GPUs, else gloo")
    p.add_argument("--workers", type=int, default=0, help="DataLoader workers per process")
    p.add_argument("--threads", type=int, default=1, help="CPU threads per process")
    p.add_argument("--amp", action="store_true", help="bfloat16 autocast on CUDA")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--log-every", type=int, default=10)
    p.add_argument("--out", default=None, help="rank 0 writes the JSON summary here")
    return p


def _lab1(args) -> dict | None:
    if args.model != "tsm":
        return None
    path = Path(args.lab1) if args.lab1 else Path(args.answers).resolve().parent.parent / "lab1_temporal_shift" / \
        "lab1_temporal_shift.ipynb"
    def probe(fns):
        return fns["temporal_shift"](torch.zeros(2, 8, 1, 1), 2)

    fns, why = learner.usable(path, LAB1_NAMES, probe)
    if fns is None:
        raise SystemExit(f"--model tsm needs your Lab 1 temporal shift: {why}. "
                         f"Pass --lab1 PATH, or --model frames2d / i3d.")
    return fns


def main(argv: list[str] | None = None) -> dict:
    args = parser().parse_args(argv)
    torch.set_num_threads(max(1, args.threads))
    rank, world, device = init_from_env(args.backend)
    try:
        names = LAB7_NAMES + (["GradBuckets"] if args.sync == "answers" else [])
        fns = learner.load(args.answers, names)
        lab1 = _lab1(args)
        kw = {"n_frames": args.frames, "size": args.size, "root": args.data_root, "seed": args.seed}
        train_set = video_dataset(args.dataset, "train", n_clips=args.train_clips, **kw)
        test_set = video_dataset(args.dataset, "test", n_clips=args.test_clips, **kw)
        in_channels = train_set[0][0].shape[1]
        model = clip_model(args.model, args.frames, len(train_set.classes), in_channels, arch=args.arch, lab1=lab1,
                           pretrained=args.pretrained, seed=args.seed).to(device)
        cfg = TrainConfig(batch_per_rank=args.batch_per_rank, epochs=args.epochs, max_steps=args.max_steps,
                          momentum=args.momentum, weight_decay=args.weight_decay, seed=args.seed,
                          num_workers=args.workers, amp=args.amp)
        global_batch = world * args.batch_per_rank
        peak = float(fns["scaled_lr"](args.base_lr, args.base_batch, global_batch))
        steps_per_epoch = len(train_set) // global_batch
        warmup = round(args.warmup_epochs * steps_per_epoch)

        def lr_fn(step, total):
            return fns["lr_at"](step, peak, min(warmup, total), total)

        if args.sync == "ddp" and world > 1:
            net = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
            sync = None
        else:
            net, sync = model, None
            if args.sync == "answers" and world > 1:
                buckets = fns["GradBuckets"](model, args.bucket_mb * 2**20)
                def sync(m, buckets=buckets):               # train_rank calls sync(model) after backward
                    return buckets.wait()
        group = dist.get_backend() if dist.is_initialized() else "no group"
        log_rank0(f"{world} process(es) on {device.type} ({group}), "
                  f"{args.model}/{args.arch} on {args.dataset}: {len(train_set)} clips, global batch {global_batch}, "
                  f"peak lr {peak:.4g}, {warmup} warm-up steps, "
                  f"{param_bytes(model) / 1e6:.2f} MB of gradients per step")
        t0 = time.perf_counter()
        hist = train_rank(net, train_set, lr_fn, cfg, sync=sync, device=device, log=log_rank0, log_every=args.log_every)
        wall = time.perf_counter() - t0
        acc = evaluate(model, test_set, device=device)
        steady = hist["step_seconds"][min(2, len(hist["step_seconds"]) - 1):]
        summary = {"model": args.model, "arch": args.arch, "dataset": args.dataset, "world_size": world,
                   "backend": dist.get_backend() if dist.is_initialized() else None, "device": device.type,
                   "global_batch": global_batch, "peak_lr": peak, "warmup_steps": warmup, "steps": hist.meta["steps"],
                   "final_loss": hist["loss"][-1], "test_acc": acc, "wall_seconds": wall,
                   "clips_per_second": global_batch / (sum(steady) / len(steady)),
                   "gradient_megabytes": param_bytes(model) / 1e6}
        if rank == 0:
            print(json.dumps(summary), flush=True)
            if args.out:
                Path(args.out).write_text(json.dumps(summary, indent=1))
        return summary
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1:])
