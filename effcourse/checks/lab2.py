"""Self-checks for Lab 2 (3D convolutions). Small examples and invariants only; the full property
tests are hidden in the notebook.

* inflation: the "boredom" test — on a clip that repeats one frame, an inflated conv must give the 2D
  conv's output on that frame; an unknown method is a ``ValueError`` (its own check);
* (2+1)D: the paper's worked mid-plane counts, output shapes against ``nn.Conv3d``, the layers and
  the parameter count the contract fixes;
* SVD decomposition: exact at full rank.

``toy_resnet2d(seed, ...)`` builds the same small 2D ResNet, with random BatchNorm statistics, eps
and momentum, wherever it is called with the same arguments (the hidden tests build one in the
judge and its twin where the learner's code runs). ``seed_in_failures(seed)`` is for hidden tests that draw
from the clock: every failure inside it names the seed, so a learner's failure can be replayed.
"""
from __future__ import annotations

import copy
import numbers

import torch
from torch import nn

from ..video import resnet2d
from .asserts import (assert_close, assert_raises, assert_shape, assert_true, call, clock_seed, passed,
                      seed_in_failures)

__all__ = ["check_inflate_conv2d", "check_inflate_conv2d_errors", "check_inflate_model", "check_midplanes",
           "check_conv2plus1d", "check_decompose_conv3d", "clock_seed", "seed_in_failures", "toy_resnet2d"]


def toy_resnet2d(seed: int, num_classes: int = 5, in_channels: int = 1, widths=(8, 8, 16, 16),
                 layers=(1, 1, 1, 1), stem: str = "small") -> nn.Module:
    """A small torchvision ResNet (``effcourse.video.resnet2d``) whose weights and BatchNorm layers
    (weight, bias, running mean/var, eps, momentum) are drawn from ``seed`` alone: the same
    arguments give the same network in any process, and the global RNG is left as it was.

    ``stem="resnet18"`` gives it torchvision resnet18's stem (a 7x7 stride-2 conv and a 3x3
    stride-2 max-pool) instead of the 3x3 stride-2 conv without max-pool. Returned in eval mode.
    Input ``(B, in_channels, H, W)``, output ``(B, num_classes)``."""
    if stem not in ("small", "resnet18"):
        raise ValueError(f"stem must be 'small' or 'resnet18', got {stem!r}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        model = resnet2d(num_classes=num_classes, in_channels=in_channels, widths=tuple(widths),
                         layers=tuple(layers))
        if stem == "resnet18":
            model.conv1 = nn.Conv2d(in_channels, widths[0], 7, 2, 3, bias=False)
            model.maxpool = nn.MaxPool2d(3, 2, 1)
    g = torch.Generator().manual_seed(int(seed) + 1)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.5, generator=g)
                m.running_var.uniform_(0.5, 2.0, generator=g)
                m.weight.uniform_(0.5, 1.5, generator=g)
                m.bias.normal_(0, 0.2, generator=g)
                m.eps = float(torch.empty(()).uniform_(1e-5, 1e-3, generator=g))
                m.momentum = float(torch.empty(()).uniform_(0.05, 0.3, generator=g))
    return model.eval()


def _static_clip(frame: torch.Tensor, t: int) -> torch.Tensor:
    """(N, C, H, W) -> (N, C, t, H, W): the same frame repeated t times."""
    return frame.unsqueeze(2).expand(-1, -1, t, -1, -1).contiguous()


def check_inflate_conv2d(inflate_conv2d) -> None:
    """Type and geometry of the result, the boredom test for both methods."""
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 4, 3, stride=1, padding=1, bias=True)
    w0 = conv.weight.detach().clone()
    c3 = call("inflate_conv2d(Conv2d(3, 4, 3, padding=1), 3, 'average')", inflate_conv2d, conv, 3, "average")
    assert_true(isinstance(c3, nn.Conv3d), f"inflate_conv2d must return an nn.Conv3d, got {type(c3).__name__}")
    assert_shape("inflated weight (out, in, time_kernel, kh, kw)", c3.weight, (4, 3, 3, 3, 3))
    assert_true(tuple(c3.padding) == (1, 1, 1) and tuple(c3.stride) == (1, 1, 1),
                f"Conv2d(padding=1, stride=1) inflated with time_kernel=3 needs padding (1, 1, 1) and stride "
                f"(1, 1, 1); got padding {tuple(c3.padding)} and stride {tuple(c3.stride)}")
    assert_true(torch.equal(conv.weight.detach(), w0), "inflate_conv2d modified the 2D conv's weight")
    frame = torch.randn(2, 3, 6, 7)
    clip = _static_clip(frame, 5)                          # (2, 3, 5, 6, 7)
    with torch.no_grad():
        ref = conv(frame)
        out = call("the inflated conv on a (2, 3, 5, 6, 7) clip", c3, clip)
        assert_shape("inflated conv on a (2, 3, 5, 6, 7) clip", out, (2, 4, 5, 6, 7))
        for t in range(1, 4):
            assert_close(f"'average' boredom test: output frame {t} (interior) vs the 2D conv on the frame",
                         out[:, :, t], ref, atol=1e-5)
        c3c = call("inflate_conv2d(Conv2d(3, 4, 3, padding=1), 3, 'center')", inflate_conv2d, conv, 3, "center")
        outc = call("the 'center' inflated conv on a (2, 3, 5, 6, 7) clip", c3c, clip)
        for t in range(5):
            assert_close(f"'center' boredom test: output frame {t} (every frame) vs the 2D conv on the frame",
                         outc[:, :, t], ref, atol=1e-5)
    passed("inflate_conv2d: Conv3d geometry, boredom test ('average': interior frames, 'center': all frames)")


