"""Training: optimizers, schedules, recipes and the single-device loop."""

from tf_seqmodels.training.loop import TrainStep, evaluate, fit, restore_best
from tf_seqmodels.training.optimizers import Adam, AdamW
from tf_seqmodels.training.recipes import DREAM_MAX_LR, DreamTrainingConfig
from tf_seqmodels.training.schedules import Constant, LinearWarmup, OneCycle, Schedule

__all__ = ["TrainStep", "evaluate", "fit", "restore_best", "Adam", "AdamW", "DREAM_MAX_LR",
           "DreamTrainingConfig", "Constant", "LinearWarmup", "OneCycle", "Schedule"]
