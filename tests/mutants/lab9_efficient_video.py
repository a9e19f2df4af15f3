"""Mutants of Lab 9's exercises (format: tests/mutation.py).

Correct alternatives must score full points; plausible wrong answers must lose points on their
exercise's grade cells. ``lateral_fuse``'s correct set includes an ``nn.Conv3d`` with the given
weight loaded (the official PySlowFast ``FuseFastToSlow`` builds its lateral as such a Conv3d; the
contract leaves out its BN and ReLU) and a stride-1 conv subsampled every alpha frames.
"""

# ---------------------------------------------------------------- lateral_fuse

LATERAL_CORRECT = {
    "conv3d_module_with_the_weight": '''
def lateral_fuse(slow, fast, weight, alpha):
    c_l, c_f, k_t = weight.shape[:3]
    conv = nn.Conv3d(c_f, c_l, (k_t, 1, 1), stride=(alpha, 1, 1), padding=(k_t // 2, 0, 0), bias=False).to(fast.dtype)
    del conv.weight
    conv.weight = weight
    return torch.cat([slow, conv(fast)], 1)
''',
    "stride_one_then_subsample": '''
def lateral_fuse(slow, fast, weight, alpha):
    k = weight.shape[2]
    full = F.conv3d(fast, weight, padding=(k // 2, 0, 0))
    return torch.cat((slow, full[:, :, ::alpha]), dim=1)
''',
    "einsum_over_padded_windows": '''
def lateral_fuse(slow, fast, weight, alpha):
    k = weight.shape[2]
    p = F.pad(fast, (0, 0, 0, 0, k // 2, k // 2))
    win = p.unfold(2, k, alpha)                       # (N, C_f, T_s, H, W, k)
    lat = torch.einsum("nctHWk,dck->ndtHW", win, weight[:, :, :, 0, 0])
    return torch.cat([slow, lat[:, :, :slow.shape[2]]], 1)
''',
}


def _lat(body):
    return "\ndef lateral_fuse(slow, fast, weight, alpha):\n    k = weight.shape[2]\n" + body


LATERAL_WRONG = {
    "no_padding": _lat("    return torch.cat([slow, F.conv3d(fast, weight, stride=(alpha, 1, 1))], 1)\n"),
    "lateral_first": _lat("    return torch.cat([F.conv3d(fast, weight, stride=(alpha, 1, 1), padding=(k // 2, 0, 0)), slow], 1)\n"),
    "subsample_fast_then_conv": _lat(
        "    return torch.cat([slow, F.conv3d(fast[:, :, ::alpha], weight, padding=(k // 2, 0, 0))], 1)\n"),
    "wrong_phase_subsample": _lat(
        "    full = F.conv3d(fast, weight, padding=(k // 2, 0, 0))\n"
        "    return torch.cat([slow, full[:, :, alpha - 1::alpha]], 1)\n"),
    "sum_instead_of_concat": _lat(
        "    lat = F.conv3d(fast, weight, stride=(alpha, 1, 1), padding=(k // 2, 0, 0))\n"
        "    return slow + lat.sum(1, keepdim=True)\n"),
    "detaches_the_fast_pathway": _lat(
        "    return torch.cat([slow, F.conv3d(fast.detach(), weight, stride=(alpha, 1, 1), padding=(k // 2, 0, 0))], 1)\n"),
    "time_to_channel_reshape": '''
def lateral_fuse(slow, fast, weight, alpha):
    n, c, t, h, w = fast.shape
    ttc = fast.reshape(n, c, t // alpha, alpha, h, w).permute(0, 1, 3, 2, 4, 5).reshape(n, c * alpha, t // alpha, h, w)
    return torch.cat([slow, ttc[:, :weight.shape[0]]], 1)
''',
    "temporal_padding_full_kernel": _lat(
        "    return torch.cat([slow, F.conv3d(fast, weight, stride=(alpha, 1, 1), padding=(k - 1, 0, 0))[:, :, :slow.shape[2]]], 1)\n"),
}

