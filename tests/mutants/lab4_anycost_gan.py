"""Lab 4 (Anycost GAN): correct alternatives and plausible wrong answers for every exercise.

Correct ones use other idioms and other legal choices the contracts leave free (the order of the
random draws, in place or not, loops, other pooling helpers, other ways to clear gradients or to
keep the fakes out of D's graph). Wrong ones are the mistakes the grade cells must catch
(tests/mutation.py grades each with the lab's grade cells). Wrong training steps are derived from
one correct step by a single edit (``_edit`` fails loudly if the step drifts from the edited text).
"""


def _edit(src: str, *pairs: tuple[str, str]) -> str:
    for old, new in pairs:
        if old not in src:
            raise ValueError(f"mutant edit not found: {old!r}")
        src = src.replace(old, new)
    return src


# ---------------------------------------------------------------------------- ElasticConv2d
_ELASTIC = '''
class ElasticConv2d(nn.Conv2d):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.ratio = 1.0

    def forward(self, x):
        c_out = max(1, round(self.ratio * self.out_channels))
        weight = self.weight[:c_out, :x.shape[1]]
        bias = None if self.bias is None else self.bias[:c_out]
        return F.conv2d(x, weight, bias, self.stride, self.padding, self.dilation)
'''

ELASTIC = {
    "grades": ["test_ElasticConv2d", "test_ElasticConv2d_cost"],
    "correct": {
        "f_conv2d": _ELASTIC,
        "narrow_and_int_round": '''
class ElasticConv2d(nn.Conv2d):
    def __init__(self, in_channels, out_channels, kernel_size, **kwargs):
        super().__init__(in_channels, out_channels, kernel_size, **kwargs)
        self.ratio = 1.0

    def forward(self, x):
        c = max(1, int(self.ratio * self.out_channels + 0.5))
        w = self.weight.narrow(0, 0, c).narrow(1, 0, x.size(1))
        b = self.bias.narrow(0, 0, c) if self.bias is not None else None
        return self._conv_forward(x, w, b)
''',
    },
    "wrong": {
        "floor_instead_of_round": _edit(_ELASTIC, ("max(1, round(self.ratio * self.out_channels))",
                                                   "max(1, int(self.ratio * self.out_channels))")),
        "no_minimum_of_one": _edit(_ELASTIC, ("max(1, round(self.ratio * self.out_channels))",
                                              "round(self.ratio * self.out_channels)")),
        "input_channels_by_ratio": _edit(_ELASTIC, ("self.weight[:c_out, :x.shape[1]]",
                                                    "self.weight[:c_out, :max(1, round(self.ratio * self.in_channels))]")),
        "last_channels": _edit(_ELASTIC, ("self.weight[:c_out, :x.shape[1]]", "self.weight[-c_out:, :x.shape[1]]"),
                               ("self.bias[:c_out]", "self.bias[-c_out:]")),
        "bias_dropped": _edit(_ELASTIC, ("bias = None if self.bias is None else self.bias[:c_out]", "bias = None")),
        "stride_ignored": _edit(_ELASTIC, ("F.conv2d(x, weight, bias, self.stride, self.padding, self.dilation)",
                                           "F.conv2d(x, weight, bias, 1, self.padding, self.dilation)")),
        # values right, no cost saved: the NaN-filled unused weights (judge side) and the MAC probe catch it
        "pad_input_full_conv_slice_output": '''
class ElasticConv2d(nn.Conv2d):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.ratio = 1.0

    def forward(self, x):
        c_out = max(1, round(self.ratio * self.out_channels))
        x = F.pad(x, (0, 0, 0, 0, 0, self.in_channels - x.shape[1]))
        return self._conv_forward(x, self.weight, self.bias)[:, :c_out]
''',
        # values and gradients right, every output channel computed: only the MAC probe (2 points) sees it
        "all_filters_then_slice_output": '''
class ElasticConv2d(nn.Conv2d):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.ratio = 1.0

    def forward(self, x):
        c_out = max(1, round(self.ratio * self.out_channels))
        return self._conv_forward(x, self.weight[:, :x.shape[1]], self.bias)[:, :c_out]
''',
        "shared_ratio_on_the_class": '''
class ElasticConv2d(nn.Conv2d):
    ratio = 1.0

    def forward(self, x):
        c_out = max(1, round(ElasticConv2d.ratio * self.out_channels))
        weight = self.weight[:c_out, :x.shape[1]]
        bias = None if self.bias is None else self.bias[:c_out]
        return F.conv2d(x, weight, bias, self.stride, self.padding, self.dilation)
''',
    },
}

