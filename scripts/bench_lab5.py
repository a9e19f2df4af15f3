"""Lab 5's speedup table (``make bench``): dense vs the incremental engine ("after") and vs the
compare-with-cache design the lab had before ("before"), one interleaved run, medians.

    .venv/bin/python scripts/bench_lab5.py [--notebook NB] [--before REV|NB|none] [--size 256]
                                           [--repeats 15] [--areas 0.5 1.2 5 10 25] [--out _bench]

"after" runs the exercises of ``--notebook`` (default: the solution) through ``effcourse.sparse``'s
engine; "before" runs the ``SparseConv2d`` of the solution at git revision ``--before`` (default
8ac9030, the lab before the engine) on the compare-with-cache path. Writes
``lab5_sige_speedup.{md,csv}`` into ``--out``. An instructor's tool: it reads the solutions.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import subprocess
from pathlib import Path

import torch

from effcourse.checks import lab5
from effcourse.plots import table

ROOT = Path(__file__).resolve().parent.parent


def git_notebook(rev: str) -> dict:
    """The Lab 5 solution notebook as it was at git revision ``rev``."""
    text = subprocess.run(["git", "show", f"{rev}:solutions/lab5_sige/lab5_sige.ipynb"], cwd=ROOT, check=True,
                          capture_output=True, text=True).stdout
    return json.loads(text)


def main(argv=None) -> int:
    root = ROOT
    ap = argparse.ArgumentParser(prog="scripts/bench_lab5.py",
                                 description="Lab 5's speedup table: dense vs the incremental engine (after) and "
                                             "vs the compare-with-cache design (before), one interleaved run, medians.")
    ap.add_argument("--notebook", default=str(root / "solutions" / "lab5_sige" / "lab5_sige.ipynb"),
                    help="the notebook whose exercises run as 'after' (default: the solution)")
    ap.add_argument("--before", default="8ac9030",
                    help="git revision whose solution notebook runs as 'before' on the compare path, or a notebook "
                         "path, or 'none' (default: 8ac9030, the lab before the incremental engine)")
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--areas", type=float, nargs="+", default=[0.5, 1.2, 5.0, 10.0, 25.0], help="edited areas in %%")
    ap.add_argument("--out", default=None, help="also write the table as Markdown and CSV into this folder")
    args = ap.parse_args(argv)
    after = lab5.load_exercises(args.notebook)
    before = None
    if args.before.lower() != "none":
        before = lab5.load_exercises(args.before if Path(args.before).exists() else git_notebook(args.before))
    load0 = os.getloadavg()[0]
    rows = lab5.bench_table(after, before, fractions=[a / 100 for a in args.areas], size=args.size,
                            repeats=args.repeats)
    title = (f"Lab 5 speedup vs edited area: {args.size}x{args.size}, 6 convs x 64 ch, tile 8, 1 thread; "
             f"{platform.machine()}, torch {torch.__version__}, load average {load0:.2f} -> {os.getloadavg()[0]:.2f}")
    text = table(rows, title=title)      # printed when not in a notebook
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "lab5_sige_speedup.md").write_text(text + "\n")
        with open(out / "lab5_sige_speedup.csv", "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
