"""Analyses over the model contract: prediction tracks (and, in later modules, variant
effects and contribution scores)."""

from tf_seqmodels.analysis.tracks import (predict_tracks, predicted_track, write_prediction_bigwig,
                                          write_track_bigwig)

__all__ = ["predict_tracks", "predicted_track", "write_prediction_bigwig", "write_track_bigwig"]
