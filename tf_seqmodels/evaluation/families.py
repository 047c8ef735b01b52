"""Imports the built-in evaluators so that they register (tracks, DREAM, regression,
ChromBPNet); other packages register theirs with `register_evaluator`."""

from tf_seqmodels.evaluation import chrombpnet, dream, tracks  # noqa: F401
from tf_seqmodels.evaluation import chromoformer  # noqa: F401,E402
