"""Analyses over the model contract: prediction tracks, variant effects (`variants`) and
contribution scores (`contributions`, `contribution_outputs`, `logos`); models are loaded and
batched over a strategy's replicas by `inference`."""

from tf_seqmodels.analysis.tracks import (predict_tracks, predicted_track, write_prediction_bigwig,
                                          write_track_bigwig)

__all__ = ["predict_tracks", "predicted_track", "write_prediction_bigwig", "write_track_bigwig"]