# ---------------------------------------------------------------------------- sort_channels
_SORT = '''
def sort_channels(layer, next_layer):
    with torch.no_grad():
        importance = next_layer.weight.abs().sum(dim=(0, 2, 3))
        perm = torch.argsort(importance, descending=True)
        layer.weight.copy_(layer.weight[perm])
        if layer.bias is not None:
            layer.bias.copy_(layer.bias[perm])
        next_layer.weight.copy_(next_layer.weight[:, perm])
    return perm
'''

SORT = {
    "grades": ["test_sort_channels"],
    "correct": {
        "index_select_and_data": '''
def sort_channels(layer, next_layer):
    score = torch.stack([next_layer.weight[:, c].detach().abs().sum() for c in range(next_layer.weight.shape[1])])
    perm = torch.sort(score, descending=True).indices
    layer.weight.data = torch.index_select(layer.weight.data, 0, perm)
    if layer.bias is not None:
        layer.bias.data = layer.bias.data[perm]
    next_layer.weight.data = torch.index_select(next_layer.weight.data, 1, perm)
    return perm
''',
        "new_parameters": '''
def sort_channels(layer, next_layer):
    imp = torch.linalg.vector_norm(next_layer.weight.detach().transpose(0, 1).flatten(1), ord=1, dim=1)
    perm = (-imp).argsort()
    layer.weight = nn.Parameter(layer.weight.detach()[perm].clone())
    if layer.bias is not None:
        layer.bias = nn.Parameter(layer.bias.detach()[perm].clone())
    next_layer.weight = nn.Parameter(next_layer.weight.detach()[:, perm].clone())
    return perm
''',
    },
    "wrong": {
        "own_filter_l1": _edit(_SORT, ("next_layer.weight.abs().sum(dim=(0, 2, 3))", "layer.weight.abs().sum(dim=(1, 2, 3))")),
        "ascending": _edit(_SORT, ("torch.argsort(importance, descending=True)", "torch.argsort(importance)")),
        "l2_norm": _edit(_SORT, ("next_layer.weight.abs().sum(dim=(0, 2, 3))", "next_layer.weight.pow(2).sum(dim=(0, 2, 3))")),
        "bias_not_permuted": _edit(_SORT, ("            layer.bias.copy_(layer.bias[perm])\n", "            pass\n")),
        "next_layer_not_permuted": _edit(_SORT, ("        next_layer.weight.copy_(next_layer.weight[:, perm])\n", "")),
        "returns_inverse_permutation": _edit(_SORT, ("    return perm\n", "    return torch.argsort(perm)\n")),
        "aliasing_in_place_loop": '''
def sort_channels(layer, next_layer):
    with torch.no_grad():
        perm = torch.argsort(next_layer.weight.abs().sum(dim=(0, 2, 3)), descending=True)
        for i, p in enumerate(perm.tolist()):
            layer.weight[i] = layer.weight[p]
            next_layer.weight[:, i] = next_layer.weight[:, p]
            if layer.bias is not None:
                layer.bias[i] = layer.bias[p]
    return perm
''',
    },
}

# ---------------------------------------------------------------------------- sample_ratios
_SAMPLE = '''
def sample_ratios(n_layers, choices=(0.25, 0.5, 0.75, 1.0), mode="uniform", generator=None):
    if mode == "uniform":
        i = int(torch.randint(len(choices), (1,), generator=generator))
        return [float(choices[i])] * n_layers
    if mode == "flexible":
        idx = torch.randint(len(choices), (n_layers,), generator=generator)
        return [float(choices[i]) for i in idx]
    raise ValueError(f"unknown mode {mode!r}")
'''

