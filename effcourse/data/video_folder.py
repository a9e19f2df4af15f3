"""Prepared real video clips on disk and TSN-style segment sampling over them.

``data_scripts/prepare_video.py`` turns a video dataset into compact clip tensors, one folder per split::

    ROOT/NAME/prepared/t{T}_s{S}/{split}/index.json        classes, labels, shapes, source of every clip
    ROOT/NAME/prepared/t{T}_s{S}/{split}/shard_00000.pt    uint8 (n, T, C, S, S), at most 512 clips each

``VideoFolder`` reads such a folder. Its items are ``(clip (n_frames, C, S, S) float in [0, 1], label)``,
like ``TemporalDigits``. Frames are chosen by **TSN segment sampling**: the T stored frames are cut
into ``n_frames`` equal segments and one frame is taken from each segment, at random when training
(``sampling="random"``) and at the segment centre when testing (``sampling="center"``). Store more
frames than you train with (e.g. T = 16 for 8-frame models) to get the augmentation.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Sequence

import torch
from torch.utils.data import Dataset

FORMAT = "effcourse-clips-v1"
SHARD_SIZE = 512


def segment_indices(n_stored: int, n_frames: int, sampling: str = "center",
                    generator: torch.Generator | None = None) -> torch.Tensor:
    """Indices ``(n_frames,)`` into ``n_stored`` frames: one per equal segment (TSN).

    ``"center"`` takes each segment's middle frame; ``"random"`` a uniformly random frame of each
    segment. With fewer stored frames than requested, frames repeat (in order).
    """
    if n_stored < 1 or n_frames < 1:
        raise ValueError(f"need n_stored >= 1 and n_frames >= 1, got {n_stored} and {n_frames}")
    if sampling not in ("center", "random"):
        raise ValueError(f"sampling must be 'center' or 'random', got {sampling!r}")
    edges = torch.arange(n_frames + 1, dtype=torch.float64) * (n_stored / n_frames)
    lo, hi = edges[:-1].floor().long(), edges[1:].floor().long().clamp(max=n_stored)
    hi = torch.maximum(hi, lo + 1)
    if sampling == "center":
        return ((edges[:-1] + edges[1:]) / 2).floor().long().clamp(0, n_stored - 1)
    u = torch.rand(n_frames, generator=generator, dtype=torch.float64)
    return (lo + (u * (hi - lo)).floor().long()).clamp(0, n_stored - 1)


class ClipWriter:
    """Writes a prepared split: ``add(clip uint8 (T, C, S, S), label, source)`` then ``close()``.

    Output goes to ``out_dir.tmp`` and is renamed to ``out_dir`` on ``close()``, so a folder with an
    ``index.json`` is always complete.
    """

    def __init__(self, out_dir: str | Path, classes: Sequence[str], n_frames: int, size: int, channels: int = 3,
                 shard_size: int = SHARD_SIZE, meta: dict | None = None):
        self.out_dir = Path(out_dir)
        self.tmp = self.out_dir.with_name(self.out_dir.name + ".tmp")
        if self.tmp.exists():
            shutil.rmtree(self.tmp)
        self.tmp.mkdir(parents=True)
        self.classes, self.shape = list(classes), (int(n_frames), int(channels), int(size), int(size))
        self.shard_size, self.meta = int(shard_size), dict(meta or {})
        self.buffer: list[torch.Tensor] = []
        self.labels: list[int] = []
        self.sources: list[str] = []
        self.shards: list[dict] = []

    def add(self, clip: torch.Tensor, label: int, source: str = "") -> None:
        if clip.dtype != torch.uint8 or tuple(clip.shape) != self.shape:
            raise ValueError(f"clip must be uint8 of shape {self.shape} (T, C, S, S), got {clip.dtype} "
                             f"{tuple(clip.shape)}")
        if not 0 <= int(label) < len(self.classes):
            raise ValueError(f"label {label} out of range for {len(self.classes)} classes")
        self.buffer.append(clip)
        self.labels.append(int(label))
        self.sources.append(str(source))
        if len(self.buffer) >= self.shard_size:
            self._flush()

    def _flush(self) -> None:
        if not self.buffer:
            return
        name = f"shard_{len(self.shards):05d}.pt"
        torch.save(torch.stack(self.buffer).contiguous(), self.tmp / name)
        self.shards.append({"file": name, "n": len(self.buffer)})
        self.buffer = []

    def abort(self) -> None:
        """Drop everything written so far (the target folder is left as it was)."""
        self.buffer = []
        shutil.rmtree(self.tmp, ignore_errors=True)

    def close(self) -> Path:
        self._flush()
        if not self.labels:
            shutil.rmtree(self.tmp)
            raise ValueError(f"no clips were written to {self.out_dir}")
        T, C, S, _ = self.shape
        index = {"format": FORMAT, "classes": self.classes, "n_frames": T, "channels": C, "size": S,
                 "shards": self.shards, "labels": self.labels, "sources": self.sources, **self.meta}
        (self.tmp / "index.json").write_text(json.dumps(index))
        if self.out_dir.exists():
            shutil.rmtree(self.out_dir)
        self.tmp.rename(self.out_dir)
        return self.out_dir


class VideoFolder(Dataset):
    """Clips prepared by ``data_scripts.prepare_video``; ``dataset[i] -> (clip (n_frames, C, S, S), label)``.

    Args:
        path: a prepared split folder (holding ``index.json``).
        n_frames: frames per returned clip (default: all stored frames).
        sampling: ``"random"`` (TSN training: a random frame per segment) or ``"center"`` (testing).
        indices: keep only these clips (e.g. a subset), in this order.
        seed: seeds the random segment sampling.
    """

    def __init__(self, path: str | Path, n_frames: int | None = None, sampling: str = "center",
                 indices: Sequence[int] | torch.Tensor | None = None, seed: int = 0):
        self.path = Path(path)
        index_file = self.path / "index.json"
        if not index_file.exists():
            raise FileNotFoundError(f"{self.path} is not a prepared clip folder (no index.json); make it with "
                                    f"`python -m data_scripts.prepare_video NAME --root ROOT --frames T --size S`")
        index = json.loads(index_file.read_text())
        if index.get("format") != FORMAT:
            raise ValueError(f"{index_file} has format {index.get('format')!r}, expected {FORMAT!r}; re-prepare it")
        if sampling not in ("center", "random"):
            raise ValueError(f"sampling must be 'center' or 'random', got {sampling!r}")
        self.index = index
        self.classes = tuple(index["classes"])
        self.stored_frames, self.channels, self.size = index["n_frames"], index["channels"], index["size"]
        self.n_frames = int(n_frames) if n_frames is not None else self.stored_frames
        if self.n_frames < 1:
            raise ValueError(f"n_frames must be >= 1, got {n_frames}")
        self.sampling = sampling
        self.generator = torch.Generator().manual_seed(int(seed))
        self._shards = [torch.load(self.path / s["file"], map_location="cpu", weights_only=True, mmap=True)
                        for s in index["shards"]]
        where = [(k, j) for k, s in enumerate(index["shards"]) for j in range(s["n"])]
        all_labels = torch.tensor(index["labels"], dtype=torch.long)
        if indices is None:
            indices = torch.arange(len(where))
        indices = torch.as_tensor(indices, dtype=torch.long)
        if len(indices) and (indices.min() < 0 or indices.max() >= len(where)):
            raise IndexError(f"indices must be in 0..{len(where) - 1}")
        self._where = [where[i] for i in indices.tolist()]
        self.labels = all_labels[indices]
        self.sources = [index["sources"][i] for i in indices.tolist()]

    def __len__(self) -> int:
        return len(self._where)

    def _clip(self, i: int, sampling: str) -> torch.Tensor:
        k, j = self._where[i]
        idx = segment_indices(self.stored_frames, self.n_frames, sampling, self.generator)
        return self._shards[k][j][idx].float().div_(255.0)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        if not -len(self) <= i < len(self):
            raise IndexError(f"index {i} out of range for {len(self)} clips")
        return self._clip(i % len(self), self.sampling), int(self.labels[i])

    def tensors(self, sampling: str = "center") -> tuple[torch.Tensor, torch.Tensor]:
        """All clips ``(N, n_frames, C, S, S)`` float in [0, 1] and labels ``(N,)`` (centre frames by default)."""
        if not len(self):
            raise ValueError(f"{self!r} is empty")
        return torch.stack([self._clip(i, sampling) for i in range(len(self))]), self.labels.clone()

    def __repr__(self) -> str:
        return (f"VideoFolder({str(self.path)!r}, n_clips={len(self)}, n_frames={self.n_frames} of "
                f"{self.stored_frames} stored, size={self.size}, classes={len(self.classes)}, "
                f"sampling={self.sampling!r})")
