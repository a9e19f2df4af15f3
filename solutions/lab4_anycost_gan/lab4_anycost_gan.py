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
# **Time:** about 90 minutes. **Paper:** Lin, Zhang, Yan, Wang, Han, *Anycost GANs for Interactive
# Image Synthesis and Editing*, CVPR 2021.
#
# **Intuition.** A ray tracer shows a noisy preview first and refines it later: the preview is cheap
# and *looks like* the final image. Anycost GAN does the same for a generator. One set of weights is
# trained so that (a) every stage of the generator already outputs an image (8, 16, 32 px here): stop
# early and you pay only for the stages you ran; (b) every convolution also works with only its
# first 25 %, 50 % or 75 % of channels: a 0.5× generator costs about a quarter of the MACs. Trained
# naively, a sub-generator draws a *different* picture than the full one for the same latent, which
# defeats the purpose of a preview; a consistency loss fixes that. The lecture's numbers: up to 10×
# less computation, 6–12× faster on CPUs, with a preview that matches the final output.

# %%
import time

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from torch import nn

import effcourse
from effcourse import bench, plots
from effcourse.checks import lab4
from effcourse.data.digits import load_digits
from effcourse.gan import anycost
from effcourse.widgets import anycost_preview as preview
from effcourse.metrics import frechet_distance, psnr

# %% tags=["parameters"]
QUICK = False
SEED = 0
DEVICE = "auto"

# %%
QUICK, device = effcourse.setup(QUICK, SEED, DEVICE)
device = torch.device("cpu")        # the generator is tiny: CPU is the point of this lab
CHOICES = (0.25, 0.5, 0.75, 1.0)    # channel ratios of the sub-generators
FINETUNE_STEPS = 150 if QUICK else 1000   # anycost training steps per run (batch 16)
PRETRAIN_STEPS = 0                        # 0: load the bundled pre-trained generator; 3000: train it here
N_EVAL = 500 if QUICK else 2000           # latents for consistency and Fréchet distance
reals, labels = load_digits(32)           # (1797, 1, 32, 32) in [-1, 1]
print(f"{len(reals)} digits at 32x32; fine-tuning {FINETUNE_STEPS} steps per run")
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
# and $c_\text{out}$ shrink), so 0.25× channels cost about 1/16.

# %% nbgrader={"grade": false, "grade_id": "ElasticConv2d", "locked": false, "schema_version": 3, "solution": true, "task": false}
class ElasticConv2d(nn.Conv2d):
    """An ``nn.Conv2d`` (same constructor) whose width can shrink at run time.

    Attribute ``ratio`` (float in (0, 1], 1.0 after construction): ``forward(x)`` uses the first
    ``max(1, round(ratio * out_channels))`` filters and, of each, the first ``x.shape[1]`` input
    channels (as many as it receives), with this conv's stride, padding and dilation (groups = 1),
    and the matching prefix of the bias when there is one.

    x: (N, c_in, H, W) with c_in <= in_channels  ->  (N, c_out, H', W').
    """
    ### BEGIN SOLUTION
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.ratio = 1.0

    def forward(self, x):
        c_out = max(1, round(self.ratio * self.out_channels))
        weight = self.weight[:c_out, :x.shape[1]]
        bias = None if self.bias is None else self.bias[:c_out]
        return self._conv_forward(x, weight, bias)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_ElasticConv2d", "locked": true, "points": 14, "schema_version": 3, "solution": false, "task": false}
