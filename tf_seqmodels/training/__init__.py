"""Training: one trainer (`Trainer`, or `fit` for one call) for every model, task and
strategy; optimizers and schedules; recipes; run assembly from config files (`run_config`)."""

from tf_seqmodels.training.checkpointing import CheckpointError, read_best, restore_model
from tf_seqmodels.training.optimizers import Adam, AdamW
from tf_seqmodels.training.recipes import DreamTrainingConfig, dream_train_config
from tf_seqmodels.training.run_config import (TrainConfig, assemble_run,
                                              read_train_config, run_training)
from tf_seqmodels.training.schedules import Constant, LinearWarmup, OneCycle, Schedule
from tf_seqmodels.training.strategy import (MultiWorkerReplicator, StrategyConfig, StrategyError,
                                            StrategyInfo, configure_logical_devices,
                                            describe_strategy, make_strategy)
from tf_seqmodels.training.trainer import (NonFiniteLossError, Trainer, TrainerConfig,
                                           TrainingInterrupted, evaluate, fit, set_determinism)

__all__ = ["CheckpointError", "read_best", "restore_model", "Adam", "AdamW", "DreamTrainingConfig",
           "dream_train_config", "TrainConfig", "assemble_run",
           "read_train_config", "run_training", "Constant", "LinearWarmup", "OneCycle",
           "Schedule", "MultiWorkerReplicator", "StrategyConfig", "StrategyError", "StrategyInfo",
           "configure_logical_devices", "describe_strategy", "make_strategy",
           "NonFiniteLossError", "Trainer", "TrainerConfig", "TrainingInterrupted", "evaluate", "fit",
           "set_determinism"]
