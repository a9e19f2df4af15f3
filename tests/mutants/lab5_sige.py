"""Mutants of Lab 5's exercises (format: tests/mutation.py).

Correct alternatives must score full points on every grade cell — including the speed grade, so
they are vectorised (a Python loop over every pixel is correct but fails the speed test by design,
as the notebook says). Plausible wrong answers must lose points on their exercise's grade cells.
"""

# ---------------------------------------------------------------- incremental_conv

_IC = '''
def incremental_conv(conv, x_old, y_old, x_new):
{body}
'''

INCREMENTAL_CORRECT = {
    "functional_conv_all_parameters": _IC.format(body='''    return F.conv2d(x_new - x_old, conv.weight, None, conv.stride, conv.padding, conv.dilation, conv.groups) + y_old'''),
    "module_call_minus_bias": _IC.format(body='''    out = y_old + conv(x_new - x_old)
    if conv.bias is not None:
        out = out - conv.bias.view(1, -1, 1, 1)
    return out'''),
    "conv_forward_without_bias": _IC.format(body='''    return y_old + conv._conv_forward(x_new - x_old, conv.weight, None)'''),
}

INCREMENTAL_WRONG = {
    "bias_added_twice": _IC.format(body='''    return y_old + conv(x_new - x_old)'''),
    "difference_reversed": _IC.format(body='''    return y_old + F.conv2d(x_old - x_new, conv.weight, None, conv.stride, conv.padding, conv.dilation, conv.groups)'''),
    "stride_ignored": _IC.format(body='''    return y_old + F.conv2d(x_new - x_old, conv.weight, None, 1, conv.padding, conv.dilation, conv.groups)'''),
    "padding_ignored": _IC.format(body='''    return y_old + F.conv2d(x_new - x_old, conv.weight, None, conv.stride, 0, conv.dilation, conv.groups)'''),
    "dilation_ignored": _IC.format(body='''    return y_old + F.conv2d(x_new - x_old, conv.weight, None, conv.stride, conv.padding, 1, conv.groups)'''),
    "groups_ignored": _IC.format(body='''    w = conv.weight.repeat(1, conv.groups, 1, 1) if conv.groups > 1 else conv.weight
    return y_old + F.conv2d(x_new - x_old, w, None, conv.stride, conv.padding, conv.dilation)'''),
    "modifies_x_new": _IC.format(body='''    delta = x_new.sub_(x_old)
    return y_old + F.conv2d(delta, conv.weight, None, conv.stride, conv.padding, conv.dilation, conv.groups)'''),
    # right whenever y_old is exactly conv(x_old), but ignores the cache it is given (the contract:
    # y_old + W * (x_new - x_old))
    "recomputes_from_scratch": _IC.format(body='''    return conv(x_new)'''),
    "forgets_the_cache": _IC.format(body='''    return F.conv2d(x_new - x_old, conv.weight, conv.bias, conv.stride, conv.padding, conv.dilation, conv.groups)'''),
}

# ---------------------------------------------------------------- active_tiles

_AT = '''
def active_tiles(changed, kernel_size, stride, padding, tile):
    H, W = changed.shape
    k, s, p, t = kernel_size, stride, padding, tile
    Ho, Wo = (H + 2 * p - k) // s + 1, (W + 2 * p - k) // s + 1
    nh, nw = -(-Ho // t), -(-Wo // t)
    b, step = (t - 1) * s + k, t * s
{body}
'''

# the block-minimal answer by a max-pool over the whole (padded) mask
_MAXPOOL = '''    pad_b = max(0, (nh - 1) * step + b - p - H)
    pad_r = max(0, (nw - 1) * step + b - p - W)
    m = F.pad(changed[None, None].float(), (p, pad_r, p, pad_b))
    return F.max_pool2d(m, b, step)[0, 0, :nh, :nw].nonzero()'''

