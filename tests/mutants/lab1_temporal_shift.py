"""Mutants of Lab 1's exercises (format: tests/mutation.py).

Correct alternatives must score full points on every grade cell; plausible wrong answers must lose
points on their exercise's grade cells. ``temporal_shift``'s correct set includes the paper's own
style (``view``, ``zeros_like``, slices — TSM's ``ops/temporal_shift.py``), here with the contract's
ValueError checks; the paper's code *without* them is checked separately in
tests/test_lab1_temporal_shift.py (full points on the shift, only the 3-point error cell lost).
"""

# ---------------------------------------------------------------- temporal_shift

PAPER_SHIFT_NO_VALIDATION = '''
def temporal_shift(x, n_segment, fold_div=8):
    nt, c, h, w = x.size()
    n_batch = nt // n_segment
    x = x.view(n_batch, n_segment, c, h, w)
    fold = c // fold_div
    out = torch.zeros_like(x)
    out[:, :-1, :fold] = x[:, 1:, :fold]  # shift left
    out[:, 1:, fold: 2 * fold] = x[:, :-1, fold: 2 * fold]  # shift right
    out[:, :, 2 * fold:] = x[:, :, 2 * fold:]  # not shift
    return out.view(nt, c, h, w)
'''

_VALIDATE = '''
    if x.dim() != 4:
        raise ValueError("x must be 4-D")
    if x.shape[0] % n_segment:
        raise ValueError("N*T must be a multiple of n_segment")
'''

SHIFT_CORRECT = {
    "paper_style_with_validation": '''
def temporal_shift(x, n_segment, fold_div=8):''' + _VALIDATE + '''
    nt, c, h, w = x.size()
    n_batch = nt // n_segment
    x = x.view(n_batch, n_segment, c, h, w)
    fold = c // fold_div
    out = torch.zeros_like(x)
    out[:, :-1, :fold] = x[:, 1:, :fold]
    out[:, 1:, fold: 2 * fold] = x[:, :-1, fold: 2 * fold]
    out[:, :, 2 * fold:] = x[:, :, 2 * fold:]
    return out.view(nt, c, h, w)
''',
    "cat_with_zero_frames": '''
def temporal_shift(x, n_segment, fold_div=8):''' + _VALIDATE + '''
    nt, c, h, w = x.shape
    v = x.reshape(nt // n_segment, n_segment, c, h, w)
    fold = c // fold_div
    a, b, rest = v[:, :, :fold], v[:, :, fold:2 * fold], v[:, :, 2 * fold:]
    za, zb = torch.zeros_like(a[:, :1]), torch.zeros_like(b[:, :1])
    a = torch.cat([a[:, 1:], za], 1)
    b = torch.cat([zb, b[:, :-1]], 1)
    return torch.cat([a, b, rest], 2).reshape(nt, c, h, w)
''',
    "loop_over_clips_and_frames": '''
def temporal_shift(x, n_segment, fold_div=8):''' + _VALIDATE + '''
    nt, c = x.shape[:2]
    fold = c // fold_div
    frames = []
    for i in range(nt):
        t = i % n_segment
        f = x[i].clone()
        f[:fold] = x[i + 1, :fold] if t + 1 < n_segment else 0
        f[fold:2 * fold] = x[i - 1, fold:2 * fold] if t > 0 else 0
        frames.append(f)
    return torch.stack(frames)
''',
    "roll_within_clip_then_zero": '''
def temporal_shift(x, n_segment, fold_div=8):''' + _VALIDATE + '''
    nt, c, h, w = x.shape
    fold = c // fold_div
    v = x.reshape(-1, n_segment, c, h, w)
    fut = torch.roll(v[:, :, :fold], -1, dims=1)
    past = torch.roll(v[:, :, fold:2 * fold], 1, dims=1)
    mask_f = torch.ones(n_segment, dtype=x.dtype, device=x.device)
    mask_f[-1] = 0
    mask_p = torch.ones(n_segment, dtype=x.dtype, device=x.device)
    mask_p[0] = 0
    fut = fut * mask_f.view(1, -1, 1, 1, 1)
    past = past * mask_p.view(1, -1, 1, 1, 1)
    return torch.cat([fut, past, v[:, :, 2 * fold:]], 2).reshape(nt, c, h, w)
''',
    "clone_then_assign_in_place_on_the_copy": '''
def temporal_shift(x, n_segment, fold_div=8):
    if x.ndim != 4 or x.shape[0] % n_segment != 0:
        raise ValueError(f"bad input of shape {tuple(x.shape)} for n_segment={n_segment}")
    out = x.clone().unflatten(0, (-1, n_segment))
    v = x.unflatten(0, (-1, n_segment))
    fold = x.shape[1] // fold_div
    out[:, :, :2 * fold] = 0
    out[:, :-1, :fold] = v[:, 1:, :fold]
    out[:, 1:, fold:2 * fold] = v[:, :-1, fold:2 * fold]
    return out.flatten(0, 1)
''',
    "pad_along_time": '''
import torch.nn.functional as F
def temporal_shift(x, n_segment, fold_div=8):''' + _VALIDATE + '''
    nt, c, h, w = x.shape
    fold = c // fold_div
    v = x.reshape(nt // n_segment, n_segment, c, h, w)
    a = F.pad(v[:, 1:, :fold], (0, 0, 0, 0, 0, 0, 0, 1))          # pad one zero frame at the end
    b = F.pad(v[:, :-1, fold:2 * fold], (0, 0, 0, 0, 0, 0, 1, 0))  # and one at the start
    return torch.cat([a, b, v[:, :, 2 * fold:]], 2).reshape(nt, c, h, w)
''',
}