SAMPLE = {
    "grades": ["test_sample_ratios", "test_sample_ratios_validation"],
    "correct": {
        "multinomial_and_loop": '''
def sample_ratios(n_layers, choices=(0.25, 0.5, 0.75, 1.0), mode="uniform", generator=None):
    if mode not in ("uniform", "flexible"):
        raise ValueError("mode must be 'uniform' or 'flexible'")
    weights = torch.ones(len(choices))
    if mode == "uniform":
        k = torch.multinomial(weights, 1, generator=generator).item()
        return [choices[k] for _ in range(n_layers)]
    out = []
    for _ in range(n_layers):
        out.append(choices[torch.multinomial(weights, 1, generator=generator).item()])
    return out
''',
        "uniform_floats_to_index": '''
def sample_ratios(n_layers, choices=(0.25, 0.5, 0.75, 1.0), mode="uniform", generator=None):
    if mode == "flexible":
        u = torch.rand(n_layers, generator=generator)
    elif mode == "uniform":
        u = torch.rand(1, generator=generator).repeat(n_layers)
    else:
        raise ValueError(mode)
    idx = (u * len(choices)).long().clamp(max=len(choices) - 1)
    return torch.tensor(choices)[idx].tolist()
''',
    },
    "wrong": {
        "uniform_draws_per_layer": _edit(_SAMPLE, ('if mode == "uniform":', 'if mode == "flexible_":'),
                                         ('if mode == "flexible":', 'if mode in ("flexible", "uniform"):')),
        "flexible_is_uniform": _edit(_SAMPLE, ('if mode == "uniform":', 'if mode in ("uniform", "flexible"):')),
        "global_rng": _edit(_SAMPLE, ("int(torch.randint(len(choices), (1,), generator=generator))",
                                      "int(torch.randint(len(choices), (1,)))"),
                            ("torch.randint(len(choices), (n_layers,), generator=generator)",
                             "torch.randint(len(choices), (n_layers,))")),
        "never_the_last_choice": _edit(_SAMPLE, ("torch.randint(len(choices), (1,), generator=generator)",
                                                 "torch.randint(len(choices) - 1, (1,), generator=generator)"),
                                       ("torch.randint(len(choices), (n_layers,), generator=generator)",
                                        "torch.randint(len(choices) - 1, (n_layers,), generator=generator)")),
        "returns_indices": _edit(_SAMPLE, ("return [float(choices[i])] * n_layers", "return [float(i)] * n_layers"),
                                 ("return [float(choices[i]) for i in idx]", "return [float(i) for i in idx]")),
        "unknown_mode_is_uniform": _edit(_SAMPLE, ('    raise ValueError(f"unknown mode {mode!r}")\n',
                                                   '    return sample_ratios(n_layers, choices, "uniform", generator)\n')),
        "unknown_mode_key_error": _edit(_SAMPLE, ('    raise ValueError(f"unknown mode {mode!r}")\n',
                                                  '    raise KeyError(mode)\n')),
    },
}

# ---------------------------------------------------------------------------- ArchModulation
_MOD = '''
class ArchModulation(nn.Module):
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
'''

MOD = {
    "grades": ["test_ArchModulation"],
    "correct": {
        "one_linear_chunked": '''
class ArchModulation(nn.Module):
    def __init__(self, code_dim, num_channels):
        super().__init__()
        self.fc = nn.Linear(code_dim, 2 * num_channels)
        nn.init.zeros_(self.fc.weight)
        nn.init.zeros_(self.fc.bias)

    def forward(self, h, code):
        gamma, beta = self.fc(code).unsqueeze(-1).unsqueeze(-1).chunk(2, dim=1)
        return h + h * gamma + beta
''',
        "raw_parameters_einsum": '''
class ArchModulation(nn.Module):
    def __init__(self, code_dim, num_channels):
        super().__init__()
        self.wg = nn.Parameter(torch.zeros(num_channels, code_dim))
        self.wb = nn.Parameter(torch.zeros(num_channels, code_dim))
        self.bg = nn.Parameter(torch.zeros(num_channels))
        self.bb = nn.Parameter(torch.zeros(num_channels))

    def forward(self, h, code):
        g = torch.einsum("nd,cd->nc", code, self.wg) + self.bg
        b = torch.einsum("nd,cd->nc", code, self.wb) + self.bb
        return torch.addcmul(b.view(*b.shape, 1, 1), h, 1 + g.view(*g.shape, 1, 1))
''',
    },
    "wrong": {
        "default_init": _edit(_MOD, ("        for p in self.parameters():\n            nn.init.zeros_(p)\n", "")),
        "scale_without_one": _edit(_MOD, ("return h * (1 + gamma) + beta", "return h * gamma + beta")),
        "one_code_for_the_batch": _edit(_MOD, ("gamma = self.gamma(code)[:, :, None, None]",
                                               "gamma = self.gamma(code.mean(0, keepdim=True))[:, :, None, None]"),
                                        ("beta = self.beta(code)[:, :, None, None]",
                                         "beta = self.beta(code.mean(0, keepdim=True))[:, :, None, None]")),
        "frozen_zero_buffers": '''
class ArchModulation(nn.Module):
    def __init__(self, code_dim, num_channels):
        super().__init__()
        self.gamma = nn.Linear(code_dim, num_channels)
        self.beta = nn.Linear(code_dim, num_channels)
        for p in self.parameters():
            nn.init.zeros_(p)
            p.requires_grad_(False)

    def forward(self, h, code):
        return h * (1 + self.gamma(code)[:, :, None, None]) + self.beta(code)[:, :, None, None]
''',
        "no_shift": _edit(_MOD, ("return h * (1 + gamma) + beta", "return h * (1 + gamma) + 0 * beta")),
        "shift_before_scale": _edit(_MOD, ("return h * (1 + gamma) + beta", "return (h + beta) * (1 + gamma)")),
        "scale_through_tanh": _edit(_MOD, ("return h * (1 + gamma) + beta", "return h * (1 + torch.tanh(gamma)) + beta")),
    },
}