def check_inflate_conv2d_errors(inflate_conv2d) -> None:
    """An unknown method is a ValueError, as the contract says."""
    conv = nn.Conv2d(3, 4, 3, padding=1)
    for bad in ("median", "Center"):
        assert_raises(f"inflate_conv2d(conv, 3, method={bad!r})", lambda bad=bad: inflate_conv2d(conv, 3, bad),
                      ValueError)
    passed("inflate_conv2d: ValueError for an unknown method")


def check_inflate_model(inflate_model) -> None:
    """A small torchvision ResNet: nothing 2D left, input untouched, static-clip logits in eval mode."""
    torch.manual_seed(0)
    m2 = resnet2d(num_classes=5).eval()
    before = copy.deepcopy(m2.state_dict())
    m3 = call("inflate_model(resnet2d(num_classes=5), 3, 'center')", inflate_model, m2, 3, "center")
    assert_true(isinstance(m3, nn.Module), f"inflate_model must return an nn.Module, got {type(m3).__name__}")
    left = sorted({type(m).__name__ for m in m3.modules()
                   if isinstance(m, (nn.Conv2d, nn.BatchNorm2d, nn.MaxPool2d, nn.AdaptiveAvgPool2d))})
    assert_true(not left, f"the inflated model still has 2D layers: {left}")
    assert_true(any(isinstance(m, nn.Conv2d) for m in m2.modules()),
                "inflate_model changed the input model (it must work on a deep copy)")
    for k, v in before.items():
        assert_true(torch.equal(v, m2.state_dict()[k]), f"inflate_model changed the input model's {k}")
    shapes = {n: tuple(m.weight.shape[2:]) for n, m in m3.named_modules() if isinstance(m, nn.Conv3d)}
    for n, m in m2.named_modules():
        if isinstance(m, nn.Conv2d):
            want = (1, 1, 1) if tuple(m.kernel_size) == (1, 1) else (3, *m.kernel_size)
            assert_true(shapes.get(n) == want, f"inflate_model(..., time_kernel=3): {n}, a {tuple(m.kernel_size)} "
                        f"conv, must become {want} (1x1 stays 1x1x1), got {shapes.get(n)}")
    frame = torch.randn(2, 1, 32, 32)
    with torch.no_grad():
        out = call("the inflated model on a (2, 1, 4, 32, 32) static clip", m3.eval(), _static_clip(frame, 4))
        assert_close("inflated ('center', eval) logits on a static clip vs the 2D model's on the frame",
                     out, m2(frame), atol=1e-4, rtol=1e-4)
    passed("inflate_model: all 2D layers inflated (3x3 -> 3x3x3, 1x1 -> 1x1x1), input model untouched, "
           "static clip gives the 2D logits")


def check_midplanes(midplanes) -> None:
    """The paper's mid-plane count for a 64 -> 64 block with 3x3x3 kernels: 144."""
    m = call("midplanes(64, 64)", midplanes, 64, 64)
    assert_true(isinstance(m, numbers.Integral) and not isinstance(m, bool),
                f"midplanes must return an int, got {type(m).__name__}")
    assert_true(m == 144, f"midplanes(64, 64) (k = 3, t = 3): expected 144 = 3*9*64*64 // (9*64 + 3*64), got {m}")
    m2 = call("midplanes(64, 128)", midplanes, 64, 128)
    assert_true(m2 == 230, f"midplanes(64, 128): expected 230 = floor(3*9*64*128 / (9*64 + 3*128)), got {m2}")
    passed("midplanes: the paper's worked values (64->64: 144, 64->128: 230)")


def _mid_counts(midplanes, cin: int, cout: int, k: int, t: int, paper: int) -> set[int]:
    """The mid-plane counts a Conv2Plus1d may use: the paper's, or what the learner's midplanes says
    (so a wrong midplanes is graded once, in its own cell)."""
    ok = {paper}
    if midplanes is not None:
        try:
            ok.add(int(midplanes(cin, cout, k, t)))
        except Exception:  # noqa: BLE001 - an unfinished midplanes just adds nothing
            pass
    return ok


