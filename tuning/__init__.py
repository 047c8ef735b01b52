"""keras-tuner searches over tf-seqmodels models (see README: Roadmap)."""
