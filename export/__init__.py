"""TF-Hub SavedModel and Kipoi model-folder exporters: `export.hub.export_hub`,
`export.kipoi.export_kipoi` (parity-checked, atomic; see their module docstrings)."""