# ---------------------------------------------------------------- greedy_expand

GREEDY_CORRECT = {
    "max_with_key_over_scored_list": '''
def greedy_expand(config, axes, expand, evaluate, cost, budget):
    cur = dict(config)
    path = [(None, cur, evaluate(cur), cost(cur))]
    while True:
        _, _, acc, macs = path[-1]
        scored = []
        for i, ax in enumerate(axes):
            c = expand(cur, ax)
            if c is not None and cost(c) <= budget:
                a, m = evaluate(c), cost(c)
                scored.append(((a - acc) / (m - macs), -i, ax, c, a, m))
        if not scored:
            return path
        s, _, ax, cur, a, m = max(scored, key=lambda r: (r[0], r[1]))
        path.append((ax, cur, a, m))
''',
    "recursive": '''
def greedy_expand(config, axes, expand, evaluate, cost, budget, _path=None):
    if _path is None:
        _path = [(None, dict(config), evaluate(config), cost(config))]
    _, cur, acc, macs = _path[-1]
    best = None
    for ax in axes:
        c = expand(cur, ax)
        if c is None or cost(c) > budget:
            continue
        a, m = evaluate(c), cost(c)
        g = (a - acc) / (m - macs)
        if best is None or g > best[0]:
            best = (g, (ax, c, a, m))
    if best is None:
        return _path
    _path.append(best[1])
    return greedy_expand(config, axes, expand, evaluate, cost, budget, _path)
''',
}


def _greedy(score="(a - acc) / (c - macs)", fits="c <= budget", better="score > best[0]", start_in_path=True,
            stop="return path", base_update="acc, macs = a_, c_"):
    return f'''
def greedy_expand(config, axes, expand, evaluate, cost, budget):
    cur = dict(config)
    acc, macs = evaluate(cur), cost(cur)
    acc0, macs0 = acc, macs
    path = [(None, cur, acc, macs)] if {start_in_path} else []
    while True:
        best = None
        for ax in axes:
            cand = expand(cur, ax)
            if cand is None:
                continue
            c = cost(cand)
            if not ({fits}):
                {"continue" if stop == "return path" else stop}
            a = evaluate(cand)
            score = {score}
            if best is None or {better}:
                best = (score, ax, cand, a, c)
        if best is None:
            return path
        _, ax, cur, a_, c_ = best
        {base_update}
        path.append((ax, cur, a_, c_))
'''


GREEDY_WRONG = {
    "best_accuracy_not_per_mac": _greedy(score="a"),
    "accuracy_over_total_macs": _greedy(score="a / c"),
    "gain_from_x0_not_current": _greedy(score="(a - acc0) / (c - macs0)"),
    "ignores_the_budget": _greedy(fits="True"),
    "stops_at_the_first_candidate_over_budget": _greedy(stop="return path if best is None else path"),
    "path_without_x0": _greedy(start_in_path=False),
    "worst_candidate": _greedy(better="score < best[0]"),
    "never_updates_the_baseline": _greedy(base_update="pass"),
}
# the stop mutant: `return path if best is None else path` returns as soon as one candidate is over budget
GREEDY_WRONG["stops_at_the_first_candidate_over_budget"] = GREEDY_WRONG["stops_at_the_first_candidate_over_budget"].replace(
    "return path if best is None else path", "return path")

# ---------------------------------------------------------------- topk_predict

TOPK_CORRECT = {
    "argsort_and_index": '''
def topk_predict(saliency, clip_logits, k):
    order = saliency.argsort(dim=1, descending=True)[:, :k]
    rows = torch.arange(saliency.shape[0]).unsqueeze(1)
    return clip_logits[rows, order].mean(1)
''',
    "mask_weighted_mean": '''
def topk_predict(saliency, clip_logits, k):
    k = min(k, saliency.shape[1])
    thresh = saliency.sort(dim=1, descending=True).values[:, k - 1:k]
    mask = (saliency >= thresh).to(clip_logits.dtype)
    return (clip_logits * mask.unsqueeze(-1)).sum(1) / k
''',
}


