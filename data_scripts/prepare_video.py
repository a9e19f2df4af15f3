"""Turn a fetched video dataset into compact clip tensors that ``effcourse`` can train on.

    python -m data_scripts.prepare_video ucf101 --root DIR --frames 16 --size 32
    python -m data_scripts.prepare_video jester --root DIR --frames 16 --size 32 --max-per-class 200
    python -m data_scripts.prepare_video folder --source MYCLIPS --name mine --root DIR --frames 8 --size 32

Each clip is decoded, ``--frames`` frames are taken at the centres of equal segments of the whole
video, each frame is centre-cropped to a square and resized to ``--size`` (antialiased), and the
clips are stored as uint8 tensors in ``DIR/NAME/prepared/t{T}_s{S}/{train,test}/`` (see
``effcourse.data.video_folder``). Training then samples ``n_frames <= T`` of them TSN-style.

Inputs, by dataset (as ``data_scripts.fetch`` leaves them in ``DIR/NAME``):

    ucf101                  UCF-101/<class>/*.avi + ucfTrainTestlist/ (official split --fold 1..3)
    hmdb51                  videos/<class>/*.avi + testTrainMulti_7030_splits/ (split --fold 1..3)
    something_something_v2  20bn-something-something-v2/<id>.webm + labels/*.json (test = validation)
    jester                  20bn-jester-v1/<id>/<frame>.jpg + annotations/*.csv (test = validation)
    folder                  --source SRC/<split>/<class>/<clip>: any of the clip forms below

A clip is a video file or a folder of frame images (sorted by name). Video files are decoded with
torchcodec or PyAV when installed (``pip install av``; torchvision 0.29's ``torchvision.io`` no longer
decodes video); animated GIFs are decoded with Pillow. Without a decoder, extract frames first
(``ffmpeg -i clip.avi clip/%05d.jpg``) and point ``folder`` at the frame folders.
A second run with the same settings finds the prepared folders and does nothing (``--force`` redoes it).
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Iterable

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageSequence
from tqdm.auto import tqdm

from effcourse.data.video_folder import ClipWriter
from effcourse.data.registry import default_root  # ($EFFCOURSE_DATA or ~/effcourse_data)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}
VIDEO_SUFFIXES = {".avi", ".mp4", ".webm", ".mkv", ".mov", ".mpg", ".mpeg", ".m4v", ".gif"}
DATASETS = ("ucf101", "hmdb51", "something_something_v2", "jester", "folder")


class PrepareError(RuntimeError):
    """The dataset is missing, incomplete, or cannot be decoded; the message says what to do."""


# ------------------------------------------------------------------------------------------- decoding
def _decoder_name() -> str | None:
    for mod in ("torchcodec", "av"):
        try:
            __import__(mod)
            return mod
        except ImportError:
            continue
    return None


def _square_resize(frames: torch.Tensor, size: int) -> torch.Tensor:
    """``(T, C, H, W)`` uint8 -> centre square crop -> ``(T, C, size, size)`` uint8 (antialiased)."""
    _, _, h, w = frames.shape
    s = min(h, w)
    top, left = (h - s) // 2, (w - s) // 2
    x = frames[:, :, top:top + s, left:left + s].float()
    if s != size:
        x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=s > size, align_corners=False)
    return x.round_().clamp_(0, 255).to(torch.uint8)


def _pick(n_total: int, n_frames: int) -> list[int]:
    """Centres of ``n_frames`` equal segments of ``0..n_total-1`` (frames repeat when the clip is short)."""
    if n_total < 1:
        raise PrepareError("the clip has no frames")
    return [min(n_total - 1, int((k + 0.5) * n_total / n_frames)) for k in range(n_frames)]


def _rgb(img: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(img.convert("RGB"), dtype=np.uint8).copy()).permute(2, 0, 1)


def decode_clip(path: str | Path, n_frames: int, size: int) -> torch.Tensor:
    """Decode one clip (video file or frame folder) to uint8 ``(n_frames, 3, size, size)``."""
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise PrepareError(f"{path} is a folder without frame images ({', '.join(sorted(IMAGE_SUFFIXES))})")
        frames = []
        for i in _pick(len(files), n_frames):
            with Image.open(files[i]) as img:
                frames.append(_rgb(img))
        return _square_resize(torch.stack(frames), size)
    if not path.is_file():
        raise PrepareError(f"clip {path} does not exist")
    if path.suffix.lower() == ".gif":
        with Image.open(path) as img:
            all_frames = [_rgb(f) for f in ImageSequence.Iterator(img)]
        return _square_resize(torch.stack([all_frames[i] for i in _pick(len(all_frames), n_frames)]), size)
    decoder = _decoder_name()
    if decoder is None:
        raise PrepareError(f"cannot decode {path.name}: no video decoder installed (torchvision 0.29 has none). "
                           f"Install one with `pip install av` (PyAV), or extract frames with "
                           f"`ffmpeg -i {path.name} {path.stem}/%05d.jpg` and prepare the frame folders.")
    try:
        if decoder == "torchcodec":
            from torchcodec.decoders import VideoDecoder

            dec = VideoDecoder(str(path), dimension_order="NCHW")
            idx = _pick(len(dec), n_frames)
            frames = dec.get_frames_at(indices=idx).data
            return _square_resize(frames, size)
        return _decode_pyav(path, n_frames, size)
    except PrepareError:
        raise
    except Exception as err:  # noqa: BLE001 - decoders raise many types; name the file
        raise PrepareError(f"cannot decode {path} with {decoder}: {err}") from None


def _decode_pyav(path: Path, n_frames: int, size: int) -> torch.Tensor:
    """PyAV: every frame, shrunk while decoding (memory stays small). A file that does not open, has no
    video stream, a codec without a decoder, or fewer frames than its header declares (truncated) raises
    ``PrepareError`` naming the file."""
    import av

    try:
        container = av.open(str(path))
    except Exception as err:  # noqa: BLE001 - av.error.* and OSError
        raise PrepareError(f"cannot open {path}: {_av_reason(err)} (corrupt, truncated, or not a video file)") from None
    with container:
        if not container.streams.video:
            raise PrepareError(f"{path} has no video stream (streams: "
                               f"{', '.join(s.type for s in container.streams) or 'none'})")
        stream = container.streams.video[0]
        if stream.codec_context is None:        # FFmpeg knows no decoder for the stream's codec id
            tag = _fourcc(path)
            raise PrepareError(f"{path}: no decoder for its video stream{f' (codec tag {tag})' if tag else ''} in "
                               f"this PyAV build: an unsupported codec, or a header damaged by truncation. "
                               f"Re-encode it (`ffmpeg -i {path.name} -c:v libx264 {path.stem}-h264.mp4`) or download "
                               f"it again") from None
        codec = stream.codec_context.name
        declared = int(stream.frames or 0)
        stream.thread_type = "AUTO"
        small = []
        try:
            # a loop, not a comprehension: on a decoding error `small` still counts the frames decoded before it
            for frame in container.decode(stream):
                small.append(_square_resize(_rgb(frame.to_image()).unsqueeze(0), size)[0])  # noqa: PERF401
        except Exception as err:  # noqa: BLE001
            raise PrepareError(f"cannot decode {path} (codec {codec}) after {len(small)} frames: {_av_reason(err)} "
                               f"(truncated or corrupt?)") from None
    if not small:
        raise PrepareError(f"{path}: no frame could be decoded (codec {codec}; truncated or corrupt?)")
    if declared and len(small) < 0.9 * declared:
        raise PrepareError(f"{path} is truncated: its header declares {declared} frames, only {len(small)} "
                           f"decoded; download it again")
    return torch.stack([small[i] for i in _pick(len(small), n_frames)])


def _av_reason(err: BaseException) -> str:
    return str(getattr(err, "strerror", None) or err).strip() or type(err).__name__


def _fourcc(path: Path) -> str | None:
    """An AVI's video FourCC (``strh`` ... ``vids`` + handler), for the message; None for other containers."""
    with open(path, "rb") as fh:
        head = fh.read(1 << 16)
    i = head.find(b"vids")
    tag = head[i + 4:i + 8] if i >= 0 else b""
    return tag.decode("ascii") if len(tag) == 4 and tag.isascii() and tag.decode("ascii").isprintable() else None


