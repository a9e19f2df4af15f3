# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Lab 3 — GAN Compression: distil a generator, then search its channels
#
# **You will build** the pieces of GAN Compression for a conditional (pix2pix-style) generator: the
# 1×1 *mappers* that let a thin student imitate a wide teacher's intermediate features, the
# distillation loss, the full generator objective (adversarial + reconstruction + distillation, for
# paired and unpaired training), a channel-elastic convolution that turns one network into a
# *once-for-all* supernet, and the search that picks the best sub-network under a MAC budget.
# Then you will measure what it buys: a student with about 15× fewer MACs, distilled vs. trained
# from scratch, against the teacher.
#
# **Time:** about 2 hours. **Paper:** Li, Lin, Ding, Liu, Zhu, Han, *GAN Compression: Efficient
# Architectures for Interactive Conditional GANs*, CVPR 2020.
#
# **Intuition.** A conditional GAN's generator is expensive (pix2pix's ResNet generator: 56.8 G
# MACs per image) and most of its channels are redundant. A network with a quarter of the channels
# has about 1/16 of the MACs, but trained alone it learns worse. GAN Compression trains the small
# network to match not only the output but the *inside* of the big one: after each residual block,
# a learned 1×1 convolution maps the student's thin features to the teacher's width, and the loss
# asks them to agree. The teacher's features are a much richer target than the image alone. On top
# of that, instead of guessing the student's widths, train one supernet whose every prefix of
# channels is a working generator, and search it for the best network that fits a budget.
#
# The task here is the miniature of edges → shoes: draw a digit's **edge map** (binarised Sobel
# edges, 32×32) and the generator must paint the **digit** (from scikit-learn's bundled digits).

# %%
import time

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from torch import nn

import effcourse
from effcourse import bench, metrics, plots
from effcourse.checks import lab3
from effcourse.gan import pix2pix

# %% tags=["parameters"]
QUICK = False
SEED = 0
DEVICE = "auto"

# %%
QUICK, device = effcourse.setup(QUICK, SEED, DEVICE)
TEACHER_NGF, STUDENT_NGF = 32, 8
STUDENT_STEPS = 2000 if QUICK else 8000     # the same for the distilled and the scratch student
BATCH = 8 if QUICK else 16                 # batch size of the students
N_TRAIN = 512 if QUICK else None            # training pairs (None: all 1438)
RETRAIN_TEACHER = not QUICK                 # QUICK loads the bundled teacher
TEACHER_STEPS = 3000
SUPERNET_STEPS = 300 if QUICK else 3000
USE_GAN = False                             # True adds the PatchGAN term (about 2x slower per step)
train_edges, train_digits = pix2pix.edge_digit_pairs("train", N_TRAIN)
test_edges, test_digits = pix2pix.edge_digit_pairs("test")
print(f"{len(train_edges)} training pairs, {len(test_edges)} held-out pairs, images {tuple(train_edges.shape[1:])}")

fig, axes = plt.subplots(2, 1, figsize=(9, 2.4))
plots.image_grid(test_edges[:16], nrow=16, ax=axes[0], title="input: binarised Sobel edges")
plots.image_grid(test_digits[:16], nrow=16, ax=axes[1], title="target: the digit")
plt.tight_layout()
plt.show()

# %% [markdown]
# ## 0. Teacher and student
#
# The generator is the ResNet generator of pix2pix and CycleGAN in miniature: a stem, two stride-2
# convolutions (32 → 16 → 8 pixels), four residual blocks at 8×8 with $4\,n_{gf}$ channels, two
# transposed convolutions back to 32×32 and a tanh head, with InstanceNorm throughout. Almost all of
# its MACs sit in the residual blocks, whose convolutions cost
#
# $$\text{MACs} = H_\text{out} W_\text{out}\, C_\text{out}\, C_\text{in}\, k^2 \;\propto\; n_{gf}^2,$$
#
# so the student with a quarter of the width ($n_{gf} = 8$ instead of 32) needs about 1/16 of the
# teacher's MACs. The teacher was trained once (`data_scripts/asset_lab3_teacher.py`, 3000 steps of
# L1 reconstruction) and ships with the package; full mode retrains it here with your objective.

# %%
teacher = pix2pix.load_teacher().to(device)
x1 = test_edges[:1].to(device)
teacher_macs = bench.count_macs(teacher, x1)
student_macs = bench.count_macs(pix2pix.ResnetGenerator(STUDENT_NGF).to(device), x1)
print(f"teacher ngf={TEACHER_NGF}: {teacher_macs / 1e6:.1f} M MACs, {bench.count_params(teacher) / 1e6:.2f} M params")
print(f"student ngf={STUDENT_NGF}: {student_macs / 1e6:.2f} M MACs ({teacher_macs / student_macs:.1f}x fewer)")
effcourse.record("teacher_macs", teacher_macs)
effcourse.record("student_macs", student_macs)

# %% [markdown]
# ## 1. Mappers: from the student's width to the teacher's
#
# The student's block output $S_k$ has $C_s = 4 \cdot 8 = 32$ channels, the teacher's $T_k$ has
# $C_t = 128$: they cannot be compared directly. GAN Compression learns a **1×1 convolution**
# $f_k$ per distilled layer that maps $C_s \to C_t$ channels at every pixel (it is trained with the
# student and thrown away afterwards, so it costs nothing at inference).
#
# Write `build_mappers(student_channels, teacher_channels)`: one 1×1 convolution per layer.

