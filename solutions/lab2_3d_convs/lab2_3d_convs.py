# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Lab 2 — 3D convolutions: I3D inflation, (2+1)D factorisation and the cost of time
#
# **You will build** the three standard ways to give a CNN a time axis with 3D convolutions:
# *inflate* a pre-trained 2D network into a 3D one (I3D), *factorise* each t×k×k convolution into a
# spatial 1×k×k and a temporal t×1×1 convolution with the same parameter budget (R(2+1)D), and
# *decompose* a trained 3D kernel into that shape with an SVD. Then you will measure what time
# costs: parameters, MACs and latency of TSN, TSM, I3D and R(2+1)D at the same depth, and whether
# inflated ImageNet-style weights really help a 3D network learn from little video.
#
# **Time:** about 90 minutes. **Papers:** Carreira & Zisserman, *Quo Vadis, Action Recognition?*
# (I3D), CVPR 2017; Tran et al., *A Closer Look at Spatiotemporal Convolutions for Action
# Recognition* (R(2+1)D), CVPR 2018; Lin, Gan, Han, *TSM*, ICCV 2019 (the cost comparison).
#
# **Intuition.** A 3D convolution slides a t×k×k kernel over time as well as space, so it sees
# motion directly — and costs about t times a 2D convolution at every layer, with t times the
# parameters to learn from (scarce) video. Two tricks soften this. *Inflation* copies a trained 2D
# kernel into every time tap so that the 3D network starts out computing exactly what the 2D
# network computed on each frame ("a boring video of one repeated frame gives the image answer"),
# and then only has to learn *how things change*. *Factorisation* spends the same parameters on a
# spatial and a temporal conv with a ReLU in between: twice the non-linearities, easier to optimise.
# Neither makes time cheap — that is what Lab 1's shift did.

# %%
import copy
import time

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.utils import _pair, _triple

import effcourse
from effcourse import bench, plots, video
from effcourse.checks import lab2
from effcourse.data import TemporalDigits
from effcourse.video.threed import ChannelsFirst, DigitFrames, capture_input, r2plus1d, reinit_

# %% tags=["parameters"]
QUICK = False
SEED = 0
DEVICE = "auto"

# %%
QUICK, device = effcourse.setup(QUICK, SEED, DEVICE)
T = 8                                          # frames per clip
PRETRAIN_STEPS = 300 if QUICK else 600         # 2D pre-training on digit frames, batch 64
STEPS = 40                                     # 3D training steps of 16 clips, the same for every model
RUNS = 1 if QUICK else 3                       # training seeds per start (curves are averaged)
N_VIDEO = 80                                   # training clips: 10 per class -- video is scarce
N_TEST = 200 if QUICK else 400
video_train = TemporalDigits("train", N_VIDEO, n_frames=T, seed=SEED)
test_set = TemporalDigits("test", N_TEST, n_frames=T, seed=SEED)
image_train = DigitFrames(TemporalDigits("train", 400, n_frames=T, seed=SEED + 1))     # the "ImageNet"
image_test = DigitFrames(TemporalDigits("test", 200, n_frames=T, seed=SEED + 1), frames_per_clip=1)
print(video_train, test_set, f"digit frames for 2D pre-training: {len(image_train)}", sep="\n")

# %% [markdown]
# **Given: Lab 1's pieces.** The cost table at the end compares against TSN and TSM, so here are the
# temporal shift, the residual-shift wrapper and the segment consensus you wrote in Lab 1 (given
# code, not graded).

