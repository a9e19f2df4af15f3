"""Mutants of Lab 3's exercises (format: tests/mutation.py).

Correct alternatives must keep every point; plausible wrong answers must lose points on their
exercise's grade cells. The notebook's set-up cell has imported time, torch, F (torch.nn.functional)
and nn.
"""

# ------------------------------------------------------------------------------ build_mappers
_MAPPERS = '''
def build_mappers(student_channels, teacher_channels):
    if len(student_channels) != len(teacher_channels):
        raise ValueError("lengths differ")
    return nn.ModuleList([MAPPER for cs, ct in zip(student_channels, teacher_channels)])
'''


def _mappers(mapper="nn.Conv2d(cs, ct, 1)"):
    return _MAPPERS.replace("MAPPER", mapper)


BUILD_MAPPERS = {
    "grades": ["test_build_mappers", "test_build_mappers_errors"],
    "correct": {
        "linear_over_channels": '''
class _ChannelLinear(nn.Module):
    def __init__(self, cs, ct):
        super().__init__()
        self.linear = nn.Linear(cs, ct)

    def forward(self, x):
        return self.linear(x.movedim(1, -1)).movedim(-1, 1)


def build_mappers(student_channels, teacher_channels):
    if len(student_channels) != len(teacher_channels):
        raise ValueError("one teacher width per student width")
    return nn.ModuleList([_ChannelLinear(cs, ct) for cs, ct in zip(student_channels, teacher_channels)])
''',
        "no_bias": _mappers("nn.Conv2d(cs, ct, kernel_size=1, bias=False)"),
        "loop_and_append": '''
def build_mappers(student_channels, teacher_channels):
    student_channels, teacher_channels = list(student_channels), list(teacher_channels)
    if len(student_channels) != len(teacher_channels):
        raise ValueError("one teacher width per student width")
    mappers = nn.ModuleList()
    for cs, ct in zip(student_channels, teacher_channels):
        mappers.append(nn.Conv2d(cs, ct, (1, 1), stride=1, padding=0))
    return mappers
''',
        "einsum_module": '''
class _PixelLinear(nn.Module):
    def __init__(self, cs, ct):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(ct, cs) / cs ** 0.5)
        self.bias = nn.Parameter(torch.zeros(ct))

    def forward(self, x):
        return torch.einsum("oc,nchw->nohw", self.weight, x) + self.bias.view(1, -1, 1, 1)


def build_mappers(student_channels, teacher_channels):
    if len(list(student_channels)) != len(list(teacher_channels)):
        raise ValueError(f"{len(student_channels)} != {len(teacher_channels)}")
    return nn.ModuleList(_PixelLinear(cs, ct) for cs, ct in zip(student_channels, teacher_channels))
''',
    },
    "wrong": {
        "direction_swapped": _mappers("nn.Conv2d(ct, cs, 1)"),
        "kernel_3x3_padded": _mappers("nn.Conv2d(cs, ct, 3, padding=1)"),
        "kernel_3x3_unpadded": _mappers("nn.Conv2d(cs, ct, 3)"),
        "relu_after_conv": _mappers("nn.Sequential(nn.Conv2d(cs, ct, 1), nn.ReLU())"),
        "frozen_weights": _mappers("nn.Conv2d(cs, ct, 1).requires_grad_(False)"),
        # a loose reading of "one map per layer": layers of the same widths share one mapper
        "shared_when_same_widths": '''
def build_mappers(student_channels, teacher_channels):
    if len(student_channels) != len(teacher_channels):
        raise ValueError("lengths differ")
    made = {}
    for cs, ct in zip(student_channels, teacher_channels):
        made.setdefault((cs, ct), nn.Conv2d(cs, ct, 1))
    return nn.ModuleList([made[(cs, ct)] for cs, ct in zip(student_channels, teacher_channels)])
''',
        "one_mapper_repeated": '''
def build_mappers(student_channels, teacher_channels):
    if len(student_channels) != len(teacher_channels):
        raise ValueError("lengths differ")
    if len(set(student_channels)) == 1 and len(set(teacher_channels)) == 1:
        return nn.ModuleList([nn.Conv2d(student_channels[0], teacher_channels[0], 1)] * len(student_channels))
    return nn.ModuleList([nn.Conv2d(cs, ct, 1) for cs, ct in zip(student_channels, teacher_channels)])
''',
        "with_batchnorm": _mappers("nn.Sequential(nn.Conv2d(cs, ct, 1), nn.BatchNorm2d(ct))"),
        "identity_when_equal": _mappers("nn.Identity() if cs == ct else nn.Conv2d(cs, ct, 1)"),
        "plain_list": '''
def build_mappers(student_channels, teacher_channels):
    if len(student_channels) != len(teacher_channels):
        raise ValueError("lengths differ")
    return [nn.Conv2d(cs, ct, 1) for cs, ct in zip(student_channels, teacher_channels)]
''',
        "no_length_check": '''
def build_mappers(student_channels, teacher_channels):
    return nn.ModuleList([nn.Conv2d(cs, ct, 1) for cs, ct in zip(student_channels, teacher_channels)])
''',
        "detached_input": _mappers("_Detached(nn.Conv2d(cs, ct, 1))").replace(
            "def build_mappers", '''class _Detached(nn.Module):
    def __init__(self, conv):
        super().__init__()
        self.conv = conv

    def forward(self, x):
        return self.conv(x.detach())


def build_mappers'''),
    },
}