# %% nbgrader={"grade": false, "grade_id": "build_mappers", "locked": false, "schema_version": 3, "solution": true, "task": false}
def build_mappers(student_channels, teacher_channels):
    """One learnable 1x1 convolution per distilled layer.

    Args:
        student_channels: list of ints, the student's channels C_s,k at each distilled layer.
        teacher_channels: list of ints of the same length, the teacher's channels C_t,k.

    Returns:
        nn.ModuleList whose k-th module maps (N, C_s,k, H, W) -> (N, C_t,k, H, W), pixel by pixel.

    Raises:
        ValueError: if the two lists have different lengths.
    """
    ### BEGIN SOLUTION
    student_channels, teacher_channels = list(student_channels), list(teacher_channels)
    if len(student_channels) != len(teacher_channels):
        raise ValueError(f"got {len(student_channels)} student widths but {len(teacher_channels)} teacher widths")
    return nn.ModuleList([nn.Conv2d(cs, ct, kernel_size=1) for cs, ct in zip(student_channels, teacher_channels)])
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_build_mappers", "locked": true, "points": 10, "schema_version": 3, "solution": false, "task": false}
lab3.check_build_mappers(build_mappers)
### BEGIN HIDDEN TESTS
from effcourse.checks._assert import assert_raises as _raises, assert_shape as _shape, assert_true as _true

_g = torch.Generator().manual_seed(int(time.time() * 1000) % 2**31)
for _s_ch, _t_ch in [([32, 32, 32, 32], [128, 128, 128, 128]), ([3], [5]), ([7, 1, 16], [2, 9, 16])]:
    _ms = build_mappers(_s_ch, _t_ch)
    _true(isinstance(_ms, nn.ModuleList) and len(_ms) == len(_s_ch),
          f"build_mappers({_s_ch}, {_t_ch}): expected an nn.ModuleList of {len(_s_ch)}, got {type(_ms).__name__}")
    for _k, (_cs, _ct) in enumerate(zip(_s_ch, _t_ch)):
        _h, _w = int(torch.randint(1, 9, (1,), generator=_g)), int(torch.randint(1, 9, (1,), generator=_g))
        _x = torch.randn(3, _cs, _h, _w, generator=_g)
        _y = _ms[_k](_x)
        _shape(f"mapper {_k} of build_mappers({_s_ch}, {_t_ch}) on (3, {_cs}, {_h}, {_w})", _y, (3, _ct, _h, _w))
        _i, _j = int(torch.randint(0, _h, (1,), generator=_g)), int(torch.randint(0, _w, (1,), generator=_g))
        _x2 = _x.clone()
        _x2[1, :, _i, _j] += torch.randn(_cs, generator=_g)
        _diff = (_ms[_k](_x2) - _y).detach().abs().sum(1) > 1e-7
        _true(bool(_diff[1, _i, _j]) and int(_diff.sum()) == 1,
              f"mapper {_k}: a change at pixel ({_i}, {_j}) of image 1 changed {int(_diff.sum())} output pixels; "
              "a 1x1 convolution changes exactly that one")
    _ps = [_p for _p in _ms.parameters() if _p.requires_grad]
    _true(len(_ps) > 0, "the mappers must have trainable parameters")
_err = _raises("build_mappers([8, 8], [32])", lambda: build_mappers([8, 8], [32]), ValueError)
### END HIDDEN TESTS

# %% [markdown]
# ## 2. The distillation loss
#
# With mappers $f_k$, the student's features at the $K$ distilled layers are pulled towards the
# teacher's:
#
# $$\mathcal{L}_\text{distill} = \sum_{k=1}^{K} \operatorname{MSE}\big(f_k(S_k),\, T_k\big),
# \qquad \operatorname{MSE}(a, b) = \tfrac{1}{n}\textstyle\sum_i (a_i - b_i)^2 .$$
#
# The teacher is fixed: no gradient may flow into it (its features are targets, like labels), while
# the student **and** the mappers learn from this loss. The paper distils at the outputs of the
# residual blocks (here all 4).

# %% nbgrader={"grade": false, "grade_id": "distill_loss", "locked": false, "schema_version": 3, "solution": true, "task": false}
def distill_loss(student_feats, teacher_feats, mappers):
    """Sum over layers of the mean squared error between mapped student and teacher features.

    Args:
        student_feats: list of K tensors S_k, (N, C_s,k, H_k, W_k).
        teacher_feats: list of K tensors T_k, (N, C_t,k, H_k, W_k).
        mappers: K modules f_k mapping C_s,k -> C_t,k channels (from build_mappers).

    Returns:
        A scalar tensor: sum_k MSE(f_k(S_k), T_k) (mean over all elements of each layer).
        Gradients reach the student features and the mappers, never the teacher features.

    Raises:
        ValueError: if the three lists have different lengths.
    """
    ### BEGIN SOLUTION
    if not len(student_feats) == len(teacher_feats) == len(mappers):
        raise ValueError(f"need as many teacher features and mappers as student features, got "
                         f"{len(student_feats)}, {len(teacher_feats)}, {len(mappers)}")
    total = 0.0
    for s, t, f in zip(student_feats, teacher_feats, mappers):
        total = total + F.mse_loss(f(s), t.detach())
    return total
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_distill_loss", "locked": true, "points": 15, "schema_version": 3, "solution": false, "task": false}
lab3.check_distill_loss(distill_loss)
### BEGIN HIDDEN TESTS
from effcourse.checks._assert import assert_close as _close, assert_raises as _raises, assert_true as _true

