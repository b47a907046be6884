"""What a person reads: the HTML report, its charts, and the paper's tables from finished runs.

May import: eval (the metrics' names), eval.localization (map colours), exif_jax.data,
exif_jax.cli, data_prep (input listing).
"""
