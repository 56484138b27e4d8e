"""The adversarial core, the shared training loop, checkpoints and the per-task wiring.

``translate.train.train(task, …)`` is ``translate train`` as one call (:mod:`.launch`).
"""

from translate.train.launch import TrainOutcome, build_task, load_train_config, train

__all__ = ["TrainOutcome", "build_task", "load_train_config", "train"]
