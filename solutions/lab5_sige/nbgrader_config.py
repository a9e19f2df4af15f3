"""nbgrader settings for `nbgrader validate` run from this folder (the course's own config lives in
the repository root and is not read here). The graded speed measurement of this lab times a dense
and an incremental network ten times each; on a busy machine that cell needs more than nbgrader's
default 30 s per cell, so use the course's per-cell timeout. Never released (``*.py`` is ignored)."""
c = get_config()  # noqa: F821  (provided by nbgrader)

c.Execute.timeout = 300
c.Execute.interrupt_on_timeout = True