ACTIVE_CORRECT = {
    "maxpool_over_the_whole_mask": _AT.format(body=_MAXPOOL),
    "unfold_blocks_any": _AT.format(body='''    pad_b = max(0, (nh - 1) * step + b - p - H)
    pad_r = max(0, (nw - 1) * step + b - p - W)
    m = F.pad(changed[None, None].float(), (p, pad_r, p, pad_b))
    cols = F.unfold(m, b, stride=step)                                  # (1, b*b, L)
    hh = (m.shape[-2] - b) // step + 1
    ww = (m.shape[-1] - b) // step + 1
    hit = cols[0].amax(0).view(hh, ww)[:nh, :nw] > 0
    return hit.nonzero()'''),
    "cover_set_from_the_reach": _AT.format(body='''    reach = F.max_pool2d(F.pad(changed[None, None].float(), (p, p, p, p)), k, s)[0, 0]    # (Ho, Wo)
    reach = F.pad(reach, (0, nw * t - Wo, 0, nh * t - Ho))
    return (reach.view(nh, t, nw, t).amax(dim=(1, 3)) > 0).nonzero()'''),
}

ACTIVE_WRONG = {
    "no_halo": _AT.format(body='''    b = step
    ''' + _MAXPOOL.strip()),
    "padding_shift_ignored": _AT.format(body='''    pad_b = max(0, (nh - 1) * step + b - H)
    pad_r = max(0, (nw - 1) * step + b - W)
    m = F.pad(changed[None, None].float(), (0, pad_r, 0, pad_b))
    return F.max_pool2d(m, b, step)[0, 0, :nh, :nw].nonzero()'''),
    "floor_tile_count_misses_the_edge": _AT.format(body='''    nh, nw = max(1, Ho // t), max(1, Wo // t)
    ''' + _MAXPOOL.strip()),
    "rows_and_cols_swapped": _AT.format(body=_MAXPOOL.replace(".nonzero()", ".nonzero().flip(1)")),
    "tile_of_each_changed_pixel": _AT.format(body='''    return ((changed.nonzero() + p) // step).clamp(max=max(nh, nw) - 1)'''),
    "int32_tiles": _AT.format(body=_MAXPOOL.replace(".nonzero()", ".nonzero().int()")),
    "every_tile_when_anything_changed": _AT.format(body='''    if not changed.any():
        return torch.zeros(0, 2, dtype=torch.long)
    return torch.cartesian_prod(torch.arange(nh), torch.arange(nw))'''),
    "block_one_pixel_too_wide": _AT.format(body='''    b = b + 1
    ''' + _MAXPOOL.strip()),
    "tile_count_from_the_input_size": _AT.format(body='''    nh, nw = -(-H // t), -(-W // t)
    pad_b = max(0, (nh - 1) * step + b - p - H)
    pad_r = max(0, (nw - 1) * step + b - p - W)
    m = F.pad(changed[None, None].float(), (p, pad_r, p, pad_b))
    return F.max_pool2d(m, b, step)[0, 0, :nh, :nw].nonzero()'''),
}

# ---------------------------------------------------------------- gather

_GA = '''
def gather(x, tiles, kernel_size, stride, padding, tile):
    N, C, H, W = x.shape
    n, s, p, t = tiles.shape[0], stride, padding, tile
    b = (t - 1) * s + kernel_size
{body}
'''

_ADV = '''    off = torch.arange(b)
    rows = tiles[:, :1] * (t * s) - p + off                       # (n, b)
    cols = tiles[:, 1:] * (t * s) - p + off
    inside = ((rows >= 0) & (rows < H))[:, :, None] & ((cols >= 0) & (cols < W))[:, None, :]
    R = rows.clamp(0, H - 1)[:, :, None].expand(n, b, b)
    Cc = cols.clamp(0, W - 1)[:, None, :].expand(n, b, b)
    blocks = x[:, :, R, Cc] * inside                               # (N, C, n, b, b)
    return blocks.permute(0, 2, 1, 3, 4).reshape(N * n, C, b, b)'''

