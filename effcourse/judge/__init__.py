"""The judge: grades computed where no student code runs.

When a lab is autograded, each grade cell's hidden tests run in the judge (``server.Judge``, a
thread of the grading process outside the sandbox); the student's kernel only answers its
requests with plain data (``kernel.answer``, ``wire``). Hidden tests reach the student's objects
through ``Remote`` proxies and the helpers of ``api``; the same hidden code also runs locally,
in the notebook's own kernel, for papermill and ``nbgrader validate``. The nbgrader side — moving
every grade cell's verdict into the graded notebook — is ``nbgrader.py``.
"""
from .api import build, get, in_judge, in_kernel, isinstance_of, manual_seed, twin, type_of, value
from .remote import JudgeAbort, Remote, StudentError

__all__ = ["build", "twin", "in_kernel", "get", "isinstance_of", "type_of", "value", "manual_seed", "in_judge",
           "Remote", "StudentError", "JudgeAbort"]
