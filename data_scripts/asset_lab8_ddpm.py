"""Asset ``lab8_ddpm``: built by ``data_scripts/train_lab8_ddpm.py`` (see its docstring)."""
from data_scripts.train_lab8_ddpm import build  # noqa: F401
