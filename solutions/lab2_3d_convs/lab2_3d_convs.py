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
# inflated image-trained weights really help a 3D network learn from little video.
#
# **Time:** about 90 minutes. **Papers:** Carreira & Zisserman, *Quo Vadis, Action Recognition?*
# (I3D), CVPR 2017; Tran et al., *A Closer Look at Spatiotemporal Convolutions for Action
# Recognition* (R(2+1)D), CVPR 2018; Lin, Gan, Han, *TSM*, ICCV 2019 (the cost comparison).
#
# **Intuition.** A 3D convolution slides a t×k×k kernel over time as well as space, so it sees
# motion directly — and costs t times a 2D convolution at every layer, with t times the
# parameters to learn from (scarce) video. Two tricks soften this. *Inflation* copies a trained 2D
# kernel into the time taps so that the 3D network starts out computing what the 2D network
# computed on each frame ("a boring video of one repeated frame gives the image answer"), and then
# only has to learn *how things change*. *Factorisation* spends the same parameters on a spatial
# and a temporal conv with a ReLU in between: twice the non-linearities, easier to optimise.
# Neither makes time cheap — that is what Lab 1's shift did.

# %%
# >>> effcourse bootstrap (hosted notebooks: docs/HOSTED.md)
# On Colab or a JupyterHub without effcourse this cell installs it; everywhere else it does nothing.
EFFCOURSE_VERSION, EFFCOURSE_WHEEL = "0.1.0", None  # wheel: a URL or path your instructor may set
import importlib.util
if importlib.util.find_spec("effcourse") is None:  # not installed: install the kit's wheel, keep torch
    import glob, importlib.metadata, re, subprocess, sys
    pattern = f"effcourse-{EFFCOURSE_VERSION}-*.whl"
    found = glob.glob(pattern) + glob.glob(f"../../wheels/{pattern}") + [None]
    wheel = EFFCOURSE_WHEEL or found[0]
    if wheel is None:
        raise ModuleNotFoundError(f"no effcourse here and no {pattern} beside this notebook: docs/HOSTED.md")
    pip = [sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    subprocess.run(pip + ["--no-deps", wheel], check=True)
    importlib.invalidate_caches()
    skip = ("torch", "torchvision", "jupyterlab", "nbgrader", "papermill")  # the platform's torch stays
    needs = [r for r in importlib.metadata.requires("effcourse") or []
             if "extra ==" not in r and re.match(r"[\w.-]+", r)[0].lower() not in skip]
    subprocess.run(pip + needs, check=True)
# <<< effcourse bootstrap

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
from effcourse.training import Loop
from effcourse.video import shift_cost
from effcourse.video.threed import ChannelsFirst, DigitFrames, capture_input, r2plus1d, reinit_

# %% tags=["parameters"]
QUICK = False
SEED = 0
DEVICE = "auto"

# %%
QUICK, device = effcourse.setup(QUICK, SEED, DEVICE)
T = 8                                                         # frames per clip
PRETRAIN_STEPS = effcourse.pick(full=600, quick=300, smoke=2)  # 2D pre-training on digit frames, batch 64
STEPS = effcourse.pick(full=40, smoke=2)                      # 3D training steps of 16 clips, the same for every start
EVAL_EVERY = effcourse.pick(full=5, smoke=1)                  # test accuracy every EVAL_EVERY steps
RUNS = effcourse.pick(full=3, quick=1)                        # training seeds per start (curves are averaged)
STARTS = effcourse.pick(full=("average", "center", "random"), quick=("average", "random"))  # average: I3D's
N_VIDEO = effcourse.pick(full=80, smoke=16)                   # training clips: 10 per class -- video is scarce
N_TEST = effcourse.pick(full=400, quick=200, smoke=16)
N_IMAGE_CLIPS = effcourse.pick(full=400, smoke=16)            # clips whose frames are the 2D "ImageNet"
BENCH = effcourse.pick(full={"repeats": 15, "number": 10}, quick={"repeats": 5, "number": 5},
                       smoke={"repeats": 1, "number": 1})
LAB1 = effcourse.pick(full=shift_cost.LAB1_NOTEBOOK, smoke=None)   # where your Lab 1 notebook is (section 5)

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
# so **every** frame equals $W * x + b$. "Average" is I3D's bootstrapping (§2.4: repeat the 2D
# weights N times along time and rescale them by 1/N); "center" is a variant I3D does not use, kept
# here because it passes the boredom test at every frame. The 3D conv keeps everything else of the 2D conv: spatial
# stride, padding and dilation, groups and bias; in time it uses stride 1, dilation 1 and padding
# $\lfloor t/2 \rfloor$, so T frames in give T frames out.

# %% nbgrader={"grade": false, "grade_id": "inflate_conv2d", "locked": false, "schema_version": 3, "solution": true, "task": false}
def inflate_conv2d(conv, time_kernel=3, method="average"):
    """Inflate an nn.Conv2d into an nn.Conv3d (I3D).

    Args:
        conv: nn.Conv2d with kernel (kh, kw), integer/tuple stride, padding, dilation; any groups;
            with or without bias. It is not modified.
        time_kernel: t, an odd number >= 1 (default 3).
        method: "average" (default: every time tap holds W / t) or "center" (the middle tap
            t // 2 holds W, the others are zero). Anything else raises ValueError.

    Returns:
        A new nn.Conv3d(in, out, (t, kh, kw)) with stride (1, sh, sw), padding (t // 2, ph, pw),
        dilation (1, dh, dw), the same groups, and a bias (a copy of conv's) exactly when conv has
        one; its weight and bias are its own trainable parameters (copies, not views of conv's),
        with conv's dtype and device. It maps (N, in, T, H, W) to (N, out, T, H', W'), where
        H', W' are the 2D conv's output size.
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


# %% nbgrader={"grade": true, "grade_id": "test_inflate_conv2d", "locked": true, "points": 17, "schema_version": 3, "solution": false, "task": false}
import torch
from torch import nn
from effcourse.checks import lab2

lab2.check_inflate_conv2d(inflate_conv2d)
### BEGIN HIDDEN TESTS
import torch.nn.functional as F
from torch.nn.modules.utils import _pair
from effcourse import judge
from effcourse.checks.asserts import assert_close, assert_shape, assert_true, call


def _hidden_inflate_conv2d(seed):
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)

    def random_conv(cin, cout, k, s=1, p=0, d=1, gr=1, b=True):     # a Conv2d here and its twin where your code runs
        conv = nn.Conv2d(cin, cout, k, stride=s, padding=p, dilation=d, groups=gr, bias=b)
        with torch.no_grad():
            conv.weight.normal_(generator=g)
            if b:
                conv.bias.normal_(generator=g)
        return conv, judge.twin(conv, "torch.nn.Conv2d", cin, cout, k, stride=s, padding=p, dilation=d, groups=gr,
                                bias=b)

    def untouched(yours, conv):
        b = judge.get(yours, "bias")
        return torch.equal(judge.get(yours, "weight").detach(), conv.weight.detach()) and (
            (b is None) == (conv.bias is None) and (b is None or torch.equal(b.detach(), conv.bias.detach())))

    cases = [  # cin, cout, k, stride, padding, dilation, groups, bias, t, N, T, H, W
        (3, 5, 3, 1, 1, 1, 1, True, 3, 2, 6, 9, 11),
        (4, 6, (3, 5), (2, 1), (1, 2), 1, 2, True, 3, 3, 5, 13, 10),
        (6, 6, 3, 2, 2, 2, 3, False, 5, 2, 9, 12, 9),
        (2, 4, 1, 1, 0, 1, 1, True, 3, 1, 4, 5, 7),
        (8, 8, 3, 1, 1, 1, 8, True, 3, 2, 5, 7, 7),        # depthwise
        (5, 3, 5, 3, 0, 1, 1, True, 1, 2, 3, 11, 13),       # t = 1
        (3, 7, 3, (1, 2), (2, 1), (2, 1), 1, False, 5, 1, 7, 15, 16),
        (3, 4, 3, 1, 1, 1, 1, True, 3, 2, 1, 6, 6),         # a one-frame clip
    ]
    for (cin, cout, k, s, p, d, gr, b, t, N, T_, H, W) in cases:
        name = (f"inflate_conv2d(Conv2d({cin}, {cout}, kernel_size={k}, stride={s}, padding={p}, dilation={d}, "
                f"groups={gr}, bias={b}), time_kernel={t}")
        conv, yours = random_conv(cin, cout, k, s, p, d, gr, b)
        w0 = conv.weight.detach().clone()
        b0 = conv.bias.detach().clone() if b else None
        frame = torch.randn(N, cin, H, W, generator=g)
        static = frame.unsqueeze(2).expand(-1, -1, T_, -1, -1).contiguous()
        moving = torch.randn(N, cin, T_, H, W, generator=g)
        with torch.no_grad():
            ref2d = conv(frame)
        kh, kw = _pair(k)
        for method in ("average", "center"):
            label = f"{name}, method={method!r})"
            c3 = call(label, inflate_conv2d, yours, t, method)
            assert_true(judge.isinstance_of(c3, "torch.nn.Conv3d"), f"{label}: expected an nn.Conv3d, got {c3!r:.120}")
            assert_true(untouched(yours, conv), f"{label}: the 2D conv was modified")
            w3, b3 = judge.get(c3, "weight"), judge.get(c3, "bias")
            assert_shape(f"{label}: weight", w3, (cout, cin // gr, t, kh, kw))
            if method == "average":
                exp_w = w0.unsqueeze(2).expand(-1, -1, t, -1, -1) / t
            else:
                exp_w = torch.zeros(cout, cin // gr, t, kh, kw)
                exp_w[:, :, t // 2] = w0
            assert_close(f"{label}: weight", w3.detach(), exp_w, atol=1e-6, rtol=1e-5)
            assert_true((b3 is not None) == b, f"{label}: the bias must be {'kept' if b else 'absent'}")
            if b:
                assert_close(f"{label}: bias", b3.detach(), b0, atol=0, rtol=0)
            with torch.no_grad():
                out = call(f"{label} on a {tuple(static.shape)} clip", c3, static)
                assert_shape(f"{label}: output on a {tuple(static.shape)} clip", out, (N, cout, T_, *ref2d.shape[2:]))
                frames = range(t // 2, T_ - t // 2) if method == "average" else range(T_)
                for f in frames:
                    assert_close(f"{label}: boredom test, output frame {f} vs the 2D conv on the frame", out[:, :, f],
                                 ref2d, atol=1e-5 * max(1.0, ref2d.abs().max().item()), rtol=1e-5)
                got = call(f"{label} on a random {tuple(moving.shape)} clip", c3, moving)
                ref = F.conv3d(moving, exp_w, b0, (1, *_pair(s)), (t // 2, *_pair(p)), (1, *_pair(d)), gr)
                assert_close(f"{label}: output on a random (moving) clip vs a Conv3d with stride (1, sh, sw), padding "
                             f"(t // 2, ph, pw), dilation (1, dh, dw), groups {gr}", got, ref,
                             atol=1e-5 * max(1.0, ref.abs().max().item()), rtol=1e-4)
    # own trainable parameters, copies of the 2D conv's
    for method in ("average", "center"):
        for t in (1, 3):
            what = f"inflate_conv2d(Conv2d(3, 4, 3, padding=1), {t}, {method!r})"
            conv, yours = random_conv(3, 4, 3, p=1)
            c3 = call(what, inflate_conv2d, yours, t, method)
            params = list(call(f"{what}.named_parameters()", c3.named_parameters))
            assert_true({n for n, _ in params} == {"weight", "bias"} and judge.get(c3, "weight.requires_grad") is True
                        and judge.get(c3, "bias.requires_grad") is True,
                        f"{what}: weight and bias must be trainable parameters of the Conv3d")
            w3, b3 = judge.get(c3, "weight"), judge.get(c3, "bias")
            call(f"{what}.load_state_dict(...) (new values for its own weight and bias)", c3.load_state_dict,
                 {"weight": w3.detach() + 1.0, "bias": b3.detach() + 1.0})
            assert_true(untouched(yours, conv), f"{what}: the inflated weight or bias shares memory with the 2D "
                                                f"conv's (copy them)")
            out = call(f"{what} on a (2, 3, 4, 5, 5) clip", c3, torch.randn(2, 3, 4, 5, 5, generator=g))
            assert_true(isinstance(out, torch.Tensor) and out.requires_grad,
                        f"{what}: the output must depend on the inflated conv's trainable weight")
            out.sum().backward()
            assert_true(judge.get(c3, "weight.grad") is not None and judge.get(yours, "weight.grad") is None,
                        f"{what}: gradients must reach the inflated conv's own weight")
    # dtype follows the 2D conv
    conv64 = nn.Conv2d(2, 3, 3, padding=1, dtype=torch.float64)
    yours = judge.twin(conv64, "torch.nn.Conv2d", 2, 3, 3, padding=1, dtype=torch.float64)
    c3 = call("inflate_conv2d(a float64 Conv2d, 3, 'center')", inflate_conv2d, yours, 3, "center")
    dtype = judge.get(c3, "weight.dtype")
    assert_true(dtype == torch.float64, f"a float64 Conv2d must give a float64 Conv3d, got {dtype}")
    # the defaults: time_kernel=3, method="average"
    conv, yours = random_conv(2, 3, 3, p=1)
    c3 = call("inflate_conv2d(conv) with its defaults", inflate_conv2d, yours)
    w3 = judge.get(c3, "weight")
    assert_shape("inflate_conv2d(conv) (defaults t = 3, 'average'): weight", w3, (3, 2, 3, 3, 3))
    assert_close("inflate_conv2d(conv) (defaults t = 3, 'average'): weight", w3.detach(),
                 conv.weight.detach().unsqueeze(2).expand(-1, -1, 3, -1, -1) / 3, atol=1e-6, rtol=1e-5)


with lab2.seed_in_failures(lab2.clock_seed()) as _seed:
    _hidden_inflate_conv2d(_seed)
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "test_inflate_conv2d_errors", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
# input validation, graded on its own: an unknown method raises ValueError
from effcourse.checks import lab2

lab2.check_inflate_conv2d_errors(inflate_conv2d)
### BEGIN HIDDEN TESTS
from effcourse import judge
from effcourse.checks.asserts import assert_raises

for _bad in ("median", "Average", "centre", "", "max"):
    _conv = judge.build("torch.nn.Conv2d", 2, 3, 3)          # built where your code runs
    assert_raises(f"inflate_conv2d(Conv2d(2, 3, 3), 3, method={_bad!r})",
                  lambda _bad=_bad, _conv=_conv: inflate_conv2d(_conv, 3, _bad), ValueError)
### END HIDDEN TESTS

# %% [markdown]
# ## 2. Inflating a network
#
# Now inflate a whole torchvision ResNet. Work on a **deep copy** (the 2D model must keep working)
# and swap every 2D layer for its 3D twin, recursively through the children:
#
# | 2D layer | 3D layer |
# |---|---|
# | `Conv2d` with a k×k kernel, k > 1 | `inflate_conv2d(conv, t, method)`: t×k×k, with t = `time_kernel` (or t = k when `time_kernel=None`) |
# | `Conv2d` with a 1×1 kernel | `inflate_conv2d(conv, 1, method)`: 1×1×1 (pointwise in time too) |
# | `BatchNorm2d(C)` | `BatchNorm3d(C)` with the same weight, bias, **running mean/var**, eps, momentum |
# | `MaxPool2d(k, s, p)` | `MaxPool3d((1, k, k), (1, s, s), (0, p, p))` (time untouched) |
# | `AdaptiveAvgPool2d(out)` | `AdaptiveAvgPool3d((1, *out))` (averages over time too) |
#
# This is I3D's rule (Carreira & Zisserman 2017, §2.4: "N × N filters become N × N × N"; the
# official I3D and its PyTorch port keep every 1×1 conv 1×1×1): `time_kernel=None`, the default,
# inflates a 3×3 conv to 3×3×3 and resnet18's 7×7 stem to 7×7×7. An integer `time_kernel=t` gives
# every conv larger than 1×1 the same time extent t (t = 3 turns the 7×7 stem into 3×7×7) and still
# keeps 1×1 convs pointwise. Three differences from the paper remain, by design: time strides stay 1
# (I3D's stem has stride 2 in time), so T frames in give T frames out; the final pooling averages
# over all frames; and some later 3D ResNets (the non-local I3D-ResNet-50) do inflate some 1×1 convs
# to 3×1×1 — a different design, not I3D's. For this lab's ResNet-10 (a 3×3 stem, 3×3 convs, 1×1
# shortcuts) `time_kernel=None` and `time_kernel=3` build the same network.
#
# torchvision's `ResNet.forward` only calls its modules and `torch.flatten(x, 1)`, so the copy runs
# on `(N, C, T, H, W)` clips unchanged. A BatchNorm in eval mode normalises each channel with its
# running statistics, which do not care whether the tensor is 4D or 5D: with "center" inflation a
# static clip gives the 2D model's logits **exactly** (in eval mode), which is the test below.
# `setattr(parent, name, new_child)` replaces a child module.

# %% nbgrader={"grade": false, "grade_id": "inflate_model", "locked": false, "schema_version": 3, "solution": true, "task": false}
def inflate_model(model2d, time_kernel=None, method="average"):
    """A 3D copy of a 2D network (I3D inflation).

    Args:
        model2d: a torchvision ResNet (any nn.Module built from the layers below); not modified.
        time_kernel: the time extent t of every Conv2d whose kernel is larger than 1x1: an odd int,
            or None (default, I3D's rule) for t = kh, the conv's own kernel height (N x N becomes
            N x N x N; every conv here is square with an odd size). A 1x1 Conv2d always becomes
            1x1x1.
        method: passed to your inflate_conv2d for every Conv2d (default "average").

    Returns:
        A deep copy of model2d in which every nn.Conv2d is replaced by inflate_conv2d(conv, t,
        method) with t as above, every nn.BatchNorm2d by an nn.BatchNorm3d with the same
        parameters, running statistics, eps and momentum, every nn.MaxPool2d by an nn.MaxPool3d
        with kernel/stride/padding (1, k, k)/(1, s, s)/(0, p, p), and every
        nn.AdaptiveAvgPool2d(out) by an nn.AdaptiveAvgPool3d((1, *out)). Module names are kept;
        other modules are left as they are. Input (N, C, T, H, W), output (N, K).
    """
    ### BEGIN SOLUTION
    model = copy.deepcopy(model2d)

    def time_extent(conv):
        if tuple(conv.kernel_size) == (1, 1):
            return 1                                     # pointwise stays pointwise (I3D: 1x1 -> 1x1x1)
        return conv.kernel_size[0] if time_kernel is None else time_kernel   # N x N -> N x N x N, or t x N x N

    def swap(parent):
        for name, child in parent.named_children():
            if isinstance(child, nn.Conv2d):
                new = inflate_conv2d(child, time_extent(child), method)
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
# uses your inflate_conv2d (the contract builds on it)
import torch
from torch import nn
from effcourse.checks import lab2

lab2.check_inflate_model(inflate_model)
### BEGIN HIDDEN TESTS
import copy
import torch.nn.functional as F
from torch.nn.modules.utils import _pair
from effcourse import judge
from effcourse.checks.asserts import assert_close, assert_shape, assert_true, call

_KINDS = ("Conv2d", "BatchNorm2d", "MaxPool2d", "AdaptiveAvgPool2d", "Conv3d", "BatchNorm3d", "MaxPool3d",
          "AdaptiveAvgPool3d")


def _hidden_inflate_model(seed):
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)

    def layers(model, what):                      # {name: (the layer's kind among _KINDS or None, the layer)}
        out = {}
        for n, m in call(f"{what}.named_modules()", model.named_modules):
            out[n] = (next((k for k in _KINDS if judge.isinstance_of(m, f"torch.nn.{k}")), None), m)
        return out

    def extent(conv, t):                          # the contract: 1x1 stays 1x1x1; t = kh when time_kernel is None
        return 1 if tuple(conv.kernel_size) == (1, 1) else (conv.kernel_size[0] if t is None else t)

    def reference(m2, tk, method):                # a tiny reference inflation, for the outputs only
        m3 = copy.deepcopy(m2)
        for parent in list(m3.modules()):
            for cname, c in list(parent.named_children()):
                if isinstance(c, nn.Conv2d):
                    t = extent(c, tk)
                    n = nn.Conv3d(c.in_channels, c.out_channels, (t, *c.kernel_size), (1, *c.stride),
                                  (t // 2, *c.padding), (1, *c.dilation), c.groups, c.bias is not None)
                    with torch.no_grad():
                        w = c.weight.unsqueeze(2)
                        n.weight.copy_(w.expand(-1, -1, t, -1, -1) / t if method == "average" else
                                       F.pad(w, (0, 0, 0, 0, t // 2, t // 2)))
                        if c.bias is not None:
                            n.bias.copy_(c.bias)
                elif isinstance(c, nn.BatchNorm2d):
                    n = nn.BatchNorm3d(c.num_features, c.eps, c.momentum)
                    n.load_state_dict(c.state_dict())
                elif isinstance(c, nn.MaxPool2d):
                    n = nn.MaxPool3d((1, *_pair(c.kernel_size)), (1, *_pair(c.stride)), (0, *_pair(c.padding)))
                elif isinstance(c, nn.AdaptiveAvgPool2d):
                    n = nn.AdaptiveAvgPool3d((1, *_pair(c.output_size)))
                else:
                    continue
                setattr(parent, cname, n)
        return m3.eval()

    models = [  # label, toy_resnet2d's arguments, input channels, time_kernel, T, H
        ("a torchvision ResNet with resnet18's stem (7x7 conv, 3x3 max-pool)",
         dict(num_classes=5, in_channels=3, widths=(8, 8, 16, 16), stem="resnet18"), 3, 3, 3, 20),
        ("a torchvision ResNet with resnet18's stem, I3D's rule (7x7 -> 7x7x7)",
         dict(num_classes=4, in_channels=2, widths=(8, 8, 16, 16), stem="resnet18"), 2, None, 5, 19),
        ("effcourse resnet2d, t=5, one-frame clips",
         dict(num_classes=3, in_channels=1, widths=(8, 8, 16, 16), layers=(2, 1, 1, 1)), 1, 5, 1, 17),
    ]
    for i, (label, kwargs, cin, tk, T_, H) in enumerate(models):
        m2 = lab2.toy_resnet2d(seed + i, **kwargs)                                   # here ...
        yours = judge.build("effcourse.checks.lab2.toy_resnet2d", seed + i, **kwargs)  # ... and where your code runs
        before = {k: v.clone() for k, v in m2.state_dict().items()}
        kinds_before = {n: k for n, (k, _) in layers(yours, label).items()}
        frame = torch.randn(2, cin, H, H, generator=g)
        static = frame.unsqueeze(2).expand(-1, -1, T_, -1, -1).contiguous()
        moving = torch.randn(2, cin, T_, H, H, generator=g)
        for method in ("center", "average"):
            name = f"inflate_model({label}, time_kernel={tk}, method={method!r})"
            m3 = call(name, inflate_model, yours, tk, method)
            assert_true(judge.isinstance_of(m3, "torch.nn.Module"), f"{name}: must return a new module (a copy)")
            kinds_after = {n: k for n, (k, _) in layers(yours, label).items()}
            assert_true(kinds_after == kinds_before, f"{name}: the input model's layers were replaced")
            state2 = call(f"{label}.state_dict()", yours.state_dict)
            for k, v in before.items():
                assert_true(k in state2 and torch.equal(state2[k], v), f"{name}: the input model's {k} changed")
            mods3 = layers(m3, name)
            left = [n for n, (k, _) in mods3.items() if k is not None and k.endswith("2d")]
            assert_true(not left, f"{name}: 2D layers left in the inflated model: {left[:5]}")
            state3 = call(f"{name}.state_dict()", m3.state_dict)
            for n, m in m2.named_modules():
                if isinstance(m, nn.BatchNorm2d):
                    k3, b3 = mods3.get(n, (None, None))
                    assert_true(k3 == "BatchNorm3d", f"{name}: {n} must become a BatchNorm3d, got {b3!r:.100}")
                    for attr in ("weight", "bias", "running_mean", "running_var"):
                        got = state3.get(f"{n}.{attr}")
                        assert_true(got is not None, f"{name}: {n} has no {attr}")
                        assert_close(f"{name}: {n}.{attr} carried over", got, getattr(m, attr).detach(), atol=0, rtol=0)
                    eps, momentum = judge.get(b3, "eps"), judge.get(b3, "momentum")
                    assert_true(eps == m.eps and momentum == m.momentum,
                                f"{name}: {n}: eps and momentum must be carried over ({m.eps!r}, {m.momentum!r}), "
                                f"got ({eps!r}, {momentum!r})")
                elif isinstance(m, nn.Conv2d):
                    k3, c3 = mods3.get(n, (None, None))
                    assert_true(k3 == "Conv3d", f"{name}: {n} must become a Conv3d, got {c3!r:.100}")
                    w3 = state3.get(f"{n}.weight")
                    t = extent(m, tk)
                    assert_shape(f"{name}: {n}.weight (a {m.kernel_size[0]}x{m.kernel_size[1]} conv becomes "
                                 f"{t}x{m.kernel_size[0]}x{m.kernel_size[1]})", w3,
                                 (m.out_channels, m.in_channels // m.groups, t, *m.kernel_size))
                    w = m.weight.detach()
                    if method == "average":
                        assert_close(f"{name}: {n} inflated by 'average'", w3,
                                     w.unsqueeze(2).expand(-1, -1, t, -1, -1) / t, atol=1e-6, rtol=1e-5)
                    else:
                        assert_close(f"{name}: {n} inflated by 'center' (middle tap)", w3[:, :, t // 2], w,
                                     atol=0, rtol=0)
            ref3 = reference(m2, tk, method)
            call(f"{name}.eval()", m3.eval)
            with torch.no_grad():
                out, ref = call(f"{name} on a random clip", m3, moving), ref3(moving)
                assert_close(f"{name}: logits on a random (moving) clip, eval mode, vs a correctly inflated copy",
                             out, ref, atol=1e-4 * max(1.0, ref.abs().max().item()), rtol=1e-4)
                if method == "center":
                    out, ref = call(f"{name} on a static clip", m3, static), m2(frame)
                    assert_shape(f"{name}: logits", out, tuple(ref.shape))
                    assert_close(f"{name}: 'center' logits on a static clip (eval) vs the 2D logits on the frame",
                                 out, ref, atol=1e-4 * max(1.0, ref.abs().max().item()), rtol=1e-4)
            # the copy owns its parameters and statistics: changing them leaves the 2D model as it was
            call(f"{name}.load_state_dict(...) (new values for every entry)", m3.load_state_dict,
                 {k: v.detach() + 1 for k, v in state3.items()})
            state2 = call(f"{label}.state_dict()", yours.state_dict)
            for k, v in before.items():
                assert_true(torch.equal(state2[k], v), f"{name}: the inflated model shares {k} with the input model "
                                                       f"(changing the copy changed the 2D model)")
    # defaults (time_kernel=None: I3D's rule, method="average") and gradients through the inflated model
    big = call("inflate_model(toy ResNet with resnet18's stem)", inflate_model,
               judge.build("effcourse.checks.lab2.toy_resnet2d", seed, stem="resnet18"))
    w = judge.get(call("...get_submodule('conv1')", big.get_submodule, "conv1"), "weight")
    assert_true(tuple(w.shape[2:]) == (7, 7, 7) and torch.allclose(w[:, :, 0], w[:, :, 3]),
                f"inflate_model(model2d) must default to time_kernel=None (the 7x7 stem becomes 7x7x7) and "
                f"method='average'; the stem's weight has shape {tuple(w.shape)}")
    m3 = call("inflate_model(resnet2d())", inflate_model, judge.build("effcourse.video.resnet2d"))
    call("inflate_model(resnet2d()).train()", m3.train)
    c = call("inflate_model(resnet2d()).get_submodule('layer1.0.conv1')", m3.get_submodule, "layer1.0.conv1")
    w = judge.get(c, "weight") if judge.isinstance_of(c, "torch.nn.Conv3d") else None
    assert_true(w is not None and w.shape[2] == 3 and torch.allclose(w[:, :, 0], w[:, :, 1]),
                "inflate_model(model2d) must default to time_kernel=None (3x3 -> 3x3x3), method='average'")
    out = call("inflate_model(resnet2d()) on a (2, 1, 2, 16, 16) clip", m3, torch.randn(2, 1, 2, 16, 16, generator=g))
    assert_true(isinstance(out, torch.Tensor) and out.requires_grad,
                "the inflated model's output must depend on its trainable parameters")
    out.sum().backward()
    assert_true(all(p.grad is not None for p in call("inflate_model(resnet2d()).parameters()", m3.parameters)),
                "every parameter of the inflated model must get a gradient")


with lab2.seed_in_failures(lab2.clock_seed()) as _seed:
    _hidden_inflate_model(_seed)
### END HIDDEN TESTS

# %% [markdown]
# ## 3. (2+1)D: the same budget, split in two
#
# R(2+1)D replaces a t×k×k conv from $N_{i}$ to $N_{o}$ channels by a **spatial** 1×k×k conv to $M$
# channels, BatchNorm, ReLU, and a **temporal** t×1×1 conv to $N_o$ channels. Parameters:
# $k^2 N_i M + t M N_o$ versus $t k^2 N_i N_o$ for the 3D conv. Setting them equal gives the number
# of mid-planes of the R(2+1)D paper (Tran et al. 2018, §3.5):
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
# residual block from the block's `in → out` channels and uses it for *both* convs of the block
# (`torchvision/models/video/resnet.py`, `BasicBlock`). In a downsampling block (e.g. 64 → 128) the
# second conv goes 128 → 128 but gets the 64 → 128 value (230 instead of 288), so those blocks have
# fewer parameters than the 3D blocks they stand for. Below, every conv computes its own $M$, as in
# the paper.

# %% nbgrader={"grade": false, "grade_id": "midplanes", "locked": false, "schema_version": 3, "solution": true, "task": false}
def midplanes(in_channels, out_channels, kernel_size=3, time_kernel=3):
    """Mid-plane count M of a (2+1)D conv with the parameter budget of a t x k x k 3D conv.

    Args: in_channels N_in, out_channels N_out, kernel_size k (default 3), time_kernel t (default 3).
    Returns the int floor(t * k^2 * N_in * N_out / (k^2 * N_in + t * N_out)).
    """
    ### BEGIN SOLUTION
    k2 = kernel_size * kernel_size
    return (time_kernel * k2 * in_channels * out_channels) // (k2 * in_channels + time_kernel * out_channels)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_midplanes", "locked": true, "points": 5, "schema_version": 3, "solution": false, "task": false}
from effcourse.checks import lab2

lab2.check_midplanes(midplanes)
### BEGIN HIDDEN TESTS
import numbers
import random
from effcourse.checks.asserts import assert_true, call


def _hidden_midplanes(seed):
    r = random.Random(seed)
    cases = [(r.randint(1, 700), r.randint(1, 700), r.choice([1, 3, 5, 7]), r.choice([1, 2, 3, 5])) for _ in range(200)]
    cases += [(1, 1, 1, 1), (1, 700, 7, 5), (700, 1, 1, 5), (3, 64, 7, 5), (512, 512, 3, 3)]
    for ni, no, k, t in cases:
        exp = (t * k * k * ni * no) // (k * k * ni + t * no)
        got = call(f"midplanes({ni}, {no}, kernel_size={k}, time_kernel={t})", midplanes, ni, no, k, t)
        assert_true(isinstance(got, numbers.Integral) and not isinstance(got, bool) and got == exp,
                    f"midplanes({ni}, {no}, kernel_size={k}, time_kernel={t}): expected the int {exp}, got {got!r}")
        got = call("midplanes with keyword arguments", midplanes, in_channels=ni, out_channels=no, kernel_size=k,
                   time_kernel=t)
        assert_true(got == exp, f"midplanes(in_channels={ni}, out_channels={no}, kernel_size={k}, time_kernel={t}): "
                                f"expected {exp}, got {got!r}")
    assert_true(call("midplanes(64, 64)", midplanes, 64, 64) == 144 and
                call("midplanes(128, 128)", midplanes, 128, 128) == 288, "the default kernel sizes are k = 3 and t = 3")
    assert_true(call("midplanes(64, 64, 5)", midplanes, 64, 64, 5) == 3 * 25 * 64 * 64 // (25 * 64 + 3 * 64),
                "midplanes(64, 64, 5): the third argument is kernel_size, with time_kernel defaulting to 3")


with lab2.seed_in_failures(lab2.clock_seed()) as _seed:
    _hidden_midplanes(_seed)
### END HIDDEN TESTS

# %% [markdown]
# Now the module. Keep the order of the paper: spatial conv → `BatchNorm3d(M)` → ReLU → temporal
# conv. Neither conv has a bias: in the networks that use the block a BatchNorm follows it (and one
# sits between the convs), so a bias would only add parameters the budget does not count.

# %% nbgrader={"grade": false, "grade_id": "Conv2Plus1d", "locked": false, "schema_version": 3, "solution": true, "task": false}
class Conv2Plus1d(nn.Module):
    """(2+1)D convolution: spatial conv -> BatchNorm3d(M) -> ReLU -> temporal conv.

    Args:
        in_channels, out_channels: N_in, N_out.
        kernel_size: k, spatial (default 3). time_kernel: t (default 3).
        stride, padding: an int (the same in time and space) or a (t, h, w) triple, as for
            nn.Conv3d (defaults 1 and 1).

    Layers, with M = midplanes(in_channels, out_channels, kernel_size, time_kernel):
        spatial:  nn.Conv3d(N_in, M, (1, k, k), stride (1, sh, sw), padding (0, ph, pw), bias=False)
        norm:     nn.BatchNorm3d(M) (default eps and momentum)
        ReLU
        temporal: nn.Conv3d(M, N_out, (t, 1, 1), stride (st, 1, 1), padding (pt, 0, 0), bias=False)

    forward(x): temporal(relu(norm(spatial(x)))); x (N, N_in, T, H, W) -> the shape
    nn.Conv3d(N_in, N_out, (t, k, k), stride, padding) gives. x is not modified.
    """

    def __init__(self, in_channels, out_channels, kernel_size=3, time_kernel=3, stride=1, padding=1):
        super().__init__()
        ### BEGIN SOLUTION
        st, sh, sw = _triple(stride)
        pt, ph, pw = _triple(padding)
        m = midplanes(in_channels, out_channels, kernel_size, time_kernel)
        self.spatial = nn.Conv3d(in_channels, m, (1, kernel_size, kernel_size), (1, sh, sw), (0, ph, pw), bias=False)
        self.bn = nn.BatchNorm3d(m)
        self.relu = nn.ReLU(inplace=True)
        self.temporal = nn.Conv3d(m, out_channels, (time_kernel, 1, 1), (st, 1, 1), (pt, 0, 0), bias=False)
        ### END SOLUTION

    def forward(self, x):
        ### BEGIN SOLUTION
        return self.temporal(self.relu(self.bn(self.spatial(x))))
        ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_Conv2Plus1d", "locked": true, "points": 15, "schema_version": 3, "solution": false, "task": false}
# M may be the paper's value or what your midplanes returns: a wrong midplanes loses its points once, above
import torch
from torch import nn
from effcourse.checks import lab2

lab2.check_conv2plus1d(Conv2Plus1d, midplanes)
### BEGIN HIDDEN TESTS
import torch.nn.functional as F
from torch.nn.modules.utils import _triple
from effcourse import judge
from effcourse.checks.asserts import assert_close, assert_shape, assert_true, call


def _hidden_conv2plus1d(seed):
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)

    def allowed_m(ni, no, k, t):
        ok = {(t * k * k * ni * no) // (k * k * ni + t * no)}
        try:
            ok.add(int(midplanes(ni, no, k, t)))
        except Exception:  # noqa: BLE001 - whatever the learner's helper raises, the formula alone decides
            pass
        return ok

    cases = [  # ni, no, k, t, stride, padding, N, T, H, W; None = the constructor's default
        (3, 8, None, None, None, None, 2, 6, 9, 10),
        (5, 7, 3, 3, 2, 1, 3, 7, 11, 13),
        (4, 4, 3, 5, 1, 0, 1, 9, 9, 10),
        (6, 3, 5, 3, 2, 2, 2, 6, 15, 12),
        (6, 5, 1, 3, 1, 1, 2, 5, 7, 7),
        (8, 8, 3, 3, 3, 1, 2, 10, 13, 17),
        (4, 6, 3, 3, (1, 2, 2), (1, 1, 1), 2, 8, 16, 15),
        (3, 5, 3, 5, (2, 1, 2), (2, 0, 1), 1, 9, 8, 11),
        (7, 5, 3, 1, (1, 2, 1), (0, 1, 1), 2, 4, 9, 8),
        (5, 11, 3, 3, (2, 1, 1), (1, 2, 0), 2, 8, 7, 9),
        (4, 6, 3, 3, 1, 1, 3, 1, 5, 5),                    # a one-frame clip
    ]
    for (ni, no, k, t, s, p, N, T_, H, W) in cases:
        kw = {key: v for key, v in (("kernel_size", k), ("time_kernel", t), ("stride", s), ("padding", p)) if v is not None}
        k, t, s, p = k or 3, t or 3, 1 if s is None else s, 1 if p is None else p
        name = f"Conv2Plus1d({ni}, {no}" + "".join(f", {key}={v}" for key, v in kw.items()) + ")"
        m = call(name, Conv2Plus1d, ni, no, **kw)
        assert_true(judge.isinstance_of(m, "torch.nn.Module"), f"{name}: must be an nn.Module")
        params = [(n, q.detach()) for n, q in call(f"{name}.named_parameters()", m.named_parameters)]
        weights = [(n, q) for n, q in params if q.dim() == 5]
        sp = [(n, q) for n, q in weights if q.shape[1] == ni and tuple(q.shape[2:]) == (1, k, k)]
        tm = [(n, q) for n, q in weights if q.shape[0] == no and tuple(q.shape[2:]) == (t, 1, 1)]
        assert_true(len(weights) == 2 and len(sp) == 1 and len(tm) == 1 and sp[0][0] != tm[0][0],
                    f"{name}: expected a spatial conv weight (M, {ni}, 1, {k}, {k}) and a temporal conv weight "
                    f"({no}, M, {t}, 1, 1), got conv weights {[tuple(q.shape) for _, q in weights]}")
        (sp_name, sp), (tm_name, tm) = sp[0], tm[0]
        M = sp.shape[0]
        ok = allowed_m(ni, no, k, t)
        assert_true(M in ok and tm.shape[1] == M,
                    f"{name}: the spatial conv must output M = {min(ok)} channels and the temporal conv take them; "
                    f"got {M} and {tm.shape[1]}")
        norms = [(n, b) for n, b in call(f"{name}.named_modules()", m.named_modules)
                 if judge.isinstance_of(b, "torch.nn.BatchNorm3d")]
        feats = [judge.get(b, "num_features") for _, b in norms]
        assert_true(len(norms) == 1 and feats[0] == M and judge.get(norms[0][1], "affine") is True,
                    f"{name}: expected one BatchNorm3d({M}) between the convs, got {feats or 'none'}")
        bn_name, bn = norms[0]
        n_params = sum(q.numel() for _, q in params)
        exp_params = k * k * ni * M + 2 * M + t * M * no
        assert_true(n_params == exp_params,
                    f"{name}: expected {exp_params} parameters (k*k*N_in*M + 2*M for the BatchNorm + t*M*N_out; "
                    f"no conv bias), got {n_params}")
        # fresh random weights and statistics, so every layer matters (loaded by name into your module)
        pre = f"{bn_name}." if bn_name else ""
        new = {sp_name: torch.randn(sp.shape, generator=g) / (k * k * ni) ** 0.5,
               tm_name: torch.randn(tm.shape, generator=g) / (t * M) ** 0.5,
               pre + "weight": torch.empty(M).uniform_(0.5, 1.5, generator=g),
               pre + "bias": torch.empty(M).normal_(0, 0.5, generator=g),
               pre + "running_mean": torch.empty(M).normal_(0, 0.5, generator=g),
               pre + "running_var": torch.empty(M).uniform_(0.5, 2.0, generator=g)}
        state = dict(call(f"{name}.state_dict()", m.state_dict))
        missing = sorted(set(new) - set(state))
        assert_true(not missing, f"{name}: expected these entries in the module's state_dict: {missing}")
        state.update(new)
        call(f"{name}.load_state_dict(...)", m.load_state_dict, state)
        sp, tm = new[sp_name], new[tm_name]
        bn_w, bn_b, bn_rm, bn_rv = (new[pre + a] for a in ("weight", "bias", "running_mean", "running_var"))
        eps, momentum = judge.get(bn, "eps"), judge.get(bn, "momentum")
        assert_true(eps == 1e-5 and momentum == 0.1,
                    f"{name}: the BatchNorm3d({M}) must keep the default eps and momentum (1e-05, 0.1), got "
                    f"({eps!r}, {momentum!r})")
        st, sh, sw = _triple(s)
        pt, ph, pw = _triple(p)

        def ref_forward(x, training):
            h = F.conv3d(x, sp, None, (1, sh, sw), (0, ph, pw))
            h = F.batch_norm(h, None if training else bn_rm, None if training else bn_rv, bn_w, bn_b, training, 0.0,
                             eps)
            return F.conv3d(F.relu(h), tm, None, (st, 1, 1), (pt, 0, 0))

        x = torch.randn(N, ni, T_, H, W, generator=g)
        x0 = x.clone()
        shape3d = nn.Conv3d(ni, no, (t, k, k), s, p)(x).shape
        call(f"{name}.eval()", m.eval)
        with torch.no_grad():
            ref = ref_forward(x, False)
            out = call(f"{name} in eval mode on {tuple(x.shape)}", m, x)
        assert_shape(f"{name} on {tuple(x.shape)} (the shape nn.Conv3d(N_in, N_out, (t, k, k), stride, padding) gives)",
                     out, tuple(shape3d))
        assert_close(f"{name}, eval mode: output vs temporal(relu(BatchNorm3d(spatial(x))))", out, ref,
                     atol=1e-4 * max(1.0, ref.abs().max().item()), rtol=1e-4)
        assert_true(torch.equal(x, x0), f"{name}: the input was modified")
        xg = x.clone().requires_grad_(True)
        with torch.no_grad():
            ref = ref_forward(x, True)
        call(f"{name}.train()", m.train)
        out = call(f"{name} in training mode on {tuple(x.shape)}", m, xg)
        assert_close(f"{name}, training mode (batch statistics): output vs temporal(relu(BatchNorm3d(spatial(x))))",
                     out, ref, atol=1e-4 * max(1.0, ref.abs().max().item()), rtol=1e-4)
        assert_true(out.requires_grad, f"{name}: the output must depend on the input and the parameters")
        out.square().sum().backward()
        assert_true(xg.grad is not None and all(q.grad is not None for q in call(f"{name}.parameters()", m.parameters)),
                    f"{name}: gradients must reach the input and every parameter")


with lab2.seed_in_failures(lab2.clock_seed()) as _seed:
    _hidden_conv2plus1d(_seed)
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
          temporal = nn.Conv3d(r, C_out, (t, 1, 1), stride (st, 1, 1), padding (pt, 0, 0), with a
                     bias (a copy of conv's) exactly when conv has one)
        built from the rank-r truncated SVD of the kernel reshaped to (C_out * t, C_in * kh * kw):
        the two convs compose to the best rank-r approximation of the kernel, and at full rank
        the output equals conv's. Both convs are trainable.
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
import torch
from torch import nn
from effcourse.checks import lab2

lab2.check_decompose_conv3d(decompose_conv3d)
### BEGIN HIDDEN TESTS
import torch.nn.functional as F
from torch.nn.modules.utils import _pair, _triple
from effcourse import judge
from effcourse.checks.asserts import assert_close, assert_shape, assert_true, call


def _hidden_decompose_conv3d(seed):
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    cases = [  # ci, co, kt, k, stride, padding, bias, N, T, H, W
        (3, 5, 3, 3, (1, 1, 1), (1, 1, 1), True, 2, 6, 9, 11),
        (4, 6, 3, 3, (2, 2, 2), (1, 0, 1), False, 3, 7, 10, 9),
        (6, 4, 5, (3, 5), (1, 2, 1), (2, 1, 2), True, 1, 8, 12, 13),
        (5, 5, 1, 3, 1, 1, True, 2, 3, 7, 7),
        (2, 7, 3, 1, (1, 3, 2), 0, True, 2, 5, 8, 9),
        (8, 3, 3, 3, (2, 1, 1), (0, 1, 1), False, 2, 9, 6, 6),
    ]
    for (ci, co, kt, k, s, p, bias, N, T_, H, W) in cases:
        kh, kw = _pair(k)
        conv = nn.Conv3d(ci, co, (kt, kh, kw), stride=s, padding=p, bias=bias)
        with torch.no_grad():
            conv.weight.normal_(generator=g)
            if bias:
                conv.bias.normal_(generator=g)
        yours = judge.twin(conv, "torch.nn.Conv3d", ci, co, (kt, kh, kw), stride=s, padding=p, bias=bias)
        w0 = conv.weight.detach().clone()
        b0 = conv.bias.detach().clone() if bias else None
        name = f"decompose_conv3d(Conv3d({ci}, {co}, {(kt, kh, kw)}, stride={s}, padding={p}, bias={bias})"
        full = min(co * kt, ci * kh * kw)
        x = torch.randn(N, ci, T_, H, W, generator=g)
        a = w0.permute(0, 2, 1, 3, 4).reshape(co * kt, ci * kh * kw)
        sv = torch.linalg.svdvals(a)
        errs = []
        for r in sorted({1, 2, full // 2, full - 1, full} & set(range(1, full + 1))):
            label = f"{name}, rank={r})"
            seq = call(label, decompose_conv3d, yours, r)
            yb = judge.get(yours, "bias")
            assert_true(torch.equal(judge.get(yours, "weight").detach(), w0) and
                        (not bias or (yb is not None and torch.equal(yb.detach(), b0))),
                        f"{label}: the conv was modified")
            is_seq = judge.isinstance_of(seq, "torch.nn.Sequential") and len(seq) == 2
            parts = [call(f"{label}[{i}]", lambda i=i: seq[i]) for i in range(2)] if is_seq else []
            assert_true(is_seq and all(judge.isinstance_of(c, "torch.nn.Conv3d") for c in parts),
                        f"{label}: expected nn.Sequential(spatial Conv3d, temporal Conv3d), got {seq!r:.200}")
            sp, tm = parts
            sp_w, sp_b, tm_w, tm_b = (judge.get(c, a_) for c in (sp, tm) for a_ in ("weight", "bias"))
            assert_shape(f"{label}: spatial weight", sp_w, (r, ci, 1, kh, kw))
            assert_shape(f"{label}: temporal weight", tm_w, (co, r, kt, 1, 1))
            assert_true(sp_b is None, f"{label}: the spatial conv must have no bias")
            assert_true((tm_b is not None) == bias, f"{label}: the temporal conv must carry the conv's bias "
                                                    f"exactly when it has one")
            if bias:
                assert_close(f"{label}: temporal bias", tm_b.detach(), b0, atol=0, rtol=0)
            n_par = sum(q.numel() for q in call(f"{label}.parameters()", seq.parameters))
            exp_par = r * ci * kh * kw + co * r * kt + (co if bias else 0)
            assert_true(n_par == exp_par, f"{label}: expected {exp_par} parameters, got {n_par}")
            sp_s, tm_s = tuple(judge.get(sp, "stride")), tuple(judge.get(tm, "stride"))
            assert_true(sp_s == (1, *_triple(s)[1:]) and tm_s == (_triple(s)[0], 1, 1),
                        f"{label}: strides must split into (1, sh, sw) and (st, 1, 1), got {sp_s} and {tm_s}")
            wc = torch.einsum("orT,ri...->oiT...", tm_w.detach()[..., 0, 0], sp_w.detach()[:, :, 0])
            err = (wc - w0).norm().item()
            opt = sv[r:].norm().item()
            assert_true(err <= opt * (1 + 1e-4) + 1e-5 * sv[0].item(),
                        f"{label}: the composed kernel is {err:.6g} from the conv's (Frobenius), but the truncated "
                        f"SVD achieves {opt:.6g}")
            errs.append(err)
            if r in (1, full // 2, full):         # the output is the composed kernel's conv (padding split right)
                with torch.no_grad():
                    out = call(f"{label} on {tuple(x.shape)}", seq, x)
                    ref = F.conv3d(x, wc, b0, s, p)
                assert_shape(f"{label}: output on {tuple(x.shape)}", out, tuple(ref.shape))
                assert_close(f"{label}: output vs a Conv3d with the composed kernel", out, ref,
                             atol=1e-4 * max(1.0, ref.abs().max().item()), rtol=1e-4)
        with torch.no_grad():
            ref = conv(x)
        assert_close(f"{name}, rank={full}) (full rank) vs the original conv", out, ref,
                     atol=1e-4 * ref.abs().max().item(), rtol=0)
        assert_true(all(b <= a_ + 1e-5 * sv[0].item() for a_, b in zip(errs, errs[1:])),
                    f"{name}: the error must not grow with the rank, got {[round(e, 4) for e in errs]}")
        seq = call(f"{name}, rank={max(1, full // 2)})", decompose_conv3d, yours, max(1, full // 2))
        out = call(f"{name}, rank={max(1, full // 2)}) on {tuple(x.shape)}", seq, x)
        assert_true(out.requires_grad, f"{name}: the output must depend on trainable convs")
        out.square().sum().backward()
        assert_true(all(q.grad is not None for q in call(f"{name}.parameters()", seq.parameters)),
                    f"{name}: gradients must reach both convs")


with lab2.seed_in_failures(lab2.clock_seed()) as _seed:
    _hidden_decompose_conv3d(_seed)
### END HIDDEN TESTS

# %% [markdown]
# ## 5. Experiment: the cost of time
#
# Four clip classifiers of the same depth and widths (a narrow ResNet-10, 16→128 channels, 32×32
# frames, T = 8), batch 1, CPU, one thread: TSN (the 2D network on each of the 8 frames), TSM (the
# same with a temporal shift in front of each residual block's first conv), I3D (the network
# inflated by I3D's rule: every 3×3 conv becomes 3×3×3, the 1×1 shortcuts stay 1×1×1) and R(2+1)D (every 3×3 conv replaced by your `Conv2Plus1d`). MACs come
# from `torch.utils.flop_counter`; latencies are interleaved medians measured in this one run, so
# their **ratios** are meaningful even on a busy machine. TSN's and TSM's rows leave out the final
# average of the 8 frames' logits (64 additions).
#
# **Where TSM's shift comes from.** Lab 2 does not hand out Lab 1's answers. If your Lab 1 notebook
# sits beside this one (`../lab1_temporal_shift/lab1_temporal_shift.ipynb`), the TSM row runs *your*
# `temporal_shift` and `ResidualShift` (its two exercise cells are loaded from that file). Otherwise
# it runs a **stand-in** (`effcourse.video.shift_cost.copy_wrapper`) that costs what a shift costs
# and means nothing: in front of each residual block's first conv it writes the activation into a
# fresh zero-filled buffer — one fill, one read, one write of the tensor, about the memory traffic of
# a shift — and passes it on unchanged. It is a cost model only: a network with it is TSN, not TSM.
# Either way TSM's MACs equal TSN's by construction (a shift moves numbers, it multiplies none; the
# lecture: "zero FLOPs, zero parameter for temporal modeling"). The line printed below says which
# one ran.

# %% tags=["experiment"]
K = len(TemporalDigits.classes)
shift_wrapper, tsm_source = shift_cost.tsm_wrapper(LAB1)
print(f"TSM row: {tsm_source}")
torch.manual_seed(SEED)
tsn = video.resnet2d(num_classes=K)
tsm = video.insert_shift(video.resnet2d(num_classes=K), shift_wrapper, T)
i3d = ChannelsFirst(inflate_model(video.resnet2d(num_classes=K)))          # I3D's rule and bootstrapping
r21d = ChannelsFirst(r2plus1d(Conv2Plus1d, num_classes=K))
clip1 = TemporalDigits("test", 8, n_frames=T, seed=SEED)[0][0].unsqueeze(0)      # (1, T, 1, 32, 32)
frames1 = clip1[0]                     # (T, 1, 32, 32): TSN and TSM see a clip as a batch of its frames
rows = bench.cost_table({"TSN": (tsn, (frames1,)), "TSM": (tsm, (frames1,)), "I3D": (i3d, (clip1,)),
                         "R(2+1)D": (r21d, (clip1,))}, **BENCH, baseline="TSM")
for r in rows:
    r["params_k"] = r.pop("params") / 1e3
    r["MMACs"] = r.pop("macs") / 1e6
_ = plots.table(rows, title=f"Cost per clip of T = {T} frames (CPU, batch 1); ratios are to TSM")
cost = {r["model"]: r for r in rows}
effcourse.record("tsm_macs_over_tsn", cost["TSM"]["MMACs"] / cost["TSN"]["MMACs"])
effcourse.record("tsm_params_over_tsn", cost["TSM"]["params_k"] / cost["TSN"]["params_k"])
effcourse.record("i3d_macs_ratio", cost["I3D"]["macs_ratio"])
effcourse.record("r21d_macs_ratio", cost["R(2+1)D"]["macs_ratio"])
effcourse.record("i3d_latency_ratio", cost["I3D"]["latency_ratio"])
_ = effcourse.record("r21d_params_over_i3d", cost["R(2+1)D"]["params_k"] / cost["I3D"]["params_k"])

# %% [markdown]
# I3D pays about t = 3 times TSM's MACs — not a paper number but arithmetic: an inflated t×k×k conv
# does t times the 2D conv's multiply-accumulates at every output position, and with time padding
# ⌊t/2⌋ it has as many output positions as the 2D network has over the T frames. Only the layers
# that stay pointwise in time (the 1×1 shortcuts and the final linear layer) are not multiplied, so
# the ratio lands just under 3; the same holds for the conv parameters. R(2+1)D was built to match
# the 3D conv's parameters, so its cost lands next to I3D's, not next to TSM's (a little lower: each
# M is rounded down). The lecture's TSM slides report, measured on an NVIDIA Tesla P100: 164.3 ms per video
# for I3D against 17.4 ms for TSM at batch 1 (a 9× speed-up), and 6.1 against 77.4 videos/s at
# batch 16. That I3D is a published model (41.6 % on Something-V1 on the same slide), not TSM's
# backbone with t = 3 kernels: the lecture also says TSM needs about 6× less computation than the
# (non-local) I3D family, so the gap there is larger than the 3× of two identical backbones.
#
# ## 6. Experiment: does inflation help?
#
# The I3D recipe: train a 2D network on images, inflate it, fine-tune on video (the lecture: 3D CNNs
# have more parameters and are less data-efficient, so initialise them with inflated 2D weights).
# Our "ImageNet" is digit recognition on single frames (10 classes); our video set is only
# **80 TemporalDigits clips** (10 per class) — little video, where a 3D network's extra parameters
# hurt most. We compare starts of the *same* 3D network, trained with the same recipe and the same
# number of steps: inflated the I3D way ("average": repeat and rescale by 1/t, I3D's rule for the
# kernel sizes) and a random (from-scratch) initialisation; full mode (`QUICK = False`) adds the
# "center" variant and averages three training seeds. Test accuracy is measured at the same
# checkpoints for every start; the recorded gap is the mean over the checkpoints of (inflated −
# random).

# %% tags=["experiment"]
video_train = TemporalDigits("train", N_VIDEO, n_frames=T, seed=SEED)
test_set = TemporalDigits("test", N_TEST, n_frames=T, seed=SEED)
image_train = DigitFrames(TemporalDigits("train", N_IMAGE_CLIPS, n_frames=T, seed=SEED + 1))  # the "ImageNet"
image_test = DigitFrames(TemporalDigits("test", N_IMAGE_CLIPS // 2, n_frames=T, seed=SEED + 1), frames_per_clip=1)
print(video_train, test_set, f"digit frames for 2D pre-training: {len(image_train)}", sep="\n")
torch.manual_seed(SEED)
net2d = video.resnet2d(num_classes=10)
t0 = time.perf_counter()
video.train_classifier(net2d, image_train, Loop(steps=PRETRAIN_STEPS, batch_size=64, seed=SEED, device=device,
                                               desc="2D pre-training"))
frame_acc = video.accuracy(net2d, image_test, device=device)
print(f"2D network: digit accuracy on unseen frames {100 * frame_acc:.1f} % ({time.perf_counter() - t0:.1f} s)")
effcourse.record("pretrain_frame_acc", frame_acc)
net2d.fc = nn.Linear(net2d.fc.in_features, K)          # a fresh 8-way head for the video classes
net2d = net2d.cpu()


def start(kind, seed):
    torch.manual_seed(seed)
    if kind == "random":
        return ChannelsFirst(reinit_(inflate_model(net2d)))   # same network, fresh weights
    return ChannelsFirst(inflate_model(net2d, None, kind))   # I3D's kernel sizes; "average" or "center" weights


def acc(model):
    return video.accuracy(model, test_set, device=device)


curves, models = {}, {}
for kind in STARTS:
    runs = []
    for run in range(RUNS):
        model = start(kind, SEED + run)
        t0 = time.perf_counter()
        loop = Loop(steps=STEPS, batch_size=16, seed=SEED + run, device=device, desc=f"{kind} #{run}")
        hist = video.train_classifier(model, video_train, loop, eval_every=EVAL_EVERY, eval_fn=acc)
        runs.append(hist["eval"])
        models.setdefault(kind, model)
        print(f"{kind:>8} init, run {run}: test accuracy along training {[round(100 * a, 1) for a in hist['eval']]} % "
              f"({time.perf_counter() - t0:.1f} s)")
    curves[kind] = (hist.steps("eval"), [sum(r[i] for r in runs) / RUNS for i in range(len(runs[0]))])

plots.curves({f"I3D, {k} init": (s, [100 * a for a in v]) for k, (s, v) in curves.items()},
             "training step", "test accuracy (%)", f"3D ResNet on {N_VIDEO} training clips (mean of {RUNS} run(s))",
             hline=100 / K, hline_label="chance")
plt.show()
mean_acc = {k: sum(v) / len(v) for k, (_, v) in curves.items()}   # the same checkpoints for every start
effcourse.record("inflated_acc_curve", curves["average"][1])
effcourse.record("random_acc_curve", curves["random"][1])
effcourse.record("inflated_acc", curves["average"][1][-1])
effcourse.record("random_acc", curves["random"][1][-1])
effcourse.record("inflation_gap", mean_acc["average"] - mean_acc["random"])
if "center" in curves:
    effcourse.record("center_acc_curve", curves["center"][1])
print("mean test accuracy over the checkpoints:", ", ".join(f"{k} {100 * v:.1f} %" for k, v in mean_acc.items()))
# head start or higher ceiling? Only what this run measured: the gap at the first and the last checkpoint
gap_first = curves["average"][1][0] - curves["random"][1][0]
gap_last = curves["average"][1][-1] - curves["random"][1][-1]
effcourse.record("inflation_gap_first_last", [gap_first, gap_last])
print(f"inflated (average) - random: {100 * gap_first:+.1f} points at step {curves['random'][0][0]}, "
      f"{100 * gap_last:+.1f} points at step {curves['random'][0][-1]}")

# %% [markdown]
# The inflated networks start from features that already find and describe a digit, so from the
# first checkpoints they only have to learn how those features move. From scratch, the network has
# to learn both from 80 clips. The last printed line gives the gap at the first and at the last
# checkpoint of *this* run: it says how much of a head start inflation gave within STEPS steps. It
# does not say whether the scratch network would catch up, or overtake, with more steps — this
# notebook does not train longer, so it cannot tell a head start from a higher ceiling.
# On real data (Kinetics) the I3D paper reports ImageNet-inflated weights better than training
# the same 3D network from scratch. "Average" (I3D's bootstrapping) starts by blurring a moving
# digit over the t frames of every kernel, which is right for a static scene but not for the motion
# we classify here; "center" (full mode) starts as the exact 2D network applied to every frame
# (a TSN with late averaging) and learns the temporal taps.
#
# ## 7. Experiment: SVD decomposition of a trained 3D conv
#
# Take the second conv of the third stage of the trained I3D (inflated with "average") — 64 → 64
# channels, 3×3×3 — and decompose it at increasing ranks. Error is measured on the activations that conv
# actually receives for 16 test clips.

# %% tags=["experiment"]
trained = models["average"].model.cpu().eval()
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
# error fall? Right after inflation the kernel's three time taps were equal (W/3 each), so its
# reshaped matrix repeated one 64-row block three times: rank ≤ 64, and rank 64 was exact; fine-tuning spread energy into
# the other directions, which is why the error keeps falling past 64. A trained 3D kernel is not
# exactly low-rank, so any saving is paid for in accuracy (fine-tuning after decomposing recovers
# part of it).
#
# ## 8. Paper vs. you
#
# The "source" column says where each reference value comes from: the lecture, a paper, or plain
# arithmetic (then it is not a measurement, just what the algebra says must happen).

# %% tags=["experiment"]
_ = plots.table([
    {"claim": "I3D vs TSM latency per video",
     "reference": "164.3 vs 17.4 ms (9×), P100, batch 1, published models",
     "source": "lecture (TSM slides)",
     "you": f"{cost['I3D']['latency_ms']:.1f} vs {cost['TSM']['latency_ms']:.1f} ms "
            f"({cost['I3D']['latency_ratio']:.1f}×, CPU, ResNet-10)"},
    {"claim": "I3D vs TSM throughput", "reference": "6.1 vs 77.4 videos/s, P100, batch 16",
     "source": "lecture (TSM slides)",
     "you": f"{1e3 / cost['I3D']['latency_ms']:.0f} vs {1e3 / cost['TSM']['latency_ms']:.0f} videos/s (batch 1)"},
    {"claim": "TSM / TSN MACs and parameters", "reference": "1 (zero FLOPs, zero parameters)",
     "source": "lecture (TSM slides)",
     "you": f"{cost['TSM']['MMACs'] / cost['TSN']['MMACs']:.2f} and "
            f"{cost['TSM']['params_k'] / cost['TSN']['params_k']:.2f}"},
    {"claim": "I3D / TSM MACs, same backbone", "reference": "t = 3 (just under: 1×1 shortcuts and fc stay pointwise)",
     "source": "arithmetic", "you": f"{cost['I3D']['macs_ratio']:.2f}×"},
    {"claim": "R(2+1)D params / 3D params", "reference": "1 per conv (M chosen to match)",
     "source": "R(2+1)D paper, §3.5",
     "you": f"{cost['R(2+1)D']['params_k'] / cost['I3D']['params_k']:.2f} (whole network)"},
    {"claim": "I3D-inflated (average) vs scratch init", "reference": "inflated better (Kinetics)",
     "source": "lecture; I3D paper",
     "you": f"{100 * curves['average'][1][-1]:.1f} % vs {100 * curves['random'][1][-1]:.1f} % after {STEPS} steps "
            f"(curve means {100 * mean_acc['average']:.1f} vs {100 * mean_acc['random']:.1f} %)"},
    {"claim": "SVD at full rank", "reference": "exact", "source": "arithmetic (linear algebra)",
     "you": f"relative error {full_err:.1e}"},
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
# **Q2 (10 points).** Use your cost table (section 5). (a) Your I3D/TSM MAC ratio R is just under
# 3 because the layers that stay pointwise in time (the 1×1 shortcuts and the final linear layer)
# are not tripled. From your R, compute the fraction p of TSN's MACs in those layers
# (R = 3(1 − p) + p), and how many MMACs your I3D would add if its 1×1 shortcuts were inflated to
# 3×1×1, as some later 3D ResNets do (take the fc's share as negligible; use your TSN MMACs).
# (b) Your R(2+1)D and I3D rows have nearly the same MACs. Give their two latencies and the ratio,
# and say what that ratio tells you about what a layer costs beyond its MACs.

# %% [markdown] nbgrader={"grade": true, "grade_id": "q2_cost", "locked": false, "points": 10, "schema_version": 3, "solution": true, "task": false}
# (Numbers from one QUICK run on a shared 2-core CPU; yours differ.) (a) R = 2.95, so
# p = (3 − R)/2 ≈ 0.025: about 2.5 % of TSN's 31.8 MMACs (0.8 MMACs) sit in the three 1×1 shortcuts
# and the fc. Inflating the shortcuts to 3×1×1 would triple their share, adding about
# 2 × 0.025 × 31.8 ≈ 1.6 MMACs per clip (93.7 → 95.3 MMACs, R ≈ 3.0) — small, because a 1×1 conv
# costs a ninth of a 3×3 one at the same widths (and runs at a quarter of the stage's input
# resolution here). (b) R(2+1)D took 23.5 ms and I3D 29.5 ms: 0.80× the latency for 0.998× the
# MACs. Equal arithmetic does not mean equal time: the factorised network runs twice as many conv
# layers plus a BatchNorm and ReLU between them (more passes over memory and more calls), yet here
# its 1×3×3 and 3×1×1 convs ran faster than the 3×3×3 ones — how well the library implements a
# layer shape on this CPU decides as much as the MACs, and on another machine the ratio can flip.

# %% [markdown]
# **Q3 (5 points).** R(2+1)D has (almost) the same parameters and MACs as the 3D network it replaces.
# What does the factorisation buy, then, and why is an SVD-decomposed conv *not* an R(2+1)D block?

# %% [markdown] nbgrader={"grade": true, "grade_id": "q3_factorise", "locked": false, "points": 5, "schema_version": 3, "solution": true, "task": false}
# It buys expressiveness and easier optimisation, not speed: a ReLU (and BatchNorm) between the
# spatial and temporal convs doubles the number of non-linearities at the same budget, and the
# paper found lower training and test error than the full 3D network. The SVD decomposition has no
# non-linearity in between: it is a linear rewrite of the same kernel (exact at full rank), useful
# for compression when a low rank suffices — it can be cheaper, but it cannot represent more.
