"""Photos in, training pairs out: the attribute list, the on-disk records, the Grain pair and
all-pairs pipelines, post-processing augmentations, virtual cameras, camera labels, and the
file rules every part shares (image suffixes, atomic writes, JPEG scan checks).

May import: nothing else of the project (data_prep, training and eval build on it).
"""
