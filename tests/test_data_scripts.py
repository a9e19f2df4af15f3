"""data_scripts.fetch against a local HTTP server on 127.0.0.1 (started here, random port).

No test touches any other address: an autouse fixture makes every socket connect / DNS lookup to
anything but 127.0.0.1 fail the test.
"""
from __future__ import annotations

import errno
import hashlib
import http.server
import io
import json
import os
import re
import socket
import tarfile
import threading
import zipfile
from pathlib import Path

import pytest

from data_scripts import fetch as F

LOCAL = "127.0.0.1"


# ------------------------------------------------------------------------------------------- guards
@pytest.fixture(autouse=True)
def _only_localhost(monkeypatch):
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    real_connect, real_getaddrinfo = socket.socket.connect, socket.getaddrinfo

    def connect(self, address):
        if isinstance(address, tuple) and address[0] != LOCAL:
            raise AssertionError(f"a test tried to connect to {address}; only {LOCAL} is allowed")
        return real_connect(self, address)

    def getaddrinfo(host, *args, **kwargs):
        if host not in (LOCAL, None):
            raise AssertionError(f"a test tried to resolve {host!r}; only {LOCAL} is allowed")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


# --------------------------------------------------------------------------------------- the server
class _Handler(http.server.BaseHTTPRequestHandler):
    files: dict[str, bytes] = {}
    truncate_once: set[str] = set()
    log: list[tuple[str, str | None]] = []

    def do_GET(self):  # noqa: N802
        rng = self.headers.get("Range")
        self.log.append((self.path, rng))
        data = self.files.get(self.path)
        if data is None:
            self.send_error(404, "Not Found")
            return
        start = 0
        if rng:
            start = int(re.fullmatch(r"bytes=(\d+)-", rng).group(1))
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        if self.path in self.truncate_once:           # promise everything, send half, hang up
            self.truncate_once.discard(self.path)
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    handler = type("Handler", (_Handler,), {"files": {}, "truncate_once": set(), "log": []})
    httpd = http.server.ThreadingHTTPServer((LOCAL, 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    handler.base = f"http://{LOCAL}:{httpd.server_address[1]}"
    yield handler
    httpd.shutdown()
    httpd.server_close()


def _closed_port() -> int:
    s = socket.socket()
    s.bind((LOCAL, 0))
    port = s.getsockname()[1]
    s.close()
    return port


# ------------------------------------------------------------------------------------------ archives
CONTENT = {"tiny/a.txt": b"hello, clips\n", "tiny/sub/b.bin": os.urandom(1) + bytes(range(256)) * 600}


def _zip(entries: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _tar(entries: dict[str, bytes], links: dict[str, str] | None = None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, data in entries.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tf.addfile(info)
    return buf.getvalue()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _manifest(tmp_path: Path, datasets: dict) -> Path:
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps({"datasets": datasets}))
    return path


def _entry(name, url, data=None, kind="zip", sha=True, size=False, **extra):
    return {"title": name, "homepage": "http://127.0.0.1/home", "kind": "test", "manual": False,
            "extracted_approx_bytes": 1000,
            "files": [{"name": name, "url": url, "sha256": _sha(data) if (sha and data is not None) else None,
                       "bytes": len(data) if (size and data is not None) else None, "approx_bytes": 1000,
                       "extract": kind, **extra}]}


def _check_tree(base: Path) -> None:
    for name, data in CONTENT.items():
        assert (base / name).read_bytes() == data, f"{name} differs after extraction"


# ------------------------------------------------------------------------------------------- tests
def test_truncated_transfer_resumes_with_range(server, tmp_path):
    data = _zip(CONTENT)
    server.files["/tiny.zip"] = data
    server.truncate_once.add("/tiny.zip")
    man = _manifest(tmp_path, {"tiny": _entry("tiny.zip", server.base + "/tiny.zip", data)})
    base = F.fetch("tiny", tmp_path / "data", man, progress=False)
    _check_tree(base)
    ranges = [r for p, r in server.log if p == "/tiny.zip"]
    assert ranges[0] is None and len(ranges) == 2, f"expected one full request then one resume, got {ranges}"
    start = int(ranges[1].split("=")[1].rstrip("-"))
    assert 0 < start < len(data), f"resume should start mid-file, got {ranges[1]}"
    assert not list((base / "downloads").glob("*.part")), ".part file left behind"


def test_part_file_of_an_earlier_run_is_resumed(server, tmp_path):
    data = _tar(CONTENT)
    server.files["/tiny.tar.gz"] = data
    man = _manifest(tmp_path, {"tiny": _entry("tiny.tar.gz", server.base + "/tiny.tar.gz", data, kind="tar.gz",
                                              sha=False, size=True)})
    downloads = tmp_path / "data" / "tiny" / "downloads"
    downloads.mkdir(parents=True)
    (downloads / "tiny.tar.gz.part").write_bytes(data[:1000])
    base = F.fetch("tiny", tmp_path / "data", man, progress=False)
    _check_tree(base)
    assert server.log == [("/tiny.tar.gz", "bytes=1000-")]
    tofu = json.loads((downloads / "TOFU.json").read_text())          # no sha in manifest: recorded
    assert tofu["tiny.tar.gz"]["sha256"] == _sha(data)


def test_second_run_does_nothing(server, tmp_path, capsys):
    data = _zip(CONTENT)
    server.files["/tiny.zip"] = data
    man = _manifest(tmp_path, {"tiny": _entry("tiny.zip", server.base + "/tiny.zip", data)})
    base = F.fetch("tiny", tmp_path / "data", man, progress=False)
    stamp = (base / "tiny" / "a.txt").stat().st_mtime_ns
    n_requests = len(server.log)
    # the second run may not touch the network at all: point it at a closed port
    man2 = _manifest(tmp_path, {"tiny": _entry("tiny.zip", f"http://{LOCAL}:{_closed_port()}/tiny.zip", data)})
    capsys.readouterr()
    assert F.fetch("tiny", tmp_path / "data", man2, progress=False) == base
    assert "nothing to do" in capsys.readouterr().out
    assert len(server.log) == n_requests
    assert (base / "tiny" / "a.txt").stat().st_mtime_ns == stamp, "second run re-extracted"
    (base / "tiny" / "a.txt").write_bytes(b"edited by hand")
    F.fetch("tiny", tmp_path / "data", man2, progress=False, force=True)   # re-verify + re-extract, offline
    assert (base / "tiny" / "a.txt").read_bytes() == CONTENT["tiny/a.txt"]
    assert len(server.log) == n_requests


def test_wrong_checksum_is_refused_and_kept_aside(server, tmp_path):
    data = _zip(CONTENT)
    server.files["/tiny.zip"] = data
    entry = _entry("tiny.zip", server.base + "/tiny.zip", data)
    entry["files"][0]["sha256"] = "0" * 64
    man = _manifest(tmp_path, {"tiny": entry})
    with pytest.raises(F.ChecksumError, match="SHA-256 mismatch.*0000.*moved to"):
        F.fetch("tiny", tmp_path / "data", man, progress=False)
    base = tmp_path / "data" / "tiny"
    assert not (base / "downloads" / "tiny.zip").exists(), "the bad file must not stay under its name"
    assert len(list((base / "downloads").glob("tiny.zip.bad-*"))) == 1
    assert not (base / "tiny").exists() and not (base / ".done").exists(), "a bad archive was extracted"


def test_trust_on_first_use_catches_a_changed_file(server, tmp_path):
    data = _zip(CONTENT)
    server.files["/tiny.zip"] = data
    man = _manifest(tmp_path, {"tiny": _entry("tiny.zip", server.base + "/tiny.zip", data, sha=False)})
    base = F.fetch("tiny", tmp_path / "data", man, progress=False)
    # the source changes under the same name; a fresh fetch must notice
    server.files["/tiny.zip"] = _zip({**CONTENT, "tiny/a.txt": b"tampered\n"})
    (base / "downloads" / "tiny.zip").unlink()
    for marker in (base / ".done").iterdir():
        marker.unlink()
    with pytest.raises(F.ChecksumError, match="TOFU.json"):
        F.fetch("tiny", tmp_path / "data", man, progress=False)
    assert (base / "tiny" / "a.txt").read_bytes() == CONTENT["tiny/a.txt"], "the changed file was used"


def test_http_404_is_a_clear_error(server, tmp_path):
    man = _manifest(tmp_path, {"gone": _entry("gone.zip", server.base + "/gone.zip", b"x")})
    with pytest.raises(F.DownloadError, match="404.*gone.zip.*homepage"):
        F.fetch("gone", tmp_path / "data", man, progress=False)
    assert not list((tmp_path / "data" / "gone").rglob("*.zip"))


def test_offline_is_a_clear_error(tmp_path):
    url = f"http://{LOCAL}:{_closed_port()}/tiny.zip"
    man = _manifest(tmp_path, {"tiny": _entry("tiny.zip", url, b"x")})
    with pytest.raises(F.OfflineError, match="cannot reach 127.0.0.1"):
        F.fetch("tiny", tmp_path / "data", man, progress=False, timeout=5)


def test_free_space_is_checked_before_downloading(server, tmp_path, monkeypatch):
    data = _zip(CONTENT)
    server.files["/tiny.zip"] = data
    man = _manifest(tmp_path, {"tiny": _entry("tiny.zip", server.base + "/tiny.zip", data)})
    monkeypatch.setattr(F, "_free_bytes", lambda path: 10)
    with pytest.raises(F.DiskSpaceError, match="needs about 2.0 KB free.*only 10 B"):
        F.fetch("tiny", tmp_path / "data", man, progress=False)
    assert server.log == [], "downloaded despite too little space"


def test_disk_full_during_download_keeps_the_part_file(server, tmp_path, monkeypatch):
    data = _zip(CONTENT)
    server.files["/tiny.zip"] = data
    man = _manifest(tmp_path, {"tiny": _entry("tiny.zip", server.base + "/tiny.zip", data)})
    monkeypatch.setattr(F, "CHUNK", 4096)
    calls = []

    def write(fh, chunk):
        calls.append(len(chunk))
        if len(calls) > 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        fh.write(chunk)

    monkeypatch.setattr(F, "_write", write)
    with pytest.raises(F.DiskSpaceError, match="disk full.*12288 bytes kept.*resumes"):
        F.fetch("tiny", tmp_path / "data", man, progress=False)
    monkeypatch.setattr(F, "_write", lambda fh, chunk: fh.write(chunk))
    base = F.fetch("tiny", tmp_path / "data", man, progress=False)     # space freed: resume and finish
    _check_tree(base)
    assert server.log[-1] == ("/tiny.zip", "bytes=12288-")


@pytest.mark.parametrize("kind,bad", [
    ("zip", {"../evil.txt": b"x"}),
    ("zip", {"/tmp/evil-abs.txt": b"x"}),
    ("tar.gz", {"../evil.txt": b"x"}),
    ("tar.gz", {"tiny/../../evil.txt": b"x"}),
    ("tar.gz", "symlink"),
])
def test_archive_escaping_the_target_is_refused(server, tmp_path, kind, bad):
    if bad == "symlink":
        data = _tar(CONTENT, links={"tiny/link": "../../../etc"})
    else:
        data = (_zip if kind == "zip" else _tar)({**CONTENT, **bad})
    server.files["/evil"] = data
    man = _manifest(tmp_path, {"evil": _entry("evil", server.base + "/evil", data, kind=kind)})
    with pytest.raises(F.UnsafeArchiveError, match="refusing to extract evil: entry .* outside the target"):
        F.fetch("evil", tmp_path / "data", man, progress=False)
    base = tmp_path / "data" / "evil"
    assert not (tmp_path / "data" / "evil.txt").exists() and not (tmp_path / "evil.txt").exists()
    assert not (base / "tiny").exists(), "part of a refused archive was kept"
    assert not list(base.glob(".staging-*")) and not (base / ".done").exists()


def _split(data: bytes, n: int) -> list[bytes]:
    k = -(-len(data) // n)
    return [data[i * k:(i + 1) * k] for i in range(n)]


def test_manual_dataset_verifies_and_extracts_user_downloaded_parts(tmp_path):
    data = _tar(CONTENT)
    entry = {"title": "gated", "homepage": "http://127.0.0.1/licence", "manual": True,
             "instructions": "Accept the licence first.", "extracted_approx_bytes": 1000,
             "files": [{"name": "gated.tar.gz", "parts": "gated-??", "n_parts": 3, "sha256": _sha(data),
                        "bytes": None, "approx_bytes": 1000, "extract": "tar.gz"},
                       {"name": "gated-labels.csv", "sha256": None, "bytes": None, "extract": "copy",
                        "into": "annotations"}]}
    man = _manifest(tmp_path, {"gated": entry})
    downloads = tmp_path / "data" / "gated" / "downloads"
    with pytest.raises(F.ManualDownloadRequired, match="3 of 3 parts missing.*127.0.0.1/licence.*Accept the licence"):
        F.fetch("gated", tmp_path / "data", man, progress=False)
    downloads.mkdir(parents=True)
    parts = _split(data, 3)
    (downloads / "gated-00").write_bytes(parts[0])
    (downloads / "gated-01.zip").write_bytes(_zip({"gated-01": parts[1]}))   # a part wrapped in a zip
    with pytest.raises(F.ManualDownloadRequired, match="1 of 3 parts missing.*gated-02"):
        F.fetch("gated", tmp_path / "data", man, progress=False)
    (downloads / "gated-02").write_bytes(parts[2])
    (downloads / "gated-labels.csv").write_text("1;Swiping Left\n")
    base = F.fetch("gated", tmp_path / "data", man, progress=False)
    _check_tree(base)
    assert (base / "annotations" / "gated-labels.csv").read_text() == "1;Swiping Left\n"


def test_manual_parts_with_a_wrong_checksum_are_not_extracted(tmp_path):
    data = _tar(CONTENT)
    entry = {"title": "gated", "homepage": "h", "manual": True,
             "files": [{"name": "gated.tar.gz", "parts": "gated-??", "n_parts": 2, "sha256": _sha(data),
                        "extract": "tar.gz"}]}
    man = _manifest(tmp_path, {"gated": entry})
    downloads = tmp_path / "data" / "gated" / "downloads"
    downloads.mkdir(parents=True)
    a, b = _split(data, 2)
    (downloads / "gated-00").write_bytes(a)
    (downloads / "gated-01").write_bytes(b[:-1] + bytes([b[-1] ^ 0xFF]))
    with pytest.raises(F.ChecksumError, match="SHA-256 mismatch"):
        F.fetch("gated", tmp_path / "data", man, progress=False)
    assert not (tmp_path / "data" / "gated" / "tiny").exists()


def test_cli_exit_codes(server, tmp_path, capsys):
    data = _zip(CONTENT)
    server.files["/tiny.zip"] = data
    man = _manifest(tmp_path, {"tiny": _entry("tiny.zip", server.base + "/tiny.zip", data),
                               "gone": _entry("gone.zip", server.base + "/gone.zip", b"x")})
    root = str(tmp_path / "data")
    assert F.main(["tiny", "--root", root, "--manifest", str(man), "--no-progress"]) == 0
    _check_tree(Path(root) / "tiny")
    assert F.main(["gone", "--root", root, "--manifest", str(man), "--no-progress"]) == 1
    assert "error: HTTP 404" in capsys.readouterr().err
    assert F.main(["--list", "--manifest", str(man)]) == 0
    assert "tiny" in capsys.readouterr().out
    assert F.main(["nope", "--root", root, "--manifest", str(man)]) == 1
    assert "unknown dataset 'nope'" in capsys.readouterr().err


def test_the_real_manifest_is_complete_and_honest():
    datasets = F.load_manifest()
    for name in ("ucf101", "hmdb51", "something_something_v2", "jester", "edges2shoes", "horse2zebra",
                 "100-shot-obama", "100-shot-grumpy_cat", "100-shot-panda"):
        assert name in datasets, f"{name} missing from the manifest"
    assert datasets["something_something_v2"]["manual"] and datasets["jester"]["manual"]
    for name, info in datasets.items():
        assert info["homepage"].startswith("http"), name
        assert info.get("extracted_approx_bytes"), f"{name}: no extracted size for the space check"
        for e in info["files"]:
            sha = e.get("sha256")
            assert sha is None or re.fullmatch(r"[0-9a-f]{64}", sha), f"{name}: bad sha256 {sha!r}"
            assert e.get("bytes") or e.get("approx_bytes"), f"{name}/{e['name']}: no size"
            assert e["extract"] in ("zip", "tar", "tar.gz", "rar", "copy"), f"{name}: {e['extract']}"
            if not info.get("manual"):
                assert e["url"].startswith(("http://", "https://")), f"{name}: {e.get('url')}"
    assert "TOFU" in F.describe()


def test_fetch_prepare_and_switch_end_to_end(server, tmp_path):
    """A miniature UCF101 (official layout, frame folders as clips) served locally: fetch -> prepare -> registry."""
    import numpy as np
    from PIL import Image

    from data_scripts import prepare_video
    from effcourse.data.registry import video_dataset

    entries = {"ucfTrainTestlist/classInd.txt": b"1 Jump\n2 Sit\n",
               "ucfTrainTestlist/trainlist01.txt": b"Jump/v_Jump_g08_c01.avi 1\nSit/v_Sit_g08_c01.avi 2\n",
               "ucfTrainTestlist/testlist01.txt": b"Jump/v_Jump_g01_c01.avi\nSit/v_Sit_g01_c01.avi\n"}
    for cls in ("Jump", "Sit"):
        for g in ("g08", "g01"):
            for k in range(5):
                buf = io.BytesIO()
                Image.fromarray(np.full((12, 16, 3), 40 * k, dtype=np.uint8)).save(buf, format="PNG")
                entries[f"UCF-101/{cls}/v_{cls}_{g}_c01.avi/{k:05d}.png"] = buf.getvalue()
    data = _zip(entries)
    server.files["/ucf.zip"] = data
    server.truncate_once.add("/ucf.zip")
    man = _manifest(tmp_path, {"ucf101": _entry("ucf.zip", server.base + "/ucf.zip", data)})
    root = tmp_path / "data"
    F.fetch("ucf101", root, man, progress=False)
    prepare_video.prepare("ucf101", root, n_frames=4, size=8, progress=False)
    train = video_dataset("ucf101", "train", n_frames=2, size=8, root=root)
    x, y = train.tensors()
    assert train.classes == ("Jump", "Sit") and x.shape == (2, 2, 3, 8, 8) and sorted(y.tolist()) == [0, 1]


@pytest.fixture
def tar_as_rar_tool(monkeypatch):
    """No rar tool here: GNU tar has bsdtar's `-tf` / `-xf ARCHIVE -C DIR` interface, so it stands in for the
    command-line path (listing check, extraction, nested archives); the rar format itself is not tested."""
    import shutil as _shutil

    tar = _shutil.which("tar")
    if tar is None:
        pytest.skip("no tar executable")
    monkeypatch.setattr(F, "_rar_tool", lambda: ("bsdtar", tar))


def _plain_tar(entries: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, data in entries.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_rar_path_extracts_nested_archives(server, tmp_path, tar_as_rar_tool):
    inner = {cls: _plain_tar({f"{cls}/{cls}_1.avi": cls.encode()}) for cls in ("brush_hair", "cartwheel")}
    outer = _plain_tar({f"{cls}.rar": data for cls, data in inner.items()})
    server.files["/hmdb.rar"] = outer
    man = _manifest(tmp_path, {"hmdb": _entry("hmdb.rar", server.base + "/hmdb.rar", outer, kind="rar",
                                              nested="rar", into="videos")})
    base = F.fetch("hmdb", tmp_path / "data", man, progress=False)
    assert (base / "videos" / "cartwheel" / "cartwheel_1.avi").read_bytes() == b"cartwheel"
    assert not list((base / "videos").glob("*.rar")), "inner archives should be removed after extraction"


def test_rar_path_refuses_traversal(server, tmp_path, tar_as_rar_tool):
    data = _plain_tar({"ok.txt": b"x", "../evil.txt": b"x"})
    server.files["/evil.rar"] = data
    man = _manifest(tmp_path, {"evil": _entry("evil.rar", server.base + "/evil.rar", data, kind="rar")})
    with pytest.raises(F.UnsafeArchiveError, match="'../evil.txt'"):
        F.fetch("evil", tmp_path / "data", man, progress=False)
    assert not (tmp_path / "data" / "evil.txt").exists() and not (tmp_path / "data" / "evil" / "evil.txt").exists()
    assert not (tmp_path / "data" / "evil" / "ok.txt").exists()


def test_rar_without_a_tool_names_what_to_install(monkeypatch):
    monkeypatch.setattr(F.shutil, "which", lambda name: None)
    with pytest.raises(F.FetchError, match="unrar, 7z .* or bsdtar"):
        F._rar_tool()
