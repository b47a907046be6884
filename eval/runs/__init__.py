"""A set of inputs -> OUT, resumably: the inputs, the image loop with read-ahead and
write-behind, worker shares, the output folder, each image's results, the summaries, and the
robustness sweep. The commands that drive it live in eval/commands.

May import: eval.localization, eval.reporting, eval.data, eval.metrics, exif_jax, data_prep
(its input listing).
"""
