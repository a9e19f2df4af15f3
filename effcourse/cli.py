"""The ``effcourse`` command: build, release, run solutions, autograde."""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path


def _cmd_build(args) -> int:
    from . import authoring, grading

    root = grading.course_root(args.root)
    for lab in args.labs or [p.name for p in sorted((root / "solutions").iterdir()) if p.is_dir()]:
        script = root / "solutions" / lab / f"{lab}.py"
        if not script.exists():
            raise SystemExit(f"effcourse build: no percent script {script}")
        print(f"built {authoring.build(script).relative_to(root)}")
    return 0


def _cmd_release(args) -> int:
    from . import grading

    for path in grading.release(args.labs or None, args.root):
        print(f"released {path}")
    return 0


def _cmd_run_solutions(args) -> int:
    import papermill as pm

    from . import grading

    root = grading.course_root(args.root)
    out = Path(args.out or (root / "_executed" / ("full" if args.full else "quick")))
    out.mkdir(parents=True, exist_ok=True)
    for lab in args.labs or grading.labs(root):
        grading.check_lab(lab, root)
        src = root / "solutions" / lab / f"{lab}.ipynb"
        dst = out / f"{lab}.ipynb"
        print(f"executing {lab} ({'full' if args.full else 'QUICK'}) -> {dst}")
        pm.execute_notebook(str(src), str(dst), parameters={"QUICK": not args.full}, kernel_name="python3",
                            cwd=str(src.parent), execution_timeout=args.timeout, progress_bar=False)
        subprocess.run([sys.executable, "-m", "nbconvert", "--to", "html", str(dst)], check=True,
                       capture_output=True)
        print(f"rendered {dst.with_suffix('.html')}")
    return 0


def _cmd_autograde(args) -> int:
    from . import grading

    path = grading.autograde(args.lab, args.submissions, args.out, args.timeout, args.root)
    print(path.read_text(encoding="utf-8"))
    print(f"grades: {path}\nfeedback: {path.parent / 'feedback'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="effcourse", description=__doc__)
    parser.add_argument("--root", help="course directory (default: this checkout)")
    sub = parser.add_subparsers(dest="cmd", required=True)

    p = sub.add_parser("build", help="write solutions/<lab>/<lab>.ipynb from its percent script")
    p.add_argument("labs", nargs="*")
    p.set_defaults(fn=_cmd_build)

    p = sub.add_parser("release", help="regenerate labs/ from solutions/ with nbgrader")
    p.add_argument("labs", nargs="*")
    p.set_defaults(fn=_cmd_release)

    p = sub.add_parser("run-solutions", help="execute solution notebooks with papermill and render HTML")
    p.add_argument("labs", nargs="*")
    p.add_argument("--full", action="store_true", help="full mode (QUICK = False)")
    p.add_argument("--out", help="output folder (default _executed/quick or _executed/full)")
    p.add_argument("--timeout", type=int, default=1800, help="per-cell timeout in seconds")
    p.set_defaults(fn=_cmd_run_solutions)

    p = sub.add_parser("autograde", help="grade a folder or zip of submissions with nbgrader")
    p.add_argument("lab")
    p.add_argument("submissions")
    p.add_argument("--out", help="course folder for the results (default autograde-<lab>)")
    p.add_argument("--timeout", type=int, help="per-cell timeout in seconds")
    p.set_defaults(fn=_cmd_autograde)

    args = parser.parse_args(argv)
    try:
        return args.fn(args)
    except (ValueError, FileNotFoundError, RuntimeError) as err:
        print(f"effcourse {args.cmd}: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
