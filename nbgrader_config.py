"""nbgrader configuration for the course (the repository root is the course directory)."""
from nbconvert.preprocessors import CSSHTMLHeaderPreprocessor
from nbgrader.preprocessors import ClearHiddenTests, GetGrades

from effcourse.grading.feedback import ShortenGradeTracebacks

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

# feedback must never show hidden test code: not in a grade cell's source, not in its traceback
c.GenerateFeedback.preprocessors = [GetGrades, CSSHTMLHeaderPreprocessor, ClearHiddenTests, ShortenGradeTracebacks]
