"""Fetch, verify and extract the real datasets listed in ``data_scripts/manifest.json``.

    python -m data_scripts.fetch --list                      # what is known, sizes, manual or not
    python -m data_scripts.fetch NAME [NAME ...] --root DIR  # download (resuming), verify, extract

Everything for ``NAME`` lives in ``DIR/NAME/``: archives in ``downloads/``, the extracted files beside
them, and a marker per archive in ``.done/`` so that a second run does nothing.

* Transfers go through pooch (``pooch.HTTPDownloader`` over requests, pooch's retries) and resume with
  HTTP ``Range`` from ``downloads/<file>.part`` (after an interrupted transfer, in the same run, up to
  ``--retries`` times, or in a later run); pooch itself has no resume, so that part is ours.
* Each file is checked against the SHA-256 or size in the manifest. Where the source publishes none,
  the first download's SHA-256 and size are recorded in ``DIR/NAME/downloads/TOFU.json`` (trust on first use)
  and later runs are checked against them. A file that fails is moved to ``<file>.bad-<time>`` and
  never used.
* Free space is checked against the manifest's sizes before anything is written; a full disk during
  a transfer keeps the ``.part`` file so the next run resumes.
* Archives are extracted into a staging folder and moved into place only when complete. Entries that
  would land outside the target (absolute paths, ``..``, links pointing out, devices) make the whole
  archive refused (checked here before ``pooch.Unzip`` / ``pooch.Untar`` extract; a tar split in parts
  streams through ``tarfile``); rar needs ``unrar``, ``7z`` or ``bsdtar``. Hashes: ``pooch.file_hash``.

Needs the ``[data]`` extra (``pip install pooch``); ``prepare_video`` needs ``[video]`` (PyAV).
* Licence-gated sets (``"manual": true``: Something-Something v2, Jester) are not downloaded: put the
  files you downloaded in ``DIR/NAME/downloads/`` (or pass ``--downloads PATH``), then run this.

Tests point a manifest at a local server with ``--manifest PATH`` (or ``fetch(..., manifest=...)``).
"""
from __future__ import annotations

import argparse
import errno
import fnmatch
import hashlib
import json
import os
import posixpath
import shutil
import subprocess
import sys
import tarfile
import time
import urllib.parse
import zipfile
from pathlib import Path
from typing import Any, Iterable

import pooch
from tqdm.auto import tqdm

from effcourse.data.registry import default_root  # noqa: F401  ($EFFCOURSE_DATA or ~/effcourse_data)

HERE = Path(__file__).resolve().parent
MANIFEST = HERE / "manifest.json"
CHUNK = 1 << 16          # a broken transfer resumes from the last whole chunk written
USER_AGENT = "effcourse-data-fetch/0.2 (+pooch)"
pooch.get_logger().setLevel("WARNING")


class FetchError(RuntimeError):
    """Base class: every failure of this script is one of these, with a message saying what to do."""


class OfflineError(FetchError):
    """The server could not be reached (no network, DNS failure, connection refused, timeout)."""


class DownloadError(FetchError):
    """The server answered with an error (404, 403, 5xx) or the transfer kept breaking."""


class ChecksumError(FetchError):
    """A file does not match its SHA-256 / size (manifest or trust-on-first-use record)."""


class DiskSpaceError(FetchError):
    """Not enough free space, checked up front or hit (ENOSPC) while writing."""


class UnsafeArchiveError(FetchError):
    """An archive has entries that would be written outside the target folder."""


class ManualDownloadRequired(FetchError):
    """A licence-gated dataset whose files are not (all) in the downloads folder yet."""


def load_manifest(path: str | Path | None = None) -> dict[str, dict[str, Any]]:
    """The ``datasets`` table of a manifest file (default: ``data_scripts/manifest.json``)."""
    path = Path(path) if path is not None else MANIFEST
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise FetchError(f"manifest {path} does not exist") from None
    except json.JSONDecodeError as err:
        raise FetchError(f"manifest {path} is not valid JSON: {err}") from None
    datasets = data.get("datasets")
    if not isinstance(datasets, dict) or not datasets:
        raise FetchError(f"manifest {path} has no 'datasets' table")
    for name, entry in datasets.items():
        if not entry.get("files"):
            raise FetchError(f"manifest {path}: dataset {name!r} lists no files")
    return datasets


