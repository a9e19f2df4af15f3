"""Image folder datasets for the generative labs: plain, paired (pix2pix) and unpaired (CycleGAN).

Images are centre-cropped to a square, resized to ``size`` (antialiased) and returned as float
``(C, size, size)`` in ``[-1, 1]`` (the generative labs' convention, like ``effcourse.data.load_digits``).
Every dataset has ``kind`` and ``tensors()``:

=================  ===============================  ==========================================
class              item                             ``tensors()``
=================  ===============================  ==========================================
ImageFolder        ``(image, label)``               ``(images (N, C, S, S), labels (N,))``
TensorImages       ``(image, label)``               ``(images, labels)`` (wraps tensors)
PairedImageFolder  ``(a, b)``                       ``(A (N, C, S, S), B (N, C, S, S))``
UnpairedImageFolder``(a, b)`` (b cycles separately)  ``(A (Na, ...), B (Nb, ...))``
=================  ===============================  ==========================================

Folder layouts: ``ImageFolder(root)`` takes every image below ``root`` (label 0, or the name of the
first sub-folder when ``labels_from_folders``); ``PairedImageFolder(root, split)`` reads
``root/<split>/*`` where each file is A and B side by side (pix2pix: ``edges2shoes/train``);
``UnpairedImageFolder(root, split)`` reads ``root/<split>A`` and ``root/<split>B`` (CycleGAN).
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import Dataset

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


def list_images(folder: str | Path) -> list[Path]:
    """Image files below ``folder`` (recursive, sorted; hidden folders and ``downloads/`` skipped)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"image folder {folder} does not exist")
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
                  and not any(part.startswith(".") or part == "downloads" for part in p.relative_to(folder).parts))


def to_tensor(img: Image.Image, size: int, channels: int = 3) -> torch.Tensor:
    """PIL image -> centre square crop -> ``(channels, size, size)`` float in [-1, 1]."""
    mode = {1: "L", 3: "RGB"}.get(channels)
    if mode is None:
        raise ValueError(f"channels must be 1 or 3, got {channels}")
    x = torch.from_numpy(np.asarray(img.convert(mode), dtype=np.float32).copy())
    x = x.unsqueeze(0) if x.ndim == 2 else x.permute(2, 0, 1)
    h, w = x.shape[1:]
    s = min(h, w)
    x = x[:, (h - s) // 2:(h - s) // 2 + s, (w - s) // 2:(w - s) // 2 + s].unsqueeze(0)
    if s != size:
        x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=s > size, align_corners=False)
    return (x[0] / 127.5 - 1.0).clamp(-1.0, 1.0)


def _check(size: int, n_images: int | None) -> None:
    if int(size) < 4:
        raise ValueError(f"size must be >= 4 pixels, got {size}")
    if n_images is not None and int(n_images) < 1:
        raise ValueError(f"n_images must be >= 1, got {n_images}")


def _subset(files: list[Path], n: int | None, seed: int) -> list[Path]:
    if n is None or n >= len(files):
        return files
    keep = torch.randperm(len(files), generator=torch.Generator().manual_seed(int(seed)))[: int(n)]
    return [files[i] for i in sorted(keep.tolist())]


class ImageFolder(Dataset):
    """Every image below ``root``; ``dataset[i] -> (image (C, S, S) in [-1, 1], label)``."""

    kind = "images"

    def __init__(self, root: str | Path, size: int = 64, n_images: int | None = None, seed: int = 0,
                 channels: int = 3, labels_from_folders: bool = False):
        _check(size, n_images)
        self.root, self.size, self.channels = Path(root), int(size), int(channels)
        files = list_images(self.root)
        if not files:
            raise FileNotFoundError(f"no images ({', '.join(IMAGE_SUFFIXES)}) below {self.root}")
        self.files = _subset(files, n_images, seed)
        if labels_from_folders:
            names = [f.relative_to(self.root).parts[0] if len(f.relative_to(self.root).parts) > 1 else ""
                     for f in self.files]
            self.classes = tuple(sorted(set(names)))
            self.labels = torch.tensor([self.classes.index(n) for n in names], dtype=torch.long)
        else:
            self.classes = (self.root.name,)
            self.labels = torch.zeros(len(self.files), dtype=torch.long)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        with Image.open(self.files[i]) as img:
            return to_tensor(img, self.size, self.channels), int(self.labels[i])

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.stack([self[i][0] for i in range(len(self))]), self.labels.clone()

    def __repr__(self) -> str:
        return f"ImageFolder({str(self.root)!r}, n_images={len(self)}, size={self.size})"


