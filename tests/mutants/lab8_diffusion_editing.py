"""Mutants of Lab 8's exercises (format: tests/mutation.py).

Correct alternatives score full points (diffusers-style formulations, other but equivalent
arithmetic); plausible wrong answers lose their exercise's points: an off-by-one abar, a missing
square root, eta != 0 noise, wrong t0 indexing, a cache not keyed by step, statistics from the
edited run, an undilated mask, ...
"""

# ---------------------------------------------------------------- linear_schedule

_LS = '''
def linear_schedule(T, beta_start=1e-4, beta_end=0.02):
{body}
'''

SCHEDULE_CORRECT = {
    # diffusers' own arithmetic: float32 linspace and cumprod
    "float32_linspace_cumprod": _LS.format(body='''    betas = torch.linspace(beta_start, beta_end, T, dtype=torch.float32)
    return betas, torch.cumprod(1.0 - betas, dim=0)'''),
    "log_space_cumsum": _LS.format(body='''    betas = torch.linspace(beta_start, beta_end, T, dtype=torch.float64)
    return betas.float(), torch.exp(torch.cumsum(torch.log1p(-betas), 0)).float()'''),
    "python_loop": _LS.format(body='''    step = (beta_end - beta_start) / (T - 1) if T > 1 else 0.0
    betas = [beta_start + i * step for i in range(T)]
    acc, abar = 1.0, []
    for b in betas:
        acc *= 1.0 - b
        abar.append(acc)
    return torch.tensor(betas, dtype=torch.float32), torch.tensor(abar, dtype=torch.float32)'''),
}

SCHEDULE_WRONG = {
    # abar[t] = prod_{s < t}: starts at 1 (off by one step)
    "abar_off_by_one": _LS.format(body='''    betas = torch.linspace(beta_start, beta_end, T, dtype=torch.float64)
    abar = torch.cat([torch.ones(1, dtype=torch.float64), torch.cumprod(1.0 - betas, 0)[:-1]])
    return betas.float(), abar.float()'''),
    "end_excluded": _LS.format(body='''    betas = torch.arange(T, dtype=torch.float64) * ((beta_end - beta_start) / T) + beta_start
    return betas.float(), torch.cumprod(1.0 - betas, 0).float()'''),
    "cumprod_of_betas": _LS.format(body='''    betas = torch.linspace(beta_start, beta_end, T, dtype=torch.float64)
    return betas.float(), torch.cumprod(betas, 0).float()'''),
    "cumsum_not_cumprod": _LS.format(body='''    betas = torch.linspace(beta_start, beta_end, T, dtype=torch.float64)
    return betas.float(), (1 - torch.cumsum(betas, 0)).float()'''),
    "alphas_not_cumulative": _LS.format(body='''    betas = torch.linspace(beta_start, beta_end, T, dtype=torch.float64)
    return betas.float(), (1 - betas).float()'''),
    "scaled_linear": _LS.format(body='''    betas = torch.linspace(beta_start ** 0.5, beta_end ** 0.5, T, dtype=torch.float64) ** 2
    return betas.float(), torch.cumprod(1.0 - betas, 0).float()'''),
}

# ---------------------------------------------------------------- q_sample

_QS = '''
def q_sample(x0, t, noise, alphas_cumprod):
    t = torch.as_tensor(t, dtype=torch.long).expand(x0.shape[0])
{body}
'''

QSAMPLE_CORRECT = {
    "diffusers_style_flatten_unsqueeze": _QS.format(body='''    s = alphas_cumprod[t] ** 0.5
    s1 = (1 - alphas_cumprod[t]) ** 0.5
    while s.dim() < x0.dim():
        s, s1 = s.unsqueeze(-1), s1.unsqueeze(-1)
    return s * x0 + s1 * noise'''),
    "gather_and_einsum": _QS.format(body='''    a = alphas_cumprod.gather(0, t)
    return torch.einsum("n,n...->n...", a.sqrt(), x0) + torch.einsum("n,n...->n...", (1 - a).sqrt(), noise)'''),
}