# ---------------------------------------------------------------------------------------------- helpers
def _human(n: float | None) -> str:
    if n is None:
        return "unknown size"
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def _free_bytes(path: Path) -> int:
    """Free bytes on the file system holding ``path`` (or its nearest existing parent)."""
    path = Path(path).absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return shutil.disk_usage(path).free


def _write(fh, data: bytes) -> None:
    """One write of a download; a separate function so tests can simulate a full disk."""
    fh.write(data)


def _is_enospc(err: BaseException) -> bool:
    return isinstance(err, OSError) and err.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", -1))


def _sha256_files(paths: Iterable[Path], progress: bool, desc: str) -> tuple[str, int]:
    """SHA-256 of one file (``pooch.file_hash``) or of the concatenation of its ordered parts."""
    paths = list(paths)
    total = sum(p.stat().st_size for p in paths)
    if len(paths) == 1:
        return pooch.file_hash(str(paths[0]), alg="sha256"), total
    h = hashlib.sha256()
    for p in tqdm(paths, desc=f"sha256 {desc}", disable=not progress, leave=False):
        with open(p, "rb") as fh:
            for chunk in iter(lambda: fh.read(CHUNK), b""):
                h.update(chunk)
    return h.hexdigest(), total


def _put_aside(paths: list[Path]) -> list[Path]:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    moved = []
    for p in paths:
        if p.exists():
            dst = p.with_name(f"{p.name}.bad-{stamp}")
            p.replace(dst)
            moved.append(dst)
    return moved


# ------------------------------------------------------------------------------------------ verification
def verify(paths: list[Path], entry: dict[str, Any], tofu_file: Path, progress: bool = True,
           put_aside: bool = True) -> str:
    """Check ``paths`` (one file, or the ordered parts of one) against ``entry``'s sha256/bytes.

    Without a published checksum the SHA-256 is recorded in ``tofu_file`` on first use and compared
    on later runs. On a mismatch the file(s) are renamed ``*.bad-<time>`` (never used) and
    ``ChecksumError`` is raised. Returns the SHA-256.
    """
    name = entry["name"]
    got_bytes = sum(p.stat().st_size for p in paths)
    want_bytes, want_sha = entry.get("bytes"), entry.get("sha256")
    tofu = json.loads(tofu_file.read_text()) if tofu_file.exists() else {}
    source = "the manifest"
    if want_sha is None and name in tofu:
        want_sha, want_bytes, source = tofu[name]["sha256"], tofu[name]["bytes"], f"{tofu_file} (first download)"

    def fail(what: str) -> None:
        moved = _put_aside(paths) if put_aside else []
        where = (f"moved to {', '.join(str(m) for m in moved)} and will not be used" if moved
                 else "left in place and not used")
        hint = (f" If you trust the new file, delete its entry from {tofu_file} and rerun." if source != "the manifest"
                else "")
        raise ChecksumError(f"{name}: {what} (expected from {source}); the file was {where}. Rerun to download "
                            f"it again; if it fails again the source changed or the transfer is being altered.{hint}")

    if want_bytes is not None and got_bytes != int(want_bytes):
        fail(f"size mismatch: expected {want_bytes} bytes, got {got_bytes}")
    sha, _ = _sha256_files(paths, progress, name)
    if want_sha is not None and sha != want_sha.lower():
        fail(f"SHA-256 mismatch: expected {want_sha}, got {sha}")
    if want_sha is None:
        tofu[name] = {"sha256": sha, "bytes": got_bytes, "recorded": time.strftime("%Y-%m-%d %H:%M:%S")}
        tofu_file.parent.mkdir(parents=True, exist_ok=True)
        tofu_file.write_text(json.dumps(tofu, indent=2) + "\n")
        print(f"{name}: no published checksum; recorded SHA-256 {sha} ({got_bytes} bytes) in {tofu_file} "
              f"(trust on first use: later runs are checked against it)")
    return sha


