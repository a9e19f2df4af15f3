# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Lab 1 — Temporal Shift Module: 3D-style temporal modelling at 2D cost
#
# **You will build** the temporal shift of TSM (offline, bi-directional), place it in a ResNet (in
# place or on the residual branch, the paper's choice), fuse per-frame predictions with TSN's
# segment consensus, and write the
# uni-directional shift that lets the same network run on a live stream, one frame at a time.
# Then you will measure what the shift buys (accuracy), test the two design choices the paper
# argues for (where to shift, and how many channels), and measure what it costs (MACs, latency).
#
# **Time:** about 90 minutes. **Paper:** Lin, Gan, Han, *TSM: Temporal Shift Module for Efficient
# Video Understanding*, ICCV 2019. TSN: Wang et al., ECCV 2016.
#
# **Intuition.** A 2D CNN applied to each frame sees no time at all: averaging its per-frame scores
# (TSN) treats a clip as a *bag of frames*. A 3D convolution mixes neighbouring frames, at several
# times the cost. TSM gets the mixing for free: before a convolution it moves a few channels one
# frame forward in time and a few one frame back. Each channel then still carries a *single* time
# offset — a channel shifted one way holds frame t+1, one shifted the other way frame t−1, an
# unshifted one frame t — and the convolution that follows mixes these channels, so its output at
# frame t depends on frames t−1, t and t+1. Shift plus convolution acts like a temporal convolution
# of width 3 whose every input channel is read at one time offset only, at zero extra
# multiply-accumulates and zero extra parameters.
#
# The data set is `TemporalDigits`: a digit moving right or left, down or up, rotating one way or the
# other, zooming in or out. Its classes come in **time-reversal pairs**: a "move left" clip is a
# "move right" clip played backwards. A bag of frames cannot tell them apart, so TSN is capped at 50 %.
# Nor can a single frame, *even if you know which frame of the clip it is*: every motion starts at a
# phase drawn uniformly over a full period — the canvas wraps around (what leaves on the right comes
# back on the left), the angle covers the whole circle, and the zoom is endless (copies of the digit an
# octave apart, fading in small and out large, so the picture repeats every octave). Frame t of
# "move right" therefore has exactly the same distribution as frame t of "move left". Only the
# *change* between frames — the motion — tells them apart.

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
import torch.nn.functional as F  # noqa: F401 - for your answers
from torch import nn

import effcourse
from effcourse import bench, plots, video
from effcourse.checks import lab1
from effcourse.data import reverse_partner
from effcourse.data.registry import video_dataset
from effcourse.training import Loop
from effcourse.video.threed import ChannelsFirst
from effcourse.video.train import TensorClips, add_frame_index

# %% tags=["parameters"]
QUICK = False
SEED = 0
DEVICE = "auto"
DATASET = "temporal_digits"   # or a prepared real data set, e.g. "ucf101" (see docs/DATA.md)

# %%
QUICK, device = effcourse.setup(QUICK, SEED, DEVICE)
T = 8                                                            # frames (segments) per clip
STEPS = effcourse.pick(full=500, quick=120, smoke=2)             # training steps of 16 clips, the same for every model
N_TRAIN = effcourse.pick(full=1600, quick=800, smoke=16)
N_TEST = effcourse.pick(full=800, smoke=16)
ABLATION_STEPS = effcourse.pick(full=150, smoke=2)                # section 5: a short budget per run
ABLATION_SEEDS = effcourse.pick(full=(0, 1, 2), smoke=(0,))       # added to SEED; results are averaged
# section 5's grid; QUICK (CI) skips its training, which would not fit the 90 s budget
FOLD_DIVS = effcourse.pick(full=(32, 16, 8, 4, 2), quick=(), smoke=(8,))    # residual: 2/fold_div of channels move
ABLATION_RUNS = ([("residual", fd) for fd in FOLD_DIVS]
                 + [("inplace", fd) for fd in effcourse.pick(full=(8, 2), quick=(), smoke=(8,))])
BENCH = effcourse.pick(full={"repeats": 15, "number": 10}, quick={"repeats": 5, "number": 5},
                       smoke={"repeats": 1, "number": 1})

# %% tags=["experiment"]
train_set = video_dataset(DATASET, "train", n_frames=T, size=32, n_clips=N_TRAIN, seed=SEED)
test_set = video_dataset(DATASET, "test", n_frames=T, size=32, n_clips=N_TEST, seed=SEED)
CLASSES = list(train_set.classes)
IN_CHANNELS = train_set.tensors()[0].shape[2]
print(train_set, test_set, sep="\n")

fig, axes = plt.subplots(4, 1, figsize=(9, 5))
train_labels = train_set.tensors()[1]
for k, ax in enumerate(axes):
    c = 2 * k if DATASET == "temporal_digits" else k % len(CLASSES)
    i = int((train_labels == c).nonzero()[0]) if bool((train_labels == c).any()) else 0
    note = f"  (played backwards: {CLASSES[c + 1]})" if DATASET == "temporal_digits" else ""
    plots.clip_strip(train_set[i][0], ax=ax, title=CLASSES[int(train_labels[i])] + note)
plt.tight_layout()
plt.show()

# %% [markdown]
# ## 1. The temporal shift
#
# Frames of a batch of clips arrive as one tensor `x` of shape `(N·T, C, H, W)`: clip 0's T frames,
# then clip 1's, and so on. View it as `(N, T, C, H, W)`; with `fold = C // fold_div`:
#
# $$
# y_{n,t,c} = \begin{cases}
#   x_{n,\,t+1,\,c} & 0 \le c < \text{fold} \quad\text{(from the future; zero at } t = T-1)\\
#   x_{n,\,t-1,\,c} & \text{fold} \le c < 2\,\text{fold} \quad\text{(from the past; zero at } t = 0)\\
#   x_{n,\,t,\,c}   & \text{otherwise.}
# \end{cases}
# $$
#
# With the default `fold_div = 8`, a quarter of the channels move (1/8 each way). Zeros enter at a
# clip's ends: a value never crosses from one clip into the next. The shift is pure data movement —
# no multiply-adds — and it is linear, so its backward pass is the shift in the opposite direction.
#
# ```
#            t=0   t=1   t=2   t=3              t=0   t=1   t=2   t=3
# c<fold      a0    a1    a2    a3     ->        a1    a2    a3    0      (shifted left in time)
# fold..2fold b0    b1    b2    b3     ->        0     b0    b1    b2     (shifted right)
# rest        r0    r1    r2    r3     ->        r0    r1    r2    r3
# ```
#
# The contract also asks for clear errors on bad input; that part is graded on its own (3 points),
# so an implementation that gets the shift right but lets PyTorch raise its own error on a bad
# shape still earns the 22 points of the shift itself.

