"""One image -> one map: the patch grid, the jitted consistency matrix, response maps, Mean
Shift and Normalized Cuts, the localizers (the learned model, the camera-classification
baseline, the training-free noise method).

May import: exif_jax (models, checkpoints, sharding, attributes). Nothing else of eval.
"""
