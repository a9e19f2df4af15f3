"""Bundled assets: small trained weights shipped in ``effcourse/assets/``.

Each asset ``<name>.pt`` is made by ``data_scripts/build_assets.py`` (deterministic from a seed) and
its SHA-256 is recorded in ``effcourse/assets/MANIFEST.json``. ``load_asset`` checks both and fails
with a clear message when the file is missing or does not match.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch

ASSET_DIR = Path(__file__).resolve().parent / "assets"
MANIFEST = ASSET_DIR / "MANIFEST.json"


def sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def manifest() -> dict[str, dict[str, Any]]:
    return json.loads(MANIFEST.read_text()) if MANIFEST.exists() else {}


def asset_path(name: str) -> Path:
    return ASSET_DIR / f"{name}.pt"


def load_asset(name: str, verify: bool = True) -> Any:
    """Load bundled asset ``name`` (whatever ``torch.save`` stored), checking its SHA-256."""
    path, entry = asset_path(name), manifest().get(name)
    rebuild = f"rebuild it with `python -m data_scripts.build_assets {name}`"
    if entry is None:
        raise FileNotFoundError(f"asset {name!r} is not in {MANIFEST.name}; {rebuild}")
    if not path.exists():
        raise FileNotFoundError(f"asset file {path} is missing; {rebuild}")
    if verify and sha256(path) != entry["sha256"]:
        raise ValueError(f"asset {path.name} does not match its SHA-256 in {MANIFEST.name} "
                         f"(corrupt or rebuilt without updating the manifest); {rebuild}")
    return torch.load(path, map_location="cpu", weights_only=True)
