"""Training (chapters 1, 4-11): one loop for every model (Ho et al. 2020, Algorithm 1), EMA, atomic checkpoints and
weight files with cards, the classifier's training, chapter 10's augmented loss, and training on several processes
(torchrun). Never imports scoring or weights.
"""

from .augmented import augmented_loss
from .checkpoints import CheckpointError, architecture_of, atomic_save, load_checkpoint, load_weights, read_card, replace_atomically, save_weights
from .classifier import accuracy, random_shift, train_classifier
from .distributed import BatchSplit, ShardedModel, batch_split, init_distributed, is_main_process, main_process_first, process_count, process_rank
from .ema import EMA, decay_half_life, ema_decay_at
from .loop import StepHook, TrainConfig, TrainResult, train, training_loop
from .noisy_classifier import noisy_accuracy_by_t, train_noisy_classifier

__all__ = [
    "augmented_loss", "CheckpointError", "atomic_save", "load_checkpoint", "architecture_of", "save_weights", "load_weights", "read_card",
    "replace_atomically", "random_shift", "accuracy", "train_classifier", "EMA", "ema_decay_at", "decay_half_life", "TrainConfig",
    "TrainResult", "train", "training_loop", "StepHook",
    "init_distributed", "is_main_process", "process_rank", "process_count", "main_process_first", "BatchSplit", "batch_split", "ShardedModel",
    "train_noisy_classifier", "noisy_accuracy_by_t",
]
