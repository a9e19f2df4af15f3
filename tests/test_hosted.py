"""Hosted notebooks (issue 29): a release notebook whose set-up cell carries the bootstrap
(``effcourse.kit.hosted``, put there by ``scripts/add_bootstrap.py``) installs the kit's effcourse
wheel itself in an environment that has torch but not effcourse, keeps that torch, and then its
self-check passes; where effcourse is importable the bootstrap does nothing.

The fresh environment: ``python -m venv`` whose site reaches this checkout's packages through a
folder of symbolic links that leaves out effcourse (and tabulate, so that the bootstrap's install of
the wheel's own requirements is exercised for real, from PyPI).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import nbformat
import pytest

from effcourse.kit import build as kbuild
from effcourse.kit import hosted

pytestmark = pytest.mark.xdist_group("student_kit")

ROOT = Path(__file__).resolve().parent.parent
LAB = "lab1_temporal_shift"
VERSION = kbuild.version(ROOT)
LEFT_OUT = ("effcourse", "__editable__", "_effcourse", "tabulate")     # not in the hosted environment


def _labs() -> list[str]:
    return sorted(p.name for p in (ROOT / "solutions").iterdir() if (p / f"{p.name}.py").exists())


# ---- the bootstrap's text ----------------------------------------------------------------------------
def _bare(lab: str) -> str:
    """The lab's source without its bootstrap cell (what a lab looked like before the script ran)."""
    src = (ROOT / "solutions" / lab / f"{lab}.py").read_text(encoding="utf-8")
    return re.sub(r"# %%\n" + re.escape(hosted.BEGIN) + r".*?" + re.escape(hosted.END) + r"\n\n", "", src, flags=re.S)


@pytest.mark.parametrize("lab", _labs())
def test_add_bootstrap_is_idempotent_and_lands_in_the_set_up_cell(lab):
    src = _bare(lab)
    assert hosted.BEGIN not in src
    once = hosted.apply_to_source(src, VERSION)
    assert hosted.apply_to_source(once, VERSION) == once
    assert once.count(hosted.BEGIN) == 1 and once.count(hosted.END) == 1
    cells = re.split(r"^# %%.*\n", once, flags=re.M)
    at = next(i for i, c in enumerate(cells) if hosted.BEGIN in c)
    boot, setup = cells[at], cells[at + 1]
    assert not re.search(r"^(import effcourse|from effcourse)", boot, re.M), "the bootstrap cell imports effcourse"
    assert re.search(r"^(import effcourse|from effcourse)", setup, re.M), "the bootstrap is not right before set-up"
    assert not any(re.search(r"^(import effcourse|from effcourse)", c, re.M) for c in cells[:at]), \
        "effcourse is imported before the bootstrap runs"
    compile(boot, f"{lab} bootstrap cell", "exec")
    # a newer version replaces the block, never adds one
    newer = hosted.apply_to_source(once, "9.9.9")
    assert newer.count(hosted.BEGIN) == 1 and '"9.9.9"' in newer and f'"{VERSION}"' not in newer
    # without the cell the source is unchanged elsewhere
    assert once.replace("# %%\n" + hosted.block(VERSION) + "\n", "") == src


def test_the_script_writes_every_lab_once(tmp_path):
    course = tmp_path / "course"
    for lab in _labs()[:2]:
        (course / "solutions" / lab).mkdir(parents=True)
        (course / "solutions" / lab / f"{lab}.py").write_text(_bare(lab), encoding="utf-8")
    shutil.copy2(ROOT / "pyproject.toml", course / "pyproject.toml")
    script = [sys.executable, str(ROOT / "scripts" / "add_bootstrap.py"), "--root", str(course)]
    assert subprocess.run(script + ["--check"], capture_output=True, text=True).returncode == 1
    first = subprocess.run(script, capture_output=True, text=True)
    assert first.returncode == 0 and "bootstrap written" in first.stdout, first.stdout + first.stderr
    again = subprocess.run(script + ["--check"], capture_output=True, text=True)
    assert again.returncode == 0 and again.stdout.count("up to date") == 2, again.stdout


def test_the_kit_builder_pins_version_and_url(tmp_path):
    nb = nbformat.read(ROOT / "labs" / LAB / f"{LAB}.ipynb", as_version=4)
    hosted.apply_to_notebook(nb, "0.0.1")
    path = tmp_path / f"{LAB}.ipynb"
    nbformat.write(nb, path)
    url = "https://course.example.edu/effcourse-0.1.0-py3-none-any.whl"
    assert kbuild.configure_bootstrap(path, VERSION, url)
    text = path.read_text(encoding="utf-8")
    setup = next(c.source for c in nbformat.reads(text, as_version=4).cells if hosted.BEGIN in c.source)
    assert f'EFFCOURSE_VERSION, EFFCOURSE_WHEEL = "{VERSION}", "{url}"' in setup
    assert not kbuild.configure_bootstrap(path, VERSION, url), "a second pass must not rewrite the file"


# ---- a release notebook in a fresh environment with torch and no effcourse -----------------------------
def _filtered_site(dest: Path) -> Path:
    """Symbolic links to this environment's site-packages entries, less effcourse and ``LEFT_OUT``."""
    site = Path(sysconfig.get_paths()["purelib"])
    dest.mkdir()
    for entry in site.iterdir():
        if entry.name.startswith(LEFT_OUT) or entry.suffix == ".pth":
            continue
        (dest / entry.name).symlink_to(entry)
    return dest


