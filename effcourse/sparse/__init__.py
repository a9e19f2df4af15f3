"""Spatially sparse incremental inference (SIGE, Lab 5). One concept per module:

* ``engine``: ``convert`` a network's convs to the learner's sparse conv, ``set_mode``, and
  ``SparseRunner`` — the incremental engine (one difference mask, propagated reach masks,
  persistent channels-last buffers, epilogues) and the compare-with-cache path; MAC counting.
* ``graph``: the op vocabulary (conv, pointwise, resample, dense, meta) and ``torch.fx`` tracing.
* ``surgery``: ``transposed_as_conv`` (zero stuffing + conv) and ``FrozenNorm`` (InstanceNorm /
  GroupNorm statistics measured once and reused, SIGE's approximation).
* ``models``: the lab's networks and edits (``conv_stack``, ``ResGenerator``, ``square_edit``,
  ``EncoderDecoder``, ``tile_images``).

No exercise answer lives here: the tile search, gather, scatter and sparse conv are the learner's,
passed in as arguments.
"""
