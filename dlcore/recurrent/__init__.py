"""Recurrent networks: cells, the padding-aware sequence layer, stacks, truncated BPTT."""

from dlcore.recurrent.cells import (
    CELLS,
    CoupledLSTMCell,
    ElmanCell,
    GRUCell,
    LSTMCell,
    PeepholeLSTMCell,
    RecurrentCell,
    make_cell,
)
from dlcore.recurrent.inits import RECURRENT_INITS, get_recurrent_init
from dlcore.recurrent.sequence import RNN

__all__ = [
    "CELLS",
    "RECURRENT_INITS",
    "RNN",
    "CoupledLSTMCell",
    "ElmanCell",
    "GRUCell",
    "LSTMCell",
    "PeepholeLSTMCell",
    "RecurrentCell",
    "get_recurrent_init",
    "make_cell",
]