class TensorImages(Dataset):
    """In-memory images ``(N, C, S, S)`` in [-1, 1] with labels, behaving like ``ImageFolder``."""

    kind = "images"

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, classes: Sequence[str] = ()):
        if images.ndim != 4 or labels.ndim != 1 or len(images) != len(labels):
            raise ValueError(f"need images (N, C, S, S) and labels (N,), got {tuple(images.shape)} and "
                             f"{tuple(labels.shape)}")
        self.images, self.labels, self.classes = images, labels.long(), tuple(classes)
        self.size, self.channels = images.shape[-1], images.shape[1]

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.images[i], int(self.labels[i])

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.images.clone(), self.labels.clone()

    def __repr__(self) -> str:
        return f"TensorImages(n_images={len(self)}, shape={tuple(self.images.shape[1:])})"


class PairedImageFolder(Dataset):
    """pix2pix pairs: each file in ``root/<split>`` is A | B side by side; ``dataset[i] -> (a, b)``.

    ``direction="BtoA"`` swaps the halves (edges2shoes is edges | photo, so AtoB maps edges to shoes).
    """

    kind = "paired"

    def __init__(self, root: str | Path, split: str = "train", size: int = 64, direction: str = "AtoB",
                 n_images: int | None = None, seed: int = 0, channels: int = 3):
        _check(size, n_images)
        if direction not in ("AtoB", "BtoA"):
            raise ValueError(f"direction must be 'AtoB' or 'BtoA', got {direction!r}")
        root = Path(root)
        folder = root / split
        if not folder.is_dir() and split == "test" and (root / "val").is_dir():
            folder = root / "val"                        # pix2pix sets call their test split "val"
        if not folder.is_dir():
            have = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
            raise FileNotFoundError(f"no split folder {folder} (found: {', '.join(have) or 'nothing'})")
        self.root, self.split, self.size, self.channels = root, split, int(size), int(channels)
        self.direction = direction
        files = list_images(folder)
        if not files:
            raise FileNotFoundError(f"no images below {folder}")
        self.files = _subset(files, n_images, seed)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        with Image.open(self.files[i]) as img:
            w, h = img.size
            if w < 2:
                raise ValueError(f"{self.files[i]} is too narrow to hold two images side by side")
            a = to_tensor(img.crop((0, 0, w // 2, h)), self.size, self.channels)
            b = to_tensor(img.crop((w // 2, 0, 2 * (w // 2), h)), self.size, self.channels)
        return (a, b) if self.direction == "AtoB" else (b, a)

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        a, b = zip(*(self[i] for i in range(len(self))))
        return torch.stack(a), torch.stack(b)

    def __repr__(self) -> str:
        return f"PairedImageFolder({str(self.root)!r}, split={self.split!r}, n_images={len(self)}, size={self.size})"


class UnpairedImageFolder(Dataset):
    """CycleGAN domains ``root/<split>A`` and ``root/<split>B``; ``dataset[i] -> (a_i, b_j)``.

    The two domains have their own sizes; ``len`` is the larger one and the smaller domain cycles
    through a fixed seeded permutation, so a and b are never aligned by construction.
    """

    kind = "unpaired"

    def __init__(self, root: str | Path, split: str = "train", size: int = 64, n_images: int | None = None,
                 seed: int = 0, channels: int = 3):
        _check(size, n_images)
        root = Path(root)
        self.root, self.split, self.size, self.channels = root, split, int(size), int(channels)
        domains = []
        for d in ("A", "B"):
            folder = root / f"{split}{d}"
            if not folder.is_dir():
                raise FileNotFoundError(f"no domain folder {folder} (CycleGAN layout: {split}A/ and {split}B/)")
            files = list_images(folder)
            if not files:
                raise FileNotFoundError(f"no images below {folder}")
            domains.append(_subset(files, n_images, seed))
        self.files_a, self.files_b = domains
        self.perm_b = torch.randperm(len(self.files_b), generator=torch.Generator().manual_seed(int(seed) + 1))

    def __len__(self) -> int:
        return max(len(self.files_a), len(self.files_b))

    def _load(self, path: Path) -> torch.Tensor:
        with Image.open(path) as img:
            return to_tensor(img, self.size, self.channels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        a = self.files_a[i % len(self.files_a)]
        b = self.files_b[int(self.perm_b[i % len(self.files_b)])]
        return self._load(a), self._load(b)

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """All of domain A ``(Na, C, S, S)`` and all of domain B ``(Nb, C, S, S)`` (unaligned)."""
        return (torch.stack([self._load(p) for p in self.files_a]),
                torch.stack([self._load(p) for p in self.files_b]))

    def __repr__(self) -> str:
        return (f"UnpairedImageFolder({str(self.root)!r}, split={self.split!r}, n_a={len(self.files_a)}, "
                f"n_b={len(self.files_b)}, size={self.size})")