_g = torch.Generator().manual_seed(int(time.time() * 1000) % 2**31 + 1)
for _K, _N, _hw in [(4, 2, (8, 8)), (1, 3, (5, 7)), (3, 1, (1, 1))]:
    _s_ch = [int(_c) for _c in torch.randint(1, 9, (_K,), generator=_g)]
    _t_ch = [int(_c) for _c in torch.randint(1, 17, (_K,), generator=_g)]
    _mps = nn.ModuleList([nn.Conv2d(a, b, 1) for a, b in zip(_s_ch, _t_ch)])
    _student = nn.ModuleList([nn.Conv2d(3, a, 3, padding=1) for a in _s_ch])   # stand-in student layers
    _teacher = nn.ModuleList([nn.Conv2d(3, b, 3, padding=1) for b in _t_ch])   # stand-in teacher layers
    _x = torch.randn(_N, 3, *_hw, generator=_g)
    _S = [m(_x) for m in _student]
    _T = [m(_x) for m in _teacher]                                              # NOT detached: the loss must not push into it
    _loss = distill_loss(_S, _T, _mps)
    _true(isinstance(_loss, torch.Tensor) and _loss.dim() == 0, f"distill_loss must return a scalar tensor, got {_loss!r}")
    _ref = sum(((f(s) - t) ** 2).mean() for f, s, t in zip(_mps, _S, _T))
    _close(f"distill_loss with K={_K}, N={_N}, H,W={_hw}", _loss.detach(), _ref.detach(), atol=1e-5, rtol=1e-5)
    _loss.backward()
    _true(all(_p.grad is None or _p.grad.abs().sum() == 0 for _p in _teacher.parameters()),
          "a gradient reached the teacher: its features are fixed targets (detach them)")
    _true(all(_p.grad is not None and _p.grad.abs().sum() > 0 for _p in _student.parameters()),
          "no gradient reached the student")
    _true(all(m.weight.grad is not None and m.weight.grad.abs().sum() > 0 for m in _mps),
          "no gradient reached the mappers")
    # zero iff the mapped student equals the teacher
    with torch.no_grad():
        _T_match = [f(s) for f, s in zip(_mps, _S)]
    _close("distill_loss when every mapped student feature equals the teacher's",
           distill_loss([s.detach() for s in _S], _T_match, _mps).detach(), torch.tensor(0.0), atol=1e-10)
    _T_off = [t.clone() for t in _T_match]
    _T_off[-1][0, 0, 0, 0] += 0.5
    _off = distill_loss([s.detach() for s in _S], _T_off, _mps).detach()
    _true(float(_off) > 0, f"distill_loss must be positive when one feature differs, got {float(_off)}")
    _n_el = _T_off[-1].numel()
    _close("distill_loss with one teacher value off by 0.5 (MSE is a mean over elements)", _off,
           torch.tensor(0.25 / _n_el), atol=1e-6, rtol=1e-4)
_err = _raises("distill_loss with 2 student features but 1 teacher feature",
        lambda: distill_loss([torch.zeros(1, 2, 2, 2)] * 2, [torch.zeros(1, 2, 2, 2)], nn.ModuleList([nn.Conv2d(2, 2, 1)] * 2)),
        ValueError)
### END HIDDEN TESTS

# %% [markdown]
# ## 3. The generator's objective
#
# GAN Compression trains the student with
#
# $$\mathcal{L}_G = \underbrace{\operatorname{mean}\,\operatorname{softplus}\!\big(-D(x, G(x))\big)}_{\text{cGAN, non-saturating}}
# \;+\; \lambda_\text{recon}\,\underbrace{\operatorname{mean}\,\lvert G(x) - y^\star\rvert}_{\text{L1 reconstruction}}
# \;+\; \lambda_\text{distill}\,\mathcal{L}_\text{distill},$$
#
# where $\operatorname{softplus}(-\ell) = -\log \sigma(\ell)$ is the non-saturating generator loss
# averaged over the PatchGAN's logits. The reconstruction target $y^\star$ depends on the setting:
#
# * **paired** (pix2pix, edges → shoes): the ground-truth image $y$;
# * **unpaired** (CycleGAN, horse → zebra): there is no ground truth, so the student reconstructs
#   the **teacher's output** $G_T(x)$ — the teacher becomes the label maker.
#
# `d_fake_logits` may be `None` (training without a discriminator): the adversarial term is then 0.
# In this lab the experiments run without a discriminator by default (`USE_GAN = False`): with
# $\lambda_\text{recon} = 100$ the adversarial term moves PSNR very little and doubles the cost of a
# step, and what we measure — distillation vs. scratch — lives in the other two terms.

# %% nbgrader={"grade": false, "grade_id": "generator_objective", "locked": false, "schema_version": 3, "solution": true, "task": false}
def generator_objective(d_fake_logits, fake, target, teacher_out, distill, paired=True,
                        lambda_recon=100.0, lambda_distill=1.0):
    """The generator loss of GAN Compression.

    Args:
        d_fake_logits: discriminator logits for the generated images (any shape), or None (no
            adversarial term).
        fake: generated images G(x), (N, C, H, W).
        target: ground-truth images y, (N, C, H, W) (used when paired).
        teacher_out: the teacher's output G_T(x), (N, C, H, W) (used when unpaired; may be None
            when paired).
        distill: the distillation loss already computed (scalar tensor or float, 0.0 for none).
        paired: reconstruct the target (True) or the teacher's output (False).
        lambda_recon, lambda_distill: weights of the reconstruction and distillation terms.

    Returns:
        Scalar tensor: mean(softplus(-d_fake_logits)) + lambda_recon * mean|fake - y*|
        + lambda_distill * distill, with y* = target if paired else teacher_out.
    """
    ### BEGIN SOLUTION
    gan = F.softplus(-d_fake_logits).mean() if d_fake_logits is not None else 0.0
    reference = target if paired else teacher_out
    if reference is None:
        raise ValueError("unpaired training reconstructs the teacher's output: teacher_out is None")
    recon = (fake - reference.detach()).abs().mean()
    return gan + lambda_recon * recon + lambda_distill * distill
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_generator_objective", "locked": true, "points": 15, "schema_version": 3, "solution": false, "task": false}
lab3.check_generator_objective(generator_objective)
### BEGIN HIDDEN TESTS
from effcourse.checks._assert import assert_close as _close, assert_true as _true