# ------------------------------------------------------------------------------------------- indexers
Sample = tuple[Path, str]            # (clip path, class name)


def _find_dir(base: Path, name: str) -> Path:
    for cand in (base / name, *(p / name for p in sorted(base.glob("*")) if p.is_dir())):
        if cand.is_dir():
            return cand
    raise PrepareError(f"{base} has no folder {name!r}: fetch the dataset first "
                       f"(`python -m data_scripts.fetch {base.name} --root {base.parent}`)")


def _index_folder(src: Path) -> tuple[list[str], dict[str, list[Sample]]]:
    if not src.is_dir():
        raise PrepareError(f"--source {src} is not a folder (expected SRC/<split>/<class>/<clip>)")
    splits: dict[str, list[Sample]] = {}
    classes: set[str] = set()
    for split_dir in sorted(p for p in src.iterdir() if p.is_dir()):
        samples = []
        for cls in sorted(p for p in split_dir.iterdir() if p.is_dir()):
            for clip in sorted(cls.iterdir()):
                if clip.is_dir() or clip.suffix.lower() in VIDEO_SUFFIXES:
                    samples.append((clip, cls.name))
                    classes.add(cls.name)
        if samples:
            splits[split_dir.name] = samples
    if not splits:
        raise PrepareError(f"no clips found under {src} (expected SRC/<split>/<class>/<clip>)")
    return sorted(classes), splits


