"""Mutants of Lab 2's exercises (format: tests/mutation.py).

Correct alternatives must keep every point; plausible wrong answers must lose points on their
exercise's grade cells. The notebook's set-up cell has imported copy, torch, F, nn, _pair, _triple.
"""

# ----------------------------------------------------------------------------- inflate_conv2d

_INFLATE_OK = '''
def inflate_conv2d(conv, time_kernel=3, method="average"):
    if method not in ("average", "center"):
        raise ValueError(method)
    t = time_kernel
    c3 = nn.Conv3d(conv.in_channels, conv.out_channels, (t, *conv.kernel_size), stride=(1, *conv.stride),
                   padding=(PAD_T, *conv.padding), dilation=(1, *conv.dilation), groups=conv.groups,
                   bias=BIAS).to(conv.weight.device, conv.weight.dtype)
    w = conv.weight.detach()
    with torch.no_grad():
        if method == "average":
            c3.weight.copy_(SCALE)
        else:
            c3.weight.zero_()
            c3.weight[:, :, TAP] = w
        if conv.bias is not None and c3.bias is not None:
            c3.bias.copy_(BIAS_VALUE)
    return c3
'''


def _inflate(pad_t="t // 2", bias="conv.bias is not None", scale="w.unsqueeze(2).repeat(1, 1, t, 1, 1) / t",
             tap="t // 2", bias_value="conv.bias.detach()"):
    return (_INFLATE_OK.replace("PAD_T", pad_t).replace("BIAS_VALUE", bias_value).replace("BIAS", bias)
            .replace("SCALE", scale).replace("TAP", tap))


INFLATE_CONV2D_CORRECT = {
    "einsum_and_pad": '''
def inflate_conv2d(conv, time_kernel=3, method="average"):
    if method == "average":
        taps = torch.full((time_kernel,), 1.0 / time_kernel, dtype=conv.weight.dtype, device=conv.weight.device)
    elif method == "center":
        taps = torch.zeros(time_kernel, dtype=conv.weight.dtype, device=conv.weight.device)
        taps[time_kernel // 2] = 1.0
    else:
        raise ValueError("unknown method " + repr(method))
    kh, kw = conv.kernel_size
    out = nn.Conv3d(conv.in_channels, conv.out_channels, (time_kernel, kh, kw),
                    stride=(1,) + tuple(conv.stride), padding=(time_kernel // 2,) + tuple(conv.padding),
                    dilation=(1,) + tuple(conv.dilation), groups=conv.groups, bias=conv.bias is not None,
                    device=conv.weight.device, dtype=conv.weight.dtype)
    state = {"weight": torch.einsum("oihw,t->oithw", conv.weight.detach(), taps).clone()}
    if conv.bias is not None:
        state["bias"] = conv.bias.detach().clone()
    out.load_state_dict(state)
    return out
''',
    "build_then_fill_with_data": '''
class BadMethod(ValueError):
    pass


def inflate_conv2d(conv, time_kernel=3, method="average"):
    import copy as _copy
    w = conv.weight.detach().clone()
    if method == "center":
        zeros = torch.zeros_like(w).unsqueeze(2)
        new_w = torch.cat([zeros] * (time_kernel // 2) + [w.unsqueeze(2)] + [zeros] * (time_kernel // 2), dim=2)
    elif method == "average":
        new_w = torch.stack([w / time_kernel for _ in range(time_kernel)], dim=2)
    else:
        raise BadMethod(method)
    c3 = nn.Conv3d(conv.in_channels, conv.out_channels, new_w.shape[2:], stride=(1,) + _pair(conv.stride),
                   padding=(time_kernel // 2,) + _pair(conv.padding), dilation=(1,) + _pair(conv.dilation),
                   groups=conv.groups, bias=conv.bias is not None)
    c3.weight = nn.Parameter(new_w)
    if conv.bias is not None:
        c3.bias = nn.Parameter(_copy.deepcopy(conv.bias.detach()))
    return c3
''',
    "pad_center_and_assign_parameters": '''
def inflate_conv2d(conv, time_kernel=3, method="average"):
    w = conv.weight.detach().unsqueeze(2)                        # (out, in, 1, kh, kw)
    if method == "center":
        w3 = F.pad(w, (0, 0, 0, 0, time_kernel // 2, time_kernel // 2))
    elif method == "average":
        w3 = w.expand(-1, -1, time_kernel, -1, -1) / time_kernel
    else:
        raise ValueError(f"unknown inflation method {method}")
    c3 = nn.Conv3d(conv.in_channels, conv.out_channels, tuple(w3.shape[2:]), stride=(1, *_pair(conv.stride)),
                   padding=(time_kernel // 2, *_pair(conv.padding)), dilation=(1, *_pair(conv.dilation)),
                   groups=conv.groups, bias=conv.bias is not None)
    c3.weight = nn.Parameter(w3.clone())
    if conv.bias is not None:
        c3.bias = nn.Parameter(conv.bias.detach().clone())
    return c3
''',
    "template_default": _inflate(),
}

