"""Start the course's TEST JupyterHub on localhost: an instructor, two students, nbgrader's exchange.

    .venv/bin/python scripts/hub/launch.py [--root DIR] [--port 8000] [--lab LAB ...]
                                           [--password PW] [--students alice,bob]

(``make hub`` runs it after ``scripts/hub/install.sh``.) It lays out ``--root`` (default: a new
temporary folder) and runs ``jupyterhub -f scripts/hub/jupyterhub_config.py`` in the foreground:

* ``home/<instructor>/`` — the instructor's working folder *is* the nbgrader course directory:
  the course's ``nbgrader_config.py`` and ``solutions/<lab>/`` of each ``--lab`` (generate and
  release them in formgrader); formgrader is the instructor's own server extension;
* ``home/<student>/`` — each student's working folder (fetched labs land here);
* ``exchange/`` — nbgrader's exchange, shared (mode 1777 like ``/srv/nbgrader/exchange``);
* ``config/<user>/`` — each user's Jupyter config: ``nbgrader_config.py`` (loads
  ``scripts/hub/nbgrader_config.py``), which server and lab extensions they get (students: no
  formgrader, no Create Assignment), JupyterLab settings;
* ``config/grader/kernels/effcourse-grader/`` — the sandboxed grading kernel formgrader uses;
* ``hub/`` — the hub's database, cookie secret and log.

TEST-ONLY authentication and spawner (one shared password; every server runs as this OS account):
see docs/HUB.md for a production hub.
"""
from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
PROXY = Path(os.environ.get("VENV", REPO / ".venv")) / "hub-proxy" / "node_modules" / ".bin" / "configurable-http-proxy"
DEFAULT_LABS = ["lab1_temporal_shift"]

# students see the assignment list and Validate; formgrader and Create Assignment are the instructor's
STUDENT_SERVER = {"ServerApp": {"jpserver_extensions": {"nbgrader.server_extensions.formgrader": False}}}
STUDENT_LAB = {"disabledExtensions": {"@jupyter/nbgrader:formgrader": True,
                                      "@jupyter/nbgrader:create-assignment": True}}
INSTRUCTOR_LAB = {"disabledExtensions": {"@jupyter/nbgrader:assignment-list": False}}
# no news/update checks (no network), every cell in the DOM, no autosave (files change under the test)
LAB_SETTINGS = {
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false", "checkForUpdates": False},
    "@jupyterlab/docmanager-extension/plugin.jupyterlab-settings": {"autosave": False},
    "@jupyterlab/extensionmanager-extension/plugin.jupyterlab-settings": {"enabled": False},
}


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def prepare(root: Path, labs: list[str], instructor: str, students: list[str]) -> dict:
    """Lay out ``root`` (idempotent: an existing course folder is kept); return the hub's environment."""
    root = root.resolve()
    (root / "hub").mkdir(parents=True, exist_ok=True)
    exchange = root / "exchange"
    exchange.mkdir(exist_ok=True)
    exchange.chmod(0o1777)
    course = root / "home" / instructor
    course.mkdir(parents=True, exist_ok=True)
    shutil.copy2(REPO / "nbgrader_config.py", course / "nbgrader_config.py")
    for lab in labs:
        src = REPO / "solutions" / lab
        if not (src / f"{lab}.ipynb").exists():
            raise SystemExit(f"unknown lab {lab!r}: no {src / (lab + '.ipynb')}")
        shutil.copytree(src, course / "solutions" / lab, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
    for who in students:
        (root / "home" / who).mkdir(parents=True, exist_ok=True)
    for who in (instructor, *students):
        cfg = root / "config" / who
        _write(cfg / "jupyter" / "nbgrader_config.py",
               f"# the test hub's nbgrader settings (role from EFFCOURSE_HUB_ROLE)\n"
               f"load_subconfig({str(HERE / 'nbgrader_config.py')!r})\n")
        if who != instructor:
            _write(cfg / "jupyter" / "jupyter_server_config.json", json.dumps(STUDENT_SERVER, indent=1))
        _write(cfg / "jupyter" / "labconfig" / "page_config.json",
               json.dumps(STUDENT_LAB if who != instructor else INSTRUCTOR_LAB, indent=1))
        for name, value in LAB_SETTINGS.items():
            _write(cfg / "lab-settings" / name, json.dumps(value))
        for sub in ("data", "runtime", "lab-workspaces", "ipython"):
            (cfg / sub).mkdir(parents=True, exist_ok=True)
    spec = root / "config" / "grader" / "kernels" / "effcourse-grader" / "kernel.json"
    _write(spec, json.dumps({"argv": [sys.executable, str(HERE / "grader_kernel.py"), "{connection_file}"],
                             "display_name": "Python 3 (effcourse grader, sandboxed)", "language": "python",
                             "interrupt_mode": "message"}, indent=1))
    # the grading kernel's folder (connection file, Unix sockets, the judge's socket): short, since a
    # Unix socket path has at most 107 bytes
    kernel_dir = Path(tempfile.mkdtemp(prefix="efhub-", dir="/tmp"))
    (root / "hub" / "kernel_dir").write_text(str(kernel_dir), encoding="utf-8")     # for whoever cleans up
    return {"EFFCOURSE_HUB_ROOT": str(root), "EFFCOURSE_HUB_KERNEL_DIR": str(kernel_dir),
            "EFFCOURSE_HUB_INSTRUCTOR": instructor, "EFFCOURSE_HUB_STUDENTS": ",".join(students),
            "EFFCOURSE_HUB_PROXY": str(PROXY)}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", type=Path, help="working root (default: a new temporary folder)")
    ap.add_argument("--port", type=int, default=8000)
    ap.add_argument("--lab", action="append", dest="labs", help=f"lab(s) in the course (default {DEFAULT_LABS})")
    ap.add_argument("--password", default=os.environ.get("EFFCOURSE_HUB_PASSWORD"),
                    help="the test password of every user (default: random, printed)")
    ap.add_argument("--instructor", default="instructor")
    ap.add_argument("--students", default="alice,bob")
    args = ap.parse_args(argv)
    if not PROXY.exists():
        raise SystemExit(f"{PROXY} is missing: run `bash scripts/hub/install.sh` (or `make hub`)")
    root = args.root or Path(tempfile.mkdtemp(prefix="effcourse-hub-"))
    password = args.password or secrets.token_urlsafe(9)
    students = [s for s in args.students.split(",") if s]
    env = dict(os.environ)
    env.update(prepare(root, args.labs or DEFAULT_LABS, args.instructor, students))
    env.update({"EFFCOURSE_HUB_PORT": str(args.port), "EFFCOURSE_HUB_PASSWORD": password,
                "PATH": os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])})
    env.pop("JUPYTER_CONFIG_DIR", None)
    print(f"effcourse test hub: http://127.0.0.1:{args.port}/hub/login  users: {args.instructor} (instructor), "
          f"{', '.join(students)}; password: {password}\n  root: {root}\n  TEST-ONLY: dummy authentication, "
          "no user isolation (docs/HUB.md)", flush=True)
    cmd = [sys.executable, "-m", "jupyterhub", "-f", str(HERE / "jupyterhub_config.py")]
    os.chdir(root / "hub")
    os.execve(sys.executable, cmd, env)


if __name__ == "__main__":
    main()