def _index_ucf101(base: Path, fold: int) -> tuple[list[str], dict[str, list[Sample]]]:
    videos, lists = _find_dir(base, "UCF-101"), _find_dir(base, "ucfTrainTestlist")
    classes = [ln.split()[1] for ln in (lists / "classInd.txt").read_text().splitlines() if ln.strip()]
    splits = {}
    for split, fname in (("train", f"trainlist0{fold}.txt"), ("test", f"testlist0{fold}.txt")):
        rel = [ln.split()[0] for ln in (lists / fname).read_text().splitlines() if ln.strip()]
        splits[split] = [(videos / r, r.split("/")[0]) for r in rel]
    return classes, splits


def _index_hmdb51(base: Path, fold: int) -> tuple[list[str], dict[str, list[Sample]]]:
    videos, lists = _find_dir(base, "videos"), _find_dir(base, "testTrainMulti_7030_splits")
    splits: dict[str, list[Sample]] = {"train": [], "test": []}
    classes = []
    for f in sorted(lists.glob(f"*_test_split{fold}.txt")):
        cls = f.name[: -len(f"_test_split{fold}.txt")]
        classes.append(cls)
        for ln in f.read_text().splitlines():
            if ln.strip():
                name, tag = ln.split()[:2]
                if tag in ("1", "2"):                      # 1 train, 2 test, 0 unused
                    splits["train" if tag == "1" else "test"].append((videos / cls / name, cls))
    if not classes:
        raise PrepareError(f"no *_test_split{fold}.txt files in {lists}")
    return classes, splits


def _ssv2_label(template: str) -> str:
    return template.replace("[", "").replace("]", "")


def _index_ssv2(base: Path) -> tuple[list[str], dict[str, list[Sample]]]:
    videos = _find_dir(base, "20bn-something-something-v2")
    found = {k: sorted(base.rglob(f"*{k}.json")) for k in ("labels", "train", "validation")}
    if not all(found.values()):
        raise PrepareError(f"labels/*.json (labels, train, validation) not found under {base}: put the labels "
                           f"archive in {base / 'downloads'} and rerun `python -m data_scripts.fetch "
                           f"something_something_v2 --root {base.parent}`")
    label_map = json.loads(found["labels"][0].read_text())          # {"Approaching something ...": "0", ...}
    classes = [k for k, _ in sorted(label_map.items(), key=lambda kv: int(kv[1]))]
    splits = {}
    for split, key in (("train", "train"), ("test", "validation")):
        rows = json.loads(found[key][0].read_text())
        splits[split] = [(videos / f"{r['id']}.webm", _ssv2_label(r["template"])) for r in rows]
    return classes, splits