QSAMPLE_WRONG = {
    "sqrt_missing": _QS.format(body='''    a = alphas_cumprod[t].view(-1, 1, 1, 1)
    return a * x0 + (1 - a) * noise'''),
    "noise_weight_sqrt_missing": _QS.format(body='''    a = alphas_cumprod[t].view(-1, 1, 1, 1)
    return a.sqrt() * x0 + (1 - a) * noise'''),
    "abar_off_by_one": _QS.format(body='''    a = alphas_cumprod[(t - 1).clamp(min=0)].view(-1, 1, 1, 1)
    return a.sqrt() * x0 + (1 - a).sqrt() * noise'''),
    "first_timestep_for_all": _QS.format(body='''    a = alphas_cumprod[t[0]]
    return a.sqrt() * x0 + (1 - a).sqrt() * noise'''),
    "weights_swapped": _QS.format(body='''    a = alphas_cumprod[t].view(-1, 1, 1, 1)
    return (1 - a).sqrt() * x0 + a.sqrt() * noise'''),
    "variance_not_one_minus_abar": _QS.format(body='''    a = alphas_cumprod[t].view(-1, 1, 1, 1)
    return a.sqrt() * x0 + (1 - a.sqrt()) * noise'''),
}

# ---------------------------------------------------------------- ddim_timesteps

_TS = '''
def ddim_timesteps(T, n):
{body}
'''

TIMESTEPS_CORRECT = {
    "numpy_like_diffusers": _TS.format(body='''    import numpy as np
    k = T // n
    return torch.from_numpy((np.arange(0, n) * k).round()[::-1].copy().astype(np.int64))'''),
    "range_reversed": _TS.format(body='''    return torch.tensor(list(range(0, n * (T // n), T // n))[::-1], dtype=torch.long)'''),
}

TIMESTEPS_WRONG = {
    "trailing_spacing": _TS.format(body='''    k = T / n
    return torch.arange(T, 0, -k).round().long() - 1'''),
    "linspace_spacing": _TS.format(body='''    return torch.linspace(0, T - 1, n).round().long().flip(0)'''),
    "increasing": _TS.format(body='''    return torch.arange(n, dtype=torch.long) * (T // n)'''),
    "starts_at_T": _TS.format(body='''    return torch.arange(n, 0, -1, dtype=torch.long) * (T // n)'''),
    "float_step": _TS.format(body='''    return (torch.arange(n - 1, -1, -1) * (T / n)).long()'''),
    "one_extra_step": _TS.format(body='''    return torch.arange(n, -1, -1, dtype=torch.long) * (T // n)'''),
}

# ---------------------------------------------------------------- ddim_step

_DS = '''
def ddim_step(eps, t, t_prev, x_t, alphas_cumprod):
    a_t = alphas_cumprod[int(t)]
    a_prev = alphas_cumprod[int(t_prev)] if int(t_prev) >= 0 else torch.tensor(1.0)
{body}
'''

DDIM_CORRECT = {
    # DDIM paper eq. 12 rearranged: a linear combination of x_t and eps
    "x_and_eps_coefficients": _DS.format(body='''    c_x = (a_prev / a_t).sqrt()
    c_e = (1 - a_prev).sqrt() - (a_prev * (1 - a_t) / a_t).sqrt()
    return c_x * x_t + c_e * eps'''),
    # diffusers' formulation: pred_original_sample, then the direction pointing to x_t (eta = 0: std 0)
    "diffusers_style": _DS.format(body='''    beta_t = 1 - a_t
    pred_x0 = (x_t - beta_t ** 0.5 * eps) / a_t ** 0.5
    std = 0.0
    direction = (1 - a_prev - std ** 2) ** 0.5 * eps
    return a_prev ** 0.5 * pred_x0 + direction'''),
}

