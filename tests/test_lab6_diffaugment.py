"""Lab 6 (DiffAugment): the DCGAN plumbing, the QUICK run's recorded claims and the nbgrader round trip."""
from __future__ import annotations

import harness
import pytest
import torch
import torch.nn.functional as F

from effcourse.data.digits import few_shot, load_digits
from effcourse.gan import dcgan
from effcourse.training import Loop

LAB = "lab6_diffaugment"
pytestmark = pytest.mark.xdist_group(LAB)

# a plausible mistake: the fake is not detached in D's step
WRONG_D_LOSS = '''def d_loss(D, real, fake, augment):
    """Discriminator loss (wrongly: the fake is not detached)."""
    return F.softplus(-D(augment(real))).mean() + F.softplus(D(augment(fake))).mean()
'''


# ------------------------------------------------------------------ plumbing (fast, no notebook)
def _d_loss(D, real, fake, augment):
    return F.softplus(-D(augment(real))).mean() + F.softplus(D(augment(fake.detach()))).mean()


def _g_loss(D, fake, augment):
    return F.softplus(-D(augment(fake))).mean()


def _loop(steps, batch_size):
    return Loop(steps=steps, batch_size=batch_size, progress=False, live=False)


def test_generator_and_discriminator_shapes():
    G, D = dcgan.make_gan(nz=16, ngf=8, ndf=8, seed=0)
    G2, D2 = dcgan.make_gan(nz=16, ngf=8, ndf=8, seed=0)
    assert all(torch.equal(a, b) for a, b in zip(G.state_dict().values(), G2.state_dict().values()))
    assert all(torch.equal(a, b) for a, b in zip(D.state_dict().values(), D2.state_dict().values()))
    x = G(torch.randn(5, 16))
    assert x.shape == (5, 1, 16, 16) and x.abs().max() <= 1
    assert D(x).shape == (5,)
    assert G.sample(7).shape == (7, 1, 16, 16) and G.training
    with pytest.raises(ValueError, match=r"\(N, 16\)"):
        G(torch.randn(5, 8))
    with pytest.raises(ValueError, match="16x16"):
        D(torch.randn(2, 1, 8, 8))


def test_train_gan_history_ema_and_determinism():
    fs = few_shot(20, 16, seed=0)
    runs = []
    for _ in range(2):
        G, D = dcgan.make_gan(nz=16, ngf=4, ndf=4, seed=0)
        G_ema, h = dcgan.train_gan(G, D, fs.images, _d_loss, _g_loss, heldout=fs.heldout_images[:50],
                                   loop=Loop(steps=12, batch_size=8, progress=False, live=False),
                                   opts=dcgan.GANOptions(probe_every=5, eval_every=8),
                                   evaluate=lambda g: float(g.sample(4).mean()))
        runs.append((G, G_ema, h))
    (G, G_ema, h), (_, G_ema2, h2) = runs
    assert h.steps("d_train") == [5, 10, 12] and len(h["d_train"]) == len(h["d_heldout"]) == len(dcgan.gap(h)) == 3
    assert all(0 < v < 1 for v in h["d_train"] + h["d_heldout"])
    assert dcgan.gap(h, logits=False) == pytest.approx([a - b for a, b in zip(h["d_train"], h["d_heldout"])])
    assert h.steps("eval") == [8, 12] and len(h["eval"]) == 2
    assert h.steps("d_loss") == list(range(1, 13)) and h.steps("g_loss") == list(range(1, 13))
    assert h["d_train"] == h2["d_train"] and h["d_loss"] == h2["d_loss"]          # same seed, same run
    assert all(torch.equal(a, b) for a, b in zip(G_ema.state_dict().values(), G_ema2.state_dict().values()))
    assert not all(torch.equal(a, b) for a, b in zip(G.parameters(), G_ema.parameters()))
    assert len(h["logit_fake"]) == len(h["logit_fake_aug"]) == 3
    assert dcgan.fake_aug_gap(h) == pytest.approx([0.0] * 3)                                     # no augment


