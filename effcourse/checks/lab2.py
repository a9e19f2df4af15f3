"""Self-checks for Lab 2 (3D convolutions). Small examples and invariants only; the full property
tests are hidden in the notebook.

* inflation: the "boredom" test — on a clip that repeats one frame, an inflated conv must give the 2D
  conv's output on that frame;
* (2+1)D: output shapes against ``nn.Conv3d`` and the parameter budget of the paper;
* SVD decomposition: exact at full rank.
"""
from __future__ import annotations

import copy

import torch
from torch import nn

from ..video import resnet2d
from .asserts import call, CheckFailed, assert_close, assert_raises, assert_shape, assert_true, passed


_call = call


def _static_clip(frame: torch.Tensor, t: int) -> torch.Tensor:
    """(N, C, H, W) -> (N, C, t, H, W): the same frame repeated t times."""
    return frame.unsqueeze(2).expand(-1, -1, t, -1, -1).contiguous()


def check_inflate_conv2d(inflate_conv2d) -> None:
    """Type and geometry of the result, the boredom test for both methods, an unknown method."""
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 4, 3, stride=1, padding=1, bias=True)
    w0 = conv.weight.detach().clone()
    c3 = _call("inflate_conv2d", inflate_conv2d, conv, 3, "average")
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
        out = c3(clip)
        assert_shape("inflated conv on a (2, 3, 5, 6, 7) clip", out, (2, 4, 5, 6, 7))
        for t in range(1, 4):
            assert_close(f"'average' boredom test: output frame {t} (interior) vs the 2D conv on the frame",
                         out[:, :, t], ref, atol=1e-5)
        c3c = _call("inflate_conv2d", inflate_conv2d, conv, 3, "center")
        outc = c3c(clip)
        for t in range(5):
            assert_close(f"'center' boredom test: output frame {t} (every frame) vs the 2D conv on the frame",
                         outc[:, :, t], ref, atol=1e-5)
    assert_raises("inflate_conv2d(conv, 3, method='median')", lambda: inflate_conv2d(conv, 3, "median"), ValueError)
    passed("inflate_conv2d: Conv3d geometry, boredom test ('average': interior frames, 'center': all frames), "
           "clear error for an unknown method")


def check_inflate_model(inflate_model) -> None:
    """A small torchvision ResNet: nothing 2D left, input untouched, static-clip logits in eval mode."""
    torch.manual_seed(0)
    m2 = resnet2d(num_classes=5).eval()
    before = copy.deepcopy(m2.state_dict())
    m3 = _call("inflate_model", inflate_model, m2, 3, "center")
    assert_true(isinstance(m3, nn.Module), f"inflate_model must return an nn.Module, got {type(m3).__name__}")
    left = sorted({type(m).__name__ for m in m3.modules()
                   if isinstance(m, (nn.Conv2d, nn.BatchNorm2d, nn.MaxPool2d, nn.AdaptiveAvgPool2d))})
    assert_true(not left, f"the inflated model still has 2D layers: {left}")
    assert_true(any(isinstance(m, nn.Conv2d) for m in m2.modules()),
                "inflate_model changed the input model (it must work on a deep copy)")
    for k, v in before.items():
        assert_true(torch.equal(v, m2.state_dict()[k]), f"inflate_model changed the input model's {k}")
    frame = torch.randn(2, 1, 32, 32)
    with torch.no_grad():
        out = _call("the inflated model", m3.eval(), _static_clip(frame, 4))
        assert_close("inflated ('center', eval) logits on a static clip vs the 2D model's on the frame",
                     out, m2(frame), atol=1e-4, rtol=1e-4)
    passed("inflate_model: all 2D layers inflated, input model untouched, static clip gives the 2D logits")


def check_midplanes(midplanes) -> None:
    """The paper's mid-plane count for a 64 -> 64 block with 3x3x3 kernels: 144."""
    m = _call("midplanes", midplanes, 64, 64)
    assert_true(isinstance(m, int), f"midplanes must return an int, got {type(m).__name__}")
    assert_true(m == 144, f"midplanes(64, 64) (k = 3, t = 3): expected 144 = 3*9*64*64 // (9*64 + 3*64), got {m}")
    m2 = _call("midplanes", midplanes, 64, 128)
    assert_true(m2 == 230, f"midplanes(64, 128): expected 230 = floor(3*9*64*128 / (9*64 + 3*128)), got {m2}")
    passed("midplanes: the paper's worked values (64->64: 144, 64->128: 230)")


def check_conv2plus1d(Conv2Plus1d) -> None:
    """Output shape equals nn.Conv3d's; parameters close to the 3D conv's; a spatial and a temporal conv."""
    torch.manual_seed(0)
    m = _call("Conv2Plus1d(16, 16)", Conv2Plus1d, 16, 16)
    assert_true(isinstance(m, nn.Module), "Conv2Plus1d must be an nn.Module")
    kernels = sorted(tuple(c.kernel_size) for c in m.modules() if isinstance(c, nn.Conv3d))
    assert_true(kernels == [(1, 3, 3), (3, 1, 1)],
                f"Conv2Plus1d(16, 16) needs a (1, 3, 3) spatial and a (3, 1, 1) temporal Conv3d, got kernels {kernels}")
    assert_true(any(isinstance(c, nn.BatchNorm3d) for c in m.modules()), "Conv2Plus1d needs a BatchNorm3d in the middle")
    for stride, padding in [(1, 1), (2, 1), (2, 0)]:
        x = torch.randn(2, 16, 7, 9, 9)
        ref = nn.Conv3d(16, 16, 3, stride, padding)(x)
        got = _call(f"Conv2Plus1d(16, 16, stride={stride}, padding={padding})",
                    Conv2Plus1d(16, 16, stride=stride, padding=padding), x)
        assert_shape(f"Conv2Plus1d(16, 16, stride={stride}, padding={padding}) on (2, 16, 7, 9, 9)", got, tuple(ref.shape))
    n2, n3 = sum(p.numel() for p in m.parameters()), 27 * 16 * 16
    assert_true(abs(n2 - n3) <= 0.02 * n3, f"Conv2Plus1d(16, 16) has {n2} parameters; the 3x3x3 conv it replaces has "
                                          f"{n3}: they should agree within 2 % (use midplanes)")
    passed("Conv2Plus1d: spatial + temporal convs, output shapes equal nn.Conv3d's, parameter budget kept")


def check_decompose_conv3d(decompose_conv3d) -> None:
    """Structure of the result and exactness at full rank on a strided, padded conv."""
    torch.manual_seed(0)
    conv = nn.Conv3d(4, 6, (3, 3, 3), stride=(1, 2, 2), padding=(1, 1, 1), bias=True)
    w0 = conv.weight.detach().clone()
    full = min(6 * 3, 4 * 9)
    seq = _call(f"decompose_conv3d(conv, rank={full})", decompose_conv3d, conv, full)
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
        got = seq(x)
        assert_close(f"decompose_conv3d at full rank ({full}) vs the original conv", got, ref,
                     atol=1e-4 * ref.abs().max().item())
    passed("decompose_conv3d: (spatial, temporal) convs, exact at full rank")