DDIM_WRONG = {
    "abar_prev_off_by_one": _DS.format(body='''    a_prev = alphas_cumprod[int(t_prev) + 1] if int(t_prev) >= 0 else alphas_cumprod[0]
    x0 = (x_t - (1 - a_t).sqrt() * eps) / a_t.sqrt()
    return a_prev.sqrt() * x0 + (1 - a_prev).sqrt() * eps'''),
    "sqrt_missing_in_x0": _DS.format(body='''    x0 = (x_t - (1 - a_t) * eps) / a_t.sqrt()
    return a_prev.sqrt() * x0 + (1 - a_prev).sqrt() * eps'''),
    "eta_one_noise": _DS.format(body='''    x0 = (x_t - (1 - a_t).sqrt() * eps) / a_t.sqrt()
    var = (1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev)
    return a_prev.sqrt() * x0 + (1 - a_prev - var).clamp(min=0).sqrt() * eps + var.sqrt() * torch.randn_like(x_t)'''),
    "clips_x0": _DS.format(body='''    x0 = ((x_t - (1 - a_t).sqrt() * eps) / a_t.sqrt()).clamp(-1, 1)
    return a_prev.sqrt() * x0 + (1 - a_prev).sqrt() * eps'''),
    "final_alpha_is_abar0": _DS.format(body='''    a_prev = alphas_cumprod[int(t_prev)] if int(t_prev) >= 0 else alphas_cumprod[0]
    x0 = (x_t - (1 - a_t).sqrt() * eps) / a_t.sqrt()
    return a_prev.sqrt() * x0 + (1 - a_prev).sqrt() * eps'''),
    "ddpm_posterior_mean": _DS.format(body='''    beta = 1 - a_t / a_prev
    return (x_t - beta / (1 - a_t).sqrt() * eps) / (1 - beta).sqrt()'''),
    "returns_x0": _DS.format(body='''    return (x_t - (1 - a_t).sqrt() * eps) / a_t.sqrt()'''),
}

# ---------------------------------------------------------------- sdedit

_SD = '''
def sdedit(eps_model, x0, start, timesteps, alphas_cumprod, noise):
    ts = [int(t) for t in timesteps]
{body}
'''

SDEDIT_CORRECT = {
    "while_loop_pairs": _SD.format(body='''    pairs = list(zip(ts[start:], ts[start + 1:] + [-1]))
    x = q_sample(x0, torch.tensor([ts[start]] * x0.shape[0]), noise, alphas_cumprod)
    with torch.no_grad():
        while pairs:
            t, tp = pairs.pop(0)
            x = ddim_step(eps_model(x, t), t, tp, x, alphas_cumprod)
    return x'''),
    "int_timestep_to_q_sample": _SD.format(body='''    x = q_sample(x0, ts[start], noise, alphas_cumprod)
    for i, t in enumerate(ts[start:], start):
        with torch.no_grad():
            e = eps_model(x, t)
        x = ddim_step(e, t, ts[i + 1] if i + 1 < len(ts) else -1, x, alphas_cumprod)
    return x'''),
}

SDEDIT_WRONG = {
    "skips_the_first_step": _SD.format(body='''    x = q_sample(x0, torch.tensor([ts[start]] * x0.shape[0]), noise, alphas_cumprod)
    for i in range(start + 1, len(ts)):
        x = ddim_step(eps_model(x, ts[i]), ts[i], ts[i + 1] if i + 1 < len(ts) else -1, x, alphas_cumprod)
    return x'''),
    "noises_to_the_next_timestep": _SD.format(body='''    s = min(start + 1, len(ts) - 1)
    x = q_sample(x0, torch.tensor([ts[s]] * x0.shape[0]), noise, alphas_cumprod)
    for i in range(start, len(ts)):
        x = ddim_step(eps_model(x, ts[i]), ts[i], ts[i + 1] if i + 1 < len(ts) else -1, x, alphas_cumprod)
    return x'''),
    "stops_at_t0_without_final_step": _SD.format(body='''    x = q_sample(x0, torch.tensor([ts[start]] * x0.shape[0]), noise, alphas_cumprod)
    for i in range(start, len(ts) - 1):
        x = ddim_step(eps_model(x, ts[i]), ts[i], ts[i + 1], x, alphas_cumprod)
    return x'''),
    "counts_start_from_the_end": _SD.format(body='''    s = len(ts) - 1 - start
    x = q_sample(x0, torch.tensor([ts[s]] * x0.shape[0]), noise, alphas_cumprod)
    for i in range(s, len(ts)):
        x = ddim_step(eps_model(x, ts[i]), ts[i], ts[i + 1] if i + 1 < len(ts) else -1, x, alphas_cumprod)
    return x'''),
    "model_called_with_previous_t": _SD.format(body='''    x = q_sample(x0, torch.tensor([ts[start]] * x0.shape[0]), noise, alphas_cumprod)
    for i in range(start, len(ts)):
        tp = ts[i + 1] if i + 1 < len(ts) else -1
        x = ddim_step(eps_model(x, max(tp, 0)), ts[i], tp, x, alphas_cumprod)
    return x'''),
    "fresh_noise_each_step": _SD.format(body='''    x = q_sample(x0, torch.tensor([ts[start]] * x0.shape[0]), noise, alphas_cumprod)
    for i in range(start, len(ts)):
        tp = ts[i + 1] if i + 1 < len(ts) else -1
        x = ddim_step(eps_model(x, ts[i]), ts[i], tp, x, alphas_cumprod)
        if tp >= 0:
            x = x + 0.05 * torch.randn_like(x)
    return x'''),
}