# ------------------------------------------------------------------------------ distill_loss
_DISTILL = '''
def distill_loss(student_feats, teacher_feats, mappers):
    if not len(student_feats) == len(teacher_feats) == len(mappers):
        raise ValueError("lengths differ")
    total = 0.0
    for s, t, f in zip(student_feats, teacher_feats, mappers):
        total = total + TERM
    return RESULT
'''


def _distill(term="F.mse_loss(f(s), t.detach())", result="total"):
    return _DISTILL.replace("TERM", term).replace("RESULT", result)


DISTILL_LOSS = {
    "grades": ["test_distill_loss", "test_distill_loss_errors"],
    "correct": {
        "reversed_args_inplace_accumulate": '''
def distill_loss(student_feats, teacher_feats, mappers):
    if not len(student_feats) == len(teacher_feats) == len(mappers):
        raise ValueError("lengths differ")
    total = torch.zeros(())
    for s, t, f in zip(student_feats, teacher_feats, mappers):
        total += F.mse_loss(t.detach(), f(s))
    return total
''',
        "stack_and_sum": '''
def distill_loss(student_feats, teacher_feats, mappers):
    if len(student_feats) != len(teacher_feats) or len(student_feats) != len(mappers):
        raise ValueError("need one teacher feature and one mapper per student feature")
    return torch.stack([((m(s) - t.detach()) ** 2).mean() for s, t, m in zip(student_feats, teacher_feats, mappers)]).sum()
''',
        "no_grad_clone": _distill("F.mse_loss(f(s), _fixed(t))").replace("def distill_loss", '''def _fixed(t):
    with torch.no_grad():
        return t.clone()


def distill_loss'''),
        "index_loop_tensor_start": '''
def distill_loss(student_feats, teacher_feats, mappers):
    k = len(student_feats)
    if len(teacher_feats) != k or len(mappers) != k:
        raise ValueError("length mismatch")
    loss = torch.zeros((), dtype=student_feats[0].dtype)
    for i in range(k):
        diff = mappers[i](student_feats[i]) - teacher_feats[i].detach()
        loss = loss + diff.pow(2).sum() / diff.numel()
    return loss
''',
    },
    "wrong": {
        "sum_not_mean": _distill("F.mse_loss(f(s), t.detach(), reduction='sum')"),
        "gradient_into_teacher": _distill("F.mse_loss(f(s), t)"),
        "mean_over_layers": _distill(result="total / len(mappers)"),
        "l1_instead_of_mse": _distill("F.l1_loss(f(s), t.detach())"),
        "norm_not_squared": _distill("(f(s) - t.detach()).norm() / t.numel() ** 0.5"),
        "detached_student": _distill("F.mse_loss(f(s.detach()), t.detach())"),
        # "the mappers are auxiliary": applied with detached weights, so they never learn
        "frozen_mappers": _distill("F.mse_loss(torch.func.functional_call(f, {n: p.detach() for n, p in f.named_parameters()}, (s,)), t.detach())"),
        "unmapped_student_when_widths_match": _distill("F.mse_loss(s if s.shape == t.shape else f(s), t.detach())"),
        "first_mapper_for_all": _distill("F.mse_loss(mappers[0](s), t.detach())"),
        "mean_over_batch_only": _distill("(f(s) - t.detach()).pow(2).flatten(1).sum(1).mean()"),
        "modifies_inputs": _distill("F.mse_loss(f(s), t.detach().clamp_(-1, 1))"),
        "no_length_check": '''
def distill_loss(student_feats, teacher_feats, mappers):
    return sum(F.mse_loss(f(s), t.detach()) for s, t, f in zip(student_feats, teacher_feats, mappers))
''',
    },
}