# -------------------------------------------------------------------------------------------- download
class _Part:
    """Pooch's downloader writes here: ``dest.part``, appended to when the server honours the Range
    request (a 206 reply) and started afresh when it does not (the response hook tells which)."""

    def __init__(self, part: Path, have: int):
        self.part, self.have, self.fh = part, have, None

    def on_response(self, resp, *args, **kwargs):
        if self.have and resp.status_code == 200:
            print(f"{self.part.name}: the server ignored the Range request; restarting from byte 0")
            self.have = 0
        return resp

    def write(self, data: bytes) -> None:
        if self.fh is None:
            self.fh = open(self.part, "ab" if self.have else "wb")  # noqa: SIM115 - open across write() calls; close() shuts it
        _write(self.fh, data)

    def flush(self) -> None:
        if self.fh is not None:
            self.fh.flush()

    def close(self) -> None:
        if self.fh is not None:
            self.fh.close()
            self.fh = None


def _resuming_downloader(part: Path, size: int | None, timeout: float, progress: bool):
    """A pooch downloader (``(url, output_file, pooch)``) that resumes ``part`` with HTTP Range through
    ``pooch.HTTPDownloader`` and hands the complete file to pooch as ``output_file``. A break in the
    transfer raises requests' exception, which pooch retries (the next call resumes); a server's
    refusal (4xx/5xx) and an unreachable server are ``FetchError``s, which pooch does not retry."""
    import requests

    def download(url: str, output_file: str, pooch_obj) -> None:
        have = part.stat().st_size if part.exists() else 0
        if size is not None and have > size:
            part.unlink()
            have = 0
        if size is None or have < size:
            sink = _Part(part, have)
            headers = {"User-Agent": USER_AGENT, **({"Range": f"bytes={have}-"} if have else {})}
            get = pooch.HTTPDownloader(progressbar=progress, timeout=timeout, chunk_size=CHUNK, headers=headers,
                                       hooks={"response": sink.on_response})
            try:
                get(url, sink, pooch_obj)
            except requests.HTTPError as err:
                code = err.response.status_code
                if not (code == 416 and have):            # 416 after a resume: the .part file is complete
                    if code == 404:
                        raise DownloadError(f"HTTP 404 Not Found: {url} — the file has moved or was removed. Check "
                                            f"the dataset's homepage for its current address and fix 'url' in the "
                                            f"manifest.") from None
                    raise DownloadError(f"HTTP {code} {err.response.reason} from {url}") from None
            except (requests.ConnectionError, requests.Timeout) as err:
                if part.exists() and part.stat().st_size > have:
                    raise                               # broke during the transfer: pooch retries, we resume
                host = urllib.parse.urlsplit(url).netloc
                raise OfflineError(f"cannot reach {host} ({type(err).__name__}): offline, behind a proxy, or the "
                                   f"server is down. Nothing was lost; rerun when the network is back (downloads "
                                   f"resume).") from None
            finally:
                sink.close()
            if size is not None and part.stat().st_size < size:
                raise requests.exceptions.ChunkedEncodingError("the connection closed early")
        part.replace(output_file)

    return download


def download(url: str, dest: str | Path, size: int | None = None, retries: int = 3, timeout: float = 30.0,
             progress: bool = True) -> Path:
    """Download ``url`` to ``dest`` with pooch (``retries`` retries), through ``dest.part``, resuming with
    HTTP Range: an interrupted transfer resumes from the bytes already on disk, in this call or a
    later one. ``dest`` appears only when the transfer is complete (checksums: ``verify``)."""
    import requests

    dest = Path(dest)
    part = dest.with_name(dest.name + ".part")
    dest.parent.mkdir(parents=True, exist_ok=True)
    fetcher = pooch.create(path=dest.parent, base_url="", registry={dest.name: None}, urls={dest.name: url},
                           retry_if_failed=retries)
    try:
        fetcher.fetch(dest.name, downloader=_resuming_downloader(part, size, timeout, progress))
    except requests.RequestException as err:
        got = part.stat().st_size if part.exists() else 0
        raise DownloadError(f"{dest.name}: transfer interrupted {retries + 1} times ({err}); {got} bytes are kept "
                            f"in {part}; rerun to resume.") from None
    except OSError as err:
        if _is_enospc(err):
            kept = part.stat().st_size if part.exists() else 0
            raise DiskSpaceError(f"disk full while writing {part} ({kept} bytes kept): free some space "
                                 f"(or use another --root) and rerun; the download resumes.") from None
        raise
    return dest


