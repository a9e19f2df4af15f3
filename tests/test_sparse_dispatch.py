"""The incremental engine does work proportional to the edit: a timing-free check.

Every ATen op a sparse call runs is watched (``TorchDispatchMode``). At a small edit (0.5 %), no op may
*allocate* a tensor with half or more of the elements of the network's smallest inner activation
(views and in-place writes into existing buffers are not allocations; the final output copy is
exempt). The compare-with-cache path fails the same check by design: it compares and copies whole
activations at every layer — proof that the check can see full-size work.
"""
import pytest
import torch
from torch import nn

from effcourse.checks import lab5
from effcourse.sparse.engine import SparseRunner
from effcourse.sparse.models import ResGenerator, conv_stack, randomize_batchnorm, square_edit

import harness

pytestmark = pytest.mark.xdist_group("lab5_sige")


Allocations = lab5.AllocationWatch


def _solution():
    s = lab5.load_exercises(harness.solution_path("lab5_sige"))
    return s["SparseConv2d"], lab5.kernels_of(s["active_tiles"], s["gather"], s["scatter"])


def _inner_activations(runner, x):
    """Element counts of the outputs of every conv but the last (the network's inner activations)."""
    sizes = []
    hooks = [m.register_forward_hook(lambda mod, args, out: sizes.append(out.numel()))
             for m in runner.dense_model.modules()
             if isinstance(m, nn.Conv2d)]
    try:
        runner.dense(x)
    finally:
        for h in hooks:
            h.remove()
    return sizes[:-1]


NETWORKS = {  # name: (network, input shape, tile)
    "conv stack, 32 channels": (lambda: conv_stack(32, 4), (1, 3, 96, 96), 8),
    "residual generator, batch 2": (lambda: randomize_batchnorm(ResGenerator(16, 2), torch.Generator().manual_seed(0)),
                                    (2, 3, 256, 256), 4),
}


@pytest.mark.parametrize("name", list(NETWORKS))
def test_no_full_size_allocation_in_a_sparse_call(name):
    torch.manual_seed(0)
    make, shape, tile = NETWORKS[name]
    SparseConv2d, kernels = _solution()
    runner = SparseRunner(make(), SparseConv2d, tile=tile, kernels=kernels)
    x = torch.rand(*shape)
    runner.full(x)
    limit = 0.5 * min(_inner_activations(runner, x))
    out_numel = runner.dense(x).numel()
    for top, left in ((40, 40), (8, 60), (40, 40)):                   # a sequence: buffers get restored too
        xe, _ = square_edit(x, 0.005, top=top, left=left)
        with Allocations() as watch:
            y = runner.sparse(xe)
        torch.testing.assert_close(y, runner.dense(xe), rtol=1e-5, atol=1e-5)
        big = [(op, shp) for op, shp, n in watch.fresh if n >= limit]
        # the final output copy is exempt: one clone of the output's size
        copies = [b for b in big if b[0] == "clone" and torch.Size(b[1]).numel() == out_numel]
        others = [b for b in big if b not in copies[:1]]
        assert not others, f"{name}: ops allocating >= {int(limit)} elements in a sparse call: {others[:5]}"


def test_the_compare_path_fails_the_same_check():
    torch.manual_seed(0)
    SparseConv2d, _ = _solution()
    runner = SparseRunner(conv_stack(32, 4), SparseConv2d, tile=8)
    x = torch.rand(1, 3, 96, 96)
    runner.full(x)
    limit = 0.5 * min(_inner_activations(runner, x))
    with Allocations() as watch:
        runner.sparse(square_edit(x, 0.01, top=40, left=40)[0])
    assert any(n >= limit for _, _, n in watch.fresh)