GATHER_CORRECT = {
    "advanced_indexing": _GA.format(body=_ADV),
    "embedding_lookup_of_pixel_rows": _GA.format(body='''    off = torch.arange(b)
    rows = tiles[:, :1] * (t * s) - p + off
    cols = tiles[:, 1:] * (t * s) - p + off
    inside = ((rows >= 0) & (rows < H))[:, :, None] & ((cols >= 0) & (cols < W))[:, None, :]
    pix = rows.clamp(0, H - 1)[:, :, None] * W + cols.clamp(0, W - 1)[:, None, :]          # (n, b, b)
    pix = torch.arange(N)[:, None, None, None] * (H * W) + pix                             # (N, n, b, b)
    table = x.permute(0, 2, 3, 1).reshape(N * H * W, C)
    blocks = F.embedding(pix.reshape(N * n, b, b), table) * inside.repeat(N, 1, 1)[..., None].to(x.dtype)
    return blocks.permute(0, 3, 1, 2)'''),
    "rows_of_the_channels_last_view": _GA.format(body='''    off = torch.arange(b)
    rows = tiles[:, :1] * (t * s) - p + off
    cols = tiles[:, 1:] * (t * s) - p + off
    inside = ((rows >= 0) & (rows < H))[:, :, None] & ((cols >= 0) & (cols < W))[:, None, :]
    pix = rows.clamp(0, H - 1)[:, :, None] * W + cols.clamp(0, W - 1)[:, None, :]
    pix = (torch.arange(N)[:, None, None, None] * (H * W) + pix).reshape(-1)
    x_cl = x.contiguous(memory_format=torch.channels_last)          # no copy when x already is
    blocks = x_cl.permute(0, 2, 3, 1).reshape(N * H * W, C)[pix].view(N * n, b, b, C)
    blocks = torch.where(inside.repeat(N, 1, 1)[..., None], blocks, torch.zeros((), dtype=x.dtype))
    return blocks.permute(0, 3, 1, 2)'''),
}

# Correct values, but each call copies the whole activation (a padded copy; an NCHW copy of a
# channels-last tensor): the speed grade fails them, as the notebook warns.
GATHER_SLOW = {
    "pad_the_whole_image_and_slice": _GA.format(body='''    if n == 0:
        return x.new_zeros(0, C, b, b)
    xp = F.pad(x, (p, p + t * s + b, p, p + t * s + b))
    out = [xp[i, :, t * s * r:t * s * r + b, t * s * c:t * s * c + b] for i in range(N) for r, c in tiles.tolist()]
    return torch.stack(out)'''),
    "nchw_copy_then_index_select": _GA.format(body='''    off = torch.arange(b)
    rows = tiles[:, :1] * (t * s) - p + off
    cols = tiles[:, 1:] * (t * s) - p + off
    inside = ((rows >= 0) & (rows < H))[:, :, None] & ((cols >= 0) & (cols < W))[:, None, :]
    flat = rows.clamp(0, H - 1)[:, :, None] * W + cols.clamp(0, W - 1)[:, None, :]
    blocks = x.contiguous().view(N * C, H * W).index_select(1, flat.reshape(-1)).view(N, C, n, b, b)   # NCHW copy
    blocks = blocks.masked_fill(~inside, 0)
    return blocks.transpose(1, 2).reshape(N * n, C, b, b)'''),
}

GATHER_WRONG = {
    **{f"slow_{k}": v for k, v in GATHER_SLOW.items()},
    "tile_major_order": _GA.format(body=_ADV.replace("blocks.permute(0, 2, 1, 3, 4)", "blocks.permute(2, 0, 1, 3, 4)")),
    "no_halo": _GA.format(body='''    b_in = b
    b = t * s
    ''' + _ADV.strip().replace("reshape(N * n, C, b, b)", "reshape(N * n, C, b, b)")),
    "padding_shift_ignored": _GA.format(body=_ADV.replace("- p + off", "+ off")),
    "edge_values_instead_of_zeros": _GA.format(body=_ADV.replace(" * inside ", " ")),
    "rows_and_cols_swapped": _GA.format(body="    tiles = tiles.flip(1)\n" + _ADV),
    "stride_ignored_in_the_origin": _GA.format(body=_ADV.replace("* (t * s) - p", "* t - p")),
    "channels_last_view_only": _GA.format(body='''    off = torch.arange(b)
    rows = tiles[:, :1] * (t * s) - p + off
    cols = tiles[:, 1:] * (t * s) - p + off
    inside = ((rows >= 0) & (rows < H))[:, :, None] & ((cols >= 0) & (cols < W))[:, None, :]
    pix = rows.clamp(0, H - 1)[:, :, None] * W + cols.clamp(0, W - 1)[:, None, :]
    pix = (torch.arange(N)[:, None, None, None] * (H * W) + pix).reshape(-1)
    rows_x = x.permute(0, 2, 3, 1).view(N * H * W, C)              # fails unless x is channels-last
    blocks = rows_x.index_select(0, pix).view(N * n, b, b, C) * inside.repeat(N, 1, 1)[..., None]
    return blocks.permute(0, 3, 1, 2)'''),
    "window_one_pixel_short": _GA.format(body='''    b = b - 1
    ''' + _ADV.strip()),
}