def _index_jester(base: Path) -> tuple[list[str], dict[str, list[Sample]]]:
    frames = _find_dir(base, "20bn-jester-v1")
    ann = base / "annotations"
    files = {k: ann / f"jester-v1-{k}.csv" for k in ("labels", "train", "validation")}
    missing = [str(p) for p in files.values() if not p.exists()]
    if missing:
        raise PrepareError(f"missing {', '.join(missing)}: put the CSVs in {base / 'downloads'} and rerun "
                           f"`python -m data_scripts.fetch jester --root {base.parent}`")
    classes = [ln.strip() for ln in files["labels"].read_text().splitlines() if ln.strip()]
    splits = {}
    for split, key in (("train", "train"), ("test", "validation")):
        with open(files[key], newline="") as fh:
            splits[split] = [(frames / row[0], row[1]) for row in csv.reader(fh, delimiter=";") if row]
    return classes, splits


def index_dataset(name: str, base: Path, source: Path | None = None, fold: int = 1
                  ) -> tuple[list[str], dict[str, list[Sample]]]:
    """Class names and ``{split: [(clip path, class name), ...]}`` of a fetched dataset."""
    if name == "folder":
        if source is None:
            raise PrepareError("dataset 'folder' needs --source SRC (SRC/<split>/<class>/<clip>)")
        return _index_folder(Path(source))
    if not base.is_dir():
        raise PrepareError(f"{base} does not exist: fetch the dataset first "
                           f"(`python -m data_scripts.fetch {name} --root {base.parent}`)")
    if name == "ucf101":
        return _index_ucf101(base, fold)
    if name == "hmdb51":
        return _index_hmdb51(base, fold)
    if name == "something_something_v2":
        return _index_ssv2(base)
    if name == "jester":
        return _index_jester(base)
    raise PrepareError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")


# -------------------------------------------------------------------------------------------- prepare
def prepared_dir(root: Path, name: str, n_frames: int, size: int) -> Path:
    return Path(root) / name / "prepared" / f"t{int(n_frames)}_s{int(size)}"


def _subsample(samples: list[Sample], max_per_class: int | None, seed: int) -> list[Sample]:
    if not max_per_class:
        return samples
    rng = np.random.default_rng(seed)
    by_class: dict[str, list[Sample]] = defaultdict(list)
    for s in samples:
        by_class[s[1]].append(s)
    keep = []
    for cls in sorted(by_class):
        items = by_class[cls]
        pick = sorted(rng.permutation(len(items))[:max_per_class])
        keep += [items[i] for i in pick]
    return keep


def _decode_job(args: tuple[str, int, int]) -> tuple[torch.Tensor | None, str | None]:
    path, n_frames, size = args
    try:
        return decode_clip(path, n_frames, size), None
    except PrepareError as err:
        return None, str(err)


