"""Every exercise's hidden and visible grade cells, proven against right and wrong answers.

For each lab with a ``tests/mutants/<lab>.py``: the solution and every correct alternative score
full points on every grade cell; every plausible wrong answer loses points on its exercise's grade
cells. Only grade cells run (no experiments), in a fresh forked process per mutant (tests/mutation.py).
"""
import pytest

import mutation
from effcourse import grading

LABS = grading.labs()
MIN_CORRECT, MIN_WRONG = 2, 6


@pytest.mark.mutants
@pytest.mark.parametrize("lab", LABS)
def test_every_exercise_has_mutants(lab):
    assert lab in mutation.available(), f"tests/mutants/{lab}.py is missing"
    exercises = mutation.load(lab)
    solution_cells = [c["id"] for c in mutation.cells(lab) if c["kind"] == "solution"]
    covered = set(exercises)
    for spec in exercises.values():
        for src in list(spec.get("correct", {}).values()) + list(spec.get("wrong", {}).values()):
            if isinstance(src, dict):
                covered |= set(src)
    assert set(solution_cells) <= covered, f"exercises without mutants: {sorted(set(solution_cells) - covered)}"
    for ex, spec in exercises.items():
        few = spec.get("fewer_because")
        assert len(spec.get("correct", {})) >= (1 if few else MIN_CORRECT), f"{ex}: too few correct mutants"
        assert len(spec.get("wrong", {})) >= (1 if few else MIN_WRONG), f"{ex}: too few wrong mutants"


@pytest.mark.mutants
@pytest.mark.parametrize("lab", LABS)
def test_mutants_are_judged_right(lab):
    if lab not in mutation.available():
        pytest.skip(f"no tests/mutants/{lab}.py")
    problems, counts = mutation.judge(lab)
    print(lab, {ex: f"{c} correct, {w} wrong" for ex, (c, w) in counts.items()})
    assert not problems, "\n".join(problems)
