"""Lab 6 (DiffAugment): correct alternatives and plausible wrong answers for every exercise.

Correct ones use other idioms, other legal random-number orders and generators (the contract fixes
the distributions, not how they are drawn), loops instead of vectorised code. Wrong ones are the
mistakes the grade cells must catch (tests/mutation.py grades each with the lab's grade cells).
"""

EXERCISES = {
    # ------------------------------------------------------------------ colour
    "rand_brightness": {
        "grades": ["test_rand_brightness"],
        "correct": {
            "uniform_with_own_generator": '''
_gen_b = torch.Generator().manual_seed(1234)

def rand_brightness(x):
    b = torch.empty(x.shape[0], 1, 1, 1, dtype=x.dtype).uniform_(-0.5, 0.5, generator=_gen_b)
    return x + b.to(x.device)
''',
            "loop_per_sample": '''
def rand_brightness(x):
    return torch.stack([xi + (torch.rand((), dtype=x.dtype) - 0.5) for xi in x])
''',
            "float32_draw_then_cast": '''
def rand_brightness(x):
    b = (torch.rand(len(x)) - 0.5).to(x).view(-1, 1, 1, 1)
    return b + x
''',
        },
        "wrong": {
            "one_draw_for_the_batch": '''
def rand_brightness(x):
    return x + (torch.rand(1, dtype=x.dtype) - 0.5)
''',
            "range_0_1": '''
def rand_brightness(x):
    return x + torch.rand(x.shape[0], 1, 1, 1, dtype=x.dtype)
''',
            "range_too_narrow": '''
def rand_brightness(x):
    return x + (torch.rand(x.shape[0], 1, 1, 1, dtype=x.dtype) - 0.5) * 0.5
''',
            "gaussian_offset": '''
def rand_brightness(x):
    return x + 0.29 * torch.randn(x.shape[0], 1, 1, 1, dtype=x.dtype)
''',
            "offset_per_pixel": '''
def rand_brightness(x):
    return x + torch.rand_like(x) - 0.5
''',
            "offset_per_channel": '''
def rand_brightness(x):
    return x + torch.rand(x.shape[0], x.shape[1], 1, 1, dtype=x.dtype) - 0.5
''',
            "in_place_on_the_input": '''
def rand_brightness(x):
    with torch.no_grad():
        x += torch.rand(x.shape[0], 1, 1, 1, dtype=x.dtype) - 0.5
    return x
''',
            "numpy_not_differentiable": '''
import numpy as np

def rand_brightness(x):
    a = x.detach().cpu().numpy()
    return torch.from_numpy(a + (np.random.rand(a.shape[0], 1, 1, 1) - 0.5).astype(a.dtype))
''',
            "detached_output": '''
def rand_brightness(x):
    return (x + torch.rand(x.shape[0], 1, 1, 1, dtype=x.dtype) - 0.5).detach()
''',
        },
    },
    "rand_saturation": {
        "grades": ["test_rand_saturation"],
        "correct": {
            "blend_form": '''
def rand_saturation(x):
    s = 2 * torch.rand(x.shape[0], 1, 1, 1, dtype=x.dtype, device=x.device)
    return s * x + (1 - s) * x.mean(1, keepdim=True)
''',
            "loop_per_sample_with_generator": '''
_gen_s = torch.Generator().manual_seed(7)

def rand_saturation(x):
    out = []
    for xi in x:
        s = torch.empty((), dtype=x.dtype).uniform_(0, 2, generator=_gen_s)
        m = xi.mean(0, keepdim=True)
        out.append(m + s * (xi - m))
    return torch.stack(out)
''',
        },
        "wrong": {
            "mean_over_the_whole_image": '''
def rand_saturation(x):
    m = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - m) * (2 * torch.rand(x.shape[0], 1, 1, 1, dtype=x.dtype)) + m
''',
            "mean_over_space": '''
def rand_saturation(x):
    m = x.mean(dim=(2, 3), keepdim=True)
    return (x - m) * (2 * torch.rand(x.shape[0], 1, 1, 1, dtype=x.dtype)) + m
''',
            "one_draw_for_the_batch": '''
def rand_saturation(x):
    m = x.mean(dim=1, keepdim=True)
    return (x - m) * (2 * torch.rand((), dtype=x.dtype)) + m
''',
            "range_0_1": '''
def rand_saturation(x):
    m = x.mean(dim=1, keepdim=True)
    return (x - m) * torch.rand(x.shape[0], 1, 1, 1, dtype=x.dtype) + m
''',
            "range_0_5_1_5": '''
def rand_saturation(x):
    m = x.mean(dim=1, keepdim=True)
    return (x - m) * (torch.rand(x.shape[0], 1, 1, 1, dtype=x.dtype) + 0.5) + m
''',
            "factor_per_pixel": '''
def rand_saturation(x):
    m = x.mean(dim=1, keepdim=True)
    return (x - m) * (2 * torch.rand(x.shape[0], 1, x.shape[2], x.shape[3], dtype=x.dtype)) + m
''',
            "mean_detached": '''
def rand_saturation(x):
    m = x.mean(dim=1, keepdim=True).detach()
    return (x - m) * (2 * torch.rand(x.shape[0], 1, 1, 1, dtype=x.dtype)) + m
''',
            "in_place_on_the_input": '''
def rand_saturation(x):
    with torch.no_grad():
        m = x.mean(dim=1, keepdim=True)
        x.sub_(m).mul_(2 * torch.rand(x.shape[0], 1, 1, 1, dtype=x.dtype)).add_(m)
    return x
''',
        },
    },
    "rand_contrast": {
        "grades": ["test_rand_contrast"],
        "correct": {
            "blend_form": '''
def rand_contrast(x):
    c = torch.rand(x.shape[0], 1, 1, 1, dtype=x.dtype, device=x.device) + 0.5
    return c * x + (1 - c) * x.mean(dim=(1, 2, 3), keepdim=True)
''',
            "loop_per_sample": '''
def rand_contrast(x):
    return torch.stack([(xi - xi.mean()) * (0.5 + torch.rand((), dtype=x.dtype)) + xi.mean() for xi in x])
''',
            "flatten_mean": '''
def rand_contrast(x):
    m = x.flatten(1).mean(1).view(-1, 1, 1, 1)
    c = torch.empty(x.shape[0], 1, 1, 1, dtype=x.dtype).uniform_(0.5, 1.5)
    return (x - m) * c + m
''',
        },
        "wrong": {
            "mean_per_channel": '''
def rand_contrast(x):
    m = x.mean(dim=(2, 3), keepdim=True)
    return (x - m) * (torch.rand(x.shape[0], 1, 1, 1, dtype=x.dtype) + 0.5) + m
''',
            "mean_over_channels_only": '''
def rand_contrast(x):
    m = x.mean(dim=1, keepdim=True)
    return (x - m) * (torch.rand(x.shape[0], 1, 1, 1, dtype=x.dtype) + 0.5) + m
''',
            "mean_over_the_batch": '''
def rand_contrast(x):
    m = x.mean()
    return (x - m) * (torch.rand(x.shape[0], 1, 1, 1, dtype=x.dtype) + 0.5) + m
''',
            "one_draw_for_the_batch": '''
def rand_contrast(x):
    m = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - m) * (torch.rand((), dtype=x.dtype) + 0.5) + m
''',
            "range_0_2": '''
def rand_contrast(x):
    m = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - m) * (2 * torch.rand(x.shape[0], 1, 1, 1, dtype=x.dtype)) + m
''',
            "scaled_without_centring": '''
def rand_contrast(x):
    return x * (torch.rand(x.shape[0], 1, 1, 1, dtype=x.dtype) + 0.5)
''',
            "mean_detached": '''
def rand_contrast(x):
    m = x.mean(dim=(1, 2, 3), keepdim=True).detach()
    return (x - m) * (torch.rand(x.shape[0], 1, 1, 1, dtype=x.dtype) + 0.5) + m
''',
        },
    },
    # ------------------------------------------------------------------ translation
    "rand_translation": {
        "grades": ["test_rand_translation"],
        "correct": {
            "pad_and_index_columns_drawn_first": '''
def rand_translation(x, ratio=0.125):
    n, c, h, w = x.shape
    sh, sw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    tx = torch.randint(-sw, sw + 1, (n, 1, 1))
    ty = torch.randint(-sh, sh + 1, (n, 1, 1))
    xp = F.pad(x, [sw, sw, sh, sh])
    rows = torch.arange(h).view(1, h, 1) + ty + sh
    cols = torch.arange(w).view(1, 1, w) + tx + sw
    b = torch.arange(n).view(n, 1, 1)
    return xp.permute(0, 2, 3, 1)[b, rows, cols].permute(0, 3, 1, 2)
''',
            "loop_with_slices": '''
def rand_translation(x, ratio=0.125):
    n, c, h, w = x.shape
    sh, sw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    out = torch.zeros_like(x)
    for i in range(n):
        dy = int(torch.randint(-sh, sh + 1, ()))
        dx = int(torch.randint(-sw, sw + 1, ()))
        if abs(dy) >= h or abs(dx) >= w:
            continue
        out[i, :, max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = \\
            x[i, :, max(-dy, 0):h + min(-dy, 0), max(-dx, 0):w + min(-dx, 0)]
    return out
''',
            "generator_and_gather": '''
_gen_t = torch.Generator().manual_seed(99)

def rand_translation(x, ratio=0.125):
    n, c, h, w = x.shape
    sh, sw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    t = torch.stack([torch.randint(-sh, sh + 1, (n,), generator=_gen_t),
                     torch.randint(-sw, sw + 1, (n,), generator=_gen_t)], 1)
    src_r = torch.arange(h).view(1, h, 1) - t[:, 0].view(n, 1, 1)
    src_c = torch.arange(w).view(1, 1, w) - t[:, 1].view(n, 1, 1)
    ok = ((src_r >= 0) & (src_r < h) & (src_c >= 0) & (src_c < w)).unsqueeze(1)
    flat = (src_r.clamp(0, h - 1) * w + src_c.clamp(0, w - 1)).view(n, 1, h * w).expand(n, c, h * w)
    out = torch.gather(x.reshape(n, c, h * w), 2, flat).view(n, c, h, w)
    return torch.where(ok, out, torch.zeros((), dtype=x.dtype))
''',
            "affine_grid_nearest": '''
def rand_translation(x, ratio=0.125):
    n, c, h, w = x.shape
    sh, sw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    ty = torch.randint(-sh, sh + 1, (n,)).to(x.dtype)
    tx = torch.randint(-sw, sw + 1, (n,)).to(x.dtype)
    theta = torch.zeros(n, 2, 3, dtype=x.dtype)
    theta[:, 0, 0] = 1
    theta[:, 1, 1] = 1
    theta[:, 0, 2] = -2 * tx / w
    theta[:, 1, 2] = -2 * ty / h
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="nearest", padding_mode="zeros", align_corners=False)
''',
        },
        "wrong": {
            "one_offset_for_both_axes_sized_from_H": '''
def rand_translation(x, ratio=0.125):
    n, c, h, w = x.shape
    s = int(h * ratio + 0.5)
    t = torch.randint(-s, s + 1, (n, 1, 1))
    xp = F.pad(x, [s, s, s, s])
    rows = torch.arange(h).view(1, h, 1) + t + s
    cols = torch.arange(w).view(1, 1, w) + t + s
    return xp.permute(0, 2, 3, 1)[torch.arange(n).view(n, 1, 1), rows, cols].permute(0, 3, 1, 2)
''',
            "both_ranges_sized_from_H": '''
def rand_translation(x, ratio=0.125):
    n, c, h, w = x.shape
    s = int(h * ratio + 0.5)
    ty = torch.randint(-s, s + 1, (n, 1, 1))
    tx = torch.randint(-s, s + 1, (n, 1, 1))
    xp = F.pad(x, [s, s, s, s])
    rows = torch.arange(h).view(1, h, 1) + ty + s
    cols = torch.arange(w).view(1, 1, w) + tx + s
    return xp.permute(0, 2, 3, 1)[torch.arange(n).view(n, 1, 1), rows, cols].permute(0, 3, 1, 2)
''',
            "axes_swapped_ranges": '''
def rand_translation(x, ratio=0.125):
    n, c, h, w = x.shape
    sh, sw = int(w * ratio + 0.5), int(h * ratio + 0.5)
    ty = torch.randint(-sh, sh + 1, (n, 1, 1))
    tx = torch.randint(-sw, sw + 1, (n, 1, 1))
    p = max(sh, sw)
    xp = F.pad(x, [p, p, p, p])
    rows = torch.arange(h).view(1, h, 1) + ty + p
    cols = torch.arange(w).view(1, 1, w) + tx + p
    return xp.permute(0, 2, 3, 1)[torch.arange(n).view(n, 1, 1), rows, cols].permute(0, 3, 1, 2)
''',
            "roll_wraps_around": '''
def rand_translation(x, ratio=0.125):
    n, c, h, w = x.shape
    sh, sw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    return torch.stack([torch.roll(xi, (int(torch.randint(-sh, sh + 1, ())), int(torch.randint(-sw, sw + 1, ()))),
                                   (1, 2)) for xi in x])
''',
            "one_shift_for_the_batch": '''
def rand_translation(x, ratio=0.125):
    n, c, h, w = x.shape
    sh, sw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    dy, dx = int(torch.randint(-sh, sh + 1, ())), int(torch.randint(-sw, sw + 1, ()))
    xp = F.pad(x, [sw, sw, sh, sh])
    return xp[:, :, sh - dy:sh - dy + h, sw - dx:sw - dx + w]
''',
            "upper_bound_excluded": '''
def rand_translation(x, ratio=0.125):
    n, c, h, w = x.shape
    sh, sw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    ty = torch.randint(-sh, max(sh, 1 - sh), (n, 1, 1))
    tx = torch.randint(-sw, max(sw, 1 - sw), (n, 1, 1))
    xp = F.pad(x, [sw, sw, sh, sh])
    rows = torch.arange(h).view(1, h, 1) + ty + sh
    cols = torch.arange(w).view(1, 1, w) + tx + sw
    return xp.permute(0, 2, 3, 1)[torch.arange(n).view(n, 1, 1), rows, cols].permute(0, 3, 1, 2)
''',
            "floor_instead_of_round": '''
def rand_translation(x, ratio=0.125):
    n, c, h, w = x.shape
    sh, sw = int(h * ratio), int(w * ratio)
    ty = torch.randint(-sh, sh + 1, (n, 1, 1))
    tx = torch.randint(-sw, sw + 1, (n, 1, 1))
    xp = F.pad(x, [sw, sw, sh, sh])
    rows = torch.arange(h).view(1, h, 1) + ty + sh
    cols = torch.arange(w).view(1, 1, w) + tx + sw
    return xp.permute(0, 2, 3, 1)[torch.arange(n).view(n, 1, 1), rows, cols].permute(0, 3, 1, 2)
''',
            "ratio_ignored_one_eighth": '''
def rand_translation(x, ratio=0.125):
    n, c, h, w = x.shape
    sh, sw = h // 8, w // 8
    ty = torch.randint(-sh, sh + 1, (n, 1, 1))
    tx = torch.randint(-sw, sw + 1, (n, 1, 1))
    xp = F.pad(x, [sw, sw, sh, sh])
    rows = torch.arange(h).view(1, h, 1) + ty + sh
    cols = torch.arange(w).view(1, 1, w) + tx + sw
    return xp.permute(0, 2, 3, 1)[torch.arange(n).view(n, 1, 1), rows, cols].permute(0, 3, 1, 2)
''',
            "channels_shifted_independently": '''
def rand_translation(x, ratio=0.125):
    n, c, h, w = x.shape
    sh, sw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    ty = torch.randint(-sh, sh + 1, (n * c, 1, 1))
    tx = torch.randint(-sw, sw + 1, (n * c, 1, 1))
    xp = F.pad(x.reshape(n * c, 1, h, w), [sw, sw, sh, sh])
    rows = torch.arange(h).view(1, h, 1) + ty + sh
    cols = torch.arange(w).view(1, 1, w) + tx + sw
    return xp[:, 0][torch.arange(n * c).view(-1, 1, 1), rows, cols].view(n, c, h, w)
''',
            "detached_output": '''
def rand_translation(x, ratio=0.125):
    n, c, h, w = x.shape
    sh, sw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    ty = torch.randint(-sh, sh + 1, (n, 1, 1))
    tx = torch.randint(-sw, sw + 1, (n, 1, 1))
    xp = F.pad(x, [sw, sw, sh, sh])
    rows = torch.arange(h).view(1, h, 1) + ty + sh
    cols = torch.arange(w).view(1, 1, w) + tx + sw
    return xp.permute(0, 2, 3, 1)[torch.arange(n).view(n, 1, 1), rows, cols].permute(0, 3, 1, 2).detach()
''',
        },
    },
    # ------------------------------------------------------------------ cutout
    "rand_cutout": {
        "grades": ["test_rand_cutout"],
        "correct": {
            "clamped_grid_like_the_official_code": '''
def rand_cutout(x, ratio=0.5):
    n, c, h, w = x.shape
    sh, sw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    cx = torch.randint(0, w + (1 - sw % 2), (n, 1, 1))
    cy = torch.randint(0, h + (1 - sh % 2), (n, 1, 1))
    gb, gy, gx = torch.meshgrid(torch.arange(n), torch.arange(sh), torch.arange(sw), indexing="ij")
    gy = (gy + cy - sh // 2).clamp(0, h - 1)
    gx = (gx + cx - sw // 2).clamp(0, w - 1)
    mask = torch.ones(n, h, w, dtype=x.dtype)
    mask[gb, gy, gx] = 0
    return x * mask.unsqueeze(1)
''',
            "loop_with_slices": '''
def rand_cutout(x, ratio=0.5):
    n, c, h, w = x.shape
    sh, sw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    keep = torch.ones(n, 1, h, w, dtype=x.dtype)
    for i in range(n):
        top = int(torch.randint(0, h + 1 - sh % 2, ())) - sh // 2
        left = int(torch.randint(0, w + 1 - sw % 2, ())) - sw // 2
        keep[i, :, max(top, 0):max(top + sh, 0), max(left, 0):max(left + sw, 0)] = 0
    return x * keep
''',
            "first_row_drawn_directly_with_generator": '''
_gen_c = torch.Generator().manual_seed(5)

def rand_cutout(x, ratio=0.5):
    n, c, h, w = x.shape
    sh, sw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    top = torch.randint(-(sh // 2), h - (sh + 1) // 2 + 1, (n, 1, 1), generator=_gen_c)
    left = torch.randint(-(sw // 2), w - (sw + 1) // 2 + 1, (n, 1, 1), generator=_gen_c)
    r = torch.arange(h).view(1, h, 1)
    q = torch.arange(w).view(1, 1, w)
    inside = (r >= top) & (r < top + sh) & (q >= left) & (q < left + sw)
    return torch.where(inside.unsqueeze(1), torch.zeros((), dtype=x.dtype), x)
''',
        },
        "wrong": {
            "never_clipped": '''
def rand_cutout(x, ratio=0.5):
    n, c, h, w = x.shape
    sh, sw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    top = torch.randint(0, h - sh + 1, (n, 1, 1))
    left = torch.randint(0, w - sw + 1, (n, 1, 1))
    r, q = torch.arange(h).view(1, h, 1), torch.arange(w).view(1, 1, w)
    cut = (r >= top) & (r < top + sh) & (q >= left) & (q < left + sw)
    return x * (~cut).unsqueeze(1).to(x.dtype)
''',
            "centre_on_a_pixel_even_sizes_too": '''
def rand_cutout(x, ratio=0.5):
    n, c, h, w = x.shape
    sh, sw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    top = torch.randint(0, h, (n, 1, 1)) - sh // 2
    left = torch.randint(0, w, (n, 1, 1)) - sw // 2
    r, q = torch.arange(h).view(1, h, 1), torch.arange(w).view(1, 1, w)
    cut = (r >= top) & (r < top + sh) & (q >= left) & (q < left + sw)
    return x * (~cut).unsqueeze(1).to(x.dtype)
''',
            "square_sized_from_H": '''
def rand_cutout(x, ratio=0.5):
    n, c, h, w = x.shape
    s = int(h * ratio + 0.5)
    top = torch.randint(0, h + 1 - s % 2, (n, 1, 1)) - s // 2
    left = torch.randint(0, w + 1 - s % 2, (n, 1, 1)) - s // 2
    r, q = torch.arange(h).view(1, h, 1), torch.arange(w).view(1, 1, w)
    cut = (r >= top) & (r < top + s) & (q >= left) & (q < left + s)
    return x * (~cut).unsqueeze(1).to(x.dtype)
''',
            "one_centre_for_both_axes": '''
def rand_cutout(x, ratio=0.5):
    n, c, h, w = x.shape
    sh, sw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    u = torch.rand(n, 1, 1)
    top = (u * (h + 1 - sh % 2)).long() - sh // 2
    left = (u * (w + 1 - sw % 2)).long() - sw // 2
    r, q = torch.arange(h).view(1, h, 1), torch.arange(w).view(1, 1, w)
    cut = (r >= top) & (r < top + sh) & (q >= left) & (q < left + sw)
    return x * (~cut).unsqueeze(1).to(x.dtype)
''',
            "one_position_for_the_batch": '''
def rand_cutout(x, ratio=0.5):
    n, c, h, w = x.shape
    sh, sw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    top = int(torch.randint(0, h + 1 - sh % 2, ())) - sh // 2
    left = int(torch.randint(0, w + 1 - sw % 2, ())) - sw // 2
    keep = torch.ones(1, 1, h, w, dtype=x.dtype)
    keep[..., max(top, 0):max(top + sh, 0), max(left, 0):max(left + sw, 0)] = 0
    return x * keep
''',
            "floor_instead_of_round": '''
def rand_cutout(x, ratio=0.5):
    n, c, h, w = x.shape
    sh, sw = int(h * ratio), int(w * ratio)
    top = torch.randint(0, h + 1 - sh % 2, (n, 1, 1)) - sh // 2
    left = torch.randint(0, w + 1 - sw % 2, (n, 1, 1)) - sw // 2
    r, q = torch.arange(h).view(1, h, 1), torch.arange(w).view(1, 1, w)
    cut = (r >= top) & (r < top + sh) & (q >= left) & (q < left + sw)
    return x * (~cut).unsqueeze(1).to(x.dtype)
''',
            "centre_used_as_corner": '''
def rand_cutout(x, ratio=0.5):
    n, c, h, w = x.shape
    sh, sw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    top = torch.randint(0, h + 1 - sh % 2, (n, 1, 1))
    left = torch.randint(0, w + 1 - sw % 2, (n, 1, 1))
    r, q = torch.arange(h).view(1, h, 1), torch.arange(w).view(1, 1, w)
    cut = (r >= top) & (r < top + sh) & (q >= left) & (q < left + sw)
    return x * (~cut).unsqueeze(1).to(x.dtype)
''',
            "filled_with_minus_one": '''
def rand_cutout(x, ratio=0.5):
    n, c, h, w = x.shape
    sh, sw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    top = torch.randint(0, h + 1 - sh % 2, (n, 1, 1)) - sh // 2
    left = torch.randint(0, w + 1 - sw % 2, (n, 1, 1)) - sw // 2
    r, q = torch.arange(h).view(1, h, 1), torch.arange(w).view(1, 1, w)
    cut = ((r >= top) & (r < top + sh) & (q >= left) & (q < left + sw)).unsqueeze(1)
    return torch.where(cut, -torch.ones((), dtype=x.dtype), x)
''',
            "cut_per_channel": '''
def rand_cutout(x, ratio=0.5):
    n, c, h, w = x.shape
    sh, sw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    top = torch.randint(0, h + 1 - sh % 2, (n, c, 1, 1)) - sh // 2
    left = torch.randint(0, w + 1 - sw % 2, (n, c, 1, 1)) - sw // 2
    r, q = torch.arange(h).view(1, 1, h, 1), torch.arange(w).view(1, 1, 1, w)
    cut = (r >= top) & (r < top + sh) & (q >= left) & (q < left + sw)
    return x * (~cut).to(x.dtype)
''',
            "in_place_on_the_input": '''
def rand_cutout(x, ratio=0.5):
    n, c, h, w = x.shape
    sh, sw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    top = torch.randint(0, h + 1 - sh % 2, (n, 1, 1)) - sh // 2
    left = torch.randint(0, w + 1 - sw % 2, (n, 1, 1)) - sw // 2
    r, q = torch.arange(h).view(1, h, 1), torch.arange(w).view(1, 1, w)
    cut = (r >= top) & (r < top + sh) & (q >= left) & (q < left + sw)
    with torch.no_grad():
        x.mul_((~cut).unsqueeze(1).to(x.dtype))
    return x
''',
        },
    },
    # ------------------------------------------------------------------ the policy
    "diff_augment": {
        "grades": ["test_diff_augment", "test_diff_augment_errors"],
        "correct": {
            "official_style_lookup": '''
AUGMENT_FNS = {"color": [rand_brightness, rand_saturation, rand_contrast], "translation": [rand_translation],
               "cutout": [rand_cutout]}

def diff_augment(x, policy="color,translation,cutout"):
    if policy:
        for p in policy.split(","):
            if p not in AUGMENT_FNS:
                raise ValueError(f"unknown policy {p}")
            for f in AUGMENT_FNS[p]:
                x = f(x)
    return x
''',
            "if_elif_chain_validating_first": '''
def diff_augment(x, policy="color,translation,cutout"):
    names = policy.split(",") if policy else []
    for p in names:
        if p not in ("color", "translation", "cutout"):
            raise ValueError("diff_augment: no augmentation called " + repr(p))
    for p in names:
        if p == "color":
            x = rand_contrast(rand_saturation(rand_brightness(x)))
        elif p == "translation":
            x = rand_translation(x)
        else:
            x = rand_cutout(x)
    return x
''',
            "keyerror_converted": '''
def diff_augment(x, policy="color,translation,cutout"):
    table = {"color": (rand_brightness, rand_saturation, rand_contrast), "translation": (rand_translation,),
             "cutout": (rand_cutout,)}
    for p in filter(None, policy.split(",")):
        try:
            fns = table[p]
        except KeyError:
            raise ValueError(f"{p!r} is not one of {sorted(table)}") from None
        for f in fns:
            x = f(x)
    return x
''',
        },
        "wrong": {
            "unknown_names_silently_ignored": '''
def diff_augment(x, policy="color,translation,cutout"):
    table = {"color": [rand_brightness, rand_saturation, rand_contrast], "translation": [rand_translation],
             "cutout": [rand_cutout]}
    for p in policy.split(","):
        for f in table.get(p, []):
            x = f(x)
    return x
''',
            "keyerror_not_valueerror": '''
def diff_augment(x, policy="color,translation,cutout"):
    table = {"color": [rand_brightness, rand_saturation, rand_contrast], "translation": [rand_translation],
             "cutout": [rand_cutout]}
    for p in filter(None, policy.split(",")):
        for f in table[p]:
            x = f(x)
    return x
''',
            "error_does_not_name_it": '''
def diff_augment(x, policy="color,translation,cutout"):
    table = {"color": [rand_brightness, rand_saturation, rand_contrast], "translation": [rand_translation],
             "cutout": [rand_cutout]}
    for p in filter(None, policy.split(",")):
        if p not in table:
            raise ValueError("unknown augmentation policy")
        for f in table[p]:
            x = f(x)
    return x
''',
            "fixed_order_ignores_the_policy_order": '''
def diff_augment(x, policy="color,translation,cutout"):
    names = [p for p in policy.split(",") if p]
    for p in names:
        if p not in ("color", "translation", "cutout"):
            raise ValueError(f"unknown policy {p!r}")
    if "color" in names:
        x = rand_contrast(rand_saturation(rand_brightness(x)))
    if "translation" in names:
        x = rand_translation(x)
    if "cutout" in names:
        x = rand_cutout(x)
    return x
''',
            "reversed_order": '''
def diff_augment(x, policy="color,translation,cutout"):
    table = {"color": [rand_brightness, rand_saturation, rand_contrast], "translation": [rand_translation],
             "cutout": [rand_cutout]}
    names = [p for p in policy.split(",") if p]
    for p in names:
        if p not in table:
            raise ValueError(f"unknown policy {p!r}")
    for p in reversed(names):
        for f in table[p]:
            x = f(x)
    return x
''',
            "default_policy_without_cutout": '''
def diff_augment(x, policy="color,translation"):
    table = {"color": [rand_brightness, rand_saturation, rand_contrast], "translation": [rand_translation],
             "cutout": [rand_cutout]}
    for p in filter(None, policy.split(",")):
        if p not in table:
            raise ValueError(f"unknown policy {p!r}")
        for f in table[p]:
            x = f(x)
    return x
''',
            "colour_without_saturation": '''
def diff_augment(x, policy="color,translation,cutout"):
    table = {"color": [rand_brightness, rand_contrast], "translation": [rand_translation], "cutout": [rand_cutout]}
    for p in filter(None, policy.split(",")):
        if p not in table:
            raise ValueError(f"unknown policy {p!r}")
        for f in table[p]:
            x = f(x)
    return x
''',
            "translation_ratio_one_quarter": '''
def diff_augment(x, policy="color,translation,cutout"):
    table = {"color": [rand_brightness, rand_saturation, rand_contrast],
             "translation": [lambda t: rand_translation(t, ratio=0.25)], "cutout": [rand_cutout]}
    for p in filter(None, policy.split(",")):
        if p not in table:
            raise ValueError(f"unknown policy {p!r}")
        for f in table[p]:
            x = f(x)
    return x
''',
            "empty_policy_is_an_error": '''
def diff_augment(x, policy="color,translation,cutout"):
    table = {"color": [rand_brightness, rand_saturation, rand_contrast], "translation": [rand_translation],
             "cutout": [rand_cutout]}
    for p in policy.split(","):
        if p not in table:
            raise ValueError(f"unknown policy {p!r}")
        for f in table[p]:
            x = f(x)
    return x
''',
            "detached_output": '''
def diff_augment(x, policy="color,translation,cutout"):
    table = {"color": [rand_brightness, rand_saturation, rand_contrast], "translation": [rand_translation],
             "cutout": [rand_cutout]}
    for p in filter(None, policy.split(",")):
        if p not in table:
            raise ValueError(f"unknown policy {p!r}")
        for f in table[p]:
            x = f(x)
    return x.detach()
''',
        },
    },
    # ------------------------------------------------------------------ the losses
    "d_loss": {
        "grades": ["test_d_loss"],
        "correct": {
            "bce_with_logits": '''
def d_loss(D, real, fake, augment):
    lr, lf = D(augment(real)), D(augment(fake.detach()))
    return (F.binary_cross_entropy_with_logits(lr, torch.ones_like(lr))
            + F.binary_cross_entropy_with_logits(lf, torch.zeros_like(lf)))
''',
            "two_passes_logsigmoid": '''
def d_loss(D, real, fake, augment):
    return -F.logsigmoid(D(augment(real))).mean() - F.logsigmoid(-D(augment(fake.detach()))).mean()
''',
            "no_grad_augment_of_the_fake": '''
def d_loss(D, real, fake, augment):
    with torch.no_grad():
        f = augment(fake)
    return F.softplus(-D(augment(real))).mean() + F.softplus(D(f)).mean()
''',
            "reals_augmented_under_no_grad": '''
def d_loss(D, real, fake, augment):
    with torch.no_grad():                       # nothing to backpropagate into: the reals are data
        r, f = augment(real), augment(fake)
    return F.softplus(-D(r)).mean() + F.softplus(D(f)).mean()
''',
            "detach_after_augment": '''
def d_loss(D, real, fake, augment):
    real_logits = D(augment(real))
    fake_logits = D(augment(fake).detach())
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()
''',
        },
        "wrong": {
            "fake_not_detached": '''
def d_loss(D, real, fake, augment):
    return F.softplus(-D(augment(real))).mean() + F.softplus(D(augment(fake))).mean()
''',
            "no_augment_on_reals": '''
def d_loss(D, real, fake, augment):
    return F.softplus(-D(real)).mean() + F.softplus(D(augment(fake.detach()))).mean()
''',
            "no_augment_on_fakes": '''
def d_loss(D, real, fake, augment):
    return F.softplus(-D(augment(real))).mean() + F.softplus(D(fake.detach())).mean()
''',
            "signs_flipped": '''
def d_loss(D, real, fake, augment):
    return F.softplus(D(augment(real))).mean() + F.softplus(-D(augment(fake.detach()))).mean()
''',
            "one_mean_over_both_batches": '''
def d_loss(D, real, fake, augment):
    return torch.cat([F.softplus(-D(augment(real))), F.softplus(D(augment(fake.detach())))]).mean()
''',
            "sum_not_mean": '''
def d_loss(D, real, fake, augment):
    return F.softplus(-D(augment(real))).sum() + F.softplus(D(augment(fake.detach()))).sum()
''',
            "hinge_loss": '''
def d_loss(D, real, fake, augment):
    return F.relu(1 - D(augment(real))).mean() + F.relu(1 + D(augment(fake.detach()))).mean()
''',
            "fake_term_under_no_grad": '''
def d_loss(D, real, fake, augment):
    loss_real = F.softplus(-D(augment(real))).mean()
    with torch.no_grad():                       # "no gradient may reach G" -- nor does any reach D
        loss_fake = F.softplus(D(augment(fake))).mean()
    return loss_real + loss_fake
''',
            "fake_logits_detached": '''
def d_loss(D, real, fake, augment):
    fake_logits = D(augment(fake)).detach()     # detaches D's output, not just the fake
    return F.softplus(-D(augment(real))).mean() + F.softplus(fake_logits).mean()
''',
            "real_term_under_no_grad": '''
def d_loss(D, real, fake, augment):
    with torch.no_grad():
        loss_real = F.softplus(-D(augment(real))).mean()
    return loss_real + F.softplus(D(augment(fake.detach()))).mean()
''',
            "augments_the_reals_twice": '''
def d_loss(D, real, fake, augment):
    r = augment(real)
    logits = D(augment(torch.cat([r, fake.detach()])))
    return F.softplus(-logits[:len(real)]).mean() + F.softplus(logits[len(real):]).mean()
''',
            "D_outputs_detached": '''
def d_loss(D, real, fake, augment):
    return (F.softplus(-D(augment(real)).detach()).mean() + F.softplus(D(augment(fake.detach())).detach()).mean()).requires_grad_()
''',
        },
    },
    "g_loss": {
        "grades": ["test_g_loss"],
        "correct": {
            "bce_with_logits": '''
def g_loss(D, fake, augment):
    logits = D(augment(fake))
    return F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits))
''',
            "logsigmoid": '''
def g_loss(D, fake, augment):
    return -F.logsigmoid(D(augment(fake))).mean()
''',
            "D_frozen_for_the_step": '''
def g_loss(D, fake, augment):
    flags = [p.requires_grad for p in D.parameters()]
    for p in D.parameters():
        p.requires_grad_(False)                 # G's step: no gradient into D's weights
    try:
        return F.softplus(-D(augment(fake))).mean()
    finally:
        for p, f in zip(D.parameters(), flags):
            p.requires_grad_(f)
''',
        },
        "wrong": {
            "saturating": '''
def g_loss(D, fake, augment):
    return -F.softplus(D(augment(fake))).mean()
''',
            "no_augment": '''
def g_loss(D, fake, augment):
    return F.softplus(-D(fake)).mean()
''',
            "fake_detached": '''
def g_loss(D, fake, augment):
    return F.softplus(-D(augment(fake.detach()))).mean()
''',
            "sign_flipped": '''
def g_loss(D, fake, augment):
    return F.softplus(D(augment(fake))).mean()
''',
            "sum_not_mean": '''
def g_loss(D, fake, augment):
    return F.softplus(-D(augment(fake))).sum()
''',
            "wasserstein_logits": '''
def g_loss(D, fake, augment):
    return -D(augment(fake)).mean()
''',
            "straight_through_augment": '''
def g_loss(D, fake, augment):
    with torch.no_grad():
        a = augment(fake)
    return F.softplus(-D(fake + (a - fake).detach())).mean()   # skips augment's Jacobian
''',
            "augment_output_detached": '''
def g_loss(D, fake, augment):
    return F.softplus(-D(augment(fake).detach())).mean()
''',
            "no_grad": '''
def g_loss(D, fake, augment):
    with torch.no_grad():
        loss = F.softplus(-D(augment(fake))).mean()
    return loss.requires_grad_()
''',
        },
    },
    "r1_penalty": {
        "grades": ["test_r1_penalty"],
        "correct": {
            # the official PyTorch port's idiom: grad of the summed logits, square, sum per sample, mean
            "grad_wrt_intermediate_tensor": '''
def r1_penalty(D, real, augment, through_augment=True):
    x = real.detach().requires_grad_(True)
    u = augment(x)                       # the TF code's `tf.gradients(..., [reals])` on the augmented tensor
    v = x if through_augment else u
    logits = D(u)
    g = torch.autograd.grad(outputs=[logits.sum()], inputs=[v], create_graph=True, only_inputs=True)[0]
    return g.square().sum([1, 2, 3]).mean()
''',
            "flatten_norm_squared": '''
def r1_penalty(D, real, augment, through_augment=True):
    if through_augment:
        v = real.clone().requires_grad_()
        out = D(augment(v))
    else:
        v = augment(real.clone()).detach().requires_grad_()
        out = D(v)
    g, = torch.autograd.grad(out, v, grad_outputs=torch.ones_like(out), create_graph=True)
    return (g.flatten(1).norm(dim=1) ** 2).mean()
''',
            "per_sample_loop": '''
def r1_penalty(D, real, augment, through_augment=True):
    x = real.detach().requires_grad_(True)
    u = augment(x)
    if not through_augment:
        u = u.detach().requires_grad_(True)
    logits = D(u)
    g = torch.autograd.grad(logits.sum(), x if through_augment else u, create_graph=True)[0]
    return torch.stack([(gi * gi).sum() for gi in g]).mean()
''',
        },
        "wrong": {
            "always_after_augment": '''
def r1_penalty(D, real, augment, through_augment=True):
    v = augment(real.detach()).detach().requires_grad_(True)
    g = torch.autograd.grad(D(v).sum(), v, create_graph=True)[0]
    return g.square().sum([1, 2, 3]).mean()
''',
            "always_through_augment": '''
def r1_penalty(D, real, augment, through_augment=True):
    x = real.detach().requires_grad_(True)
    g = torch.autograd.grad(D(augment(x)).sum(), x, create_graph=True)[0]
    return g.square().sum([1, 2, 3]).mean()
''',
            "flags_swapped": '''
def r1_penalty(D, real, augment, through_augment=True):
    x = real.detach().requires_grad_(True)
    if not through_augment:
        v, logits = x, D(augment(x))
    else:
        v = augment(x).detach().requires_grad_(True)
        logits = D(v)
    g = torch.autograd.grad(logits.sum(), v, create_graph=True)[0]
    return g.square().sum([1, 2, 3]).mean()
''',
            "no_augment": '''
def r1_penalty(D, real, augment, through_augment=True):
    x = real.detach().requires_grad_(True)
    g = torch.autograd.grad(D(x).sum(), x, create_graph=True)[0]
    return g.square().sum([1, 2, 3]).mean()
''',
            "no_create_graph": '''
def r1_penalty(D, real, augment, through_augment=True):
    x = real.detach().requires_grad_(True)
    u = augment(x)
    if not through_augment:
        u = u.detach().requires_grad_(True)
    g = torch.autograd.grad(D(u).sum(), x if through_augment else u)[0]
    return g.square().sum([1, 2, 3]).mean()
''',
            "sum_over_batch": '''
def r1_penalty(D, real, augment, through_augment=True):
    x = real.detach().requires_grad_(True)
    u = augment(x)
    if not through_augment:
        u = u.detach().requires_grad_(True)
    g = torch.autograd.grad(D(u).sum(), x if through_augment else u, create_graph=True)[0]
    return g.square().sum()
''',
            "norm_not_squared": '''
def r1_penalty(D, real, augment, through_augment=True):
    x = real.detach().requires_grad_(True)
    u = augment(x)
    if not through_augment:
        u = u.detach().requires_grad_(True)
    g = torch.autograd.grad(D(u).sum(), x if through_augment else u, create_graph=True)[0]
    return g.flatten(1).norm(dim=1).mean()
''',
            "backward_writes_d_grad": '''
def r1_penalty(D, real, augment, through_augment=True):
    x = real.detach().requires_grad_(True)
    u = augment(x)
    if not through_augment:
        u = u.detach().requires_grad_(True)
    D(u).sum().backward(create_graph=True)
    g = (x if through_augment else u).grad
    return g.square().sum([1, 2, 3]).mean()
''',
            "augment_drawn_twice": '''
def r1_penalty(D, real, augment, through_augment=True):
    x = real.detach().requires_grad_(True)
    augment(x)                                   # a first draw, thrown away
    u = augment(x)
    if not through_augment:
        u = u.detach().requires_grad_(True)
    g = torch.autograd.grad(D(u).sum(), x if through_augment else u, create_graph=True)[0]
    return g.square().sum([1, 2, 3]).mean()
''',
        },
    },
}