INFLATE_CONV2D_WRONG = {
    "average_not_divided_by_t": _inflate(scale="w.unsqueeze(2).repeat(1, 1, t, 1, 1)"),
    "center_on_first_tap": _inflate(tap="0"),
    "center_on_last_tap": _inflate(tap="-1"),
    "no_time_padding": _inflate(pad_t="0"),
    "time_padding_t": _inflate(pad_t="t"),
    "bias_dropped": _inflate(bias="False"),
    "bias_not_copied": _inflate(bias_value="torch.zeros_like(conv.bias)"),
    "stride_dropped": _inflate().replace("stride=(1, *conv.stride)", "stride=1"),
    "dilation_dropped": _inflate().replace("dilation=(1, *conv.dilation), ", ""),
    "groups_dropped": _inflate().replace("groups=conv.groups,", "groups=1,"),
    "divides_the_2d_weight_in_place": _inflate(scale="w.unsqueeze(2).repeat(1, 1, t, 1, 1)").replace(
        "w = conv.weight.detach()", "w = conv.weight.data\n    if method == 'average':\n        w.div_(t)"),
    "average_over_t_plus_one": _inflate(scale="w.unsqueeze(2).repeat(1, 1, t, 1, 1) / (t + 1)"),
    "no_validation_unknown_is_center": '''
def inflate_conv2d(conv, time_kernel=3, method="average"):
    t = time_kernel
    c3 = nn.Conv3d(conv.in_channels, conv.out_channels, (t, *conv.kernel_size), (1, *conv.stride),
                   (t // 2, *conv.padding), (1, *conv.dilation), conv.groups, conv.bias is not None)
    with torch.no_grad():
        if method == "average":
            c3.weight.copy_(conv.weight.unsqueeze(2).expand(-1, -1, t, -1, -1) / t)
        else:
            c3.weight.zero_()
            c3.weight[:, :, t // 2] = conv.weight
        if conv.bias is not None:
            c3.bias.copy_(conv.bias)
    return c3
''',
    "shares_the_2d_weight": '''
def inflate_conv2d(conv, time_kernel=3, method="average"):
    if method not in ("average", "center"):
        raise ValueError(method)
    t = time_kernel
    c3 = nn.Conv3d(conv.in_channels, conv.out_channels, (t, *conv.kernel_size), (1, *conv.stride),
                   (t // 2, *conv.padding), (1, *conv.dilation), conv.groups, conv.bias is not None)
    if method == "average" and t > 1:
        c3.weight = nn.Parameter(conv.weight.detach().unsqueeze(2).repeat(1, 1, t, 1, 1) / t)
    elif method == "average":
        c3.weight = nn.Parameter(conv.weight.detach().unsqueeze(2))
    else:
        with torch.no_grad():
            c3.weight.zero_()
            c3.weight[:, :, t // 2] = conv.weight
    if conv.bias is not None:
        c3.bias = conv.bias
    return c3
''',
    # issue 24: a loose reading of "stride (1, sh, sw), dilation (1, dh, dw)" copies the 2D value into time too
    "time_stride_copied": _inflate().replace("stride=(1, *conv.stride)", "stride=(conv.stride[0], *conv.stride)"),
    "time_dilation_copied": _inflate().replace("dilation=(1, *conv.dilation)",
                                               "dilation=(conv.dilation[0], *conv.dilation)"),
    "square_stride_assumed": _inflate().replace("stride=(1, *conv.stride)",
                                                "stride=(1, conv.stride[0], conv.stride[0])"),
    "square_padding_assumed": _inflate().replace("padding=(t // 2, *conv.padding)",
                                                 "padding=(t // 2, conv.padding[0], conv.padding[0])"),
    "dtype_not_followed": _inflate().replace(".to(conv.weight.device, conv.weight.dtype)", ""),
    "frozen_inflated_weight": _inflate().replace("    return c3", "    c3.weight.requires_grad_(False)\n    return c3"),
    "method_case_insensitive": _inflate().replace("    if method not in", "    method = method.lower()\n    if method not in"),
}

# ----------------------------------------------------------------------------- inflate_model

_MODEL_OK = '''
def inflate_model(model2d, time_kernel=DEFAULT, method="average"):
    model = COPY(model2d)

    def swap(parent):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.Conv2d):
                k = child.kernel_size
                setattr(parent, name, inflate_conv2d(child, TK, METHOD))
            elif isinstance(child, nn.BatchNorm2d):
                bn = nn.BatchNorm3d(child.num_features, EPS, MOMENTUM)
                STATE
                setattr(parent, name, bn)
            elif isinstance(child, nn.MaxPool2d):
                k, s, p = (_pair(v) for v in (child.kernel_size, child.stride, child.padding))
                setattr(parent, name, POOL)
            elif isinstance(child, nn.AdaptiveAvgPool2d):
                setattr(parent, name, nn.AdaptiveAvgPool3d((1, *_pair(child.output_size))))
            else:
                RECURSE

    swap(model)
    return model
'''


_TK = "(1 if k == (1, 1) else k[0] if time_kernel is None else time_kernel)"


def _model(copy_fn="copy.deepcopy", tk=_TK, method="method", eps="child.eps", momentum="child.momentum",
           state="bn.load_state_dict(child.state_dict())", pool="nn.MaxPool3d((1, *k), (1, *s), (0, *p))",
           recurse="swap(child)", default="None"):
    return (_MODEL_OK.replace("DEFAULT", default).replace("COPY", copy_fn).replace("TK", tk).replace("METHOD", method).replace("EPS", eps)
            .replace("MOMENTUM", momentum).replace("STATE", state).replace("POOL", pool).replace("RECURSE", recurse))