_PAPER_BODY = '''
    nt, c, h, w = x.shape
    v = x.reshape(nt // n_segment, n_segment, c, h, w)
    fold = {fold}
    out = torch.zeros_like(v)
    out[:, :-1, {a}] = v[:, 1:, {a}]
    out[:, 1:, {b}] = v[:, :-1, {b}]
    out[:, :, {rest}] = v[:, :, {rest}]
    return out.reshape(nt, c, h, w)
'''


def _shift(fold="c // fold_div", a=":fold", b="fold:2 * fold", rest="2 * fold:", header="fold_div=8"):
    return (f"\ndef temporal_shift(x, n_segment, {header}):" + _VALIDATE
            + _PAPER_BODY.format(fold=fold, a=a, b=b, rest=rest))


SHIFT_WRONG = {
    "swapped_directions": _shift(a="fold:2 * fold", b=":fold"),
    "fold_off_by_one": _shift(fold="c // fold_div + 1"),
    "fold_rounded_up": _shift(fold="-(-c // fold_div)"),
    "ignores_fold_div": _shift(fold="c // 8"),
    "wrong_default_fold_div": _shift(header="fold_div=4"),
    "second_fold_too_wide": _shift(b="fold:3 * fold", rest="3 * fold:"),
    "crosses_clip_boundaries": '''
def temporal_shift(x, n_segment, fold_div=8):''' + _VALIDATE + '''
    fold = x.shape[1] // fold_div
    out = x.clone()
    out[:-1, :fold] = x[1:, :fold]                 # shifts over the whole batch: clip n's last frame
    out[-1, :fold] = 0                             # takes clip n+1's first frame
    out[1:, fold:2 * fold] = x[:-1, fold:2 * fold]
    out[0, fold:2 * fold] = 0
    return out
''',
    "wraps_around_instead_of_zeros": '''
def temporal_shift(x, n_segment, fold_div=8):''' + _VALIDATE + '''
    nt, c, h, w = x.shape
    fold = c // fold_div
    v = x.reshape(-1, n_segment, c, h, w)
    fut = torch.roll(v[:, :, :fold], -1, dims=1)
    past = torch.roll(v[:, :, fold:2 * fold], 1, dims=1)
    return torch.cat([fut, past, v[:, :, 2 * fold:]], 2).reshape(nt, c, h, w)
''',
    "modifies_the_input": '''
def temporal_shift(x, n_segment, fold_div=8):''' + _VALIDATE + '''
    nt, c, h, w = x.shape
    v = x.view(nt // n_segment, n_segment, c, h, w)
    fold = c // fold_div
    fut, past = v[:, :, :fold].clone(), v[:, :, fold:2 * fold].clone()
    v[:, :, :2 * fold] = 0
    v[:, :-1, :fold] = fut[:, 1:]
    v[:, 1:, fold:2 * fold] = past[:, :-1]
    return x
''',
    "time_major_grouping": '''
def temporal_shift(x, n_segment, fold_div=8):''' + _VALIDATE + '''
    nt, c, h, w = x.shape
    v = x.reshape(n_segment, nt // n_segment, c, h, w).transpose(0, 1)   # frames of a clip are NOT strided
    fold = c // fold_div
    out = torch.zeros_like(v)
    out[:, :-1, :fold] = v[:, 1:, :fold]
    out[:, 1:, fold:2 * fold] = v[:, :-1, fold:2 * fold]
    out[:, :, 2 * fold:] = v[:, :, 2 * fold:]
    return out.transpose(0, 1).reshape(nt, c, h, w)
''',
    "detached_output": '''
def temporal_shift(x, n_segment, fold_div=8):''' + _VALIDATE + '''
    x = x.detach()
    nt, c, h, w = x.shape
    v = x.reshape(nt // n_segment, n_segment, c, h, w)
    fold = c // fold_div
    out = torch.zeros_like(v)
    out[:, :-1, :fold] = v[:, 1:, :fold]
    out[:, 1:, fold:2 * fold] = v[:, :-1, fold:2 * fold]
    out[:, :, 2 * fold:] = v[:, :, 2 * fold:]
    return out.reshape(nt, c, h, w)
''',
    "no_input_validation_beyond_torch": PAPER_SHIFT_NO_VALIDATION,
    "validation_with_the_wrong_exception": '''
def temporal_shift(x, n_segment, fold_div=8):
    if x.dim() != 4 or x.shape[0] % n_segment:
        raise RuntimeError("bad shape")
    nt, c, h, w = x.shape
    v = x.reshape(nt // n_segment, n_segment, c, h, w)
    fold = c // fold_div
    out = torch.zeros_like(v)
    out[:, :-1, :fold] = v[:, 1:, :fold]
    out[:, 1:, fold:2 * fold] = v[:, :-1, fold:2 * fold]
    out[:, :, 2 * fold:] = v[:, :, 2 * fold:]
    return out.reshape(nt, c, h, w)
''',
}

