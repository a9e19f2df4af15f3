"""JupyterHub configuration of the course's TEST hub (``make hub``; ``tests/browser/test_hub.py``).

TEST-ONLY: a DummyAuthenticator (one shared password) and SimpleLocalProcessSpawner (every
single-user server runs as the hub's own OS account, in a working folder of its own under a
temporary root). Neither isolates users; never expose this hub. Production choices:
docs/HUB.md.

Read from the environment (``scripts/hub/launch.py`` sets them):
``EFFCOURSE_HUB_ROOT`` (the temporary root: homes, exchange, per-user config, hub state),
``EFFCOURSE_HUB_PORT``, ``EFFCOURSE_HUB_PASSWORD``, ``EFFCOURSE_HUB_INSTRUCTOR``,
``EFFCOURSE_HUB_STUDENTS`` (comma-separated), ``EFFCOURSE_HUB_PROXY`` (configurable-http-proxy).
"""
import os
import sys
from pathlib import Path

c = get_config()  # noqa: F821  (provided by jupyterhub)

ROOT = Path(os.environ["EFFCOURSE_HUB_ROOT"])
PORT = int(os.environ.get("EFFCOURSE_HUB_PORT", "8000"))
INSTRUCTOR = os.environ.get("EFFCOURSE_HUB_INSTRUCTOR", "instructor")
STUDENTS = [s for s in os.environ.get("EFFCOURSE_HUB_STUDENTS", "alice,bob").split(",") if s]
BIN = Path(sys.executable).parent

c.JupyterHub.bind_url = f"http://127.0.0.1:{PORT}"
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = int(os.environ.get("EFFCOURSE_HUB_API_PORT", "0")) or PORT + 1
PROXY_API_PORT = int(os.environ.get("EFFCOURSE_HUB_PROXY_API_PORT", "0")) or PORT + 2
c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{PROXY_API_PORT}"
c.ConfigurableHTTPProxy.command = [os.environ["EFFCOURSE_HUB_PROXY"]]
c.ConfigurableHTTPProxy.should_start = True
c.JupyterHub.db_url = f"sqlite:///{ROOT / 'hub' / 'jupyterhub.sqlite'}"
c.JupyterHub.cookie_secret_file = str(ROOT / "hub" / "jupyterhub_cookie_secret")
c.JupyterHub.pid_file = str(ROOT / "hub" / "jupyterhub.pid")
c.JupyterHub.cleanup_servers = True
c.JupyterHub.cleanup_proxy = True
c.JupyterHub.check_running_servers = False

# --- TEST-ONLY authentication: the three course users, one password -------------------------------
c.JupyterHub.authenticator_class = "dummy"
c.DummyAuthenticator.password = os.environ["EFFCOURSE_HUB_PASSWORD"]
c.Authenticator.allowed_users = {INSTRUCTOR, *STUDENTS}
c.Authenticator.admin_users = {INSTRUCTOR}

# --- TEST-ONLY spawner: single-user servers as the hub's account, one working folder each ---------
c.JupyterHub.spawner_class = "simple"            # jupyterhub.spawner.SimpleLocalProcessSpawner
c.SimpleLocalProcessSpawner.home_dir_template = str(ROOT / "home" / "{username}")
c.Spawner.cmd = [str(BIN / "jupyterhub-singleuser")]
c.Spawner.default_url = "/lab"
c.Spawner.start_timeout = 180
c.Spawner.http_timeout = 180
c.Spawner.args = ["--ServerApp.open_browser=False", "--LabApp.news_url=",
                  "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
if os.geteuid() == 0:
    c.Spawner.args.append("--allow-root")


def per_user(spawner):
    """Each user's environment: their own Jupyter config folder (nbgrader role, extensions) and the
    course settings that ``scripts/hub/nbgrader_config.py`` reads."""
    name = spawner.user.name
    cfg = ROOT / "config" / name
    env = {
        "PATH": os.pathsep.join([str(BIN), os.environ.get("PATH", "")]),
        "JUPYTER_CONFIG_DIR": str(cfg / "jupyter"),
        "JUPYTER_DATA_DIR": str(cfg / "data"),
        "JUPYTER_RUNTIME_DIR": str(cfg / "runtime"),
        "JUPYTERLAB_SETTINGS_DIR": str(cfg / "lab-settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(cfg / "lab-workspaces"),
        "IPYTHONDIR": str(cfg / "ipython"),
        "EFFCOURSE_HUB_EXCHANGE": str(ROOT / "exchange"),
        "EFFCOURSE_HUB_COURSE_ID": os.environ.get("EFFCOURSE_HUB_COURSE_ID", "effcourse"),
        "EFFCOURSE_HUB_ROLE": "instructor" if name == INSTRUCTOR else "student",
        "EFFCOURSE_SMOKE": "1",            # students' kernels: experiments at their smallest (a test hub)
        "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "EFFCOURSE_THREADS": "1",
    }
    if name == INSTRUCTOR:
        env.update({
            "EFFCOURSE_HUB_COURSE_DIR": str(ROOT / "home" / INSTRUCTOR),
            "EFFCOURSE_JUDGE_DIR": os.environ["EFFCOURSE_HUB_KERNEL_DIR"],
            # the effcourse-grader kernel spec (bubblewrap around the grading kernel)
            "JUPYTER_PATH": str(ROOT / "config" / "grader"),
        })
    spawner.environment.update(env)


c.Spawner.pre_spawn_hook = per_user