INFLATE_MODEL_CORRECT = {
    "named_modules_and_get_submodule": '''
def inflate_model(model2d, time_kernel=None, method="average"):
    model = copy.deepcopy(model2d)
    for name, mod in list(model.named_modules()):
        if not name:
            continue
        parent_name, _, attr = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        if isinstance(mod, nn.Conv2d):
            kh, kw = mod.kernel_size
            t = 1 if kh == kw == 1 else (time_kernel or kh)
            new = inflate_conv2d(mod, t, method)
        elif isinstance(mod, nn.BatchNorm2d):
            new = nn.BatchNorm3d(mod.num_features, eps=mod.eps, momentum=mod.momentum)
            with torch.no_grad():
                new.weight.copy_(mod.weight)
                new.bias.copy_(mod.bias)
                new.running_mean.copy_(mod.running_mean)
                new.running_var.copy_(mod.running_var)
                new.num_batches_tracked.copy_(mod.num_batches_tracked)
        elif isinstance(mod, nn.MaxPool2d):
            k, s, p = _pair(mod.kernel_size), _pair(mod.stride), _pair(mod.padding)
            new = nn.MaxPool3d(kernel_size=(1, k[0], k[1]), stride=(1, s[0], s[1]), padding=(0, p[0], p[1]))
        elif isinstance(mod, nn.AdaptiveAvgPool2d):
            new = nn.AdaptiveAvgPool3d(1)
        else:
            continue
        setattr(parent, attr, new)
    return model
''',
    "recursive_rebuild": '''
def _inflate_layer(m, t, method):
    if isinstance(m, nn.Conv2d):
        if max(m.kernel_size) == 1:
            return inflate_conv2d(m, 1, method)
        return inflate_conv2d(m, m.kernel_size[0] if t is None else t, method)
    if isinstance(m, nn.BatchNorm2d):
        b = nn.BatchNorm3d(m.num_features, m.eps, m.momentum, m.affine, m.track_running_stats)
        b.load_state_dict(m.state_dict())
        return b
    if isinstance(m, nn.MaxPool2d):
        return nn.MaxPool3d((1,) + _pair(m.kernel_size), (1,) + _pair(m.stride), (0,) + _pair(m.padding),
                            (1,) + _pair(m.dilation), m.return_indices, m.ceil_mode)
    if isinstance(m, nn.AdaptiveAvgPool2d):
        return nn.AdaptiveAvgPool3d((1,) + _pair(m.output_size))
    for name, child in m._modules.items():
        if child is not None:
            m._modules[name] = _inflate_layer(child, t, method)
    return m


def inflate_model(model2d, time_kernel=None, method="average"):
    return _inflate_layer(copy.deepcopy(model2d), time_kernel, method)
''',
    "template_default": _model(),
    # the official I3D / pytorch-i3d way, written with its own time-extent helper: N x N -> N x N x N,
    # every 1x1 conv stays 1x1x1 (the contract's default), an int time_kernel for the convs larger than 1x1
    "i3d_cube_rule_helper": _model(tk="_i3d_t(k, time_kernel)").replace(
        "\ndef inflate_model", "\ndef _i3d_t(k, t):\n    return k[0] if k[0] == 1 or t is None else t\n\n\ndef inflate_model"),
}

