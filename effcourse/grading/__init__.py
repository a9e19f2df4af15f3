"""Instructor plumbing around nbgrader: release labs, build courses, autograde a class safely.

Nothing here grades by itself: nbgrader runs the notebooks (``generate_assignment``, ``autograde``,
``generate_feedback``, as subprocesses) and the judge (``effcourse.judge``, wired in through
``nbgrader_config.py``) decides every grade cell outside the student's kernel. One module per job:

* ``course``    — the course directory, nbgrader commands, ``release``, ``make_course``;
* ``intake``    — finding and reading submissions (folders, LMS zips), locked-cell edits;
* ``supervise`` — grading one student: private folder, limits, watchdog, re-grading passes;
* ``sandbox``   — the bubblewrap sandbox around the grading kernel;
* ``kernel``    — the grading kernel itself (run as a script inside the sandbox);
* ``guard``     — inside the kernel: undo and report rebinding of library objects;
* ``gradebook`` — scores and maxima, and merging results into the class gradebook;
* ``batch``     — grading a class (``autograde``), several students at a time;
* ``report``    — ``grades.csv`` and the terminal summary.

See docs/INSTRUCTOR.md for what the sandbox guarantees and what it does not.
"""
from .batch import AutogradeRun, autograde
from .course import PACKAGE_ROOT, check_lab, config_timeout, course_root, labs, make_course, nbgrader, release
from .gradebook import max_scores, read_scores
from .intake import Submission, find_submissions, load_notebook, student_key, tamper_report
from .report import Result, summary_table, write_csv
from .supervise import scan_autograded

__all__ = ["AutogradeRun", "autograde", "PACKAGE_ROOT", "check_lab", "config_timeout", "course_root", "labs",
           "make_course", "nbgrader", "release", "max_scores", "read_scores", "Submission", "find_submissions",
           "load_notebook", "student_key", "tamper_report", "Result", "summary_table", "write_csv",
           "scan_autograded"]
