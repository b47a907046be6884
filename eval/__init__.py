"""Evaluation: maps of images (localization/), runs over sets of images into OUT (runs/) and
the commands that drive them (commands/), what a person reads (reporting/), evaluation inputs
(data/), the paper's metrics with their chance levels (metrics.py, chance.py) and the
calibrated decision rule (calibration.py).

Imports run one way: commands -> runs -> reporting, localization, data -> exif_jax; eval is
never imported by exif_jax or data_prep.
"""