INFLATE_MODEL_WRONG = {
    "running_stats_not_carried": _model(state="bn.weight.data.copy_(child.weight.data); bn.bias.data.copy_(child.bias.data)"),
    "bn_affine_not_carried": _model(state="bn.running_mean.copy_(child.running_mean); bn.running_var.copy_(child.running_var)"),
    "maxpool_not_inflated": _model(pool="child"),
    "maxpool_pools_time_too": _model(pool="nn.MaxPool3d((k[0], *k), (s[0], *s), (p[0], *p))"),
    "method_not_passed": _model(method='"average"'),
    "time_kernel_fixed_3": _model(tk="(1 if k == (1, 1) else 3)"),
    # issue 25: the lab's former convention, every conv (1x1 shortcuts too) gets time_kernel: 1x1 -> 3x1x1
    "every_conv_gets_time_kernel": _model(tk="(k[0] if time_kernel is None else time_kernel)"),
    "shortcuts_3x1x1_stem_i3d": _model(tk="(3 if k == (1, 1) else k[0] if time_kernel is None else time_kernel)"),
    "default_time_kernel_3": _model(default="3"),
    "i3d_rule_ignores_time_kernel": _model(tk="(1 if k == (1, 1) else k[0])"),
    "no_recursion": _model(recurse="pass"),
    "in_place_no_copy": _model(copy_fn="(lambda m: m)"),
    "shallow_copy": _model(copy_fn="copy.copy"),
    "eps_not_carried": _model(eps="1e-5"),
    # issue 24
    "momentum_not_carried": _model(momentum="0.1"),
    "avgpool_keeps_time": _model().replace("nn.AdaptiveAvgPool3d((1, *_pair(child.output_size)))",
                                           "nn.AdaptiveAvgPool3d((None, *_pair(child.output_size)))"),
    "maxpool_padding_dropped": _model(pool="nn.MaxPool3d((1, *k), (1, *s))"),
    "setattr_dotted_names": '''
def inflate_model(model2d, time_kernel=None, method="average"):
    model = copy.deepcopy(model2d)
    for name, mod in list(model.named_modules()):
        if isinstance(mod, nn.Conv2d):
            t = 1 if mod.kernel_size == (1, 1) else (time_kernel or mod.kernel_size[0])
            setattr(model, name, inflate_conv2d(mod, t, method))
        elif isinstance(mod, nn.BatchNorm2d):
            bn = nn.BatchNorm3d(mod.num_features, mod.eps, mod.momentum)
            bn.load_state_dict(mod.state_dict())
            setattr(model, name, bn)
        elif isinstance(mod, nn.MaxPool2d):
            k, s, p = (_pair(v) for v in (mod.kernel_size, mod.stride, mod.padding))
            setattr(model, name, nn.MaxPool3d((1, *k), (1, *s), (0, *p)))
        elif isinstance(mod, nn.AdaptiveAvgPool2d):
            setattr(model, name, nn.AdaptiveAvgPool3d((1, *_pair(mod.output_size))))
    return model
''',
    "bn_shares_the_2d_models_parameters": '''
def inflate_model(model2d, time_kernel=None, method="average"):
    model = copy.deepcopy(model2d)
    originals = dict(model2d.named_modules())
    for name, mod in list(model.named_modules()):
        if not name:
            continue
        parent_name, _, attr = name.rpartition(".")
        parent = model.get_submodule(parent_name)
        src = originals[name]
        if isinstance(mod, nn.Conv2d):
            t = 1 if src.kernel_size == (1, 1) else (time_kernel or src.kernel_size[0])
            new = inflate_conv2d(src, t, method)
        elif isinstance(mod, nn.BatchNorm2d):
            new = nn.BatchNorm3d(src.num_features, src.eps, src.momentum)
            new.weight, new.bias = src.weight, src.bias              # the 2D model's own parameters and statistics
            new.running_mean, new.running_var = src.running_mean, src.running_var
        elif isinstance(mod, nn.MaxPool2d):
            k, s, p = (_pair(v) for v in (src.kernel_size, src.stride, src.padding))
            new = nn.MaxPool3d((1, *k), (1, *s), (0, *p))
        elif isinstance(mod, nn.AdaptiveAvgPool2d):
            new = nn.AdaptiveAvgPool3d((1, *_pair(src.output_size)))
        else:
            continue
        setattr(parent, attr, new)
    return model
''',
}

# ----------------------------------------------------------------------------- midplanes

MIDPLANES_CORRECT = {
    "math_floor": '''
import math


def midplanes(in_channels, out_channels, kernel_size=3, time_kernel=3):
    k2 = kernel_size ** 2
    return math.floor(time_kernel * k2 * in_channels * out_channels / (k2 * in_channels + time_kernel * out_channels))
''',
    "int_truncation": '''
def midplanes(in_channels, out_channels, kernel_size=3, time_kernel=3):
    n3d = time_kernel * kernel_size * kernel_size * in_channels * out_channels   # the 3D conv's parameters
    per_plane = kernel_size * kernel_size * in_channels + time_kernel * out_channels
    return int(n3d / per_plane)
''',
    "numpy_int": '''
import numpy as np


def midplanes(in_channels, out_channels, kernel_size=3, time_kernel=3):
    num = np.int64(time_kernel) * kernel_size ** 2 * in_channels * out_channels
    return num // (kernel_size ** 2 * in_channels + time_kernel * out_channels)
''',
}

MIDPLANES_WRONG = {
    "round": '''
def midplanes(in_channels, out_channels, kernel_size=3, time_kernel=3):
    k2 = kernel_size ** 2
    return round(time_kernel * k2 * in_channels * out_channels / (k2 * in_channels + time_kernel * out_channels))
''',
    "ceil": '''
import math


def midplanes(in_channels, out_channels, kernel_size=3, time_kernel=3):
    k2 = kernel_size ** 2
    return math.ceil(time_kernel * k2 * in_channels * out_channels / (k2 * in_channels + time_kernel * out_channels))
''',
    "swapped_in_out_in_denominator": '''
def midplanes(in_channels, out_channels, kernel_size=3, time_kernel=3):
    k2 = kernel_size ** 2
    return (time_kernel * k2 * in_channels * out_channels) // (k2 * out_channels + time_kernel * in_channels)
''',
    "k_not_squared": '''
def midplanes(in_channels, out_channels, kernel_size=3, time_kernel=3):
    k = kernel_size
    return (time_kernel * k * in_channels * out_channels) // (k * in_channels + time_kernel * out_channels)
''',
    "returns_float": '''
def midplanes(in_channels, out_channels, kernel_size=3, time_kernel=3):
    k2 = kernel_size ** 2
    return (time_kernel * k2 * in_channels * out_channels) / (k2 * in_channels + time_kernel * out_channels)
''',
    "swapped_parameter_order": '''
def midplanes(in_channels, out_channels, time_kernel=3, kernel_size=3):
    k2 = kernel_size ** 2
    return (time_kernel * k2 * in_channels * out_channels) // (k2 * in_channels + time_kernel * out_channels)
''',
    "t_missing_in_numerator": '''
def midplanes(in_channels, out_channels, kernel_size=3, time_kernel=3):
    k2 = kernel_size ** 2
    return (k2 * in_channels * out_channels) // (k2 * in_channels + time_kernel * out_channels)
''',
    "default_kernel_1": '''
def midplanes(in_channels, out_channels, kernel_size=1, time_kernel=3):
    k2 = kernel_size ** 2
    return (time_kernel * k2 * in_channels * out_channels) // (k2 * in_channels + time_kernel * out_channels)
''',
    # issue 24
    "returns_tensor": '''
def midplanes(in_channels, out_channels, kernel_size=3, time_kernel=3):
    k2 = kernel_size ** 2
    num = torch.tensor(time_kernel * k2 * in_channels * out_channels)
    return torch.div(num, k2 * in_channels + time_kernel * out_channels, rounding_mode="floor")
''',
    "missing_parentheses": '''
def midplanes(in_channels, out_channels, kernel_size=3, time_kernel=3):
    k2 = kernel_size ** 2
    return time_kernel * k2 * in_channels * out_channels // k2 * in_channels + time_kernel * out_channels
''',
}

