"""TF-Hub SavedModel and Kipoi model-folder exporters: `tf_seqmodels.export.hub.export_hub`,
`tf_seqmodels.export.kipoi.export_kipoi` (parity-checked, atomic; see their module docstrings)."""
