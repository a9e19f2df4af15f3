"""Network surgery before incremental inference (SIGE, Lab 5): layers rewritten so that every
remaining op is either a plain ``nn.Conv2d`` or pixel-local.

* ``ZeroStuff(stride, extra)``: put each input pixel at every ``stride``-th position of a larger
  zero image (with ``extra`` zero rows/columns at the end). With it, a transposed convolution is a
  plain convolution: ``transposed_as_conv(deconv)`` returns ``nn.Sequential(ZeroStuff, nn.Conv2d)``
  computing exactly ``deconv(x)``, so the tile geometry of ordinary convs covers decoders too.
* ``FrozenNorm(norm)``: an ``nn.InstanceNorm2d`` or ``nn.GroupNorm`` that normalises with the
  statistics of the *original* image. In ``"full"`` mode it measures the per-image (per group)
  mean and variance and stores the resulting per-channel ``scale`` and ``shift``; in ``"sparse"``
  mode it applies the stored ``x * scale + shift``, a pixel-local affine map. This is how official
  SIGE handles GroupNorm (``my_group_norm`` in its diffusion models keeps scale and shift from the
  original image's run): an edit no longer changes every pixel through the statistics, at the price
  of an approximation, since the edited image's statistics differ a little.
"""
from __future__ import annotations

import torch
from torch import nn

__all__ = ["ZeroStuff", "transposed_as_conv", "FrozenNorm", "NORMS"]

#: Normalisations with per-image statistics that ``FrozenNorm`` can freeze.
NORMS = (nn.InstanceNorm2d, nn.GroupNorm)


class ZeroStuff(nn.Module):
    """``(N, C, H, W) -> (N, C, (H-1)*stride + 1 + extra, (W-1)*stride + 1 + extra)``: input pixel
    ``(r, c)`` lands at ``(r*stride, c*stride)``, every other pixel is zero."""

    def __init__(self, stride: int, extra: int = 0):
        super().__init__()
        if int(stride) < 1 or int(extra) < 0:
            raise ValueError(f"ZeroStuff needs stride >= 1 and extra >= 0, got {stride} and {extra}")
        self.stride, self.extra = int(stride), int(extra)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        s, e = self.stride, self.extra
        out = x.new_zeros(n, c, (h - 1) * s + 1 + e, (w - 1) * s + 1 + e)
        out[:, :, : (h - 1) * s + 1 : s, : (w - 1) * s + 1 : s] = x
        return out

    def extra_repr(self) -> str:
        return f"stride={self.stride}, extra={self.extra}"


def _square(value, what: str, name: str) -> int:
    vals = tuple(value) if isinstance(value, (tuple, list)) else (value, value)
    if len(set(vals)) != 1:
        raise ValueError(f"layer {name!r}: non-square {what} {vals} is not supported (tiles are square)")
    return int(vals[0])


def transposed_as_conv(deconv: nn.ConvTranspose2d, name: str = "deconv") -> nn.Sequential:
    """``nn.Sequential(ZeroStuff, nn.Conv2d)`` equal to ``deconv`` (square kernel, stride, padding and
    output padding, dilation 1, zero padding, ``padding <= kernel_size - 1``).

    A transposed conv with kernel k, stride s, padding p and output padding o scatters each input
    pixel over a k x k window of an s-times larger grid. The same numbers come out of a plain
    stride-1 conv with the kernel flipped and its in/out axes swapped, run with padding k - 1 - p on
    the input stuffed with zeros (s - 1 zeros between pixels, o extra zeros at the end).
    """
    k = _square(deconv.kernel_size, "kernel_size", name)
    s = _square(deconv.stride, "stride", name)
    p = _square(deconv.padding, "padding", name)
    o = _square(deconv.output_padding, "output_padding", name)
    if _square(deconv.dilation, "dilation", name) != 1 or deconv.padding_mode != "zeros":
        raise ValueError(f"layer {name!r}: only dilation 1 and zero padding are supported for transposed convs")
    if p > k - 1:
        raise ValueError(f"layer {name!r}: padding {p} > kernel_size - 1 cannot be written as a padded conv")
    g = deconv.groups
    cin, cout = deconv.in_channels, deconv.out_channels
    conv = nn.Conv2d(cin, cout, k, stride=1, padding=k - 1 - p, groups=g, bias=deconv.bias is not None)
    with torch.no_grad():
        w = deconv.weight.view(g, cin // g, cout // g, k, k).transpose(1, 2)      # (g, out/g, in/g, k, k)
        conv.weight.copy_(w.reshape(cout, cin // g, k, k).flip(-2, -1))
        if deconv.bias is not None:
            conv.bias.copy_(deconv.bias)
    return nn.Sequential(ZeroStuff(s, o), conv).train(deconv.training)


class FrozenNorm(nn.Module):
    """``norm`` (InstanceNorm2d or GroupNorm) with its statistics frozen from the last ``"full"`` call.

    ``mode = "full"``: per image ``n`` and group ``g``, mean and (biased) variance over the group's
    channels and pixels; stores ``scale[n, c] = weight[c] / sqrt(var + eps)`` and
    ``shift[n, c] = bias[c] - mean * scale[n, c]`` (weight 1, bias 0 without affine) and returns
    ``x * scale + shift``, which is ``norm(x)`` up to float rounding.
    ``mode = "sparse"``: returns ``x * scale + shift`` with the stored numbers. The input may be the
    full ``(N, C, H, W)`` tensor, or any ``(N*m, C, ...)`` stack of pieces of it in image-major order
    (m pieces per image: tiles, pixel lists), so the same module runs on gathered tiles.
    """

    def __init__(self, norm: nn.Module):
        super().__init__()
        if not isinstance(norm, NORMS):
            raise TypeError(f"FrozenNorm wraps InstanceNorm2d or GroupNorm, got {type(norm).__name__}")
        self.norm = norm
        self.mode = "full"
        self.scale: torch.Tensor | None = None
        self.shift: torch.Tensor | None = None

    def _statistics(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n, c = x.shape[:2]
        groups = self.norm.num_groups if isinstance(self.norm, nn.GroupNorm) else c
        var, mean = torch.var_mean(x.reshape(n, groups, -1), dim=2, unbiased=False)      # (n, groups)
        inv = torch.rsqrt(var + self.norm.eps)
        scale = inv.repeat_interleave(c // groups, dim=1)                                 # (n, c)
        shift = (-mean * inv).repeat_interleave(c // groups, dim=1)
        weight = getattr(self.norm, "weight", None)
        if weight is not None:
            scale, shift = scale * weight, shift * weight + self.norm.bias
        return scale, shift

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode == "full":
            self.scale, self.shift = self._statistics(x)
        elif self.mode != "sparse":
            raise ValueError(f"unknown mode {self.mode!r}; use 'full' or 'sparse'")
        elif self.scale is None:
            raise RuntimeError("FrozenNorm in sparse mode before any full run: no statistics to reuse")
        n = self.scale.shape[0]
        if x.shape[0] % n:
            raise ValueError(f"FrozenNorm holds statistics of {n} image(s); got a batch of {x.shape[0]}")
        reps = x.shape[0] // n
        shape = (x.shape[0], x.shape[1]) + (1,) * (x.dim() - 2)
        scale = self.scale.repeat_interleave(reps, dim=0).view(shape) if reps > 1 else self.scale.view(shape)
        shift = self.shift.repeat_interleave(reps, dim=0).view(shape) if reps > 1 else self.shift.view(shape)
        return x * scale + shift

    def extra_repr(self) -> str:
        return f"frozen statistics of {type(self.norm).__name__}"