# ----------------------------------------------------------------------------- Conv2Plus1d

_C21_OK = '''
class Conv2Plus1d(nn.Module):
    def __init__(self, in_channels, out_channels, kernel_size=3, time_kernel=3, stride=1, padding=1):
        super().__init__()
        st, sh, sw = _triple(stride)
        pt, ph, pw = _triple(padding)
        m = MID
        self.spatial = nn.Conv3d(in_channels, m, (1, kernel_size, kernel_size), SP_STRIDE, SP_PAD, bias=SP_BIAS)
        self.bn = BN
        self.relu = nn.ReLU()
        self.temporal = nn.Conv3d(m, out_channels, (time_kernel, 1, 1), TM_STRIDE, TM_PAD, bias=TM_BIAS)

    def forward(self, x):
        return FORWARD
'''


def _c21(mid="midplanes(in_channels, out_channels, kernel_size, time_kernel)", sp_stride="(1, sh, sw)",
         sp_pad="(0, ph, pw)", sp_bias="False", bn="nn.BatchNorm3d(m)", tm_stride="(st, 1, 1)", tm_pad="(pt, 0, 0)",
         tm_bias="False", forward="self.temporal(self.relu(self.bn(self.spatial(x))))"):
    return (_C21_OK.replace("MID", mid).replace("SP_STRIDE", sp_stride).replace("SP_PAD", sp_pad)
            .replace("SP_BIAS", sp_bias).replace("BN", bn).replace("TM_STRIDE", tm_stride).replace("TM_PAD", tm_pad)
            .replace("TM_BIAS", tm_bias).replace("FORWARD", forward))


CONV2PLUS1D_CORRECT = {
    "sequential": '''
class Conv2Plus1d(nn.Module):
    def __init__(self, in_channels, out_channels, kernel_size=3, time_kernel=3, stride=1, padding=1):
        super().__init__()
        s = stride if isinstance(stride, (tuple, list)) else (stride,) * 3
        p = padding if isinstance(padding, (tuple, list)) else (padding,) * 3
        mid = midplanes(in_channels, out_channels, kernel_size, time_kernel)
        self.block = nn.Sequential(
            nn.Conv3d(in_channels, mid, kernel_size=(1, kernel_size, kernel_size), stride=(1, s[1], s[2]),
                      padding=(0, p[1], p[2]), bias=False),
            nn.BatchNorm3d(mid),
            nn.ReLU(inplace=True),
            nn.Conv3d(mid, out_channels, kernel_size=(time_kernel, 1, 1), stride=(s[0], 1, 1),
                      padding=(p[0], 0, 0), bias=False),
        )

    def forward(self, x):
        return self.block(x)
''',
    "functional_with_raw_weights": '''
class Conv2Plus1d(nn.Module):
    def __init__(self, in_channels, out_channels, kernel_size=3, time_kernel=3, stride=1, padding=1):
        super().__init__()
        self.stride, self.padding = _triple(stride), _triple(padding)
        k2 = kernel_size * kernel_size
        m = (time_kernel * k2 * in_channels * out_channels) // (k2 * in_channels + time_kernel * out_channels)
        self.w_t = nn.Parameter(torch.empty(out_channels, m, time_kernel, 1, 1))      # declared first
        self.w_s = nn.Parameter(torch.empty(m, in_channels, 1, kernel_size, kernel_size))
        nn.init.kaiming_uniform_(self.w_s, a=5 ** 0.5)
        nn.init.kaiming_uniform_(self.w_t, a=5 ** 0.5)
        self.norm = nn.BatchNorm3d(m)

    def forward(self, x):
        st, sh, sw = self.stride
        pt, ph, pw = self.padding
        h = F.conv3d(x, self.w_s, None, (1, sh, sw), (0, ph, pw))
        h = torch.relu(self.norm(h))
        return F.conv3d(h, self.w_t, None, (st, 1, 1), (pt, 0, 0))
''',
    "module_dict": '''
class Conv2Plus1d(nn.Module):
    def __init__(self, in_channels, out_channels, kernel_size=3, time_kernel=3, stride=1, padding=1):
        super().__init__()
        (st, sh, sw), (pt, ph, pw) = _triple(stride), _triple(padding)
        mid = midplanes(in_channels, out_channels, kernel_size, time_kernel)
        self.parts = nn.ModuleDict({
            "t": nn.Conv3d(mid, out_channels, (time_kernel, 1, 1), (st, 1, 1), (pt, 0, 0), bias=False),
            "s": nn.Conv3d(in_channels, mid, (1, kernel_size, kernel_size), (1, sh, sw), (0, ph, pw), bias=False),
            "n": nn.BatchNorm3d(mid),
        })

    def forward(self, x):
        return self.parts["t"](F.relu(self.parts["n"](self.parts["s"](x))))
''',
    "template_default": _c21(),
}