# ------------------------------------------------------------------------ generator_objective
_OBJECTIVE = '''
def generator_objective(d_fake_logits, fake, target, teacher_out, distill, paired=True,
                        lambda_recon=100.0, lambda_distill=1.0):
    gan = ADV if d_fake_logits is not None else 0.0
    reference = REF
    recon = RECON
    return gan + LR * recon + LD * DISTILL
'''


def _objective(adv="F.softplus(-d_fake_logits).mean()", ref="(target if paired else teacher_out).detach()",
               recon="(fake - reference).abs().mean()", lr="lambda_recon", ld="lambda_distill", distill="distill"):
    return (_OBJECTIVE.replace("ADV", adv).replace("REF", ref).replace("RECON", recon).replace("LR", lr)
            .replace("LD", ld).replace("DISTILL", distill))


GENERATOR_OBJECTIVE = {
    "grades": ["test_generator_objective"],
    "correct": {
        "bce_on_sigmoid": _objective(adv="F.binary_cross_entropy(torch.sigmoid(d_fake_logits), "
                                         "torch.ones_like(d_fake_logits))"),
        "bce_with_logits_and_l1_loss": '''
def generator_objective(d_fake_logits, fake, target, teacher_out, distill, paired=True,
                        lambda_recon=100.0, lambda_distill=1.0):
    loss = lambda_recon * F.l1_loss(fake, target if paired else teacher_out.detach())
    if d_fake_logits is not None:
        loss = loss + F.binary_cross_entropy_with_logits(d_fake_logits, torch.ones_like(d_fake_logits))
    return loss + lambda_distill * distill
''',
        "logsigmoid_no_grad_teacher": '''
def generator_objective(d_fake_logits, fake, target, teacher_out, distill, paired=True,
                        lambda_recon=100.0, lambda_distill=1.0):
    if paired:
        y = target
    else:
        with torch.no_grad():
            y = teacher_out.clone()
    adv = -F.logsigmoid(d_fake_logits).mean() if d_fake_logits is not None else torch.zeros((), dtype=fake.dtype)
    return adv + lambda_recon * torch.mean(torch.abs(fake - y)) + lambda_distill * torch.as_tensor(distill, dtype=fake.dtype)
''',
        "solution_style_with_log_sigmoid": _objective(adv="-torch.log(torch.sigmoid(d_fake_logits)).mean()"),
    },
    "wrong": {
        "distill_as_float": _objective(distill="float(distill)"),
        "adversarial_detached": _objective(adv="F.softplus(-d_fake_logits.detach()).mean()"),
        "saturating": _objective(adv="-F.softplus(d_fake_logits).mean()"),
        "adversarial_sign_flipped": _objective(adv="F.softplus(d_fake_logits).mean()"),
        "recon_to_target_when_unpaired": _objective(ref="target"),
        "lambdas_swapped": _objective(lr="lambda_distill", ld="lambda_recon"),
        "gradient_into_teacher": _objective(ref="target if paired else teacher_out"),
        "l1_summed": _objective(recon="(fake - reference).abs().sum()"),
        "mse_recon": _objective(recon="((fake - reference) ** 2).mean()"),
        "lsgan_adversarial": _objective(adv="((d_fake_logits - 1) ** 2).mean()"),
        "adversarial_mean_over_batch_only": _objective(adv="F.softplus(-d_fake_logits).flatten(1).sum(1).mean()"),
        # a loose reading of "target may be None when unpaired": use whichever reference was given
        "reference_by_availability": _objective(ref="(target if target is not None else teacher_out).detach()"),
        "recon_detached": _objective(recon="(fake.detach() - reference).abs().mean()"),
        "teacher_when_paired": _objective(ref="(teacher_out if paired else target)"),
    },
}

# ------------------------------------------------------------------------------- SuperConv2d
_SUPER = '''
class SuperConv2d(nn.Conv2d):
    def forward(self, x, out_channels):
        c_in = x.shape[1]
        if not 1 <= out_channels <= self.out_channels or c_in > self.in_channels:
            raise ValueError("bad width")
        weight = WEIGHT
        bias = BIAS
        return CONV
'''


def _super(weight="self.weight[:out_channels, :c_in]",
           bias="None if self.bias is None else self.bias[:out_channels]",
           conv="F.conv2d(x, weight, bias, self.stride, self.padding, self.dilation)"):
    return _SUPER.replace("WEIGHT", weight).replace("BIAS", bias).replace("CONV", conv)