_g = torch.Generator().manual_seed(int(time.time() * 1000) % 2**31 + 2)


def _ref_objective(_logits, _fake, _ref, distill, _lr, _ld):
    adv = -torch.log(torch.sigmoid(_logits.double())).mean() if _logits is not None else 0.0
    return adv + _lr * (_fake.double() - _ref.double()).abs().mean() + _ld * float(distill)


for (_N, _C, _H, _W) in [(2, 1, 8, 8), (3, 3, 5, 7), (1, 1, 1, 1)]:
    _fake = torch.randn(_N, _C, _H, _W, generator=_g, requires_grad=True)
    _target = torch.randn(_N, _C, _H, _W, generator=_g)
    _t_out = torch.randn(_N, _C, _H, _W, generator=_g)
    _logits = torch.randn(_N, 1, 3, 2, generator=_g) * 3
    _dist = torch.rand((), generator=_g)
    _lr, _ld = float(torch.rand((), generator=_g) * 50 + 1), float(torch.rand((), generator=_g) * 5)
    for _paired, _ref in ((True, _target), (False, _t_out)):
        for _lg in (_logits, None):
            _got = generator_objective(_lg, _fake, _target, _t_out, _dist, paired=_paired, lambda_recon=_lr, lambda_distill=_ld)
            _true(isinstance(_got, torch.Tensor) and _got.dim() == 0,
                  f"generator_objective must return a scalar tensor, got {type(_got).__name__}")
            _what = f"generator_objective(paired={_paired}, logits={'None' if _lg is None else 'given'}, shape {(_N, _C, _H, _W)})"
            _close(_what, _got.detach().double(), _ref_objective(_lg, _fake.detach(), _ref, _dist, _lr, _ld).detach().double(),
                   atol=1e-4, rtol=1e-5)
    # the reconstruction gradient: lambda * sign(fake - y*) / n, towards the right reference
    for _paired, _ref in ((True, _target), (False, _t_out)):
        _fake.grad = None
        generator_objective(None, _fake, _target, _t_out, 0.0, paired=_paired, lambda_recon=_lr).backward()
        _close(f"gradient of the L1 term w.r.t. fake (paired={_paired})", _fake.grad,
               _lr * torch.sign(_fake.detach() - _ref) / _fake.numel(), atol=1e-6, rtol=1e-4)
# paired training may pass teacher_out=None; defaults are lambda_recon=100, lambda_distill=1
_fake, _target = torch.randn(2, 1, 4, 4, generator=_g), torch.randn(2, 1, 4, 4, generator=_g)
_close("generator_objective defaults (paired, teacher_out=None, distill 0.5)",
       generator_objective(None, _fake, _target, None, 0.5).double(),
       _ref_objective(None, _fake, _target, 0.5, 100.0, 1.0).double(), atol=1e-4)
### END HIDDEN TESTS

# %% [markdown]
# ## 4. Experiment: distilled student vs. the same student from scratch
#
# Both students have the same architecture ($n_{gf} = 8$), the same initial weights, the same
# batches (seeded) and the same number of steps (QUICK: 2000 steps of 8 pairs drawn from the first 512 —
# distillation needs that many to pull ahead, a few hundred show no gap; full: 8000 steps of 16 on all 1438 pairs);
# the only difference is the distillation term
# ($\lambda_\text{distill} = 10$ on the MSE of the four block outputs). The teacher's block outputs
# on the training pairs are computed **once** and cached: the teacher never runs during training.
# We evaluate the exponential moving average (EMA) of each student's weights, as GAN papers do.
#
# Quality on the held-out pairs: L1 and PSNR to the true digit
# ($\text{PSNR} = 10 \log_{10}(2^2 / \text{MSE})$ for images in $[-1, 1]$), and the **digit-feature
# Fréchet distance** (the FID formula on the features of a small digit classifier shipped with the
# package — *not* Inception FID, so never compare it with papers' FIDs). Lower is better; because
# every output here has its own ground-truth digit, a perfect translator scores 0. For scale, the
# last row compares two *different* sets of real digits (training vs. held-out), which differ by
# about 4 at this sample size (~360 images).

# %%
if RETRAIN_TEACHER:
    torch.manual_seed(SEED)
    teacher, _ = pix2pix.train_generator(pix2pix.ResnetGenerator(TEACHER_NGF), train_edges, train_digits, TEACHER_STEPS,
                                         generator_objective, ema_decay=0.999, seed=SEED, device=device,
                                         desc="teacher")
teacher.eval().requires_grad_(False)
t0 = time.time()
teacher_train_out, teacher_feats = pix2pix.generate(teacher, train_edges.to(device), return_features=True)
print(f"teacher features cached once: {len(teacher_feats)} x {tuple(teacher_feats[0].shape)} in {time.time() - t0:.1f} s")



