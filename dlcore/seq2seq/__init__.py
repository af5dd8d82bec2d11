"""Sequence to sequence: the model protocol, decoders, beam search and ensembles."""

from dlcore.seq2seq.beam import Beams, beam_search, length_penalty
from dlcore.seq2seq.captioner import ShowAttendTell, ShowAttendTellConfig
from dlcore.seq2seq.decode import Decoded, ensemble, greedy, sample, strip
from dlcore.seq2seq.rnn_model import RNNSeq2Seq, RNNSeq2SeqConfig
from dlcore.seq2seq.transformer_blocks import DecoderBlock, EncoderBlock, sinusoidal_positions
from dlcore.seq2seq.transformer_lm import TransformerLM, TransformerLMConfig
from dlcore.seq2seq.transformer_model import TransformerSeq2Seq, TransformerSeq2SeqConfig

__all__ = [
    "Beams",
    "Decoded",
    "DecoderBlock",
    "EncoderBlock",
    "RNNSeq2Seq",
    "RNNSeq2SeqConfig",
    "ShowAttendTell",
    "ShowAttendTellConfig",
    "TransformerLM",
    "TransformerLMConfig",
    "TransformerSeq2Seq",
    "TransformerSeq2SeqConfig",
    "beam_search",
    "ensemble",
    "greedy",
    "length_penalty",
    "sample",
    "sinusoidal_positions",
    "strip",
]