SUPER_CONV2D = {
    "grades": ["test_SuperConv2d", "test_SuperConv2d_macs", "test_SuperConv2d_errors"],
    "correct": {
        "contiguous_slices_and_full_width_shortcut": '''
class SuperConv2d(nn.Conv2d):
    def forward(self, x, out_channels=None):
        out_channels = self.out_channels if out_channels is None else out_channels
        c_in = x.shape[1]
        if not 1 <= out_channels <= self.out_channels or c_in > self.in_channels:
            raise ValueError("bad width")
        if out_channels == self.out_channels and c_in == self.in_channels:
            return super().forward(x)
        w = self.weight[:out_channels, :c_in].contiguous()
        b = None if self.bias is None else self.bias[:out_channels].contiguous()
        return self._conv_forward(x, w, b)
''',
        "conv_forward_helper": _super(conv="self._conv_forward(x, weight, bias)"),
        "narrow": _super(weight="self.weight.narrow(0, 0, out_channels).narrow(1, 0, c_in)",
                         bias="self.bias.narrow(0, 0, out_channels) if self.bias is not None else None"),
        "keyword_conv_and_separate_checks": '''
class SuperConv2d(nn.Conv2d):
    def forward(self, x, out_channels):
        if out_channels < 1 or out_channels > self.out_channels:
            raise ValueError(f"out_channels {out_channels} not in 1..{self.out_channels}")
        if x.size(1) > self.in_channels:
            raise ValueError("too many input channels")
        b = self.bias[:out_channels] if self.bias is not None else None
        return F.conv2d(x, weight=self.weight[:out_channels][:, :x.size(1)], bias=b, stride=self.stride,
                        padding=self.padding, dilation=self.dilation, groups=1)
''',
    },
    "wrong": {
        "dims_swapped": _super(weight="self.weight[:c_in, :out_channels]"),
        "ignores_input_channels": _super(weight="self.weight[:out_channels]"),
        "bias_not_sliced": _super(bias="self.bias"),
        "last_filters": _super(weight="self.weight[self.out_channels - out_channels:, :c_in]",
                               bias="None if self.bias is None else self.bias[self.out_channels - out_channels:]"),
        "no_stride": _super(conv="F.conv2d(x, weight, bias, 1, self.padding, self.dilation)"),
        "no_dilation": _super(conv="F.conv2d(x, weight, bias, self.stride, self.padding)"),
        "padding_same": _super(conv="F.conv2d(x, weight, bias, self.stride, 'same', self.dilation)"),
        # same numbers, but the full layer is computed: missing inputs padded with zero channels
        "zero_pad_inputs": _super(weight="self.weight[:out_channels]",
                                  conv="F.conv2d(F.pad(x, (0, 0, 0, 0, 0, self.in_channels - c_in)), weight, bias, "
                                       "self.stride, self.padding, self.dilation)"),
        # a fresh layer per call whose weight is set through .data: the shared weight never learns
        "new_conv_through_data": '''
class SuperConv2d(nn.Conv2d):
    def forward(self, x, out_channels):
        c_in = x.shape[1]
        if not 1 <= out_channels <= self.out_channels or c_in > self.in_channels:
            raise ValueError("bad width")
        conv = nn.Conv2d(c_in, out_channels, self.kernel_size, self.stride, self.padding, self.dilation,
                         bias=self.bias is not None)
        conv.weight.data = self.weight.data[:out_channels, :c_in]
        if self.bias is not None:
            conv.bias.data = self.bias.data[:out_channels]
        return conv(x)
''',
        "no_bias": _super(bias="None"),
        "copied_weight": _super(weight="self.weight[:out_channels, :c_in].detach().clone().requires_grad_()"),
        "always_padding_1": _super(conv="F.conv2d(x, weight, bias, self.stride, 1, self.dilation)"),
        "full_conv_then_slice": _super(weight="self.weight[:, :c_in]", bias="self.bias",
                                       conv="F.conv2d(x, weight, bias, self.stride, self.padding, self.dilation)"
                                            "[:, :out_channels]"),
        "no_validation": '''
class SuperConv2d(nn.Conv2d):
    def forward(self, x, out_channels):
        b = None if self.bias is None else self.bias[:out_channels]
        return F.conv2d(x, self.weight[:out_channels, :x.shape[1]], b, self.stride, self.padding, self.dilation)
''',
    },
}

