"""``effcourse.record``: the learner sees a readable line (or a short table); the notebook's output
metadata keeps the exact value for ``read_records``."""
from __future__ import annotations

import IPython
import IPython.display
import numpy as np
import torch

import effcourse
from effcourse.runtime import RECORD_KEY, show_record


def test_numbers_are_formatted_not_repr():
    assert show_record("acc", 0.9937499761581421) == "recorded acc = 0.9937"
    assert show_record("macs", 94961664) == "recorded macs = 94,961,664"
    assert show_record("macs", 31760384.0) == "recorded macs = 31,760,384"
    assert show_record("err", 3.166496753692627e-08) == "recorded err = 3.166e-08"
    assert show_record("ok", True) == "recorded ok = True"
    assert show_record("kind", "tsm") == "recorded kind = tsm"       # no JSON quotes
    assert show_record("curve", [0.38, 0.465, 0.34]) == "recorded curve = [0.38, 0.465, 0.34]"
    assert show_record("fit", {"bandwidth_Bps": 923867077.87, "latency_s": 0.000138}) == \
        "recorded fit = {bandwidth_Bps: 923,867,078, latency_s: 0.000138}"


def test_a_long_list_shows_its_ends_and_length():
    assert show_record("l", list(range(30))) == "recorded l = [0, 1, 2, …, 28, 29] (30 values)"


def test_tables_are_short_aligned_tables():
    rows = [[0.5, 64.0, 16.95161312920756], [1.2, 36.81734595855633, 11.82474197023772]]
    assert show_record("speedup_vs_area", rows).splitlines() == [
        "recorded speedup_vs_area (2 rows):",
        "  0.5     64  16.95",
        "  1.2  36.82  11.82"]
    records = [{"acc": 0.475, "axis": None, "macs": 12160}, {"acc": 0.485, "axis": "res", "macs": 27280}]
    assert show_record("path", records).splitlines() == [
        "recorded path (2 rows):",
        "    acc  axis    macs",
        "  -----  ----  ------",
        "  0.475  None  12,160",
        "  0.485  res   27,280"]
    by_name = {f"row{i}": {"compute": i / 7, "load": 1.0} for i in range(12)}
    lines = show_record("split", by_name).splitlines()
    assert lines[0] == "recorded split (12 entries):" and lines[-1] == "  … 4 more rows" and len(lines) == 1 + 2 + 8 + 1
    assert all(len(ln) <= 100 for ln in show_record("wide", {"k": list(range(200)), "j": "x" * 300}).splitlines())


def test_record_shows_text_and_keeps_the_exact_value(monkeypatch):
    shown = []
    monkeypatch.setattr(IPython, "get_ipython", lambda: object())
    monkeypatch.setattr(IPython.display, "display", lambda obj, raw, metadata: shown.append((obj, metadata)))
    table = [{"ratio": "0.25x", "psnr": 20.753762204485433}, {"ratio": "0.5x", "psnr": np.float32(25.5)}]
    value = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    assert effcourse.record("grid", table) is table
    assert effcourse.record("t", value) is value
    (obj1, meta1), (obj2, meta2) = shown
    assert meta1 == {RECORD_KEY: {"grid": [{"ratio": "0.25x", "psnr": 20.753762204485433},
                                           {"ratio": "0.5x", "psnr": 25.5}]}}
    assert meta2 == {RECORD_KEY: {"t": [[1.0, 2.0], [3.0, 4.0]]}}
    assert "{" not in obj1["text/plain"] and "20.75" in obj1["text/plain"] and "20.753762" not in obj1["text/plain"]
    nb = {"cells": [{"cell_type": "code", "outputs": [
        {"output_type": "display_data", "data": obj, "metadata": meta} for obj, meta in shown]}]}
    assert effcourse.read_records(nb) == {"grid": meta1[RECORD_KEY]["grid"], "t": [[1.0, 2.0], [3.0, 4.0]]}