# ------------------------------------------------------------------------------------------ extraction
def _unsafe(name: str) -> str | None:
    """Why an archive entry name would escape the target folder, or None when it is safe."""
    norm = name.replace("\\", "/")
    if norm.startswith("/") or (len(norm) > 1 and norm[1] == ":"):
        return "absolute path"
    norm = posixpath.normpath(norm)
    if norm == ".." or norm.startswith("../"):
        return "path escapes the target with '..'"
    return None


def _refuse(archive: Path, member: str, why: str) -> None:
    raise UnsafeArchiveError(f"refusing to extract {archive.name}: entry {member!r} would be written outside the "
                             f"target folder ({why}). Nothing from it was kept. The archive is corrupt or malicious; "
                             f"delete it and download it again from the dataset's homepage.")


def _extract_zip(archive: Path, staging: Path) -> None:
    """Refuse the whole archive if one entry would land outside ``staging``; else ``pooch.Unzip``."""
    with zipfile.ZipFile(archive) as zf:
        for info in zf.infolist():
            why = _unsafe(info.filename)
            if why is None and (info.external_attr >> 16) & 0o170000 == 0o120000:
                why = "symbolic link"
            if why:
                _refuse(archive, info.filename, why)
    pooch.Unzip(extract_dir=str(staging.resolve()))(str(archive), "download", None)


class _Concat:
    """A read-only stream over several files in order (the split parts of one .tar.gz)."""

    def __init__(self, paths: list[Path]):
        self.paths, self.i, self.fh = list(paths), 0, None

    def read(self, n: int = -1) -> bytes:
        out = b""
        while self.i < len(self.paths) and (n < 0 or len(out) < n):
            if self.fh is None:
                self.fh = open(self.paths[self.i], "rb")  # noqa: SIM115 - open across read() calls
            data = self.fh.read(-1 if n < 0 else n - len(out))
            if not data:
                self.fh.close()
                self.fh, self.i = None, self.i + 1
            out += data
        return out

    def close(self) -> None:
        if self.fh is not None:
            self.fh.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _tar_member_problem(m: tarfile.TarInfo) -> str | None:
    why = _unsafe(m.name)
    if why is None and m.issym():
        target = m.linkname if m.linkname.startswith("/") else posixpath.join(posixpath.dirname(m.name), m.linkname)
        why = _unsafe(target) and f"symbolic link to {m.linkname!r}"
    elif why is None and m.islnk():
        why = _unsafe(m.linkname) and f"hard link to {m.linkname!r}"
    elif why is None and not (m.isfile() or m.isdir() or m.issym() or m.islnk()):
        why = "device or special file"
    return why


def _extract_tar(archive: Path, staging: Path, parts: list[Path] | None = None) -> None:
    """One archive: every entry checked first, then ``pooch.Untar``. Split parts (a .tar.gz cut in
    pieces, which pooch cannot read) stream through here, each entry checked before it is written."""
    try:
        if not parts:
            with tarfile.open(archive, "r:*") as tf:
                for m in tf:
                    why = _tar_member_problem(m)
                    if why:
                        _refuse(archive, m.name, why)
            pooch.Untar(extract_dir=str(staging.resolve()))(str(archive), "download", None)
            return
        with _Concat(parts) as stream, tarfile.open(fileobj=stream, mode="r|*") as tf:
            for m in tf:
                why = _tar_member_problem(m)
                if why:
                    _refuse(archive, m.name, why)
                tf.extract(m, staging, filter="data")
    except tarfile.TarError as err:
        if isinstance(err, tarfile.FilterError):
            _refuse(archive, getattr(err, "tarinfo", None) and err.tarinfo.name or "?", str(err))
        raise FetchError(f"{archive.name} is not a readable tar archive ({err}); delete it and download it again"
                         ) from None