def _topk(body):
    return "\ndef topk_predict(saliency, clip_logits, k):\n    k = min(k, saliency.shape[1])\n" + body


TOPK_WRONG = {
    "lowest_scores": _topk("    idx = saliency.topk(k, dim=1, largest=False).indices\n"
                           "    return clip_logits[torch.arange(len(idx)).unsqueeze(1), idx].mean(1)\n"),
    "off_by_one_k": _topk("    idx = saliency.topk(max(k - 1, 1), dim=1).indices\n"
                          "    return clip_logits[torch.arange(len(idx)).unsqueeze(1), idx].mean(1)\n"),
    "sum_not_mean": _topk("    idx = saliency.topk(k, dim=1).indices\n"
                          "    return clip_logits[torch.arange(len(idx)).unsqueeze(1), idx].sum(1)\n"),
    "averages_softmax": _topk("    idx = saliency.topk(k, dim=1).indices\n"
                              "    return clip_logits[torch.arange(len(idx)).unsqueeze(1), idx].softmax(-1).mean(1)\n"),
    "max_over_clips": _topk("    idx = saliency.topk(k, dim=1).indices\n"
                            "    return clip_logits[torch.arange(len(idx)).unsqueeze(1), idx].max(1).values\n"),
    "first_k_clips_in_time": _topk("    return clip_logits[:, :k].mean(1)\n"),
    "fails_when_k_exceeds_m": '''
def topk_predict(saliency, clip_logits, k):
    idx = saliency.topk(k, dim=1).indices
    return clip_logits[torch.arange(len(idx)).unsqueeze(1), idx].mean(1)
''',
    "detached": _topk("    idx = saliency.topk(k, dim=1).indices\n"
                      "    return clip_logits.detach()[torch.arange(len(idx)).unsqueeze(1), idx].mean(1)\n"),
}

# ---------------------------------------------------------------- ranking_loss

RANK_CORRECT = {
    "loops": '''
def ranking_loss(scores, targets, margin=1.0):
    terms = []
    n, m = scores.shape
    for b in range(n):
        for i in range(m):
            for j in range(m):
                if targets[b, i] > targets[b, j]:
                    terms.append(torch.clamp(margin - (scores[b, i] - scores[b, j]), min=0))
    return torch.stack(terms).mean() if terms else scores.new_zeros(())
''',
    "masked_sum_over_count": '''
def ranking_loss(scores, targets, margin=1.0):
    mask = (targets[:, :, None] > targets[:, None, :]).to(scores.dtype)
    hinge = torch.clamp(margin - scores[:, :, None] + scores[:, None, :], min=0)
    return (hinge * mask).sum() / mask.sum().clamp(min=1)
''',
}


def _rank(hinge="F.relu(margin - d)", mask="t[:, :, None] > t[:, None, :]", reduce="(h * w).sum() / w.sum().clamp(min=1)",
          header="margin=1.0"):
    return f'''
def ranking_loss(scores, targets, {header}):
    t = targets
    d = scores[:, :, None] - scores[:, None, :]
    w = ({mask}).to(scores.dtype)
    h = {hinge}
    return {reduce}
'''


RANK_WRONG = {
    "sign_reversed": _rank(hinge="F.relu(margin + d)"),
    "no_margin": _rank(hinge="F.relu(-d)"),
    "counts_ties": _rank(mask="(t[:, :, None] >= t[:, None, :]) & ~torch.eye(t.shape[1], dtype=torch.bool)"),
    "sum_not_mean": _rank(reduce="(h * w).sum()"),
    "mean_over_all_pairs": _rank(reduce="(h * w).mean()"),
    "squared_hinge": _rank(hinge="F.relu(margin - d) ** 2"),
    "wrong_default_margin": _rank(header="margin=0.5"),
    "pairs_across_videos": '''
def ranking_loss(scores, targets, margin=1.0):
    s, t = scores.flatten(), targets.flatten()
    w = (t[:, None] > t[None, :]).to(s.dtype)
    h = F.relu(margin - (s[:, None] - s[None, :]))
    return (h * w).sum() / w.sum().clamp(min=1)
''',
}

