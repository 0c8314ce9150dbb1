"""rnn_core: the vanilla character-level RNN of min-char-rnn in NumPy, exact, batched and fast.

One implementation of the math serves training, visualisation and sampling in the app and the CLI.
"""
from .checkpoint import checkpoint_bytes, load_checkpoint, load_checkpoint_bytes, save_checkpoint
from .gradcheck import gradcheck, gradcheck_table
from .model import PARAM_NAMES, ForwardTrace, VanillaRNN
from .optim import OPTIMIZERS
from .trainer import DivergenceError, Trainer
from .vocab import Vocab

__all__ = ["Vocab", "VanillaRNN", "Trainer", "save_checkpoint", "load_checkpoint", "gradcheck",
           "gradcheck_table", "DivergenceError", "ForwardTrace", "PARAM_NAMES", "OPTIMIZERS",
           "checkpoint_bytes", "load_checkpoint_bytes"]
