"""Losses and metrics per task (the task contract is in tasks.base)."""

from tf_seqmodels.tasks.base import StreamingMetric, StreamingPearson, Task

__all__ = ["StreamingMetric", "StreamingPearson", "Task"]