# %% nbgrader={"grade": false, "grade_id": "temporal_shift", "locked": false, "schema_version": 3, "solution": true, "task": false}
def temporal_shift(x, n_segment, fold_div=8):
    """Bi-directional temporal shift (TSM, offline).

    Args:
        x: tensor (N*T, C, H, W); frames of one clip are consecutive along dim 0.
        n_segment: T, the number of frames per clip.
        fold_div: 1/fold_div of the channels moves each way; fold = C // fold_div.

    Returns:
        A new tensor of the same shape, dtype and device: channels [0:fold] take frame t+1's
        values, channels [fold:2*fold] take frame t-1's, the rest are unchanged; zeros enter at
        each clip's ends. The input is not modified. Gradients flow through it.

    Raises:
        ValueError: if x is not 4-D, or if N*T is not a multiple of n_segment.
    """
    ### BEGIN SOLUTION
    if x.dim() != 4:
        raise ValueError(f"x must be (N*T, C, H, W), got a tensor of rank {x.dim()}")
    nt, c, h, w = x.shape
    if n_segment < 1 or nt % n_segment:
        raise ValueError(f"N*T = {nt} frames is not a whole number of clips of n_segment = {n_segment}")
    v = x.reshape(nt // n_segment, n_segment, c, h, w)        # (N, T, C, H, W)
    fold = c // fold_div
    out = torch.zeros_like(v)
    out[:, :-1, :fold] = v[:, 1:, :fold]                      # from the future: frame t takes t+1
    out[:, 1:, fold:2 * fold] = v[:, :-1, fold:2 * fold]      # from the past: frame t takes t-1
    out[:, :, 2 * fold:] = v[:, :, 2 * fold:]                 # unchanged
    return out.reshape(nt, c, h, w)                           # (N*T, C, H, W)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_temporal_shift", "locked": true, "points": 22, "schema_version": 3, "solution": false, "task": false}
import time

import torch

from effcourse.checks import lab1
from effcourse.checks.asserts import assert_close, assert_true, call

lab1.check_temporal_shift(temporal_shift)
### BEGIN HIDDEN TESTS
def _ref_shift(x, T, fold_div):
    """A loop over frames: the definition, slowly."""
    n = x.shape[0] // T
    v = x.reshape(n, T, *x.shape[1:])
    fold = x.shape[1] // fold_div
    out = torch.zeros_like(v)
    for t in range(T):
        out[:, t, 2 * fold:] = v[:, t, 2 * fold:]
        if t + 1 < T:
            out[:, t, :fold] = v[:, t + 1, :fold]
        if t >= 1:
            out[:, t, fold:2 * fold] = v[:, t - 1, fold:2 * fold]
    return out.reshape_as(x)


with lab1.seed_in_failures(lab1.clock_seed()) as _seed:
    _g = torch.Generator().manual_seed(_seed)
    for (N, T_, C, H, W, fd) in [(2, 8, 16, 5, 7, 8), (3, 3, 10, 4, 4, 8), (1, 1, 8, 3, 3, 8), (4, 5, 7, 2, 3, 3),
                                 (2, 4, 5, 3, 3, 8), (1, 6, 33, 1, 1, 4), (5, 2, 12, 3, 2, 2), (3, 4, 9, 2, 2, 16)]:
        x = torch.randn(N * T_, C, H, W, generator=_g, dtype=torch.float64)
        x0 = x.clone()
        what = f"temporal_shift(x of shape {tuple(x.shape)}, n_segment={T_}, fold_div={fd})"
        y = call(what, temporal_shift, x, T_, fold_div=fd)
        assert_close(what, y, _ref_shift(x0, T_, fd), atol=0, rtol=0)
        assert_true(torch.equal(x, x0), f"{what} modified its input; return a new tensor")
        assert_true(y.device == x.device, f"{what} changed the device")
    # float32 stays float32, and the default fold_div is 8
    x = torch.randn(2 * 4, 16, 3, 3, generator=_g)
    assert_close("temporal_shift(x, 4) with the default fold_div", call("temporal_shift", temporal_shift, x, 4),
                 _ref_shift(x, 4, 8), atol=0, rtol=0)
    # non-contiguous input (a transposed view)
    base = torch.randn(3 * 4, 16, 5, 6, generator=_g)
    xt = base.transpose(2, 3)
    assert_close("temporal_shift on a non-contiguous (transposed) input",
                 call("temporal_shift on a non-contiguous input", temporal_shift, xt, 4),
                 _ref_shift(xt.contiguous(), 4, 8), atol=0, rtol=0)
    # autograd gives the inverse shift
    x = torch.randn(2 * 5, 16, 2, 2, generator=_g, requires_grad=True)
    gout = torch.randn(2 * 5, 16, 2, 2, generator=_g)
    y = call("temporal_shift on an input that requires grad", temporal_shift, x, 5)
    assert_true(isinstance(y, torch.Tensor) and y.requires_grad,
                "temporal_shift's output must carry gradients back to x (do not detach it)")
    (y * gout).sum().backward()
    xr = x.detach().clone().requires_grad_(True)
    (_ref_shift(xr, 5, 8) * gout).sum().backward()
    assert_close("gradient of temporal_shift (it must be the shift in the opposite direction)", x.grad, xr.grad,
                 atol=0, rtol=0)
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "test_temporal_shift_errors", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
from effcourse.checks import lab1

lab1.check_errors(temporal_shift)

# %% [markdown]
# ## 2. Where to shift: in place or on the residual branch
#
# The shift has to sit somewhere in the network, and the paper argues about where (Lin et al. 2019,
# section 3). In a residual block $y = \operatorname{relu}(x + F(x))$ there are two candidates:
#
# $$
# \text{in-place: } y = \operatorname{relu}\big(s(x) + F(s(x))\big), \qquad
# \text{residual: } y = \operatorname{relu}\big(x + F(s(x))\big),
# $$
#
# with $s$ the temporal shift. In place, the shift hits the identity path too: at frame t a quarter of
# the channels now hold frames t±1, and nothing holds frame t's own values of them — the block's
# output has lost part of the frame's own features, at every block. On the residual branch the
# identity path carries each frame's features unshifted and the shift only *adds* temporal context.
# The paper reports that in-place shift harms spatial feature learning and that residual shift is
# better; the official code calls the two placements `block` (wrap the whole block) and `blockres`
# (wrap the block's first conv), and its released models use `blockres`. (Where a block has a
# downsampling shortcut, "identity path" means that shortcut: in place, it sees the shifted input.)
#
# First a small module that shifts and then calls the layer it wraps (its grade cell runs your
# `temporal_shift` too: it needs it to run, not to be right); then you place it.

# %% nbgrader={"grade": false, "grade_id": "ResidualShift", "locked": false, "schema_version": 3, "solution": true, "task": false}
class ResidualShift(nn.Module):
    """Temporal shift in front of a layer: forward(x) = net(temporal_shift(x, n_segment, fold_div)).

    Args:
        net: the wrapped layer (a Conv2d), registered as a submodule so its parameters train.
        n_segment: T, frames per clip.
        fold_div: as in temporal_shift.

    forward: x (N*T, C, H, W) -> net's output for the shifted x.
    """

    def __init__(self, net, n_segment, fold_div=8):
        super().__init__()
        ### BEGIN SOLUTION
        self.net = net
        self.n_segment = n_segment
        self.fold_div = fold_div
        ### END SOLUTION

    def forward(self, x):
        ### BEGIN SOLUTION
        return self.net(temporal_shift(x, self.n_segment, self.fold_div))
        ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_ResidualShift", "locked": true, "points": 5, "schema_version": 3, "solution": false, "task": false}
import time

import torch
from torch import nn

from effcourse import video
from effcourse.checks import lab1
from effcourse.checks.asserts import assert_close, assert_true, call

lab1.check_residual_shift(ResidualShift, temporal_shift)
### BEGIN HIDDEN TESTS
from effcourse import judge

with lab1.seed_in_failures(lab1.clock_seed()) as _seed:
    _g = torch.Generator().manual_seed(_seed)
    for (cin, cout, T_, N, fd) in [(16, 8, 8, 2, 8), (10, 4, 3, 3, 8), (12, 12, 5, 1, 4), (9, 6, 1, 4, 8), (8, 8, 4, 2, 2)]:
        conv = nn.Conv2d(cin, cout, 3, padding=1)
        yours = judge.twin(conv, "torch.nn.Conv2d", cin, cout, 3, padding=1)     # the same conv, where your code runs
        what = f"ResidualShift(Conv2d({cin}, {cout}), n_segment={T_}, fold_div={fd})"
        m = call(what, ResidualShift, yours, T_, fold_div=fd)
        assert_true(judge.isinstance_of(m, "torch.nn.Module"), f"{what} must be an nn.Module")
        x = torch.randn(N * T_, cin, 5, 5, generator=_g)
        gout = torch.randn(N * T_, cout, 5, 5, generator=_g)
        # the reference uses your temporal_shift (on copies: this cell judges the wrapper, not the shift)
        xr = x.clone().requires_grad_(True)
        ref = conv(call("temporal_shift", temporal_shift, xr.clone(), T_, fd))
        (ref * gout).sum().backward()
        xg = x.clone().requires_grad_(True)
        out = call(what, m, xg.clone())
        assert_close(f"{what}(x)", out, ref.detach(), atol=1e-6)
        (out * gout).sum().backward()
        assert_close(f"{what}: gradient reaching the wrapped conv's weight", judge.get(yours, "weight.grad"),
                     conv.weight.grad, atol=1e-5)
        if xr.grad is not None:
            assert_true(xg.grad is not None, f"{what}: gradients must flow back to the input x (do not detach)")
            assert_close(f"{what}: gradient with respect to x", xg.grad, xr.grad, atol=1e-5)
        n_params = sum(p.numel() for p in call(f"{what}.parameters()", m.parameters))
        assert_true(n_params == sum(p.numel() for p in conv.parameters()),
                    f"{what}: the module's parameters must be exactly the wrapped conv's (store it as a submodule); "
                    f"it has {n_params} parameter values")
    # default fold_div is 8, and the wrapper works inside insert_shift on a real backbone
    conv = nn.Conv2d(16, 16, 3, padding=1)
    yours = judge.twin(conv, "torch.nn.Conv2d", 16, 16, 3, padding=1)
    x = torch.randn(2 * 4, 16, 4, 4, generator=_g)
    with torch.no_grad():
        ref = conv(call("temporal_shift", temporal_shift, x.clone(), 4, 8))
        assert_close("ResidualShift(conv, 4) with the default fold_div",
                     call("ResidualShift(conv, 4)(x)", lambda: ResidualShift(yours, 4)(x.clone())), ref, atol=1e-6)
        bb = call("insert_shift(resnet2d(), ResidualShift, 4)", judge.in_kernel, "effcourse.video.insert_shift",
                  judge.build("effcourse.video.resnet2d"), ResidualShift, 4)
        call("a ResNet with ResidualShift inserted, .eval()", bb.eval)
        out = call("a ResNet with ResidualShift inserted", bb, torch.randn(2 * 4, 1, 32, 32, generator=_g))
    assert_true(tuple(out.shape) == (8, 8),
                f"a shifted backbone must still return (N*T, K) = (8, 8), got {tuple(out.shape)}")
    assert_true(sum(p.numel() for p in bb.parameters()) == sum(p.numel() for p in video.resnet2d().parameters()),
                "the shift must add no parameters")
### END HIDDEN TESTS

# %% [markdown]
# Now the placement. Write `insert_temporal_shift`: it puts a shift wrapper into **every** residual
# block of a torchvision ResNet (its `BasicBlock`s or `Bottleneck`s, in `layer1` … `layer4`), in
# place or on the residual branch. The wrapper is any module factory called as `shift(net,
# n_segment)` that shifts its input and then calls `net` — your `ResidualShift` in section 4, a
# stand-in that blends each frame with the next in the self-check and the hidden tests (so this cell is
# graded on its own, whatever your `temporal_shift` does). The grade is semantic: the blocks must
# compute the two formulas above, on several ResNets, with both kinds of block.

# %% nbgrader={"grade": false, "grade_id": "insert_temporal_shift", "locked": false, "schema_version": 3, "solution": true, "task": false}
def insert_temporal_shift(model, shift, n_segment, place="residual"):
    """Insert a temporal shift into every residual block of a torchvision ResNet (TSM).

    Args:
        model: a torchvision ResNet: residual blocks (torchvision BasicBlock or Bottleneck) in
            model.layer1 .. model.layer4. It is modified in place.
        shift: a factory called as shift(net, n_segment) that returns an nn.Module computing
            net(s(x)) for some shift s of x (N*T, C, H, W); e.g. ResidualShift.
        n_segment: T, frames per clip, passed to shift.
        place: "residual" (default, the paper's choice): every block computes
            relu(x + F(s(x))), the shift on the residual branch only, the identity (or
            downsampling shortcut) path unshifted; "inplace": every block computes block(s(x)),
            the shift on the block's input, so the identity path is shifted too.

    Returns:
        model. Parameters are the model's own (a shift adds none).

    Raises:
        ValueError: if place is neither "residual" nor "inplace".
    """
    ### BEGIN SOLUTION
    if place not in ("residual", "inplace"):
        raise ValueError(f"place must be 'residual' or 'inplace', got {place!r}")
    for stage in (model.layer1, model.layer2, model.layer3, model.layer4):
        for i, block in enumerate(stage):
            if place == "residual":
                block.conv1 = shift(block.conv1, n_segment)          # F(s(x)); the identity path keeps x
            else:
                stage[i] = shift(block, n_segment)                   # block(s(x)): the identity is shifted too
    return model
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_insert_temporal_shift", "locked": true, "points": 15, "schema_version": 3, "solution": false, "task": false}
import time

import torch
from torch import nn

from effcourse.checks import lab1
from effcourse.checks.asserts import assert_close, assert_raises, assert_true, call

lab1.check_insert_temporal_shift(insert_temporal_shift)
### BEGIN HIDDEN TESTS
import copy

from effcourse import judge


def _ref_insert(model, n_segment, place):
    """The two placements, by the formulas: wrap conv1 (residual) or the whole block (inplace)."""
    for stage in (model.layer1, model.layer2, model.layer3, model.layer4):
        for i, block in enumerate(stage):
            if place == "residual":
                block.conv1 = lab1.FrameBlend(block.conv1, n_segment)
            else:
                stage[i] = lab1.FrameBlend(block, n_segment)
    return model


with lab1.seed_in_failures(lab1.clock_seed()) as _seed:
    _g = torch.Generator().manual_seed(_seed)
    _cases = [  # toy_resnet's arguments, T, N, H
        (dict(block="basic", widths=(8, 8, 16, 16), layers=(1, 1, 1, 1)), 4, 2, 16),
        (dict(block="basic", widths=(4, 8, 8, 12), layers=(2, 1, 3, 1), in_channels=2), 3, 3, 13),
        (dict(block="bottleneck", widths=(4, 4, 8, 8), layers=(1, 2, 1, 1), num_classes=3), 5, 2, 11),
        (dict(block="basic", widths=(8, 8, 8, 8), layers=(1, 1, 1, 1)), 1, 4, 9),
    ]
    for i, (kw, T_, N, H) in enumerate(_cases):
        for place in ("residual", "inplace"):
            what = f"insert_temporal_shift(toy ResNet {kw}, shift, n_segment={T_}, place={place!r})"
            ref = _ref_insert(lab1.toy_resnet(_seed + i, **kw), T_, place).eval()
            mine = judge.build("effcourse.video.models.toy_resnet", _seed + i, **kw)     # where your code runs
            n_params = sum(p.numel() for p in lab1.toy_resnet(_seed + i, **kw).parameters())
            out = call(what, insert_temporal_shift, mine, judge.build("effcourse.video.surgery.frame_blend"),
                       T_, place=place)
            assert_true(judge.isinstance_of(out, "torch.nn.Module"), f"{what} must return the model")
            call(f"{what}.eval()", out.eval)
            x = torch.randn(N * T_, kw.get("in_channels", 1), H, H, generator=_g)
            with torch.no_grad():
                expected = ref(x)
                got = call(f"the model after {what}", out, x)
            assert_close(f"{what}: logits vs the blocks computing "
                         + ("relu(x + F(s(x)))" if place == "residual" else "block(s(x))") + "",
                         got, expected, atol=1e-4 * max(1.0, expected.abs().max().item()), rtol=1e-4)
            got_params = sum(p.numel() for p in call(f"{what}.parameters()", out.parameters))
            assert_true(got_params == n_params, f"{what}: the model must keep its {n_params} parameter values, "
                                                f"got {got_params}")
    # the default place is "residual"; an unknown place is a ValueError
    mine = judge.build("effcourse.video.models.toy_resnet", _seed)
    out = call("insert_temporal_shift(model, shift, 4)", insert_temporal_shift, mine,
               judge.build("effcourse.video.surgery.frame_blend"), 4)
    call("insert_temporal_shift(model, shift, 4).eval()", out.eval)
    x = torch.randn(8, 1, 12, 12, generator=_g)
    with torch.no_grad():
        assert_close("insert_temporal_shift(model, shift, 4) must default to place='residual'",
                     call("the model after insert_temporal_shift(model, shift, 4)", out, x),
                     _ref_insert(lab1.toy_resnet(_seed), 4, "residual").eval()(x), atol=1e-4, rtol=1e-4)
    for _bad in ("in-place", "Residual", "block"):
        assert_raises(f"insert_temporal_shift(model, shift, 4, place={_bad!r})",
                      lambda _bad=_bad: insert_temporal_shift(judge.build("effcourse.video.models.toy_resnet", _seed),
                                                              judge.build("effcourse.video.surgery.frame_blend"), 4,
                                                              place=_bad), ValueError)
### END HIDDEN TESTS

# %% [markdown]
# ## 3. Segment consensus
#
# TSN (and TSM) score every frame with the same 2D network and average the scores over a clip's T
# segments: for clip $n$, $\; s_n = \frac{1}{T}\sum_{t=0}^{T-1} f(x_{n,t})$.
# Averaging is order-free: a TSN model gives *exactly* the same output for a clip played backwards.

# %% nbgrader={"grade": false, "grade_id": "segment_consensus", "locked": false, "schema_version": 3, "solution": true, "task": false}
def segment_consensus(logits, n_segment):
    """Average per-frame logits over each clip's segments.

    Args:
        logits: (N*T, K), frames of one clip consecutive.
        n_segment: T.
    Returns:
        (N, K): row n is the mean of rows n*T .. n*T+T-1.
    """
    ### BEGIN SOLUTION
    nt, k = logits.shape
    if nt % n_segment:
        raise ValueError(f"{nt} frame logits are not a whole number of clips of {n_segment}")
    return logits.reshape(nt // n_segment, n_segment, k).mean(dim=1)      # (N, T, K) -> (N, K)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_segment_consensus", "locked": true, "points": 5, "schema_version": 3, "solution": false, "task": false}
import time

import torch

from effcourse.checks import lab1
from effcourse.checks.asserts import assert_close, assert_true, call

lab1.check_segment_consensus(segment_consensus)
### BEGIN HIDDEN TESTS
with lab1.seed_in_failures(lab1.clock_seed()) as _seed:
    _g = torch.Generator().manual_seed(_seed)
    for (N, T_, K, dtype) in [(3, 8, 8, torch.float64), (1, 1, 5, torch.float64), (4, 3, 11, torch.float32),
                              (2, 5, 1, torch.float64), (5, 2, 3, torch.float64)]:
        lg = torch.randn(N * T_, K, generator=_g, dtype=dtype).requires_grad_(True)
        lg0 = lg.detach().clone()
        what = f"segment_consensus(logits of shape {(N * T_, K)}, n_segment={T_})"
        out = call(what, segment_consensus, lg, T_)
        ref = torch.stack([lg0[n * T_:(n + 1) * T_].mean(0) for n in range(N)])
        assert_close(what, out, ref, atol=1e-6 if dtype == torch.float32 else 1e-12)
        assert_true(torch.equal(lg.detach(), lg0), f"{what} modified its input")
        assert_true(out.requires_grad, f"{what}: the result must carry gradients (do not detach it)")
        out.sum().backward()
        assert_close(f"gradient of {what} (1/T for every frame)", lg.grad, torch.full_like(lg0, 1.0 / T_),
                     atol=1e-6 if dtype == torch.float32 else 1e-12)
### END HIDDEN TESTS

# %% [markdown]
# ## 4. Experiment: TSN vs. TSM on TemporalDigits
#
# Same backbone (a narrow ResNet-10, widths 16→128), same data, same number of steps. The only
# difference is the shift inside the residual blocks (your `ResidualShift`, placed by your
# `insert_temporal_shift` on the residual branch). Watch the test accuracy.

# %% tags=["experiment"]
def build(shift_wrapper=None, place="residual", in_channels=None, seed=SEED):
    """A TSN (no wrapper) or TSM clip classifier on the narrow ResNet-10; the same seed, the same weights."""
    torch.manual_seed(seed)
    backbone = video.resnet2d(num_classes=len(CLASSES), in_channels=in_channels or IN_CHANNELS)
    if shift_wrapper is not None:
        insert_temporal_shift(backbone, shift_wrapper, T, place=place)        # your placement
    return video.ClipClassifier(backbone, T, segment_consensus).to(device)


def acc(model, dataset=None):
    return video.accuracy(model, dataset if dataset is not None else test_set, device=device)


def train(model, desc, steps=STEPS, dataset=None, eval_set=None, seed=SEED, evals=6):
    """Train for `steps` steps of 16 clips; returns the test-accuracy curve (steps, %) with `evals` points."""
    loop = Loop(steps=steps, batch_size=16, seed=seed, device=device, desc=desc)
    hist = video.train_classifier(model, dataset if dataset is not None else train_set, loop,
                                  eval_every=max(steps // evals, 1), eval_fn=lambda m: acc(m, eval_set))
    return hist.steps("eval"), [100 * a for a in hist["eval"]]


results, curves = {}, {}
for name, wrapper in [("TSN", None), ("TSM", ResidualShift)]:
    t0 = time.perf_counter()
    results[name] = build(wrapper)
    curves[name] = train(results[name], name)
    print(f"{name}: test accuracy {curves[name][1][-1]:.1f} %  ({time.perf_counter() - t0:.1f} s)")

tsn_acc, tsm_acc = curves["TSN"][1][-1] / 100, curves["TSM"][1][-1] / 100
effcourse.record("tsn_acc", tsn_acc)
effcourse.record("tsm_acc", tsm_acc)
plots.curves(curves, "training step", "test accuracy (%)", "TSN vs TSM", hline=50, hline_label="order-free ceiling")
plt.show()

# %% [markdown]
# **Play it backwards.** Reverse every test clip in time. TSN must give the same prediction (its
# average cannot see order); TSM should now predict the *partner* class (left ↔ right, ...).

# %% tags=["experiment"]
clips, labels = test_set.tensors()
if DATASET == "temporal_digits":            # real data sets have no time-reversal pairs
    rev = clips.flip(1)
    with torch.no_grad():
        pred = {k: (m(clips.to(device)).argmax(1).cpu(), m(rev.to(device)).argmax(1).cpu())
                for k, m in results.items()}
    partner = torch.tensor([reverse_partner(int(y)) for y in labels])
    tsn_same = (pred["TSN"][0] == pred["TSN"][1]).float().mean().item()
    tsm_partner = (pred["TSM"][1] == partner).float().mean().item()
    effcourse.record("tsn_reverse_same_prediction", tsn_same)
    effcourse.record("tsm_reverse_to_partner", tsm_partner)
    print(f"TSN predicts the same class for {100 * tsn_same:.1f} % of reversed clips")
    print(f"TSM predicts the partner class for {100 * tsm_partner:.1f} % of reversed clips")

# %% [markdown]
# **A control: can one frame, and knowing which frame it is, give the answer away?** TSN is blind to
# order, but it is also blind to *where in the clip* a frame sits. If the first frame of "move right"
# looked different from the first frame of "move left" (a digit that starts on the left is more
# likely moving right...), a model told each frame's index could win without seeing any motion — and
# so could TSM, whose zero padding marks a clip's first and last frames. Here is that model: TSN with
# one more input channel holding the frame's index t/(T−1), trained exactly like TSN. On this data set
# frame t of a class and frame t of its partner have the same distribution, so it should stay near
# 50 %. It does learn *which kind* of motion it sees (its accuracy at naming the pair — translation
# along x, along y, rotation or zoom — is high); what it cannot learn is the direction.
#
# (Strictly, knowing the index makes TSN a little more than a bag of frames: it could weight early
# and late frames differently — say, add "position" at late frames and subtract it at early ones —
# a crude late temporal fusion. On a wrap-around canvas such a position readout can only work for
# clips that do not cross the edge (and likewise for the angle and the zoom octave); the run below
# shows it gains little.)

# %% tags=["experiment"]
train_indexed = TensorClips(add_frame_index(train_set.tensors()[0]), train_set.tensors()[1])
test_indexed = TensorClips(add_frame_index(test_set.tensors()[0]), test_set.tensors()[1])
results["TSN + frame index"] = build(in_channels=IN_CHANNELS + 1)
curves["TSN + frame index"] = train(results["TSN + frame index"], "TSN + frame index", dataset=train_indexed,
                                   eval_set=test_indexed, evals=1)          # only the final accuracy is used
index_acc = curves["TSN + frame index"][1][-1] / 100
effcourse.record("index_bag_acc", index_acc)
if DATASET == "temporal_digits":
    preds = {"TSN (bag of frames)": pred["TSN"][0], "TSN + frame index":
             video.predict(results["TSN + frame index"], test_indexed, device=device).argmax(1), "TSM": pred["TSM"][0]}
    control = [{"model": k, "accuracy %": 100 * (p == labels).float().mean().item(),
                "right pair (kind of motion) %": 100 * (p // 2 == labels // 2).float().mean().item()}
               for k, p in preds.items()]
    plots.table(control, floatfmt=".1f", title="Does a frame and its index give the class away?")

# %% [markdown]
# ## 5. The paper's two design choices, tested
#
# The paper argues for two choices you have been using all along (Lin et al., 2019, section 3; the
# official release's models are named `shift8_blockres`: fold_div 8, residual placement):
#
# * **where**: a *residual* shift (`place="residual"`) beats an *in-place* shift (`place="inplace"`),
#   because in-place shifting removes part of every frame's own features, which hurts spatial
#   modelling;
# * **how much**: shifting **1/4** of the channels (`fold_div = 8`, 1/8 each way) was best — too few
#   shifted channels carry too little temporal information, too many leave too few channels for
#   spatial modelling (and move more memory).
#
# **Placement, measured on what a 2D network already knows.** TSM starts from a trained 2D network
# (ImageNet weights in the paper) and inserts shifts into it. Your TSN from section 4 is such a
# network: from single frames it learned the *kind* of motion (which pair), almost perfectly. Insert
# your shift into copies of it, without any training, in place and on the residual branch, and
# measure how much of that single-frame knowledge survives (the pair accuracy; the full accuracy
# stays near 50 %, since TSN never learned direction). Shifting part of the channels in place
# replaces, at every block, some of each frame's own features by its neighbours'; on the residual
# branch the identity path still carries them. Both placements are tried at fold_div 8 and with
# *every* channel shifted (fold_div 2), where an in-place shift leaves no channel of frame t on
# the main path. This costs a few evaluations and runs in QUICK too.

# %% tags=["experiment"]
def pair_accuracy(model):
    """How often the model names the right pair of classes (the kind of motion), ignoring direction.
    (On a real data set, which has no time-reversal pairs, this is plain accuracy.)"""
    pred = video.predict(model, test_set, device=device).argmax(1).cpu()
    if DATASET != "temporal_digits":
        return (pred == labels).float().mean().item()
    return (pred // 2 == labels // 2).float().mean().item()


placed = {"none": pair_accuracy(results["TSN"])}
for place in ("residual", "inplace"):
    for fd in (8, 2):
        backbone = copy.deepcopy(results["TSN"].backbone)
        insert_temporal_shift(backbone, lambda net, n, fd=fd: ResidualShift(net, n, fold_div=fd), T, place=place)
        placed[f"{place}_{fd}"] = pair_accuracy(video.ClipClassifier(backbone, T, segment_consensus).to(device))
effcourse.record("inserted_into_tsn_pair_acc", placed)
plots.table([{"shift inserted into the trained TSN": k.replace("_", ", fold_div "), "pair accuracy %": 100 * v}
             for k, v in placed.items()], floatfmt=".1f", title="What survives of the 2D network's features")
print(f"residual minus in-place: {100 * (placed['residual_8'] - placed['inplace_8']):+.1f} points at fold_div 8, "
      f"{100 * (placed['residual_2'] - placed['inplace_2']):+.1f} points at fold_div 2")

# %% [markdown]
# **Placement and proportion, trained.** The paper's comparison trains each variant. Trained long
# enough, most variants end near 100 % on this data set, so each is trained for a **short budget**
# (`ABLATION_STEPS`, less than a third of section 4's) on a few seeds; this trains 21 small models
# and runs in the full run only (QUICK skips it).

# %% tags=["experiment"]
ablation = {}                                             # (place, fold_div) -> final test accuracy (%) per seed
for seed in ABLATION_SEEDS:
    for place, fd in ABLATION_RUNS:
        model = build(lambda net, n, fd=fd: ResidualShift(net, n, fold_div=fd), place=place, seed=SEED + seed)
        _, curve = train(model, f"{place}, fold_div {fd}, seed {SEED + seed}", steps=ABLATION_STEPS, seed=SEED + seed,
                         evals=1)
        ablation.setdefault((place, fd), []).append(curve[-1])

if ablation:
    rows = []
    for (place, fd), runs in ablation.items():
        final = torch.tensor(runs)
        rows.append({"placement": place, "fold_div": fd, "shifted": "all" if fd <= 2 else f"1/{fd // 2}",
                     f"accuracy % after {ABLATION_STEPS} steps": final.mean().item(),
                     "min–max over seeds": f"{final.min().item():.1f}–{final.max().item():.1f}"})
    plots.table(rows, floatfmt=".1f", title=f"Shift placement and proportion ({len(ABLATION_SEEDS)} seed(s))")
    mean_acc = {key: sum(runs) / len(runs) for key, runs in ablation.items()}
    effcourse.record("ablation_acc", {f"{place}_{fd}": a / 100 for (place, fd), a in mean_acc.items()})
    res = sorted((fd, a) for (place, fd), a in mean_acc.items() if place == "residual")
    inp = sorted((fd, a) for (place, fd), a in mean_acc.items() if place == "inplace")
    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    ax.plot([2 / fd for fd, _ in res], [a for _, a in res], marker="o", label="residual shift")
    ax.plot([2 / fd for fd, _ in inp], [a for _, a in inp], "s", label="in-place shift")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("fraction of channels shifted (2 / fold_div)")
    ax.set_ylabel(f"test accuracy (%) after {ABLATION_STEPS} steps")
    ax.axhline(50, color="gray", ls=":", lw=1)
    ax.legend()
    plt.show()
else:
    print("QUICK run: the trained comparison is skipped (run the notebook with QUICK = False).")

# %% [markdown]
# **Reading your numbers.** The first table is this run's measurement of the paper's mechanism: how
# much of a trained 2D network's per-frame knowledge each placement keeps. The second (full run)
# is the paper's experiment in miniature; compare its in-place and residual rows against the
# min–max spread over seeds before calling a difference real. Two things about the miniature limit
# what it can show. A TemporalDigits class is decided by motion alone, so losing part of each
# frame's own features costs little once the network is trained; on Kinetics much of a class *is*
# in single frames (TSN, which sees no motion at all, scores 70.7 % there: the lecture's Table 5),
# and that is where the paper measured the in-place shift's loss. And this narrow network has 16
# channels in its first stage, so fold_div 32 shifts nothing there (fold = 0) and one channel each
# way in the second stage: the low end of the proportion curve is a network that barely shifts.

# %% [markdown]
# ## 6. Online TSM: shift from the past only
#
# For a live stream the future frame does not exist yet. Online TSM shifts **only from the past**:
# at frame $t$, channels `[0:fold]` are replaced by frame $t-1$'s channels `[0:fold]` (zeros at the
# first frame). Frame by frame this needs a tiny cache per shifted layer: keep the first `fold`
# channels of the current frame, hand them to the next frame. Latency per frame is one 2D pass;
# the memory cost is `fold/C` of one activation map per layer.
#
# ```
# frame t-1 ──▶ [first fold channels] ──cache──▶ frame t: [cache | own channels fold..C]
# ```

# %% nbgrader={"grade": false, "grade_id": "online_shift", "locked": false, "schema_version": 3, "solution": true, "task": false}
def online_shift(x_t, cache, fold_div=8):
    """Uni-directional shift for streaming, one frame at a time.

    Args:
        x_t: the current frame's features (N, C, H, W).
        cache: the previous frame's channels [0:fold], shape (N, fold, H, W); None at the first frame.
        fold_div: fold = C // fold_div.
    Returns:
        (shifted, new_cache): shifted is a new (N, C, H, W) tensor equal to x_t except channels
        [0:fold], which hold cache (zeros when cache is None); new_cache = x_t[:, :fold].
        x_t is not modified. Online TSM runs at inference (the paper trains offline, then
        streams), so whether gradients flow through the cache is up to you: a detached new_cache
        is as correct as one that keeps the graph.
    """
    ### BEGIN SOLUTION
    fold = x_t.shape[1] // fold_div
    shifted = x_t.clone()
    shifted[:, :fold] = 0 if cache is None else cache        # the past frame's channels (zeros at the start)
    return shifted, x_t[:, :fold].clone()                     # keep this frame's channels for the next one
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_online_shift", "locked": true, "points": 25, "schema_version": 3, "solution": false, "task": false}
import time

import torch

from effcourse import video
from effcourse.checks import lab1
from effcourse.checks.asserts import CheckFailed, assert_close, assert_true, call

lab1.check_online_shift(online_shift)
### BEGIN HIDDEN TESTS
def _ref_past(x, T, fold_div):
    """The offline past-only shift of a whole clip: (N*T, C, H, W) -> (N, T, C, H, W)."""
    n = x.shape[0] // T
    v = x.reshape(n, T, *x.shape[1:])
    fold = x.shape[1] // fold_div
    out = v.clone()
    out[:, :, :fold] = 0
    out[:, 1:, :fold] = v[:, :-1, :fold]
    return out


with lab1.seed_in_failures(lab1.clock_seed()) as _seed:
    _g = torch.Generator().manual_seed(_seed)
    for (N, T_, C, H, W, fd) in [(2, 8, 16, 5, 7, 8), (3, 3, 10, 4, 4, 8), (1, 1, 8, 3, 3, 8), (4, 5, 7, 2, 3, 3),
                                 (2, 4, 5, 3, 3, 8), (1, 6, 33, 1, 1, 4), (3, 3, 6, 2, 2, 2)]:
        x = torch.randn(N * T_, C, H, W, generator=_g, dtype=torch.float64)
        ref = _ref_past(x, T_, fd)
        v = x.reshape(N, T_, C, H, W)
        fold = C // fd
        cache = None
        for t in range(T_):
            frame = v[:, t].clone()
            what = f"online_shift(frame t={t} of shape {tuple(frame.shape)}, cache, fold_div={fd})"
            out = call(what, online_shift, frame, cache, fold_div=fd)
            if not (isinstance(out, tuple) and len(out) == 2):
                raise CheckFailed(f"{what} must return a pair (shifted, new_cache)")
            shifted, cache = out
            assert_close(f"{what}: shifted", shifted, ref[:, t], atol=0, rtol=0)
            assert_true(torch.equal(frame, v[:, t]), f"{what} modified its input frame")
            assert_close(f"{what}: new_cache (this frame's channels [0:{fold}])", cache, v[:, t, :fold],
                         atol=0, rtol=0)
    # default fold_div, and a streaming network equals its clip-at-once twin
    x = torch.randn(3, 16, 2, 2, generator=_g)
    s, c = call("online_shift(x, None)", online_shift, x, None)
    assert_close("online_shift with the default fold_div, first frame", s,
                 torch.cat([torch.zeros(3, 2, 2, 2), x[:, 2:]], 1), atol=0)
    torch.manual_seed(_seed % 1000)
    bb = video.insert_shift(video.resnet2d(), video.online_wrapper(online_shift), 4).eval()
    clip_in = torch.randn(2, 4, 1, 32, 32, generator=_g)
    with torch.no_grad():
        offline = call("a ResNet with online shifts, clip at once", bb, clip_in.reshape(8, 1, 32, 32)).reshape(2, 4, -1)
    assert_close("streaming network vs clip-at-once network", call("video.stream", video.stream, bb, clip_in),
                 offline, atol=1e-5)
### END HIDDEN TESTS

# %% [markdown]
# Train an online TSM (the same backbone, past-only shifts) and run it as a stream: one frame per
# call, caches carried between calls. Its per-frame outputs must equal the clip-at-once outputs of
# the same network — streaming is an *exact* re-ordering of the same computation.

# %% tags=["experiment"]
online = build(video.online_wrapper(online_shift))
curves["online TSM"] = train(online, "online TSM", evals=1)          # only the final accuracy is used
online_acc = curves["online TSM"][1][-1] / 100
effcourse.record("online_tsm_acc", online_acc)

with torch.no_grad():
    x = clips.to(device)
    streamed = video.stream(online.backbone, x)                        # (N, T, K), frame by frame
    at_once = online.frame_logits(x).reshape(len(x), T, -1)            # the same network, all frames at once
stream_err = (streamed - at_once).abs().max().item()
effcourse.record("stream_max_err", stream_err)
lab1.check_streaming_matches_offline(stream_err)

# early recognition: predict after seeing frames 0..t (average of the per-frame logits so far)
seen = torch.arange(1, T + 1)
with torch.no_grad():
    tsn_frames = results["TSN"].frame_logits(x).reshape(len(x), T, -1)    # (N, T, K)
early = {name: [100 * (lg[:, :t].mean(1).argmax(1).cpu() == labels).float().mean().item() for t in seen]
         for name, lg in [("online TSM", streamed), ("TSN", tsn_frames)]}
effcourse.record("early_recognition_online_tsm", early["online TSM"])
plots.curves({k: (seen.tolist(), v) for k, v in early.items()}, "frames seen", "test accuracy (%)",
             "Early recognition on a stream", hline=50, hline_label="order-free ceiling")
plt.show()
print(f"online TSM after 1 frame: {early['online TSM'][0]:.1f} %, after 2: {early['online TSM'][1]:.1f} %, "
      f"after {T}: {early['online TSM'][-1]:.1f} %")

# %% [markdown]
# **Read the curve with care.** After its *first* frame online TSM cannot beat 50 % here (up to
# sampling noise): one frame may show which *kind* of motion it is (the nested copies of a zoom
# or a tilted digit give it away; a digit far off-centre along x is a horizontal mover), but never its
# direction, because frame 0 of a class has the same distribution as frame 0 of its partner. The
# zeros that fill the empty cache do tell the network "this is frame 0"; that buys nothing on this
# data set. (In an earlier version of it, every "move right" clip started on the left half of the
# picture; one frame plus the knowledge that it was the first frame was enough to guess the direction,
# and this curve started far above 50 %. Real data sets have such shortcuts too; a careful evaluation
# looks for them.) From the second frame on the network sees motion — the cache carries frame 0's
# features into frame 1 — and the curve climbs; every further frame adds evidence to the average.

# %% [markdown]
# ## 7. What does it cost?
#
# One clip of T = 8 frames at 32×32, batch 1, CPU, one thread. MACs come from
# `torch.utils.flop_counter`; latencies are medians of interleaved repeats measured in this one
# run, so their *ratios* are meaningful even on a busy machine. "I3D" is the 3D twin of the same
# ResNet (every 3×3 conv becomes 3×3×3), the shape that inflation (Lab 2) produces.

# %% tags=["experiment"]
cpu = torch.device("cpu")
tsn_m = build(None).to(cpu).eval()
tsm_m = build(ResidualShift).to(cpu).eval()
i3d_m = ChannelsFirst(video.resnet3d(num_classes=len(CLASSES), in_channels=IN_CHANNELS)).eval()
clip1 = test_set[0][0].unsqueeze(0)                       # (1, T, C, 32, 32)
streamer = video.FrameStreamer(build(video.online_wrapper(online_shift)).backbone.to(cpu))
frame1 = clip1[:, 0]                                      # (1, C, 32, 32)

rows = bench.cost_table({
    "TSN (8 frames)": (tsn_m, (clip1,)),
    "TSM offline (8 frames)": (tsm_m, (clip1,)),
    "I3D 3D ResNet (8 frames)": (i3d_m, (clip1,)),
    "TSN per frame": (tsn_m.backbone, (frame1,)),
    "online TSM per frame": (streamer.backbone, (frame1,)),
}, baseline="TSN (8 frames)", **BENCH)
streamer.close()
for r in rows:
    r["MMACs"] = r.pop("macs") / 1e6
plots.table(rows, title="Cost per clip / per frame (CPU, batch 1)")
by = {r["model"]: r for r in rows}
effcourse.record("tsn_macs", by["TSN (8 frames)"]["MMACs"] * 1e6)
effcourse.record("tsm_macs", by["TSM offline (8 frames)"]["MMACs"] * 1e6)
effcourse.record("i3d_macs_ratio", by["I3D 3D ResNet (8 frames)"]["macs_ratio"])
overhead = by["TSM offline (8 frames)"]["latency_ms"] / by["TSN (8 frames)"]["latency_ms"] - 1
online_overhead = by["online TSM per frame"]["latency_ms"] / by["TSN per frame"]["latency_ms"] - 1
effcourse.record("tsm_latency_overhead", overhead)
effcourse.record("online_latency_overhead", online_overhead)
print(f"TSM latency overhead over TSN: {100 * overhead:+.1f} %   online per frame: {100 * online_overhead:+.1f} %")

# %% [markdown]
# ## 8. Paper vs. you
#
# The paper's numbers come from ResNet-50 backbones on 224×224 video; yours from a ResNet-10 on
# 32×32 digits. Compare directions and ratios, not values. Two rows need care. The paper's *I3D*
# (in the lecture's latency slide and its FLOPs comparison) is not TSM's backbone inflated: it is the
# 3D ResNet-50 of the non-local networks line of work, fed 32-frame clips (the official TSM README
# compares against it as "I3D-ResNet50, 32 × 10 clips"), while TSM sees 8 frames — so the 9× latency
# gap mixes the cost of 3D convolutions with the cost of four times more input. Your I3D is the same ResNet-10 with 3×3×3
# convolutions on the same 8 frames, so your MAC ratio is close to t = 3 (the kernel's time extent),
# by arithmetic.

# %% tags=["experiment"]
ab = {k: sum(v) / len(v) for k, v in ablation.items()}
fractions = ", ".join(("all" if fd <= 2 else f"1/{fd // 2}") + f": {ab[('residual', fd)]:.1f} %"
                      for fd in sorted((fd for (p, fd) in ab if p == "residual"), reverse=True))
placement = "; ".join(f"fold_div {fd}: {ab[('residual', fd)]:.1f} vs {ab[('inplace', fd)]:.1f} %"
                      for fd in sorted({fd for (_, fd) in ab}, reverse=True)
                      if ("residual", fd) in ab and ("inplace", fd) in ab)
plots.table([
    {"claim": "TSN vs TSM accuracy", "paper": "20.4 % vs 45.5 % (Something-V1)",
     "you": f"{100 * tsn_acc:.1f} % vs {100 * tsm_acc:.1f} % ({DATASET})"},
    {"claim": "residual vs in-place shift", "paper": "residual better (in-place harms spatial features)",
     "you": f"inserted into your TSN, pair accuracy: {100 * placed['residual_8']:.1f} vs "
            f"{100 * placed['inplace_8']:.1f} % (fold_div 8), {100 * placed['residual_2']:.1f} vs "
            f"{100 * placed['inplace_2']:.1f} % (all shifted)"
            + (f"; trained: {placement} (after {ABLATION_STEPS} steps)" if placement else "")},
    {"claim": "fraction of channels shifted", "paper": "1/4 best (fold_div 8)",
     "you": fractions + f" (after {ABLATION_STEPS} steps)" if fractions else "not run (QUICK)"},
    {"claim": "extra FLOPs of the shift", "paper": "0",
     "you": f"{by['TSM offline (8 frames)']['MMACs'] - by['TSN (8 frames)']['MMACs']:.0f} MMACs"},
    {"claim": "online TSM vs TSN latency per frame", "paper": "9.1 vs 8.5 ms (+7 %)",
     "you": f"{by['online TSM per frame']['latency_ms']:.2f} vs {by['TSN per frame']['latency_ms']:.2f} ms "
            f"({100 * online_overhead:+.0f} %)"},
    {"claim": "TSM vs I3D latency per video", "paper": "17.4 vs 164.3 ms (P100; I3D on 32 frames)",
     "you": f"{by['TSM offline (8 frames)']['latency_ms']:.2f} vs "
            f"{by['I3D 3D ResNet (8 frames)']['latency_ms']:.2f} ms (CPU; both on 8 frames)"},
    {"claim": "TSM's computation vs the I3D family", "paper": "6× less (non-local I3D family, Something-V1)",
     "you": f"{by['I3D 3D ResNet (8 frames)']['macs_ratio']:.2f}× less than the same ResNet-10 made 3D"},
], title="Paper vs. you")

# %% [markdown]
# Sources of the paper column: the lecture's TSM slides (Something-V1 accuracies and the online
# latencies are the paper's Table 5; the P100 latencies at batch 1; "6× less computation than the
# Non-local I3D family" on Something-Something) and the paper's section 3 (placement and proportion).
#
# The shift adds no MACs, but it is not free in wall-clock time: it moves memory. With convolutions
# this small the copy is a visible fraction of the work; on a ResNet-50 at 224×224 the convolutions
# dominate and the overhead shrinks to a few percent.
#
# ## 9. Questions
#
# **Q1 (13 points).** Use your section 5 table (and, if you ran the full notebook, the trained
# comparison). (a) Give the pair accuracy of your TSN and of its copies with the shift inserted in
# place and on the residual branch, at fold_div 8 and fold_div 2. (b) Explain, with the two block
# formulas of section 2, why the in-place copies lose more of what the 2D network knew, and why the
# gap grows from fold_div 8 to fold_div 2. (c) Your TSM in section 4 was trained *with* the shift
# and still reached near 100 %: say why a trained in-place TSM can do well on TemporalDigits even
# though the paper found in-place shift worse on Kinetics.

# %% [markdown] nbgrader={"grade": true, "grade_id": "q1_placement", "locked": false, "points": 13, "schema_version": 3, "solution": true, "task": false}
# (Numbers from one QUICK run, seed 0.) (a) TSN: 99.5 %. Residual: 98.8 % (fold_div 8), 95.1 %
# (fold_div 2); in place: 98.5 % and 90.1 %.
# (b) On the residual branch a block computes relu(x + F(s(x))): the identity path hands every frame
# its own features x unchanged, and only the branch's input is shifted, so what the 2D network
# computed per frame is perturbed, not replaced. In place, relu(s(x) + F(s(x))): the identity path
# carries s(x) too, so at every block the shifted channels of frame t are replaced by frame t±1's,
# and the error compounds over the blocks. With fold_div 8 only a quarter of the channels move and
# neighbouring frames look alike, so little is lost either way (0.2 points apart); with fold_div 2
# every channel of frame t is replaced in place, and the gap grows to 5 points.
# (c) Training lets the network adapt to the shift: it can learn features that survive being moved
# a frame. On TemporalDigits the class is decided by motion, which the shift exposes, and very
# little by a frame's own appearance (the digit's identity is irrelevant), so losing some per-frame
# features costs almost nothing. On Kinetics much of a class is in single frames (TSN alone reaches
# 70.7 %), so the spatial features the in-place shift damages matter, and the paper measured the loss.

# %% [markdown]
# **Q2 (12 points).** Online TSM keeps, per shifted layer, a cache of the previous frame's first
# `fold` channels. (a) For your network (the narrow ResNet-10 on 32×32 frames, one shift per
# residual block, fold_div 8), how many numbers does the cache hold in total per stream, and what
# is that relative to one input frame (32×32×1)? Show the sum over the four blocks. (b) From your
# early-recognition curve: give online TSM's accuracy after 1, 2 and 8 frames and explain the jump
# from 1 to 2 frames. (c) Why could the offline, bi-directional model not be streamed frame by
# frame at one 2D pass per frame?

# %% [markdown] nbgrader={"grade": true, "grade_id": "q2_streaming", "locked": false, "points": 12, "schema_version": 3, "solution": true, "task": false}
# (a) The shift sits before conv1 of each block, so the cache holds fold = C/8 channels of that
# block's input map. Stem output 16×16×16 (stride 2); block 1: 16 ch at 16×16 -> 2 × 256 = 512;
# block 2: input 16 ch at 16×16 -> 2 × 256 = 512; block 3: input 32 ch at 8×8 -> 4 × 64 = 256;
# block 4: input 64 ch at 4×4 -> 8 × 16 = 128. Total 1408 numbers, 1.4 × one 32×32 input frame
# (5.6 KB in float32) — tiny, and nothing is recomputed.
# (b) (QUICK run, seed 0; the printed line.) After 1 frame 45.2 %, after 2 frames 80.0 %, after 8
# frames 95.6 %. One frame cannot tell a class from its time-reversed partner (frame 0
# has the same distribution for both), so at best the pair is right: 50 %. From the second frame
# on the cache carries frame 0's channels into frame 1, the network sees motion and the direction.
# (c) The bi-directional shift feeds frame t with channels from frame t+1 at every shifted layer:
# frame t's output must wait for frame t+1, and since each layer needs the next frame's features
# of the layer below, the delay grows with depth (or frames must be recomputed) — not one 2D pass
# per frame.
