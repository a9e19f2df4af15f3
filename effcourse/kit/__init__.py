"""The student kit: what a student receives instead of this repository, and the proof that it
holds no answer.

* ``build``     — ``build_kit(labs)`` writes ``dist/effcourse-student-<version>.zip`` (release
  notebooks, the ``effcourse`` wheel, a two-command set-up) after scanning it (``effcourse student-kit``);
* ``leaks``     — fingerprints of the course's answers (solution defs and blocks, hidden tests,
  written model answers) and the scan of any set of files against them;
* ``hosted``    — the bootstrap a lab's set-up cell carries so that a hosted notebook (Colab, a
  JupyterHub with torch only) installs the kit's wheel itself, keeping the platform's torch;
* ``selfcheck`` — the kit's ``make check``: a lab's visible self-checks against the current answers
  (``python -m effcourse.kit check [labs...]``).

Nothing here imports the grading code.
"""
from .build import Kit, LeakError, ScanReport, build_kit, build_wheel, scan_kit
from .leaks import Answers, Finding, answers_of, scan

__all__ = ["Kit", "LeakError", "ScanReport", "build_kit", "build_wheel", "scan_kit", "Answers", "Finding",
           "answers_of", "scan"]
