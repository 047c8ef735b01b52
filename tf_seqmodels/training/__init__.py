"""Training: optimizers, schedules, recipes and the single-device loop."""

from tf_seqmodels.training.loop import TrainStep, evaluate, fit, restore_best
from tf_seqmodels.training.optimizers import Adam, AdamW
from tf_seqmodels.training.recipes import DREAM_MAX_LR, DreamTrainingConfig
from tf_seqmodels.training.schedules import Constant, LinearWarmup, OneCycle, Schedule

__all__ = ["TrainStep", "evaluate", "fit", "restore_best", "Adam", "AdamW", "DREAM_MAX_LR",
           "DreamTrainingConfig", "Constant", "LinearWarmup", "OneCycle", "Schedule"]

# The distributed trainer (`trainer.fit` mirrors `loop.fit`'s signature; not re-exported as
# `fit` while `loop.fit` is).
from tf_seqmodels.training.run_config import TrainConfig, run_training  # noqa: E402
from tf_seqmodels.training.strategy import (MultiWorkerReplicator, StrategyConfig,  # noqa: E402
                                            StrategyError, StrategyInfo,
                                            configure_logical_devices, describe_strategy,
                                            make_strategy)
from tf_seqmodels.training.trainer import (NonFiniteLossError, Trainer,  # noqa: E402
                                           TrainerConfig, set_determinism)

__all__ += ["TrainConfig", "run_training", "MultiWorkerReplicator", "StrategyConfig",
            "StrategyError", "StrategyInfo", "configure_logical_devices", "describe_strategy",
            "make_strategy", "NonFiniteLossError", "Trainer", "TrainerConfig", "set_determinism"]
