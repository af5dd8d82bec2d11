"""Sequence to sequence: the model protocol, decoders, beam search and ensembles."""