# ---------------------------------------------------------------------------- consistency_loss
_CONS = '''
def consistency_loss(sub_out, full_out):
    target = F.adaptive_avg_pool2d(full_out.detach(), sub_out.shape[-2:])
    return F.mse_loss(sub_out, target)
'''

CONS = {
    "grades": ["test_consistency_loss"],
    "correct": {
        "avg_pool_kernel": '''
def consistency_loss(sub_out, full_out):
    k = full_out.shape[-1] // sub_out.shape[-1]
    with torch.no_grad():
        target = F.avg_pool2d(full_out, k) if k > 1 else full_out.clone()
    return ((sub_out - target) ** 2).mean()
''',
        "area_interpolate_via_plumbing": '''
def consistency_loss(sub_out, full_out):
    target = anycost.resize(full_out, sub_out.shape[-1]).detach()
    return (sub_out - target).pow(2).sum() / sub_out.numel()
''',
    },
    "wrong": {
        "not_detached": _edit(_CONS, ("full_out.detach()", "full_out")),
        "bilinear_downsampling": _edit(_CONS, ("F.adaptive_avg_pool2d(full_out.detach(), sub_out.shape[-2:])",
                                               "F.interpolate(full_out.detach(), size=sub_out.shape[-2:], "
                                               "mode='bilinear', align_corners=True)")),
        "subsample_every_kth_pixel": '''
def consistency_loss(sub_out, full_out):
    k = full_out.shape[-1] // sub_out.shape[-1]
    return F.mse_loss(sub_out, full_out.detach()[..., ::k, ::k])
''',
        "upsample_the_sub_output": '''
def consistency_loss(sub_out, full_out):
    up = F.interpolate(sub_out, size=full_out.shape[-2:], mode="nearest")
    return F.mse_loss(up, full_out.detach())
''',
        "sum_not_mean": _edit(_CONS, ("F.mse_loss(sub_out, target)", "F.mse_loss(sub_out, target, reduction='sum')")),
        "l1_not_mse": _edit(_CONS, ("F.mse_loss(sub_out, target)", "F.l1_loss(sub_out, target)")),
        "sub_output_detached": _edit(_CONS, ("F.mse_loss(sub_out, target)", "F.mse_loss(sub_out.detach(), target)")),
    },
}

# ---------------------------------------------------------------------------- anycost_step
_STEP = '''
def anycost_step(G, D, real, g_opt, d_opt, generator, teacher, sample_ratios, consistency_loss,
                 choices=(0.25, 0.5, 0.75, 1.0), mode="uniform", n_res=1, lambda_consistency=1.0):
    n = len(real)
    ratios = sample_ratios(G.n_layers, choices, mode, generator)
    real_ratios = sample_ratios(G.n_layers, choices, mode, generator)
    picked = torch.randperm(len(G.resolutions), generator=generator)[:n_res]
    resolutions = sorted(G.resolutions[int(i)] for i in picked)
    z = torch.randn(n, G.z_dim, generator=generator)
    G.set_ratio(ratios)
    code = G.arch_code(ratios).expand(n, -1)
    code_real = G.arch_code(real_ratios).expand(n, -1)
    fakes = dict(zip(G.resolutions, G.forward_all(z)))
    with torch.no_grad():
        target = teacher(z)
    loss_d = sum(anycost.d_loss(D(anycost.resize(real, r), code_real), D(fakes[r].detach(), code))
                 for r in resolutions)
    d_opt.zero_grad()
    loss_d.backward()
    d_opt.step()
    cons = sum(consistency_loss(fakes[r], target) for r in G.resolutions)
    loss_g = sum(anycost.g_loss(D(fakes[r], code)) for r in resolutions) + lambda_consistency * cons
    g_opt.zero_grad()
    loss_g.backward()
    g_opt.step()
    return {"d_loss": loss_d.item(), "g_loss": loss_g.item(), "consistency": cons.item(),
            "resolutions": resolutions, "ratios": ratios}
'''