CONV2PLUS1D_WRONG = {
    "no_relu_biases_on": _c21(sp_bias="True", tm_bias="True", forward="self.temporal(self.bn(self.spatial(x)))"),
    "no_relu": _c21(forward="self.temporal(self.bn(self.spatial(x)))"),
    "relu_after_temporal": _c21(forward="self.relu(self.temporal(self.bn(self.spatial(x))))"),
    "relu_before_bn": _c21(forward="self.temporal(self.bn(self.relu(self.spatial(x))))"),
    "wrong_m_swapped_channels": _c21(mid="midplanes(out_channels, in_channels, kernel_size, time_kernel)"),
    "wrong_m_out_channels": _c21(mid="out_channels"),
    "temporal_first": '''
class Conv2Plus1d(nn.Module):
    def __init__(self, in_channels, out_channels, kernel_size=3, time_kernel=3, stride=1, padding=1):
        super().__init__()
        st, sh, sw = _triple(stride)
        pt, ph, pw = _triple(padding)
        m = midplanes(in_channels, out_channels, kernel_size, time_kernel)
        self.temporal = nn.Conv3d(in_channels, m, (time_kernel, 1, 1), (st, 1, 1), (pt, 0, 0), bias=False)
        self.bn = nn.BatchNorm3d(m)
        self.spatial = nn.Conv3d(m, out_channels, (1, kernel_size, kernel_size), (1, sh, sw), (0, ph, pw), bias=False)

    def forward(self, x):
        return self.spatial(torch.relu(self.bn(self.temporal(x))))
''',
    "stride_on_both_convs": _c21(sp_stride="(st, sh, sw)"),
    "temporal_stride_on_spatial_conv": _c21(sp_stride="(st, sh, sw)", tm_stride="1"),
    "padding_ignored": _c21(sp_pad="(0, kernel_size // 2, kernel_size // 2)", tm_pad="(time_kernel // 2, 0, 0)"),
    "full_padding_on_spatial_conv": _c21(sp_pad="(pt, ph, pw)", tm_pad="(pt, 0, 0)"),
    "no_batchnorm": _c21(bn="nn.Identity()"),
    "batchnorm_on_output_channels": _c21(bn="nn.BatchNorm3d(out_channels)",
                                         forward="self.bn(self.temporal(self.relu(self.spatial(x))))"),
    "bias_on_spatial_conv": _c21(sp_bias="True"),
    "bias_on_temporal_conv": _c21(tm_bias="True"),
    "modifies_input": _c21(forward="self.temporal(self.relu(self.bn(self.spatial(x.relu_()))))"),
    "batchnorm_without_affine": _c21(bn="nn.BatchNorm3d(m, affine=False)"),
    # issue 24
    "triples_read_as_h_w_t": _c21().replace("st, sh, sw = _triple(stride)", "sh, sw, st = _triple(stride)")
                                     .replace("pt, ph, pw = _triple(padding)", "ph, pw, pt = _triple(padding)"),
    "midplanes_k_and_t_swapped": _c21(mid="midplanes(in_channels, out_channels, time_kernel, kernel_size)"),
    "extra_batchnorm_after_temporal": _c21(forward="self.bn2(self.temporal(self.relu(self.bn(self.spatial(x)))))")
                                      .replace("        self.relu = nn.ReLU()",
                                               "        self.relu = nn.ReLU()\n        self.bn2 = nn.BatchNorm3d(out_channels)"),
    "instance_norm": _c21(bn="nn.InstanceNorm3d(m, affine=True)"),
    "batchnorm_without_running_stats": _c21(bn="nn.BatchNorm3d(m, track_running_stats=False)"),
    "batchnorm_eps_and_momentum_changed": _c21(bn="nn.BatchNorm3d(m, eps=1e-3, momentum=0.01)"),
    "midplanes_with_default_sizes": _c21(mid="midplanes(in_channels, out_channels)"),
    "default_padding_0": _c21().replace("stride=1, padding=1):", "stride=1, padding=0):"),
}

# ----------------------------------------------------------------------------- decompose_conv3d

