"""The course directory and nbgrader's own commands: find labs, release them, build a private course.

Everything here runs nbgrader as a subprocess (``python -m nbgrader ...``) from a course directory
(a folder with ``nbgrader_config.py`` and ``solutions/``).
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Iterable

PACKAGE_ROOT = Path(__file__).resolve().parent.parent.parent


def course_root(root: str | Path | None = None) -> Path:
    """The course directory: ``root``, else the checkout this package lives in, else the cwd."""
    for cand in ([Path(root)] if root else []) + [PACKAGE_ROOT, Path.cwd()]:
        if (cand / "nbgrader_config.py").exists() and (cand / "solutions").is_dir():
            return cand.resolve()
    raise FileNotFoundError("no course directory found (a folder with nbgrader_config.py and solutions/); "
                            "run from the course checkout or pass --root")


def labs(root: str | Path | None = None) -> list[str]:
    """Lab ids (nbgrader assignment ids): folders ``solutions/<lab>/`` holding ``<lab>.ipynb``."""
    src = course_root(root) / "solutions"
    return sorted(p.name for p in src.iterdir() if (p / f"{p.name}.ipynb").exists())


def check_lab(lab: str, root: str | Path | None = None) -> str:
    known = labs(root)
    if lab not in known:
        raise ValueError(f"unknown lab id {lab!r}; known labs: {', '.join(known) or '(none)'}")
    return lab


def ensure_bin_on_path() -> None:
    """nbgrader's gradebook runs the ``alembic`` script: make this interpreter's ``bin/`` findable
    even when the virtual environment is not activated (``.venv/bin/python -m pytest``)."""
    bindir = str(Path(sys.executable).parent)
    path = os.environ.get("PATH", "")
    if bindir not in path.split(os.pathsep):
        os.environ["PATH"] = bindir + (os.pathsep + path if path else "")


def nbgrader(args: list[str], cwd: str | Path, timeout: float | None = None,
             check: bool = True) -> subprocess.CompletedProcess:
    """Run ``python -m nbgrader ARGS`` in ``cwd``; on failure raise with the tail of its log."""
    ensure_bin_on_path()
    env = dict(os.environ)
    env.pop("NBGRADER_EXECUTION", None)
    proc = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=cwd, env=env, text=True,
                          capture_output=True, timeout=timeout)
    if check and proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-30:])
        raise RuntimeError(f"nbgrader {' '.join(args)} failed (exit {proc.returncode}):\n{tail}")
    return proc


def release(lab_ids: Iterable[str] | None = None, root: str | Path | None = None) -> list[Path]:
    """Regenerate ``labs/<lab>/`` from ``solutions/<lab>/`` with ``nbgrader generate_assignment``."""
    root = course_root(root)
    out = []
    for lab in (list(lab_ids) or labs(root)) if lab_ids is not None else labs(root):
        check_lab(lab, root)
        nbgrader(["generate_assignment", lab, "--force", "--log-level=WARN"], cwd=root)
        out.append(root / "labs" / lab / f"{lab}.ipynb")
    return out


def make_course(dest: str | Path, lab_ids: Iterable[str], root: str | Path | None = None) -> Path:
    """A fresh course directory at ``dest`` with the given labs' sources and a gradebook made by
    ``generate_assignment`` (which is where autograde finds the hidden tests)."""
    root, dest = course_root(root), Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy2(root / "nbgrader_config.py", dest / "nbgrader_config.py")
    for lab in lab_ids:
        check_lab(lab, root)
        shutil.copytree(root / "solutions" / lab, dest / "solutions" / lab, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
        nbgrader(["generate_assignment", lab, "--force", "--log-level=WARN"], cwd=dest)
    return dest


def config_timeout(root: Path) -> int | None:
    m = re.search(r"^c\.Execute\.timeout\s*=\s*(\d+)", (root / "nbgrader_config.py").read_text(), flags=re.M)
    return int(m.group(1)) if m else None
