"""Interactive widgets for the notebooks (top layer: may use models, bench and plots).

``anycost_preview``: an ipywidgets preview of an Anycost generator (Lab 4): sliders for the channel ratio, the output
resolution and the latent seed redraw the samples and report their MACs and measured latency.

``diffusion_editor``: Lab 8's editor: pick a grid cell and a digit to put there; shows the crude edit, the
dense and the sparse (SIGE) SDEdit, the mask and the tiles it reaches, and the time of one edit both ways.

Runs headless (papermill, nbgrader): the widgets are built and drawn once without a browser, and
setting a slider's ``value`` from code redraws exactly as dragging it would.
"""
from __future__ import annotations

from typing import Sequence

import torch

from . import bench, plots
from .diffusion import data as ddata
from .gan import anycost
from .training import eval_mode


def anycost_preview(G: anycost.AnycostGenerator, ratios: Sequence[float] | None = None, n_samples: int = 16,
            seed: int = 0, latency_batch: int = 1, min_run_time: float = 0.05):
    """A ``VBox`` of three sliders (ratio, resolution, seed), a status line and the sample grid.

    Each redraw samples ``n_samples`` images from the latents of ``seed`` at the chosen ratio and
    resolution, counts the MACs of one image (``effcourse.bench.count_macs``) and times a batch of
    ``latency_batch`` (``effcourse.bench.latency``, a median). The returned box has ``.redraw()``,
    ``.ratio``, ``.resolution``, ``.seed`` (the sliders) and ``.status`` (the text line).
    """
    import ipywidgets as W
    import matplotlib.pyplot as plt
    from IPython.display import display


    ratios = tuple(G.choices if ratios is None else ratios)
    ratio = W.SelectionSlider(options=list(ratios), value=max(ratios), description="ratio")
    resolution = W.SelectionSlider(options=list(G.resolutions), value=G.resolutions[-1], description="resolution")
    seed_slider = W.IntSlider(value=int(seed), min=0, max=99, description="seed")
    status = W.HTML()
    out = W.Output()

    def redraw(*_):
        r, res, s = float(ratio.value), int(resolution.value), int(seed_slider.value)
        z = torch.randn(n_samples, G.z_dim, generator=torch.Generator().manual_seed(s))
        old = G.ratios
        with eval_mode(G):
            try:
                images = anycost.sample(G, z, r, res)
                G.set_ratio(r)
                macs = bench.count_macs(G, z[:1], res)
                zb = z[:1].expand(max(1, int(latency_batch)), -1).contiguous()

                def run():
                    with torch.no_grad():
                        G(zb, res)

                ms = 1e3 * bench.latency(run, min_run_time=min_run_time, warmup=1)
            finally:
                G.set_ratio(old)
        status.value = (f"<b>ratio {r:g}, {res}x{res} px</b>: {macs / 1e6:.2f} M MACs per image, "
                        f"{ms:.2f} ms per batch of {max(1, int(latency_batch))} (median)")
        with out:
            out.clear_output(wait=True)
            fig, ax = plt.subplots(figsize=(6, 1.8))
            plots.image_grid(images, nrow=8, ax=ax, vmin=-1, vmax=1)
            plt.show()
            plt.close(fig)

    for w in (ratio, resolution, seed_slider):
        w.observe(redraw, names="value")
    box = W.VBox([W.HBox([ratio, resolution, seed_slider]), status, out])
    box.redraw, box.ratio, box.resolution, box.seed, box.status = redraw, ratio, resolution, seed_slider, status
    redraw()
    display(box)
    return box


def diffusion_editor(pic: torch.Tensor, caches: dict, dense_edit, sparse_edit, mask_of, tile: int = 8):
    """A ``VBox``: sliders for the grid cell (row, col) and the bundled digit put there, a status line
    and four panels (crude edit with the mask's tiles, dense SDEdit, sparse SDEdit, their difference).

    ``pic``: the cached original ``(1, 1, 8*rows, 8*cols)``; ``caches``: its per-step caches (their
    number is shown); ``dense_edit(x0_edit)`` and ``sparse_edit(x0_edit, mask)`` run one edit (the
    learner's SDEdit and sparse SDEdit); ``mask_of(x0_edit)`` the dilated edit mask. Each redraw
    times one edit each way. The box has ``.redraw()``, ``.row``, ``.col``, ``.digit``, ``.status``.
    """
    import time

    import ipywidgets as W
    import matplotlib.patches as patches
    import matplotlib.pyplot as plt
    from IPython.display import display

    rows, cols = pic.shape[-2] // ddata.DIGIT, pic.shape[-1] // ddata.DIGIT
    pool = ddata.digits()
    row = W.IntSlider(value=min(1, rows - 1), min=0, max=rows - 1, description="row")
    col = W.IntSlider(value=min(2, cols - 1), min=0, max=cols - 1, description="col")
    digit = W.IntSlider(value=0, min=0, max=len(pool) - 1, description="digit #")
    status = W.HTML()
    out = W.Output()

    def redraw(*_):
        r, c, k = int(row.value), int(col.value), int(digit.value)
        edited = ddata.replace_cells(pic, [(r, c)], pool[k:k + 1])
        mask = torch.as_tensor(mask_of(edited))
        with torch.no_grad():
            t0 = time.perf_counter()
            dense = dense_edit(edited)
            t1 = time.perf_counter()
            sparse = sparse_edit(edited, mask)
            t2 = time.perf_counter()
        status.value = (f"<b>cell ({r}, {c}) &larr; digit #{k}</b>: mask {100 * float(mask.float().mean()):.1f} % "
                        f"of the picture, {len(caches)} steps; one edit dense {1e3 * (t1 - t0):.0f} ms, sparse "
                        f"{1e3 * (t2 - t1):.0f} ms ({(t1 - t0) / max(t2 - t1, 1e-9):.1f}x); max |sparse - dense| "
                        f"{float((sparse - dense).abs().max()):.3f}")
        with out:
            out.clear_output(wait=True)
            fig, axes = plt.subplots(1, 4, figsize=(11, 2.9))
            panels = [(edited, "crude edit + tiles"), (dense, "dense SDEdit"), (sparse, "sparse SDEdit")]
            for ax, (img, title) in zip(axes, panels):
                ax.imshow(img[0, 0].clamp(-1, 1), cmap="gray", vmin=-1, vmax=1)
                ax.set_title(title)
            axes[3].imshow((sparse - dense)[0, 0].abs(), cmap="magma")
            axes[3].set_title("|sparse - dense|")
            H, Wd = mask.shape
            for i in range(-(-H // tile)):
                for j in range(-(-Wd // tile)):
                    if bool(mask[i * tile:(i + 1) * tile, j * tile:(j + 1) * tile].any()):
                        axes[0].add_patch(patches.Rectangle((j * tile - 0.5, i * tile - 0.5), tile, tile, fill=False,
                                                            edgecolor="cyan", linewidth=0.8))
            for ax in axes:
                ax.axis("off")
            plt.tight_layout()
            plt.show()
            plt.close(fig)

    for w in (row, col, digit):
        w.observe(redraw, names="value")
    box = W.VBox([W.HBox([row, col, digit]), status, out])
    box.redraw, box.row, box.col, box.digit, box.status = redraw, row, col, digit, status
    redraw()
    display(box)
    return box
