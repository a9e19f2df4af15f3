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
# **You will build** the temporal shift of TSM (offline, bi-directional), put it on the residual
# branch of a ResNet, fuse per-frame predictions with TSN's segment consensus, and write the
# uni-directional shift that lets the same network run on a live stream, one frame at a time.
# Then you will measure what the shift buys (accuracy) and what it costs (MACs, latency).
#
# **Time:** about 90 minutes. **Paper:** Lin, Gan, Han, *TSM: Temporal Shift Module for Efficient
# Video Understanding*, ICCV 2019. TSN: Wang et al., ECCV 2016.
#
# **Intuition.** A 2D CNN applied to each frame sees no time at all: averaging its per-frame scores
# (TSN) treats a clip as a *bag of frames*. A 3D convolution mixes neighbouring frames, at several
# times the cost. TSM gets the mixing for free: before a convolution it moves a few channels one
# frame forward in time and a few one frame back. The convolution that follows then sees, at every
# frame, channels from the past, the present and the future — it *is* a temporal convolution, with
# zero extra multiply-accumulates and zero extra parameters.
#
# The data set is `TemporalDigits`: a digit moving right or left, down or up, rotating one way or the
# other, zooming in or out. Its classes come in **time-reversal pairs**: a "move left" clip is a
# "move right" clip played backwards. A bag of frames cannot tell them apart, so TSN is capped at 50 %.

# %%
import time

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from torch import nn

import effcourse
from effcourse import bench, plots, video
from effcourse.checks import lab1
from effcourse.data import TemporalDigits, reverse_partner
from effcourse.data.registry import video_dataset

# %% tags=["parameters"]
QUICK = False
SEED = 0
DEVICE = "auto"
DATASET = "temporal_digits"   # or a prepared real data set, e.g. "ucf101" (see docs/DATA.md)

# %%
QUICK, device = effcourse.setup(QUICK, SEED, DEVICE)
T = 8                                        # frames (segments) per clip
STEPS = 120 if QUICK else 500                # training steps of 16 clips, the same for every model
N_TRAIN, N_TEST = (800, 800) if QUICK else (1600, 800)
train_set = video_dataset(DATASET, "train", n_frames=T, size=32, n_clips=N_TRAIN, seed=SEED)
test_set = video_dataset(DATASET, "test", n_frames=T, size=32, n_clips=N_TEST, seed=SEED)
CLASSES = list(train_set.classes)
IN_CHANNELS = train_set.tensors()[0].shape[2]
print(train_set, test_set, sep="\n")