_DEC_OK = '''
def decompose_conv3d(conv, rank):
    w = conv.weight.detach()
    co, ci, t, kh, kw = w.shape
    a = w.permute(0, 2, 1, 3, 4).reshape(co * t, ci * kh * kw)
    u, s, vh = torch.linalg.svd(a, full_matrices=False)
    st, sh, sw = conv.stride
    pt, ph, pw = conv.padding
    spatial = nn.Conv3d(ci, rank, (1, kh, kw), SP_STRIDE, (0, ph, pw), bias=SP_BIAS)
    temporal = nn.Conv3d(rank, co, (t, 1, 1), TM_STRIDE, (pt, 0, 0), bias=TM_BIAS)
    with torch.no_grad():
        spatial.weight.copy_(SPATIAL_W.reshape(rank, ci, 1, kh, kw))
        us = TEMPORAL_US.reshape(co, t, rank)
        temporal.weight.copy_(us.permute(0, 2, 1).reshape(co, rank, t, 1, 1))
        if conv.bias is not None and temporal.bias is not None:
            temporal.bias.copy_(conv.bias.detach())
        if spatial.bias is not None:
            spatial.bias.copy_(BIAS_SP)
    return nn.Sequential(spatial, temporal)
'''


def _dec(sp_stride="(1, sh, sw)", tm_stride="(st, 1, 1)", sp_bias="False", tm_bias="conv.bias is not None",
         spatial_w="vh[:rank]", temporal_us="(u[:, :rank] * s[:rank])", bias_sp="torch.zeros(rank)"):
    return (_DEC_OK.replace("SP_STRIDE", sp_stride).replace("TM_STRIDE", tm_stride).replace("SP_BIAS", sp_bias)
            .replace("TM_BIAS", tm_bias).replace("SPATIAL_W", spatial_w).replace("TEMPORAL_US", temporal_us)
            .replace("BIAS_SP", bias_sp))


DECOMPOSE_CORRECT = {
    "sqrt_split_and_torch_svd": '''
def decompose_conv3d(conv, rank):
    w = conv.weight.detach()
    co, ci, t, kh, kw = w.shape
    a = w.transpose(1, 2).reshape(co * t, -1)
    u, s, v = torch.svd(a)                         # deprecated API: v, not vh
    root = s[:rank].sqrt()
    spatial_w = (v[:, :rank] * root).t().reshape(rank, ci, 1, kh, kw)
    temporal_w = (u[:, :rank] * root).reshape(co, t, rank).transpose(1, 2).reshape(co, rank, t, 1, 1)
    spatial = nn.Conv3d(ci, rank, (1, kh, kw), stride=(1, conv.stride[1], conv.stride[2]),
                        padding=(0, conv.padding[1], conv.padding[2]), bias=False)
    temporal = nn.Conv3d(rank, co, (t, 1, 1), stride=(conv.stride[0], 1, 1), padding=(conv.padding[0], 0, 0),
                         bias=conv.bias is not None)
    spatial.weight = nn.Parameter(spatial_w.contiguous())
    temporal.weight = nn.Parameter(temporal_w.contiguous())
    if conv.bias is not None:
        temporal.bias = nn.Parameter(conv.bias.detach().clone())
    return nn.Sequential(spatial, temporal)
''',
    "time_padding_on_spatial_conv_loops": '''
def decompose_conv3d(conv, rank):
    w = conv.weight.detach()
    co, ci, t, kh, kw = w.shape
    rows = torch.stack([w[o, :, tau].reshape(-1) for o in range(co) for tau in range(t)])
    u, s, vh = torch.linalg.svd(rows.double(), full_matrices=True)
    u, s, vh = u.float(), s.float(), vh.float()
    # zero padding in time moved to the bias-free spatial conv: the same output
    spatial = nn.Conv3d(ci, rank, (1, kh, kw), (1, *conv.stride[1:]), tuple(conv.padding), bias=False)
    temporal = nn.Conv3d(rank, co, (t, 1, 1), (conv.stride[0], 1, 1), 0, bias=conv.bias is not None)
    with torch.no_grad():
        for j in range(rank):
            spatial.weight[j, :, 0] = vh[j].reshape(ci, kh, kw)
            for o in range(co):
                for tau in range(t):
                    temporal.weight[o, j, tau, 0, 0] = u[o * t + tau, j] * s[j]
        if conv.bias is not None:
            temporal.bias.copy_(conv.bias)
    return nn.Sequential(spatial, temporal)
''',
    "columns_ordered_y_x_i": '''
def decompose_conv3d(conv, rank):
    w = conv.weight.detach()
    co, ci, t, kh, kw = w.shape
    a = w.permute(0, 2, 3, 4, 1).reshape(co * t, kh * kw * ci)          # columns (y, x, i): the same matrix, reordered
    u, s, vh = torch.linalg.svd(a, full_matrices=False)
    sp_w = vh[:rank].reshape(rank, kh, kw, ci).permute(0, 3, 1, 2).unsqueeze(2)
    tm_w = (u[:, :rank] * s[:rank]).reshape(co, t, rank).permute(0, 2, 1)[..., None, None]
    spatial = nn.Conv3d(ci, rank, (1, kh, kw), (1, *conv.stride[1:]), (0, *conv.padding[1:]), bias=False)
    temporal = nn.Conv3d(rank, co, (t, 1, 1), (conv.stride[0], 1, 1), (conv.padding[0], 0, 0),
                         bias=conv.bias is not None)
    spatial.weight = nn.Parameter(sp_w.contiguous())
    temporal.weight = nn.Parameter(tm_w.contiguous())
    if conv.bias is not None:
        temporal.bias = nn.Parameter(conv.bias.detach().clone())
    return nn.Sequential(spatial, temporal)
''',
    "named_sequential": _dec().replace("    return nn.Sequential(spatial, temporal)",
                                       "    from collections import OrderedDict\n"
                                       "    return nn.Sequential(OrderedDict(spatial=spatial, temporal=temporal))"),
    "template_default": _dec(),
    "svd_of_the_transpose": _dec().replace(
        "u, s, vh = torch.linalg.svd(a, full_matrices=False)",
        "v, s, uh = torch.linalg.svd(a.t(), full_matrices=False)\n    u, vh = uh.t(), v.t()"),
}