STEP = {
    "grades": ["test_anycost_step", "test_anycost_step_g", "test_anycost_step_consistency", "test_anycost_step_sampling"],
    "correct": {
        "one_forward_shared": _STEP,
        "official_style_two_forwards": '''
def anycost_step(G, D, real, g_opt, d_opt, generator, teacher, sample_ratios, consistency_loss,
                 choices=(0.25, 0.5, 0.75, 1.0), mode="uniform", n_res=1, lambda_consistency=1.0):
    n = real.shape[0]
    z = torch.randn(n, G.z_dim, generator=generator)
    res = [G.resolutions[i] for i in torch.multinomial(torch.ones(len(G.resolutions)), n_res,
                                                        generator=generator).tolist()]
    real_arch = sample_ratios(G.n_layers, choices, mode, generator)      # the reals' code drawn first
    arch = sample_ratios(G.n_layers, choices, mode, generator)
    a = G.arch_code(arch).unsqueeze(0).repeat(n, 1)
    a_real = G.arch_code(real_arch).unsqueeze(0).repeat(n, 1)
    teacher_out = anycost.sample(teacher, z)
    # D step: G frozen, fakes made without a graph
    G.set_ratio(arch)
    with torch.no_grad():
        fake_d = {r: G(z, r) for r in res}
    D.zero_grad(set_to_none=False)
    loss_d = 0.0
    for r in res:
        loss_d = loss_d + anycost.d_loss(D(anycost.resize(real, r), a_real), D(fake_d[r], a))
    loss_d.backward()
    d_opt.step()
    # G step: D frozen, a fresh forward through every resolution
    for p in D.parameters():
        p.requires_grad_(False)
    outs = G.forward_all(z)
    cons = 0.0
    for x in outs:
        cons = cons + consistency_loss(x, teacher_out)
    adv = 0.0
    for x in outs:
        if x.shape[-1] in res:
            adv = adv + anycost.g_loss(D(x, a))
    G.zero_grad()
    (adv + lambda_consistency * cons).backward()
    g_opt.step()
    for p in D.parameters():
        p.requires_grad_(True)
    G.set_ratio(1.0)
    return dict(d_loss=float(loss_d), g_loss=float(adv + lambda_consistency * cons), consistency=float(cons),
                resolutions=tuple(res), ratios=list(arch))
''',
        # other uniform draws of n_res different resolutions (the sampling test's correct alternatives)
        "resolutions_one_at_a_time": _edit(
            _STEP, ("    picked = torch.randperm(len(G.resolutions), generator=generator)[:n_res]\n"
                    "    resolutions = sorted(G.resolutions[int(i)] for i in picked)\n",
                    "    left, resolutions = list(G.resolutions), []\n"
                    "    for _ in range(n_res):\n"
                    "        resolutions.append(left.pop(int(torch.randint(len(left), (1,), generator=generator))))\n")),
        "resolutions_by_sorting_uniforms": _edit(
            _STEP, ("    picked = torch.randperm(len(G.resolutions), generator=generator)[:n_res]\n",
                    "    picked = torch.rand(len(G.resolutions), generator=generator).argsort()[:n_res]\n")),
        "concatenated_batches": '''
def anycost_step(G, D, real, g_opt, d_opt, generator, teacher, sample_ratios, consistency_loss,
                 choices=(0.25, 0.5, 0.75, 1.0), mode="uniform", n_res=1, lambda_consistency=1.0):
    n = len(real)
    g_opt.zero_grad(set_to_none=False)
    d_opt.zero_grad(set_to_none=False)
    ratios = sample_ratios(G.n_layers, choices, mode, generator)
    other = sample_ratios(G.n_layers, choices, mode, generator)
    order = torch.randperm(len(G.resolutions), generator=generator)
    res = [G.resolutions[i] for i in order[:n_res].tolist()]
    z = torch.randn(n, G.z_dim, generator=generator)
    G.set_ratio(ratios)
    xs = {x.shape[-1]: x for x in G.forward_all(z)}
    y = teacher(z).detach()
    codes = torch.cat([G.arch_code(other).expand(n, -1), G.arch_code(ratios).expand(n, -1)])
    loss_d = 0
    for r in res:
        logits = D(torch.cat([anycost.resize(real, r), xs[r].detach()]), codes)
        loss_d = loss_d + anycost.d_loss(logits[:n], logits[n:])
    loss_d.backward()
    d_opt.step()
    g_opt.zero_grad()
    cons = torch.stack([consistency_loss(xs[r], y) for r in G.resolutions]).sum()
    adv = torch.stack([anycost.g_loss(D(xs[r], codes[n:])) for r in res]).sum()
    loss_g = adv + cons * lambda_consistency
    loss_g.backward()
    g_opt.step()
    return {"d_loss": loss_d.detach(), "g_loss": loss_g.detach(), "consistency": cons.detach(),
            "resolutions": res, "ratios": ratios}
''',
    },
    "wrong": {
        "signs_flipped_and_no_d_zero_grad": _edit(
            _STEP,
            ("anycost.d_loss(D(anycost.resize(real, r), code_real), D(fakes[r].detach(), code))",
             "anycost.d_loss(D(fakes[r].detach(), code), D(anycost.resize(real, r), code_real))"),
            ("    d_opt.zero_grad()\n", ""),
            ("anycost.g_loss(D(fakes[r], code))", "anycost.g_loss(-D(fakes[r], code))")),
        "d_sign_flipped": _edit(_STEP, ("anycost.d_loss(D(anycost.resize(real, r), code_real), D(fakes[r].detach(), code))",
                                        "anycost.d_loss(D(fakes[r].detach(), code), D(anycost.resize(real, r), code_real))")),
        "g_sign_flipped": _edit(_STEP, ("anycost.g_loss(D(fakes[r], code))", "anycost.g_loss(-D(fakes[r], code))")),
        "no_d_zero_grad": _edit(_STEP, ("    d_opt.zero_grad()\n", "")),
        "no_g_zero_grad": _edit(_STEP, ("    g_opt.zero_grad()\n", "")),
        "fakes_not_detached_for_D": _edit(_STEP, ("D(fakes[r].detach(), code)", "D(fakes[r], code)")),
        "no_consistency_term": _edit(_STEP, ("+ lambda_consistency * cons", "+ 0 * cons")),
        "reals_not_resized": _edit(_STEP, ("D(anycost.resize(real, r), code_real)", "D(real, code_real)")),
        "reals_get_the_fakes_code": _edit(_STEP, ("    real_ratios = sample_ratios(G.n_layers, choices, mode, generator)\n",
                                                  "    real_ratios = ratios\n")),
        "distil_from_the_live_full_generator": _edit(
            _STEP, ("    with torch.no_grad():\n        target = teacher(z)\n",
                    "    G.set_ratio(1.0)\n    with torch.no_grad():\n        target = G(z)\n    G.set_ratio(ratios)\n")),
        "consistency_only_at_sampled_resolutions": _edit(
            _STEP, ("cons = sum(consistency_loss(fakes[r], target) for r in G.resolutions)",
                    "cons = sum(consistency_loss(fakes[r], target) for r in resolutions)")),
        "resolutions_with_replacement": _edit(_STEP, ("torch.randperm(len(G.resolutions), generator=generator)[:n_res]",
                                                      "torch.randint(len(G.resolutions), (n_res,), generator=generator)"),
                                              ("sorted(G.resolutions[int(i)] for i in picked)",
                                               "[G.resolutions[int(i)] for i in picked]")),
        # issue 24: the top resolution always, plus n_res - 1 random lower ones (not uniform)
        "top_resolution_always_plus_random_lower": _edit(
            _STEP, ("    picked = torch.randperm(len(G.resolutions), generator=generator)[:n_res]\n"
                    "    resolutions = sorted(G.resolutions[int(i)] for i in picked)\n",
                    "    lower = torch.randperm(len(G.resolutions) - 1, generator=generator)[:n_res - 1]\n"
                    "    resolutions = sorted([G.resolutions[-1]] + [G.resolutions[int(i)] for i in lower])\n")),
        "global_rng_for_z": _edit(_STEP, ("torch.randn(n, G.z_dim, generator=generator)", "torch.randn(n, G.z_dim)")),
        "adversarial_terms_averaged": _edit(_STEP, ("for r in resolutions) + lambda_consistency * cons",
                                                    "for r in resolutions) / len(resolutions) + lambda_consistency * cons")),
    },
}

EXERCISES = {
    "ElasticConv2d": ELASTIC,
    "sort_channels": SORT,
    "sample_ratios": SAMPLE,
    "ArchModulation": MOD,
    "consistency_loss": CONS,
    "anycost_step": STEP,
}