# ---------------------------------------------------------------- scatter

_SC = '''
def scatter(y_cached, y_tiles, tiles, tile, out=None):
    N, C, H, W = y_cached.shape
    n, t = tiles.shape[0], tile
{body}
'''

_LOOP = '''    out = y_cached.clone() if out is None else out
    for i in range(N):
        for j, (r, c) in enumerate(tiles.tolist()):
            blk = out[i, :, t * r:t * r + t, t * c:t * c + t]
            blk.copy_(y_tiles[i * n + j, :, :blk.shape[1], :blk.shape[2]])
    return out'''

_PUT = '''    out = y_cached.clone() if out is None else out
    if n == 0:
        return out
    off = torch.arange(t)
    rows = (tiles[:, :1] * t + off)[:, :, None].expand(n, t, t)
    cols = (tiles[:, 1:] * t + off)[:, None, :].expand(n, t, t)
    keep = (rows < H) & (cols < W)
    vals = y_tiles.reshape(N, n, C, t, t).permute(0, 2, 1, 3, 4)       # (N, C, n, t, t)
    out[:, :, rows[keep], cols[keep]] = vals[:, :, keep]
    return out'''

SCATTER_CORRECT = {
    "loop_over_tiles": _SC.format(body=_LOOP),
    "advanced_index_put": _SC.format(body=_PUT),
    "rows_of_a_channels_last_buffer": _SC.format(body='''    out = y_cached.clone() if out is None else out
    if n == 0:
        return out
    off = torch.arange(t)
    r_ = (tiles[:, :1] * t + off)[:, :, None].expand(n, t, t)
    c_ = (tiles[:, 1:] * t + off)[:, None, :].expand(n, t, t)
    keep = ((r_ < H) & (c_ < W)).reshape(-1).repeat(N)
    pix = (torch.arange(N)[:, None] * (H * W) + (r_ * W + c_).reshape(1, -1)).reshape(-1)[keep]
    vals = y_tiles.permute(0, 2, 3, 1).reshape(-1, C)[keep]
    if out.is_contiguous(memory_format=torch.channels_last):
        out.permute(0, 2, 3, 1).view(-1, C)[pix] = vals
    else:
        out.permute(0, 2, 3, 1)[pix // (H * W), pix % (H * W) // W, pix % W] = vals
    return out'''),
}

# Correct values, but a full copy of the cache on every call, even with out=: the speed grade fails it.
SCATTER_SLOW = {
    "copies_the_cache_even_with_out": _SC.format(body='''    res = y_cached.clone()
    for j, (r, c) in enumerate(tiles.tolist()):
        blk = res[:, :, t * r:t * r + t, t * c:t * c + t]
        blk.copy_(y_tiles[j::n][:, :, :blk.shape[2], :blk.shape[3]])
    if out is None:
        return res
    for j, (r, c) in enumerate(tiles.tolist()):
        out[:, :, t * r:t * r + t, t * c:t * c + t] = res[:, :, t * r:t * r + t, t * c:t * c + t]
    return out'''),
}