# ---------------------------------------------------------------- ResidualShift

def _residual(init_body, forward_body, header="fold_div=8"):
    return f'''
class ResidualShift(nn.Module):
    def __init__(self, net, n_segment, {header}):
        super().__init__()
{init_body}

    def forward(self, x):
{forward_body}
'''


_STORE = '''        self.net = net
        self.n_segment = n_segment
        self.fold_div = fold_div'''

RESIDUAL_CORRECT = {
    "other_attribute_names": _residual('''        self.body = net
        self.t, self.div = n_segment, fold_div''',
                                       '''        shifted = temporal_shift(x, n_segment=self.t, fold_div=self.div)
        return self.body(shifted)'''),
    "add_module_and_partial": _residual('''        import functools
        self.add_module("layer", net)
        self.shift = functools.partial(temporal_shift, n_segment=n_segment, fold_div=fold_div)''',
                                        '''        return self.layer(self.shift(x))'''),
    "sequential_inside": '''
class ResidualShift(nn.Module):
    class _Shift(nn.Module):
        def __init__(self, n_segment, fold_div):
            super().__init__()
            self.n_segment, self.fold_div = n_segment, fold_div

        def forward(self, x):
            return temporal_shift(x, self.n_segment, self.fold_div)

    def __init__(self, net, n_segment, fold_div=8):
        super().__init__()
        self.seq = nn.Sequential(ResidualShift._Shift(n_segment, fold_div), net)

    def forward(self, x):
        return self.seq(x)
''',
}

