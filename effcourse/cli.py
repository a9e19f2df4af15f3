"""The ``effcourse`` command: build, release, run solutions, autograde, feedback, export."""
from __future__ import annotations

import argparse
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
    from .training import no_live_kernels

    root = grading.course_root(args.root)
    out = Path(args.out or (root / "_executed" / ("full" if args.full else "quick")))
    out.mkdir(parents=True, exist_ok=True)
    for lab in args.labs or grading.labs(root):
        grading.check_lab(lab, root)
        src = root / "solutions" / lab / f"{lab}.ipynb"
        dst = out / f"{lab}.ipynb"
        print(f"executing {lab} ({'full' if args.full else 'QUICK'}) -> {dst}")
        with no_live_kernels():
            pm.execute_notebook(str(src), str(dst), parameters={"QUICK": not args.full}, kernel_name="python3",
                                cwd=str(src.parent), execution_timeout=args.timeout, progress_bar=False)
        subprocess.run([sys.executable, "-m", "nbconvert", "--to", "html", str(dst)], check=True,
                       capture_output=True)
        print(f"rendered {dst.with_suffix('.html')}")
    return 0


def _cmd_autograde(args) -> int:
    from . import grading

    run = grading.autograde(args.lab, args.submissions, args.out, args.timeout, args.root, jobs=args.jobs,
                            memory_gb=args.memory, student_timeout=args.student_timeout,
                            name_regexp=args.name_regexp, regrade=args.regrade, progress=not args.quiet,
                            keep_work=args.keep_work, sandbox=False if args.no_sandbox else None)
    path = run.csv
    print(grading.summary_table(path))
    print(f"graded now: {run.graded}, kept from earlier runs: {run.unchanged}"
          + ("" if run.sandboxed else "   (NO SANDBOX: student code ran with your rights)"))
    print(f"grades:     {path}\nfeedback:   {path.parent / 'feedback'}/<student>/{args.lab}/{args.lab}.html\n"
          f"gradebook:  {path.parent / 'gradebook.db'} (nbgrader course folder: {path.parent})")
    return 0


def _course_dir(args) -> Path:
    out = Path(args.out or f"autograde-{args.lab}")
    if not (out / "gradebook.db").exists():
        raise FileNotFoundError(f"{out} holds no gradebook: run `effcourse autograde {args.lab} ...` first "
                                f"(or pass --out)")
    return out


def _cmd_feedback(args) -> int:
    from . import grading

    out = _course_dir(args)
    grading.nbgrader(["generate_feedback", args.lab, "--force", "--log-level=WARN"], cwd=out)
    for html in sorted((out / "feedback").glob(f"*/{args.lab}/*.html")):
        print(html)
    return 0


def _cmd_export(args) -> int:
    from . import grading

    out = _course_dir(args)
    dest = Path(args.to).resolve()
    grading.nbgrader(["export", f"--to={dest}", "--log-level=WARN"], cwd=out)
    print(f"exported the gradebook of {out} (nbgrader's CSV: every assignment, manual grades included) to {dest}")
    return 0


def _cmd_student_kit(args) -> int:
    from . import kit

    try:
        made = kit.build_kit(args.labs or None, args.out, args.root)
    except kit.LeakError as err:
        print(f"effcourse student-kit: {err}", file=sys.stderr)
        return 1
    rep = made.report
    print(f"student kit: {made.path} ({made.bytes / 2**20:.1f} MiB; labs: {', '.join(made.labs)}; {made.wheel})")
    print(f"no-answer scan: {rep.files} files (wheel included) against {rep.answers} answers of every lab: clean")
    for name, path in rep.dead_links:
        print(f"  note: {name} names {path}, which the kit does not ship")
    for line in rep.ignored:
        print(f"  note: not compared (too small): {line}")
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
    p.add_argument("--timeout", type=int, help="per-cell timeout in seconds (default: nbgrader_config.py)")
    p.add_argument("--jobs", "-j", type=int, default=1, help="students graded at a time (default 1)")
    p.add_argument("--memory", type=float, default=8.0,
                   help="address-space limit of each student's kernel in GB (default 8; 0 = none)")
    p.add_argument("--student-timeout", type=float,
                   help="hard wall-clock limit per student in seconds (default 20 x timeout, at least 900)")
    p.add_argument("--name-regexp", help="parse flat LMS file names with this regexp (nbgrader zip_collect "
                   "convention: named groups student_id, file_id, optional timestamp)")
    p.add_argument("--regrade", action="store_true", help="grade everyone again, not only new/changed notebooks")
    p.add_argument("--keep-work", action="store_true", help="keep the per-student work folders (debugging)")
    p.add_argument("--no-sandbox", action="store_true",
                   help="run kernels without bubblewrap: student code can then read your files "
                   "(trusted notebooks only)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    p.set_defaults(fn=_cmd_autograde)

    p = sub.add_parser("feedback", help="regenerate HTML feedback (hidden tests removed) in an autograde folder")
    p.add_argument("lab")
    p.add_argument("--out", help="the autograde course folder (default autograde-<lab>)")
    p.set_defaults(fn=_cmd_feedback)

    p = sub.add_parser("export", help="export the gradebook (incl. manual grades) with nbgrader export")
    p.add_argument("lab")
    p.add_argument("--out", help="the autograde course folder (default autograde-<lab>)")
    p.add_argument("--to", default="grades-export.csv", help="CSV file to write (default grades-export.csv)")
    p.set_defaults(fn=_cmd_export)

    p = sub.add_parser("student-kit", help="zip what students receive: release notebooks, the effcourse wheel, "
                       "a two-command set-up; refused if any file holds an answer")
    p.add_argument("labs", nargs="*", help="released labs to include (default: all)")
    p.add_argument("--out", default="dist", help="output folder (default dist/)")
    p.set_defaults(fn=_cmd_student_kit)

    args = parser.parse_args(argv)
    try:
        return args.fn(args)
    except (ValueError, FileNotFoundError, RuntimeError) as err:
        print(f"effcourse {args.cmd}: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