# ---------------------------------------------------------------- IncrementalConv

_INC = '''
class IncrementalConv(nn.Module):
    def __init__(self, conv, threshold=0.0):
        super().__init__()
        self.conv = conv
        self.threshold = threshold
        self.reset()

    def reset(self):
        self.x_ref = self.y = self.last_delta = None

    def forward(self, x):
        if self.x_ref is None:
            self.x_ref, self.y, self.last_delta = x.clone(), self.conv(x), None
            return self.y
        c = self.conv
        d = x - self.x_ref
        d = {mask}
        self.y = {update}
        self.x_ref = {ref}
        self.last_delta = {last}
        return self.y
'''


def _inc(mask="torch.where(d.abs() > self.threshold, d, torch.zeros_like(d))",
         update="self.y + F.conv2d(d, c.weight, None, c.stride, c.padding, c.dilation, c.groups)",
         ref="self.x_ref + d", last="d"):
    return _INC.format(mask=mask, update=update, ref=ref, last=last)


INC_CORRECT = {
    "dense_on_the_reference": _inc(update="c(self.x_ref + d)"),
    "mask_multiply_and_subtract_bias": _inc(
        mask="d * (d.abs() > self.threshold).to(d.dtype)",
        update="self.y + (c(d) - (c.bias.view(1, -1, 1, 1) if c.bias is not None else 0))"),
    "conv_forward_helper": _inc(update="self.y + c._conv_forward(d, c.weight, None)"),
}

INC_WRONG = {
    "bias_added_every_frame": _inc(update="self.y + c(d)"),
    "reference_is_the_last_input": _inc(ref="x.clone()"),
    "keeps_the_small_changes": _inc(mask="torch.where(d.abs() <= self.threshold, d, torch.zeros_like(d))"),
    "no_threshold": _inc(mask="d"),
    "dense_every_frame": _inc(update="c(x)"),
    "threshold_on_the_input": _inc(mask="torch.where(x.abs() > self.threshold, d, torch.zeros_like(d))"),
    "last_delta_unthresholded": _inc(last="x - self.x_ref + d if False else x - (self.x_ref - d)"),
    "reset_keeps_the_stream": _INC.format(
        mask="torch.where(d.abs() > self.threshold, d, torch.zeros_like(d))",
        update="self.y + F.conv2d(d, c.weight, None, c.stride, c.padding, c.dilation, c.groups)",
        ref="self.x_ref + d", last="d").replace(
        "    def reset(self):\n        self.x_ref = self.y = self.last_delta = None",
        "    def reset(self):\n        if not hasattr(self, 'x_ref'):\n            self.x_ref = self.y = self.last_delta = None"),
}

EXERCISES = {
    "lateral_fuse": {"grades": ["test_lateral_fuse"], "correct": LATERAL_CORRECT, "wrong": LATERAL_WRONG},
    "greedy_expand": {"grades": ["test_greedy_expand"], "correct": GREEDY_CORRECT, "wrong": GREEDY_WRONG},
    "topk_predict": {"grades": ["test_topk_predict"], "correct": TOPK_CORRECT, "wrong": TOPK_WRONG},
    "ranking_loss": {"grades": ["test_ranking_loss"], "correct": RANK_CORRECT, "wrong": RANK_WRONG},
    "IncrementalConv": {"grades": ["test_IncrementalConv"], "correct": INC_CORRECT, "wrong": INC_WRONG},
}
