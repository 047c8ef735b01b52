"""Losses and metrics per task (the task contract is in tasks.base) and the task-type
registry (tasks.registry); importing this package registers the built-in task types."""

from tf_seqmodels.tasks.base import StreamingMetric, StreamingPearson, Task
from tf_seqmodels.tasks.chrombpnet import (ChromBPNetTask, CountsMetric, ProfileJSDMetric,
                                           jensen_shannon_distance, multinomial_nll, profile_jsd)
from tf_seqmodels.tasks.dream import (CHALLENGE_WEIGHTS, DreamSoftBinTask, MeanOfMetrics,
                                     RegressionTask, StreamingMSE, StreamingSpearman,
                                     challenge_scores, kl_divergence_loss, mse_loss, pearson_r,
                                     rankdata, spearman_rho)

__all__ = ["StreamingMetric", "StreamingPearson", "Task", "CHALLENGE_WEIGHTS", "DreamSoftBinTask",
           "MeanOfMetrics", "RegressionTask", "StreamingMSE", "StreamingSpearman",
           "challenge_scores", "kl_divergence_loss", "mse_loss", "pearson_r", "rankdata",
           "spearman_rho"]
__all__ += ["ChromBPNetTask", "CountsMetric", "ProfileJSDMetric", "jensen_shannon_distance",
            "multinomial_nll", "profile_jsd"]

from tf_seqmodels.tasks.tracks import StreamingTrackPearson, TrackTask, poisson_loss  # noqa: E402

__all__ += ["StreamingTrackPearson", "TrackTask", "poisson_loss"]

from tf_seqmodels.tasks.chromoformer import ChromoformerTask  # noqa: E402

__all__ += ["ChromoformerTask"]

from tf_seqmodels.tasks.base import select_metric, source_metric_directions  # noqa: E402
from tf_seqmodels.tasks.registry import (TaskEntry, available_tasks, get_task_type,  # noqa: E402
                                         import_evaluator, register_task)

__all__ += ["select_metric", "source_metric_directions", "TaskEntry", "available_tasks",
            "get_task_type", "import_evaluator", "register_task"]
