"""keras-tuner searches over tf-seqmodels models: `tf_seqmodels.tuning.spaces` (declared search spaces per
model family), `tf_seqmodels.tuning.tuner` (Random / Bayesian / Hyperband tuners training through the
trainer; `run_search`)."""