def _hosted_env(tmp: Path) -> tuple[Path, dict]:
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    py = venv / "bin" / "python"
    site = Path(subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    (site / "_platform_packages.pth").write_text(str(_filtered_site(tmp / "platform")) + "\n")
    spec = tmp / "jupyter" / "kernels" / "hosted"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [str(py), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "hosted (torch, no effcourse)", "language": "python"}))
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env.update(JUPYTER_PATH=str(tmp / "jupyter"), EFFCOURSE_SMOKE="1", MPLBACKEND="Agg", EFFCOURSE_THREADS="1",
               PIP_NO_INPUT="1")
    return py, env


def _probe(py: Path, env: dict, code: str) -> str:
    return subprocess.run([str(py), "-c", code], capture_output=True, text=True, env=env, cwd="/",
                          check=True).stdout.strip()


def _release_with_an_answer(dest: Path) -> Path:
    """The release notebook with the bootstrap (patched into its JSON as scripts/add_bootstrap.py puts it
    in the source), its experiments left out, the first exercise answered, cut after its self-check."""
    nb = nbformat.read(ROOT / "labs" / LAB / f"{LAB}.ipynb", as_version=4)
    hosted.apply_to_notebook(nb, VERSION)
    sol = {c.metadata["nbgrader"]["grade_id"]: c.source
           for c in nbformat.read(ROOT / "solutions" / LAB / f"{LAB}.ipynb", as_version=4).cells
           if c.metadata.get("nbgrader", {}).get("solution")}
    cells = []
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if cell.cell_type != "code" or "experiment" in cell.metadata.get("tags", []):
            continue
        if meta.get("solution"):
            cell.source = sol[meta["grade_id"]]
        cells.append(cell)
        if meta.get("grade"):
            break
    nb.cells = cells
    dest.mkdir(parents=True)
    path = dest / f"{LAB}.ipynb"
    nbformat.write(nb, path)
    return path


def _run(path: Path, env: dict) -> nbformat.NotebookNode:
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    old = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        NotebookClient(nb, timeout=300, kernel_name="hosted", allow_errors=True,
                       resources={"metadata": {"path": str(path.parent)}}).execute()
    finally:
        os.environ.clear()
        os.environ.update(old)
    return nb


def _errors(nb) -> list[str]:
    return [f"{o.get('ename')}: {o.get('evalue')}" for c in nb.cells for o in c.get("outputs", [])
            if o.get("output_type") == "error"]


def test_a_release_notebook_installs_effcourse_itself_and_keeps_torch(tmp_path):
    t0 = time.monotonic()
    kit = tmp_path / "kit"
    wheel = kbuild.build_wheel(kit / "wheels", ROOT)
    assert wheel.name == f"effcourse-{VERSION}-py3-none-any.whl"
    notebook = _release_with_an_answer(kit / "labs" / LAB)
    py, env = _hosted_env(tmp_path)
    before = json.loads(_probe(py, env, "import importlib.util as u, json, torch; "
                                        "print(json.dumps([u.find_spec('effcourse') is None, "
                                        "u.find_spec('tabulate') is None, torch.__version__, torch.__file__]))"))
    assert before[:2] == [True, True], "the hosted environment must start without effcourse and tabulate"
    t1 = time.monotonic()
    nb = _run(notebook, env)
    t_first = time.monotonic() - t1
    assert not _errors(nb), _errors(nb)
    check = nb.cells[-1]
    assert check.metadata["nbgrader"]["grade"] and not _errors(nbformat.v4.new_notebook(cells=[check]))
    after = json.loads(_probe(py, env, "import effcourse, tabulate, torch, json, importlib.metadata as m; "
                                       "print(json.dumps([effcourse.__file__, m.version('effcourse'), "
                                       "tabulate.__file__, torch.__version__, torch.__file__]))"))
    venv_site = str(py.parent.parent)
    assert after[0].startswith(venv_site) and after[1] == VERSION, after      # installed from the wheel, pinned
    assert after[2].startswith(venv_site), "the wheel's own requirements were not installed"
    assert after[3:] == before[2:], "torch was reinstalled"
    # where effcourse is importable the bootstrap does nothing: no pip, nothing new in the environment
    listing = sorted(p.name for p in Path(after[0]).parents[1].iterdir())
    t2 = time.monotonic()
    probe = hosted.block(VERSION) + "print('BRANCH', [k for k in ('pip', 'wheel', 'needs') if k in globals()])\n"
    out = subprocess.run([str(py), "-c", probe], capture_output=True, text=True, env=env, cwd=notebook.parent)
    t_again = time.monotonic() - t2
    assert out.returncode == 0 and "BRANCH []" in out.stdout, out.stdout + out.stderr
    assert sorted(p.name for p in Path(after[0]).parents[1].iterdir()) == listing
    print(f"\nhosted notebook: wheel + venv {t1 - t0:.1f} s, first run (installs) {t_first:.1f} s, "
          f"the bootstrap again (a no-op) {t_again:.1f} s")


def test_without_a_wheel_the_set_up_cell_says_where_to_look(tmp_path):
    py, env = _hosted_env(tmp_path)
    folder = tmp_path / "alone"
    folder.mkdir()
    script = folder / "setup.py"
    script.write_text(hosted.block(VERSION) + "import effcourse\n")
    proc = subprocess.run([str(py), str(script)], capture_output=True, text=True, env=env, cwd=folder)
    assert proc.returncode == 1 and "ModuleNotFoundError" in proc.stderr
    assert f"effcourse-{VERSION}-*.whl" in proc.stderr and "docs/HOSTED.md" in proc.stderr, proc.stderr


def test_every_lab_carries_the_current_bootstrap():
    """`scripts/add_bootstrap.py --check`: every lab's source has the bootstrap cell, at this version."""
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "add_bootstrap.py"), "--check"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
