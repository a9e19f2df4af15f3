"""Insert or update the hosted-notebook bootstrap in every lab's set-up cell (issue 29).

    .venv/bin/python scripts/add_bootstrap.py            # every solutions/<lab>/<lab>.py
    .venv/bin/python scripts/add_bootstrap.py lab1_temporal_shift --check   # exit 1 if any would change

The bootstrap (``effcourse.kit.hosted``, docs/HOSTED.md) goes at the top of the first code cell that
imports effcourse, between marker comments; a second run changes nothing. It pins the version in
pyproject.toml. Then regenerate the notebooks: ``effcourse build <lab> && effcourse release <lab>``.
"""
from __future__ import annotations

import argparse
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from effcourse.kit import hosted  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("labs", nargs="*", help="labs (default: every solutions/<lab>/<lab>.py)")
    ap.add_argument("--root", type=Path, default=ROOT, help="course folder (default: this checkout)")
    ap.add_argument("--check", action="store_true", help="change nothing; exit 1 if a lab lacks the current bootstrap")
    args = ap.parse_args(argv)
    version = tomllib.loads((args.root / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]
    labs = args.labs or sorted(p.name for p in (args.root / "solutions").iterdir() if (p / f"{p.name}.py").exists())
    stale = []
    for lab in labs:
        path = args.root / "solutions" / lab / f"{lab}.py"
        old = path.read_text(encoding="utf-8")
        new = hosted.apply_to_source(old, version)
        if new != old:
            stale.append(lab)
            if not args.check:
                path.write_text(new, encoding="utf-8")
        print(f"{lab}: {'up to date' if new == old else 'would change' if args.check else 'bootstrap written'}")
    if stale and not args.check:
        print("now: " + " && ".join(f"effcourse build {lab} && effcourse release {lab}" for lab in stale))
    return 1 if stale and args.check else 0


if __name__ == "__main__":
    raise SystemExit(main())