def _rar_tool() -> tuple[str, str]:
    for tool in ("unrar", "7z", "7za", "bsdtar"):
        exe = shutil.which(tool)
        if exe:
            return tool, exe
    raise FetchError("extracting .rar archives needs one of: unrar, 7z (p7zip) or bsdtar (libarchive) on PATH, "
                     "e.g. `sudo apt-get install unrar` or `sudo apt-get install p7zip-full` / `conda install p7zip`.")


def _extract_rar(archive: Path, staging: Path) -> None:
    tool, exe = _rar_tool()
    if tool == "unrar":
        listing = subprocess.run([exe, "lb", str(archive)], capture_output=True, text=True)
        names = listing.stdout.splitlines()
        extract = [exe, "x", "-o+", "-idq", str(archive), str(staging) + os.sep]
    elif tool.startswith("7z"):
        listing = subprocess.run([exe, "l", "-ba", "-slt", str(archive)], capture_output=True, text=True)
        names = [ln[len("Path = "):] for ln in listing.stdout.splitlines() if ln.startswith("Path = ")]
        extract = [exe, "x", "-y", f"-o{staging}", str(archive)]
    else:
        listing = subprocess.run([exe, "-tf", str(archive)], capture_output=True, text=True)
        names = listing.stdout.splitlines()
        extract = [exe, "-xf", str(archive), "-C", str(staging)]
    if listing.returncode != 0:
        raise FetchError(f"{tool} cannot list {archive.name}: {listing.stderr.strip()[:300]}")
    for name in names:
        why = _unsafe(name)
        if why:
            _refuse(archive, name, why)
    staging.mkdir(parents=True, exist_ok=True)
    run = subprocess.run(extract, capture_output=True, text=True)
    if run.returncode != 0:
        if "No space left" in run.stderr:
            raise OSError(errno.ENOSPC, run.stderr.strip()[:300])
        raise FetchError(f"{tool} failed on {archive.name}: {run.stderr.strip()[:300]}")


def _extract_nested_rars(staging: Path) -> None:
    """HMDB51 is a rar of per-class rars: extract each inner one beside itself, then delete it."""
    for inner in sorted(staging.rglob("*.rar")):
        _extract_rar(inner, inner.parent)
        inner.unlink()


def extract(archive: Path, target: Path, kind: str, parts: list[Path] | None = None, nested: str | None = None,
            staging: Path | None = None) -> None:
    """Extract ``archive`` (or its ordered ``parts``) into ``target`` safely, all or nothing."""
    staging = staging or target.parent / f".staging-{archive.name}"
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    try:
        if kind == "zip":
            _extract_zip(archive, staging)
        elif kind in ("tar", "tar.gz", "tgz"):
            _extract_tar(archive, staging, parts)
        elif kind == "rar":
            _extract_rar(archive, staging)
        elif kind == "copy":
            shutil.copy2(archive, staging / archive.name)
        else:
            raise FetchError(f"unknown archive kind {kind!r} for {archive.name} (use zip, tar, tar.gz, rar or copy)")
        if nested == "rar":
            _extract_nested_rars(staging)
        target.mkdir(parents=True, exist_ok=True)
        for item in sorted(staging.iterdir()):
            dst = target / item.name
            if dst.is_dir() and not dst.is_symlink():
                shutil.rmtree(dst)
            elif dst.exists() or dst.is_symlink():
                dst.unlink()
            item.replace(dst)
    except OSError as err:
        if _is_enospc(err):
            raise DiskSpaceError(f"disk full while extracting {archive.name} into {target}: the partial output was "
                                 f"removed; free some space (or use another --root) and rerun.") from None
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


