"""Clips decoded from image files on disk: the data-loading side of a training step (Lab 7).

Kinetics is read as compressed video; every training step decodes T frames per clip, resizes them
and stacks them. Here the frames are written once, at set-up, as real JPEG files (Pillow), and a
``DataLoader`` with worker processes decodes them every step, so loading costs what it costs.

* ``write_jpeg_clips(dataset, folder, frame_size)`` writes clip ``i`` of a ``TemporalDigits``-like
  data set (``dataset[i] -> (clip (T, 1, s, s) in [0, 1], label)``) as ``folder/i/t.jpg`` RGB
  images of ``frame_size`` pixels, and ``folder/labels.json``.
* ``JpegClips(folder, n_frames, size)`` decodes the first ``n_frames`` frames of each clip (RGB ->
  grey, resized to ``size``): ``(clip (T, 1, size, size) float32, label)``.
* ``split_step_time(loader, model, steps)`` times ``steps`` training steps: seconds spent waiting
  for the next batch (loading) and in forward + backward + SGD (compute), each a median per step.
"""
from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

__all__ = ["JpegClips", "split_step_time", "write_jpeg_clips"]


def write_jpeg_clips(dataset: Dataset, folder: str | Path, frame_size: int = 112, quality: int = 90) -> Path:
    """Write every clip of ``dataset`` as JPEG frames ``folder/<clip>/<t>.jpg`` (RGB, ``frame_size``
    pixels square); labels in ``folder/labels.json``. Returns ``folder``."""
    from PIL import Image

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    labels = []
    for i in range(len(dataset)):
        clip, label = dataset[i]
        if clip.dim() != 4 or clip.shape[1] != 1:
            raise ValueError(f"expected clips (T, 1, H, W), got {tuple(clip.shape)}")
        big = F.interpolate(clip, size=(frame_size, frame_size), mode="bilinear", align_corners=False)
        d = folder / str(i)
        d.mkdir(exist_ok=True)
        for t, frame in enumerate(big):
            grey = (frame[0].clamp(0, 1) * 255).round().to(torch.uint8)
            rgb = torch.stack([grey, grey.flip(1), grey.t()], dim=-1).numpy()   # three different channels
            Image.fromarray(rgb, "RGB").save(d / f"{t}.jpg", quality=quality)
        labels.append(int(label))
    (folder / "labels.json").write_text(json.dumps(labels))
    return folder


class JpegClips(Dataset):
    """Clips decoded from ``write_jpeg_clips``' files: ``(clip (T, 1, size, size) float32 in [0, 1], label)``.

    Each item opens ``n_frames`` JPEG files, decodes them (Pillow), keeps the first channel and
    resizes it to ``size`` pixels: the work a video loader does per clip, grown with T."""

    def __init__(self, folder: str | Path, n_frames: int, size: int = 16):
        self.folder = Path(folder)
        self.labels = json.loads((self.folder / "labels.json").read_text())
        have = len(list((self.folder / "0").glob("*.jpg")))
        if not 1 <= int(n_frames) <= have:
            raise ValueError(f"n_frames must be in [1, {have}] (frames on disk per clip), got {n_frames}")
        self.n_frames, self.size = int(n_frames), int(size)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        from PIL import Image

        frames = []
        for t in range(self.n_frames):
            with Image.open(self.folder / str(i) / f"{t}.jpg") as im:
                grey = im.convert("RGB").getchannel(0).resize((self.size, self.size), Image.BILINEAR)
                pixels = torch.frombuffer(bytearray(grey.tobytes()), dtype=torch.uint8)
                frames.append(pixels.view(self.size, self.size))                   # (H, W)
        clip = torch.stack(frames).unsqueeze(1).float() / 255                      # T x (H, W) -> (T, 1, H, W)
        return clip, self.labels[i]


def split_step_time(loader: DataLoader, model: nn.Module, steps: int, lr: float = 0.01) -> dict[str, float]:
    """Median seconds per training step spent waiting for the loader (``"load"``) and computing
    forward, backward and an SGD step (``"compute"``), over ``steps`` steps after one warm-up step.
    The loader is re-iterated when it runs out."""
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    model.train()
    load, compute = [], []
    it = iter(loader)
    for s in range(int(steps) + 1):
        t0 = time.perf_counter()
        try:
            x, y = next(it)
        except StopIteration:
            it = iter(loader)
            x, y = next(it)
        t1 = time.perf_counter()
        loss = F.cross_entropy(model(x), torch.as_tensor(y))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        t2 = time.perf_counter()
        if s:                                        # the first step starts the workers
            load.append(t1 - t0)
            compute.append(t2 - t1)
    return {"load": statistics.median(load), "compute": statistics.median(compute)}