# ------------------------------------------------------------------------------------ search
_SEARCH = '''
def search(configs, budget_macs, count_macs, evaluate):
    best, best_score = None, None
    for config in configs:
        if FITS:
            score = evaluate(config)
            if best_score is None or BETTER:
                best, best_score = config, score
    if best_score is None:
        raise ValueError("no config fits")
    return RESULT
'''


def _search(fits="count_macs(config) <= budget_macs", better="score > best_score", result="best"):
    return _SEARCH.replace("FITS", fits).replace("BETTER", better).replace("RESULT", result)


SEARCH = {
    "grades": ["test_search", "test_search_errors"],
    "correct": {
        "macs_table_then_stable_reverse_sort": '''
def search(configs, budget_macs, count_macs, evaluate):
    macs = {c: count_macs(c) for c in configs}
    fits = [c for c, m in macs.items() if m <= budget_macs]
    if not fits:
        raise ValueError("no config fits the budget")
    scores = {c: evaluate(c) for c in fits}
    return sorted(fits, key=scores.__getitem__, reverse=True)[0]
''',
        "filter_then_max": '''
def search(configs, budget_macs, count_macs, evaluate):
    fits = [c for c in configs if count_macs(c) <= budget_macs]
    if not fits:
        raise ValueError(f"nothing fits {budget_macs} MACs")
    return max(fits, key=evaluate)
''',
        "scores_then_stable_sort": '''
def search(configs, budget_macs, count_macs, evaluate):
    scored = [(evaluate(c), i, c) for i, c in enumerate(configs) if count_macs(c) <= budget_macs]
    if len(scored) == 0:
        raise ValueError("no config fits the budget")
    scored.sort(key=lambda t: (-t[0], t[1]))
    return scored[0][2]
''',
        "evaluates_twice": '''
def search(configs, budget_macs, count_macs, evaluate):
    fits = [c for c in configs if not count_macs(c) > budget_macs]
    if not fits:
        raise ValueError("empty")
    best = max(fits, key=evaluate)
    print(f"best {best}: {evaluate(best)}")
    return best
''',
    },
    "wrong": {
        "strict_budget": _search(fits="count_macs(config) < budget_macs"),
        "last_on_ties": _search(better="score >= best_score"),
        "lowest_score": _search(better="score < best_score"),
        "falsy_best_score": _search(better="not best_score or score > best_score"),
        "zero_initial_score": '''
def search(configs, budget_macs, count_macs, evaluate):
    best, best_score = None, 0.0
    for config in configs:
        if count_macs(config) <= budget_macs:
            score = evaluate(config)
            if score > best_score:
                best, best_score = config, score
    if best is None:
        raise ValueError("no config fits")
    return best
''',
        "sort_by_score_then_first_that_fits": '''
def search(configs, budget_macs, count_macs, evaluate):
    for c in sorted(configs, key=evaluate, reverse=True):
        if count_macs(c) <= budget_macs:
            return c
    raise ValueError("no config fits")
''',
        "smallest_macs": '''
def search(configs, budget_macs, count_macs, evaluate):
    fits = [c for c in configs if count_macs(c) <= budget_macs]
    if not fits:
        raise ValueError("no config fits")
    return min(fits, key=count_macs)
''',
        "first_that_fits": '''
def search(configs, budget_macs, count_macs, evaluate):
    for c in configs:
        if count_macs(c) <= budget_macs:
            return c
    raise ValueError("no config fits")
''',
        "most_macs_in_budget": '''
def search(configs, budget_macs, count_macs, evaluate):
    fits = [c for c in configs if count_macs(c) <= budget_macs]
    if not fits:
        raise ValueError("no config fits")
    return max(fits, key=count_macs)
''',
        "evaluates_everything": '''
def search(configs, budget_macs, count_macs, evaluate):
    scored = [(evaluate(c), c) for c in configs]
    fits = [(s, c) for s, c in scored if count_macs(c) <= budget_macs]
    if not fits:
        raise ValueError("no config fits")
    return max(fits, key=lambda t: t[0])[1]
''',
        "ignores_budget": _search(fits="True"),
        "returns_score": _search(result="best_score"),
        "needs_a_list": '''
def search(configs, budget_macs, count_macs, evaluate):
    if len(configs) == 0:
        raise ValueError("no configs")
    fits = [c for c in configs if count_macs(c) <= budget_macs]
    if not fits:
        raise ValueError("no config fits")
    return max(fits, key=evaluate)
''',
        "returns_none_when_nothing_fits": '''
def search(configs, budget_macs, count_macs, evaluate):
    fits = [c for c in configs if count_macs(c) <= budget_macs]
    return max(fits, key=evaluate) if fits else None
''',
    },
}

