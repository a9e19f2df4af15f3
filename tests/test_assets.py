"""Bundled assets: every asset script builds (quick mode) and loads; the shipped files match their
SHA-256; load_asset fails clearly on a missing file or a mismatch; everything together is <= 10 MB.

The real asset files are never modified: the error cases run on copies in tmp_path.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import effcourse.assets as assets
from data_scripts.build_assets import available

ROOT = Path(__file__).resolve().parent.parent
LIMIT_BYTES = 10 * 1024 * 1024


@pytest.mark.parametrize("name", available() or [pytest.param(None, marks=pytest.mark.skip("no asset scripts"))])
def test_quick_build_runs_and_loads(name, tmp_path):
    before = assets.MANIFEST.read_text() if assets.MANIFEST.exists() else None
    env = {**os.environ, "EFFCOURSE_THREADS": "1", "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    run = subprocess.run([sys.executable, "-m", "data_scripts.build_assets", name, "--quick", "--out", str(tmp_path)],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, f"quick build of {name} failed:\n{run.stdout[-2000:]}\n{run.stderr[-2000:]}"
    path = tmp_path / f"{name}.pt"
    assert path.exists(), f"quick build of {name} wrote no {path.name}"
    obj = torch.load(path, map_location="cpu", weights_only=True)
    assert obj is not None
    assert (assets.MANIFEST.read_text() if assets.MANIFEST.exists() else None) == before, "--quick touched the manifest"


def test_quick_build_refuses_to_overwrite_the_shipped_assets():
    run = subprocess.run([sys.executable, "-m", "data_scripts.build_assets", "--quick"], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode != 0 and "--out" in (run.stderr + run.stdout)


def test_every_shipped_asset_matches_its_manifest_and_loads():
    entries = assets.manifest()
    shipped = sorted(p.stem for p in assets.ASSET_DIR.glob("*.pt"))
    assert sorted(entries) == shipped, f"manifest lists {sorted(entries)} but the folder holds {shipped}"
    for name, entry in entries.items():
        assert entry["bytes"] == assets.asset_path(name).stat().st_size, f"{name}: size differs from the manifest"
        assert (ROOT / entry["script"]).exists(), f"{name}: its build script {entry['script']} is missing"
        assert assets.load_asset(name) is not None          # checks the SHA-256


def test_all_assets_together_fit_in_10_mb():
    total = sum(p.stat().st_size for p in assets.ASSET_DIR.iterdir() if p.is_file())
    assert total <= LIMIT_BYTES, f"bundled assets take {total / 2**20:.2f} MiB, the limit is 10 MiB"


@pytest.fixture
def fake_assets(tmp_path, monkeypatch):
    """An asset folder in tmp_path with one good asset 'tiny'; load_asset reads it instead of the real one."""
    folder = tmp_path / "assets"
    folder.mkdir()
    torch.save({"w": torch.arange(6.0)}, folder / "tiny.pt")
    manifest = folder / "MANIFEST.json"
    manifest.write_text(json.dumps({"tiny": {"sha256": assets.sha256(folder / "tiny.pt"),
                                             "bytes": (folder / "tiny.pt").stat().st_size,
                                             "script": "data_scripts/asset_tiny.py"}}))
    monkeypatch.setattr(assets, "ASSET_DIR", folder)
    monkeypatch.setattr(assets, "MANIFEST", manifest)
    return folder


def test_load_asset_reads_a_good_file(fake_assets):
    assert torch.equal(assets.load_asset("tiny")["w"], torch.arange(6.0))


def test_load_asset_missing_file_is_a_clear_error(fake_assets):
    (fake_assets / "tiny.pt").unlink()
    with pytest.raises(FileNotFoundError, match=r"tiny.pt is missing.*python -m data_scripts.build_assets tiny"):
        assets.load_asset("tiny")
    with pytest.raises(FileNotFoundError, match="'nope' is not in MANIFEST.json"):
        assets.load_asset("nope")


def test_load_asset_sha_mismatch_is_a_clear_error(fake_assets):
    torch.save({"w": torch.zeros(6)}, fake_assets / "tiny.pt")      # same shape, different bytes
    with pytest.raises(ValueError, match="does not match its SHA-256"):
        assets.load_asset("tiny")


def test_real_assets_are_untouched_by_these_tests():
    # the error tests above worked on copies: the shipped files still verify
    for name in assets.manifest():
        assert assets.sha256(assets.asset_path(name)) == assets.manifest()[name]["sha256"]