# ---------------------------------------------------------------- edit_mask

_EM = '''
def edit_mask(x0, x0_edit, dilation):
{body}
'''

MASK_CORRECT = {
    "conv_with_ones": _EM.format(body='''    ch = (x0_edit - x0).abs().amax(dim=(0, 1)) > 0
    d = int(dilation)
    k = torch.ones(1, 1, 2 * d + 1, 2 * d + 1)
    return F.conv2d(ch[None, None].float(), k, padding=d)[0, 0] > 0'''),
    "shifted_ors": _EM.format(body='''    ch = (x0 != x0_edit).flatten(0, 1).any(0)
    out = ch.clone()
    d, (H, W) = int(dilation), ch.shape
    for dy in range(-d, d + 1):
        for dx in range(-d, d + 1):
            out[max(0, dy):H + min(0, dy), max(0, dx):W + min(0, dx)] |= ch[max(0, -dy):H - max(0, dy),
                                                                             max(0, -dx):W - max(0, dx)]
    return out'''),
}

MASK_WRONG = {
    "undilated": _EM.format(body='''    return (x0 != x0_edit).any(1).any(0)'''),
    "first_picture_only": _EM.format(body='''    ch = (x0[0] != x0_edit[0]).any(0)
    return F.max_pool2d(ch[None, None].float(), 2 * dilation + 1, 1, dilation)[0, 0] > 0'''),
    "first_channel_only": _EM.format(body='''    ch = (x0[:, 0] != x0_edit[:, 0]).any(0)
    return F.max_pool2d(ch[None, None].float(), 2 * dilation + 1, 1, dilation)[0, 0] > 0'''),
    "dilation_doubled": _EM.format(body='''    ch = (x0 != x0_edit).any(1).any(0)
    return F.max_pool2d(ch[None, None].float(), 4 * dilation + 1, 1, 2 * dilation)[0, 0] > 0'''),
    "cross_not_square": _EM.format(body='''    ch = (x0 != x0_edit).any(1).any(0).float()[None, None]
    d = int(dilation)
    v = F.max_pool2d(ch, (2 * d + 1, 1), 1, (d, 0))
    h = F.max_pool2d(ch, (1, 2 * d + 1), 1, (0, d))
    return ((v + h)[0, 0]) > 0'''),
    "threshold_ignores_small_changes": _EM.format(body='''    ch = ((x0 - x0_edit).abs() > 1e-2).any(1).any(0)
    return F.max_pool2d(ch[None, None].float(), 2 * dilation + 1, 1, dilation)[0, 0] > 0'''),
    "dilated_once_too_few": _EM.format(body='''    ch = (x0 != x0_edit).any(1).any(0)
    d = max(int(dilation) - 1, 0)
    return F.max_pool2d(ch[None, None].float(), 2 * d + 1, 1, d)[0, 0] > 0'''),
}

# ---------------------------------------------------------------- sige_steps (cache_original + sparse_edit)

_CO = '''
def cache_original(eps_model, x0, start, timesteps, alphas_cumprod, noise, make_runner):
    ts = [int(t) for t in timesteps]
{co}


def sparse_edit(caches, x0_edit, mask, start, timesteps, alphas_cumprod, noise):
    ts = [int(t) for t in timesteps]
{se}
'''

_CO_OK = '''    caches = {}
    x = q_sample(x0, torch.full((x0.shape[0],), ts[start], dtype=torch.long), noise, alphas_cumprod)
    for i in range(start, len(ts)):
        runner = caches[ts[i]] = make_runner(eps_model.at_step(ts[i]))
        x = ddim_step(runner.full(x), ts[i], ts[i + 1] if i + 1 < len(ts) else -1, x, alphas_cumprod)
    return x, caches'''
