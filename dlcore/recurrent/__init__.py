"""Recurrent networks: cells, the padding-aware sequence layer, stacks, truncated BPTT."""

from dlcore.recurrent.cells import (
    CELLS,
    CoupledLSTMCell,
    ElmanCell,
    GRUCell,
    LSTMCell,
    PeepholeLSTMCell,
    RecurrentCell,
    coupled_lstm_step,
    elman_step,
    gru_reset_after_step,
    gru_step,
    lstm_step,
    make_cell,
    peephole_lstm_step,
)
from dlcore.recurrent.diagnostics import hidden_grad_norms
from dlcore.recurrent.inits import RECURRENT_INITS, gate_blocks_init, get_recurrent_init
from dlcore.recurrent.lstm_vjp import lstm_scan_vjp
from dlcore.recurrent.scan import lengths_to_mask, reverse_within_lengths, scan_cell
from dlcore.recurrent.sequence import RNN, resolve_lengths
from dlcore.recurrent.stacks import Bidirectional, StackedRNN, merge_directions
from dlcore.recurrent.tbptt import detach, reset_carry, split_chunks, tbptt_step, truncated_bptt

__all__ = [
    "CELLS",
    "RECURRENT_INITS",
    "RNN",
    "Bidirectional",
    "CoupledLSTMCell",
    "ElmanCell",
    "GRUCell",
    "LSTMCell",
    "PeepholeLSTMCell",
    "RecurrentCell",
    "StackedRNN",
    "coupled_lstm_step",
    "detach",
    "elman_step",
    "gate_blocks_init",
    "get_recurrent_init",
    "gru_reset_after_step",
    "gru_step",
    "hidden_grad_norms",
    "lengths_to_mask",
    "lstm_scan_vjp",
    "lstm_step",
    "make_cell",
    "merge_directions",
    "peephole_lstm_step",
    "reset_carry",
    "resolve_lengths",
    "reverse_within_lengths",
    "scan_cell",
    "split_chunks",
    "tbptt_step",
    "truncated_bptt",
]