# ------------------------------------------------------------------------------ ofa_step
_OFA = '''
def ofa_step(supernet, mappers, x, y, teacher_feats, sample_config, objective, distill,
             lambda_recon=100.0, lambda_distill=10.0):
    config = CONFIG
    fake, feats = supernet(x, config, return_features=True)
    trunk = supernet.widths[2]
    feats = [WIDEN for f in feats]
    d = distill(feats, teacher_feats, mappers)
    return OBJECTIVE
'''


def _ofa(config="sample_config()", widen="F.pad(f, (0, 0, 0, 0, 0, trunk - f.shape[1]))",
         objective="objective(None, fake, y, None, d, paired=True, lambda_recon=lambda_recon, "
                   "lambda_distill=lambda_distill)"):
    return _OFA.replace("CONFIG", config).replace("WIDEN", widen).replace("OBJECTIVE", objective)


OFA_STEP = {
    "grades": ["test_ofa_step", "test_ofa_step_sampling"],
    "correct": {
        # the official code's way: mappers are SuperConv2d layers whose input channels are sliced
        "official_sliced_mappers": '''
class _FirstInputs(nn.Module):
    def __init__(self, conv, c_in):
        super().__init__()
        self.conv, self.c_in = conv, c_in

    def forward(self, s):
        return F.conv2d(s, self.conv.weight[:, :self.c_in], self.conv.bias)


def ofa_step(supernet, mappers, x, y, teacher_feats, sample_config, objective, distill,
             lambda_recon=100.0, lambda_distill=10.0):
    config = sample_config()
    fake, feats = supernet(x, config, return_features=True)
    sliced = [_FirstInputs(m, config[2]) for m in mappers]
    return objective(None, fake, y, None, distill(feats, teacher_feats, sliced), paired=True,
                     lambda_recon=lambda_recon, lambda_distill=lambda_distill)
''',
        "cat_zeros": _ofa(widen="torch.cat([f, f.new_zeros(f.shape[0], trunk - f.shape[1], *f.shape[2:])], 1)"),
        # the weight folded into the distillation value (the objective is linear in it)
        "weight_folded_in": _ofa(objective="objective(None, fake, y, None, lambda_distill * d, True, lambda_recon, 1.0)"),
        "config_from_list": _ofa(config="tuple(sample_config())"),
    },
    "wrong": {
        "no_widening": _ofa(widen="f"),
        "padded_in_front": _ofa(widen="F.pad(f, (0, 0, 0, 0, trunk - f.shape[1], 0))"),
        "repeat_channels": _ofa(widen="f.repeat(1, trunk // f.shape[1] + 1, 1, 1)[:, :trunk]"),
        "largest_config": _ofa(config="supernet.widths"),
        "draws_twice": _ofa(config="(sample_config(), sample_config())[1]"),
        "detached_features": _ofa(widen="F.pad(f.detach(), (0, 0, 0, 0, 0, trunk - f.shape[1]))"),
        "no_distill_weight": _ofa(objective="objective(None, fake, y, None, d, paired=True, lambda_recon=lambda_recon)"),
        "unpaired": _ofa(objective="objective(None, fake, y, fake.detach(), d, paired=False, lambda_recon=lambda_recon, "
                                   "lambda_distill=lambda_distill)"),
        "sandwich": '''
def ofa_step(supernet, mappers, x, y, teacher_feats, sample_config, objective, distill,
             lambda_recon=100.0, lambda_distill=10.0):
    trunk = supernet.widths[2]
    total = 0.0
    for config in (supernet.widths, sample_config()):
        fake, feats = supernet(x, config, return_features=True)
        feats = [F.pad(f, (0, 0, 0, 0, 0, trunk - f.shape[1])) for f in feats]
        total = total + objective(None, fake, y, None, distill(feats, teacher_feats, mappers), paired=True,
                                  lambda_recon=lambda_recon, lambda_distill=lambda_distill)
    return total
''',
    },
}

EXERCISES = {
    "build_mappers": BUILD_MAPPERS,
    "distill_loss": DISTILL_LOSS,
    "generator_objective": GENERATOR_OBJECTIVE,
    "SuperConv2d": SUPER_CONV2D,
    "ofa_step": OFA_STEP,
    "search": SEARCH,
}