_SE_OK = '''    x = q_sample(x0_edit, torch.full((x0_edit.shape[0],), ts[start], dtype=torch.long), noise, alphas_cumprod)
    for i in range(start, len(ts)):
        x = ddim_step(caches[ts[i]].sparse(x, changed=mask), ts[i], ts[i + 1] if i + 1 < len(ts) else -1, x,
                      alphas_cumprod)
    return x'''

SIGE_CORRECT = {
    # the runners made up front, then the original's trajectory
    "runners_first_then_run": _CO.format(co='''    caches = {t: make_runner(eps_model.at_step(t)) for t in ts[start:]}
    x = q_sample(x0, ts[start], noise, alphas_cumprod)
    nxt = ts[start + 1:] + [-1]
    for t, tp in zip(ts[start:], nxt):
        x = ddim_step(caches[t].full(x), t, tp, x, alphas_cumprod)
    return x, caches''', se=_SE_OK),
    # the edited trajectory blended with the original's outside the mask is not needed, but keeping the
    # mask as a float blend of the noise prediction gives the same numbers (outside: the cached output)
    "zip_pairs_and_dict_comprehension": _CO.format(co=_CO_OK, se='''    x = q_sample(x0_edit, ts[start], noise, alphas_cumprod)
    for t, tp in zip(ts[start:], ts[start + 1:] + [-1]):
        e = caches[t].sparse(x, mask)
        x = ddim_step(e, t, tp, x, alphas_cumprod)
    return x'''),
}

SIGE_WRONG = {
    # one runner, keyed under every step: the activations and statistics of the first step reused
    "cache_not_keyed_by_step": _CO.format(co='''    runner = make_runner(eps_model.at_step(ts[start]))
    caches = {}
    x = q_sample(x0, torch.full((x0.shape[0],), ts[start], dtype=torch.long), noise, alphas_cumprod)
    for i in range(start, len(ts)):
        caches[ts[i]] = runner
        x = ddim_step(runner.full(x) if i == start else runner.sparse(x, changed=torch.zeros(x.shape[-2:], dtype=torch.bool)),
                      ts[i], ts[i + 1] if i + 1 < len(ts) else -1, x, alphas_cumprod)
    return x, caches''', se=_SE_OK),
    # one runner refilled every step: the dict holds the same runner, its cache the last step's
    "one_runner_refilled": _CO.format(co='''    runner = make_runner(eps_model.at_step(ts[start]))
    caches = {}
    x = q_sample(x0, torch.full((x0.shape[0],), ts[start], dtype=torch.long), noise, alphas_cumprod)
    for i in range(start, len(ts)):
        caches[ts[i]] = runner
        x = ddim_step(eps_model(x, ts[i]), ts[i], ts[i + 1] if i + 1 < len(ts) else -1, x, alphas_cumprod)
        runner.full(x)
    return x, caches''', se=_SE_OK),
    # GroupNorm statistics (and the cache) from the edited run: a full run before each sparse one
    "stats_from_the_edited_run": _CO.format(co=_CO_OK, se='''    x = q_sample(x0_edit, torch.full((x0_edit.shape[0],), ts[start], dtype=torch.long), noise, alphas_cumprod)
    for i in range(start, len(ts)):
        caches[ts[i]].full(x)
        x = ddim_step(caches[ts[i]].sparse(x, changed=mask), ts[i], ts[i + 1] if i + 1 < len(ts) else -1, x,
                      alphas_cumprod)
    return x'''),
    # the mask recomputed per step from x_t against nothing given: the engine compares with the cache,
    # so only the undilated edit is ever recomputed
    "mask_not_passed": _CO.format(co=_CO_OK, se='''    x = q_sample(x0_edit, torch.full((x0_edit.shape[0],), ts[start], dtype=torch.long), noise, alphas_cumprod)
    for i in range(start, len(ts)):
        x = ddim_step(caches[ts[i]].sparse(x), ts[i], ts[i + 1] if i + 1 < len(ts) else -1, x, alphas_cumprod)
    return x'''),
    # the caches filled on the original picture itself (x0), not on the original's x_t of each step
    "cached_on_the_clean_picture": _CO.format(co='''    caches = {}
    x = q_sample(x0, torch.full((x0.shape[0],), ts[start], dtype=torch.long), noise, alphas_cumprod)
    for i in range(start, len(ts)):
        runner = caches[ts[i]] = make_runner(eps_model.at_step(ts[i]))
        runner.full(x0)
        x = ddim_step(eps_model(x, ts[i]), ts[i], ts[i + 1] if i + 1 < len(ts) else -1, x, alphas_cumprod)
    return x, caches''', se=_SE_OK),
    # the cache of step t used at the next step (keys shifted by one)
    "keys_shifted_by_one": _CO.format(co='''    caches = {}
    x = q_sample(x0, torch.full((x0.shape[0],), ts[start], dtype=torch.long), noise, alphas_cumprod)
    for i in range(start, len(ts)):
        runner = make_runner(eps_model.at_step(ts[i]))
        caches[ts[i + 1] if i + 1 < len(ts) else ts[start]] = runner
        x = ddim_step(runner.full(x), ts[i], ts[i + 1] if i + 1 < len(ts) else -1, x, alphas_cumprod)
    return x, caches''', se=_SE_OK),
    # fresh noise for the edit: the edited trajectory no longer matches the cached one anywhere
    "fresh_noise_for_the_edit": _CO.format(co=_CO_OK, se=_SE_OK.replace(
        "noise, alphas_cumprod)\n    for", "torch.randn_like(noise), alphas_cumprod)\n    for", 1)),
}

