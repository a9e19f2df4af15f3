"""pyproject.toml and environment.yml list the same packages; the tooling files say what they must."""
import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def _name(req: str) -> str:
    return re.split(r"[<>=!~\[; ]", req.strip(), maxsplit=1)[0].lower().replace("_", "-")


def test_environment_yml_mirrors_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = {_name(r): r.replace(" ", "") for r in project["dependencies"] + project["optional-dependencies"]["dev"]}
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    have = {_name(r): r.replace(" ", "") for r in pip}
    assert have == wanted, f"only in pyproject: {set(wanted) - set(have)}; only in environment.yml: {set(have) - set(wanted)}"


def test_torch_pins_admit_the_local_wheels():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    torch = next(d for d in deps if _name(d) == "torch")
    vision = next(d for d in deps if _name(d) == "torchvision")
    assert "2.14.1" in torch and "0.29.1" in vision
    assert "torch==2.14.1 torchvision==0.29.1" in (ROOT / "Makefile").read_text()


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in ci and "make test" in (ROOT / "README.md").read_text()


def test_nbgrader_config_points_at_solutions_and_labs():
    cfg = (ROOT / "nbgrader_config.py").read_text()
    assert 'source_directory = "solutions"' in cfg and 'release_directory = "labs"' in cfg
    assert "c.Execute.timeout" in cfg and "ClearHiddenTests" in cfg
    ignored = (ROOT / ".gitignore").read_text()
    for path in ("submitted/", "autograded/", "feedback/", "gradebook.db"):
        assert path in ignored
