"""TF-Hub SavedModel and Kipoi model-folder exporters (see README: Roadmap)."""
