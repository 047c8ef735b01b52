"""Evaluation as in the papers: evaluators keyed by task type, JSON + Markdown + PNG reports.

    tf-seqmodels evaluate --config run.yaml [--weights RUN_DIR|CKPT] [--split test] --out DIR

See `registry.py` for adding an evaluator (`register_evaluator(task_type)`), `metrics.py`
for the generic classification / regression report sections.
"""

from tf_seqmodels.evaluation.augmentation import TestTimeAugmentation, augmented_predict
from tf_seqmodels.evaluation.cage import TSSBins, gene_level_cage, map_tss_to_bins
from tf_seqmodels.evaluation.context import EvaluationContext
from tf_seqmodels.evaluation.metrics import (average_precision, classification_metrics,
                                             classification_section, precision_recall_curve,
                                             r2_score, regression_metrics, regression_section,
                                             roc_auc, roc_curve, scatter_figure)
from tf_seqmodels.evaluation.predict import Predictions, predict_dataset
from tf_seqmodels.evaluation.registry import (NoOptions, available_evaluators, evaluator_options,
                                              get_evaluator, register_evaluator)
from tf_seqmodels.evaluation.report import Report, Section, new_figure
from tf_seqmodels.evaluation.run import evaluate_run
