"""Bias-model QC: does the bias model capture the enzyme and nothing else?

Checks (all recorded in `bias_qc.json`; the report shows them):

- counts: Pearson r of log(1 + total) on test peaks and non-peaks, profile JSD. The
  reference's gate: Pearson on peaks must exceed -0.5 (below, the bias model has learned
  that AT-rich sequence is inaccessible: raise the bias threshold factor). A failure stops
  the pipeline, as the reference's assert does.
- enzyme: the marginal footprint of each enzyme motif in the bias model (`max_ratio` =
  footprint maximum x output length; a bias model that learnt the enzyme's preference
  answers the enzyme k-mer with a sharp profile peak, ratio >> 1).
- TF motifs (the users' most common failure, a bias model trained with too high a threshold
  factor learns accessibility): a TF motif must not raise the bias model's predicted counts
  (`counts_log2fc` >= 0.5, i.e. +41% from one motif instance). The profile response
  (`max_ratio`) is recorded but not flagged: a bias model rightly shapes the profile of any
  sequence holding bases the enzyme prefers, TF motifs included. TF motifs come from the
  user (name<TAB>sequence), and after TF-MoDISco from the motifs the bias-corrected model
  learnt (those resembling an enzyme motif excluded). Flags are warnings, not failures: the
  report tells the user to lower the threshold factor or use a pre-trained bias model.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from tf_seqmodels.chrombpnet import evaluation
from tf_seqmodels.chrombpnet.footprints import footprints
from tf_seqmodels.data.chrombpnet import RegionSet

PEAK_PEARSON_GATE = -0.5  # reference: assert bias pearson on peaks > -0.5
TF_COUNTS_LOG2FC = 0.5


class BiasQCError(ValueError):
  """The bias model fails the reference's hard gate."""


def tf_motif_flags(bias_footprints: Mapping[str, dict], tf_names) -> list[str]:
  """Human-readable flags for TF motifs that raise the bias model's predicted counts."""
  flags = []
  for name in tf_names:
    fp = bias_footprints[name]
    if fp["counts_log2fc"] >= TF_COUNTS_LOG2FC:
      flags.append(f"bias model responds to TF motif {name} ({fp['motif']}): one copy raises its "
                   f"predicted counts {2 ** fp['counts_log2fc']:.2f}x -> the bias model has learnt "
                   f"a TF motif; lower the bias threshold factor or use a pre-trained bias model")
  return flags


def bias_qc(bias_model, test: RegionSet, backgrounds: np.ndarray, enzyme_motifs: Mapping[str, str],
            tf_motifs: Mapping[str, str], batch_size: int = 64) -> dict:
  """Metrics, footprints and flags of a bias model (see the module docstring)."""
  predicted = evaluation.predict(bias_model, test.one_hot(), batch_size)
  result = {"metrics": evaluation.metrics(test.counts, predicted, test.is_peak)}
  motifs = {**enzyme_motifs, **tf_motifs}
  prints = {name: fp.to_dict() for name, fp in
            footprints(bias_model, backgrounds, motifs, batch_size).items()} if motifs else {}
  result["footprints"] = prints
  result["enzyme_motifs"] = dict(enzyme_motifs)
  result["tf_motifs"] = dict(tf_motifs)
  result["flags"] = tf_motif_flags(prints, tf_motifs)
  peak_r = result["metrics"].get("peaks", {}).get("pearsonr", float("nan"))
  result["peak_pearson_gate"] = {"value": peak_r, "threshold": PEAK_PEARSON_GATE,
                                 "passed": bool(not np.isfinite(peak_r) or peak_r > PEAK_PEARSON_GATE)}
  return result


def check_gate(result: dict) -> None:
  gate = result["peak_pearson_gate"]
  if not gate["passed"]:
    raise BiasQCError(f"bias model counts Pearson r on test peaks is {gate['value']:.3f} <= "
                      f"{PEAK_PEARSON_GATE}: it predicts low counts where accessibility is high "
                      f"(AT-rich bias); raise the bias threshold factor and retrain the bias")


__all__ = ["BiasQCError", "PEAK_PEARSON_GATE", "TF_COUNTS_LOG2FC", "bias_qc",
           "check_gate", "tf_motif_flags"]
