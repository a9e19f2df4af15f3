# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Lab 4 — Anycost GAN: one generator, many costs, consistent outputs
#
# **You will build** the pieces that turn one generator into a family of generators of different
# cost: convolutions that run with a fraction of their channels, a channel ordering that puts the
# important channels first, the random choice of sub-networks during training, a discriminator that
# knows which sub-network it is judging, and a loss that keeps every sub-network's output close to
# the full network's. Then you will measure what a sub-network saves (MACs, latency) and what it
# costs (consistency, quality), and preview the generator at any cost with sliders.
#
# **Time:** about 120 minutes. **Paper:** Lin, Zhang, Ganz, Han, Zhu, *Anycost GANs for Interactive
# Image Synthesis and Editing*, CVPR 2021; official code: `github.com/mit-han-lab/anycost-gan`
# (cited below by file, e.g. `tools/train_gan.py`).
#
# **Intuition.** A ray tracer shows a noisy preview first and refines it later: the preview is cheap
# and *looks like* the final image. Anycost GAN does the same for a generator. One set of weights is
# trained so that (a) every stage of the generator already outputs an image (8, 16, 32 px here): stop
# early and you pay only for the stages you ran; (b) every convolution also works with only its
# first 25 %, 50 % or 75 % of channels: a 0.5× generator costs about a quarter of the MACs. Trained
# naively, a sub-generator draws a *different* picture than the full one for the same latent, which
# defeats the purpose of a preview; distilling every sub-generator from the full one fixes that. The
# paper (abstract) reports up to 10× less computation and 6–12× faster previews on CPUs and edge
# devices, with previews that look like the final output.

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

import effcourse
import effcourse.assets
from effcourse import bench, plots
from effcourse.checks import lab4
from effcourse.data.digits import load_digits
from effcourse.gan import anycost
from effcourse.metrics import frechet_distance, psnr
from effcourse.training import Loop
from effcourse.widgets import anycost_preview as preview

# %% tags=["parameters"]
QUICK = False
SEED = 0
DEVICE = "auto"

# %%
QUICK, device = effcourse.setup(QUICK, SEED, DEVICE)
device = torch.device("cpu")        # the generator is tiny: CPU is the point of this lab
CHOICES = (0.25, 0.5, 0.75, 1.0)    # channel ratios of the sub-generators
FINETUNE_STEPS = effcourse.pick(full=1000, quick=150, smoke=2)   # anycost training steps per run (batch 16)
N_EVAL = effcourse.pick(full=2000, quick=500, smoke=128)         # latents for consistency and Fréchet distance
N_SORT = effcourse.pick(full=500, quick=200, smoke=32)           # latents for the channel-sorting comparison
BENCH_REPEATS = effcourse.pick(full=11, quick=5, smoke=1)        # interleaved timing rounds of the cost grid
N_RES = 2                 # resolutions sampled per training step (the official recipe samples 2 of its 4)
LAMBDA = 10.0             # weight of the consistency (distillation) term
PRETRAIN_STEPS = 0        # 0: load the bundled pre-trained generator; 3000: train it here (a few CPU minutes)
reals, labels = load_digits(32)     # (1797, 1, 32, 32) in [-1, 1]
print(f"{len(reals)} digits at 32x32; anycost training: {FINETUNE_STEPS} steps per run")

# %% tags=["experiment"]
plots.image_grid(reals[:16], nrow=16, title="real digits (32x32)", vmin=-1, vmax=1)
plt.show()

# %% [markdown]
# ## 1. Elastic convolutions
#
# A convolution with weight $W \in \mathbb{R}^{C_\text{out} \times C_\text{in} \times k \times k}$ at
# channel ratio $r$ keeps only its first $c = \max(1, \operatorname{round}(r \cdot C_\text{out}))$
# filters, and each filter only looks at the input channels it actually receives:
#
# $$ y = W[:c,\; :c_\text{in}] * x, \qquad x \in \mathbb{R}^{N \times c_\text{in} \times H \times W}. $$
#
# Every sub-network is therefore a **prefix** of the full one: no weights of its own, just fewer of
# the shared ones. Two stacked convolutions at ratio $r$ cost about $r^2$ of the MACs (both $c_\text{in}$
# and $c_\text{out}$ shrink), so 0.25× channels cost about 1/16. (The official code does the same with
# a `first_k_oup` attribute on each modulated conv, `models/dynamic_channel.py`.)
#
# Write both methods. `super().__init__(*args, **kwargs)` builds the ordinary convolution; the
# parent's `self._conv_forward(x, weight, bias)` or `F.conv2d` runs it with the weight you choose.

# %% nbgrader={"grade": false, "grade_id": "ElasticConv2d", "locked": false, "schema_version": 3, "solution": true, "task": false}
class ElasticConv2d(nn.Conv2d):
    """An ``nn.Conv2d`` (same constructor) whose width can shrink at run time.

    Attribute ``ratio`` (float in (0, 1], 1.0 after construction): ``forward(x)`` uses the first
    ``max(1, round(ratio * out_channels))`` filters and, of each, the first ``x.shape[1]`` input
    channels (as many as it receives), with this conv's stride, padding and dilation (groups = 1),
    and the matching prefix of the bias when there is one.

    x: (N, c_in, H, W) with c_in <= in_channels  ->  (N, c_out, H', W').
    """

    def __init__(self, *args, **kwargs):
        ### BEGIN SOLUTION
        super().__init__(*args, **kwargs)
        self.ratio = 1.0
        ### END SOLUTION

    def forward(self, x):
        ### BEGIN SOLUTION
        c_out = max(1, round(self.ratio * self.out_channels))
        weight = self.weight[:c_out, :x.shape[1]]
        bias = None if self.bias is None else self.bias[:c_out]
        return self._conv_forward(x, weight, bias)
        ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_ElasticConv2d", "locked": true, "points": 12, "schema_version": 3, "solution": false, "task": false}
import torch
import torch.nn.functional as F
from torch import nn
from effcourse.checks import lab4

