"""What autograding costs: CPU seconds per graded notebook, per lab (a benchmark, not a test).

    .venv/bin/python scripts/grading_cost.py [LAB ...] [--repeats N] [--jobs J] [--students S]

For each lab it grades the solution notebook (answers kept, markers and hidden tests stripped)
with ``effcourse autograde`` in a fresh process, ``--repeats`` times, and reports the median CPU
time (user + system of the whole process tree: nbgrader, kernel, grader) and wall time per
notebook. With ``--students S --jobs J`` it also grades a class of S copies J at a time and reports
notebooks per minute. CPU time is what carries over between machines; wall time depends on load.
"""
from __future__ import annotations

import argparse
import csv
import io
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent

GRADE = r"""
import sys
from pathlib import Path
from effcourse import grading
run = grading.autograde(sys.argv[1], sys.argv[2], out=sys.argv[3], root=sys.argv[4], jobs=int(sys.argv[5]))
csv = Path(getattr(run, "csv", run)).read_text()
print(csv)
"""


def submission(lab: str, root: Path) -> nbformat.NotebookNode:
    nb = nbformat.read(root / "solutions" / lab / f"{lab}.ipynb", as_version=4)
    for cell in nb.cells:
        src = re.sub(r"\s*### BEGIN HIDDEN TESTS.*?### END HIDDEN TESTS", "", cell.source, flags=re.S)
        cell.source = re.sub(r"^[ \t]*### (BEGIN|END) SOLUTION[ \t]*\n?", "", src, flags=re.M)
    return nb


def grade(lab: str, root: Path, students: int, jobs: int) -> tuple[float, float, str]:
    """``(cpu_seconds, wall_seconds, grades_csv)`` of one autograde run over ``students`` copies."""
    tmp = Path(tempfile.mkdtemp(prefix=f"grading-cost-{lab}-"))
    try:
        nb = submission(lab, root)
        for i in range(students):
            (tmp / "subs" / f"s{i:03d}").mkdir(parents=True)
            nbformat.write(nb, tmp / "subs" / f"s{i:03d}" / f"{lab}.ipynb")
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-c", GRADE, lab, str(tmp / "subs"), str(tmp / "out"), str(root),
                               str(jobs)], capture_output=True, text=True)
        wall = time.perf_counter() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if proc.returncode != 0:
            raise RuntimeError(proc.stderr[-2000:])
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        return cpu, wall, proc.stdout
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("labs", nargs="*")
    ap.add_argument("--root", default=str(ROOT), help="the course checkout to grade from")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--students", type=int, default=0, help="also grade a class of this many copies")
    ap.add_argument("--jobs", type=int, default=2)
    args = ap.parse_args(argv)
    root = Path(args.root).resolve()
    labs = args.labs or sorted(p.name for p in (root / "solutions").iterdir() if (p / f"{p.name}.ipynb").exists())
    print("| lab | CPU s / notebook (median) | wall s / notebook | status |")
    print("|---|---|---|---|")
    for lab in labs:
        runs = [grade(lab, root, 1, 1) for _ in range(args.repeats)]
        row = next(csv.DictReader(io.StringIO(runs[-1][2])))
        print(f"| {lab} | {statistics.median(r[0] for r in runs):.1f} | {statistics.median(r[1] for r in runs):.1f} | "
              f"{row['status']} {row['autograded_total']}/{row['autograded_max']} |", flush=True)
    if args.students:
        for lab in labs:
            cpu, wall, _ = grade(lab, root, args.students, args.jobs)
            print(f"{lab}: {args.students} notebooks, --jobs {args.jobs}: "
                  f"{60 * args.students / wall:.2f} notebooks/min "
                  f"({wall:.0f} s wall, {cpu / args.students:.1f} CPU s per notebook)", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
