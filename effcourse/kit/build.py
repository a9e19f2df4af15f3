"""Build the student kit: the release notebooks of some labs, the ``effcourse`` wheel, a two-command
set-up, and a proof that none of it holds an answer.

``build_kit(labs)`` writes ``dist/effcourse-student-<version>.zip``::

    effcourse-student-<version>/
        README.md  Makefile  KIT.json          from scripts/student_kit/ (+ the list of labs)
        labs/<lab>/<lab>.ipynb                 nbgrader's release (labs/<lab>/ of the course)
        wheels/effcourse-<version>-py3-none-any.whl
        data_scripts/fetch.py, prepare_video.py, manifest.json, docs/DATA.md   (real data sets, optional)
        docs/HOSTED.md                         (Colab / JupyterHub: the notebooks install the wheel themselves)
        docs/<NAME>.md                         any student guide a shipped notebook names

Before the zip is written, every file of the kit and every ``.py`` file of the wheel is scanned
against the answers of *every* lab of the course (``leaks``): a kit that holds a solution def, most
of a solution block, a hidden-test block or a written model answer, or a notebook that points
students at instructor-only code (a ``solutions/``, ``tests/`` or ``data_scripts/`` file that is not
shipped), is refused with the list of findings. Other repository paths a kit file names but does not
ship are reported as dead links (not refused).
"""
from __future__ import annotations

import dataclasses
import datetime
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Iterable

from . import hosted, leaks

PACKAGE_ROOT = Path(__file__).resolve().parent.parent.parent
TEMPLATE = Path("scripts") / "student_kit"
#: files of the course shipped as they are (real-data scripts and their guide; no answers there)
EXTRAS = ("data_scripts/__init__.py", "data_scripts/fetch.py", "data_scripts/prepare_video.py",
          "data_scripts/manifest.json", "docs/DATA.md", "docs/HOSTED.md")
#: student guides a released notebook may name (``docs/<NAME>.md``) are shipped with it, except these
INSTRUCTOR_DOCS = ("docs/INSTRUCTOR.md", "docs/BROWSER_TEST.md")
#: folders a released notebook must not send students to (instructor-only code)
INSTRUCTOR_ONLY = ("solutions/", "tests/", "data_scripts/")
_IGNORE = shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__", "*.pyc", ".*")


class LeakError(RuntimeError):
    """The kit would hand out an answer; ``findings`` says where."""

    def __init__(self, findings: list[str]):
        self.findings = findings
        super().__init__(f"{len(findings)} leak(s) in the student kit; nothing was written:\n  "
                         + "\n  ".join(findings))


def course_root(root: str | Path | None = None) -> Path:
    """The instructor's course directory (``nbgrader_config.py`` and ``solutions/``)."""
    for cand in ([Path(root)] if root else []) + [PACKAGE_ROOT, Path.cwd()]:
        if (cand / "nbgrader_config.py").exists() and (cand / "solutions").is_dir():
            return cand.resolve()
    raise FileNotFoundError("no course directory found (a folder with nbgrader_config.py and solutions/): the "
                            "student kit is built from the instructor's repository; run there or pass --root")


def released_labs(root: Path) -> list[str]:
    """Labs that have both a source and a release."""
    return sorted(p.name for p in (root / "solutions").iterdir()
                  if (p / f"{p.name}.ipynb").exists() and (root / "labs" / p.name / f"{p.name}.ipynb").exists())


def project(root: Path) -> dict:
    """``[project]`` of the course's pyproject.toml (the parser is imported here, not at module level,
    so that ``import effcourse.kit`` needs no ``tomllib``: the kit's ``make check`` never builds a kit)."""
    import tomllib

    return tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))["project"]


def version(root: Path) -> str:
    return project(root)["version"]


def torch_pins(root: Path) -> str:
    """The torch pins of the course's Makefile (``TORCH_PINS ?= ...``), so students get the same."""
    m = re.search(r"^TORCH_PINS\s*\?=\s*(.+)$", (root / "Makefile").read_text(encoding="utf-8"), re.M)
    if not m:
        raise ValueError("the course Makefile has no `TORCH_PINS ?= ...` line")
    return m.group(1).strip()


def title(notebook: Path) -> str:
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    for cell in cells:
        if cell.get("cell_type") == "markdown":
            first = "".join(cell.get("source", "")).strip().splitlines()
            if first and first[0].startswith("#"):
                return first[0].lstrip("#").strip()
    return notebook.stem