fig, axes = plt.subplots(4, 1, figsize=(9, 5))
train_labels = train_set.tensors()[1]
for k, ax in enumerate(axes):
    c = 2 * k if DATASET == "temporal_digits" else k
    i = int((train_labels == c).nonzero()[0])
    note = f"  (played backwards: {CLASSES[c + 1]})" if DATASET == "temporal_digits" else ""
    plots.clip_strip(train_set[i][0], ax=ax, title=CLASSES[c] + note)
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
        each clip's ends. The input is not modified.

    Raises:
        ValueError: if x is not 4-D, or if N*T is not a multiple of n_segment.
    """
    ### BEGIN SOLUTION
    if x.dim() != 4:
        raise ValueError(f"x must be (N*T, C, H, W), got a tensor of rank {x.dim()}")
    nt, c, h, w = x.shape
    if n_segment < 1 or nt % n_segment:
        raise ValueError(f"N*T = {nt} frames is not a whole number of clips of n_segment = {n_segment}")
    v = x.reshape(nt // n_segment, n_segment, c, h, w)
    fold = c // fold_div
    out = torch.zeros_like(v)
    out[:, :-1, :fold] = v[:, 1:, :fold]                      # from the future
    out[:, 1:, fold:2 * fold] = v[:, :-1, fold:2 * fold]      # from the past
    out[:, :, 2 * fold:] = v[:, :, 2 * fold:]                 # unchanged
    return out.reshape(nt, c, h, w)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_temporal_shift", "locked": true, "points": 25, "schema_version": 3, "solution": false, "task": false}
lab1.check_temporal_shift(temporal_shift)
lab1.check_errors(temporal_shift)
### BEGIN HIDDEN TESTS
from effcourse.checks._assert import assert_close as _close, assert_true as _true


def _ref_shift(x, T, fold_div):
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


_g = torch.Generator().manual_seed(int(time.time() * 1000) % 2**31)
for (N, T_, C, H, W, fd) in [(2, 8, 16, 5, 7, 8), (3, 3, 10, 4, 4, 8), (1, 1, 8, 3, 3, 8), (4, 5, 7, 2, 3, 3),
                             (2, 4, 5, 3, 3, 8), (1, 6, 33, 1, 1, 4), (5, 2, 12, 3, 2, 2)]:
    x = torch.randn(N * T_, C, H, W, generator=_g, dtype=torch.float64)
    x0 = x.clone()
    y = temporal_shift(x, T_, fold_div=fd)
    _close(f"temporal_shift, N={N} T={T_} C={C} fold_div={fd}", y, _ref_shift(x, T_, fd), atol=0, rtol=0)
    _true(torch.equal(x, x0), "temporal_shift modified its input")
    _true(y.device == x.device, "temporal_shift changed the device")
# default fold_div is 8
x = torch.randn(2 * 4, 16, 3, 3, generator=_g)
_close("temporal_shift with the default fold_div", temporal_shift(x, 4), _ref_shift(x, 4, 8), atol=0, rtol=0)
# non-contiguous input (a transposed view)
base = torch.randn(3 * 4, 16, 5, 6, generator=_g)
xt = base.transpose(2, 3)
_true(not xt.is_contiguous(), "test setup")
_close("temporal_shift on a non-contiguous input", temporal_shift(xt, 4), _ref_shift(xt.contiguous(), 4, 8), atol=0, rtol=0)
# autograd gives the inverse shift
x = torch.randn(2 * 5, 16, 2, 2, generator=_g, requires_grad=True)
gout = torch.randn(2 * 5, 16, 2, 2, generator=_g)
(temporal_shift(x, 5) * gout).sum().backward()
xr = x.detach().clone().requires_grad_(True)
(_ref_shift(xr, 5, 8) * gout).sum().backward()
_close("gradient of temporal_shift (must be the shift in the opposite direction)", x.grad, xr.grad, atol=0, rtol=0)
### END HIDDEN TESTS

# %% [markdown]
# ## 2. Where to shift: the residual branch
#
# Shifting *in place* (on the main path) throws the shifted-out channels away from every frame's own
# representation, and the paper measured a clear accuracy loss. Shifting on the **residual branch**
# keeps the identity path intact: a block computes $y = x + F(\operatorname{shift}(x))$, so the
# frame's own features always survive and the shift only adds temporal context.
#
# Write a module that shifts and then calls the layer it wraps. `effcourse.video.insert_shift(model,
# ResidualShift, T)` will wrap the first convolution of every residual block of a ResNet with it.

# %% nbgrader={"grade": false, "grade_id": "ResidualShift", "locked": false, "schema_version": 3, "solution": true, "task": false}
class ResidualShift(nn.Module):
    """Temporal shift in front of a layer: forward(x) = net(temporal_shift(x, n_segment, fold_div)).

    Args:
        net: the wrapped layer (a Conv2d), registered as a submodule so its parameters train.
        n_segment: T, frames per clip.
        fold_div: as in temporal_shift.

    forward: x (N*T, C, H, W) -> net's output for the shifted x.
    """

    ### BEGIN SOLUTION
    def __init__(self, net, n_segment, fold_div=8):
        super().__init__()
        self.net = net
        self.n_segment = n_segment
        self.fold_div = fold_div

    def forward(self, x):
        return self.net(temporal_shift(x, self.n_segment, self.fold_div))
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_ResidualShift", "locked": true, "points": 15, "schema_version": 3, "solution": false, "task": false}
lab1.check_residual_shift(ResidualShift, temporal_shift)
### BEGIN HIDDEN TESTS
from effcourse.checks._assert import assert_close as _close, assert_true as _true
_g = torch.Generator().manual_seed(int(time.time() * 1000) % 2**31 + 1)
for (cin, cout, T_, N, fd) in [(16, 8, 8, 2, 8), (10, 4, 3, 3, 8), (12, 12, 5, 1, 4), (9, 6, 1, 4, 8)]:
    conv = nn.Conv2d(cin, cout, 3, padding=1)
    m = ResidualShift(conv, T_, fold_div=fd)
    x = torch.randn(N * T_, cin, 5, 5, generator=_g)
    with torch.no_grad():
        _close(f"ResidualShift(Conv2d({cin},{cout}), T={T_}, fold_div={fd})", m(x), conv(temporal_shift(x, T_, fd)),
               atol=1e-6)
    m(x).sum().backward()
    _true(conv.weight.grad is not None and conv.weight.grad.abs().sum() > 0, "gradients must reach the wrapped conv")
# default fold_div is 8, and the wrapper works inside insert_shift on a real backbone
conv = nn.Conv2d(16, 16, 3, padding=1)
x = torch.randn(2 * 4, 16, 4, 4, generator=_g)
with torch.no_grad():
    _close("ResidualShift default fold_div", ResidualShift(conv, 4)(x), conv(temporal_shift(x, 4, 8)), atol=1e-6)
bb = video.insert_shift(video.resnet2d(), ResidualShift, 4).eval()
with torch.no_grad():
    out = bb(torch.randn(2 * 4, 1, 32, 32, generator=_g))
_true(tuple(out.shape) == (8, 8), f"a shifted backbone must still return (N*T, K) = (8, 8), got {tuple(out.shape)}")
_true(sum(p.numel() for p in bb.parameters()) == sum(p.numel() for p in video.resnet2d().parameters()),
      "the shift must add no parameters")
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
    return logits.reshape(nt // n_segment, n_segment, k).mean(dim=1)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_segment_consensus", "locked": true, "points": 10, "schema_version": 3, "solution": false, "task": false}
lab1.check_segment_consensus(segment_consensus)
### BEGIN HIDDEN TESTS
from effcourse.checks._assert import assert_close as _close, assert_true as _true
_g = torch.Generator().manual_seed(int(time.time() * 1000) % 2**31 + 2)
for (N, T_, K) in [(3, 8, 8), (1, 1, 5), (4, 3, 11), (2, 5, 1)]:
    lg = torch.randn(N * T_, K, generator=_g, dtype=torch.float64, requires_grad=True)
    out = segment_consensus(lg, T_)
    ref = torch.stack([lg[n * T_:(n + 1) * T_].mean(0) for n in range(N)])
    _close(f"segment_consensus N={N} T={T_} K={K}", out, ref.detach(), atol=1e-12)
    out.sum().backward()
    _close("gradient of segment_consensus (1/T for every frame)", lg.grad, torch.full_like(lg, 1.0 / T_), atol=1e-12)
### END HIDDEN TESTS

# %% [markdown]
# ## 4. Experiment: TSN vs. TSM on TemporalDigits
#
# Same backbone (a narrow ResNet-10, widths 16→128), same data, same number of steps. The only
# difference is the shift inside the residual blocks. Watch the test accuracy.

# %%
def build(shift_wrapper=None):
    torch.manual_seed(SEED)
    backbone = video.resnet2d(num_classes=len(CLASSES), in_channels=IN_CHANNELS)
    if shift_wrapper is not None:
        video.insert_shift(backbone, shift_wrapper, T)
    return video.ClipClassifier(backbone, T, segment_consensus).to(device)


def acc(model):
    return video.accuracy(model, test_set, device=device)


results, curves = {}, {}
for name, wrapper in [("TSN", None), ("TSM", ResidualShift)]:
    model = build(wrapper)
    t0 = time.perf_counter()
    hist = video.train_classifier(model, train_set, steps=STEPS, device=device, seed=SEED, desc=name,
                                  eval_every=max(STEPS // 6, 1), eval_fn=acc)
    results[name] = model
    curves[name] = (hist["eval_step"], [100 * a for a in hist["eval"]])
    print(f"{name}: test accuracy {100 * hist['eval'][-1]:.1f} %  ({time.perf_counter() - t0:.1f} s)")

tsn_acc, tsm_acc = curves["TSN"][1][-1] / 100, curves["TSM"][1][-1] / 100
effcourse.record("tsn_acc", tsn_acc)
effcourse.record("tsm_acc", tsm_acc)
plots.curves(curves, "training step", "test accuracy (%)", "TSN vs TSM", hline=50, hline_label="order-free ceiling")
plt.show()

# %% [markdown]
# **Play it backwards.** Reverse every test clip in time. TSN must give the same prediction (its
# average cannot see order); TSM should now predict the *partner* class (left ↔ right, ...).

# %%
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
# ## 5. Online TSM: shift from the past only
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
        x_t is not modified.
    """
    ### BEGIN SOLUTION
    fold = x_t.shape[1] // fold_div
    shifted = x_t.clone()
    shifted[:, :fold] = 0 if cache is None else cache
    return shifted, x_t[:, :fold].clone()
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_online_shift", "locked": true, "points": 25, "schema_version": 3, "solution": false, "task": false}
lab1.check_online_shift(online_shift)
### BEGIN HIDDEN TESTS
from effcourse.checks._assert import assert_close as _close, assert_true as _true
def _ref_past(x, T, fold_div):
    n = x.shape[0] // T
    v = x.reshape(n, T, *x.shape[1:])
    fold = x.shape[1] // fold_div
    out = v.clone()
    out[:, :, :fold] = 0
    out[:, 1:, :fold] = v[:, :-1, :fold]
    return out


