"""Evaluation inputs: benchmark folders as each official release lays them out (and their TFDS
builders), synthetic splices between camera models, and image decoding with one-line reasons.

May import: exif_jax.data, exif_jax.cli, data_prep (input listing).
"""