def prepare(name: str, root: str | Path | None = None, n_frames: int = 16, size: int = 32,
            splits: Iterable[str] | None = None, max_per_class: int | None = None, source: str | Path | None = None,
            out_name: str | None = None, fold: int = 1, workers: int = 1, seed: int = 0, force: bool = False,
            progress: bool = True) -> dict[str, Path]:
    """Prepare ``name`` (see the module doc) and return ``{split: prepared folder}``.

    Clips that fail to decode are skipped with a warning (listed in ``index.json`` under ``skipped``);
    a split where every clip fails raises ``PrepareError``.
    """
    if int(n_frames) < 1 or int(size) < 8:
        raise PrepareError(f"need --frames >= 1 and --size >= 8, got {n_frames} and {size}")
    root = Path(root).expanduser() if root is not None else default_root()
    out_name = out_name or (Path(source).name if name == "folder" and source else name)
    classes, found = index_dataset(name, root / name, Path(source) if source else None, fold)
    wanted = list(splits) if splits else sorted(found)
    unknown = [s for s in wanted if s not in found]
    if unknown:
        raise PrepareError(f"{name} has no split {unknown[0]!r}; it has {', '.join(sorted(found))}")
    class_id = {c: i for i, c in enumerate(classes)}
    out = {}
    for split in wanted:
        dest = prepared_dir(root, out_name, n_frames, size) / split
        settings = {"dataset": name, "fold": fold, "max_per_class": max_per_class, "seed": seed,
                    "source": str(Path(source).resolve()) if source else None}
        if (dest / "index.json").exists() and not force:
            old = json.loads((dest / "index.json").read_text())
            if all(old.get(k) == v for k, v in settings.items()):
                print(f"{out_name}/{split}: already prepared in {dest}; nothing to do (--force redoes it)")
                out[split] = dest
                continue
        samples = _subsample(found[split], max_per_class, seed)
        bad = [c for _, c in samples if c not in class_id]
        if bad:
            raise PrepareError(f"{name}/{split}: class {bad[0]!r} is not in the class list")
        writer = ClipWriter(dest, classes, n_frames, size, 3, meta=settings)
        skipped = []
        jobs = [(str(p), int(n_frames), int(size)) for p, _ in samples]
        with ProcessPoolExecutor(workers) if workers > 1 else _Serial() as pool:
            results = pool.map(_decode_job, jobs, chunksize=8) if workers > 1 else map(_decode_job, jobs)
            for (path, cls), (clip, err) in tqdm(zip(samples, results), total=len(samples),
                                                 desc=f"{out_name}/{split}", disable=not progress):
                if clip is None:
                    skipped.append(f"{path}: {err}")
                    if len(skipped) <= 5:
                        tqdm.write(f"skipping {err}")
                    continue
                writer.add(clip, class_id[cls], str(path.relative_to(root / name) if path.is_relative_to(root / name)
                                                    else path))
        if not writer.labels:
            writer.abort()
            raise PrepareError(f"{name}/{split}: none of {len(samples)} clips could be decoded; first error: "
                               f"{skipped[0] if skipped else '?'}")
        writer.meta["skipped"] = skipped
        out[split] = writer.close()
        print(f"{out_name}/{split}: {len(writer.labels)} clips of {len(classes)} classes -> {out[split]}"
              + (f" ({len(skipped)} skipped)" if skipped else ""))
    return out


class _Serial:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m data_scripts.prepare_video", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("name", choices=DATASETS)
    ap.add_argument("--root", type=Path, help="data folder (default $EFFCOURSE_DATA or ~/effcourse_data)")
    ap.add_argument("--frames", type=int, default=16, help="frames stored per clip, T (default 16)")
    ap.add_argument("--size", type=int, default=32, help="frame height = width in pixels (default 32)")
    ap.add_argument("--splits", nargs="*", help="splits to prepare (default all: train test)")
    ap.add_argument("--max-per-class", type=int, help="keep at most this many clips per class and split")
    ap.add_argument("--fold", type=int, default=1, choices=(1, 2, 3), help="official split of UCF101/HMDB51")
    ap.add_argument("--source", type=Path, help="for 'folder': SRC/<split>/<class>/<clip>")
    ap.add_argument("--name", dest="out_name", help="for 'folder': dataset name under ROOT (default SRC's name)")
    ap.add_argument("--workers", type=int, default=1, help="decoding processes (default 1)")
    ap.add_argument("--seed", type=int, default=0, help="seed of --max-per-class subsampling")
    ap.add_argument("--force", action="store_true", help="prepare again even when already prepared")
    args = ap.parse_args(argv)
    try:
        prepare(args.name, args.root, args.frames, args.size, args.splits, args.max_per_class, args.source,
                args.out_name, args.fold, args.workers, args.seed, args.force)
    except PrepareError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