_g = torch.Generator().manual_seed(int(time.time() * 1000) % 2**31 + 3)
for (N, T_, C, H, W, fd) in [(2, 8, 16, 5, 7, 8), (3, 3, 10, 4, 4, 8), (1, 1, 8, 3, 3, 8), (4, 5, 7, 2, 3, 3),
                             (2, 4, 5, 3, 3, 8), (1, 6, 33, 1, 1, 4)]:
    x = torch.randn(N * T_, C, H, W, generator=_g, dtype=torch.float64)
    ref = _ref_past(x, T_, fd)
    v = x.reshape(N, T_, C, H, W)
    cache = None
    for t in range(T_):
        frame = v[:, t].clone()
        shifted, cache = online_shift(frame, cache, fd)
        _close(f"online_shift frame t={t} (N={N}, C={C}, fold_div={fd})", shifted, ref[:, t], atol=0, rtol=0)
        _true(torch.equal(frame, v[:, t]), "online_shift modified its input frame")
        fold = C // fd
        _close(f"new_cache at t={t}", cache, v[:, t, :fold], atol=0, rtol=0)
# default fold_div, and a streaming network equals its clip-at-once twin
x = torch.randn(3, 16, 2, 2, generator=_g)
s, c = online_shift(x, None)
_close("online_shift default fold_div, first frame", s, torch.cat([torch.zeros(3, 2, 2, 2), x[:, 2:]], 1), atol=0)
torch.manual_seed(int(time.time()) % 1000)
bb = video.insert_shift(video.resnet2d(), video.online_wrapper(online_shift), 4).eval()
clip_in = torch.randn(2, 4, 1, 32, 32, generator=_g)
with torch.no_grad():
    offline = bb(clip_in.reshape(8, 1, 32, 32)).reshape(2, 4, -1)
