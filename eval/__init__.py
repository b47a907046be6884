"""Evaluation: maps of images (localization/), runs over sets of images into OUT (runs/), what
a person reads (reporting/), evaluation inputs (data/), and the paper's metrics with their
chance levels (metrics.py, chance.py).

Imports run one way: runs -> reporting, localization, data -> exif_jax; eval is never imported
by exif_jax or data_prep.
"""
