"""Build the bundled assets deterministically and record their SHA-256 in the manifest.

    python -m data_scripts.build_assets            # every asset
    python -m data_scripts.build_assets NAME ...   # some of them
    python -m data_scripts.build_assets --quick --out DIR   # a fast smoke build (used by the tests)

Each asset is a module ``data_scripts/asset_<name>.py`` defining ``build(quick: bool) -> object``
(a state dict, usually) that ``torch.save`` writes to ``effcourse/assets/<name>.pt``.
"""
from __future__ import annotations

import argparse
import importlib
import io
import json
import pkgutil
import time
from pathlib import Path

import torch

from effcourse.assets import ASSET_DIR, MANIFEST, sha256

HERE = Path(__file__).resolve().parent


def available() -> list[str]:
    return sorted(m.name[len("asset_"):] for m in pkgutil.iter_modules([str(HERE)]) if m.name.startswith("asset_"))


def build_one(name: str, quick: bool = False, out: Path = ASSET_DIR) -> Path:
    if name not in available():
        raise SystemExit(f"unknown asset {name!r}; known: {', '.join(available())}")
    mod = importlib.import_module(f"data_scripts.asset_{name}")
    t0 = time.time()
    obj = mod.build(quick=quick)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.pt"
    buf = io.BytesIO()
    torch.save(obj, buf)
    path.write_bytes(buf.getvalue())
    print(f"built {path} ({path.stat().st_size / 1e6:.2f} MB) in {time.time() - t0:.1f} s")
    return path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("names", nargs="*", help=f"assets to build (default all: {', '.join(available())})")
    ap.add_argument("--quick", action="store_true", help="a fast smoke build; never written to the package")
    ap.add_argument("--out", type=Path, help="output folder (default effcourse/assets)")
    args = ap.parse_args(argv)
    out = args.out or ASSET_DIR
    if args.quick and out.resolve() == ASSET_DIR.resolve():
        raise SystemExit("--quick builds are smoke tests: pass --out DIR so the shipped assets stay intact")
    entries = json.loads(MANIFEST.read_text()) if MANIFEST.exists() else {}
    for name in args.names or available():
        path = build_one(name, args.quick, out)
        if out.resolve() == ASSET_DIR.resolve():
            entries[name] = {"sha256": sha256(path), "bytes": path.stat().st_size,
                             "script": f"data_scripts/asset_{name}.py"}
            MANIFEST.write_text(json.dumps(dict(sorted(entries.items())), indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
