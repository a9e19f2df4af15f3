"""Deprecated alias of :mod:`effcourse.checks.asserts` (kept while notebooks move to the public name)."""
from .asserts import *  # noqa: F401,F403
from .asserts import CheckFailed, assert_close, assert_raises, assert_shape, assert_true, call, check_tensor, passed  # noqa: F401