lab4.check_elastic_conv(ElasticConv2d)
### BEGIN HIDDEN TESTS
from effcourse.checks._assert import assert_close as _close, assert_true as _true
_g = torch.Generator().manual_seed(int(time.time() * 1000) % 2**31)
for (cin, cout, k, stride, pad, bias, dil) in [(4, 6, 3, 1, 1, True, 1), (5, 7, 1, 1, 0, False, 1),
                                              (3, 10, 3, 2, 1, True, 1), (6, 5, 5, 1, 4, True, 2),
                                              (1, 3, 3, 2, 0, False, 1)]:
    torch.manual_seed(int(torch.randint(0, 10**6, (1,), generator=_g)))
    conv = ElasticConv2d(cin, cout, k, stride=stride, padding=pad, bias=bias, dilation=dil)
    _true(conv.ratio == 1.0, f"a new ElasticConv2d should have ratio 1.0, got {conv.ratio}")
    dense = nn.Conv2d(cin, cout, k, stride=stride, padding=pad, bias=bias, dilation=dil)
    dense.load_state_dict(conv.state_dict())
    x = torch.randn(3, cin, 9, 11, generator=_g)
    _close(f"ratio 1 vs the dense conv ({cin}->{cout}, k={k}, stride={stride})", conv(x), dense(x), atol=1e-5)
    for r in (1.0, 0.75, 0.5, 0.3, 0.25, 0.1, 0.01):
        if abs((r * cout) % 1 - 0.5) < 1e-9:
            continue                                       # exact .5: rounding convention, not tested
        c = max(1, round(r * cout))
        for c_in in sorted({cin, max(1, cin // 2), 1}):
            conv.ratio = r
            xi = x[:, :c_in].clone().requires_grad_(True)
            conv.zero_grad()
            y = conv(xi)
            exp = F.conv2d(xi.detach(), conv.weight[:c, :c_in].detach(),
                           None if conv.bias is None else conv.bias[:c].detach(), stride, pad, dil)
            _close(f"ratio {r} with {c_in} input channels ({cin}->{cout})", y, exp, atol=1e-5)
            y.sum().backward()
            gw = conv.weight.grad
            _true(gw is not None and gw[c:].abs().sum() == 0 and gw[:, c_in:].abs().sum() == 0,
                  f"ratio {r}: only the used prefix weight[:{c}, :{c_in}] may get gradient")
            _true(xi.grad is not None, "the input should get a gradient")
    conv.ratio = 1.0
    _close("ratio set back to 1", conv(x), dense(x), atol=1e-5)
### END HIDDEN TESTS

# %% [markdown]
# ### The generator and what a sub-generator costs
#
# `anycost.AnycostGenerator(ElasticConv2d)` builds a small generator from **your** class:
# a latent $z \in \mathbb{R}^{32}$ becomes a 4×4 map with 64 channels, then three stages (8, 16, 32 px)
# each upsample ×2 and apply two elastic 3×3 convs (64, 32, 16 channels), and each stage ends in a
# 1×1 conv to an image. `G(z, target_resolution=16)` stops after the 16 px stage (early exit), and
# `G.set_ratio(0.5)` (or a list with one ratio per elastic layer) picks the channels.
#
# The cost grid below measures every (ratio, resolution) configuration in **one run** with
# interleaved medians (`effcourse.bench.compare_latency`), at a batch of 64 latents. Ratios of
# latencies are meaningful; absolute numbers depend on your machine and its load.

# %%
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
                              repeats=5 if QUICK else 11, number=2 if QUICK else 3)
G.set_ratio(1.0)
top = G.resolutions[-1]
full_ms = times[(1.0, top)]
rows = [{"ratio": f"{r}x", "resolution": res, "MMACs/image": macs[(r, res)] / 1e6,
         "MACs vs 1x@32": macs[(1.0, top)] / macs[(r, res)], "latency ms (64 imgs)": 1e3 * times[(r, res)],
         "speedup vs 1x@32": full_ms / times[(r, res)]} for r, res in configs]
plots.table(rows, floatfmt=".3g", title="Cost grid: channel ratio x resolution (one run, interleaved medians)")
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
# training the elastic generator, the paper reorders the channels of a pre-trained generator by
# importance, the L1 norm of each output filter,
#
# $$ s_c = \sum_{i,u,v} |W_{c,i,u,v}|, \qquad \text{order: } s_{\pi(0)} \ge s_{\pi(1)} \ge \dots $$
#
# Permuting a layer's output channels is harmless if the next layer's **input** channels are
# permuted the same way: $W'_1 = W_1[\pi]$, $b'_1 = b_1[\pi]$, $W'_2 = W_2[:, \pi]$ compute the same
# function (anything elementwise in between, like LeakyReLU, commutes with a permutation).

# %% nbgrader={"grade": false, "grade_id": "sort_channels", "locked": false, "schema_version": 3, "solution": true, "task": false}
def sort_channels(layer, next_layer):
    """Reorder ``layer``'s output channels by importance and ``next_layer``'s inputs to match, in place.

    layer: nn.Conv2d with weight (C, C_in, k, k) and optional bias (C,).
    next_layer: nn.Conv2d whose weight is (C_next, C, k', k') (its input channels are layer's outputs).
    Importance of channel c: the L1 norm of layer.weight[c]; the new order is descending importance.
    Modifies both layers' parameters in place (no gradient recorded) and returns ``perm``, a LongTensor
    (C,) such that new channel i is old channel perm[i].
    """
    ### BEGIN SOLUTION
    with torch.no_grad():
        importance = layer.weight.abs().sum(dim=(1, 2, 3))
        perm = torch.argsort(importance, descending=True)
        layer.weight.copy_(layer.weight[perm])
        if layer.bias is not None:
            layer.bias.copy_(layer.bias[perm])
        next_layer.weight.copy_(next_layer.weight[:, perm])
    return perm
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_sort_channels", "locked": true, "points": 12, "schema_version": 3, "solution": false, "task": false}
lab4.check_sort_channels(sort_channels)
### BEGIN HIDDEN TESTS
from effcourse.checks._assert import assert_close as _close, assert_true as _true
_g = torch.Generator().manual_seed(int(time.time() * 1000) % 2**31 + 1)
for (cin, cmid, cout, k1, k2, b1, b2) in [(3, 7, 5, 3, 1, True, True), (1, 4, 2, 1, 3, False, True),
                                         (5, 1, 3, 3, 3, True, False), (2, 9, 9, 5, 3, True, True),
                                         (4, 16, 1, 3, 3, True, True)]:
    torch.manual_seed(int(torch.randint(0, 10**6, (1,), generator=_g)))
    l1 = nn.Conv2d(cin, cmid, k1, padding=k1 // 2, bias=b1)
    l2 = nn.Conv2d(cmid, cout, k2, padding=k2 // 2, bias=b2)
    with torch.no_grad():
        l1.weight.mul_(torch.rand(cmid, 1, 1, 1, generator=_g) * 3)   # spread the importances
    net = nn.Sequential(l1, nn.LeakyReLU(0.2), l2)
    x = torch.randn(3, cin, 6, 5, generator=_g)
    before = net(x).detach()
    w1, w2 = l1.weight.detach().clone(), l2.weight.detach().clone()
    bb1 = None if l1.bias is None else l1.bias.detach().clone()
    imp0 = w1.abs().sum(dim=(1, 2, 3))
    perm = sort_channels(l1, l2)
    _true(isinstance(perm, torch.Tensor) and sorted(perm.tolist()) == list(range(cmid)),
          f"sort_channels should return a permutation of range({cmid}), got {perm}")
    perm = perm.long()
    _close("layer.weight after sorting (old_weight[perm])", l1.weight.detach(), w1[perm])
    if bb1 is not None:
        _close("layer.bias after sorting (old_bias[perm])", l1.bias.detach(), bb1[perm])
    _close("next_layer.weight after sorting (old_weight[:, perm])", l2.weight.detach(), w2[:, perm])
    imp = l1.weight.detach().abs().sum(dim=(1, 2, 3))
    _true(bool((imp[:-1] >= imp[1:] - 1e-6).all()), f"importance must be non-increasing, got {imp.tolist()}")
    _close("sorted importances", imp, imp0.sort(descending=True).values, atol=1e-5)
    _close(f"network output after sorting ({cin}->{cmid}->{cout})", net(x).detach(), before, atol=1e-5)
    _true(isinstance(l1.weight, nn.Parameter) and isinstance(l2.weight, nn.Parameter),
          "the weights must stay nn.Parameters")
### END HIDDEN TESTS

# %% [markdown]
# ## 3. Sampling sub-networks during training
#
# Each training step trains one randomly chosen sub-generator. Its ratios come from
# `sample_ratios`: in **uniform** mode one ratio for the whole network (the configurations you will
# deploy), in **flexible** mode an independent ratio per layer (a richer family, used by the paper to
# search for the best network under a budget). Draw every random number from the `generator` you are
# given, so that a run can be repeated exactly.

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


# %% nbgrader={"grade": true, "grade_id": "test_sample_ratios", "locked": true, "points": 10, "schema_version": 3, "solution": false, "task": false}
lab4.check_sample_ratios(sample_ratios)
### BEGIN HIDDEN TESTS
from effcourse.checks._assert import assert_true as _true
_s = int(time.time() * 1000) % 2**31
for choices in [(0.25, 0.5, 0.75, 1.0), (0.3, 0.6, 1.0), (0.5, 1.0)]:
    for n in (1, 5, 12):
        gen = torch.Generator().manual_seed(_s + n)
        uni = [[float(v) for v in sample_ratios(n, choices, "uniform", gen)] for _ in range(300)]
        _true(all(len(d) == n and len(set(d)) == 1 and d[0] in choices for d in uni),
              f"uniform mode: {n} equal ratios from {choices} per draw")
        freq = [sum(d[0] == c for d in uni) / len(uni) for c in choices]
        _true(min(freq) > 0.5 / len(choices) and max(freq) < 1.6 / len(choices),
              f"uniform mode should draw each choice about equally often, got frequencies {freq}")
        flex = [[float(v) for v in sample_ratios(n, choices, "flexible", gen)] for _ in range(300)]
        _true(all(len(d) == n and all(v in choices for v in d) for d in flex),
              f"flexible mode: {n} ratios from {choices} per draw")
        freq = [sum(v == c for d in flex for v in d) / (n * len(flex)) for c in choices]
        _true(min(freq) > 0.5 / len(choices) and max(freq) < 1.6 / len(choices),
              f"flexible mode should draw each choice about equally often, got frequencies {freq}")
        if n > 1:
            varied = sum(len(set(d)) > 1 for d in flex) / len(flex)
            _true(varied > 0.4, f"flexible mode should vary across layers; only {varied:.0%} of draws did")
            pos0 = [d[0] for d in flex]
            _true(len(set(pos0)) == len(choices), "flexible mode: every layer should see every choice")
        for mode in ("uniform", "flexible"):
            torch.manual_seed(_s)
            a = [[float(v) for v in sample_ratios(n, choices, mode, torch.Generator().manual_seed(_s + 3))]
                 for _ in range(1)]
            torch.manual_seed(_s + 12345)
            b = [[float(v) for v in sample_ratios(n, choices, mode, torch.Generator().manual_seed(_s + 3))]
                 for _ in range(1)]
            _true(a == b, f"{mode}: the same seeded generator must give the same ratios whatever the global seed; "
                          f"got {a} and {b}")
            gen = torch.Generator().manual_seed(_s + 4)
            seq1 = [tuple(sample_ratios(n, choices, mode, gen)) for _ in range(30)]
            gen = torch.Generator().manual_seed(_s + 4)
            seq2 = [tuple(sample_ratios(n, choices, mode, gen)) for _ in range(30)]
            _true(seq1 == seq2, f"{mode}: a re-seeded generator should replay the same sequence of draws")
d = [float(v) for v in sample_ratios(7, generator=torch.Generator().manual_seed(_s))]
_true(len(set(d)) == 1 and d[0] in (0.25, 0.5, 0.75, 1.0), f"the defaults are uniform mode over (0.25, 0.5, 0.75, 1.0), got {d}")
for bad in ("Uniform", "per_layer", ""):
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
# added to an already trained discriminator without changing what it outputs.

# %% nbgrader={"grade": false, "grade_id": "ArchModulation", "locked": false, "schema_version": 3, "solution": true, "task": false}
class ArchModulation(nn.Module):
    """Architecture-conditioned feature modulation of the G-conditioned discriminator.

    __init__(code_dim, num_channels): gamma and beta map a code (N, code_dim) to (N, num_channels);
    all their parameters start at zero, so the module is the identity until trained.
    forward(h, code): h (N, C, H, W), code (N, code_dim) -> h * (1 + gamma(code)) + beta(code), with
    gamma and beta broadcast over H and W (sample n uses code[n]).
    """
    ### BEGIN SOLUTION
    def __init__(self, code_dim, num_channels):
        super().__init__()
        self.gamma = nn.Linear(code_dim, num_channels)
        self.beta = nn.Linear(code_dim, num_channels)
        for p in self.parameters():
            nn.init.zeros_(p)

    def forward(self, h, code):
        gamma = self.gamma(code)[:, :, None, None]
        beta = self.beta(code)[:, :, None, None]
        return h * (1 + gamma) + beta
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_ArchModulation", "locked": true, "points": 12, "schema_version": 3, "solution": false, "task": false}
lab4.check_arch_modulation(ArchModulation)
### BEGIN HIDDEN TESTS
from effcourse.checks._assert import assert_close as _close, assert_true as _true
_g = torch.Generator().manual_seed(int(time.time() * 1000) % 2**31 + 2)
for (d, C, N, H, W) in [(24, 8, 3, 4, 4), (4, 1, 1, 3, 5), (12, 13, 5, 1, 1), (6, 3, 2, 7, 2)]:
    mod = ArchModulation(d, C)
    h = torch.randn(N, C, H, W, generator=_g)
    code = F.one_hot(torch.randint(0, d, (N,), generator=_g), d).float()
    _close(f"zero-initialised ArchModulation({d}, {C}) must be the identity", mod(h, code), h, atol=1e-6)
    out = mod(h.requires_grad_(True), code)
    out.pow(2).sum().backward()
    _true(any(p.grad is not None and p.grad.abs().sum() > 0 for p in mod.parameters()),
          "at zero initialisation the modulation's parameters must still get gradient (it has to learn)")
    with torch.no_grad():
        for p in mod.parameters():
            p.copy_(torch.randn(p.shape, generator=_g))
    h = h.detach()
    out = mod(h, code)
    _true(tuple(out.shape) == (N, C, H, W), f"output shape should be {(N, C, H, W)}, got {tuple(out.shape)}")
    zero = mod(torch.zeros_like(h), code)
    _close("the shift beta(code) must be the same at every pixel", zero, zero[:, :, :1, :1].expand_as(zero), atol=1e-5)
    scale = (mod(2 * h, code) - zero) / 2
    _close("the output must be affine in h", scale, mod(h, code) - zero, atol=1e-4)
    ratio = (mod(torch.ones_like(h), code) - zero)
    _close("the scale 1 + gamma(code) must be the same at every pixel", ratio, ratio[:, :, :1, :1].expand_as(ratio), atol=1e-5)
    _close("the scale times h", scale, ratio * h, atol=1e-4)
    if N > 1:
        per = torch.cat([mod(h[i:i + 1], code[i:i + 1]) for i in range(N)])
        _close("sample n must use code[n]", out, per, atol=1e-5)
    other = F.one_hot((code.argmax(1) + 1) % d, d).float()
    _true(not torch.allclose(mod(h, other), out, atol=1e-4), "once trained, the output must depend on the code")
### END HIDDEN TESTS

# %% [markdown]
# ## 5. Consistency loss
#
# For the same latent $z$, a sub-generator's output $G_{\text{sub}}(z)$ at resolution $r$ should look
# like the full generator's output $G(z)$ at the top resolution $R$, shrunk to $r$. The paper adds
#
# $$ \mathcal{L}_\text{cons} = \bigl\lVert G_\text{sub}(z) - \operatorname{down}_{R \to r}\bigl(\operatorname{sg}[G(z)]\bigr) \bigr\rVert_2^2 \quad(\text{mean over all values}) $$
#
# (plus a perceptual term, which we skip). $\operatorname{down}$ is average pooling: each sub-output
# pixel is compared with the mean of the $(R/r) \times (R/r)$ full-output pixels it covers.
# $\operatorname{sg}$ is *stop-gradient*: the full output is the teacher; the loss must pull the
# sub-network towards it, never pull the full network towards its weaker sub-networks.

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
lab4.check_consistency_loss(consistency_loss)
### BEGIN HIDDEN TESTS
from effcourse.checks._assert import assert_close as _close, assert_true as _true
_g = torch.Generator().manual_seed(int(time.time() * 1000) % 2**31 + 3)
for (N, C, r, f) in [(3, 1, 8, 4), (1, 3, 5, 2), (2, 1, 16, 1), (4, 2, 3, 3), (2, 1, 4, 8)]:
    sub = torch.randn(N, C, r, r, generator=_g, dtype=torch.float64).requires_grad_(True)
    full = torch.randn(N, C, r * f, r * f, generator=_g, dtype=torch.float64).requires_grad_(True)
    loss = consistency_loss(sub, full)
    down = full.detach().reshape(N, C, r, f, r, f).mean(dim=(3, 5))
    exp = (sub.detach() - down).pow(2).mean()
    _true(isinstance(loss, torch.Tensor) and loss.numel() == 1, "consistency_loss must return a scalar tensor")
    _close(f"consistency_loss for sub {(N, C, r, r)} vs full {(N, C, r * f, r * f)}", loss.reshape(()), exp, atol=1e-9)
    loss.backward()
    _true(full.grad is None or full.grad.abs().max() == 0, "no gradient may reach full_out (detach it)")
    _close("gradient into sub_out", sub.grad, 2 * (sub.detach() - down) / sub.numel(), atol=1e-9)
### END HIDDEN TESTS

# %% [markdown]
# ## 6. The training step: sampling-based multi-resolution and channel sampling
#
# StyleGAN2 trains only the top resolution; MSG-GAN feeds every resolution to D at every step. Anycost
# GAN **samples**: each step picks one resolution $r$ and one channel configuration, trains that
# sub-generator against reals resized to $r$, and distils the full generator into it. The full
# generator is trained at every step too, so that the teacher of the consistency loss stays a good
# generator (the "sandwich rule" of slimmable networks, upper slice only):
#
# 1. $r \sim \mathcal{U}(\text{G.resolutions})$, ratios $=$ `sample_ratios(G.n_layers, choices, mode, generator)`,
#    $z \sim \mathcal{N}(0, I)$, all drawn with `generator`.
# 2. Full generator: `G.set_ratio(1.0)`, $a_\text{full}$ = `G.arch_code()`, $x_\text{full} = G(z)$ (top resolution).
# 3. Sub-generator: `G.set_ratio(ratios)`, $a$ = `G.arch_code()`, $x = G(z, r)$. Codes go to D with one row per image.
# 4. D step: $\mathcal{L}_D = $ `d_loss(D(real, a_full), D(sg[x_full], a_full))` $+$ `d_loss(D(resize(real, r), a), D(sg[x], a))`; update D.
# 5. G step: $\mathcal{L}_G = $ `g_loss(D(x_full, a_full))` $+$ `g_loss(D(x, a))` $+ \lambda\,$`consistency_loss(x, x_full)`; update G.
#
# (`anycost.d_loss`/`g_loss` are the non-saturating logistic losses, `anycost.resize` shrinks with area
# averaging, sg is `.detach()`.) The step gets `sample_ratios` and `consistency_loss` as arguments,
# so it can be tested on its own; the grader passes stand-ins.

# %% nbgrader={"grade": false, "grade_id": "anycost_step", "locked": false, "schema_version": 3, "solution": true, "task": false}
def anycost_step(G, D, real, g_opt, d_opt, generator, sample_ratios, consistency_loss,
                 choices=(0.25, 0.5, 0.75, 1.0), mode="uniform", lambda_consistency=1.0):
    """One Anycost GAN training step (the five steps above).

    G: an anycost.AnycostGenerator (G.resolutions, G.n_layers, G.z_dim, G.set_ratio, G.arch_code,
       G(z, target_resolution)).  D: called as D(images, code) -> logits (N,), code (N, code_dim).
    real: (N, C, R, R) real images at G's top resolution R.
    g_opt, d_opt: the optimisers of G and D.  generator: the torch.Generator for every draw.
    sample_ratios(n_layers, choices, mode, generator), consistency_loss(sub_out, full_out): your
    functions, passed in.
    Returns {"d_loss": float, "g_loss": float, "consistency": float, "resolution": int r,
             "ratios": the list sample_ratios returned}.
    """
    ### BEGIN SOLUTION
    n = len(real)
    res = G.resolutions[int(torch.randint(len(G.resolutions), (1,), generator=generator))]
    ratios = sample_ratios(G.n_layers, choices, mode, generator)
    z = torch.randn(n, G.z_dim, generator=generator).to(real.device)
    G.set_ratio(1.0)
    code_full = G.arch_code().expand(n, -1)
    full = G(z)
    G.set_ratio(ratios)
    code = G.arch_code().expand(n, -1)
    fake = G(z, target_resolution=res)
    loss_d = (anycost.d_loss(D(real, code_full), D(full.detach(), code_full))
              + anycost.d_loss(D(anycost.resize(real, res), code), D(fake.detach(), code)))
    d_opt.zero_grad(set_to_none=True)
    loss_d.backward()
    d_opt.step()
    cons = consistency_loss(fake, full)
    loss_g = anycost.g_loss(D(full, code_full)) + anycost.g_loss(D(fake, code)) + lambda_consistency * cons
    g_opt.zero_grad(set_to_none=True)
    loss_g.backward()
    g_opt.step()
    G.set_ratio(1.0)
    return {"d_loss": loss_d.item(), "g_loss": loss_g.item(), "consistency": cons.item(), "resolution": res,
            "ratios": ratios}
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_anycost_step", "locked": true, "points": 20, "schema_version": 3, "solution": false, "task": false}
lab4.check_anycost_step(anycost_step)
### BEGIN HIDDEN TESTS
from effcourse.checks._assert import assert_true as _true
_s = int(time.time() * 1000) % 10**6
for i, (batch, mode) in enumerate([(2, "uniform"), (5, "flexible"), (1, "uniform")]):
    lab4.verify_step(anycost_step, seed=_s + i, batch=batch, mode=mode)
# the consistency term is weighted by lambda_consistency (same seed: same D step, same adversarial term)
r0 = lab4.run_step(anycost_step, seed=_s, lambda_consistency=0.0)
r1 = lab4.run_step(anycost_step, seed=_s, lambda_consistency=1000.0)
adv0 = float(r0["out"]["g_loss"])
adv1 = float(r1["out"]["g_loss"]) - 1000.0 * float(r1["out"]["consistency"])
_true(abs(adv0 - adv1) < 1e-3 * max(1.0, abs(adv0)),
      f"g_loss should be the adversarial loss + lambda_consistency * consistency: with lambda 0 it was {adv0:.5f}, "
      f"with lambda 1000 it was {float(r1['out']['g_loss']):.5f} - 1000 * {float(r1['out']['consistency']):.3g}")
# reproducible from the generator alone
torch.manual_seed(_s + 1)
a = lab4.run_step(anycost_step, seed=_s + 5)
torch.manual_seed(_s + 2)
b = lab4.run_step(anycost_step, seed=_s + 5)
_true(a["out"]["resolution"] == b["out"]["resolution"] and all(
    torch.equal(p, q) for p, q in zip(a["G"].parameters(), b["G"].parameters())),
    "the step must draw everything (resolution, ratios, z) from the generator it is given")
# over many steps every resolution is trained
G_, D_, go, do = lab4.tiny_gan(_s)
gen = torch.Generator().manual_seed(_s)
seen = set()
for _ in range(24):
    real = torch.rand(2, 1, 32, 32, generator=gen) * 2 - 1
    seen.add(int(anycost_step(G_, D_, real, go, do, gen, lab4.StandInSampler(), lab4.StandInConsistency())["resolution"]))
_true(seen == set(G_.resolutions), f"in 24 steps every resolution of {G_.resolutions} should be drawn, got {sorted(seen)}")
### END HIDDEN TESTS

# %% [markdown]
# ## 7. Experiment: train an anycost generator three ways
#
# **Start point.** Anycost GAN starts from a pre-trained multi-resolution generator (all ratios 1).
# The course ships one (`data_scripts/asset_lab4_anycost.py` trained it with 3000 steps of this very
# procedure at ratio 1, a few minutes of CPU). Set `PRETRAIN_STEPS = 3000` above to train it here
# with your own step and `choices=(1.0,)` instead.

# %%
def make_pretrained():
    G = anycost.AnycostGenerator(ElasticConv2d, z_dim=32, channels=(64, 32, 16))
    D = anycost.AnycostDiscriminator(channels=(8, 16, 32))
    if PRETRAIN_STEPS:
        anycost.train(G, D, reals, PRETRAIN_STEPS, anycost_step, batch_size=16, lr=1e-3, seed=SEED, ema=0.99,
                      desc="pre-train (ratio 1)", sample_ratios=sample_ratios, consistency_loss=consistency_loss,
                      choices=(1.0,), lambda_consistency=1.0)
    else:
        state = effcourse.assets.load_asset("lab4_anycost")
        G.load_state_dict(state["G"])
        D.load_state_dict(state["D"])
    return G.eval(), D.eval()


import effcourse.assets  # noqa: E402

t0 = time.time()
G0, D0 = make_pretrained()
z_eval = torch.randn(N_EVAL, G0.z_dim, generator=torch.Generator().manual_seed(SEED + 1))


def consistency_grid(G, z):
    """PSNR (dB) of every sub-configuration's output against the full output, downsampled to its size."""
    full = anycost.sample(G, z)
    return {(r, res): psnr(anycost.sample(G, z, r, res), anycost.resize(full, res))
            for r in CHOICES for res in G.resolutions if (r, res) != (1.0, G.resolutions[-1])}


before = consistency_grid(G0, z_eval[:200])
G0.sort_channels(sort_channels)
after = consistency_grid(G0, z_eval[:200])
effcourse.record("sort_psnr_050_before", before[(0.5, top)])
effcourse.record("sort_psnr_050_after", after[(0.5, top)])
plots.table([{"ratio": f"{r}x", "PSNR unsorted (dB)": before[(r, top)], "PSNR sorted (dB)": after[(r, top)]}
             for r in CHOICES[:-1]], floatfmt=".1f",
            title="Pre-trained generator, before any anycost training: sub-generator vs full output at 32 px")
fig, axes = plt.subplots(2, 1, figsize=(9, 2.6))
plots.image_grid(anycost.sample(G0, z_eval[:12]), nrow=12, ax=axes[0], title="full generator", vmin=-1, vmax=1)
plots.image_grid(anycost.sample(G0, z_eval[:12], 0.5), nrow=12, ax=axes[1], title="0.5x channels, sorted, untrained",
                 vmin=-1, vmax=1)
plt.tight_layout()
plt.show()

# %% [markdown]
# Sorting makes the 0.5× and 0.75× generators closer to the full one: their prefixes now hold the
# important channels. At 0.25× no order gives a usable image; a quarter of the channels has to be
# *trained* to work on its own. So train three anycost generators from the same sorted start, each
# for the same number of steps with uniform channel sampling:
#
# | run | discriminator | consistency loss |
# |---|---|---|
# | **G-conditioned D** | conditioned on the architecture code (your `ArchModulation`) | yes, λ = 10 |
# | **no consistency** | conditioned | no (λ = 0) |
# | **vanilla D** | one D for every sub-generator (the code is ignored) | yes, λ = 10 |
#
# The first run is the paper's recipe and doubles as one arm of each comparison.

# %%
import copy  # noqa: E402


def finetune(conditioned, lam, desc):
    G = copy.deepcopy(G0).train()
    D = anycost.conditioned_copy(D0, ArchModulation, G.code_dim) if conditioned else copy.deepcopy(D0)
    hist = anycost.train(G, D, reals, FINETUNE_STEPS, anycost_step, batch_size=16, lr=1e-3, seed=SEED + 2, ema=0.9,
                         desc=desc, sample_ratios=sample_ratios, consistency_loss=consistency_loss,
                         choices=CHOICES, mode="uniform", lambda_consistency=lam)
    return G.eval(), hist


runs = {}
runs["G-conditioned D"], _ = finetune(True, 10.0, "G-conditioned D, consistency")

# %%
runs["no consistency"], _ = finetune(True, 0.0, "G-conditioned D, no consistency")

# %%
runs["vanilla D"], _ = finetune(False, 10.0, "vanilla D, consistency")
print(f"loading, sorting and three fine-tunes: {time.time() - t0:.0f} s")

# %% [markdown]
# ### Consistency: does the preview show the same digit?
#
# For 500 latents (2000 in full mode), PSNR between each sub-configuration's output and the full
# output downsampled to the same size. Higher is more consistent; identical images would be ∞.

# %%
cons = {name: consistency_grid(G, z_eval) for name, G in runs.items()}
sub_configs = list(cons["G-conditioned D"])
mean_with = sum(cons["G-conditioned D"].values()) / len(sub_configs)
mean_without = sum(cons["no consistency"].values()) / len(sub_configs)
effcourse.record("psnr_with_consistency", mean_with)
effcourse.record("psnr_without_consistency", mean_without)
effcourse.record("psnr_grid", {f"{name}|{r}|{res}": v for name, g in cons.items() for (r, res), v in g.items()})
plots.table([{"ratio": f"{r}x", "resolution": res, **{name: cons[name][(r, res)] for name in runs}} for r, res in sub_configs],
            floatfmt=".1f", title="PSNR (dB) of sub-generator vs full output")
fig, axes = plt.subplots(len(runs), 4, figsize=(12, 1.2 * len(runs) + 0.6))
for i, (name, G) in enumerate(runs.items()):
    for j, r in enumerate(reversed(CHOICES)):
        plots.image_grid(anycost.sample(G, z_eval[:6], r), nrow=6, ax=axes[i, j], vmin=-1, vmax=1,
                         title=f"{name}: {r}x" if j == 0 else f"{r}x")
plt.tight_layout()
plt.show()

# %% [markdown]
# With the consistency loss, every sub-configuration's output is closer to the full output (higher
# PSNR): the preview shows the same digit. Without it, weight sharing alone keeps them related but
# they drift apart. The 0.25× generator stays the least consistent: in QUICK mode only about a
# quarter of 150 steps train it.

# %% [markdown]
# ### Quality per configuration: vanilla vs. G-conditioned D
#
# The digit-feature Fréchet distance (lower is better) of each sub-generator's samples at 32 px
# against all 1797 digits. It uses a small digit classifier's features, **not** Inception: compare
# the numbers with each other, never with the paper's FIDs. It has a finite-sample floor (two
# halves of the real digits score a few units apart), so small differences are noise. The bundled
# pre-trained full generator scores about 7 at 32 px.

# %%
fd = {name: {r: frechet_distance(reals, anycost.sample(G, z_eval, r)) for r in CHOICES}
      for name, G in runs.items() if name != "no consistency"}
effcourse.record("fd_conditioned", {str(r): v for r, v in fd["G-conditioned D"].items()})
effcourse.record("fd_vanilla", {str(r): v for r, v in fd["vanilla D"].items()})
plots.table([{"discriminator": name, **{f"{r}x": v for r, v in d.items()}} for name, d in fd.items()],
            floatfmt=".1f", title="Digit-feature Fréchet distance at 32 px (lower is better)")

# %% [markdown]
# Read these with care: 150 steps of adversarial training is a very short run and a GAN's quality
# swings from step to step, so differences of a few tens between the two rows are within noise in
# QUICK mode. What is robust is the ordering by width (narrower is worse, the 0.25× generator much
# worse: 4 channels at 32 px) and, in the paper, a G-conditioned D that helps most where one
# discriminator serves very different generators.

# %% [markdown]
# ## 8. Preview at any cost
#
# Drag the sliders: the same latents at another ratio or resolution, with the MACs of one image and
# the measured latency. (In a notebook without a live kernel, the preview shows its first drawing.)

# %%
G_best = runs["G-conditioned D"]
box = preview(G_best, n_samples=16, seed=SEED)
box.ratio.value = 0.25          # what a drag does: redraw at 0.25x
box.ratio.value = 1.0
effcourse.record("widget_status", box.status.value)

# %% [markdown]
# ## 9. Paper vs. you

# %%
plots.table([
    {"quantity": "computation of the cheapest config vs full",
     "paper": "up to 10x less", "you": f"{1 / macs_ratio_025:.1f}x less MACs (0.25x @ 32 px)"},
    {"quantity": "speedup on CPU", "paper": "6-12x",
     "you": f"{speedup_025:.1f}x (0.25x @ 32 px); {full_ms / times[(0.25, 8)]:.1f}x (0.25x @ 8 px)"},
    {"quantity": "preview consistency", "paper": "sub-generators match the full output (with the consistency loss)",
     "you": f"{mean_with:.1f} dB with vs {mean_without:.1f} dB without"},
    {"quantity": "quality 1x vs 0.25x channels", "paper": "FID 3.73 vs 8.06 (G-cond. D, 256 px)",
     "you": f"FD {fd['G-conditioned D'][1.0]:.1f} vs {fd['G-conditioned D'][0.25]:.1f} (G-cond. D, 32 px)"},
    {"quantity": "0.25x quality: vanilla vs G-conditioned D", "paper": "FID 14.01 vs 8.06 (256 px)",
     "you": f"FD {fd['vanilla D'][0.25]:.1f} vs {fd['G-conditioned D'][0.25]:.1f}"},
], title="Anycost GAN: paper (FFHQ, StyleGAN2) vs. you (digits, 32 px)")

# %% [markdown]
# ## 10. Questions
#
# **Q1.** The consistency loss detaches the full output. What would go wrong, for the full generator
# and for the preview, if the gradient also flowed into the full output? (3–5 sentences)

# %% [markdown] nbgrader={"grade": true, "grade_id": "q_detach", "locked": false, "points": 10, "schema_version": 3, "solution": true, "task": false}
# Model answer: the loss is symmetric, so without the stop-gradient it also pulls the full generator
# towards its sub-generators. The weak, low-capacity 0.25× network would drag the full network's
# outputs towards what it can express (blurrier, less detailed images), so the full-cost quality, the
# one users finally see, gets worse. The preview would match the final image better only because the
# final image got worse, which defeats the point. Treating the full output as a fixed teacher is
# distillation: only the students move.

# %% [markdown]
# **Q2.** Your cost grid shows a gap between the MAC reduction and the measured speedup, largest
# for the smallest configurations. Name two reasons, and one change (to the model or to how it runs)
# that would bring the speedup closer to the MAC ratio. (3–5 sentences)

# %% [markdown] nbgrader={"grade": true, "grade_id": "q_speedup", "locked": false, "points": 10, "schema_version": 3, "solution": true, "task": false}
# Model answer: (1) narrow convolutions use the hardware poorly: with 4–16 channels the vectorised
# kernels cannot fill their registers and the arithmetic intensity is low, so time is spent on memory
# traffic rather than multiply-adds; (2) per-layer costs that do not scale with channels (framework
# dispatch, tensor allocation, upsampling, activations, the linear input layer) become a larger share
# when the convs get cheap. A larger batch, wider base channels (so that 0.25× is still wide), fusing
# layers, or a compiled/graph runtime (e.g. torch.compile) bring the speedup closer to the MAC ratio.
