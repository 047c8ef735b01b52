"""The hypothetical contribution scores of every `contributions --method` that writes them.

One function for the `contributions` command, the ChromBPNet pipeline and (through
`contributions.hypothetical_from_gradients`, which the Beam workers call) `--runner beam`,
so each method means one thing everywhere: TF-MoDISco's `shap/seq`, times the one-hot input
for the projected scores. Its own module because it calls both `contributions` and
`deeplift`, and `deeplift` builds on `contributions`.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from tf_seqmodels.analysis import contributions as C
from tf_seqmodels.analysis.deeplift import deeplift
from tf_seqmodels.analysis.inference import AnalysisModel, BatchRunner

METHODS = C.GRADIENT_METHODS + ("deeplift", "ism")


def hypothetical_contributions(model: AnalysisModel, one_hot: np.ndarray, target: C.Target,
                               method: str, runner: Optional[BatchRunner] = None, *,
                               num_references: int = 10, steps: int = 8, seed: int = 0,
                               batch_size: int = 16, strict: bool = True,
                               progress: bool = False) -> np.ndarray:
  """The hypothetical contributions [N, L, 4] that `tf-seqmodels contributions --method`
  writes (TF-MoDISco's `shap/seq`; times `one_hot` gives the projected scores): centred
  gradients (gradient_x_input), DeepSHAP-style expected gradients (deepshap), DeepLIFT rescale
  rule (deeplift; `strict`: refuse ops without a rule), or ISM deltas centred over the bases
  (ism). Sequence k's references are seeded `seed + k`. `batch_size` counts sequences per
  forward pass."""
  if method in C.GRADIENT_METHODS:
    return C.hypothetical_from_gradients(
        method, one_hot, lambda x: C.gradients(model, x, target, runner, batch_size),
        num_references=num_references, steps=steps, seed=seed, progress=progress)
  if method == "deeplift":
    return deeplift(model, one_hot, target, runner, num_references, seed=seed,
                    batch_size=batch_size, strict=strict, progress=progress)
  if method == "ism":
    return C.centre_bases(C.ism(model, one_hot, target, runner, batch_size=batch_size,
                                progress=progress))
  raise ValueError(f"unknown contribution method {method!r}; methods: {', '.join(METHODS)}")