def test_fake_probes_do_not_change_training():
    """D's logits on G(z) and T(G(z)) are probed on a copy of G with their own random streams: the same run
    with probes at every step and at the end only ends with the same weights."""
    fs = few_shot(20, 16, seed=0)
    def aug(x):
        return x + 0.1 * torch.randn_like(x)          # random, so a probe that drew from the run's stream shows
    out = []
    for every in (1, 100):
        G, D = dcgan.make_gan(nz=16, ngf=4, ndf=4, seed=0)
        _, h = dcgan.train_gan(G, D, fs.images, _d_loss, _g_loss, aug, loop=_loop(6, 8),
                               opts=dcgan.GANOptions(probe_every=every, probe_fakes=16))
        out.append((G, D, h))
    (G1, D1, h1), (G2, D2, h2) = out
    assert len(h1["logit_fake"]) == 6 and len(h2["logit_fake"]) == 1
    assert all(torch.equal(a, b) for a, b in zip(G1.state_dict().values(), G2.state_dict().values()))
    assert all(torch.equal(a, b) for a, b in zip(D1.state_dict().values(), D2.state_dict().values()))
    assert h1.last("logit_fake") == pytest.approx(h2.last("logit_fake")) and dcgan.fake_aug_gap(h1)[-1] != 0.0


def test_train_gan_uses_augment_and_real_transform():
    fs = few_shot(20, 16, seed=0)
    seen = {"augment": 0, "real": 0}

    def augment(x):
        seen["augment"] += 1
        return x.flip(-1)

    def real_transform(x):
        seen["real"] += 1
        return x

    G, D = dcgan.make_gan(nz=16, ngf=4, ndf=4, seed=0)
    dcgan.train_gan(G, D, fs.images, _d_loss, _g_loss, augment, real_transform, loop=_loop(3, 4))
    assert seen == {"augment": 10, "real": 3}  # D step: reals + fakes, G step: fakes; the probe at step 3: fakes
    assert all(p.requires_grad for p in D.parameters())   # frozen during G's step only


def test_train_gan_can_augment_in_d_step_only():
    fs = few_shot(20, 16, seed=0)
    seen = []

    def augment(x):
        seen.append(x.requires_grad)
        return x.flip(-1)

    def g_loss_checks_d_frozen(D, fake, augment):
        assert not any(p.requires_grad for p in D.parameters()), "D must be frozen in G's step"
        return _g_loss(D, fake, augment)

    G, D = dcgan.make_gan(nz=16, ngf=4, ndf=4, seed=0)
    dcgan.train_gan(G, D, fs.images, _d_loss, g_loss_checks_d_frozen, augment, loop=_loop(3, 4),
                    opts=dcgan.GANOptions(augment_g_step=False))
    assert len(seen) == 7                   # reals and fakes in D's step, nothing in G's step; one probe
    assert all(p.requires_grad for p in D.parameters())


def test_train_gan_errors_name_the_problem():
    fs = few_shot(20, 16, seed=0)
    G, D = dcgan.make_gan(nz=16, ngf=4, ndf=4, seed=0)
    def no_detach(D, r, f, a):
        return F.softplus(-D(a(r))).mean() + F.softplus(D(a(f))).mean()
    with pytest.raises(RuntimeError, match="Detach the fake"):
        dcgan.train_gan(G, D, fs.images, no_detach, _g_loss, loop=_loop(2, 4))
    def per_sample(D, f, a):
        return F.softplus(-D(a(f)))
    with pytest.raises(TypeError, match="scalar"):
        dcgan.train_gan(G, D, fs.images, _d_loss, per_sample, loop=_loop(2, 4))
    with pytest.raises(ValueError, match=r"reals must be \(N, 1, 16, 16\)"):
        dcgan.train_gan(G, D, fs.images[:, :, :8, :8], _d_loss, _g_loss, loop=_loop(2, 4))