_close("streaming network vs clip-at-once network", video.stream(bb, clip_in), offline, atol=1e-5)
### END HIDDEN TESTS

# %% [markdown]
# Train an online TSM (the same backbone, past-only shifts) and run it as a stream: one frame per
# call, caches carried between calls. Its per-frame outputs must equal the clip-at-once outputs of
# the same network — streaming is an *exact* re-ordering of the same computation.

# %%
online = build(video.online_wrapper(online_shift))
hist = video.train_classifier(online, train_set, steps=STEPS, device=device, seed=SEED, desc="online TSM",
                              eval_every=max(STEPS // 6, 1), eval_fn=acc)
online_acc = hist["eval"][-1]
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
    tsn_frames = results["TSN"].frame_logits(x).reshape(len(x), T, -1)
early = {name: [100 * (lg[:, :t].mean(1).argmax(1).cpu() == labels).float().mean().item() for t in seen]
         for name, lg in [("online TSM", streamed), ("TSN", tsn_frames)]}
effcourse.record("early_recognition_online_tsm", early["online TSM"])
plots.curves({k: (seen.tolist(), v) for k, v in early.items()}, "frames seen", "test accuracy (%)",
             "Early recognition on a stream", hline=50, hline_label="order-free ceiling")
plt.show()

# %% [markdown]
# **Read the curve with care.** Online TSM is already far above 50 % after *one* frame. That frame
# alone is informative here: a clip must stay inside the picture, so a digit that starts on the left
# is more likely moving right, a small digit is more likely zooming in. The network can use that cue
# because the zeros that fill the cache at the first frame tell it "this is frame 0". TSN cannot:
# its per-frame classifier never knows which frame it sees. The rise over the next frames is the
# motion itself. Real data sets have such shortcuts too; a careful evaluation looks for them.
#
# ## 6. What does it cost?
#
# One clip of T = 8 frames at 32×32, batch 1, CPU, one thread. MACs come from
# `torch.utils.flop_counter`; latencies are medians of interleaved repeats measured in this one
# run, so their *ratios* are meaningful even on a busy machine. "I3D" is the 3D twin of the same
# ResNet (every 3×3 conv becomes 3×3×3), the shape that inflation (Lab 2) produces.

# %%
cpu = torch.device("cpu")
tsn_m = build(None).to(cpu).eval()
tsm_m = build(ResidualShift).to(cpu).eval()
i3d_m = video.resnet3d(num_classes=len(CLASSES), in_channels=IN_CHANNELS).eval()
clip1 = test_set[0][0].unsqueeze(0)                       # (1, T, C, 32, 32)
streamer = video.FrameStreamer(build(video.online_wrapper(online_shift)).backbone.to(cpu))
frame1 = clip1[:, 0]                                      # (1, C, 32, 32)
tsn_frame = tsn_m.backbone


class I3DClip(nn.Module):
    """(N, T, C, H, W) clips into the 3D net's (N, C, T, H, W)."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net(x.transpose(1, 2))


rows = bench.cost_table({
    "TSN (8 frames)": (tsn_m, (clip1,)),
    "TSM offline (8 frames)": (tsm_m, (clip1,)),
    "I3D 3D ResNet (8 frames)": (I3DClip(i3d_m), (clip1,)),
    "TSN per frame": (tsn_frame, (frame1,)),
    "online TSM per frame": (streamer.backbone, (frame1,)),
}, repeats=5 if QUICK else 15, number=5 if QUICK else 10, baseline="TSN (8 frames)")
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
# ## 7. Paper vs. you

# %%
plots.table([
    {"claim": "TSN vs TSM accuracy", "paper": "20.4 % vs 45.5 % (Something-V1)",
     "you": f"{100 * tsn_acc:.1f} % vs {100 * tsm_acc:.1f} % ({DATASET})"},
    {"claim": "extra FLOPs of the shift", "paper": "0",
     "you": f"{by['TSM offline (8 frames)']['MMACs'] - by['TSN (8 frames)']['MMACs']:.0f} MMACs"},
    {"claim": "online TSM vs TSN latency per frame", "paper": "9.1 vs 8.5 ms (+7 %)",
     "you": f"{by['online TSM per frame']['latency_ms']:.2f} vs {by['TSN per frame']['latency_ms']:.2f} ms "
            f"({100 * online_overhead:+.0f} %)"},
    {"claim": "TSM vs I3D latency per video", "paper": "17.4 vs 164.3 ms (P100)",
     "you": f"{by['TSM offline (8 frames)']['latency_ms']:.2f} vs {by['I3D 3D ResNet (8 frames)']['latency_ms']:.2f} ms (CPU)"},
    {"claim": "I3D / TSM MACs", "paper": "≈ 2–6× (ResNet-50 backbones)",
     "you": f"{by['I3D 3D ResNet (8 frames)']['macs_ratio']:.2f}×"},
], title="Paper vs. you")

# %% [markdown]
# The shift adds no MACs, but it is not free in wall-clock time: it moves memory. With convolutions
# this small the copy is a visible fraction of the work; on a ResNet-50 at 224×224 the convolutions
# dominate and the overhead shrinks to a few percent.
#
# ## 8. Questions
#
# **Q1 (12 points).** TSN reaches (about) 50 % on TemporalDigits, never much more, however long you
# train it. Explain why in terms of the data set's construction, and say what accuracy a TSN with a
# ten times larger backbone would reach.

# %% [markdown] nbgrader={"grade": true, "grade_id": "q1_tsn_ceiling", "locked": false, "points": 12, "schema_version": 3, "solution": true, "task": false}
# Every class has a partner whose clips are the same clips played backwards, drawn from the same
# distribution. TSN averages per-frame scores, and an average is invariant to the order of its
# terms, so TSN gives a clip and its reversal the same output and must give both classes of a pair
# the same prediction: it can be right on at most one of them, i.e. at most 50 % in expectation.
# A larger backbone changes the per-frame function, not the order-free average, so it is capped at
# 50 % too (it only overfits the training clips more).

# %% [markdown]
# **Q2 (13 points).** Online TSM shifts only from the past and keeps a cache per shifted layer.
# (a) How much extra memory does the cache need per layer, relative to one activation map, with
# `fold_div = 8`? (b) Why could the offline, bi-directional model not be run frame by frame with the
# same latency per frame?

# %% [markdown] nbgrader={"grade": true, "grade_id": "q2_online", "locked": false, "points": 13, "schema_version": 3, "solution": true, "task": false}
# (a) The cache holds channels [0:fold] of one frame: 1/8 of that layer's activation map (for one
# frame), and nothing else; the compute per frame is unchanged.
# (b) The bi-directional shift feeds frame t with channels from frame t+1, at every shifted layer.
# To output frame t the network must wait for frame t+1 — and because each layer needs the next
# frame's features of the layer below, the delay grows with depth (or frames must be recomputed):
# the per-frame latency/delay would no longer be one 2D forward pass.
