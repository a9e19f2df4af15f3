"""Interactive widgets for the notebooks (top layer: may use models, bench and plots).

``anycost_preview``: an ipywidgets preview of an Anycost generator (Lab 4): sliders for the channel ratio, the output
resolution and the latent seed redraw the samples and report their MACs and measured latency.

Runs headless (papermill, nbgrader): the widgets are built and drawn once without a browser, and
setting a slider's ``value`` from code redraws exactly as dragging it would.
"""
from __future__ import annotations

from typing import Sequence

import torch

from . import bench, plots
from .gan import anycost


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
        was_training = G.training
        G.eval()
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
            G.train(was_training)
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