# ---- the wheel -----------------------------------------------------------------------------------
def build_wheel(dest: str | Path, root: str | Path | None = None, readme: str | None = None) -> Path:
    """Build the ``effcourse`` wheel into ``dest`` from a clean copy of the package (no checkout
    files such as build/ or egg-info are touched); ``readme`` replaces the long description."""
    root, dest = course_root(root), Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="effcourse-wheel-") as tmp:
        src = Path(tmp) / "src"
        src.mkdir()
        shutil.copy2(root / "pyproject.toml", src / "pyproject.toml")
        if readme is None:
            readme = (root / "README.md").read_text(encoding="utf-8")
        (src / "README.md").write_text(readme, encoding="utf-8")
        shutil.copytree(root / "effcourse", src / "effcourse", ignore=_IGNORE)
        out = Path(tmp) / "out"
        base = [sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "-w", str(out), "-q",
                "--disable-pip-version-check"]
        proc = subprocess.run(base + ["--no-build-isolation"], capture_output=True, text=True)
        if proc.returncode != 0:      # no setuptools in this environment: let pip fetch the build backend
            proc = subprocess.run(base, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError("building the effcourse wheel failed:\n" + (proc.stdout + proc.stderr)[-2000:])
        wheels = sorted(out.glob("effcourse-*.whl"))
        if len(wheels) != 1:
            raise RuntimeError(f"expected one effcourse wheel, got {[w.name for w in wheels]}")
        target = dest / wheels[0].name
        shutil.copy2(wheels[0], target)
    return target


# ---- reading a kit back, and scanning it ---------------------------------------------------------
def kit_files(path: str | Path) -> dict[str, str]:
    """``{name: text}`` of every text file in a kit (a zip or a folder); a wheel inside contributes
    its own files as ``<wheel>!<member>``."""
    path = Path(path)
    raw: dict[str, bytes] = {}
    if path.is_dir():
        for p in sorted(path.rglob("*")):
            if p.is_file():
                raw[str(p.relative_to(path))] = p.read_bytes()
    else:
        with zipfile.ZipFile(path) as zf:
            for info in zf.infolist():
                if not info.is_dir():
                    raw[info.filename] = zf.read(info)
    files: dict[str, str] = {}
    for name, data in raw.items():
        if name.endswith(".whl"):
            with zipfile.ZipFile(io.BytesIO(data)) as whl:
                for info in whl.infolist():
                    if not info.is_dir():
                        text = _text(whl.read(info))
                        if text is not None:
                            files[f"{name}!{info.filename}"] = text
            continue
        text = _text(data)
        if text is not None:
            files[name] = text
    return files


def _text(data: bytes) -> str | None:
    if b"\0" in data[:4096]:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


@dataclasses.dataclass
class ScanReport:
    leaks: list[leaks.Finding]                 # answers found in the kit
    pointers: list[tuple[str, str]]            # (file, instructor-only path it names)
    dead_links: list[tuple[str, str]]          # (file, other repository path it names, not shipped)
    ignored: list[str]                         # answer blocks too small to compare
    files: int
    answers: int

    @property
    def problems(self) -> list[str]:
        return [str(f) for f in self.leaks] + [
            f"{name}: points students to {path}, which only the instructor's repository has"
            for name, path in self.pointers]


def answers(root: str | Path | None = None) -> leaks.Answers:
    """Fingerprints of every answer of every lab of the course (``solutions/*/*.ipynb``)."""
    root = course_root(root)
    return leaks.answers_of(sorted((root / "solutions").glob("*/*.ipynb")))


def scan_kit(path: str | Path, root: str | Path | None = None, known: leaks.Answers | None = None) -> ScanReport:
    """Scan a kit (zip or folder) against every answer of the course."""
    files = kit_files(path)
    known = known if known is not None else answers(root)
    top = {n.split("/", 1)[1] if "/" in n else n for n in files if "!" not in n}
    named = leaks.pointers({n: t for n, t in files.items() if "!" not in n}, top)
    bad = [(n, p) for n, p in named if p.startswith(INSTRUCTOR_ONLY) and n.endswith(".ipynb")]
    dead = [(n, p) for n, p in named if (n, p) not in bad]
    return ScanReport(leaks.scan(files, known), bad, dead, list(known.ignored), len(files), len(known))


# ---- the kit -------------------------------------------------------------------------------------
def _render(text: str, values: dict[str, str]) -> str:
    for key, value in values.items():
        text = text.replace("@@" + key + "@@", value)
    left = re.findall(r"@@[A-Z_]+@@", text)
    if left:
        raise ValueError(f"unfilled template fields: {sorted(set(left))}")
    return text


def configure_bootstrap(notebook: Path, version: str, wheel_url: str | None) -> bool:
    """Pin a shipped notebook's hosted-notebook bootstrap (``hosted``) to the kit's version and, when
    the instructor gives one, the wheel's URL; the file is rewritten only when that changes it."""
    import nbformat

    text = notebook.read_text(encoding="utf-8")
    if not hosted.has_bootstrap(text):
        return False
    nb = nbformat.reads(text, as_version=4)
    if not hosted.configure_notebook(nb, version, wheel_url):
        return False
    nbformat.write(nb, notebook)
    return True


def stage(folder: str | Path, labs: Iterable[str] | None = None, root: str | Path | None = None,
          wheel_url: str | None = None) -> Path:
    """Lay the kit out in ``folder`` (made, must not exist); returns the kit's top folder.

    ``wheel_url`` (default ``$EFFCOURSE_WHEEL_URL``): where hosted notebooks (Colab) install the
    wheel from, written into each notebook's bootstrap; without it they look beside the notebook
    and in the kit's ``wheels/`` (docs/HOSTED.md)."""
    root = course_root(root)
    known = released_labs(root)
    labs = list(labs or known)
    unknown = [lab for lab in labs if lab not in known]
    if unknown:
        raise ValueError(f"no released lab {', '.join(unknown)}; released labs: {', '.join(known) or '(none)'} "
                         "(run `effcourse release` first)")
    labs = sorted(dict.fromkeys(labs))
    ver = version(root)
    top = Path(folder) / f"effcourse-student-{ver}"
    top.mkdir(parents=True)
    wheel_url = wheel_url or os.environ.get("EFFCOURSE_WHEEL_URL") or None
    for lab in labs:
        shutil.copytree(root / "labs" / lab, top / "labs" / lab, ignore=_IGNORE)
        configure_bootstrap(top / "labs" / lab / f"{lab}.ipynb", ver, wheel_url)
    named = {m for lab in labs for m in re.findall(r"\bdocs/[\w.-]+\.md\b",
                                                   (top / "labs" / lab / f"{lab}.ipynb").read_text(encoding="utf-8"))}
    for rel in sorted(set(EXTRAS) | (named - set(INSTRUCTOR_DOCS))):
        if (root / rel).exists():
            (top / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(root / rel, top / rel)
    table = "\n".join(f"| `{lab}` | {title(top / 'labs' / lab / f'{lab}.ipynb')} |" for lab in labs)
    tmpl = root / TEMPLATE
    values = {"VERSION": ver, "LABS_TABLE": table, "TORCH_PINS": torch_pins(root),
              "PYTHON_REQUIRES": project(root)["requires-python"]}
    readme = _render((tmpl / "README.md").read_text(encoding="utf-8"), values)
    (top / "README.md").write_text(readme, encoding="utf-8")
    (top / "Makefile").write_text(_render((tmpl / "Makefile").read_text(encoding="utf-8"), values), encoding="utf-8")
    build_wheel(top / "wheels", root, readme=readme)
    (top / "KIT.json").write_text(json.dumps({
        "version": ver, "labs": labs,
        "built": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}, indent=1) + "\n",
        encoding="utf-8")
    return top


def _zip(top: Path, target: Path) -> None:
    tmp = target.with_suffix(".zip.part")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        for p in sorted(top.rglob("*")):
            if p.is_file():
                info = zipfile.ZipInfo(str(p.relative_to(top.parent)), date_time=(2020, 1, 1, 0, 0, 0))
                info.external_attr = (0o644 << 16)
                info.compress_type = zipfile.ZIP_DEFLATED
                zf.writestr(info, p.read_bytes())
    tmp.replace(target)


@dataclasses.dataclass
class Kit:
    path: Path
    labs: list[str]
    wheel: str
    bytes: int
    report: ScanReport


def build_kit(labs: Iterable[str] | None = None, out: str | Path = "dist", root: str | Path | None = None,
              check: bool = True, wheel_url: str | None = None) -> Kit:
    """Build ``<out>/effcourse-student-<version>.zip`` holding ``labs`` (default: every released lab).

    With ``check`` (always, from the command line) the kit is scanned first and a ``LeakError``
    raised, with nothing written, when it would hand out an answer."""
    root = course_root(root)
    out = Path(out)
    with tempfile.TemporaryDirectory(prefix="effcourse-kit-") as tmp:
        top = stage(Path(tmp) / "kit", labs, root, wheel_url)
        report = scan_kit(top.parent, root)
        if check and report.problems:
            raise LeakError(report.problems)
        out.mkdir(parents=True, exist_ok=True)
        target = out / f"{top.name}.zip"
        _zip(top, target)
        wheel = next((top / "wheels").glob("*.whl")).name
        labs_in = json.loads((top / "KIT.json").read_text())["labs"]
    return Kit(target, labs_in, wheel, target.stat().st_size, report)
