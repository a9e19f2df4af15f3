"""The training core: History round trips, EMA, exception-safe mode switches, loop options, live curve."""
from __future__ import annotations

import json
import os

import nbformat
import pytest
import torch
from nbclient import NotebookClient
from torch import nn

from effcourse.training import EMA, History, Loop, eval_mode, live_enabled, no_live_kernels, train_mode


def test_history_series_keep_their_own_steps_and_round_trip_through_json():
    h = History(live=False)
    h.log(1, loss=torch.tensor(0.5))
    h.log(2, loss=0.25, config={"width": 0.5})
    h.meta["world_size"] = 2
    assert h["loss"] == [0.5, 0.25] and h.steps("loss") == [1, 2] and h.steps("config") == [2]
    assert h.last("loss") == 0.25 and h.mean("loss") == 0.375 and h.mean("loss", last=1) == 0.25
    assert h.numeric() == ["loss"] and "config" in h and len(h) == 2
    back = History.from_dict(json.loads(json.dumps(h.to_dict())))
    assert back.to_dict() == h.to_dict()
    with pytest.raises(KeyError, match="no series 'acc'.*config"):
        h["acc"]


def test_ema_matches_its_formula_with_and_without_warmup():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3))
    for warmup in (False, True):
        ema = EMA(net, 0.99, warmup=warmup)
        start = [p.detach().clone() for p in ema.model.parameters()]
        with torch.no_grad():
            for p in net.parameters():
                p.add_(1.0)
            net[1].running_mean.add_(3.0)
        ema.update(net)
        d = min(0.99, 2 / 11) if warmup else 0.99
        for e, s, p in zip(ema.model.parameters(), start, net.parameters()):
            torch.testing.assert_close(e, d * s + (1 - d) * p.detach())
        assert torch.equal(ema.model[1].running_mean, net[1].running_mean)
        assert not ema.model.training and not any(p.requires_grad for p in ema.model.parameters())
    with pytest.raises(ValueError, match="decay"):
        EMA(net, 1.0)


def test_mode_switches_restore_every_submodule_even_when_the_block_raises():
    net = nn.Sequential(nn.Linear(2, 2), nn.Dropout(), nn.BatchNorm1d(2))
    net[1].eval()
    with pytest.raises(RuntimeError), eval_mode(net):
        assert not any(m.training for m in net.modules())
        raise RuntimeError
    assert [m.training for m in net.modules()] == [True, True, False, True]
    with train_mode(net):
        assert all(m.training for m in net.modules())
    assert [m.training for m in net.modules()] == [True, True, False, True]


def test_loop_options_are_validated_and_mark_the_steps_to_log():
    loop = Loop(steps=10, log_every=4)
    assert [s for s in range(10) if loop.logs(s)] == [3, 7, 9]
    for bad in ({"steps": 0}, {"batch_size": 2.5}, {"log_every": True}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            Loop(**bad)


def test_live_curve_is_off_outside_a_kernel_and_under_no_live_kernels():
    assert not live_enabled()                       # plain Python (pytest)
    with no_live_kernels():
        assert os.environ["EFFCOURSE_LIVE"] == "0"
    assert History()._live is None


def _run_cell(source: str, live: str | None) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source)])
    env = dict(os.environ)
    env.pop("EFFCOURSE_LIVE", None)
    if live is not None:
        env["EFFCOURSE_LIVE"] = live
    NotebookClient(nb, kernel_name="python3", timeout=120).execute(env=env)
    return nb


LOOP = """
import time
from effcourse import training
training.LIVE_EVERY_S = 0.2
h = training.History()
for step in range(12):
    h.log(step, loss=1.0 / (step + 1))
    time.sleep(0.05)
h.close()
"""


@pytest.mark.notebook
def test_a_kernel_draws_one_live_curve_that_updates_in_place_and_none_when_switched_off():
    on = _run_cell(LOOP, None)
    images = [o for o in on.cells[0].outputs if "image/png" in o.get("data", {})]
    assert len(images) == 1, on.cells[0].outputs      # one display, updated in place (not one per frame)
    off = _run_cell(LOOP, "0")
    assert not [o for o in off.cells[0].outputs if "image/png" in o.get("data", {})]