RESIDUAL_WRONG = {
    "adds_the_input_back": _residual(_STORE, '''        return x + self.net(temporal_shift(x, self.n_segment, self.fold_div))'''),
    "no_shift": _residual(_STORE, '''        return self.net(x)'''),
    "shift_after_the_layer": _residual(_STORE, '''        return temporal_shift(self.net(x), self.n_segment, self.fold_div)'''),
    "ignores_fold_div": _residual(_STORE, '''        return self.net(temporal_shift(x, self.n_segment))'''),
    "fixed_n_segment": _residual(_STORE, '''        return self.net(temporal_shift(x, 8, self.fold_div))'''),
    "wrong_default_fold_div": _residual(_STORE, '''        return self.net(temporal_shift(x, self.n_segment, self.fold_div))''', header="fold_div=4"),
    "net_not_registered": _residual('''        self.layers = [net]
        self.n_segment, self.fold_div = n_segment, fold_div''',
                                    '''        return self.layers[0](temporal_shift(x, self.n_segment, self.fold_div))'''),
    "detached_shift": _residual(_STORE, '''        return self.net(temporal_shift(x, self.n_segment, self.fold_div).detach())'''),
}

# ---------------------------------------------------------------- insert_temporal_shift

_CHECK_PLACE = '''
    if place not in ("residual", "inplace"):
        raise ValueError(place)'''

INSERT_CORRECT = {
    # the official code's make_temporal_shift: place "blockres" wraps b.conv1, "block" wraps each block,
    # each stage rebuilt as an nn.Sequential of its (wrapped) blocks
    "official_make_temporal_shift_style": '''
def insert_temporal_shift(model, shift, n_segment, place="residual"):''' + _CHECK_PLACE + '''
    def make_block_temporal(stage, this_segment):
        blocks = list(stage.children())
        for i, b in enumerate(blocks):
            if place == "residual":
                blocks[i].conv1 = shift(b.conv1, this_segment)
            else:
                blocks[i] = shift(b, this_segment)
        return nn.Sequential(*blocks)

    model.layer1 = make_block_temporal(model.layer1, n_segment)
    model.layer2 = make_block_temporal(model.layer2, n_segment)
    model.layer3 = make_block_temporal(model.layer3, n_segment)
    model.layer4 = make_block_temporal(model.layer4, n_segment)
    return model
''',
    "walk_modules_isinstance": '''
from torchvision.models.resnet import BasicBlock, Bottleneck
def insert_temporal_shift(model, shift, n_segment, place="residual"):''' + _CHECK_PLACE + '''
    targets = []
    for parent in model.modules():
        for name, child in parent.named_children():
            if isinstance(child, (BasicBlock, Bottleneck)):
                targets.append((parent, name, child))
    for parent, name, block in targets:
        if place == "residual":
            block.conv1 = shift(block.conv1, n_segment)
        else:
            setattr(parent, name, shift(block, n_segment))
    return model
''',
    "new_sequential_per_stage": '''
def insert_temporal_shift(model, shift, n_segment, place="residual"):''' + _CHECK_PLACE + '''
    for lname in ["layer1", "layer2", "layer3", "layer4"]:
        stage = getattr(model, lname)
        new = []
        for block in stage:
            if place == "inplace":
                new.append(shift(block, n_segment))
            else:
                block.conv1 = shift(block.conv1, n_segment)
                new.append(block)
        setattr(model, lname, nn.Sequential(*new))
    return model
''',
}


def _insert(residual="block.conv1 = shift(block.conv1, n_segment)", inplace="stage[i] = shift(block, n_segment)",
            header='place="residual"', check=_CHECK_PLACE, stages="model.layer1, model.layer2, model.layer3, model.layer4",
            blocks="enumerate(stage)"):
    return f'''
def insert_temporal_shift(model, shift, n_segment, {header}):{check}
    for stage in ({stages},):
        for i, block in {blocks}:
            if place == "residual":
                {residual}
            else:
                {inplace}
    return model
'''