# ------------------------------------------------------------------------------------------------ fetch
def _locate_manual(entry: dict[str, Any], downloads: Path, info: dict[str, Any], name: str) -> list[Path]:
    """The user-downloaded file(s) for a manual entry, in order; raise with instructions when missing."""
    where = (f"Get them from {info.get('homepage')} ({info.get('licence', 'licence on the homepage')}). "
             f"{info.get('instructions', '')} Put them in {downloads} (or pass --downloads PATH) and rerun "
             f"`python -m data_scripts.fetch {name} --root ...`.")
    if "parts" in entry:
        pattern, n = entry["parts"], int(entry["n_parts"])
        found = {}
        for p in sorted(downloads.iterdir()) if downloads.is_dir() else []:
            stem = p.name[:-4] if p.name.endswith(".zip") else p.name
            if fnmatch.fnmatch(stem, pattern) and p.is_file():
                found.setdefault(stem, []).append(p)
        wanted = [pattern.replace("??", f"{i:02d}") for i in range(n)]
        missing = [part for part in wanted if part not in found]
        if missing:
            raise ManualDownloadRequired(f"{name}: {len(missing)} of {n} parts missing in {downloads} "
                                         f"(first missing: {missing[0]}). {where}")
        paths = []
        for stem in sorted(found):
            raw = [p for p in found[stem] if p.name == stem]
            if raw:
                paths.append(raw[0])
                continue
            wrapped = found[stem][0]
            if zipfile.is_zipfile(wrapped):         # a part wrapped in a zip: unwrap it next to the zip
                with zipfile.ZipFile(wrapped) as zf:
                    members = [i for i in zf.infolist() if posixpath.basename(i.filename) == stem]
                    if len(members) != 1:
                        raise FetchError(f"{wrapped} does not contain exactly one {stem}")
                    with zf.open(members[0]) as src, open(downloads / stem, "wb") as dst:
                        shutil.copyfileobj(src, dst, CHUNK)
                paths.append(downloads / stem)
            else:                                   # a raw part that only carries a .zip name
                paths.append(wrapped)
        return paths
    if "glob" in entry:
        hits = sorted(downloads.glob(entry["glob"])) if downloads.is_dir() else []
        if not hits:
            raise ManualDownloadRequired(f"{name}: no file matching {entry['glob']!r} in {downloads}. {where}")
        return [hits[0]]
    path = downloads / entry["name"]
    if not path.is_file():
        raise ManualDownloadRequired(f"{name}: {entry['name']} is not in {downloads}. {where}")
    return [path]