lab4.check_elastic_conv(ElasticConv2d)
### BEGIN HIDDEN TESTS
from effcourse import judge
from effcourse.checks.asserts import assert_close, assert_true, call
with lab4.seed_in_failures(lab4.clock_seed()) as _seed:
    _g = torch.Generator().manual_seed(_seed)
    for (cin, cout, k, stride, pad, bias, dil) in [(4, 6, 3, 1, 1, True, 1), (5, 7, 1, 1, 0, False, 1),
                                                  (3, 10, 3, 2, 1, True, 1), (6, 5, 5, 1, 4, True, 2),
                                                  (1, 3, 3, 2, 0, False, 1)]:
        judge.manual_seed(int(torch.randint(0, 10**6, (1,), generator=_g)))
        where = f"ElasticConv2d({cin}, {cout}, {k}, stride={stride}, padding={pad}, bias={bias}, dilation={dil})"
        conv = call(where, ElasticConv2d, cin, cout, k, stride=stride, padding=pad, bias=bias, dilation=dil)
        assert_true(judge.get(conv, "ratio") == 1.0, f"{where}: a new ElasticConv2d should have ratio 1.0")
        dense = nn.Conv2d(cin, cout, k, stride=stride, padding=pad, bias=bias, dilation=dil)
        yours = call(f"{where}.state_dict()", conv.state_dict)
        dense.load_state_dict({key: yours[key] for key in dense.state_dict()})
        x = torch.randn(3, cin, 9, 11, generator=_g)
        assert_close(f"{where}: ratio 1 vs the dense conv", call(where, conv, x), dense(x), atol=1e-5)
        w, b = dense.weight.detach(), None if dense.bias is None else dense.bias.detach()
        for r in (1.0, 0.75, 0.5, 0.3, 0.25, 0.1, 0.01):
            if abs((r * cout) % 1 - 0.5) < 1e-9:
                continue                                       # exact .5: rounding convention, not tested
            c = max(1, round(r * cout))
            for c_in in sorted({cin, max(1, cin // 2), 1}):
                conv.ratio = r
                xi = x[:, :c_in].clone().requires_grad_(True)
                call(f"{where}.zero_grad()", conv.zero_grad)
                y = call(f"{where} at ratio {r}", conv, xi)
                exp = F.conv2d(xi.detach(), w[:c, :c_in], None if b is None else b[:c], stride, pad, dil)
                assert_close(f"{where}: ratio {r} with {c_in} input channels", y, exp, atol=1e-5)
                y.pow(2).sum().backward()
                gw = judge.get(conv, "weight.grad")
                assert_true(gw is not None and gw[c:].abs().sum() == 0 and gw[:, c_in:].abs().sum() == 0
                            and gw[:c, :c_in].abs().sum() > 0,
                            f"{where}: at ratio {r}, exactly the used prefix weight[:{c}, :{c_in}] should get gradient")
                assert_true(xi.grad is not None, f"{where}: the input should get a gradient")
        # the weights a sub-network does not use may hold anything (NaN here): a conv that pads its input to
        # in_channels, or masks the full weight, multiplies them and returns NaN
        r, c_in = 0.4, max(1, cin // 2)                         # 0.4 * cout is never an exact .5 here
        c = max(1, round(r * cout))
        if (c_in < cin or c < cout) and abs((r * cout) % 1 - 0.5) > 1e-9:
            state = {**yours, **{key: v.clone() for key, v in dense.state_dict().items()}}
            state["weight"][c:] = float("nan")
            state["weight"][:, c_in:] = float("nan")
            if b is not None:
                state["bias"][c:] = float("nan")
            call(f"{where}.load_state_dict(...)", conv.load_state_dict, state)
            conv.ratio = r
            with torch.no_grad():
                y = call(f"{where} at ratio {r}", conv, x[:, :c_in].clone())
            assert_true(bool(torch.isfinite(y).all()),
                        f"{where}: at ratio {r} with {c_in} input channels the output depends on weights outside "
                        f"weight[:{c}, :{c_in}] (filled with NaN here): use only the prefix, do not pad the input")
            assert_close(f"{where}: ratio {r} with {c_in} input channels (unused weights NaN)", y,
                         F.conv2d(x[:, :c_in], w[:c, :c_in], None if b is None else b[:c], stride, pad, dil), atol=1e-5)
            call(f"{where}.load_state_dict(...)", conv.load_state_dict, {**yours, **dense.state_dict()})
        other = call(where, ElasticConv2d, cin, cout, k, stride=stride, padding=pad, bias=bias, dilation=dil)
        assert_true(judge.get(other, "ratio") == 1.0, f"{where}: each ElasticConv2d has its own ratio (another one was changed)")
        conv.ratio = 1.0
        assert_close(f"{where}: ratio set back to 1", call(where, conv, x), dense(x), atol=1e-5)
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "test_ElasticConv2d_cost", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
from effcourse.checks import lab4

lab4.check_elastic_cost(ElasticConv2d)
### BEGIN HIDDEN TESTS
# executed MACs are observed where your code runs (a probe, effcourse.checks.lab4.elastic_macs): 2 points
import torch
from effcourse import judge
from effcourse.checks.asserts import assert_true, call
with lab4.seed_in_failures(lab4.clock_seed() + 5) as _seed:
    _g = torch.Generator().manual_seed(_seed)
    for (cin, cout, k, stride, pad, r, c_in) in [(8, 12, 3, 1, 1, 0.5, 4), (6, 8, 1, 1, 0, 0.25, 6), (5, 10, 3, 2, 1, 0.3, 2)]:
        judge.manual_seed(int(torch.randint(0, 10**6, (1,), generator=_g)))
        where = f"ElasticConv2d({cin}, {cout}, {k}, stride={stride}, padding={pad}) at ratio {r} on {c_in} channels"
        conv = call(where, ElasticConv2d, cin, cout, k, stride=stride, padding=pad)
        conv.ratio = r
        x = torch.randn(2, c_in, 9, 7, generator=_g)
        c = max(1, round(r * cout))
        h, w = (9 + 2 * pad - k) // stride + 1, (7 + 2 * pad - k) // stride + 1
        bound = 2 * c * c_in * k * k * h * w
        got = call(f"counting the MACs of {where}", judge.in_kernel, "effcourse.checks.lab4.elastic_macs", conv, x)
        full = 2 * cout * cin * k * k * h * w
        assert_true(isinstance(got, int) and got <= bound,
                    f"{where}: your forward executes {got} MACs (torch.utils.flop_counter); the sub-network "
                    f"weight[:{c}, :{c_in}] needs {bound} (the full conv: {full}): run the convolution with the "
                    f"sliced weight only, do not compute every channel and slice the output")
### END HIDDEN TESTS


# %% [markdown]
# ### The generator and what a sub-generator costs
#
# `anycost.AnycostGenerator(ElasticConv2d)` builds a small generator from **your** class:
# a latent $z \in \mathbb{R}^{32}$ becomes a 4×4 map with 64 channels, then three stages (8, 16, 32 px)
# each upsample ×2 and apply two elastic 3×3 convs (64, 32, 16 channels), and each stage ends in a
# 1×1 conv to an image. `G(z, target_resolution=16)` stops after the 16 px stage (early exit),
# `G.forward_all(z)` returns the image of every stage, and `G.set_ratio(0.5)` (or a list with one
# ratio per elastic layer) picks the channels.
#
# The cost grid below measures every (ratio, resolution) configuration in **one run** with
# interleaved medians (`effcourse.bench.compare_latency`), at a batch of 64 latents. Ratios of
# latencies are meaningful; absolute numbers depend on your machine and its load.

# %% tags=["experiment"]
G = anycost.AnycostGenerator(ElasticConv2d, z_dim=32, channels=(64, 32, 16))
print(G)
z_bench = torch.randn(64, G.z_dim)


def config_fn(G, ratio, res, z):
    def run():
        G.set_ratio(ratio)
        with torch.no_grad():
            return G(z, res)
    return run


configs = [(r, res) for r in CHOICES for res in G.resolutions]
macs = {}
for r, res in configs:
    G.set_ratio(r)
    macs[(r, res)] = bench.count_macs(G, z_bench[:1], res)
G.set_ratio(1.0).eval()
times = bench.compare_latency({(r, res): config_fn(G, r, res, z_bench) for r, res in configs},
                              repeats=BENCH_REPEATS, number=effcourse.pick(full=3, quick=2, smoke=1))
G.set_ratio(1.0)
top = G.resolutions[-1]
full_ms = times[(1.0, top)]
rows = [{"ratio": f"{r}x", "resolution": res, "MMACs/image": macs[(r, res)] / 1e6,
         "MACs vs 1x@32": macs[(1.0, top)] / macs[(r, res)], "latency ms (64 imgs)": 1e3 * times[(r, res)],
         "speedup vs 1x@32": full_ms / times[(r, res)]} for r, res in configs]
_ = plots.table(rows, floatfmt=".3g", title="Cost grid: channel ratio x resolution (one run, interleaved medians)")
macs_ratio_025 = macs[(0.25, top)] / macs[(1.0, top)]
speedup_025 = full_ms / times[(0.25, top)]
effcourse.record("macs_ratio_025", macs_ratio_025)
effcourse.record("speedup_025", speedup_025)
effcourse.record("cost_grid", [{k: rw[k] for k in ("ratio", "resolution", "MMACs/image", "speedup vs 1x@32")}
                               for rw in rows])
fig, axes = plt.subplots(1, 2, figsize=(10, 3.2))
for res in G.resolutions:
    axes[0].plot(CHOICES, [macs[(r, res)] / 1e6 for r in CHOICES], marker="o", label=f"{res} px")
    axes[1].plot(CHOICES, [full_ms / times[(r, res)] for r in CHOICES], marker="o", label=f"{res} px")
axes[0].set(xlabel="channel ratio", ylabel="M MACs per image", yscale="log", title="computation")
axes[1].set(xlabel="channel ratio", ylabel="speedup over 1x @ 32 px", yscale="log", title="measured latency")
for ax in axes:
    ax.grid(alpha=0.3)
    ax.legend()
plt.tight_layout()
plt.show()

# %% [markdown]
# The MACs fall like $r^2$, but the measured speedup at small ratios falls short of it: a 4-channel
# convolution leaves most of a CPU's vector units idle and per-layer overheads (allocation, the
# upsampling, the activation functions) do not shrink with the channels.

# %% [markdown]
# ## 2. Channel sorting: make the prefix the important part
#
# A sub-network keeps a conv's *first* channels, so they had better be the important ones. Before
# anycost training, the official code reorders the channels of the pre-trained generator
# (`models/dynamic_channel.py: sort_channel`). It ranks an output channel $c$ of a layer by **how
# much the next layer uses it**, the L1 norm of the next layer's weights on that input channel,
#
# $$ s_c = \sum_{o,u,v} \bigl|W^{\text{next}}_{o,c,u,v}\bigr|, \qquad \text{order: } s_{\pi(0)} \ge s_{\pi(1)} \ge \dots $$
#
# and goes through the layers from the output back. (In StyleGAN2 the next layer's weights are
# modulated per input channel by a style $s_c$, so the official score is $\sum|W^\text{next}_{:,c}|$
# times the mean $|s_c|$ over 100 000 sampled styles; our generator has no style modulation, so the
# weights alone are the whole story.) A common alternative ranks a channel by the L1 norm of its
# **own** filter, $\sum |W_{c,:,:,:}|$; you will compare the two in §7.
#
# Permuting a layer's output channels is harmless if the next layer's **input** channels are
# permuted the same way: $W'_1 = W_1[\pi]$, $b'_1 = b_1[\pi]$, $W'_2 = W_2[:, \pi]$ compute the same
# function (anything that treats channels alike in between, like LeakyReLU or the pixel norm that
# rescales each pixel's feature vector, commutes with a permutation).

# %% nbgrader={"grade": false, "grade_id": "sort_channels", "locked": false, "schema_version": 3, "solution": true, "task": false}
def sort_channels(layer, next_layer):
    """Reorder ``layer``'s output channels by importance and ``next_layer``'s inputs to match.

    layer: nn.Conv2d with weight (C, C_in, k, k) and optional bias (C,).
    next_layer: nn.Conv2d whose weight is (C_next, C, k', k') (its input channels are layer's outputs).
    Importance of channel c: the L1 norm of next_layer.weight[:, c] (how much the next layer uses it);
    the new order is descending importance. Updates layer.weight, layer.bias and next_layer.weight
    (their values; they stay nn.Parameters; no gradient is recorded) and returns ``perm``, a
    LongTensor (C,) such that new channel i is old channel perm[i].
    """
    ### BEGIN SOLUTION
    with torch.no_grad():
        importance = next_layer.weight.abs().sum(dim=(0, 2, 3))
        perm = torch.argsort(importance, descending=True)
        layer.weight.copy_(layer.weight[perm])
        if layer.bias is not None:
            layer.bias.copy_(layer.bias[perm])
        next_layer.weight.copy_(next_layer.weight[:, perm])
    return perm
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_sort_channels", "locked": true, "points": 12, "schema_version": 3, "solution": false, "task": false}
import torch
from torch import nn
from effcourse.checks import lab4

lab4.check_sort_channels(sort_channels)
### BEGIN HIDDEN TESTS
from effcourse import judge
from effcourse.checks.asserts import assert_close, assert_true, call
with lab4.seed_in_failures(lab4.clock_seed() + 1) as _seed:
    _g = torch.Generator().manual_seed(_seed)


    def _case(l1, l2, x, what):
        # the same two convs where your code runs; the reference and the comparisons stay here
        y1 = judge.twin(l1, "torch.nn.Conv2d", l1.in_channels, l1.out_channels, l1.kernel_size, padding=l1.padding,
                        bias=l1.bias is not None)
        y2 = judge.twin(l2, "torch.nn.Conv2d", l2.in_channels, l2.out_channels, l2.kernel_size, padding=l2.padding,
                        bias=l2.bias is not None)
        net = nn.Sequential(l1, nn.LeakyReLU(0.2), l2)
        before = net(x).detach()
        w1, w2 = l1.weight.detach().clone(), l2.weight.detach().clone()
        b1 = None if l1.bias is None else l1.bias.detach().clone()
        b2 = None if l2.bias is None else l2.bias.detach().clone()
        imp0 = w2.abs().sum(dim=(0, 2, 3))
        perm = call(f"{what}: sort_channels", sort_channels, y1, y2)
        assert_true(isinstance(perm, torch.Tensor) and sorted(perm.tolist()) == list(range(len(w1))),
                    f"{what}: sort_channels should return a permutation of range({len(w1)}), got {perm}")
        perm = perm.long()
        for y, names in ((y1, {"weight"} | ({"bias"} if b1 is not None else set())),
                         (y2, {"weight"} | ({"bias"} if b2 is not None else set()))):
            got = {n for n, _ in call(f"{what}: named_parameters()", y.named_parameters)}
            assert_true(got == names, f"{what}: the weights must stay nn.Parameters ({sorted(names)}), got {sorted(got)}")
        new = {"l1.weight": judge.get(y1, "weight"), "l2.weight": judge.get(y2, "weight")}
        if b1 is not None:
            new["l1.bias"] = judge.get(y1, "bias")
        if b2 is not None:
            new["l2.bias"] = judge.get(y2, "bias")
        assert_true(all(isinstance(v, torch.Tensor) for v in new.values()), f"{what}: the layers' weights must stay tensors")
        assert_close(f"{what}: layer.weight after sorting (old_weight[perm])", new["l1.weight"].detach(), w1[perm])
        if b1 is not None:
            assert_close(f"{what}: layer.bias after sorting (old_bias[perm])", new["l1.bias"].detach(), b1[perm])
        assert_close(f"{what}: next_layer.weight after sorting (old_weight[:, perm])", new["l2.weight"].detach(), w2[:, perm])
        if b2 is not None:
            assert_close(f"{what}: next_layer.bias is not permuted", new["l2.bias"].detach(), b2)
        imp = new["l2.weight"].detach().abs().sum(dim=(0, 2, 3))
        assert_true(bool((imp[:-1] >= imp[1:]).all()),
                    f"{what}: importance (L1 norm of next_layer.weight[:, c]) must be non-increasing, got {imp.tolist()}")
        assert_close(f"{what}: sorted importances", imp, imp0.sort(descending=True).values, atol=1e-5)
        after = nn.Sequential(nn.Conv2d(l1.in_channels, l1.out_channels, l1.kernel_size, padding=l1.padding,
                                        bias=b1 is not None), nn.LeakyReLU(0.2),
                              nn.Conv2d(l2.in_channels, l2.out_channels, l2.kernel_size, padding=l2.padding,
                                        bias=b2 is not None))
        after.load_state_dict({k.replace("l1.", "0.").replace("l2.", "2."): v.detach() for k, v in new.items()})
        assert_close(f"{what}: network output after sorting", after(x).detach(), before, atol=1e-5)
        grads = [judge.get(y, f"{n}.grad") for y, n in ((y1, "weight"), (y2, "weight"))]
        grads += [judge.get(y1, "bias.grad")] if b1 is not None else []
        assert_true(all(g is None or not g.abs().sum() > 0 for g in grads), f"{what}: sorting should record no gradient")


    for (cin, cmid, cout, k1, k2, b1, b2) in [(3, 7, 5, 3, 1, True, True), (1, 4, 2, 1, 3, False, True),
                                             (5, 1, 3, 3, 3, True, False), (2, 9, 9, 5, 3, True, True),
                                             (4, 16, 1, 3, 3, True, True)]:
        torch.manual_seed(int(torch.randint(0, 10**6, (1,), generator=_g)))
        l1 = nn.Conv2d(cin, cmid, k1, padding=k1 // 2, bias=b1)
        l2 = nn.Conv2d(cmid, cout, k2, padding=k2 // 2, bias=b2)
        with torch.no_grad():
            l2.weight.mul_(torch.rand(1, cmid, 1, 1, generator=_g) * 3)   # spread the importances
            l1.weight.mul_(torch.rand(cmid, 1, 1, 1, generator=_g) * 3)   # and, independently, the filter norms
        _case(l1, l2, torch.randn(3, cin, 6, 5, generator=_g), f"{cin}->{cmid}->{cout}")
    # L1, not L2: column 0 has one large weight (L1 4, L2 4), column 1 many small ones (L1 6, L2 ~1.7)
    l1, l2 = nn.Conv2d(2, 3, 1), nn.Conv2d(3, 12, 1)
    with torch.no_grad():
        l2.weight.zero_()
        l2.weight[0, 0] = 4.0
        l2.weight[:, 1] = 0.5
        l2.weight[:2, 2] = 1.0
    _case(l1, l2, torch.randn(2, 2, 3, 3, generator=_g), "L1 vs L2 norm")
### END HIDDEN TESTS

# %% [markdown]
# ## 3. Sampling sub-networks during training
#
# Each training step trains one randomly chosen sub-generator. Its ratios come from
# `sample_ratios`: in **uniform** mode one ratio for the whole network (the configurations you will
# deploy), in **flexible** mode an independent ratio per layer (a richer family, used by the paper to
# search for the best network under a budget). Draw every random number from the `generator` you are
# given, so that a run can be repeated exactly. (The official `sample_random_sub_channel` does the
# same with Python's `random`; its flexible mode also skips ratios that would leave a layer with fewer
# channels than the 0.25× configuration.)

# %% nbgrader={"grade": false, "grade_id": "sample_ratios", "locked": false, "schema_version": 3, "solution": true, "task": false}
def sample_ratios(n_layers, choices=(0.25, 0.5, 0.75, 1.0), mode="uniform", generator=None):
    """Channel ratios for one training step: a list of ``n_layers`` floats, each one of ``choices``.

    mode "uniform": one ratio, drawn uniformly from choices, for every layer.
    mode "flexible": an independent uniform draw for each layer.
    All randomness comes from ``generator`` (a torch.Generator, or None for torch's global one).
    Any other mode raises ValueError.
    """
    ### BEGIN SOLUTION
    if mode == "uniform":
        i = int(torch.randint(len(choices), (1,), generator=generator))
        return [float(choices[i])] * n_layers
    if mode == "flexible":
        idx = torch.randint(len(choices), (n_layers,), generator=generator)
        return [float(choices[i]) for i in idx]
    raise ValueError(f"unknown mode {mode!r}: use 'uniform' or 'flexible'")
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_sample_ratios", "locked": true, "points": 8, "schema_version": 3, "solution": false, "task": false}
import torch
from effcourse.checks import lab4

lab4.check_sample_ratios(sample_ratios)
### BEGIN HIDDEN TESTS
from effcourse import judge
from effcourse.checks.asserts import assert_true, call
with lab4.seed_in_failures(lab4.clock_seed()) as _s:


    def _draw(n, choices, mode, gen):
        out = call(f"sample_ratios({n}, {choices}, {mode!r}, generator)", sample_ratios, n, choices, mode, gen)
        # each value as the choice it equals (to float32 precision), so that float32 round-trips pass
        return [next((c for c in choices if abs(float(v) - c) < 1e-6), float(v)) for v in out]


    for choices in [(0.25, 0.5, 0.75, 1.0), (0.3, 0.6, 1.0), (0.5, 1.0)]:
        k = len(choices)
        gen = torch.Generator().manual_seed(_s)
        uni = [_draw(5, choices, "uniform", gen) for _ in range(600)]
        assert_true(all(len(d) == 5 and len(set(d)) == 1 and d[0] in choices for d in uni),
                    f"uniform mode: 5 equal ratios from {choices} per draw")
        freq = [sum(d[0] == c for d in uni) / len(uni) for c in choices]
        assert_true(min(freq) > 0.6 / k and max(freq) < 1.4 / k,
                    f"uniform mode should draw each of {choices} about equally often, got frequencies {freq}")
        flex = [_draw(12, choices, "flexible", gen) for _ in range(100)]
        assert_true(all(len(d) == 12 and all(v in choices for v in d) for d in flex),
                    f"flexible mode: 12 ratios from {choices} per draw")
        freq = [sum(v == c for d in flex for v in d) / (12 * len(flex)) for c in choices]
        assert_true(min(freq) > 0.6 / k and max(freq) < 1.4 / k,
                    f"flexible mode should draw each of {choices} about equally often, got frequencies {freq}")
        varied = sum(len(set(d)) > 1 for d in flex) / len(flex)
        assert_true(varied > 0.4, f"flexible mode should vary across layers; only {varied:.0%} of draws did")
        for pos in (0, 11):
            assert_true({d[pos] for d in flex} == set(choices), "flexible mode: every layer should see every choice")
        for n in (1, 3):
            assert_true(len(_draw(n, choices, "flexible", gen)) == n and len(_draw(n, choices, "uniform", gen)) == n,
                        f"sample_ratios({n}, ...) should return {n} ratios")
        for mode in ("uniform", "flexible"):
            judge.manual_seed(_s)                             # torch's global RNG, where your code runs too
            a = [_draw(6, choices, mode, g) for g in [torch.Generator().manual_seed(_s + 3)] for _ in range(5)]
            judge.manual_seed(_s + 12345)
            b = [_draw(6, choices, mode, g) for g in [torch.Generator().manual_seed(_s + 3)] for _ in range(5)]
            assert_true(a == b, f"{mode}: the same seeded generator must give the same ratios whatever the "
                                f"global seed; got {a[0]} and {b[0]}")
    d = [float(v) for v in call("sample_ratios(7, generator=...)", sample_ratios, 7, generator=torch.Generator().manual_seed(_s))]
    assert_true(len(set(d)) == 1 and any(abs(d[0] - c) < 1e-6 for c in (0.25, 0.5, 0.75, 1.0)),
                f"the defaults are uniform mode over (0.25, 0.5, 0.75, 1.0), got {d}")
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "test_sample_ratios_validation", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
import torch
from effcourse.checks import lab4

lab4.check_sample_ratios_validation(sample_ratios)
### BEGIN HIDDEN TESTS
for bad in ("Uniform", "per_layer", "", None):
    try:
        sample_ratios(3, (0.5, 1.0), bad, torch.Generator())
    except ValueError:
        pass
    else:
        raise AssertionError(f"sample_ratios with mode={bad!r} should raise ValueError")
### END HIDDEN TESTS

# %% [markdown]
# ## 4. A discriminator that knows which generator it judges
#
# One discriminator judging sub-generators of very different capacity gives poor feedback: what is
# a good 0.25× sample is a bad 1× sample. The paper **conditions D on the architecture**: a one-hot
# code $a$ of the sampled ratios (per elastic layer, which of the choices; `G.arch_code()`) modulates
# D's features $h \in \mathbb{R}^{N \times C \times H \times W}$ channel by channel,
#
# $$ h' = h \odot \bigl(1 + \gamma(a)\bigr) + \beta(a), \qquad \gamma, \beta: \mathbb{R}^{d} \to \mathbb{R}^{C}\ \text{(linear layers)}. $$
#
# With $\gamma$ and $\beta$ **zero-initialised**, the modulation starts as the identity, so it can be
# added to an already trained discriminator without changing what it outputs. (The official
# `AdaptiveModulate` in `models/ops.py` has the same form but keeps PyTorch's default initialisation,
# shares one code across the batch, and sits only in D's last two blocks; here each image carries its
# own code, because the reals get a code of their own, see §6, and the modulation follows every block.)

# %% nbgrader={"grade": false, "grade_id": "ArchModulation", "locked": false, "schema_version": 3, "solution": true, "task": false}
class ArchModulation(nn.Module):
    """Architecture-conditioned feature modulation of the G-conditioned discriminator.

    __init__(code_dim, num_channels): gamma and beta are linear maps from a code (N, code_dim) to
    (N, num_channels); all their parameters start at zero, so the module is the identity until trained.
    forward(h, code): h (N, C, H, W), code (N, code_dim) -> h * (1 + gamma(code)) + beta(code), with
    gamma and beta broadcast over H and W (sample n uses code[n]).
    """

    def __init__(self, code_dim, num_channels):
        super().__init__()
        ### BEGIN SOLUTION
        self.gamma = nn.Linear(code_dim, num_channels)
        self.beta = nn.Linear(code_dim, num_channels)
        for p in self.parameters():
            nn.init.zeros_(p)
        ### END SOLUTION

    def forward(self, h, code):
        ### BEGIN SOLUTION
        gamma = self.gamma(code)[:, :, None, None]
        beta = self.beta(code)[:, :, None, None]
        return h * (1 + gamma) + beta
        ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_ArchModulation", "locked": true, "points": 12, "schema_version": 3, "solution": false, "task": false}
import torch
import torch.nn.functional as F
from effcourse.checks import lab4

lab4.check_arch_modulation(ArchModulation)
### BEGIN HIDDEN TESTS
from effcourse import judge
from effcourse.checks.asserts import assert_close, assert_true, call
with lab4.seed_in_failures(lab4.clock_seed() + 2) as _seed:
    _g = torch.Generator().manual_seed(_seed)
    for (d, C, N, H, W) in [(24, 8, 3, 4, 4), (4, 1, 1, 3, 5), (12, 13, 5, 1, 1), (6, 3, 2, 7, 2)]:
        where = f"ArchModulation({d}, {C}) on h {(N, C, H, W)}"
        mod = call(where, ArchModulation, d, C)
        h = torch.randn(N, C, H, W, generator=_g)
        code = F.one_hot(torch.randint(0, d, (N,), generator=_g), d).float()
        assert_close(f"{where}: zero-initialised it must be the identity", call(where, mod, h, code), h, atol=1e-6)
        out = call(where, mod, h.clone().requires_grad_(True), code)
        out.pow(2).sum().backward()
        params = list(call(f"{where}.parameters()", mod.parameters))
        assert_true(any(p.grad is not None and p.grad.abs().sum() > 0 for p in params),
                    f"{where}: at zero initialisation the modulation's parameters must still get gradient (it has to learn)")
        names = [n for n, _ in call(f"{where}.named_parameters()", mod.named_parameters)]
        state = dict(call(f"{where}.state_dict()", mod.state_dict))
        state.update({n: torch.randn(state[n].shape, generator=_g) for n in names})
        call(f"{where}.load_state_dict(...)", mod.load_state_dict, state)         # "trained": random parameters
        out = mod(h, code)
        assert_true(tuple(out.shape) == (N, C, H, W), f"{where}: output shape should be {(N, C, H, W)}, got {tuple(out.shape)}")
        zero = mod(torch.zeros_like(h), code)
        assert_close(f"{where}: the shift beta(code) must be the same at every pixel", zero,
                     zero[:, :, :1, :1].expand_as(zero), atol=1e-5)
        scale = mod(torch.ones_like(h), code) - zero
        assert_close(f"{where}: the scale 1 + gamma(code) must be the same at every pixel", scale,
                     scale[:, :, :1, :1].expand_as(scale), atol=1e-5)
        assert_close(f"{where}: the output must be h * scale + shift", out, h * scale + zero, atol=1e-4)
        if N > 1:
            per = torch.cat([mod(h[i:i + 1], code[i:i + 1]) for i in range(N)])
            assert_close(f"{where}: sample n must use code[n]", out, per, atol=1e-5)
        # all d one-hot codes at once: with random parameters, d >= 4 shifts (or scales) of a channel agree
        # within 1e-4 only with probability < 1e-12, so a correct module never fails this by chance
        every = torch.eye(d)
        zero_e = mod(torch.zeros(d, C, 1, 1), every)
        scale_e = mod(torch.ones(d, C, 1, 1), every) - zero_e
        assert_true(not torch.allclose(zero_e, zero_e[:1].expand_as(zero_e), atol=1e-4),
                    f"{where}: once trained, the shift beta(code) must depend on the code")
        assert_true(not torch.allclose(scale_e, scale_e[:1].expand_as(scale_e), atol=1e-4),
                    f"{where}: once trained, the scale 1 + gamma(code) must depend on the code")
        # gamma and beta are linear (affine) in the code: check on mixtures of two multi-hot codes
        c1, c2 = (torch.rand(N, d, generator=_g).round() for _ in range(2))
        t = 0.3
        mix = t * c1 + (1 - t) * c2
        for name, f in (("shift beta(code)", lambda c: mod(torch.zeros_like(h), c)),
                        ("scale 1 + gamma(code)", lambda c: mod(torch.ones_like(h), c) - mod(torch.zeros_like(h), c))):
            assert_close(f"{where}: the {name} must be linear in the code", f(mix), t * f(c1) + (1 - t) * f(c2), atol=1e-4)
### END HIDDEN TESTS

# %% [markdown]
# ## 5. Consistency loss
#
# For the same latent $z$, a sub-generator's output $G_{\text{sub}}(z)$ at resolution $r$ should look
# like the full generator's output $G(z)$ at the top resolution $R$, shrunk to $r$:
#
# $$ \mathcal{L}_\text{cons} = \bigl\lVert G_\text{sub}(z) - \operatorname{down}_{R \to r}\bigl(\operatorname{sg}[G(z)]\bigr) \bigr\rVert_2^2 \quad(\text{mean over all values}). $$
#
# $\operatorname{down}$ is average pooling: each sub-output pixel is compared with the mean of the
# $(R/r) \times (R/r)$ full-output pixels it covers. $\operatorname{sg}$ is *stop-gradient*: the full
# output is the teacher; the loss must pull the sub-network towards it, never pull the teacher
# towards its weaker students. The official distillation loss (`tools/train_gan.py`) is this MSE
# **plus LPIPS**, a perceptual distance computed by an ImageNet-pretrained VGG; those weights cannot
# be downloaded in this offline course, so we use the MSE alone. It also shrinks the teacher's output
# with bilinear interpolation (`utils/train_utils.py: get_teacher_multi_res`) where we average-pool,
# which does not alias.

# %% nbgrader={"grade": false, "grade_id": "consistency_loss", "locked": false, "schema_version": 3, "solution": true, "task": false}
def consistency_loss(sub_out, full_out):
    """MSE between a sub-generator's output and the full generator's output shrunk to its size.

    sub_out: (N, C, r, r); full_out: (N, C, R, R) with R a multiple of r (R == r allowed).
    The full output is average-pooled to r x r (F.avg_pool2d / F.adaptive_avg_pool2d /
    F.interpolate(mode="area") agree for integer factors) and detached: no gradient reaches it.
    Returns a scalar tensor, the mean squared difference over all N*C*r*r values.
    """
    ### BEGIN SOLUTION
    target = F.adaptive_avg_pool2d(full_out.detach(), sub_out.shape[-2:])
    return F.mse_loss(sub_out, target)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_consistency_loss", "locked": true, "points": 12, "schema_version": 3, "solution": false, "task": false}
import torch
from effcourse.checks import lab4

lab4.check_consistency_loss(consistency_loss)
### BEGIN HIDDEN TESTS
from effcourse.checks.asserts import assert_close, assert_true, call
with lab4.seed_in_failures(lab4.clock_seed() + 3) as _seed:
    _g = torch.Generator().manual_seed(_seed)
    for (N, C, r, f) in [(3, 1, 8, 4), (1, 3, 5, 2), (2, 1, 16, 1), (4, 2, 3, 3), (2, 1, 4, 8)]:
        where = f"consistency_loss(sub {(N, C, r, r)}, full {(N, C, r * f, r * f)})"
        sub = torch.randn(N, C, r, r, generator=_g, dtype=torch.float64).requires_grad_(True)
        full = torch.randn(N, C, r * f, r * f, generator=_g, dtype=torch.float64).requires_grad_(True)
        sub0, full0 = sub.detach().clone(), full.detach().clone()
        loss = call(where, consistency_loss, sub, full)
        down = full0.reshape(N, C, r, f, r, f).mean(dim=(3, 5))
        exp = (sub0 - down).pow(2).mean()
        assert_true(isinstance(loss, torch.Tensor) and loss.numel() == 1, f"{where}: should return a scalar tensor")
        assert_close(where, loss.reshape(()), exp, atol=1e-9)
        loss.backward()
        assert_true(full.grad is None or full.grad.abs().max() == 0, f"{where}: no gradient may reach full_out (detach it)")
        assert_close(f"{where}: gradient into sub_out", sub.grad, 2 * (sub0 - down) / sub.numel(), atol=1e-9)
        assert_true(torch.equal(sub.detach(), sub0) and torch.equal(full.detach(), full0), f"{where}: inputs must not be modified")
### END HIDDEN TESTS

# %% [markdown]
# ## 6. The training step: distillation from a frozen teacher, sampled resolutions and channels
#
# Anycost GAN fine-tunes a pre-trained generator in which every stage already outputs an image.
# As in the official code (`tools/train_gan.py` with `--dynamic_channel --conditioned_d
# --teacher_ckpt`), a **frozen copy of that pre-trained generator is the teacher**: each step trains
# one randomly drawn sub-generator, adversarially at a few sampled resolutions and by distillation
# from the teacher at *every* resolution. StyleGAN2 trains only the top resolution and MSG-GAN feeds
# every resolution to D at every step; Anycost GAN **samples** (the official recipe: 2 of its 4
# resolutions per step, `--n_sampled_res 2`). One step:
#
# 1. **Draw**, all with `generator`: the sub-generator's `ratios = sample_ratios(G.n_layers, choices, mode, generator)`;
#    a second, independent `real_ratios = sample_ratios(...)` (the official code gives the reals a random
#    architecture code, so that the code alone cannot tell D which images are real); `n_res` different
#    resolutions $S$, uniformly from `G.resolutions`; latents $z \sim \mathcal{N}(0, I)$, one row per real image.
# 2. **Sub-generator:** `G.set_ratio(ratios)`; its images $x_r$ at every resolution $r$ (`G.forward_all(z)`);
#    codes $a$ = `G.arch_code(ratios)` and $a_\text{real}$ = `G.arch_code(real_ratios)`, one row per image for D.
# 3. **Teacher:** $y$ = `teacher(z)` (top resolution), without gradient.
# 4. **D step:** $\mathcal{L}_D = \sum_{r \in S}$ `d_loss(D(resize(real, r), a_real), D(sg[x_r], a))`;
#    clear D's old gradients, backward, `d_opt.step()`.
# 5. **G step**, judged by the *updated* D: $\mathcal{L}_\text{cons} = \sum_{r \in \text{G.resolutions}}$
#    `consistency_loss(x_r, y)` and $\mathcal{L}_G = \sum_{r \in S}$ `g_loss(D(x_r, a))` $+ \lambda\,\mathcal{L}_\text{cons}$;
#    clear G's old gradients, backward, `g_opt.step()`.
#
# (`anycost.d_loss`/`g_loss` are the non-saturating logistic losses, `anycost.resize` shrinks with area
# averaging, sg is `.detach()`.) Two simplifications of the official loop: one configuration and one
# $z$ serve both the D step and the G step (the official code draws them afresh for each), and there is
# no R1 penalty. The step gets `teacher`, `sample_ratios` and `consistency_loss` as arguments, so it can
# be tested on its own: the checks pass spies (a scripted `sample_ratios` that hands out fixed
# configurations, a probe in place of the consistency loss) and look at what your step does with them.

# %% nbgrader={"grade": false, "grade_id": "anycost_step", "locked": false, "schema_version": 3, "solution": true, "task": false}
def anycost_step(G, D, real, g_opt, d_opt, generator, teacher, sample_ratios, consistency_loss,
                 choices=(0.25, 0.5, 0.75, 1.0), mode="uniform", n_res=1, lambda_consistency=1.0):
    """One Anycost GAN training step (the five steps above): D's update, then G's.

    G: the anycost.AnycostGenerator being trained (G.resolutions, G.n_layers, G.z_dim, G.set_ratio,
       G.arch_code, G.forward_all(z), G(z, target_resolution)).
    D: called as D(images, code) -> logits (N,), with code (N, code_dim), one row per image.
    real: (N, C, R, R) real images at G's top resolution R.   g_opt, d_opt: the optimisers of G and D.
    generator: the torch.Generator for every random draw of the step (resolutions, z).
    teacher: the frozen pre-trained generator; teacher(z) is its (N, C, R, R) output.
    sample_ratios(n_layers, choices, mode, generator), consistency_loss(sub_out, full_out): your
    functions, passed in (sample_ratios is called twice: one draw for G's configuration, one for the reals' code).
    n_res: how many different resolutions the adversarial losses use this step.
    Returns {"d_loss": L_D, "g_loss": L_G, "consistency": L_cons (numbers),
             "resolutions": the list of sampled resolutions, "ratios": G's configuration (a list)}.
    """
    ### BEGIN SOLUTION
    n = len(real)
    ratios = sample_ratios(G.n_layers, choices, mode, generator)
    real_ratios = sample_ratios(G.n_layers, choices, mode, generator)
    picked = torch.randperm(len(G.resolutions), generator=generator)[:n_res]
    resolutions = sorted(G.resolutions[int(i)] for i in picked)
    z = torch.randn(n, G.z_dim, generator=generator).to(real.device)
    G.set_ratio(ratios)
    code = G.arch_code(ratios).expand(n, -1)
    code_real = G.arch_code(real_ratios).expand(n, -1)
    fakes = dict(zip(G.resolutions, G.forward_all(z)))
    with torch.no_grad():
        target = teacher(z)
    loss_d = sum(anycost.d_loss(D(anycost.resize(real, r), code_real), D(fakes[r].detach(), code))
                 for r in resolutions)
    d_opt.zero_grad(set_to_none=True)
    loss_d.backward()
    d_opt.step()
    cons = sum(consistency_loss(fakes[r], target) for r in G.resolutions)
    loss_g = sum(anycost.g_loss(D(fakes[r], code)) for r in resolutions) + lambda_consistency * cons
    g_opt.zero_grad(set_to_none=True)
    loss_g.backward()
    g_opt.step()
    G.set_ratio(1.0)
    return {"d_loss": loss_d.item(), "g_loss": loss_g.item(), "consistency": cons.item(),
            "resolutions": resolutions, "ratios": ratios}
    ### END SOLUTION


# %% [markdown]
# Three grade cells judge the step, each against a hand replay of what it drew: D's update, G's
# update, and the consistency term. (A fourth, below, judges how the resolutions are drawn.)

# %% nbgrader={"grade": true, "grade_id": "test_anycost_step", "locked": true, "points": 6, "schema_version": 3, "solution": false, "task": false}
import torch
from effcourse.checks import lab4

lab4.check_anycost_step(anycost_step)
### BEGIN HIDDEN TESTS
# D's update. The spies are built where your code runs (lab4.StepRig, through effcourse.judge); what they
# logged comes back as plain data, and the replay and every comparison happen here. No check depends on the
# direction of one finite SGD step (such sign checks fail by chance for a few seeds in a thousand): the replay
# compares each update with -lr * the gradient of the loss the contract states.
from effcourse import judge
from effcourse.checks.asserts import assert_close, assert_true, call
from effcourse.gan import anycost
with lab4.seed_in_failures(lab4.clock_seed()) as _s:
    for i, (batch, mode, n_res, lam, choices) in enumerate([(2, "flexible", 2, 3.0, (0.25, 0.5, 0.75, 1.0)),
                                                            (1, "uniform", 3, 0.5, (0.5, 1.0))]):
        seed = _s + i
        where = f"[seed {seed}] batch {batch}, mode {mode!r}, n_res {n_res}, lambda {lam}"
        run = lab4.run_step(anycost_step, seed=seed, batch=batch, mode=mode, n_res=n_res, lambda_consistency=lam,
                            choices=choices)
        ing = lab4.replay(run)
        G0, D0, z, real = ing["G0"], ing["D0"], ing["z"], ing["real"]
        G0.set_ratio(ing["fake_ratios"])
        fakes = dict(zip(G0.resolutions, G0.forward_all(z)))
        code = G0.arch_code(ing["fake_ratios"]).expand(batch, -1)
        code_real = G0.arch_code(ing["real_ratios"]).expand(batch, -1)
        loss_d = sum(anycost.d_loss(D0(anycost.resize(real, r), code_real), D0(fakes[r].detach(), code)) for r in ing["res"])
        grads = torch.autograd.grad(loss_d, list(D0.parameters()), allow_unused=True)
        for k, (g, d) in enumerate(zip(grads, ing["dD"])):
            assert_close(f"{where}: D's update (one SGD step on L_D, from cleared gradients), parameter {k}", d,
                         torch.zeros_like(d) if g is None else -ing["d_lr"] * g, atol=1e-6, rtol=1e-3)
        got = float(torch.as_tensor(run["out"]["d_loss"]).detach())
        assert_true(abs(got - loss_d.item()) < 1e-4 * max(1.0, abs(loss_d.item())),
                    f"{where}: out['d_loss'] is {got:.6g}, expected {loss_d.item():.6g}")
    # every draw comes from the generator passed in: the last run again under another global seed (set in your kernel)
    again = lab4.run_step(anycost_step, seed=seed, batch=batch, mode=mode, n_res=n_res, lambda_consistency=lam,
                          choices=choices, global_seed=_s + 1)
    assert_true(torch.equal(again["rep"]["G_calls"][0]["z"], z)
                and [int(r) for r in again["out"]["resolutions"]] == [int(r) for r in run["out"]["resolutions"]],
                f"[seed {seed}] the step must draw everything (resolutions, z) from the generator it is given, not from "
                f"torch's global random state")
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "test_anycost_step_g", "locked": true, "points": 6, "schema_version": 3, "solution": false, "task": false}
import torch
from effcourse.checks import lab4

### BEGIN HIDDEN TESTS
# G's update, judged by the updated D (D1: the recorded D after its step, so a wrong D step does not cost
# these points): one SGD step on L_G = sum_S g_loss(D1(x_r, a)) + lambda * sum_r consistency_loss(x_r, y).
from effcourse.checks.asserts import assert_close, assert_true
from effcourse.gan import anycost
with lab4.seed_in_failures(lab4.clock_seed() + 11) as _s:
    for i, (batch, mode, n_res, lam, choices) in enumerate([(2, "uniform", 1, 2.0, (0.25, 0.5, 0.75, 1.0)),
                                                            (3, "flexible", 2, 0.5, (0.5, 1.0))]):
        seed = _s + i
        where = f"[seed {seed}] batch {batch}, mode {mode!r}, n_res {n_res}, lambda {lam}"
        run = lab4.run_step(anycost_step, seed=seed, batch=batch, mode=mode, n_res=n_res, lambda_consistency=lam,
                            choices=choices)
        ing = lab4.replay(run)
        G0, D1, z = ing["G0"], ing["D1"], ing["z"]
        G0.set_ratio(ing["fake_ratios"])
        fakes = dict(zip(G0.resolutions, G0.forward_all(z)))
        code = G0.arch_code(ing["fake_ratios"]).expand(batch, -1)
        loss_g = (sum(anycost.g_loss(D1(fakes[r], code)) for r in ing["res"])
                  + ing["lam"] * sum(ing["probe"](fakes[r]) for r in G0.resolutions))
        grads = torch.autograd.grad(loss_g, list(G0.parameters()), allow_unused=True)
        for k, (g, d) in enumerate(zip(grads, ing["dG"])):
            assert_close(f"{where}: G's update (one SGD step on L_G against the updated D, from cleared gradients), "
                         f"parameter {k}", d, torch.zeros_like(d) if g is None else -ing["g_lr"] * g, atol=1e-6, rtol=1e-3)
        got = float(torch.as_tensor(run["out"]["g_loss"]).detach())
        assert_true(abs(got - loss_g.item()) < 1e-4 * max(1.0, abs(loss_g.item())),
                    f"{where}: out['g_loss'] is {got:.6g}, expected {loss_g.item():.6g}")
### END HIDDEN TESTS

# %% nbgrader={"grade": true, "grade_id": "test_anycost_step_consistency", "locked": true, "points": 4, "schema_version": 3, "solution": false, "task": false}
import torch
from effcourse.checks import lab4

### BEGIN HIDDEN TESTS
# The distillation term alone: the same step with lambda and with 0 differs in G's update by exactly
# -lr * lambda * d/dG sum_r consistency_loss(x_r, teacher(z)) (every resolution of the sampled sub-generator,
# against the frozen teacher); the leftover gradients and the adversarial part cancel in the difference.
from effcourse.checks.asserts import assert_close, assert_true
with lab4.seed_in_failures(lab4.clock_seed() + 23) as _s:
    for i, (batch, mode, n_res, lam, choices) in enumerate([(2, "flexible", 1, 1.5, (0.25, 0.5, 0.75, 1.0)),
                                                            (1, "uniform", 2, 4.0, (0.5, 1.0))]):
        seed = _s + i
        where = f"[seed {seed}] batch {batch}, mode {mode!r}, n_res {n_res}, lambda {lam}"
        run = lab4.run_step(anycost_step, seed=seed, batch=batch, mode=mode, n_res=n_res, lambda_consistency=lam,
                            choices=choices)
        zero = lab4.run_step(anycost_step, seed=seed, batch=batch, mode=mode, n_res=n_res, lambda_consistency=0.0,
                             choices=choices)
        ing = lab4.replay(run)
        G0, z = ing["G0"], ing["z"]
        G0.set_ratio(ing["fake_ratios"])
        cons = sum(ing["probe"](x) for x in G0.forward_all(z))
        grads = torch.autograd.grad(cons, list(G0.parameters()), allow_unused=True)
        for k, (g, a, b) in enumerate(zip(grads, run["dG"], zero["dG"])):
            assert_close(f"{where}: G's update with lambda minus G's update with 0 (the consistency term's share), "
                         f"parameter {k}", a - b, torch.zeros_like(a) if g is None else -ing["g_lr"] * lam * g,
                         atol=1e-6, rtol=1e-3)
        teacher_out = lab4.facts(run)["teacher_out"]
        for _sub, _grad, _full in run["rep"]["cons_calls"]:
            assert_close(f"{where}: full_out passed to consistency_loss (the frozen teacher's output teacher(z))", _full,
                         teacher_out, atol=1e-6)
        assert_true(not run["teacher_changed"], f"{where}: the teacher's weights changed: it is a frozen target")
        got = float(torch.as_tensor(run["out"]["consistency"]).detach())
        assert_true(abs(got - cons.item()) < 1e-4 * max(1.0, abs(cons.item())),
                    f"{where}: out['consistency'] is {got:.6g}, expected {cons.item():.6g} (the sum of consistency_loss "
                    f"over every resolution)")
### END HIDDEN TESTS

# %% [markdown]
# The resolutions a step trains adversarially are a **uniform** draw of `n_res` different ones: every
# resolution (and, for `n_res = 2`, every pair) equally often, the top one included but not favoured.

# %% nbgrader={"grade": true, "grade_id": "test_anycost_step_sampling", "locked": true, "points": 4, "schema_version": 3, "solution": false, "task": false}
from effcourse.checks import lab4

lab4.check_step_sampling(anycost_step)
### BEGIN HIDDEN TESTS
# 60 steps with n_res=1 and 60 with n_res=2 (the spies' learning rates are 0, nothing trains). A uniform draw
# makes each of the 3 resolutions (n_res=1) and each of the 3 pairs (n_res=2) an outcome of probability 1/3,
# so its count is Binomial(60, 1/3) and the test asks for at least 3 of each. False-failure rate of a correct
# step, by the union bound over the 6 counts: 6 * P(Bin(60, 1/3) <= 2) = 6 * 1.29e-8 <= 7.8e-8. A step that
# always trains the top resolution plus random lower ones never draws 8 alone nor the pair {8, 16}: it fails
# every time.
import time
from math import comb
from effcourse.checks.asserts import assert_true
with lab4.seed_in_failures(lab4.clock_seed() + 7) as _s:
    _N, _LO = 60, 3
    assert 6 * sum(comb(_N, k) * (1 / 3) ** k * (2 / 3) ** (_N - k) for k in range(_LO)) <= 7.8e-8
    for n_res in (1, 2):
        drawn = lab4.sampled_resolutions(anycost_step, n_steps=_N, n_res=n_res, seed=_s + n_res)
        rs = (8, 16, 32)
        assert_true(all(len(d) == n_res and len(set(d)) == n_res and set(d) <= set(rs) for d in drawn),
                    f"with n_res={n_res} every step should sample {n_res} different resolutions of {rs}, "
                    f"got {[d for d in drawn if len(d) != n_res or len(set(d)) != n_res or not set(d) <= set(rs)][:3]}")
        outcomes = [frozenset(o) for o in ([(r,) for r in rs] if n_res == 1 else [(8, 16), (8, 32), (16, 32)])]
        counts = {tuple(sorted(o)): sum(frozenset(d) == o for d in drawn) for o in outcomes}
        assert_true(min(counts.values()) >= _LO,
                    f"with n_res={n_res}, {_N} steps drew {counts}: a uniform draw gives each about "
                    f"{_N // 3} (fewer than {_LO} happens by chance with probability < 1e-7)")
    drawn = lab4.sampled_resolutions(anycost_step, n_steps=2, n_res=3, seed=_s)
    assert_true(all(sorted(d) == [8, 16, 32] for d in drawn), f"n_res=3 draws every resolution, got {drawn}")
### END HIDDEN TESTS

# %% [markdown]
# ## 7. Experiment: sort, then train three anycost generators
#
# **Start point.** Anycost GAN starts from a pre-trained multi-resolution generator (all ratios 1).
# The course ships one, trained by the instructor's asset script for 3000 steps at full width
# with sampling-based multi-resolution training, each sampled lower-resolution output also pulled
# towards the same generator's own top output (a stand-in for the official multi-resolution stage,
# which distils from a pre-trained StyleGAN2). Set `PRETRAIN_STEPS = 3000` above to train a fresh one
# here (a few minutes of CPU) with your own step: ratio 1 only, one resolution per step, and the
# generator itself as its teacher, which is close to the asset's recipe.
#
# **Sorting.** First, how much does channel order matter before any anycost training? Below, the
# pre-trained generator's sub-generators are compared with its full output, unsorted, sorted by the
# official criterion (your `sort_channels`: how much the next layer uses a channel) and sorted by
# each filter's own L1 norm (the common alternative; we compute it with your function, by handing it
# a stand-in next layer whose weights on channel $c$ are the L1 norm of filter $c$).

# %% tags=["experiment"]
def make_pretrained():
    G = anycost.AnycostGenerator(ElasticConv2d, z_dim=32, channels=(64, 32, 16))
    D = anycost.AnycostDiscriminator(channels=(8, 16, 32))
    if PRETRAIN_STEPS:
        anycost.train(G, D, reals, anycost_step, loop=Loop(steps=PRETRAIN_STEPS, batch_size=16, seed=SEED,
                                                           desc="pre-train (ratio 1)"), lr=1e-3, ema=0.99, teacher=G, sample_ratios=sample_ratios,
                      consistency_loss=consistency_loss, choices=(1.0,), n_res=1, lambda_consistency=1.0)
    else:
        state = effcourse.assets.load_asset("lab4_anycost")
        G.load_state_dict(state["G"])
        D.load_state_dict(state["D"])
    return G.eval(), D.eval()


def sort_by_own_filter(layer, next_layer):
    """The other criterion: rank layer's channels by the L1 norm of their own filters (with your function)."""
    stand_in = nn.Conv2d(layer.out_channels, 1, 1, bias=False)
    with torch.no_grad():
        stand_in.weight.copy_(layer.weight.abs().sum(dim=(1, 2, 3)).view(1, -1, 1, 1))
        perm = sort_channels(layer, stand_in).long()
        next_layer.weight.copy_(next_layer.weight[:, perm])      # what sort_channels did to the stand-in
    return perm


def consistency_grid(G, z):
    """PSNR (dB) of every sub-configuration's output against the full output, shrunk to its size."""
    full = anycost.sample(G, z)
    return {(r, res): psnr(anycost.sample(G, z, r, res), anycost.resize(full, res))
            for r in CHOICES for res in G.resolutions if (r, res) != (1.0, G.resolutions[-1])}


t0 = time.time()
G0, D0 = make_pretrained()
top = G0.resolutions[-1]
z_eval = torch.randn(N_EVAL, G0.z_dim, generator=torch.Generator().manual_seed(SEED + 1))
sorted_by = {"unsorted": G0, "own filter L1": copy.deepcopy(G0), "next layer's use (official)": copy.deepcopy(G0)}
sorted_by["own filter L1"].sort_channels(sort_by_own_filter)
sorted_by["next layer's use (official)"].sort_channels(sort_channels)
sort_psnr = {name: consistency_grid(g, z_eval[:N_SORT]) for name, g in sorted_by.items()}
for key, name in (("none", "unsorted"), ("filter", "own filter L1"), ("next", "next layer's use (official)")):
    effcourse.record(f"sort_psnr_{key}", {str(r): sort_psnr[name][(r, top)] for r in CHOICES[:-1]})
_ = plots.table([{"ratio": f"{r}x", **{f"PSNR {name} (dB)": g[(r, top)] for name, g in sort_psnr.items()}}
             for r in CHOICES[:-1]], floatfmt=".1f",
            title=f"Pre-trained generator, before any anycost training: sub-generator vs full output at {top} px")
fig, axes = plt.subplots(len(sorted_by) + 1, 1, figsize=(9, 1.3 * (len(sorted_by) + 1)))
plots.image_grid(anycost.sample(G0, z_eval[:12]), nrow=12, ax=axes[0], title="full generator", vmin=-1, vmax=1)
for ax, (name, g) in zip(axes[1:], sorted_by.items()):
    plots.image_grid(anycost.sample(g, z_eval[:12], 0.5), nrow=12, ax=ax, title=f"0.5x channels, {name}", vmin=-1, vmax=1)
plt.tight_layout()
plt.show()

# %% [markdown]
# Both orders help the wider sub-generators over an arbitrary one, and neither makes a quarter of
# the channels draw a usable digit: a 0.25× network has to be *trained* to work on its own. Which
# criterion wins depends on the width: on the bundled generator the filter norm gives the better
# 0.5× and 0.75× previews (by about 1 dB) and the official criterion the better 0.25× one, where the
# filter norm is even worse than no sorting. This is one measurement on one pre-trained network, and
# both criteria are cheap proxies for "what the full output loses without this channel". The runs
# below start from the official order.
#
# **Training.** Three anycost generators from the same sorted start, each for the same number of
# steps with uniform channel sampling, `N_RES` sampled resolutions per step and the frozen teacher:
#
# | run | discriminator | consistency (distillation) |
# |---|---|---|
# | **G-conditioned D** | conditioned on the architecture code (your `ArchModulation`) | yes, λ = `LAMBDA` |
# | **no consistency** | conditioned | no (λ = 0) |
# | **same D** | one D for every sub-generator (the code is ignored) | yes, λ = `LAMBDA` |
#
# The first run is the paper's recipe and doubles as one arm of each comparison. (λ: the official
# code weighs MSE + LPIPS by 2, `--distill_loss_alpha`; with the MSE alone on 32 px digits we use 10.)

# %% tags=["experiment"]
G_start = sorted_by["next layer's use (official)"]
teacher = anycost.frozen_copy(G_start)


def finetune(conditioned, lam, desc):
    G = copy.deepcopy(G_start).train()
    D = anycost.conditioned_copy(D0, ArchModulation, G.code_dim) if conditioned else copy.deepcopy(D0)
    hist = anycost.train(G, D, reals, anycost_step, loop=Loop(steps=FINETUNE_STEPS, batch_size=16, seed=SEED + 2,
                                                              desc=desc), lr=1e-3, ema=0.9, teacher=teacher, sample_ratios=sample_ratios, consistency_loss=consistency_loss,
                         choices=CHOICES, mode="uniform", n_res=N_RES, lambda_consistency=lam)
    return G.eval(), hist


runs = {}
runs["G-conditioned D"], _ = finetune(True, LAMBDA, "G-conditioned D, consistency")

# %% tags=["experiment"]
runs["no consistency"], _ = finetune(True, 0.0, "G-conditioned D, no consistency")

# %% tags=["experiment"]
runs["same D"], _ = finetune(False, LAMBDA, "same D, consistency")
print(f"loading, sorting and three anycost trainings: {time.time() - t0:.0f} s")

# %% [markdown]
# ### Consistency: does the preview show the same digit?
#
# For `N_EVAL` latents, the PSNR between each sub-configuration's output and the full output of
# the same generator, shrunk to the same size. Higher is more consistent; identical images would be ∞.

# %% tags=["experiment"]
cons = {name: consistency_grid(G, z_eval) for name, G in runs.items()}
sub_configs = list(cons["G-conditioned D"])
mean_with = sum(cons["G-conditioned D"].values()) / len(sub_configs)
mean_without = sum(cons["no consistency"].values()) / len(sub_configs)
effcourse.record("psnr_with_consistency", mean_with)
effcourse.record("psnr_without_consistency", mean_without)
effcourse.record("psnr_grid", {f"{name}|{r}|{res}": v for name, g in cons.items() for (r, res), v in g.items()})
_ = plots.table([{"ratio": f"{r}x", "resolution": res, **{name: cons[name][(r, res)] for name in runs}} for r, res in sub_configs],
                floatfmt=".1f", title="PSNR (dB) of sub-generator vs full output")
fig, axes = plt.subplots(len(runs), 4, figsize=(12, 1.2 * len(runs) + 0.6))
for i, (name, G) in enumerate(runs.items()):
    for j, r in enumerate(reversed(CHOICES)):
        plots.image_grid(anycost.sample(G, z_eval[:6], r), nrow=6, ax=axes[i, j], vmin=-1, vmax=1,
                         title=f"{name}: {r}x" if j == 0 else f"{r}x")
plt.tight_layout()
plt.show()

# %% [markdown]
# With the distillation term, every sub-configuration's output stays close to the full output
# (higher PSNR): the preview shows the same digit. Without it, weight sharing alone keeps them related
# but they drift apart, and so does the full generator itself, which no longer has the teacher to hold
# it. The 0.25× generator stays the least consistent, although it is not short of training: its
# channels are the leading quarter of every layer, shared by every configuration, so every step
# trains them. What it lacks is capacity: four channels at 32 px is very little.

# %% [markdown]
# ### Quality per configuration: same D vs. G-conditioned D
#
# The digit-feature Fréchet distance (lower is better) of each sub-generator's samples at 32 px
# against all 1797 digits. It uses a small digit classifier's features, **not** Inception: compare
# the numbers with each other, never with the paper's FIDs. It has a finite-sample floor (two
# halves of the real digits score about 2), so small differences are noise.

# %% tags=["experiment"]
fd = {name: {r: frechet_distance(reals, anycost.sample(G, z_eval, r)) for r in CHOICES}
      for name, G in runs.items()}
fd["teacher (pre-trained)"] = {1.0: frechet_distance(reals, anycost.sample(teacher, z_eval))}
effcourse.record("fd_conditioned", {str(r): v for r, v in fd["G-conditioned D"].items()})
effcourse.record("fd_same_d", {str(r): v for r, v in fd["same D"].items()})
effcourse.record("fd_no_consistency", {str(r): v for r, v in fd["no consistency"].items()})
effcourse.record("fd_teacher", fd["teacher (pre-trained)"][1.0])
_ = plots.table([{"generator": name, **{f"{r}x": d.get(r, float("nan")) for r in CHOICES}} for name, d in fd.items()],
                floatfmt=".1f", title="Digit-feature Fréchet distance at 32 px (lower is better)")

# %% [markdown]
# Read these with care: each arm is trained once, with one seed, for a short run, and a GAN's quality
# swings from step to step; the notebook makes no repeated runs, so it cannot say whether the gap
# between the two discriminators is larger than that noise: treat it as one draw, not a result. What
# this run does show, and the tests assert on the QUICK run: in every arm the 0.25× generator is by
# far the worst (4 channels at 32 px) and 0.5× is worse than the full width, while 0.75× and 1× are
# close and may come in either order; and without distillation the full-width generator is worse than
# either distilled one. In the paper a G-conditioned D helps most where one discriminator serves
# very different generators (FFHQ, 256 px, 0.25×: FID 14.01 with the same D, 8.06 G-conditioned;
# lecture 19, "Problem 2" table).

# %% [markdown]
# ## 8. Preview at any cost
#
# Drag the sliders: the same latents at another ratio or resolution, with the MACs of one image and
# the measured latency. (In a notebook without a live kernel, the preview shows its first drawing.)

# %% tags=["experiment"]
G_best = runs["G-conditioned D"]
box = preview(G_best, n_samples=16, seed=SEED)
box.ratio.value = 0.25          # what a drag does: redraw at 0.25x
box.ratio.value = 1.0
_ = effcourse.record("widget_status", box.status.value)

# %% [markdown]
# ## 9. Paper vs. you

# %% tags=["experiment"]
_ = plots.table([
    {"quantity": "computation of the cheapest config vs full", "source": "paper, abstract",
     "paper": "up to 10x less", "you": f"{1 / macs_ratio_025:.1f}x less MACs (0.25x @ 32 px)"},
    {"quantity": "speedup on CPU", "source": "paper, abstract", "paper": "6-12x",
     "you": f"{speedup_025:.1f}x (0.25x @ 32 px); {full_ms / times[(0.25, 8)]:.1f}x (0.25x @ 8 px)"},
    {"quantity": "preview consistency", "source": "paper; official README",
     "paper": "sub-generators look like the full output",
     "you": f"{mean_with:.1f} dB with distillation vs {mean_without:.1f} dB without"},
    {"quantity": "quality 1x vs 0.25x channels", "source": "lecture 19, FID-70k table (FFHQ, 256 px)",
     "paper": "FID 3.73 vs 8.06 (G-cond. D)",
     "you": f"FD {fd['G-conditioned D'][1.0]:.1f} vs {fd['G-conditioned D'][0.25]:.1f} (G-cond. D, 32 px)"},
    {"quantity": "0.25x quality: same D vs G-conditioned D", "source": "lecture 19, FID-70k table",
     "paper": "FID 14.01 vs 8.06 (256 px)",
     "you": f"FD {fd['same D'][0.25]:.1f} vs {fd['G-conditioned D'][0.25]:.1f}"},
], title="Anycost GAN: paper (FFHQ, StyleGAN2) vs. you (digits, 32 px)")

# %% [markdown]
# **Where this miniature follows the official code, and where it does not.**
#
# | | official (`mit-han-lab/anycost-gan`) | this lab |
# |---|---|---|
# | generator | StyleGAN2; 4 output resolutions trained (1024 down to 128 px) | small conv generator, 3 resolutions (8/16/32 px) |
# | channel sorting | $\sum\lvert W^\text{next}_{:,c}\rvert$ × mean $\lvert$style$_c\rvert$, output back | $\sum\lvert W^\text{next}_{:,c}\rvert$ (no styles), output back |
# | pre-trained start | multi-resolution generator distilled from StyleGAN2 | multi-resolution generator, self-distilled across resolutions (bundled) |
# | teacher | frozen pre-trained generator | the same |
# | distillation | MSE + LPIPS at every resolution, teacher shrunk bilinearly, weight 2 | MSE at every resolution, average pooling, λ = 10 (no offline LPIPS weights) |
# | reals' code in D | a random architecture code | the same |
# | sampled resolutions | 2 of 4 per step | `N_RES` of 3 |
# | draws per step | fresh configuration and $z$ for the D and the G step | one of each, shared |
# | D conditioning | last two blocks, default init, one code per batch | every block, zero init, one code per image |
# | regularisation, optimiser | R1 every 16 steps; Adam lr 0.002, betas (0, 0.99) | none; Adam lr 0.001, betas (0.5, 0.99), EMA of G |

# %% [markdown]
# ## 10. Questions
#
# **Q1.** Your consistency loss stops the gradient into the full output, and the step distils from a
# *frozen copy* of the pre-trained generator rather than from the full-width generator being trained.
# What would go wrong if the teacher were the live full generator *and* the gradient flowed into its
# output? What does a frozen teacher give up compared with a live one? (3–5 sentences)

# %% [markdown] nbgrader={"grade": true, "grade_id": "q_detach", "locked": false, "points": 10, "schema_version": 3, "solution": true, "task": false}
# Model answer: the loss is symmetric, so with a live teacher and no stop-gradient it would also pull
# the full generator towards its sub-generators. The weak, low-capacity 0.25× network would drag the
# full network's outputs towards what it can express (blurrier, less detailed images), so the
# full-cost quality, the one users finally see, gets worse; the preview would match the final image
# better only because the final image got worse. A frozen teacher cannot be dragged at all and gives
# a fixed target from the first step, but it also cannot improve: the full-width generator, which is
# still trained adversarially whenever ratio 1 is drawn, is pulled back towards the pre-trained
# outputs, and if the full generator moved away, the previews would match the teacher rather than it.

# %% [markdown]
# **Q2.** Use your own numbers: the PSNR grid of the three runs (section 7) and the Fréchet table.
# For the G-conditioned run, which sub-configuration is least consistent with the full output, and by
# how many dB does it trail the most consistent one? How much does the distillation term add to the
# mean PSNR (with vs. without consistency), and what did turning it off do to the full-width
# generator's Fréchet distance? From these numbers, is the 0.25× preview good enough to stand in for
# the full output, and what would you change to improve it? (4–6 sentences)

# %% [markdown] nbgrader={"grade": true, "grade_id": "q_numbers", "locked": false, "points": 10, "schema_version": 3, "solution": true, "task": false}
# Model answer (graded on the learner's own numbers; these are the reference QUICK run's): the least
# consistent configuration is 0.25× at 32 px (19.0 dB), about 13 dB below the most consistent, 1× at
# 16 px (32.5 dB); every 0.25× entry sits near 20 dB, every 0.75× entry near 26–30 dB. Distillation
# lifts the mean PSNR over all sub-configurations from 20.2 to 25.7 dB, and without it the full-width
# generator's Fréchet distance rises from 9.3 to 17.4: the teacher also holds the full network in
# place. A 0.25× preview at 19 dB shows roughly the digit's shape but not the same strokes (its
# Fréchet distance, 76, is eight times the full width's), so it is a rough preview at best. Its
# problem is capacity, not training time (its channels are trained in every step): wider base channels
# so that 0.25× keeps more than 4 channels, a larger λ for the narrow configurations, or simply not
# offering 0.25× at 32 px would help.
