"""The command fronts of evaluation: `exif-jax localize`, `eval` and `calibrate`, their shared
flags (defined apart so that `--help` needs no JAX) and the set-up they share.

May import: all of eval, exif_jax, data_prep. Nothing imports it but the dispatcher.
"""
