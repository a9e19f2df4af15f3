"""nbgrader configuration for the course (the repository root is the course directory)."""
from nbconvert.preprocessors import ClearMetadataPreprocessor, CSSHTMLHeaderPreprocessor
from nbgrader.preprocessors import (AssignLatePenalties, CheckCellMetadata, ClearHiddenTests, ClearMarkScheme,
                                    ClearOutput, ClearSolutions, ComputeChecksums, IgnorePattern,
                                    IncludeHeaderFooter, InstantiateTests, LimitOutput, LockCells, SaveAutoGrades,
                                    SaveCells)

from effcourse.grading.feedback import SanitizeFeedback, ShortenGradeTracebacks
from effcourse.grading.feedback_page import GetGradesAndStatus, SummarizeGrades, template_dirs
from effcourse.judge.nbgrader import ApplyVerdicts, CappedExecute, JudgeGradeCells

c = get_config()  # noqa: F821  (provided by nbgrader)

c.CourseDirectory.source_directory = "solutions"
c.CourseDirectory.release_directory = "labs"
c.CourseDirectory.submitted_directory = "submitted"
c.CourseDirectory.autograded_directory = "autograded"
c.CourseDirectory.feedback_directory = "feedback"
# the percent-format .py twins of the solution notebooks are authoring sources: never release them
c.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__", "feedback", "*.py"]
c.CourseDirectory.db_url = "sqlite:///gradebook.db"

# a cell that runs longer than this is interrupted and its test scores 0
c.Execute.timeout = 300
c.Execute.interrupt_on_timeout = True

# the release: no outputs, solutions replaced by stubs, hidden tests removed
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"

# hidden tests never reach a kernel or the gradebook: they are cleared *before* the cells are saved,
# so the gradebook (and every autograded copy, which the graded kernel can read) holds only the
# visible checks; the judge reads the hidden tests from solutions/ when it grades
c.GenerateAssignment.preprocessors = [IncludeHeaderFooter, InstantiateTests, LockCells, ClearSolutions, ClearOutput,
                                      CheckCellMetadata, ClearHiddenTests, ComputeChecksums, SaveCells,
                                      ClearMarkScheme, ComputeChecksums, CheckCellMetadata]

# every grade cell is judged outside the student's kernel (effcourse/judge/): the kernel runs only
# answer("<grade id>"), and each grade cell's output is replaced by the judge's verdict before
# nbgrader scores it. This holds for `effcourse autograde`, `nbgrader autograde` and formgrader.
c.Autograde.autograde_preprocessors = [JudgeGradeCells, CappedExecute, ApplyVerdicts, IgnorePattern,
                                       ClearMetadataPreprocessor, LimitOutput, SaveAutoGrades, AssignLatePenalties,
                                       CheckCellMetadata]

# feedback must never show hidden test code (not in a grade cell's source, not in its traceback) and
# never run a student's script in the reader's browser (SanitizeFeedback, last); SummarizeGrades and
# effcourse's "feedback" template name each exercise and keep ungraded written answers out of the total
c.GenerateFeedback.preprocessors = [GetGradesAndStatus, SummarizeGrades, CSSHTMLHeaderPreprocessor, ClearHiddenTests,
                                    ShortenGradeTracebacks, SanitizeFeedback]
c.HTMLExporter.extra_template_basedirs = template_dirs()      # ours first, then formgrader's