def train_student(distilled):
    """The ngf-8 student, with or without distillation; identical initial weights and batches."""
    torch.manual_seed(SEED)
    student = pix2pix.ResnetGenerator(STUDENT_NGF)
    extra = {}
    if distilled:
        mappers = build_mappers(student.feature_channels, teacher.feature_channels)
        extra = dict(distill=distill_loss, mappers=mappers, teacher_features=teacher_feats, lambda_distill=10.0)
    t0 = time.time()
    ema, _ = pix2pix.train_generator(student, train_edges, train_digits, STUDENT_STEPS, generator_objective,
                                     paired=True, discriminator=pix2pix.PatchDiscriminator() if USE_GAN else None,
                                     batch_size=BATCH, seed=SEED, device=device,
                                     desc="distilled student" if distilled else "scratch student", **extra)
    print(f"{'distilled' if distilled else 'scratch'} student: {STUDENT_STEPS} steps of {BATCH} in {time.time() - t0:.1f} s")
    return ema


students = {"distilled": train_student(distilled=True)}

# %%
students["scratch"] = train_student(distilled=False)

# %%
models = {"teacher (ngf 32)": teacher, "distilled student (ngf 8)": students["distilled"],
          "scratch student (ngf 8)": students["scratch"]}
outputs = {name: pix2pix.generate(m, test_edges.to(device)).cpu() for name, m in models.items()}
rows = []
for name, out in outputs.items():
    q = metrics.l1_psnr(out, test_digits)
    macs = teacher_macs if name.startswith("teacher") else student_macs
    rows.append({"model": name, "MMACs": macs / 1e6, "L1": q["l1"], "PSNR (dB)": q["psnr"],
                 "Frechet (digit features)": metrics.frechet_distance(test_digits, out)})
floor = metrics.frechet_distance(test_digits, train_digits)
rows.append({"model": "(scale) real training digits", "Frechet (digit features)": floor})
plots.table(rows, floatfmt=".3f", title=f"Held-out quality, {len(test_edges)} pairs, students after {STUDENT_STEPS} steps")
effcourse.record("psnr_teacher", rows[0]["PSNR (dB)"])
effcourse.record("psnr_distilled", rows[1]["PSNR (dB)"])
effcourse.record("psnr_scratch", rows[2]["PSNR (dB)"])
effcourse.record("fd_distilled", rows[1]["Frechet (digit features)"])
effcourse.record("fd_scratch", rows[2]["Frechet (digit features)"])

fig, axes = plt.subplots(5, 1, figsize=(9, 5.2))
plots.image_grid(test_edges[:16], nrow=16, ax=axes[0], title="input edges")
for ax, (name, out) in zip(axes[1:4], outputs.items()):
    plots.image_grid(out[:16], nrow=16, ax=ax, title=name, vmin=-1, vmax=1)
plots.image_grid(test_digits[:16], nrow=16, ax=axes[4], title="ground truth", vmin=-1, vmax=1)
plt.tight_layout()
plt.show()

# %% [markdown]
# MACs are a promise; latency is what a user feels. The table below times both generators in one
# interleaved run (medians), for one image and for a batch of 64. A network this small is partly
# bound by per-call overhead, so expect the speed-up at batch 1 to fall short of the MAC ratio.

# %%
cost_rows = []
for batch in (1, 64):
    xb = test_edges[:batch].to(device)
    table = bench.cost_table({"teacher": (teacher, (xb,)), "student": (students["distilled"], (xb,))},
                             repeats=5 if QUICK else 9, number=3 if batch == 1 else 1, baseline="teacher")
    for r in table:
        cost_rows.append({"batch": batch, **r})
plots.table(cost_rows, floatfmt=".3g", title="Cost: teacher vs. distilled student (one run, interleaved medians)")
speedup_b1 = 1 / cost_rows[1]["latency_ratio"]
speedup_b64 = 1 / cost_rows[3]["latency_ratio"]
effcourse.record("speedup_batch1", speedup_b1)
effcourse.record("speedup_batch64", speedup_b64)

# %% [markdown]
# ## 5. A once-for-all supernet: `SuperConv2d`
#
# Training a new student for every budget is wasteful. GAN Compression trains **one** generator
# whose sub-networks — the same network with fewer channels per layer — all work, by sharing
# weights: a layer with $c$ output channels uses the **first** $c$ filters of the full layer, and
# each filter reads only the input channels it actually receives:
#
# $$y = \operatorname{conv}\big(x,\; W_{[:c_\text{out},\; :c_\text{in}]},\; b_{[:c_\text{out}]}\big),
# \qquad c_\text{in} = x\text{.shape}[1].$$
#
# Write `SuperConv2d`, an `nn.Conv2d` (same constructor, same weight) whose `forward(x, out_channels)`
# does exactly that, keeping the layer's stride, padding and dilation (groups = 1).
# `pix2pix.SuperGenerator(SuperConv2d, widths)` builds the supernet from your class.