def test_artifact_rate():
    x, _ = load_digits(16)
    assert dcgan.artifact_rate(x) == {"square": 0.0, "edge": 0.0, "any": 0.0}
    y = x[:10].clone()
    y[:4, :, 5:9, 6:10] = 0.0          # a 4x4 zeroed square in 4 images
    y[6:8, :, :, -1] = 0.02            # a (nearly) zero last column in 2 images
    rate = dcgan.artifact_rate(y)
    assert rate == {"square": pytest.approx(0.4), "edge": pytest.approx(0.2), "any": pytest.approx(0.6)}
    y[0, :, 5:9, 6:10] = -1.0          # background, not a cut
    assert dcgan.artifact_rate(y)["square"] == pytest.approx(0.3)
    with pytest.raises(ValueError):
        dcgan.artifact_rate(x[:, 0])


# ------------------------------------------------------------------ the notebook (QUICK run)
# Measured on this kind of machine (1800-3000 iterations, seeds 0-2 and several net sizes): D's logit gap
# (no augmentation > 1 vs DiffAugment |gap| < 0.1), the reals-only artifacts (35-44 % vs 0 %) and the
# D-only Fréchet distance (62-117 vs DiffAugment's 32-48 at 500 iterations) held every time; CI asserts
# those. The final Fréchet distances of no augmentation and DiffAugment are NOT asserted: at QUICK size
# (1800 iterations) no augmentation is still ahead (seeds 0/1/2: 18.2/21.5/14.9 vs DiffAugment's
# 20.1/34.9/26.4), and neither a 2x faster D nor 50 training images changed the order; the notebook
# reports it and explains why.
@pytest.mark.notebook
def test_diffaugment_discriminator_memorises_less():
    rec = harness.records(LAB)
    assert rec["gap_diffaugment"] < rec["gap_none"], rec
    assert rec["gap_none"] > 0.5 and abs(rec["gap_diffaugment"]) < 0.3, rec


@pytest.mark.notebook
def test_augmenting_reals_only_leaks_artifacts():
    rec = harness.records(LAB)
    assert rec["artifacts_reals_only"] > rec["artifacts_diffaugment"] + 0.2, rec
    assert rec["fd_reals_only"] > rec["fd_diffaugment"], rec


@pytest.mark.notebook
def test_augmenting_for_d_only_cripples_training():
    rec = harness.records(LAB)
    assert rec["fd_d_only"] > rec["fd_diffaugment_short"], rec     # at the same iteration
    assert rec["fd_d_only"] > rec["fd_diffaugment"], rec


@pytest.mark.notebook
def test_augmenting_for_d_only_unbalances_the_game():
    """Approach 2's mechanism, measured: D calls G's un-augmented fakes real and the same fakes augmented fake
    (seeds 0/1/2 at 500 iterations, last probe of 256 fakes: D(G(z)) 2.55/2.58/3.36, D(T(G(z))) -2.73/-1.15/-1.21;
    the notebook's QUICK run, seed 0, 128 fakes: 2.53 and -3.17); with DiffAugment the two stay within ~0.2 of each
    other (seeds 0/1 at 1800 iterations; the notebook: 0.19 and 0.03)."""
    rec = harness.records(LAB)
    assert rec["fake_logit_d_only"] > 1.0 and rec["fake_aug_logit_d_only"] < -0.5, rec
    gap_d_only = rec["fake_logit_d_only"] - rec["fake_aug_logit_d_only"]
    gap_diffaugment = rec["fake_logit_diffaugment"] - rec["fake_aug_logit_diffaugment"]
    assert abs(gap_diffaugment) < 0.5 and gap_d_only > abs(gap_diffaugment) + 1.5, rec


@pytest.mark.notebook
def test_artifacts_and_floors_are_reported():
    rec = harness.records(LAB)
    for k in ("artifacts_none", "artifacts_reals_only", "artifacts_d_only", "artifacts_diffaugment"):
        assert 0.0 <= rec[k] <= 1.0
    assert 0 < rec["fd_floor_halves"] < rec["fd_floor_memoriser"]


@pytest.mark.notebook
def test_nbgrader_roundtrip():
    harness.check_roundtrip(LAB, "d_loss", WRONG_D_LOSS, loses={"test_d_loss"})