SCATTER_WRONG = {
    **{f"slow_{k}": v for k, v in SCATTER_SLOW.items()},
    "writes_into_the_cache": _SC.format(body=_LOOP.replace("out = y_cached.clone() if out is None else out",
                                                           "out = y_cached if out is None else out")),
    "ignores_out": _SC.format(body=_LOOP.replace("out = y_cached.clone() if out is None else out", "out = y_cached.clone()")),
    "no_clipping_at_the_edge": _SC.format(body='''    out = y_cached.clone() if out is None else out
    if n == 0:
        return out
    off = torch.arange(t)
    pix = ((tiles[:, :1] * t + off)[:, :, None] * W + (tiles[:, 1:] * t + off)[:, None, :]).reshape(-1)
    vals = y_tiles.reshape(N, n, C, t * t).permute(0, 2, 1, 3).reshape(N, C, -1)
    flat = out.reshape(N, C, H * W)
    keep = pix < H * W
    flat[:, :, pix[keep]] = vals[:, :, keep]
    out.copy_(flat.view(N, C, H, W))
    return out'''),
    "tile_major_order": _SC.format(body=_LOOP.replace("y_tiles[i * n + j", "y_tiles[j * N + i")),
    "rows_and_cols_swapped": _SC.format(body=_LOOP.replace("(r, c) in enumerate", "(c, r) in enumerate")),
    "rows_view_of_any_layout": _SC.format(body='''    out = y_cached.clone(memory_format=torch.channels_last) if out is None else out
    if n == 0:
        return out
    off = torch.arange(t)
    r_ = (tiles[:, :1] * t + off)[:, :, None].expand(n, t, t)
    c_ = (tiles[:, 1:] * t + off)[:, None, :].expand(n, t, t)
    keep = ((r_ < H) & (c_ < W)).reshape(-1)
    pix = (torch.arange(N)[:, None] * (H * W) + (r_ * W + c_).reshape(1, -1)).reshape(-1)
    vals = y_tiles.permute(0, 2, 3, 1).reshape(-1, C)
    keep = keep.repeat(N)
    out.permute(0, 2, 3, 1).reshape(-1, C).index_copy_(0, pix[keep], vals[keep])    # a copy unless channels-last
    return out'''),
    "returns_the_cache_copy_with_out": _SC.format(body='''    res = y_cached.clone()
    ''' + _LOOP.strip().replace("out = y_cached.clone() if out is None else out", "out = y_cached.clone() if out is None else out")
                                                   .replace("return out", "return out if res is None else res.copy_(y_cached) if False else out")),
    "off_by_one_origin": _SC.format(body=_LOOP.replace("out[i, :, t * r:t * r + t, t * c:t * c + t]",
                                                       "out[i, :, t * r + 1:t * r + t + 1, t * c:t * c + t]")),
}
# "returns_the_cache_copy_with_out" above would be correct; replace it by a genuinely wrong variant
SCATTER_WRONG["returns_the_cache_copy_with_out"] = _SC.format(body='''    res = y_cached.clone()
    target = res if out is None else out
    for i in range(N):
        for j, (r, c) in enumerate(tiles.tolist()):
            blk = target[i, :, t * r:t * r + t, t * c:t * c + t]
            blk.copy_(y_tiles[i * n + j, :, :blk.shape[1], :blk.shape[2]])
    return res''')

# ---------------------------------------------------------------- SparseConv2d

_INIT = '''
class SparseConv2d(nn.Module):
    def __init__(self, conv, tile=8):
        super().__init__()
        self.conv, self.tile, self.mode = conv, int(tile), "full"
        self.k, self.s, self.p = conv.kernel_size[0], conv.stride[0], conv.padding[0]
        self.x_cache = self.y_cache = self.tiles = None
'''

_FULL = '''
    def forward(self, x, changed=None, out=None, epilogue=None):
        if self.mode == "full":
            y = self.conv(x)
            if epilogue is not None:
                y = epilogue(y)
            self.x_cache, self.y_cache = x, y
            return y
'''

_SPARSE = '''        if changed is None:
            changed = (x != self.x_cache).any(dim=1).any(dim=0)
        self.tiles = active_tiles(changed, self.k, self.s, self.p, self.tile)
        c = self.conv
        y_tiles = F.conv2d(gather(x, self.tiles, self.k, self.s, self.p, self.tile), c.weight, c.bias, c.stride, 0, 1,
                           c.groups)
        if epilogue is not None:
            y_tiles = epilogue(y_tiles)
        return scatter(self.y_cache, y_tiles, self.tiles, self.tile, out=out)
'''

_SOLUTION_LIKE = _INIT + _FULL + _SPARSE