# ---------------------------------------------------------------- lab5_kernels (the learner's Lab 5 code)


def _lab5_kernels() -> str:
    """The solution's lab5_kernels cell (Lab 5's kernels), read from the percent script."""
    import re
    from pathlib import Path

    src = (Path(__file__).resolve().parents[2] / "solutions" / "lab8_diffusion_editing"
           / "lab8_diffusion_editing.py").read_text(encoding="utf-8")
    cell = src[src.index('"grade_id": "lab5_kernels"'):]
    return re.search(r"### BEGIN SOLUTION\n(.*?)### END SOLUTION", cell, re.S).group(1)


_KERNELS = _lab5_kernels()
_SCATTER = _KERNELS[_KERNELS.index("def scatter("):_KERNELS.index("class SparseConv2d")]
KERNELS_CORRECT = {
    # a plain loop over tiles, edge tiles cropped: another correct Lab 5 scatter
    "scatter_by_tile_loop": _KERNELS.replace(_SCATTER, '''def scatter(y_cached, y_tiles, tiles, tile, out=None):
    N, C, H, W = y_cached.shape
    out = y_cached.clone() if out is None else out
    blocks = y_tiles.view(N, -1, C, tile, tile)
    for k, (i, j) in enumerate(tiles.tolist()):
        h, w = min(tile, H - i * tile), min(tile, W - j * tile)
        out[:, :, i * tile:i * tile + h, j * tile:j * tile + w] = blocks[:, k, :, :h, :w]
    return out


'''),
}
KERNELS_WRONG = {
    # the recomputed tiles are never written back: the edit never shows
    "scatter_never_writes": _KERNELS.replace(_SCATTER, '''def scatter(y_cached, y_tiles, tiles, tile, out=None):
    return y_cached.clone() if out is None else out


'''),
}

EXERCISES = {
    "lab5_kernels": {"grades": ["test_sige_steps"], "correct": KERNELS_CORRECT, "wrong": KERNELS_WRONG,
                     "fewer_because": "Lab 5's own mutants judge these kernels; here they only have to run"},
    "linear_schedule": {"grades": ["test_linear_schedule"], "correct": SCHEDULE_CORRECT, "wrong": SCHEDULE_WRONG},
    "q_sample": {"grades": ["test_q_sample"], "correct": QSAMPLE_CORRECT, "wrong": QSAMPLE_WRONG},
    "ddim_timesteps": {"grades": ["test_ddim_timesteps"], "correct": TIMESTEPS_CORRECT, "wrong": TIMESTEPS_WRONG},
    "ddim_step": {"grades": ["test_ddim_step"], "correct": DDIM_CORRECT, "wrong": DDIM_WRONG},
    "sdedit": {"grades": ["test_sdedit"], "correct": SDEDIT_CORRECT, "wrong": SDEDIT_WRONG},
    "edit_mask": {"grades": ["test_edit_mask"], "correct": MASK_CORRECT, "wrong": MASK_WRONG},
    "sige_steps": {"grades": ["test_sige_steps"], "correct": SIGE_CORRECT, "wrong": SIGE_WRONG},
}
