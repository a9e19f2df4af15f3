"""Efficient generative models: generators, discriminators and training loops for Labs 3, 4 and 6.

One module per lab (``pix2pix`` for GAN Compression, ``anycost`` for Anycost GAN, ``dcgan`` for
DiffAugment); import the module you need, e.g. ``from effcourse.gan import dcgan``.
"""
