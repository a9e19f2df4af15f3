"""Public self-checks learners call from the notebooks (``from effcourse.checks import lab1``).

Each check runs small examples and invariants and raises ``CheckFailed`` with what was expected and
what came back. They never contain an exercise's answer; the full property tests are hidden in the
notebooks.
"""
from .asserts import CheckFailed

__all__ = ["CheckFailed"]