SPARSE_CORRECT = {
    "bool_compare_and_keyword_conv": (_INIT + _FULL + _SPARSE).replace(
        "F.conv2d(gather(x, self.tiles, self.k, self.s, self.p, self.tile), c.weight, c.bias, c.stride, 0, 1,\n                           c.groups)",
        "torch.nn.functional.conv2d(gather(x, self.tiles, self.k, self.s, self.p, self.tile), weight=c.weight, bias=c.bias,\n"
        "                           stride=c.stride, padding=0, groups=c.groups)"),
    "cached_copies_and_a_conv_without_padding": (_INIT + '''
    def forward(self, x, changed=None, out=None, epilogue=None):
        if self.mode == "full":
            y = self.conv(x)
            y = y if epilogue is None else epilogue(y)
            self.x_cache, self.y_cache = x.clone(), y.clone()
            return y
        if changed is None:
            changed = torch.ne(x, self.x_cache).flatten(0, 1).any(0)
        tiles = active_tiles(changed, self.k, self.s, self.p, self.tile)
        self.tiles = tiles
        blocks = gather(x, tiles, self.k, self.s, self.p, self.tile)
        y_tiles = self.conv._conv_forward(blocks, self.conv.weight, self.conv.bias) if self.p == 0 else \\
            F.conv2d(blocks, self.conv.weight, self.conv.bias, stride=self.s, groups=self.conv.groups)
        if epilogue is not None:
            y_tiles = epilogue(y_tiles)
        if out is None:
            return scatter(self.y_cache, y_tiles, tiles, self.tile)
        scatter(self.y_cache, y_tiles, tiles, self.tile, out=out)
        return out
'''),
    "validates_its_inputs": _INIT + _FULL + """        if self.mode != "sparse":
            raise ValueError(f"unknown mode {self.mode!r}")
        if self.y_cache is None:
            raise RuntimeError("sparse call before any full call")
        if x.shape != self.x_cache.shape:
            raise ValueError("the input shape differs from the cached one")
""" + _SPARSE,
}

SPARSE_WRONG = {
    "refreshes_its_cache_after_each_call": _INIT + _FULL + _SPARSE.replace(
        "        return scatter(self.y_cache, y_tiles, self.tiles, self.tile, out=out)\n",
        "        result = scatter(self.y_cache, y_tiles, self.tiles, self.tile, out=out)\n"
        "        if changed_was_none:\n"
        "            self.x_cache, self.y_cache = x.clone(), result.clone()       # SIGE's sparse_update\n"
        "        return result\n").replace("        if changed is None:\n", "        changed_was_none = changed is None\n        if changed is None:\n", 1),
    "dense_every_time": _INIT + _FULL + '''        self.tiles = active_tiles(torch.ones(x.shape[-2:], dtype=torch.bool), self.k, self.s, self.p, self.tile)
        y = self.conv(x)
        y = y if epilogue is None else epilogue(y)
        if out is not None:
            out.copy_(y)
            return out
        return y
''',
    "ignores_the_given_mask": _INIT + _FULL + _SPARSE.replace("        if changed is None:\n            changed = (x != self.x_cache)",
                                                               "        if True:\n            changed = (x != self.x_cache)"),
    "ignores_out": _INIT + _FULL + _SPARSE.replace("out=out)", "out=None)"),
    "epilogue_forgotten_in_sparse_mode": _INIT + _FULL + _SPARSE.replace("        if epilogue is not None:\n            y_tiles = epilogue(y_tiles)\n", ""),
    "caches_the_output_before_the_epilogue": _INIT + '''
    def forward(self, x, changed=None, out=None, epilogue=None):
        if self.mode == "full":
            y = self.conv(x)
            self.x_cache, self.y_cache = x, y
            return y if epilogue is None else epilogue(y)
''' + _SPARSE,
    "padding_kept_on_the_blocks": _INIT + _FULL + _SPARSE.replace("c.stride, 0, 1,", "c.stride, c.padding, 1,"),
    "stride_ignored_on_the_blocks": _INIT + _FULL + _SPARSE.replace("c.stride, 0, 1,", "1, 0, 1,"),
    "groups_ignored": _INIT + _FULL + _SPARSE.replace(", c.weight, c.bias, c.stride, 0, 1,\n                           c.groups)",
                                                        ", c.weight.repeat(1, c.groups, 1, 1), c.bias, c.stride, 0, 1)"),
    "scatters_into_the_cache": _INIT + _FULL + _SPARSE.replace("out=out)", "out=self.y_cache if out is None else out)"),
    "no_tiles_attribute": _INIT + _FULL + _SPARSE.replace("self.tiles = active_tiles", "tiles = active_tiles")
                                                  .replace("self.tiles", "tiles").replace("tiles = active_tiles", "tiles = active_tiles"),
    "tiles_kept_only_on_the_compare_path": _INIT + _FULL + '''        tiles = None
        if changed is None:
            changed = (x != self.x_cache).any(dim=1).any(dim=0)
            tiles = self.tiles = active_tiles(changed, self.k, self.s, self.p, self.tile)
        if tiles is None:
            tiles = active_tiles(changed, self.k, self.s, self.p, self.tile)
        c = self.conv
        y_tiles = F.conv2d(gather(x, tiles, self.k, self.s, self.p, self.tile), c.weight, c.bias, c.stride, 0, 1,
                           c.groups)
        if epilogue is not None:
            y_tiles = epilogue(y_tiles)
        return scatter(self.y_cache, y_tiles, tiles, self.tile, out=out)
''',
}

