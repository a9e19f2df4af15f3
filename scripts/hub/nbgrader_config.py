"""nbgrader settings of the test hub, added to the course's own ``nbgrader_config.py``.

Every single-user server of the hub loads this file from its ``JUPYTER_CONFIG_DIR`` (the launcher,
``scripts/hub/launch.py``, writes a one-line ``nbgrader_config.py`` there that loads it). What it
adds depends on the user's role (``EFFCOURSE_HUB_ROLE``, set by the spawner):

* everyone: the course id and the shared exchange folder (``Exchange.root``);
* a student: ``CourseDirectory.student_id`` = the hub user name (every hub user is the same OS
  account on the test hub, and nbgrader would otherwise name a submitter after that account);
* the instructor: ``CourseDirectory.root`` = the course directory, the course's own
  ``nbgrader_config.py`` (judge, feedback, sandbox-facing settings), and the grading kernel:
  formgrader's Autograde runs every submission in the ``effcourse-grader`` kernel, which is the
  course's grading kernel (``effcourse/grading/kernel.py``, tamper guard and limits) inside the
  bubblewrap sandbox (``effcourse/grading/sandbox.py``), talking over Unix sockets in
  ``EFFCOURSE_JUDGE_DIR`` (the sandbox has no network), where the judge's socket goes too.
"""
import os

c = get_config()  # noqa: F821  (provided by nbgrader)

c.CourseDirectory.course_id = os.environ.get("EFFCOURSE_HUB_COURSE_ID", "effcourse")
c.Exchange.root = os.environ["EFFCOURSE_HUB_EXCHANGE"]

ROLE = os.environ.get("EFFCOURSE_HUB_ROLE", "")
if ROLE == "student":
    c.CourseDirectory.student_id = os.environ["JUPYTERHUB_USER"]
elif ROLE == "instructor":
    course = os.environ["EFFCOURSE_HUB_COURSE_DIR"]
    c.CourseDirectory.root = course
    load_subconfig(os.path.join(course, "nbgrader_config.py"))  # noqa: F821  (the course's own settings)
    c.CourseDirectory.db_url = "sqlite:///" + os.path.join(course, "gradebook.db")
    kernel_dir = os.environ["EFFCOURSE_JUDGE_DIR"]
    c.Execute.kernel_name = "effcourse-grader"
    c.KernelManager.transport = "ipc"
    c.KernelManager.ip = os.path.join(kernel_dir, "k")
    c.KernelManager.connection_file = os.path.join(kernel_dir, "connection.json")