def fetch(name: str, root: str | Path | None = None, manifest: str | Path | None = None,
          downloads: str | Path | None = None, retries: int = 3, timeout: float = 30.0, progress: bool = True,
          check_space: bool = True, force: bool = False) -> Path:
    """Download (resuming), verify and extract dataset ``name`` into ``root/name``; returns that folder.

    A second call with everything in place does nothing (no network, no hashing); ``force`` forgets
    the extraction markers and verifies and extracts again (archives already downloaded are reused).
    """
    datasets = load_manifest(manifest)
    if name not in datasets:
        raise FetchError(f"unknown dataset {name!r}; known: {', '.join(sorted(datasets))}")
    info = datasets[name]
    base = Path(root if root is not None else default_root()).expanduser() / name
    downloads = Path(downloads).expanduser() if downloads is not None else base / "downloads"
    done_dir, tofu_file = base / ".done", base / "downloads" / "TOFU.json"
    if force and done_dir.is_dir():
        shutil.rmtree(done_dir)
    todo = [e for e in info["files"] if not (done_dir / f"{e['name']}.json").exists()]
    if not todo:
        print(f"{name}: already fetched, verified and extracted in {base}; nothing to do")
        return base

    if check_space:
        need = 0 if info.get("manual") else sum(
            max(0, int(e.get("bytes") or e.get("approx_bytes") or 0)
                - ((downloads / (e["name"] + ".part")).stat().st_size if (downloads / (e["name"] + ".part")).exists()
                   else 0))
            for e in todo if not (downloads / e["name"]).exists())
        need += int(info.get("extracted_approx_bytes") or 0) * len(todo) // len(info["files"])
        free = _free_bytes(base)
        if free < need:
            raise DiskSpaceError(f"{name} needs about {_human(need)} free under {base} (download + extraction) but "
                                 f"only {_human(free)} is free; free some space or choose another --root.")

    for entry in todo:
        fname = entry["name"]
        parts = None
        if info.get("manual"):
            paths = _locate_manual(entry, downloads, info, name)
            if "parts" in entry:
                parts = paths
            archive = paths[0] if parts is None else downloads / fname
        else:
            archive = downloads / fname
            paths = [archive]
            if archive.exists():
                print(f"{name}: {fname} already downloaded; verifying")
            else:
                print(f"{name}: downloading {entry['url']} ({_human(entry.get('bytes') or entry.get('approx_bytes'))})")
                download(entry["url"], archive, entry.get("bytes"), retries, timeout, progress)
        sha = verify(paths, entry, tofu_file, progress)
        target = base / entry["into"] if entry.get("into") else base
        print(f"{name}: extracting {fname} into {target}")
        extract(archive, target, entry.get("extract", "copy"), parts=parts, nested=entry.get("nested"),
                staging=base / f".staging-{fname}")
        done_dir.mkdir(parents=True, exist_ok=True)
        (done_dir / f"{fname}.json").write_text(json.dumps({
            "sha256": sha, "bytes": sum(p.stat().st_size for p in paths), "extracted_into": str(target),
            "time": time.strftime("%Y-%m-%d %H:%M:%S")}, indent=2) + "\n")
    print(f"{name}: ready in {base}")
    return base


def describe(manifest: str | Path | None = None) -> str:
    """A table of the known datasets: name, kind, download size, manual or not, checksum status."""
    rows = []
    for name, info in sorted(load_manifest(manifest).items()):
        size = sum(int(e.get("bytes") or e.get("approx_bytes") or 0) for e in info["files"])
        checks = ("sha256" if all(e.get("sha256") for e in info["files"])
                  else "size" if all(e.get("bytes") for e in info["files"]) else "TOFU")
        rows.append(f"{name:24s} {info.get('kind', '?'):16s} ~{_human(size):>9s} download, "
                    f"~{_human(info.get('extracted_approx_bytes')):>9s} extracted  "
                    f"{'manual (licence)' if info.get('manual') else 'automatic':16s} checks: {checks}")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m data_scripts.fetch", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("names", nargs="*", help="datasets to fetch (see --list)")
    ap.add_argument("--root", type=Path, help="data folder (default $EFFCOURSE_DATA or ~/effcourse_data)")
    ap.add_argument("--manifest", type=Path, help="manifest file (default data_scripts/manifest.json)")
    ap.add_argument("--downloads", type=Path, help="folder holding the archives (default ROOT/NAME/downloads)")
    ap.add_argument("--retries", type=int, default=3, help="resumes after an interrupted transfer (default 3)")
    ap.add_argument("--timeout", type=float, default=30.0, help="network timeout in seconds (default 30)")
    ap.add_argument("--no-space-check", action="store_true", help="skip the free-space check")
    ap.add_argument("--force", action="store_true", help="verify and extract again even if done before")
    ap.add_argument("--no-progress", action="store_true", help="no progress bars")
    ap.add_argument("--list", action="store_true", help="list the datasets of the manifest and exit")
    args = ap.parse_args(argv)
    try:
        if args.list or not args.names:
            print(describe(args.manifest))
            return 0 if args.list else 2
        if args.downloads is not None and len(args.names) > 1:
            raise FetchError("--downloads applies to one dataset at a time")
        for name in args.names:
            fetch(name, args.root, args.manifest, args.downloads, args.retries, args.timeout,
                  not args.no_progress, not args.no_space_check, args.force)
    except FetchError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted; rerun the same command to resume", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