# Loosely read contracts (issues 23/24): right values on the compare path and in a restored buffer,
# but a full-size pass per call, every MAC executed, or a write outside the active tiles of out=.
SPARSE_WRONG.update({
    # issue 24: a full in-place pass over the buffer before each scatter (no new allocation)
    "copies_the_cache_into_out_first": _INIT + _FULL + _SPARSE.replace(
        "        return scatter(self.y_cache, y_tiles, self.tiles, self.tile, out=out)\n",
        "        if out is not None:\n"
        "            out.copy_(self.y_cache)                      # 'make sure the buffer holds the cache'\n"
        "        return scatter(self.y_cache, y_tiles, self.tiles, self.tile, out=out)\n"),
    # the dense conv, then only the active tiles written: right values and tiles, every MAC executed
    "dense_conv_then_scatter_the_tiles": _INIT + _FULL + '''        if changed is None:
            changed = (x != self.x_cache).any(dim=1).any(dim=0)
        self.tiles = active_tiles(changed, self.k, self.s, self.p, self.tile)
        y = self.conv(x)
        if epilogue is not None:
            y = epilogue(y)
        t = self.tile
        yp = F.pad(y, (0, t, 0, t))
        y_tiles = torch.stack([yp[i, :, t * r:t * r + t, t * c:t * c + t] for i in range(x.shape[0])
                               for r, c in self.tiles.tolist()]) if len(self.tiles) else y[:0, :, :t, :t]
        return scatter(self.y_cache, y_tiles, self.tiles, self.tile, out=out)
''',
    # compares the input with its cache even when the engine hands it the mask (a full-size read),
    # and recomputes what it finds there too
    "compares_with_the_cache_even_with_a_mask": _INIT + _FULL + _SPARSE.replace(
        "        if changed is None:\n            changed = (x != self.x_cache).any(dim=1).any(dim=0)\n",
        "        found = (x != self.x_cache).any(dim=1).any(dim=0)\n"
        "        changed = found if changed is None else changed | found\n"),
})

SCATTER_WRONG.update({
    # restores the whole buffer from the cache before writing the tiles: out's other pixels are lost
    "restores_the_whole_buffer_first": _SC.format(body=_LOOP.replace(
        "out = y_cached.clone() if out is None else out",
        "out = y_cached.clone() if out is None else out.copy_(y_cached)")),
})

EXERCISES = {
    "incremental_conv": {"grades": ["test_incremental_conv"], "correct": INCREMENTAL_CORRECT, "wrong": INCREMENTAL_WRONG},
    "active_tiles": {"grades": ["test_active_tiles"], "correct": ACTIVE_CORRECT, "wrong": ACTIVE_WRONG},
    "gather": {"grades": ["test_gather", "test_sparse_speed"], "correct": GATHER_CORRECT, "wrong": GATHER_WRONG},
    "scatter": {"grades": ["test_scatter", "test_sparse_speed"], "correct": SCATTER_CORRECT, "wrong": SCATTER_WRONG},
    "SparseConv2d": {"grades": ["test_sparse_conv2d", "test_sparse_network", "test_sparse_speed"],
                     "correct": SPARSE_CORRECT, "wrong": SPARSE_WRONG},
}
