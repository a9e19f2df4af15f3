"""One switch for the labs' data: ``DATASET = "temporal_digits"`` (offline) or a real prepared dataset.

    train_set = video_dataset(DATASET, "train", n_frames=T, size=32, n_clips=N_TRAIN)
    x, y = train_set.tensors()            # (N, T, C, 32, 32) in [0, 1], (N,)
    num_classes, in_channels = len(train_set.classes), x.shape[2]

``temporal_digits`` is generated (1 channel, 8 classes); ``ucf101``, ``hmdb51``,
``something_something_v2`` and ``jester`` are read from ``ROOT/NAME/prepared/`` made by
``data_scripts/fetch.py`` and ``data_scripts/prepare_video.py`` (3 channels; see docs/DATA.md).
``image_dataset`` does the same for the generative labs (values in [-1, 1]).
The data folder ROOT is the ``root`` argument, else ``$EFFCOURSE_DATA``, else ``~/effcourse_data``.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

import torch
from torch.utils.data import Dataset

from .digits import few_shot, load_digits
from .image_folder import ImageFolder, PairedImageFolder, TensorImages, UnpairedImageFolder
from .temporal_digits import TemporalDigits
from .video_folder import VideoFolder

REAL_VIDEO = ("ucf101", "hmdb51", "something_something_v2", "jester")
VIDEO_DATASETS = ("temporal_digits",) + REAL_VIDEO
LOW_SHOT = ("100-shot-obama", "100-shot-grumpy_cat", "100-shot-panda", "AnimalFace-cat", "AnimalFace-dog")
IMAGE_DATASETS = ("digits", "digits_100shot", "edges2shoes", "horse2zebra") + LOW_SHOT
SPLITS = ("train", "test")
DEFAULT_CLIPS = {"train": 800, "test": 400}


def default_root() -> Path:
    """``$EFFCOURSE_DATA`` or ``~/effcourse_data``."""
    return Path(os.environ.get("EFFCOURSE_DATA") or Path.home() / "effcourse_data").expanduser()


def _root(root) -> Path:
    return Path(root).expanduser() if root is not None else default_root()


def _prepare_hint(name: str, root: Path, n_frames: int, size: int) -> str:
    fetch = f"python -m data_scripts.fetch {name} --root {root}"
    prep = f"python -m data_scripts.prepare_video {name} --root {root} --frames {max(n_frames, 16)} --size {size}"
    fetched = (root / name / ".done").is_dir()
    return (f"run `{prep}`" if fetched else f"run `{fetch}` and then `{prep}`") + " (see docs/DATA.md)"


def prepared_split(name: str, split: str, n_frames: int, size: int, root=None) -> Path:
    """The prepared folder of ``name``/``split`` at ``size`` with the fewest stored frames >= ``n_frames``."""
    root = _root(root)
    base = root / name / "prepared"
    options = []
    for d in sorted(base.glob(f"t*_s{int(size)}")) if base.is_dir() else []:
        m = re.fullmatch(rf"t(\d+)_s{int(size)}", d.name)
        if m and (d / split / "index.json").exists():
            options.append((int(m.group(1)), d / split))
    fits = sorted(o for o in options if o[0] >= n_frames)
    if fits:
        return fits[0][1]
    have = ", ".join(f"T={t}" for t, _ in options)
    raise FileNotFoundError(
        f"{name!r} ({split}) is not prepared at size {size} with at least {n_frames} frames under {base}"
        + (f" (prepared: {have})" if have else "") + f"; {_prepare_hint(name, root, n_frames, size)}")


def _check_common(split: str, n_frames: int, size: int, n: int | None, what: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if int(n_frames) < 1:
        raise ValueError(f"n_frames must be >= 1, got {n_frames}")
    if int(size) < 8:
        raise ValueError(f"size must be >= 8, got {size}")
    if n is not None and int(n) < 1:
        raise ValueError(f"{what} must be >= 1, got {n}")


def video_dataset(name: str, split: str, n_frames: int = 8, size: int = 32, root=None, n_clips: int | None = None,
                  seed: int = 0) -> Dataset:
    """A clip dataset with ``classes``, ``tensors()`` and items ``(clip (T, C, size, size) in [0, 1], label)``.

    ``temporal_digits`` is ``TemporalDigits(split, n_clips or 800/400, n_frames, size, seed)``. A real
    dataset returns a ``VideoFolder`` (TSN random segment sampling for ``"train"``, centre frames for
    ``"test"``); ``n_clips`` keeps a seeded random subset (all clips when there are fewer).
    """
    _check_common(split, n_frames, size, n_clips, "n_clips")
    if name == "temporal_digits":
        return TemporalDigits(split, n_clips if n_clips is not None else DEFAULT_CLIPS[split], n_frames, size, seed)
    root_ = _root(root)
    if name not in REAL_VIDEO and not (root_ / name / "prepared").is_dir():
        raise ValueError(f"unknown video dataset {name!r}; use one of {VIDEO_DATASETS} "
                         f"(or a name prepared with `prepare_video folder --name NAME`)")
    path = prepared_split(name, split, int(n_frames), int(size), root_)
    n_total = len(json.loads((path / "index.json").read_text())["labels"])
    indices = None
    if n_clips is not None and int(n_clips) < n_total:
        gen = torch.Generator().manual_seed(int(seed) * 2 + (split == "test"))
        indices = torch.randperm(n_total, generator=gen)[: int(n_clips)]
    return VideoFolder(path, n_frames=int(n_frames), sampling="random" if split == "train" else "center",
                       indices=indices, seed=seed)


def image_dataset(name: str, split: str = "train", size: int = 32, root=None, n_images: int | None = None,
                  seed: int = 0) -> Dataset:
    """An image dataset with ``kind`` and ``tensors()``; values in [-1, 1].

    ``digits`` (1 channel, labels 0-9) and ``digits_100shot`` (``few_shot(100)``; ``"test"`` gives
    the held-out digits) are bundled. ``edges2shoes`` is paired (``kind="paired"``: items ``(edges,
    photo)``), ``horse2zebra`` unpaired (``kind="unpaired"``: items ``(horse, zebra)``), and the
    low-shot sets (``100-shot-obama`` ...) are plain images (their one split is ``"train"``).
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if n_images is not None and int(n_images) < 1:
        raise ValueError(f"n_images must be >= 1, got {n_images}")
    if name == "digits":
        images, labels = load_digits(size, split)
        ds = TensorImages(images, labels, tuple(str(i) for i in range(10)))
    elif name == "digits_100shot":
        fs = few_shot(100, size, seed)
        images, labels = (fs.images, fs.labels) if split == "train" else (fs.heldout_images, fs.heldout_labels)
        ds = TensorImages(images, labels, tuple(str(i) for i in range(10)))
    elif name in ("edges2shoes", "horse2zebra") + LOW_SHOT:
        base = _root(root) / name
        if not (base / ".done").is_dir():
            raise FileNotFoundError(f"{name!r} is not fetched under {base}; run `python -m data_scripts.fetch {name} "
                                    f"--root {_root(root)}` (see docs/DATA.md)")
        if name == "edges2shoes":
            return PairedImageFolder(base / "edges2shoes", split, size, n_images=n_images, seed=seed)
        if name == "horse2zebra":
            return UnpairedImageFolder(base / "horse2zebra", split, size, n_images=n_images, seed=seed)
        if split != "train":
            raise ValueError(f"{name} is a low-shot training set: its only split is 'train'")
        return ImageFolder(base, size, n_images=n_images, seed=seed)
    else:
        raise ValueError(f"unknown image dataset {name!r}; use one of {IMAGE_DATASETS}")
    if n_images is not None and int(n_images) < len(ds):
        keep = torch.randperm(len(ds), generator=torch.Generator().manual_seed(int(seed)))[: int(n_images)]
        ds = TensorImages(ds.images[keep], ds.labels[keep], ds.classes)
    return ds
