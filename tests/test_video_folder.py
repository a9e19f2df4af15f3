"""Video prepare + VideoFolder + the DATASET registry, on tiny clip sets written here; image folders too."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from PIL import Image

from data_scripts import prepare_video as P
from effcourse.data import TemporalDigits
from effcourse.data.digits import load_digits
from effcourse.data.image_folder import ImageFolder, PairedImageFolder, UnpairedImageFolder
from effcourse.data.registry import image_dataset, video_dataset
from effcourse.data.video_folder import ClipWriter, VideoFolder, segment_indices

CLASSES = ("brighten", "darken")
N_WRITTEN = 12          # frames written per clip


def _levels(label: int, n: int = N_WRITTEN) -> np.ndarray:
    up = np.linspace(20, 235, n)
    return up if label == 0 else up[::-1]


def _frame(level: float, h: int = 24, w: int = 30) -> Image.Image:
    a = np.full((h, w, 3), level, dtype=np.uint8)
    a[..., 1] = 255 - a[..., 1]                       # green runs the other way: channel order matters
    return Image.fromarray(a)


def _write_clip_folder(folder, label):
    folder.mkdir(parents=True)
    for k, lv in enumerate(_levels(label)):
        _frame(lv).save(folder / f"{k + 1:05d}.png")


def _write_gif(path, label):
    frames = [_frame(lv) for lv in _levels(label)]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=40, loop=0)


@pytest.fixture(scope="module")
def clipset(tmp_path_factory):
    """SRC/<split>/<class>/<clip>: PNG frame folders and one animated GIF per class and split."""
    src = tmp_path_factory.mktemp("clips") / "mini"
    for split, n in (("train", 3), ("test", 2)):
        for label, cls in enumerate(CLASSES):
            for i in range(n):
                _write_clip_folder(src / split / cls / f"clip{i}", label)
            (src / split / cls).mkdir(parents=True, exist_ok=True)
            _write_gif(src / split / cls / "anim.gif", label)
    return src


@pytest.fixture(scope="module")
def prepared(clipset, tmp_path_factory):
    """The clip set prepared at T=6, 16x16 under the name 'ucf101' (so the registry finds it)."""
    root = tmp_path_factory.mktemp("data")
    out = P.prepare("folder", root, n_frames=6, size=16, source=clipset, out_name="ucf101", progress=False)
    return root, out


# --------------------------------------------------------------------------------------- sampling
@pytest.mark.parametrize("n_stored,n", [(16, 8), (10, 3), (7, 7), (5, 8), (1, 4), (33, 5)])
def test_segment_sampling_takes_one_frame_per_segment(n_stored, n):
    centre = segment_indices(n_stored, n, "center")
    assert centre.shape == (n,) and centre.min() >= 0 and centre.max() < n_stored
    assert (centre.diff() >= 0).all(), f"centre indices not in order: {centre}"
    gen = torch.Generator().manual_seed(0)
    seen = set()
    for _ in range(50):
        idx = segment_indices(n_stored, n, "random", gen)
        assert idx.min() >= 0 and idx.max() < n_stored and (idx.diff() >= 0).all(), idx
        if n_stored >= n:               # each index lies in its own segment [floor(k*L), floor((k+1)*L))
            lo = [int(k * n_stored / n) for k in range(n)]
            hi = [int((k + 1) * n_stored / n) for k in range(n)]
            assert all(a <= i < b for a, i, b in zip(lo, idx.tolist(), hi)), f"index outside its segment: {idx}"
        seen.add(tuple(idx.tolist()))
    if n_stored >= 2 * n:
        assert len(seen) > 1, "random sampling never varied"


def test_segment_sampling_rejects_bad_input():
    with pytest.raises(ValueError, match="n_stored"):
        segment_indices(0, 4)
    with pytest.raises(ValueError, match="sampling"):
        segment_indices(8, 4, "uniform")


# ---------------------------------------------------------------------------------------- prepare
def test_prepare_writes_compact_ordered_clips(prepared):
    root, out = prepared
    assert set(out) == {"train", "test"}
    ds = VideoFolder(out["train"])
    assert ds.classes == CLASSES and len(ds) == 2 * (3 + 1)
    x, y = ds.tensors()
    assert x.shape == (8, 6, 3, 16, 16) and x.dtype == torch.float32
    assert 0.0 <= x.min() and x.max() <= 1.0
    shard = torch.load(out["train"] / "shard_00000.pt", weights_only=True)
    assert shard.dtype == torch.uint8, "clips must be stored as uint8"
    red = x[:, :, 0].mean(dim=(-1, -2))                            # (N, T) brightness of the red channel
    for clip_red, label in zip(red, y):
        expect = torch.tensor(_levels(int(label))[P._pick(N_WRITTEN, 6)] / 255.0, dtype=torch.float32)
        torch.testing.assert_close(clip_red, expect, atol=2 / 255, rtol=0)
    torch.testing.assert_close(x[:, :, 1], 1 - x[:, :, 0], atol=2 / 255, rtol=0)    # RGB kept in order


def test_second_prepare_does_nothing(prepared, clipset, capsys):
    root, out = prepared
    stamp = (out["train"] / "index.json").stat().st_mtime_ns
    capsys.readouterr()
    P.prepare("folder", root, n_frames=6, size=16, source=clipset, out_name="ucf101", progress=False)
    assert capsys.readouterr().out.count("nothing to do") == 2
    assert (out["train"] / "index.json").stat().st_mtime_ns == stamp


def test_max_per_class_and_skipped_clips(clipset, tmp_path):
    bad = tmp_path / "src"
    import shutil
    shutil.copytree(clipset, bad)
    (bad / "train" / "darken" / "broken").mkdir()                  # a folder without frames
    out = P.prepare("folder", tmp_path, 4, 8, splits=["train"], source=bad, out_name="mini",
                    max_per_class=10, progress=False)
    index = json.loads((out["train"] / "index.json").read_text())
    assert len(index["labels"]) == 8 and len(index["skipped"]) == 1 and "broken" in index["skipped"][0]
    out = P.prepare("folder", tmp_path, 4, 8, splits=["train"], source=bad, out_name="mini2", max_per_class=1,
                    progress=False)
    assert sorted(json.loads((out["train"] / "index.json").read_text())["labels"]) == [0, 1]


def test_prepare_errors_are_clear(tmp_path, monkeypatch):
    with pytest.raises(P.PrepareError, match="python -m data_scripts.fetch ucf101"):
        P.prepare("ucf101", tmp_path, progress=False)
    with pytest.raises(P.PrepareError, match="--source"):
        P.prepare("folder", tmp_path, progress=False)
    video = tmp_path / "clip.avi"
    video.write_bytes(b"not really a video")
    monkeypatch.setattr(P, "_decoder_name", lambda: None)
    with pytest.raises(P.PrepareError, match="pip install av.*ffmpeg"):
        P.decode_clip(video, 4, 16)


def test_clip_writer_checks_shapes(tmp_path):
    w = ClipWriter(tmp_path / "x", ["a"], 4, 8)
    with pytest.raises(ValueError, match="uint8 of shape"):
        w.add(torch.zeros(4, 3, 8, 8), 0)
    with pytest.raises(ValueError, match="label 3 out of range"):
        w.add(torch.zeros(4, 3, 8, 8, dtype=torch.uint8), 3)
    w.abort()
    assert not (tmp_path / "x").exists() and not (tmp_path / "x.tmp").exists()


def test_pyav_video_file_is_decoded(tmp_path):
    import av               # the [video] extra, installed by `make test`: this case never skips
    path = tmp_path / "clip.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264rgb" if "libx264rgb" in av.codecs_available else "mpeg4", rate=12)
        stream.width, stream.height = 32, 24
        stream.pix_fmt = "rgb24" if stream.codec_context.name == "libx264rgb" else "yuv420p"
        for lv in _levels(0):
            for packet in stream.encode(av.VideoFrame.from_image(_frame(lv, 24, 32))):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    clip = P.decode_clip(path, 6, 16)
    assert clip.shape == (6, 3, 16, 16) and clip.dtype == torch.uint8
    red = clip[:, 0].float().mean(dim=(-1, -2))
    expect = torch.tensor(_levels(0)[P._pick(N_WRITTEN, 6)], dtype=torch.float32)
    torch.testing.assert_close(red, expect, atol=12, rtol=0)        # lossy codec


# ------------------------------------------------------------------------------------- indexers
def test_official_layouts_are_indexed(tmp_path):
    # UCF101
    base = tmp_path / "ucf101"
    (base / "ucfTrainTestlist").mkdir(parents=True)
    (base / "ucfTrainTestlist" / "classInd.txt").write_text("1 ApplyEyeMakeup\n2 Archery\n")
    (base / "ucfTrainTestlist" / "trainlist01.txt").write_text(
        "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1\nArchery/v_Archery_g08_c01.avi 2\n")
    (base / "ucfTrainTestlist" / "testlist01.txt").write_text("Archery/v_Archery_g01_c01.avi\n")
    (base / "UCF-101").mkdir()
    classes, splits = P.index_dataset("ucf101", base)
    assert classes == ["ApplyEyeMakeup", "Archery"]
    assert splits["train"][1] == (base / "UCF-101" / "Archery" / "v_Archery_g08_c01.avi", "Archery")
    assert len(splits["test"]) == 1
    # HMDB51: 1 train, 2 test, 0 unused
    base = tmp_path / "hmdb51"
    (base / "testTrainMulti_7030_splits").mkdir(parents=True)
    (base / "videos").mkdir()
    (base / "testTrainMulti_7030_splits" / "brush_hair_test_split1.txt").write_text("a.avi 1 \nb.avi 2 \nc.avi 0 \n")
    classes, splits = P.index_dataset("hmdb51", base)
    assert classes == ["brush_hair"] and [p.name for p, _ in splits["train"]] == ["a.avi"]
    assert [p.name for p, _ in splits["test"]] == ["b.avi"]
    # Something-Something v2: templates with [something] -> label names; test = validation
    base = tmp_path / "something_something_v2"
    (base / "labels" / "labels").mkdir(parents=True)
    (base / "20bn-something-something-v2").mkdir()
    lab = base / "labels" / "labels"
    (lab / "something-something-v2-labels.json").write_text(json.dumps(
        {"Pushing something from left to right": "1", "Approaching something with your camera": "0"}))
    (lab / "something-something-v2-train.json").write_text(json.dumps(
        [{"id": "78687", "template": "Pushing [something] from left to right", "label": "x", "placeholders": []}]))
    (lab / "something-something-v2-validation.json").write_text(json.dumps(
        [{"id": "5", "template": "Approaching [something] with your camera", "label": "y", "placeholders": []}]))
    classes, splits = P.index_dataset("something_something_v2", base)
    assert classes == ["Approaching something with your camera", "Pushing something from left to right"]
    assert splits["train"] == [(base / "20bn-something-something-v2" / "78687.webm",
                                "Pushing something from left to right")]


def test_jester_frame_folders_prepare_end_to_end(tmp_path):
    base = tmp_path / "jester"
    (base / "annotations").mkdir(parents=True)
    (base / "annotations" / "jester-v1-labels.csv").write_text("\n".join(CLASSES) + "\n")
    for split, ids in (("train", (1, 2, 3, 4)), ("validation", (5, 6))):
        with open(base / "annotations" / f"jester-v1-{split}.csv", "w", newline="") as fh:
            w = csv.writer(fh, delimiter=";")
            for i in ids:
                w.writerow([i, CLASSES[i % 2]])
                _write_clip_folder(base / "20bn-jester-v1" / str(i), i % 2)
    out = P.prepare("jester", tmp_path, 4, 8, progress=False)
    test = video_dataset("jester", "test", n_frames=4, size=8, root=tmp_path)
    assert len(test) == 2 and test.classes == CLASSES and out["test"] == test.path
    x, y = test.tensors()
    red = x[:, :, 0].mean(dim=(-1, -2))
    for r, label in zip(red, y):
        assert (r.diff() > 0).all() if label == 0 else (r.diff() < 0).all(), "frame order lost"


# ------------------------------------------------------------------------------------- registry
def test_registry_temporal_digits_is_the_default_dataset():
    ds = video_dataset("temporal_digits", "train", n_frames=4, size=16, n_clips=16, seed=3)
    ref = TemporalDigits("train", 16, 4, 16, 3)
    assert isinstance(ds, TemporalDigits)
    assert torch.equal(ds.tensors()[0], ref.tensors()[0]) and torch.equal(ds.tensors()[1], ref.tensors()[1])
    assert len(video_dataset("temporal_digits", "test", n_frames=2, size=8)) == 400


def test_registry_real_dataset_switch(prepared):
    root, _ = prepared
    train = video_dataset("ucf101", "train", n_frames=4, size=16, root=root, n_clips=5, seed=1)
    test = video_dataset("ucf101", "test", n_frames=4, size=16, root=root)
    assert isinstance(train, VideoFolder) and len(train) == 5 and len(test) == 6
    assert train.classes == CLASSES
    clip, label = train[0]
    assert clip.shape == (4, 3, 16, 16) and isinstance(label, int)
    x, y = train.tensors()
    assert x.shape == (5, 4, 3, 16, 16) and y.shape == (5,)
    draws = {tuple(train[0][0][:, 0].mean(dim=(-1, -2)).tolist()) for _ in range(20)}
    assert len(draws) > 1, "training clips should use random TSN segment sampling"
    assert torch.equal(test[0][0], test[0][0]), "test clips must be deterministic"
    again = video_dataset("ucf101", "train", n_frames=4, size=16, root=root, n_clips=5, seed=1)
    assert torch.equal(again.labels, train.labels), "the n_clips subset must depend only on the seed"


def test_registry_errors_name_the_command(tmp_path, prepared):
    with pytest.raises(FileNotFoundError, match=r"python -m data_scripts.fetch hmdb51 --root .*"
                                                r"python -m data_scripts.prepare_video hmdb51 --root .* --size 32"):
        video_dataset("hmdb51", "train", root=tmp_path)
    root, _ = prepared
    with pytest.raises(FileNotFoundError, match="at least 12 frames.*prepared: T=6"):
        video_dataset("ucf101", "train", n_frames=12, size=16, root=root)
    with pytest.raises(ValueError, match="unknown video dataset 'kinetics'"):
        video_dataset("kinetics", "train", root=tmp_path)
    with pytest.raises(ValueError, match="split must be one of"):
        video_dataset("temporal_digits", "val")


# ---------------------------------------------------------------------------------- image folders
def _pair_image(color_a, color_b, h=20, w=20):
    a = np.zeros((h, 2 * w, 3), dtype=np.uint8)
    a[:, :w] = color_a
    a[:, w:] = color_b
    return Image.fromarray(a)


def test_paired_unpaired_and_plain_image_folders(tmp_path):
    (tmp_path / "p" / "val").mkdir(parents=True)
    for i in range(3):
        _pair_image((255, 255, 255), (0, 0, 0)).save(tmp_path / "p" / "val" / f"{i}_AB.jpg")
    paired = PairedImageFolder(tmp_path / "p", "test", size=8)          # pix2pix's "val" is the test split
    a, b = paired.tensors()
    assert a.shape == b.shape == (3, 3, 8, 8) and paired.kind == "paired"
    assert a.min() > 0.9 and b.max() < -0.9, "A must be the left half, B the right half"
    a2, b2 = PairedImageFolder(tmp_path / "p", "test", 8, direction="BtoA")[0]
    assert torch.equal(a2, b[0]) and torch.equal(b2, a[0])

    for d, n, color in (("trainA", 3, 200), ("trainB", 5, 10)):
        (tmp_path / "u" / d).mkdir(parents=True)
        for i in range(n):
            Image.fromarray(np.full((12, 16, 3), color, dtype=np.uint8)).save(tmp_path / "u" / d / f"{i}.png")
    unpaired = UnpairedImageFolder(tmp_path / "u", "train", size=8)
    A, B = unpaired.tensors()
    assert A.shape == (3, 3, 8, 8) and B.shape == (5, 3, 8, 8) and len(unpaired) == 5
    assert unpaired[4][0].mean() > 0.5 and unpaired[4][1].mean() < -0.5
    with pytest.raises(FileNotFoundError, match="testA"):
        UnpairedImageFolder(tmp_path / "u", "test")

    plain = ImageFolder(tmp_path / "u", size=8, n_images=4, seed=0)
    x, y = plain.tensors()
    assert x.shape == (4, 3, 8, 8) and -1 <= x.min() and x.max() <= 1 and (y == 0).all()


def test_image_registry(tmp_path):
    digits = image_dataset("digits", "train", size=16)
    x, y = digits.tensors()
    ref, _ = load_digits(16, "train")
    assert x.shape[1:] == (1, 16, 16) and torch.equal(x, ref) and len(x) == len(y)
    assert len(image_dataset("digits_100shot", "train", 16)) == 100
    assert len(image_dataset("digits", "test", 16, n_images=10)) == 10
    with pytest.raises(FileNotFoundError, match="python -m data_scripts.fetch horse2zebra --root"):
        image_dataset("horse2zebra", root=tmp_path)
    base = tmp_path / "edges2shoes"
    (base / ".done").mkdir(parents=True)
    (base / "edges2shoes" / "train").mkdir(parents=True)
    _pair_image((0, 0, 0), (255, 0, 0)).save(base / "edges2shoes" / "train" / "1_AB.jpg")
    ds = image_dataset("edges2shoes", "train", size=8, root=tmp_path)
    assert ds.kind == "paired" and ds[0][0].shape == (3, 8, 8)
    with pytest.raises(ValueError, match="unknown image dataset"):
        image_dataset("celeba")


def test_lab_training_loop_runs_on_a_prepared_dataset(prepared):
    """The video labs' plumbing takes a VideoFolder unchanged; only classes/channels come from the data."""
    from effcourse import video
    from effcourse.training import Loop
    from effcourse.video.train import accuracy, train_classifier

    root, _ = prepared
    train = video_dataset("ucf101", "train", n_frames=4, size=16, root=root)
    test = video_dataset("ucf101", "test", n_frames=4, size=16, root=root)
    x, _ = train.tensors()
    backbone = video.resnet2d(num_classes=len(train.classes), in_channels=x.shape[2])
    model = video.ClipClassifier(backbone, 4, lambda logits, t: logits.reshape(-1, t, logits.shape[-1]).mean(1))
    hist = train_classifier(model, train, Loop(steps=2, batch_size=4))
    assert len(hist["loss"]) == 2 and 0.0 <= accuracy(model, test) <= 1.0
