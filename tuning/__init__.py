"""keras-tuner searches over tf-seqmodels models: `tuning.spaces` (declared search spaces per
model family), `tuning.tuner` (Random / Bayesian / Hyperband tuners training through the
trainer; `run_search`)."""
