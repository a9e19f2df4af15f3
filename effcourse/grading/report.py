"""Per-student results and what the instructor reads: ``grades.csv`` and the terminal summary."""
from __future__ import annotations

import csv
import dataclasses
from pathlib import Path


@dataclasses.dataclass
class Result:
    student: str
    sid: str
    status: str                       # "ok", "flagged", "not graded", "missing"
    notes: list[str]
    grades: dict[str, dict] | None    # grade_id -> {"auto_score", "needs_manual_grade"}
    comments: dict[str, str | None] = dataclasses.field(default_factory=dict)
    seconds: float = 0.0
    peak_mb: float = 0.0              # peak RSS of nbgrader + kernel
    kernel_vm_mb: float = 0.0         # peak address space of the kernel (what --memory limits)
    digest: str = ""
    timestamp: str | None = None
    unchanged: bool = False           # kept from an earlier run (same notebook, same settings)
    autograded: Path | None = None    # autograded notebook folder (in the private work dir)



def write_csv(path: Path, lab: str, results: list[Result], maxima: dict[str, tuple[float, bool]]) -> Path:
    """``grades.csv``: one row per student; the autograded points of each grade cell, their total
    and maximum, the points still to grade by hand, a status and the reasons behind it."""
    auto_ids = [g for g, (_, auto) in maxima.items() if auto]
    manual = sum(p for p, auto in maxima.values() if not auto)
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["student", "nbgrader_id", *auto_ids, "autograded_total", "autograded_max", "manual_max",
                    "status", "notes", "seconds", "peak_mem_mb", "kernel_vm_mb"])
        for r in results:
            grades = r.grades or {}
            pts = [min(max(float(grades.get(g, {}).get("auto_score") or 0), 0.0), maxima[g][0]) for g in auto_ids]
            w.writerow([r.student, r.sid, *[f"{p:g}" for p in pts], f"{sum(pts):g}",
                        f"{sum(maxima[g][0] for g in auto_ids):g}", f"{manual:g}", r.status, "; ".join(r.notes),
                        f"{r.seconds:g}", f"{r.peak_mb:g}", f"{r.kernel_vm_mb:g}"])
    return path


def summary_table(csv_path: Path) -> str:
    """The terminal summary of a ``grades.csv``."""
    from tabulate import tabulate

    with Path(csv_path).open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    table = [[r["student"], f"{r['autograded_total']}/{r['autograded_max']}", r["status"],
              (r["notes"][:70] + "…") if len(r["notes"]) > 71 else r["notes"]] for r in rows]
    counts = {}
    for r in rows:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    foot = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    return tabulate(table, headers=["student", "autograded", "status", "notes"]) + f"\n{len(rows)} students: {foot}"
