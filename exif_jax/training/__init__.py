"""Training runs: the jitted data-parallel loop and what each stage learns, the mesh and
shardings, Orbax checkpoints (restore, export, the TF1 converter) and the metrics files.

May import: exif_jax.data, exif_jax.models, exif_jax.cli (exit statuses, Ctrl-C).
"""
