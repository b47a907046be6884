"""A set of inputs -> OUT, resumably: the `localize` and `eval` commands and their flags, the
image loop with read-ahead and write-behind, worker shares, the output folder, and the
robustness sweep.

May import: eval.localization, eval.reporting, eval.data, eval.metrics, exif_jax, data_prep
(its input listing).
"""