INSERT_WRONG = {
    "places_swapped": _insert(residual="stage[i] = shift(block, n_segment)",
                              inplace="block.conv1 = shift(block.conv1, n_segment)"),
    "residual_wraps_conv2": _insert(residual="block.conv2 = shift(block.conv2, n_segment)"),
    "residual_wraps_conv1_and_conv2": _insert(
        residual="block.conv1 = shift(block.conv1, n_segment); block.conv2 = shift(block.conv2, n_segment)"),
    "residual_also_shifts_the_shortcut": _insert(
        residual="block.conv1 = shift(block.conv1, n_segment)\n"
                 "                if block.downsample is not None:\n"
                 "                    block.downsample = shift(block.downsample, n_segment)"),
    "inplace_is_the_residual_placement": _insert(inplace="block.conv1 = shift(block.conv1, n_segment)"),
    "inplace_shifts_after_the_block": _insert(
        inplace="stage[i] = nn.Sequential(block, shift(nn.Identity(), n_segment))"),
    "only_layer1": _insert(stages="model.layer1"),
    "first_block_of_each_stage_only": _insert(blocks="list(enumerate(stage))[:1]"),
    "n_segment_fixed_8": _insert(residual="block.conv1 = shift(block.conv1, 8)", inplace="stage[i] = shift(block, 8)"),
    "default_place_inplace": _insert(header='place="inplace"'),
    "unknown_place_is_inplace": _insert(check=""),
    "stage_level_shift_inplace": _insert(inplace="pass").replace(
        "    return model", "    if place == 'inplace':\n"
        "        for n in ('layer1', 'layer2', 'layer3', 'layer4'):\n"
        "            setattr(model, n, shift(getattr(model, n), n_segment))\n    return model"),
}

# ---------------------------------------------------------------- segment_consensus

CONSENSUS_CORRECT = {
    "loop_over_clips": '''
def segment_consensus(logits, n_segment):
    return torch.stack([logits[i:i + n_segment].mean(0) for i in range(0, logits.shape[0], n_segment)])
''',
    "sum_divided_by_t": '''
def segment_consensus(logits, n_segment):
    return logits.view(-1, n_segment, logits.shape[-1]).sum(1) / n_segment
''',
    "avg_pool1d": '''
import torch.nn.functional as F
def segment_consensus(logits, n_segment):
    return F.avg_pool1d(logits.t().unsqueeze(0), n_segment).squeeze(0).t()
''',
    "einsum_with_weights": '''
def segment_consensus(logits, n_segment):
    w = torch.full((n_segment,), 1.0 / n_segment, dtype=logits.dtype)
    return torch.einsum("ntk,t->nk", logits.reshape(-1, n_segment, logits.shape[1]), w)
''',
}

CONSENSUS_WRONG = {
    "max_instead_of_mean": '''
def segment_consensus(logits, n_segment):
    return logits.reshape(-1, n_segment, logits.shape[1]).max(dim=1).values
''',
    "sum_instead_of_mean": '''
def segment_consensus(logits, n_segment):
    return logits.reshape(-1, n_segment, logits.shape[1]).sum(dim=1)
''',
    "time_major_grouping": '''
def segment_consensus(logits, n_segment):
    return logits.reshape(n_segment, -1, logits.shape[1]).mean(dim=0)
''',
    "mean_over_classes": '''
def segment_consensus(logits, n_segment):
    n = logits.shape[0] // n_segment
    return logits.reshape(n, n_segment, -1).mean(dim=2)
''',
    "softmax_then_mean": '''
def segment_consensus(logits, n_segment):
    return logits.softmax(-1).reshape(-1, n_segment, logits.shape[1]).mean(dim=1)
''',
    "last_frame_only": '''
def segment_consensus(logits, n_segment):
    return logits[n_segment - 1::n_segment]
''',
    "median": '''
def segment_consensus(logits, n_segment):
    return logits.reshape(-1, n_segment, logits.shape[1]).median(dim=1).values
''',
    "detached": '''
def segment_consensus(logits, n_segment):
    return logits.detach().reshape(-1, n_segment, logits.shape[1]).mean(dim=1)
''',
}

# ---------------------------------------------------------------- online_shift