# %% nbgrader={"grade": false, "grade_id": "SuperConv2d", "locked": false, "schema_version": 3, "solution": true, "task": false}
class SuperConv2d(nn.Conv2d):
    """A channel-elastic convolution (groups = 1): every sub-width shares the leading weights.

    forward(x, out_channels): x is (N, c_in, H, W) with 1 <= c_in <= in_channels; returns the
    convolution of x with weight[:out_channels, :c_in] and bias[:out_channels] (no bias if the
    layer has none), with this layer's stride, padding and dilation: (N, out_channels, H', W').

    Raises:
        ValueError: if out_channels is not in 1..self.out_channels, or c_in > self.in_channels.
    """

    ### BEGIN SOLUTION
    def forward(self, x, out_channels):
        c_in = x.shape[1]
        if not 1 <= out_channels <= self.out_channels:
            raise ValueError(f"out_channels must be in 1..{self.out_channels}, got {out_channels}")
        if c_in > self.in_channels:
            raise ValueError(f"input has {c_in} channels, more than this layer's {self.in_channels}")
        weight = self.weight[:out_channels, :c_in]
        bias = None if self.bias is None else self.bias[:out_channels]
        return F.conv2d(x, weight, bias, self.stride, self.padding, self.dilation)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_SuperConv2d", "locked": true, "points": 20, "schema_version": 3, "solution": false, "task": false}
lab3.check_super_conv(SuperConv2d)
### BEGIN HIDDEN TESTS
from effcourse.checks._assert import assert_close as _close, assert_raises as _raises, assert_true as _true

