"""Grade each lab's reference solution many times, with fresh hidden-test seeds, through the judge.

A correct answer that loses points now and then is as bad as a wrong one that passes: this runs
every grade cell of each lab's solution ``--runs`` times (each run draws new clock seeds in every
hidden test), optionally with a busy loop on another core (``--busy``, the load of a second
grading job), and reports how many runs earned full marks::

    .venv/bin/python scripts/regrade_reference.py --runs 30 --busy            # every lab
    .venv/bin/python scripts/regrade_reference.py --runs 30 lab4_anycost_gan

Grade cells run as in ``tests/test_mutants.py`` (``tests/mutation.py``): smoke profile, each run
in a fresh forked process, every verdict reached by the judge.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import mutation  # noqa: E402

from effcourse import grading  # noqa: E402


def regrade(lab: str, runs: int) -> tuple[int, Counter]:
    """``(full-mark runs, {grade cell: failures})`` over ``runs`` gradings of the solution."""
    results = mutation.grade(lab, [(f"run{i}", {}) for i in range(runs)])
    failures: Counter = Counter()
    full = 0
    for res in results.values():
        bad = [g for g, e in (res or {"(crashed)": "crashed"}).items() if e is not None]
        failures.update(bad)
        full += not bad
    return full, failures


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("labs", nargs="*", help="labs (default: all)")
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--busy", action="store_true", help="keep another core busy while grading")
    args = ap.parse_args()
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if args.busy else None
    try:
        print("| lab | full marks | failing cells | seconds |\n|---|---|---|---|")
        for lab in args.labs or grading.labs():
            start = time.monotonic()
            full, failures = regrade(lab, args.runs)
            cells = ", ".join(f"{g} ×{n}" for g, n in failures.most_common()) or "none"
            print(f"| {lab} | {full} of {args.runs} | {cells} | {time.monotonic() - start:.0f} |", flush=True)
    finally:
        if busy is not None:
            busy.kill()


if __name__ == "__main__":
    main()