def check_conv2plus1d(Conv2Plus1d, midplanes=None) -> None:
    """Conv2Plus1d(16, 16): its two conv weights, BatchNorm3d(M) and parameter count; output shapes
    equal nn.Conv3d's. Layers are found by their weights' shapes, however the module stores them."""
    torch.manual_seed(0)
    m = call("Conv2Plus1d(16, 16)", Conv2Plus1d, 16, 16)
    assert_true(isinstance(m, nn.Module), "Conv2Plus1d must be an nn.Module")
    weights = [p for p in m.parameters() if p.dim() == 5]
    kernels = sorted(tuple(p.shape[2:]) for p in weights)
    assert_true(kernels == [(1, 3, 3), (3, 1, 1)],
                f"Conv2Plus1d(16, 16) needs a (1, 3, 3) spatial and a (3, 1, 1) temporal conv, "
                f"got conv kernels {kernels}")
    spatial = next(p for p in weights if tuple(p.shape[2:]) == (1, 3, 3))
    temporal = next(p for p in weights if tuple(p.shape[2:]) == (3, 1, 1))
    mids = _mid_counts(midplanes, 16, 16, 3, 3, paper=36)
    mid = spatial.shape[0]
    assert_true(mid in mids and spatial.shape[1] == 16 and temporal.shape[:2] == (16, mid),
                f"Conv2Plus1d(16, 16): the spatial conv must go 16 -> M = midplanes(16, 16) = 36 channels and the "
                f"temporal conv M -> 16; got weights {tuple(spatial.shape)} and {tuple(temporal.shape)}")
    norms = [b for b in m.modules() if isinstance(b, nn.BatchNorm3d)]
    assert_true(len(norms) == 1 and norms[0].num_features == mid,
                f"Conv2Plus1d(16, 16) needs one BatchNorm3d({mid}) between the convs, got "
                f"{[b.num_features for b in norms] or 'none'}")
    n_params = sum(p.numel() for p in m.parameters())
    expected = 9 * 16 * mid + 2 * mid + 3 * mid * 16            # spatial + BatchNorm (weight, bias) + temporal
    assert_true(n_params == expected,
                f"Conv2Plus1d(16, 16) has {n_params} parameters; expected {expected}: 3*3*16*M + 2*M + 3*M*16 "
                f"with M = {mid} (convs without bias)")
    for stride, padding in [(1, 1), (2, 1), (2, 0)]:
        x = torch.randn(2, 16, 7, 9, 9)
        ref = nn.Conv3d(16, 16, 3, stride, padding)(x)
        layer = call(f"Conv2Plus1d(16, 16, stride={stride}, padding={padding})", Conv2Plus1d, 16, 16,
                     stride=stride, padding=padding)
        got = call(f"Conv2Plus1d(16, 16, stride={stride}, padding={padding}) on (2, 16, 7, 9, 9)", layer, x)
        assert_shape(f"Conv2Plus1d(16, 16, stride={stride}, padding={padding}) on (2, 16, 7, 9, 9)", got,
                     tuple(ref.shape))
    passed("Conv2Plus1d: spatial + temporal convs, BatchNorm3d(M), parameter count, output shapes equal nn.Conv3d's")


def check_decompose_conv3d(decompose_conv3d) -> None:
    """Structure of the result and exactness at full rank on a strided, padded conv."""
    torch.manual_seed(0)
    conv = nn.Conv3d(4, 6, (3, 3, 3), stride=(1, 2, 2), padding=(1, 1, 1), bias=True)
    w0 = conv.weight.detach().clone()
    full = min(6 * 3, 4 * 9)
    seq = call(f"decompose_conv3d(conv, rank={full})", decompose_conv3d, conv, full)
    assert_true(isinstance(seq, nn.Sequential) and len(seq) == 2,
                f"decompose_conv3d must return nn.Sequential(spatial, temporal), got {type(seq).__name__}")
    sp, tm = seq[0], seq[1]
    assert_true(isinstance(sp, nn.Conv3d) and isinstance(tm, nn.Conv3d), "both parts must be nn.Conv3d")
    assert_shape("spatial weight (rank, in, 1, kh, kw)", sp.weight, (full, 4, 1, 3, 3))
    assert_shape("temporal weight (out, rank, t, 1, 1)", tm.weight, (6, full, 3, 1, 1))
    assert_true(torch.equal(conv.weight.detach(), w0), "decompose_conv3d modified the conv's weight")
    x = torch.randn(2, 4, 5, 9, 9)
    with torch.no_grad():
        ref = conv(x)
        got = call("the decomposed conv on (2, 4, 5, 9, 9)", seq, x)
        assert_close(f"decompose_conv3d at full rank ({full}) vs the original conv", got, ref,
                     atol=1e-4 * ref.abs().max().item())
    passed("decompose_conv3d: (spatial, temporal) convs, exact at full rank")