DECOMPOSE_WRONG = {
    "u_and_v_swapped": _dec(spatial_w="u[:, :rank].t()", temporal_us="(vh[:rank].t() * s[:rank])"),
    "without_singular_values": _dec(temporal_us="u[:, :rank]"),
    "reshape_without_permute": _dec().replace("w.permute(0, 2, 1, 3, 4).reshape", "w.reshape"),
    "random_bias_left_on_spatial_conv": _dec(sp_bias="True", bias_sp="spatial.bias.clone()"),
    "bias_moved_to_spatial_conv": _dec(sp_bias="True", tm_bias="False",
                                       bias_sp="conv.bias.detach()[:1].expand(rank) / 3 if conv.bias is not None else torch.zeros(rank)"),
    "strides_all_on_spatial_conv": _dec(sp_stride="(st, sh, sw)", tm_stride="1"),
    "smallest_singular_values": _dec(spatial_w="vh[-rank:]", temporal_us="(u[:, -rank:] * s[-rank:])"),
    "temporal_weight_not_transposed": _dec().replace("us.permute(0, 2, 1).reshape(co, rank, t, 1, 1)",
                                                     "us.reshape(co, rank, t, 1, 1)"),
    "bias_dropped": _dec(tm_bias="False"),
    "singular_values_on_both": _dec(spatial_w="(s[:rank, None] * vh[:rank])"),
    "writes_the_approximation_back": _dec().replace(
        "    return nn.Sequential(spatial, temporal)",
        "        approx = (u[:, :rank] * s[:rank]) @ vh[:rank]\n"
        "        conv.weight.copy_(approx.reshape(co, t, ci, kh, kw).permute(0, 2, 1, 3, 4))\n"
        "    return nn.Sequential(spatial, temporal)"),
    # issue 24
    "strides_dropped": _dec(sp_stride="1", tm_stride="1"),
    "spatial_padding_on_temporal_conv": _dec().replace("(0, ph, pw), bias=False", "0, bias=False")
                                        .replace("(pt, 0, 0), bias=conv", "(pt, ph, pw), bias=conv"),
    "zero_bias_on_spatial_conv": _dec(sp_bias="True"),
    "rows_read_as_tau_o": _dec().replace(".reshape(co, t, rank)", ".reshape(t, co, rank)"),
    "zeroes_the_tail_keeps_full_width": '''
def decompose_conv3d(conv, rank):
    w = conv.weight.detach()
    co, ci, t, kh, kw = w.shape
    a = w.permute(0, 2, 1, 3, 4).reshape(co * t, ci * kh * kw)
    u, s, vh = torch.linalg.svd(a, full_matrices=False)
    s = torch.where(torch.arange(len(s)) < rank, s, torch.zeros_like(s))    # rank r: the other values zeroed
    r = len(s)
    spatial = nn.Conv3d(ci, r, (1, kh, kw), (1, *conv.stride[1:]), (0, *conv.padding[1:]), bias=False)
    temporal = nn.Conv3d(r, co, (t, 1, 1), (conv.stride[0], 1, 1), (conv.padding[0], 0, 0), bias=conv.bias is not None)
    with torch.no_grad():
        spatial.weight.copy_(vh.reshape(r, ci, 1, kh, kw))
        temporal.weight.copy_((u * s).reshape(co, t, r).permute(0, 2, 1).reshape(co, r, t, 1, 1))
        if conv.bias is not None:
            temporal.bias.copy_(conv.bias)
    return nn.Sequential(spatial, temporal)
''',
}

EXERCISES = {
    "inflate_conv2d": {
        "grades": ["test_inflate_conv2d", "test_inflate_conv2d_errors"],
        "correct": INFLATE_CONV2D_CORRECT,
        "wrong": INFLATE_CONV2D_WRONG,
    },
    "inflate_model": {
        "grades": ["test_inflate_model"],
        "correct": INFLATE_MODEL_CORRECT,
        "wrong": INFLATE_MODEL_WRONG,
    },
    "midplanes": {
        "grades": ["test_midplanes"],
        "correct": MIDPLANES_CORRECT,
        "wrong": MIDPLANES_WRONG,
    },
    "Conv2Plus1d": {
        "grades": ["test_Conv2Plus1d"],
        "correct": CONV2PLUS1D_CORRECT,
        "wrong": CONV2PLUS1D_WRONG,
    },
    "decompose_conv3d": {
        "grades": ["test_decompose_conv3d"],
        "correct": DECOMPOSE_CORRECT,
        "wrong": DECOMPOSE_WRONG,
    },
}