_g = torch.Generator().manual_seed(int(time.time() * 1000) % 2**31 + 3)
# single layers: several kernels, strides, paddings, dilations, with and without bias, odd widths
for (_cin, _cout, _k, _s, _p, _d, _bias) in [(5, 7, 3, 1, 1, 1, True), (6, 4, 3, 2, 1, 1, False), (3, 9, 1, 1, 0, 1, True),
                                      (8, 5, 5, 2, 2, 1, True), (4, 6, 3, 1, 2, 2, False)]:
    _conv = SuperConv2d(_cin, _cout, _k, stride=_s, padding=_p, dilation=_d, bias=_bias)
    for _ci, _co in [(_cin, _cout), (1, 1), (max(1, _cin // 2), max(1, _cout - 2)), (_cin, 1)]:
        _x = torch.randn(3, _ci, 9, 7, generator=_g)
        _ref = F.conv2d(_x, _conv.weight[:_co, :_ci], None if _conv.bias is None else _conv.bias[:_co], _s, _p, _d)
        _close(f"SuperConv2d({_cin}, {_cout}, k={_k}, stride={_s}, padding={_p}, dilation={_d}, bias={_bias}) "
               f"with {_ci} inputs and out_channels={_co}", _conv(_x, _co), _ref, atol=1e-5)
    # gradients land only in the used slice of the shared weight
    _conv.zero_grad()
    _conv(torch.randn(2, max(1, _cin // 2), 6, 6, generator=_g), max(1, _cout // 2)).square().sum().backward()
    _mask = torch.zeros_like(_conv.weight, dtype=torch.bool)
    _mask[:max(1, _cout // 2), :max(1, _cin // 2)] = True
    _true(_conv.weight.grad is not None and _conv.weight.grad[~_mask].abs().sum() == 0 and _conv.weight.grad[_mask].abs().sum() > 0,
          "the gradient of a sub-width call must land in weight[:out_channels, :c_in] only")
_err = _raises("SuperConv2d(4, 6, 3)(x, out_channels=7)", lambda: SuperConv2d(4, 6, 3)(torch.randn(1, 4, 5, 5), 7), ValueError)


class _Plain(nn.Conv2d):       # a standalone layer with the SuperGenerator interface
    def forward(self, _x, out_channels):
        assert out_channels == self.out_channels
        return super().forward(_x)


def _standalone(supernet, config):
    """A network of plain convs at widths `config`, loaded with the supernet's leading weights."""
    net = pix2pix.SuperGenerator(_Plain, widths=config, n_blocks=len(supernet.blocks))
    with torch.no_grad():
        for (name, big), (_, small) in zip(supernet.named_modules(), net.named_modules()):
            if isinstance(small, nn.Conv2d):
                small.weight.copy_(big.weight[:small.out_channels, :small.in_channels])
                if small.bias is not None:
                    small.bias.copy_(big.bias[:small.out_channels])
    return net


for _widths, _n_blocks in [((8, 16, 32, 32), 4), ((5, 7, 6, 9), 2)]:
    torch.manual_seed(int(torch.randint(0, 10**6, (1,), generator=_g)))
    _sup = pix2pix.SuperGenerator(SuperConv2d, widths=_widths, n_blocks=_n_blocks).eval()
    _x = torch.randn(2, 1, 12, 16, generator=_g)
    with torch.no_grad():
        _close(f"SuperGenerator{_widths}: the full config vs the supernet's default forward",
               _sup(_x, _widths), _sup(_x), atol=1e-6)
        _close(f"SuperGenerator{_widths}: the full config vs a standalone network with the full weights",
               _sup(_x, _widths), _standalone(_sup, _widths)(_x, None), atol=1e-5)
        for _cfg in [tuple(max(1, _w // 2) for _w in _widths), (1, 1, 1, 1),
                    tuple(int(torch.randint(1, _w + 1, (1,), generator=_g)) for _w in _widths)]:
            _close(f"SuperGenerator{_widths} sub-network {_cfg} vs a standalone network built from the sliced weights",
                   _sup(_x, _cfg), _standalone(_sup, _cfg)(_x, None), atol=1e-5)
            _x1 = torch.randn(1, 1, 32, 32, generator=_g)
            _got = bench.count_macs(lambda: _sup(_x1, _cfg))
            _true(_got == bench.count_macs(lambda: _standalone(_sup, _cfg)(_x1, None)),
                  f"MACs of sub-network {_cfg} ({_got}) differ from the standalone network's")
            if _n_blocks == 4:
                _expected = sum([32 * 32 * _cfg[0] * 9, 16 * 16 * _cfg[1] * _cfg[0] * 9, 8 * 8 * _cfg[2] * _cfg[1] * 9,
                                4 * 2 * 8 * 8 * _cfg[2] * _cfg[3] * 9, 16 * 16 * _cfg[1] * _cfg[2] * 9,
                                32 * 32 * _cfg[0] * _cfg[1] * 9, 32 * 32 * _cfg[0] * 9])
                _true(_got == _expected, f"sub-network {_cfg} counts {_got} MACs (torch.utils.flop_counter); the sliced "
                      f"convolutions cost {_expected}: does every layer use only its slice?")
### END HIDDEN TESTS

# %% [markdown]
# ## 6. Search under a budget
#
# With the supernet trained, choosing a student is a search over configs (here the four widths
# *stem, down, trunk, inner*): keep the configs whose MACs fit the budget and evaluate only those
# (evaluation is the expensive part), then return the best. GAN Compression searched this way —
# by brute force over its (larger) space, evaluating each candidate with the shared weights and no
# retraining; then it fine-tuned the winner.
#
# Write `search(configs, budget_macs, count_macs, evaluate)`: `count_macs(config)` returns the MACs
# of a config, `evaluate(config)` a quality score where **higher is better**.

# %% nbgrader={"grade": false, "grade_id": "search", "locked": false, "schema_version": 3, "solution": true, "task": false}
def search(configs, budget_macs, count_macs, evaluate):
    """Best config within a MAC budget.

    Args:
        configs: iterable of candidate configs (any hashable objects, e.g. tuples of widths).
        budget_macs: the largest number of MACs allowed (a config with MACs == budget fits).
        count_macs: function config -> MACs (a number).
        evaluate: function config -> quality score (higher is better); call it only on configs
            that fit the budget.

    Returns:
        The config with the highest score among those with count_macs(config) <= budget_macs
        (the first one in order if several tie).

    Raises:
        ValueError: if no config fits the budget.
    """
    ### BEGIN SOLUTION
    best, best_score = None, None
    for config in configs:
        if count_macs(config) > budget_macs:
            continue
        score = evaluate(config)
        if best_score is None or score > best_score:
            best, best_score = config, score
    if best_score is None:
        raise ValueError(f"no config fits the budget of {budget_macs} MACs")
    return best
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "test_search", "locked": true, "points": 20, "schema_version": 3, "solution": false, "task": false}
lab3.check_search(search)
### BEGIN HIDDEN TESTS
from effcourse.checks._assert import assert_raises as _raises, assert_true as _true

_g = torch.Generator().manual_seed(int(time.time() * 1000) % 2**31 + 4)
for _n in (1, 2, 7, 40, 200):
    _configs = [tuple(int(v) for v in torch.randint(1, 65, (4,), generator=_g)) + (_i,) for _i in range(_n)]
    _macs = {_c: int(torch.randint(1, 1000, (1,), generator=_g)) for _c in _configs}
    _scores = {_c: float(s) for _c, s in zip(_configs, torch.randperm(10 * _n, generator=_g)[:_n])}   # distinct
    for _budget in sorted(set(torch.randint(1, 1100, (3,), generator=_g).tolist()) | {max(_macs.values()), min(_macs.values())}):
        _evaluated = []

        def _eval(_c):
            _evaluated.append(_c)
            return _scores[_c]

        _fits = [_c for _c in _configs if _macs[_c] <= _budget]
        if not _fits:
            _raises(f"search with no config under budget {_budget}", lambda: search(_configs, _budget, _macs.__getitem__, _eval),
                    ValueError)
            continue
        _got = search(iter(_configs), _budget, _macs.__getitem__, _eval)          # any iterable, e.g. a generator
        _best = max(_fits, key=_scores.__getitem__)
        _true(_got in _macs, f"search returned {_got!r}, which is not one of the configs")
        _true(_macs[_got] <= _budget, f"search returned {_got} with {_macs[_got]} MACs, over the budget {_budget}")
        _true(_got == _best, f"search over {_n} configs with budget {_budget}: expected {_best} (score {_scores[_best]}), "
              f"got {_got} (score {_scores[_got]})")
        _true(all(_macs[_c] <= _budget for _c in _evaluated), "search evaluated a config that is over budget; "
              "evaluation is the expensive step: skip those")
# ties: the first one in order
_true(search(["x", "y"], 10, lambda _c: 1, lambda _c: 0.5) == "x", "with equal scores search must return the first config")
### END HIDDEN TESTS

# %% [markdown]
# ## 7. Experiment: once-for-all training, quality vs. MACs, and the search
#
# The supernet has the student's largest widths (stem 8, down 16, trunk 32, inner 32) and nearest
# upsampling + 3×3 convolutions instead of transposed ones (so that every layer is a `SuperConv2d`).
# Each training step follows the *sandwich* idea: the largest network and one random sub-network
# see the same batch and their gradients add up. Then every sub-network is evaluated **with the
# shared weights, without retraining**, and `search` picks the best under a budget of half the
# largest network's MACs.

# %%
torch.manual_seed(SEED)
supernet = pix2pix.SuperGenerator(SuperConv2d, widths=(8, 16, 32, 32))
configs = pix2pix.config_space(supernet.widths, fractions=(0.25, 0.5, 1.0))
supernet, _ = pix2pix.train_supernet(supernet, train_edges, train_digits, SUPERNET_STEPS, configs, generator_objective,
                                     seed=SEED, device=device)
x1 = test_edges[:1].to(device)
macs_of = {c: bench.count_macs(lambda c=c: supernet(x1, c)) for c in configs}
val_edges, val_digits = test_edges[:128].to(device), test_digits[:128]
psnr_of = {}


def evaluate(config):
    if config not in psnr_of:
        psnr_of[config] = metrics.l1_psnr(pix2pix.generate(supernet, val_edges, config=config).cpu(), val_digits)["psnr"]
    return psnr_of[config]


budget = macs_of[supernet.widths] // 2
best = search(configs, budget, macs_of.__getitem__, evaluate)
for c in configs:
    evaluate(c)                                   # every config, for the plot only
print(f"{len(configs)} configs; budget {budget / 1e6:.2f} M MACs; search picked {best}: "
      f"{macs_of[best] / 1e6:.2f} M MACs, {psnr_of[best]:.2f} dB")
effcourse.record("search_budget_macs", budget)
effcourse.record("search_best_macs", macs_of[best])
effcourse.record("search_best_psnr", psnr_of[best])
effcourse.record("search_best_config", list(best))
fits = [c for c in configs if macs_of[c] <= budget]
effcourse.record("search_best_in_budget_max_psnr", max(psnr_of[c] for c in fits))

fig, ax = plt.subplots(figsize=(6, 3.8))
ax.scatter([macs_of[c] / 1e6 for c in configs], [psnr_of[c] for c in configs], s=12, alpha=0.7, label="sub-networks")
ax.axvline(budget / 1e6, color="gray", ls="--", label="budget")
ax.scatter([macs_of[best] / 1e6], [psnr_of[best]], s=120, marker="*", color="C3", label=f"search: {best}")
ax.set_xlabel("M MACs per image")
ax.set_ylabel("held-out PSNR (dB)")
ax.set_title(f"Once-for-all supernet after {SUPERNET_STEPS} steps")
ax.grid(alpha=0.3)
ax.legend()
plt.show()

# %% [markdown]
# ## 8. Paper vs. you

# %%
plots.table([
    {"setting": "paper: CycleGAN horse→zebra", "teacher MACs": "56.8 G", "student MACs": "2.67 G", "MAC ratio": 21.2,
     "teacher quality": "FID 65.75", "student quality": "FID 65.33"},
    {"setting": "paper: pix2pix edges→shoes", "teacher MACs": "56.8 G", "student MACs": "4.81 G", "MAC ratio": 11.8,
     "teacher quality": "—", "student quality": "—"},
    {"setting": f"you: edges→digits ({'QUICK' if QUICK else 'full'})", "teacher MACs": f"{teacher_macs / 1e6:.1f} M",
     "student MACs": f"{student_macs / 1e6:.2f} M", "MAC ratio": teacher_macs / student_macs,
     "teacher quality": f"PSNR {rows[0]['PSNR (dB)']:.2f} dB",
     "student quality": f"PSNR {rows[1]['PSNR (dB)']:.2f} dB distilled, {rows[2]['PSNR (dB)']:.2f} dB scratch"},
], floatfmt=".1f", title="GAN Compression: paper vs. this lab")

# %% [markdown]
# ## 9. Questions
#
# **Q1 (10 points).** Distillation helped the student although the student never saw more data:
# what information do the teacher's block outputs give it that the target digit alone does not?
# Why does the mapper go from the student's width to the teacher's and not the other way round, and
# why is it free at inference time?

# %% [markdown] nbgrader={"grade": true, "grade_id": "q_why_distill", "locked": false, "points": 10, "schema_version": 3, "solution": true, "task": false}
# The target is one image per input; the teacher's features are a dense, 128-channel description of
# *how* a good generator represents that input at every 8×8 position — shapes, stroke positions,
# which parts to fill — a much richer, smoother regression target that also encodes the teacher's
# generalisation (its outputs on the training edges are already "denoised" answers). Matching them
# is easier to optimise than discovering the same intermediate representation from the L1 loss
# alone, which is why the distilled student gets ahead at equal steps. Mapping student → teacher
# (a learned 1×1 conv) asks the student's thin features to *contain* the information the teacher's
# features hold, up to a linear map; mapping the teacher down would let the loss throw teacher
# information away. The mappers are only used in the loss during training and are discarded
# afterwards, so the deployed student is unchanged: zero inference cost.

# %% [markdown]
# **Q2 (10 points).** The student has about 15× fewer MACs than the teacher. Compare that with the
# speed-ups you measured at batch 1 and batch 64, and explain the gap. What would you change to get
# closer to the MAC ratio on a phone or a GPU?

# %% [markdown] nbgrader={"grade": true, "grade_id": "q_macs_vs_latency", "locked": false, "points": 10, "schema_version": 3, "solution": true, "task": false}
# MACs count only the arithmetic of the convolutions. Latency also pays a fixed cost per layer call
# (Python and framework dispatch, kernel launch, memory allocation), InstanceNorm and activation
# passes over memory, and the poor efficiency of very thin convolutions (few channels give the
# kernels little work per byte moved, so they are memory- or overhead-bound). At batch 1 the
# student's few MACs are dwarfed by that fixed cost, so the measured speed-up is far below the MAC
# ratio; at batch 64 the arithmetic dominates again and the speed-up gets closer to it. To approach
# the MAC ratio: batch or tile the work, fuse layers (conv + norm + ReLU) and compile the graph
# (TorchScript / torch.compile / TensorRT / Core ML), use channel counts that match the hardware's
# vector width, and — as GAN Compression's search does — measure latency on the target device
# rather than trusting MACs.