ONLINE_CORRECT = {
    # online TSM is inference-only in the paper: the contract leaves gradients through the cache free
    "detached_cache": '''
def online_shift(x_t, cache, fold_div=8):
    fold = x_t.shape[1] // fold_div
    shifted = x_t.clone()
    shifted[:, :fold] = 0 if cache is None else cache
    return shifted, x_t[:, :fold].detach().clone()
''',
    "cat_and_view_cache": '''
def online_shift(x_t, cache, fold_div=8):
    fold = x_t.shape[1] // fold_div
    head = torch.zeros_like(x_t[:, :fold]) if cache is None else cache
    return torch.cat([head, x_t[:, fold:]], 1), x_t[:, :fold]
''',
    "where_with_a_channel_mask": '''
def online_shift(x_t, cache, fold_div=8):
    n, c, h, w = x_t.shape
    fold = c // fold_div
    prev = x_t.new_zeros(n, c, h, w)
    if cache is not None:
        prev[:, :fold] = cache
    mask = (torch.arange(c) < fold).view(1, c, 1, 1)
    return torch.where(mask, prev, x_t), x_t[:, :fold].clone()
''',
    "new_zeros_and_copy": '''
def online_shift(x_t, cache, fold_div=8):
    fold = x_t.size(1) // fold_div
    new_cache = x_t[:, :fold].detach().clone() if not x_t.requires_grad else x_t[:, :fold].clone()
    out = torch.empty_like(x_t)
    out.copy_(x_t)
    if cache is None:
        out[:, :fold].zero_()
    else:
        out[:, :fold].copy_(cache)
    return out, new_cache
''',
}

_ONLINE = '''
def online_shift(x_t, cache, fold_div={default}):
    fold = {fold}
    shifted = x_t.clone()
    shifted[:, {dst}] = 0 if cache is None else cache
    return shifted, x_t[:, {src}].clone()
'''


def _online(default="8", fold="x_t.shape[1] // fold_div", dst=":fold", src=":fold"):
    return _ONLINE.format(default=default, fold=fold, dst=dst, src=src)


ONLINE_WRONG = {
    "caches_the_wrong_channels": _online(src="fold:2 * fold"),
    "writes_the_wrong_channels": _online(dst="fold:2 * fold"),
    "fold_off_by_one": _online(fold="x_t.shape[1] // fold_div + 1"),
    "ignores_fold_div": _online(fold="x_t.shape[1] // 8"),
    "wrong_default_fold_div": _online(default="4"),
    "cache_is_a_view_of_the_output": '''
def online_shift(x_t, cache, fold_div=8):
    fold = x_t.shape[1] // fold_div
    shifted = x_t.clone()
    new_cache = shifted[:, :fold]                  # a view: overwritten on the next line
    shifted[:, :fold] = 0 if cache is None else cache
    return shifted, new_cache
''',
    "modifies_x_t": '''
def online_shift(x_t, cache, fold_div=8):
    fold = x_t.shape[1] // fold_div
    new_cache = x_t[:, :fold].clone()
    x_t[:, :fold] = 0 if cache is None else cache
    return x_t, new_cache
''',
    "keeps_own_channels_at_the_first_frame": '''
def online_shift(x_t, cache, fold_div=8):
    fold = x_t.shape[1] // fold_div
    shifted = x_t.clone()
    if cache is not None:
        shifted[:, :fold] = cache
    return shifted, x_t[:, :fold].clone()
''',
    "returns_the_pair_swapped": '''
def online_shift(x_t, cache, fold_div=8):
    fold = x_t.shape[1] // fold_div
    shifted = x_t.clone()
    shifted[:, :fold] = 0 if cache is None else cache
    return x_t[:, :fold].clone(), shifted
''',
    "caches_the_whole_frame": '''
def online_shift(x_t, cache, fold_div=8):
    fold = x_t.shape[1] // fold_div
    shifted = x_t.clone()
    shifted[:, :fold] = 0 if cache is None else cache[:, :fold]
    return shifted, x_t.clone()
''',
}

EXERCISES = {
    "temporal_shift": {"grades": ["test_temporal_shift", "test_temporal_shift_errors"],
                       "correct": SHIFT_CORRECT, "wrong": SHIFT_WRONG},
    "ResidualShift": {"grades": ["test_ResidualShift"], "correct": RESIDUAL_CORRECT, "wrong": RESIDUAL_WRONG},
    "insert_temporal_shift": {"grades": ["test_insert_temporal_shift"], "correct": INSERT_CORRECT,
                              "wrong": INSERT_WRONG},
    "segment_consensus": {"grades": ["test_segment_consensus"], "correct": CONSENSUS_CORRECT,
                          "wrong": CONSENSUS_WRONG},
    "online_shift": {"grades": ["test_online_shift"], "correct": ONLINE_CORRECT, "wrong": ONLINE_WRONG},
}