# %%
def temporal_shift(x, n_segment, fold_div=8):
    """Lab 1's bi-directional shift on (N*T, C, H, W): channels [0:fold] from t+1, [fold:2fold] from t-1."""
    nt, c, h, w = x.shape
    v = x.reshape(nt // n_segment, n_segment, c, h, w)
    fold = c // fold_div
    out = torch.zeros_like(v)
    out[:, :-1, :fold] = v[:, 1:, :fold]
    out[:, 1:, fold:2 * fold] = v[:, :-1, fold:2 * fold]
    out[:, :, 2 * fold:] = v[:, :, 2 * fold:]
    return out.reshape(nt, c, h, w)


class ResidualShift(nn.Module):
    """Lab 1's wrapper: forward(x) = net(temporal_shift(x, n_segment, fold_div))."""

    def __init__(self, net, n_segment, fold_div=8):
        super().__init__()
        self.net, self.n_segment, self.fold_div = net, n_segment, fold_div

    def forward(self, x):
        return self.net(temporal_shift(x, self.n_segment, self.fold_div))


def segment_consensus(logits, n_segment):
    """Lab 1's TSN consensus: (N*T, K) -> (N, K), the mean over each clip's frames."""
    return logits.reshape(-1, n_segment, logits.shape[1]).mean(1)


# %% [markdown]
# ## 1. Inflating a convolution
#
# PyTorch's 3D layers take clips as `(N, C, T, H, W)`. A 2D kernel $W \in \mathbb{R}^{C_o \times C_i
# \times k_h \times k_w}$ becomes a 3D kernel $\tilde W \in \mathbb{R}^{C_o \times C_i \times t \times
# k_h \times k_w}$ in one of two ways:
#
# $$
# \text{average: } \tilde W_{:,:,\tau} = \tfrac{1}{t} W \;\; (\tau = 0..t-1), \qquad
# \text{center: } \tilde W_{:,:,\lfloor t/2 \rfloor} = W,\; \tilde W_{:,:,\tau} = 0 \text{ otherwise.}
# $$
#
# **The boredom test** (I3D's argument). Feed a "boring" clip that repeats one frame $x$. Each output
# frame of the 3D conv sums its t taps: $\sum_\tau \tilde W_{:,:,\tau} * x + b = W * x + b$ for
# "average" — the 2D conv's output, at every frame whose t-frame window lies inside the clip (the
# zero padding in time cuts the sum short at the ends). For "center" only the middle tap is non-zero,
# so **every** frame equals $W * x + b$. The 3D conv keeps everything else of the 2D conv: spatial
# stride, padding and dilation, groups and bias; in time it uses stride 1, dilation 1 and padding
# $\lfloor t/2 \rfloor$, so T frames in give T frames out.

# %% nbgrader={"grade": false, "grade_id": "inflate_conv2d", "locked": false, "schema_version": 3, "solution": true, "task": false}
def inflate_conv2d(conv, time_kernel=3, method="average"):
    """Inflate an nn.Conv2d into an nn.Conv3d (I3D).

    Args:
        conv: nn.Conv2d with kernel (kh, kw), integer/tuple stride, padding, dilation; any groups;
            with or without bias. It is not modified.
        time_kernel: t, an odd number >= 1.
        method: "average" (every time tap holds W / t) or "center" (the middle tap holds W, the
            others are zero). Anything else raises ValueError.

    Returns:
        A new nn.Conv3d(in, out, (t, kh, kw)) with stride (1, sh, sw), padding (t // 2, ph, pw),
        dilation (1, dh, dw), the same groups, and the same bias (a copy) if conv has one; same
        dtype and device. It maps (N, in, T, H, W) to (N, out, T, H', W'), where H', W' are the
        2D conv's output size.
    """
    ### BEGIN SOLUTION
    if method not in ("average", "center"):
        raise ValueError(f"method must be 'average' or 'center', got {method!r}")
    if time_kernel < 1 or time_kernel % 2 == 0:
        raise ValueError(f"time_kernel must be an odd number >= 1, got {time_kernel}")
    c3 = nn.Conv3d(conv.in_channels, conv.out_channels, (time_kernel, *conv.kernel_size),
                   stride=(1, *conv.stride), padding=(time_kernel // 2, *conv.padding),
                   dilation=(1, *conv.dilation), groups=conv.groups, bias=conv.bias is not None,
                   padding_mode=conv.padding_mode).to(conv.weight.device, conv.weight.dtype)
    w = conv.weight.detach()
    with torch.no_grad():
        if method == "average":
            c3.weight.copy_(w.unsqueeze(2).repeat(1, 1, time_kernel, 1, 1) / time_kernel)
        else:
            c3.weight.zero_()
            c3.weight[:, :, time_kernel // 2] = w
        if conv.bias is not None:
            c3.bias.copy_(conv.bias.detach())
    return c3
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_inflate_conv2d", "locked": true, "points": 20, "schema_version": 3, "solution": false, "task": false}
lab2.check_inflate_conv2d(inflate_conv2d)
### BEGIN HIDDEN TESTS
from effcourse.checks._assert import assert_close as _close, assert_shape as _shape, assert_true as _true
_g = torch.Generator().manual_seed(int(time.time() * 1000) % 2**31)
torch.manual_seed(int(time.time() * 1000) % 2**31)
_cases = [  # cin, cout, k, stride, padding, dilation, groups, bias, t, N, T, H, W
    (3, 5, 3, 1, 1, 1, 1, True, 3, 2, 6, 9, 11),
    (4, 6, (3, 5), (2, 1), (1, 2), 1, 2, True, 3, 3, 5, 13, 10),
    (6, 6, 3, 2, 2, 2, 3, False, 5, 2, 9, 12, 9),
    (2, 4, 1, 1, 0, 1, 1, True, 3, 1, 4, 5, 7),
    (8, 8, 3, 1, 1, 1, 8, True, 3, 2, 5, 7, 7),      # depthwise
    (5, 3, 5, 3, 0, 1, 1, True, 1, 2, 3, 11, 13),     # t = 1
    (3, 7, 7, 2, 3, 1, 1, False, 5, 1, 7, 15, 16),
]
for (cin, cout, k, s, p, d, g, b, t, N, T_, H, W) in _cases:
    name = f"inflate_conv2d(Conv2d({cin}, {cout}, k={k}, stride={s}, padding={p}, dilation={d}, groups={g}, bias={b}), t={t}"
    conv = nn.Conv2d(cin, cout, k, stride=s, padding=p, dilation=d, groups=g, bias=b)
    with torch.no_grad():
        conv.weight.normal_(generator=_g)
        if b:
            conv.bias.normal_(generator=_g)
    w0 = conv.weight.detach().clone()
    frame = torch.randn(N, cin, H, W, generator=_g)
    clip = frame.unsqueeze(2).expand(-1, -1, T_, -1, -1).contiguous()
    with torch.no_grad():
        ref = conv(frame)
    for method in ("average", "center"):
        c3 = inflate_conv2d(conv, t, method)
        _true(isinstance(c3, nn.Conv3d), f"{name}: expected an nn.Conv3d, got {type(c3).__name__}")
        _true(torch.equal(conv.weight.detach(), w0), f"{name}: the 2D conv was modified")
        _true(c3.groups == g, f"{name}: groups must be {g}, got {c3.groups}")
        _true((c3.bias is not None) == b, f"{name}: bias must be {'kept' if b else 'absent'}")
        kh, kw = _pair(k)
        _shape(f"{name} [{method}] weight", c3.weight, (cout, cin // g, t, kh, kw))
        exp_w = (w0.unsqueeze(2).expand(-1, -1, t, -1, -1) / t) if method == "average" else \
            torch.cat([torch.zeros_like(w0).unsqueeze(2)] * (t // 2) + [w0.unsqueeze(2)] +
                      [torch.zeros_like(w0).unsqueeze(2)] * (t // 2), 2)
        _close(f"{name} [{method}] weight", c3.weight.detach(), exp_w, atol=1e-6, rtol=1e-5)
        with torch.no_grad():
            out = c3(clip)
        _shape(f"{name} [{method}] output on a {tuple(clip.shape)} clip", out, (N, cout, T_, *ref.shape[2:]))
        frames = range(t // 2, T_ - t // 2) if method == "average" else range(T_)
        for f in frames:
            _close(f"{name} [{method}] boredom test, output frame {f}", out[:, :, f], ref,
                   atol=1e-5 * max(1.0, ref.abs().max().item()), rtol=1e-5)
        if b:
            _close(f"{name} [{method}] bias", c3.bias.detach(), conv.bias.detach(), atol=0)
# the inflated conv is trainable and on the conv's dtype
conv = nn.Conv2d(3, 4, 3, padding=1)
c3 = inflate_conv2d(conv, 3, "center")
_true(c3.weight.dtype == torch.float32 and c3.weight.requires_grad, "the inflated weight must be a float32 trainable parameter")
c3(torch.randn(2, 3, 4, 5, 5)).sum().backward()
_true(c3.weight.grad is not None and conv.weight.grad is None,
      "gradients must reach the inflated conv's own weight, not the 2D conv's (copy the weights)")
for bad in ("median", "Average", None):
    try:
        inflate_conv2d(conv, 3, bad)
    except ValueError:
        pass
    else:
        raise AssertionError(f"inflate_conv2d(conv, 3, method={bad!r}) must raise ValueError")
### END HIDDEN TESTS

# %% [markdown]
# ## 2. Inflating a network
#
# Now inflate a whole torchvision ResNet. Work on a **deep copy** (the 2D model must keep working)
# and swap every 2D layer for its 3D twin, recursively through the children:
#
# | 2D layer | 3D layer |
# |---|---|
# | `Conv2d` | `inflate_conv2d(conv, time_kernel, method)` |
# | `BatchNorm2d(C)` | `BatchNorm3d(C)` with the same weight, bias, **running mean/var**, eps, momentum |
# | `MaxPool2d(k, s, p)` | `MaxPool3d((1, k, k), (1, s, s), (0, p, p))` (time untouched) |
# | `AdaptiveAvgPool2d(out)` | `AdaptiveAvgPool3d((1, *out))` (averages over time too) |
#
# torchvision's `ResNet.forward` only calls its modules and `torch.flatten(x, 1)`, so the copy runs
# on `(N, C, T, H, W)` clips unchanged. A BatchNorm in eval mode normalises each channel with its
# running statistics, which do not care whether the tensor is 4D or 5D: with "center" inflation a
# static clip gives the 2D model's logits **exactly** (in eval mode), which is the test below.
# `setattr(parent, name, new_child)` replaces a child module.

# %% nbgrader={"grade": false, "grade_id": "inflate_model", "locked": false, "schema_version": 3, "solution": true, "task": false}
def inflate_model(model2d, time_kernel=3, method="average"):
    """A 3D copy of a 2D network (I3D inflation).

    Args:
        model2d: a torchvision ResNet (any nn.Module built from the layers below); not modified.
        time_kernel, method: passed to inflate_conv2d for every Conv2d.

    Returns:
        A deep copy of model2d in which every nn.Conv2d is inflated (inflate_conv2d), every
        nn.BatchNorm2d becomes an nn.BatchNorm3d with the same parameters and running statistics,
        every nn.MaxPool2d an nn.MaxPool3d with kernel/stride/padding (1, k, k)/(1, s, s)/(0, p, p),
        and every nn.AdaptiveAvgPool2d(out) an nn.AdaptiveAvgPool3d((1, *out)). Module names are
        kept. Input (N, C, T, H, W), output (N, K).
    """
    ### BEGIN SOLUTION
    model = copy.deepcopy(model2d)

    def swap(parent):
        for name, child in parent.named_children():
            if isinstance(child, nn.Conv2d):
                new = inflate_conv2d(child, time_kernel, method)
            elif isinstance(child, nn.BatchNorm2d):
                new = nn.BatchNorm3d(child.num_features, child.eps, child.momentum, child.affine,
                                     child.track_running_stats)
                new.load_state_dict(child.state_dict())
            elif isinstance(child, nn.MaxPool2d):
                k, s, p, d = (_pair(v) for v in (child.kernel_size, child.stride, child.padding, child.dilation))
                new = nn.MaxPool3d((1, *k), (1, *s), (0, *p), (1, *d), ceil_mode=child.ceil_mode)
            elif isinstance(child, nn.AdaptiveAvgPool2d):
                new = nn.AdaptiveAvgPool3d((1, *_pair(child.output_size)))
            else:
                swap(child)
                continue
            setattr(parent, name, new)

    swap(model)
    return model
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_inflate_model", "locked": true, "points": 15, "schema_version": 3, "solution": false, "task": false}
lab2.check_inflate_model(inflate_model)
### BEGIN HIDDEN TESTS
import torchvision
from effcourse.checks._assert import assert_close as _close, assert_shape as _shape, assert_true as _true
_g = torch.Generator().manual_seed(int(time.time() * 1000) % 2**31 + 1)
torch.manual_seed(int(time.time() * 1000) % 2**31 + 1)


def _randomise_bn(model):
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.5, generator=_g)
                m.running_var.uniform_(0.5, 2.0, generator=_g)
                m.weight.uniform_(0.5, 1.5, generator=_g)
                m.bias.normal_(0, 0.2, generator=_g)
                m.num_batches_tracked.fill_(7)
    return model


_2d = (nn.Conv2d, nn.BatchNorm2d, nn.MaxPool2d, nn.AdaptiveAvgPool2d)
for label, m2, cin, t, T_, H in [
    ("torchvision resnet18", torchvision.models.resnet18(num_classes=5), 3, 3, 4, 32),
    ("effcourse resnet2d", video.resnet2d(num_classes=7, widths=(8, 16, 16, 24)), 1, 3, 5, 33),
    ("effcourse resnet2d, t=5", video.resnet2d(num_classes=3, widths=(8, 8, 16, 16), layers=(2, 1, 1, 1)), 1, 5, 3, 29),
]:
    _randomise_bn(m2).eval()
    before = {k: v.clone() for k, v in m2.state_dict().items()}
    types_before = [type(m) for m in m2.modules()]
    for method in ("center", "average"):
        m3 = inflate_model(m2, t, method)
        _true(m3 is not m2, f"{label}: inflate_model must return a copy")
        _true([type(m) for m in m2.modules()] == types_before, f"{label}: the input model's layers were replaced")
        for k, v in m2.state_dict().items():
            _true(torch.equal(v, before[k]), f"{label}: the input model's {k} changed")
        left = [n for n, m in m3.named_modules() if isinstance(m, _2d)]
        _true(not left, f"{label} [{method}]: 2D layers left in the inflated model: {left[:5]}")
        mods3 = dict(m3.named_modules())
        for n, m in m2.named_modules():
            if isinstance(m, nn.BatchNorm2d):
                b3 = mods3.get(n)
                _true(isinstance(b3, nn.BatchNorm3d), f"{label}: {n} must become a BatchNorm3d, got {type(b3).__name__}")
                for attr in ("weight", "bias", "running_mean", "running_var"):
                    _close(f"{label}: {n}.{attr} carried over", getattr(b3, attr).detach(), getattr(m, attr).detach(), atol=0)
                _true(b3.eps == m.eps, f"{label}: {n}.eps must be carried over")
            elif isinstance(m, nn.Conv2d):
                c3 = mods3.get(n)
                _true(isinstance(c3, nn.Conv3d), f"{label}: {n} must become a Conv3d, got {type(c3).__name__}")
                w = m.weight.detach()
                exp = (w.unsqueeze(2).expand(-1, -1, t, -1, -1) / t) if method == "average" else None
                if exp is not None:
                    _close(f"{label}: {n} inflated by 'average'", c3.weight.detach(), exp, atol=1e-6, rtol=1e-5)
                else:
                    _close(f"{label}: {n} inflated by 'center' (middle tap)", c3.weight.detach()[:, :, t // 2], w, atol=0)
        if method == "center":
            frame = torch.randn(2, cin, H, H, generator=_g)
            clip = frame.unsqueeze(2).expand(-1, -1, T_, -1, -1).contiguous()
            m3.eval()
            with torch.no_grad():
                out, ref = m3(clip), m2(frame)
            _shape(f"{label}: inflated logits", out, tuple(ref.shape))
            _close(f"{label}: 'center' logits on a static clip (eval) vs 2D logits on the frame", out, ref,
                   atol=1e-4 * max(1.0, ref.abs().max().item()), rtol=1e-4)
# gradients flow through the inflated model
m3 = inflate_model(video.resnet2d(), 3, "average").train()
m3(torch.randn(2, 1, 4, 32, 32, generator=_g)).sum().backward()
_true(all(p.grad is not None for p in m3.parameters()), "every parameter of the inflated model must get a gradient")
### END HIDDEN TESTS

# %% [markdown]
# ## 3. (2+1)D: the same budget, split in two
#
# R(2+1)D replaces a t×k×k conv from $N_{i}$ to $N_{o}$ channels by a **spatial** 1×k×k conv to $M$
# channels, BatchNorm, ReLU, and a **temporal** t×1×1 conv to $N_o$ channels. Parameters:
# $k^2 N_i M + t M N_o$ versus $t k^2 N_i N_o$ for the 3D conv. Setting them equal gives the paper's
# number of mid-planes:
#
# $$ M = \left\lfloor \frac{t\,k^2\,N_i\,N_o}{k^2 N_i + t\,N_o} \right\rfloor
#    \qquad (64 \to 64,\ t = k = 3:\ M = 144). $$
#
# Stride and padding split the same way: the spatial conv takes the spatial part `(1, sh, sw)` /
# `(0, ph, pw)`, the temporal conv the temporal part `(st, 1, 1)` / `(pt, 0, 0)`, so the output has
# exactly the shape `nn.Conv3d(N_i, N_o, (t, k, k), stride, padding)` would give. (`stride` and
# `padding` are ints, as for `nn.Conv3d`, or `(t, h, w)` triples; `torch.nn.modules.utils._triple`
# turns either into a triple.)
#
# **torchvision is not the paper here.** `torchvision.models.video.r2plus1d_18` computes $M$ once per
# residual block from the block's `in → out` channels and uses it for *both* convs of the block. In
# a downsampling block (e.g. 64 → 128) the second conv goes 128 → 128 but gets the 64 → 128 value
# (230 instead of 288), so those blocks have fewer parameters than the 3D blocks they stand for.
# Below, every conv computes its own $M$, as in the paper.

# %% nbgrader={"grade": false, "grade_id": "midplanes", "locked": false, "schema_version": 3, "solution": true, "task": false}
def midplanes(in_channels, out_channels, kernel_size=3, time_kernel=3):
    """Mid-plane count M of a (2+1)D conv with the parameter budget of a t x k x k 3D conv.

    Returns the int floor(t * k^2 * N_in * N_out / (k^2 * N_in + t * N_out)).
    """
    ### BEGIN SOLUTION
    k2 = kernel_size * kernel_size
    return (time_kernel * k2 * in_channels * out_channels) // (k2 * in_channels + time_kernel * out_channels)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_midplanes", "locked": true, "points": 5, "schema_version": 3, "solution": false, "task": false}
lab2.check_midplanes(midplanes)
### BEGIN HIDDEN TESTS
from effcourse.checks._assert import assert_true as _true
import random as _random
_r = _random.Random(int(time.time() * 1000))
for _ in range(200):
    ni, no, k, t = _r.randint(1, 700), _r.randint(1, 700), _r.choice([1, 3, 5, 7]), _r.choice([1, 2, 3, 5])
    exp = (t * k * k * ni * no) // (k * k * ni + t * no)
    got = midplanes(ni, no, k, t)
    _true(isinstance(got, int) and got == exp,
          f"midplanes({ni}, {no}, kernel_size={k}, time_kernel={t}): expected {exp}, got {got!r}")
_true(midplanes(64, 64) == 144 and midplanes(128, 128) == 288, "default kernel sizes must be 3 and 3")
### END HIDDEN TESTS

# %% [markdown]
# Now the module. Keep the order of the paper: spatial conv → `BatchNorm3d(M)` → ReLU → temporal
# conv (no bias needed in either conv: a BatchNorm follows in the networks that use it).

# %% nbgrader={"grade": false, "grade_id": "Conv2Plus1d", "locked": false, "schema_version": 3, "solution": true, "task": false}
class Conv2Plus1d(nn.Module):
    """(2+1)D convolution: spatial (1, k, k) conv to M channels, BatchNorm3d(M), ReLU, temporal (t, 1, 1) conv.

    Args:
        in_channels, out_channels: N_in, N_out.
        kernel_size: k (spatial); time_kernel: t.
        stride, padding: an int (the same in time and space) or a (t, h, w) triple, as for nn.Conv3d.
            The spatial conv uses (1, sh, sw) / (0, ph, pw), the temporal conv (st, 1, 1) / (pt, 0, 0).
    M = midplanes(in_channels, out_channels, kernel_size, time_kernel).

    forward: (N, N_in, T, H, W) -> the shape nn.Conv3d(N_in, N_out, (t, k, k), stride, padding) gives.
    """

    ### BEGIN SOLUTION
    def __init__(self, in_channels, out_channels, kernel_size=3, time_kernel=3, stride=1, padding=1):
        super().__init__()
        st, sh, sw = _triple(stride)
        pt, ph, pw = _triple(padding)
        m = midplanes(in_channels, out_channels, kernel_size, time_kernel)
        self.spatial = nn.Conv3d(in_channels, m, (1, kernel_size, kernel_size), (1, sh, sw), (0, ph, pw), bias=False)
        self.bn = nn.BatchNorm3d(m)
        self.relu = nn.ReLU(inplace=True)
        self.temporal = nn.Conv3d(m, out_channels, (time_kernel, 1, 1), (st, 1, 1), (pt, 0, 0), bias=False)

    def forward(self, x):
        return self.temporal(self.relu(self.bn(self.spatial(x))))
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_Conv2Plus1d", "locked": true, "points": 15, "schema_version": 3, "solution": false, "task": false}
# uses your midplanes (the parameter budget depends on it)
lab2.check_conv2plus1d(Conv2Plus1d)
### BEGIN HIDDEN TESTS
from effcourse.checks._assert import assert_shape as _shape, assert_true as _true
_g = torch.Generator().manual_seed(int(time.time() * 1000) % 2**31 + 3)
for (ni, no, k, t, s, p, N, T_, H, W) in [
    (3, 8, 3, 3, 1, 1, 2, 8, 16, 16), (5, 7, 3, 3, 2, 1, 3, 7, 11, 13), (4, 4, 3, 5, 1, 0, 1, 9, 9, 10),
    (6, 3, 5, 3, 2, 2, 2, 6, 15, 12), (2, 9, 1, 3, 1, 1, 2, 5, 7, 7), (8, 8, 3, 3, 3, 1, 2, 10, 13, 17),
    (4, 6, 3, 3, (1, 2, 2), (1, 1, 1), 2, 8, 16, 15), (3, 5, 3, 5, (2, 1, 2), (2, 0, 1), 1, 9, 8, 11),
    (7, 5, 3, 1, (1, 2, 1), (0, 1, 1), 2, 4, 9, 8),
]:
    name = f"Conv2Plus1d({ni}, {no}, kernel_size={k}, time_kernel={t}, stride={s}, padding={p})"
    m = Conv2Plus1d(ni, no, kernel_size=k, time_kernel=t, stride=s, padding=p)
    x = torch.randn(N, ni, T_, H, W, generator=_g, requires_grad=True)
    ref = nn.Conv3d(ni, no, (t, k, k), s, p)(x.detach())
    y = m(x)
    _shape(f"{name} on {tuple(x.shape)}", y, tuple(ref.shape))
    y.sum().backward()
    _true(x.grad is not None and all(q.grad is not None for q in m.parameters()), f"{name}: gradients must flow")
    convs = [c for c in m.modules() if isinstance(c, nn.Conv3d)]
    sp = [c for c in convs if tuple(c.kernel_size) == (1, k, k) and c.in_channels == ni]
    tm = [c for c in convs if tuple(c.kernel_size) == (t, 1, 1) and c.out_channels == no]
    M = (t * k * k * ni * no) // (k * k * ni + t * no)
    _true(len(convs) == 2 and len(sp) >= 1 and len(tm) >= 1,
          f"{name}: expected a ({1}, {k}, {k}) spatial and a ({t}, 1, 1) temporal Conv3d, got kernels "
          f"{[tuple(c.kernel_size) for c in convs]}")
    _true(sp[0].out_channels == M and tm[-1].in_channels == M,
          f"{name}: the spatial conv must output M = {M} channels and the temporal conv take them; got "
          f"{sp[0].out_channels} and {tm[-1].in_channels}")
    _true(any(isinstance(b, nn.BatchNorm3d) and b.num_features == M for b in m.modules()),
          f"{name}: expected a BatchNorm3d({M}) between the convs")
# parameter budget within 2 % of the 3D conv for square channel counts
for (c, k, t) in [(32, 3, 3), (48, 3, 3), (64, 3, 3), (40, 3, 5), (64, 5, 3), (128, 3, 3)]:
    n2 = sum(q.numel() for q in Conv2Plus1d(c, c, kernel_size=k, time_kernel=t).parameters())
    n3 = t * k * k * c * c
    _true(abs(n2 - n3) <= 0.02 * n3,
          f"Conv2Plus1d({c}, {c}, kernel_size={k}, time_kernel={t}) has {n2} parameters, the 3D conv {n3}: "
          f"expected within 2 %")
# ReLU between the convs: the module is not linear
m = Conv2Plus1d(4, 4).eval()
with torch.no_grad():
    x = torch.randn(1, 4, 5, 6, 6, generator=_g)
    _true((m(x) + m(-x)).abs().max() > 1e-4, "Conv2Plus1d must have a ReLU between the spatial and temporal convs")
### END HIDDEN TESTS

# %% [markdown]
# ## 4. Decomposing a trained 3D kernel with an SVD
#
# Factorisation can also be applied *after* training. Reshape the kernel $\tilde W \in
# \mathbb{R}^{C_o \times C_i \times t \times k_h \times k_w}$ into a matrix with rows $(o, \tau)$ and
# columns $(i, y, x)$:
#
# $$ A = \tilde W.\text{permute}(0, 2, 1, 3, 4).\text{reshape}(C_o t,\; C_i k_h k_w)
#      = U \Sigma V^\top \approx U_r \Sigma_r V_r^\top . $$
#
# Row $j$ of $V_r^\top$ is a spatial filter $C_i \times k_h \times k_w$: together they form a 1×k×k
# conv with $r$ outputs. $U_r \Sigma_r$ has rows $(o, \tau)$ and $r$ columns: a t×1×1 conv from $r$ to
# $C_o$ channels. Composing the two convs gives back $\sum_{j<r} \sigma_j u_j v_j^\top$ — exactly
# $\tilde W$ at full rank $r = \min(C_o t, C_i k_h k_w)$, and the best rank-r approximation (in
# Frobenius norm, Eckart–Young) below it. No ReLU in between: this is an exact rewrite, not R(2+1)D.
# The spatial conv takes the spatial stride/padding, the temporal conv the temporal ones and the
# bias; zero padding in time commutes with a conv that never looks across frames, so nothing is lost.
#
# MACs per output position drop from $t k^2 C_i C_o$ to $r\,(k^2 C_i + t C_o)$: a saving whenever
# $r < t k^2 C_i C_o / (k^2 C_i + t C_o)$ — the same $M$ as above!

# %% nbgrader={"grade": false, "grade_id": "decompose_conv3d", "locked": false, "schema_version": 3, "solution": true, "task": false}
def decompose_conv3d(conv, rank):
    """Factorise an nn.Conv3d (groups = 1, dilation 1) into a spatial and a temporal conv by an SVD.

    Args:
        conv: nn.Conv3d(C_in, C_out, (t, kh, kw)) with any stride and padding, with or without bias.
            It is not modified.
        rank: r, 1 <= r <= min(C_out * t, C_in * kh * kw).

    Returns:
        nn.Sequential(spatial, temporal):
          spatial  = nn.Conv3d(C_in, r, (1, kh, kw), stride (1, sh, sw), padding (0, ph, pw), bias=False)
          temporal = nn.Conv3d(r, C_out, (t, 1, 1), stride (st, 1, 1), padding (pt, 0, 0), bias as conv's)
        built from the rank-r truncated SVD of the kernel reshaped to (C_out * t, C_in * kh * kw).
        At full rank its output equals conv's.
    """
    ### BEGIN SOLUTION
    w = conv.weight.detach()
    co, ci, t, kh, kw = w.shape
    full = min(co * t, ci * kh * kw)
    if not 1 <= rank <= full:
        raise ValueError(f"rank must be in 1..{full}, got {rank}")
    a = w.permute(0, 2, 1, 3, 4).reshape(co * t, ci * kh * kw)
    u, s, vh = torch.linalg.svd(a, full_matrices=False)
    st, sh, sw = conv.stride
    pt, ph, pw = conv.padding
    spatial = nn.Conv3d(ci, rank, (1, kh, kw), (1, sh, sw), (0, ph, pw), bias=False)
    temporal = nn.Conv3d(rank, co, (t, 1, 1), (st, 1, 1), (pt, 0, 0), bias=conv.bias is not None)
    spatial.to(w.device, w.dtype)
    temporal.to(w.device, w.dtype)
    with torch.no_grad():
        spatial.weight.copy_(vh[:rank].reshape(rank, ci, 1, kh, kw))
        us = (u[:, :rank] * s[:rank]).reshape(co, t, rank)
        temporal.weight.copy_(us.permute(0, 2, 1).reshape(co, rank, t, 1, 1))
        if conv.bias is not None:
            temporal.bias.copy_(conv.bias.detach())
    return nn.Sequential(spatial, temporal)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_decompose_conv3d", "locked": true, "points": 20, "schema_version": 3, "solution": false, "task": false}
lab2.check_decompose_conv3d(decompose_conv3d)
### BEGIN HIDDEN TESTS
from effcourse.checks._assert import assert_close as _close, assert_shape as _shape, assert_true as _true
_g = torch.Generator().manual_seed(int(time.time() * 1000) % 2**31 + 4)
for (ci, co, kt, k, s, p, bias, N, T_, H, W) in [
    (3, 5, 3, 3, (1, 1, 1), (1, 1, 1), True, 2, 6, 9, 11), (4, 6, 3, 3, (2, 2, 2), (1, 0, 1), False, 3, 7, 10, 9),
    (6, 4, 5, (3, 5), (1, 2, 1), (2, 1, 2), True, 1, 8, 12, 13), (5, 5, 1, 3, 1, 1, True, 2, 3, 7, 7),
    (2, 7, 3, 1, (1, 3, 2), 0, True, 2, 5, 8, 9), (8, 3, 3, 3, (2, 1, 1), (0, 1, 1), False, 2, 9, 6, 6),
]:
    kh, kw = _pair(k)
    conv = nn.Conv3d(ci, co, (kt, kh, kw), stride=s, padding=p, bias=bias)
    with torch.no_grad():
        conv.weight.normal_(generator=_g)
        if bias:
            conv.bias.normal_(generator=_g)
    w0 = conv.weight.detach().clone()
    name = f"decompose_conv3d(Conv3d({ci}, {co}, {(kt, kh, kw)}, stride={s}, padding={p}, bias={bias}))"
    full = min(co * kt, ci * kh * kw)
    x = torch.randn(N, ci, T_, H, W, generator=_g)
    with torch.no_grad():
        ref = conv(x)
        seq = decompose_conv3d(conv, full)
        out = seq(x)
    _true(torch.equal(conv.weight.detach(), w0), f"{name}: the conv was modified")
    _close(f"{name} at full rank {full}", out, ref, atol=1e-4 * ref.abs().max().item(), rtol=0)
    # composite kernel error: non-increasing in the rank, and optimal (Eckart-Young)
    a = w0.permute(0, 2, 1, 3, 4).reshape(co * kt, ci * kh * kw)
    sv = torch.linalg.svdvals(a)
    errs = []
    for r in range(1, full + 1):
        seq = decompose_conv3d(conv, r)
        sp, tm = seq[0], seq[1]
        _shape(f"{name} rank {r}: spatial weight", sp.weight, (r, ci, 1, kh, kw))
        _shape(f"{name} rank {r}: temporal weight", tm.weight, (co, r, kt, 1, 1))
        _true(sp.bias is None, f"{name} rank {r}: the spatial conv must have no bias")
        _true((tm.bias is not None) == bias, f"{name} rank {r}: the temporal conv must carry the conv's bias")
        n_par = sum(q.numel() for q in seq.parameters())
        exp_par = r * ci * kh * kw + co * r * kt + (co if bias else 0)
        _true(n_par == exp_par, f"{name} rank {r}: expected {exp_par} parameters, got {n_par}")
        _true(tuple(sp.stride) == (1, *_triple(s)[1:]) and tuple(tm.stride) == (_triple(s)[0], 1, 1),
              f"{name} rank {r}: strides must split into (1, sh, sw) and (st, 1, 1), got {tuple(sp.stride)} "
              f"and {tuple(tm.stride)}")
        wc = torch.einsum("orT,ri...->oiT...", tm.weight.detach()[..., 0, 0], sp.weight.detach()[:, :, 0])
        err = (wc - w0).norm().item()
        opt = sv[r:].norm().item()
        _true(err <= opt * (1 + 1e-4) + 1e-5 * sv[0].item(),
              f"{name} rank {r}: kernel error {err:.6g} but the truncated SVD achieves {opt:.6g}")
        errs.append(err)
    _true(all(b <= a_ + 1e-5 * sv[0].item() for a_, b in zip(errs, errs[1:])),
          f"{name}: the error must not grow with the rank, got {[round(e, 4) for e in errs]}")
    # gradients reach both convs
    seq = decompose_conv3d(conv, max(1, full // 2))
    seq(x).sum().backward()
    _true(all(q.grad is not None for q in seq.parameters()), f"{name}: gradients must reach both convs")
### END HIDDEN TESTS

# %% [markdown]
# ## 5. Experiment: the cost of time
#
# Four clip classifiers of the same depth and widths (a narrow ResNet-10, 16→128 channels, 32×32
# frames, T = 8), batch 1, CPU, one thread: TSN (2D per frame, averaged), TSM (plus Lab 1's shift),
# I3D (the same network inflated: every conv t = 3) and R(2+1)D (every 3×3 conv replaced by your
# `Conv2Plus1d`). MACs come from `torch.utils.flop_counter`; latencies are interleaved medians
# measured in this one run, so their **ratios** are meaningful even on a busy machine.

# %%
K = len(TemporalDigits.classes)
cpu = torch.device("cpu")
torch.manual_seed(SEED)
tsn = video.ClipClassifier(video.resnet2d(num_classes=K), T, segment_consensus)
tsm = video.ClipClassifier(video.insert_shift(video.resnet2d(num_classes=K), ResidualShift, T), T, segment_consensus)
i3d = ChannelsFirst(inflate_model(video.resnet2d(num_classes=K), 3, "average"))
r21d = ChannelsFirst(r2plus1d(Conv2Plus1d, num_classes=K))
clip1 = test_set[0][0].unsqueeze(0)                    # (1, T, 1, 32, 32)
rows = bench.cost_table({"TSN": (tsn, (clip1,)), "TSM": (tsm, (clip1,)), "I3D": (i3d, (clip1,)),
                         "R(2+1)D": (r21d, (clip1,))},
                        repeats=5 if QUICK else 15, number=5 if QUICK else 10, baseline="TSM")
for r in rows:
    r["params_k"] = r.pop("params") / 1e3
    r["MMACs"] = r.pop("macs") / 1e6
_ = plots.table(rows, title=f"Cost per clip of T = {T} frames (CPU, batch 1); ratios are to TSM")
cost = {r["model"]: r for r in rows}
effcourse.record("i3d_macs_ratio", cost["I3D"]["macs_ratio"])
effcourse.record("r21d_macs_ratio", cost["R(2+1)D"]["macs_ratio"])
effcourse.record("i3d_latency_ratio", cost["I3D"]["latency_ratio"])
_ = effcourse.record("r21d_params_over_i3d", cost["R(2+1)D"]["params_k"] / cost["I3D"]["params_k"])

# %% [markdown]
# I3D pays about t = 3 times TSM's MACs at every layer, and t times the parameters. R(2+1)D was built
# to match the 3D conv's parameters, so its cost lands next to I3D's, not next to TSM's (it is a
# little lower here: the 1×1 shortcut convs were not inflated in it). On a P100 with ResNet-50
# backbones the TSM paper measured 17.4 ms per video for TSM and 164.3 ms for I3D (77.4 vs 6.1
# videos/s at batch 16); the I3D it measured is a bigger model fed more frames, so the gap there is
# larger than the t-fold MAC ratio of two identical backbones.
#
# ## 6. Experiment: does inflation help?
#
# The I3D recipe: train a 2D network on images, inflate it, fine-tune on video. Our "ImageNet" is
# digit recognition on single frames (10 classes); our video set is only **80 TemporalDigits clips**
# (10 per class) — little video, where a 3D network's extra parameters hurt most. We compare starts
# of the *same* 3D network, trained with the same recipe and the same number of steps: inflated with
# "center" and a random (from-scratch) initialisation; full mode (`QUICK = False`) adds "average"
# inflation and averages three training seeds. Test accuracy is measured at the same checkpoints
# for every start; the recorded gap is the mean over the checkpoints of (inflated − random).

# %%
torch.manual_seed(SEED)
net2d = video.resnet2d(num_classes=10)
t0 = time.perf_counter()
video.train_classifier(net2d, image_train, steps=PRETRAIN_STEPS, batch_size=64, device=device, seed=SEED,
                       desc="2D pre-training")
frame_acc = video.accuracy(net2d, image_test, device=device)
print(f"2D network: digit accuracy on unseen frames {100 * frame_acc:.1f} % ({time.perf_counter() - t0:.1f} s)")
effcourse.record("pretrain_frame_acc", frame_acc)
net2d.fc = nn.Linear(net2d.fc.in_features, K)          # a fresh 8-way head for the video classes
net2d = net2d.cpu()


def start(kind, seed):
    torch.manual_seed(seed)
    if kind == "random":
        return ChannelsFirst(reinit_(inflate_model(net2d, 3, "center")))   # same network, fresh weights
    return ChannelsFirst(inflate_model(net2d, 3, kind))


def acc(model):
    return video.accuracy(model, test_set, device=device)


curves, models = {}, {}
for kind in ("center", "random") if QUICK else ("center", "average", "random"):
    runs = []
    for run in range(RUNS):
        model = start(kind, SEED + run)
        t0 = time.perf_counter()
        hist = video.train_classifier(model, video_train, steps=STEPS, device=device, seed=SEED + run,
                                      desc=f"{kind} #{run}", eval_every=5, eval_fn=acc)
        runs.append(hist["eval"])
        models.setdefault(kind, model)
        print(f"{kind:>8} init, run {run}: test accuracy along training {[round(100 * a, 1) for a in hist['eval']]} % "
              f"({time.perf_counter() - t0:.1f} s)")
    curves[kind] = (hist["eval_step"], [sum(r[i] for r in runs) / RUNS for i in range(len(runs[0]))])

plots.curves({f"I3D, {k} init": (s, [100 * a for a in v]) for k, (s, v) in curves.items()},
             "training step", "test accuracy (%)", f"3D ResNet on {N_VIDEO} training clips (mean of {RUNS} run(s))",
             hline=100 / K,
             hline_label="chance")
plt.show()
mean_acc = {k: sum(v) / len(v) for k, (_, v) in curves.items()}   # the same checkpoints for every start
effcourse.record("inflated_acc_curve", curves["center"][1])
effcourse.record("random_acc_curve", curves["random"][1])
effcourse.record("inflated_acc", curves["center"][1][-1])
effcourse.record("random_acc", curves["random"][1][-1])
effcourse.record("inflation_gap", mean_acc["center"] - mean_acc["random"])
print("mean test accuracy over the checkpoints:", ", ".join(f"{k} {100 * v:.1f} %" for k, v in mean_acc.items()))

# %% [markdown]
# The inflated networks start from features that already find and describe a digit, so from the
# first checkpoints they only have to learn how those features move. From scratch, the network has
# to learn both from 80 clips. It is a head start, not a higher ceiling: in a prototype with 150
# steps the scratch network caught up by step 45 and ended higher (100 % vs 98 %) on this easy data
# set. On real data (Kinetics) the I3D paper found ImageNet-inflated weights better than training
# from scratch. "Center" starts as the exact 2D network applied to every frame (a TSN with late
# averaging) and learns the temporal taps; "average" starts by blurring a moving digit over the t
# frames of every kernel, which is right for a static scene but not for the motion we classify here.
#
# ## 7. Experiment: SVD decomposition of a trained 3D conv
#
# Take the second conv of the third stage of the trained (center-inflated) I3D — 64 → 64 channels,
# 3×3×3 — and decompose it at increasing ranks. Error is measured on the activations that conv
# actually receives for 16 test clips.

# %%
trained = models["center"].model.cpu().eval()
conv = trained.layer3[0].conv2
x_in = capture_input(trained, conv, test_set.tensors()[0][:16].transpose(1, 2))
with torch.no_grad():
    y_ref = conv(x_in)
full_rank = min(conv.out_channels * conv.kernel_size[0], conv.in_channels * conv.kernel_size[1] * conv.kernel_size[2])
ranks = sorted({1, 2, 4, 8, 16, 32, 48, 64, 96, 128, 160, full_rank} & set(range(1, full_rank + 1)))
dense_macs = bench.count_macs(conv, x_in)
svd_rows = []
for r in ranks:
    seq = decompose_conv3d(conv, r)
    with torch.no_grad():
        err = ((seq(x_in) - y_ref).norm() / y_ref.norm()).item()
    svd_rows.append({"rank": r, "rel_error": err, "MACs_ratio": bench.count_macs(seq, x_in) / dense_macs})
full_err = svd_rows[-1]["rel_error"]
effcourse.record("svd_full_rank_rel_err", full_err)
effcourse.record("svd_errors", [row["rel_error"] for row in svd_rows])
breakeven = midplanes(conv.in_channels, conv.out_channels, 3, 3)

fig, ax = plt.subplots(figsize=(6, 3.5))
ax.plot(ranks, [row["rel_error"] for row in svd_rows], "o-", label="relative output error")
ax.plot(ranks, [row["MACs_ratio"] for row in svd_rows], "s-", label="MACs / dense conv's")
ax.axhline(1.0, color="gray", lw=1, ls="--")
ax.axvline(breakeven, color="gray", lw=1, ls=":", label=f"break-even rank M = {breakeven}")
ax.set_xlabel("rank r")
ax.set_title(f"SVD of layer3[0].conv2 ({conv.in_channels}→{conv.out_channels}, 3×3×3)")
ax.grid(alpha=0.3)
ax.legend()
plt.show()
_ = plots.table(svd_rows, title="Decomposition error and cost vs rank")

# %% [markdown]
# Below the break-even rank the decomposition costs fewer MACs than the 3D conv. Where does the
# error fall? Right after inflation the kernel had one non-zero time tap, so its reshaped matrix had
# rank ≤ 64 (the other row blocks were zero) and rank 64 was exact; fine-tuning spread energy into
# the other directions, which is why the error keeps falling past 64. A trained 3D kernel is not
# exactly low-rank, so any saving is paid for in accuracy (fine-tuning after decomposing recovers
# part of it).
#
# ## 8. Paper vs. you

# %%
_ = plots.table([
    {"claim": "I3D vs TSM latency per video", "paper": "164.3 vs 17.4 ms (9.4×, P100, ResNet-50)",
     "you": f"{cost['I3D']['latency_ms']:.1f} vs {cost['TSM']['latency_ms']:.1f} ms "
            f"({cost['I3D']['latency_ratio']:.1f}×, CPU, ResNet-10)"},
    {"claim": "I3D vs TSM throughput", "paper": "6.1 vs 77.4 videos/s (batch 16)",
     "you": f"{1e3 / cost['I3D']['latency_ms']:.0f} vs {1e3 / cost['TSM']['latency_ms']:.0f} videos/s (batch 1)"},
    {"claim": "I3D / TSM MACs, same backbone", "paper": "≈ t = 3× per inflated layer",
     "you": f"{cost['I3D']['macs_ratio']:.2f}×"},
    {"claim": "R(2+1)D params / 3D params", "paper": "1 (M chosen to match)",
     "you": f"{cost['R(2+1)D']['params_k'] / cost['I3D']['params_k']:.2f} (whole network)"},
    {"claim": "inflated vs scratch init", "paper": "inflated better (I3D, Kinetics)",
     "you": f"{100 * curves['center'][1][-1]:.1f} % vs {100 * curves['random'][1][-1]:.1f} % after {STEPS} steps "
            f"(curve means {100 * mean_acc['center']:.1f} vs {100 * mean_acc['random']:.1f} %)"},
    {"claim": "SVD at full rank", "paper": "exact (linear algebra)", "you": f"relative error {full_err:.1e}"},
], title="Paper vs. you")

# %% [markdown]
# ## 9. Questions
#
# **Q1 (10 points).** Your inflated I3D with "center" gives *exactly* the 2D network's logits on a
# static clip, but only in eval mode. Why not in training mode? And why does "average" inflation not
# pass the boredom test at the first and last frames of a clip?

# %% [markdown] nbgrader={"grade": true, "grade_id": "q1_boredom", "locked": false, "points": 10, "schema_version": 3, "solution": true, "task": false}
# In training mode BatchNorm normalises with the statistics of the current batch instead of its
# running statistics. The 3D BatchNorm's batch statistics are taken over N·T·H·W positions, the 2D
# one's over N·H·W of one frame (or whatever batch it sees), and they also change the running
# statistics: the two networks no longer compute the same function. In eval mode both use the same
# stored mean/variance, per channel, so a static clip gives identical per-frame activations.
# With "average" each output frame sums t taps of W/t; at the first and last frames some taps fall on
# the zero padding in time, so only (t − #padded taps)/t of W·x is added (e.g. 2/3 of it for t = 3):
# the output is a scaled-down version of the 2D answer there. "Center" never touches the padding.

# %% [markdown]
# **Q2 (10 points).** In your cost table, how does the I3D/TSM latency ratio compare with the
# I3D/TSM MAC ratio? Give one reason why they differ on a CPU, and explain why the paper's
# 164.3 vs 17.4 ms gap (9.4×) is larger than the MAC ratio of two identical backbones would suggest.

# %% [markdown] nbgrader={"grade": true, "grade_id": "q2_cost", "locked": false, "points": 10, "schema_version": 3, "solution": true, "task": false}
# MACs only count arithmetic. Latency also depends on how well the kernels are implemented and on
# memory traffic: 3D convolutions are less optimised than 2D ones on CPUs (fewer specialised
# kernels, im2col-style buffers t times larger, worse cache reuse), while TSM adds only a cheap
# memory copy. So the measured latency ratio can be above (or, for tiny layers dominated by
# per-call overhead, below) the ~3× MAC ratio. The paper's I3D is not TSM's backbone with t = 3
# kernels: it is a larger 3D model fed more frames than TSM's 8, so its FLOPs are many times TSM's
# (far more than 3×), and 3D kernels are also less efficient on the GPU — together about 9.4×.

# %% [markdown]
# **Q3 (5 points).** R(2+1)D has (almost) the same parameters and MACs as the 3D network it replaces.
# What does the factorisation buy, then, and why is an SVD-decomposed conv *not* an R(2+1)D block?

# %% [markdown] nbgrader={"grade": true, "grade_id": "q3_factorise", "locked": false, "points": 5, "schema_version": 3, "solution": true, "task": false}
# It buys expressiveness and easier optimisation, not speed: a ReLU (and BatchNorm) between the
# spatial and temporal convs doubles the number of non-linearities at the same budget, and the
# paper found lower training and test error than the full 3D network. The SVD decomposition has no
# non-linearity in between: it is a linear rewrite of the same kernel (exact at full rank), useful
# for compression when a low rank suffices — it can be cheaper, but it cannot represent more.
