"""Course-wide invariants for every lab: sources paired, no outputs committed, release in sync,
nbgrader validate on the solution and validate --invert on the release, 100 points per lab."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import nbformat
import pytest

from effcourse import LABS, authoring, grading

ROOT = Path(__file__).resolve().parent.parent
PRESENT = grading.labs(ROOT)


def test_every_present_lab_is_a_known_lab():
    assert PRESENT, "no lab in solutions/"
    assert set(PRESENT) <= set(LABS), f"unknown lab folders: {set(PRESENT) - set(LABS)}"
    assert sorted(p.name for p in (ROOT / "labs").iterdir() if p.is_dir()) == PRESENT


@pytest.mark.parametrize("lab", PRESENT)
def test_percent_script_and_notebook_are_identical(lab):
    assert authoring.pair_differences(ROOT / "solutions" / lab / f"{lab}.py") == []


@pytest.mark.parametrize("path", sorted(str(p.relative_to(ROOT)) for d in ("labs", "solutions")
                                        for p in (ROOT / d).rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts))
def test_committed_notebooks_have_no_outputs(path):
    nb = json.loads((ROOT / path).read_text())
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            assert cell.get("outputs", []) == [], f"{path}: cell {cell.get('id')} has outputs"
            assert cell.get("execution_count") is None, f"{path}: cell {cell.get('id')} has an execution count"


@pytest.mark.parametrize("lab", PRESENT)
def test_notebook_anatomy(lab):
    nb = nbformat.read(ROOT / "solutions" / lab / f"{lab}.ipynb", as_version=4)
    params = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1, "exactly one cell tagged 'parameters'"
    src = params[0].source
    for line in ("QUICK = False", "SEED = 0", 'DEVICE = "auto"'):
        assert line in src, f"parameters cell lacks {line!r}"
    points = sum(c.metadata["nbgrader"].get("points", 0) for c in nb.cells
                 if c.metadata.get("nbgrader", {}).get("grade"))
    assert points == 100, f"{lab} totals {points} points, not 100"
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# ")
    manual = [c for c in nb.cells if c.cell_type == "markdown" and c.metadata.get("nbgrader", {}).get("grade")]
    assert 1 <= len(manual) <= 3, "one to three written questions"


@pytest.mark.parametrize("lab", PRESENT)
def test_release_is_what_nbgrader_generates(lab, tmp_path):
    grading.make_course(tmp_path, [lab], ROOT)
    fresh = nbformat.read(tmp_path / "labs" / lab / f"{lab}.ipynb", as_version=4)
    committed = nbformat.read(ROOT / "labs" / lab / f"{lab}.ipynb", as_version=4)
    assert nbformat.writes(fresh) == nbformat.writes(committed), \
        f"labs/{lab} is out of date: run `make release`"
    made = tmp_path / "labs" / lab
    released = sorted(p.relative_to(made) for p in made.rglob("*") if p.is_file())
    ours = sorted(p.relative_to(ROOT / "labs" / lab) for p in (ROOT / "labs" / lab).rglob("*")
                  if p.is_file() and ".ipynb_checkpoints" not in p.parts)
    assert released == ours
    text = (ROOT / "labs" / lab / f"{lab}.ipynb").read_text()
    for marker in ("BEGIN SOLUTION", "BEGIN HIDDEN TESTS", "BEGIN MARK SCHEME"):
        assert marker not in text


@pytest.mark.notebook
@pytest.mark.parametrize("lab", PRESENT)
def test_nbgrader_validate(lab, tmp_path):
    shutil.copy(ROOT / "labs" / lab / f"{lab}.ipynb", tmp_path / "release.ipynb")
    # run from the course root so nbgrader reads nbgrader_config.py (its per-cell timeout)
    inv = grading.nbgrader(["validate", "--invert", str(tmp_path / "release.ipynb")], cwd=ROOT,
                           check=False, timeout=900)
    assert inv.returncode == 0 and "ERROR" not in inv.stdout, inv.stdout + inv.stderr
    ok = grading.nbgrader(["validate", str(ROOT / "solutions" / lab / f"{lab}.ipynb")], cwd=ROOT,
                          check=False, timeout=1800)
    assert ok.returncode == 0 and "Success! Your notebook passes all the tests." in ok.stdout, ok.stdout + ok.stderr
