"""The RNN encoder–decoder behind the seq2seq protocol, with or without attention.

The encoder is a :class:`~dlcore.recurrent.StackedRNN` (optionally bidirectional) over the
embedded source x_1..x_L (read backwards within its length with ``reverse_source``, Sutskever
et al. 2014), with outputs H = (h_1..h_S); the decoder is a stack of cells whose layer l starts
from the encoder's final states through a "bridge":

    s_0^l = tanh(W_l [h→_L; h←_1] + b_l)      "dense", per layer and carry entry (h, and c)
    s_0^l = h→_L                             "copy" (unidirectional encoder)
    s_0^l = 0                                "zeros"

Without attention the decoder sees nothing else of the source (the classic fixed-size
bottleneck). With attention over H (padding masked) the wiring follows the score's paper, with
s_t the top decoder layer's state:

    Luong (dot, general, concat, scaled_dot):   s_t = RNN(s_{t-1}, [E y_{t-1}; h~_{t-1}])
                                                c_t = attend(s_t, H)
    Bahdanau (additive):                        c_t = attend(s_{t-1}, H)
                                                s_t = RNN(s_{t-1}, [E y_{t-1}; c_t; h~_{t-1}])
    both:                                       h~_t = tanh(W_c [c_t; s_t] + b_c)

and ``logits_t = W_o h~_t + b_o`` (``h~_t = s_t`` without attention). The term h~_{t-1} is
present only with ``input_feeding`` (Luong et al. 2015), where it lives in the carry.

Teacher forcing (``__call__``) runs the encoder once and the decoder over the whole target in
one pass: one ``lax.scan`` per layer when no step reads the previous step's attention
(Luong wiring without input feeding, or no attention), otherwise one ``nn.scan`` of the full
decoder step. Either way it equals ``encode`` + ``init_carry`` + ``step`` token by token.
"""

import inspect
from collections.abc import Mapping
from typing import Any, Literal

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax.core import FrozenDict
from pydantic import Field, PositiveInt, model_validator

from dlcore.checks import check_choice, check_rank
from dlcore.config.section import Section, one_of
from dlcore.data.dataset import DataSpec
from dlcore.data.needs import Need
from dlcore.layers.attention_scores import NORMALISERS, SCORES, Attention
from dlcore.recurrent import CELLS, StackedRNN, make_cell, reverse_within_lengths, scan_cell
from dlcore.seq2seq.protocol import source_mask

ATTENTIONS = ("none", *SCORES)
BRIDGES = ("dense", "copy", "zeros")
PREVIOUS_STATE_SCORES = ("additive",)  # Bahdanau: query with s_{t-1}, context into the step
SAME_WIDTH_SCORES = ("dot", "scaled_dot")  # query width must equal the key width


def check_options(
    *,
    cell: str,
    attention: str,
    normaliser: str,
    bridge: str,
    bidirectional: bool,
    input_feeding: bool,
    encoder_layers: int,
    decoder_layers: int,
    dropout: float,
) -> None:
    """One-line ValueErrors for options that do not fit together (shared by the module and
    its config section, so each rule is written once)."""
    check_choice(cell, CELLS, "cell")
    check_choice(attention, ATTENTIONS, "attention")
    check_choice(normaliser, NORMALISERS, "normaliser")
    check_choice(bridge, BRIDGES, "bridge")
    if min(encoder_layers, decoder_layers) < 1:
        raise ValueError(
            f"encoder_layers and decoder_layers must be >= 1; got {encoder_layers}, "
            f"{decoder_layers}"
        )
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1); got {dropout}")
    if input_feeding and attention == "none":
        raise ValueError("input_feeding feeds the attentional vector back: it needs attention")
    if bridge == "copy" and bidirectional:
        raise ValueError(
            "bridge 'copy' needs a unidirectional encoder (a bidirectional one has 2H-wide "
            "final states); use bridge 'dense'"
        )
    if attention in SAME_WIDTH_SCORES and bidirectional:
        raise ValueError(
            f"attention {attention!r} needs queries as wide as keys, but a bidirectional "
            "encoder's outputs are 2H wide; use 'general', 'additive' or 'concat'"
        )


class RNNSeq2Seq(nn.Module):
    """RNN encoder–decoder implementing :mod:`dlcore.seq2seq.protocol` (see the module
    docstring for the equations).

    Attributes:
      vocab_size: target vocabulary V (the output classes).
      src_vocab_size: source vocabulary (None: V).
      cell: recurrent cell of encoder and decoder, a name in ``CELLS`` ("lstm", "gru", ...).
      cell_kwargs: extra cell fields, e.g. ``{"reset_after": True}`` for a GRU.
      embed_dim: embedding width of source and target tokens.
      hidden: hidden size H of every layer (per direction in the encoder).
      encoder_layers, decoder_layers: stack depths; decoder layer l starts from encoder
        layer max(0, E − D + l) (the two stacks aligned at the top).
      bidirectional: bidirectional encoder; its final states [h→_L; h←_1] feed the bridge.
      reverse_source: read the source backwards within its length. The memory keeps the
        original order, so attention weights line up with the source tokens.
      bridge: "dense" (s_0 = tanh(W h + b)), "copy" (s_0 = h, unidirectional) or "zeros".
      attention: "none" or a score in ``SCORES`` ("additive" = Bahdanau wiring, the
        others Luong's).
      normaliser: "softmax", "sparsemax" or "entmax15".
      attention_dim: width A of the additive/concat scores (None: H).
      input_feeding: feed h~_{t-1} into step t (needs attention).
      dropout: on embeddings, between stacked layers and before the output layer.
      share_embeddings: the source reads the target's embedding table (one shared vocabulary;
        ``src_vocab_size`` must be None or V).

    Example:
      >>> model = RNNSeq2Seq(vocab_size=7, hidden=8, embed_dim=4, attention="general")
      >>> src, tgt_in = jnp.array([[3, 4, 0]]), jnp.array([[1, 4, 3]])
      >>> variables = model.init(jax.random.key(0), src, tgt_in, train=False)
      >>> model.apply(variables, src, tgt_in, train=False).shape
      (1, 3, 7)
    """

    vocab_size: int
    src_vocab_size: int | None = None
    cell: str = "lstm"
    cell_kwargs: Mapping[str, Any] = FrozenDict()
    embed_dim: int = 32
    hidden: int = 64
    encoder_layers: int = 1
    decoder_layers: int = 1
    bidirectional: bool = False
    reverse_source: bool = False
    bridge: str = "dense"
    attention: str = "none"
    normaliser: str = "softmax"
    attention_dim: int | None = None
    input_feeding: bool = False
    dropout: float = 0.0
    share_embeddings: bool = False

    def setup(self) -> None:
        check_options(
            cell=self.cell,
            attention=self.attention,
            normaliser=self.normaliser,
            bridge=self.bridge,
            bidirectional=self.bidirectional,
            input_feeding=self.input_feeding,
            encoder_layers=self.encoder_layers,
            decoder_layers=self.decoder_layers,
            dropout=self.dropout,
        )
        if self.share_embeddings and self.src_vocab_size not in (None, self.vocab_size):
            raise ValueError(
                "share_embeddings needs one vocabulary for source and target; got "
                f"{self.src_vocab_size} and {self.vocab_size} tokens"
            )
        kwargs = dict(self.cell_kwargs)
        self.tgt_embed = nn.Embed(self.vocab_size, self.embed_dim)
        if not self.share_embeddings:
            self.src_embed = nn.Embed(self.src_vocab_size or self.vocab_size, self.embed_dim)
        self.drop = nn.Dropout(self.dropout)
        self.encoder = StackedRNN(
            features=self.hidden,
            num_layers=self.encoder_layers,
            cell=self.cell,
            cell_kwargs=FrozenDict(kwargs),
            bidirectional=self.bidirectional,
            dropout=self.dropout,
        )
        self.decoder = [
            make_cell(self.cell, self.hidden, **kwargs) for _ in range(self.decoder_layers)
        ]
        names = self.decoder[0].carry_names
        if self.bridge == "dense":  # one W_l per decoder layer l and carry entry (h, c)
            self.bridges = [nn.Dense(self.hidden) for _ in range(self.decoder_layers * len(names))]
        if self.attention != "none":
            self.attend = Attention(
                score=self.attention,
                normaliser=self.normaliser,
                features=self.attention_dim or self.hidden,
            )
            self.combine = nn.Dense(self.hidden)  # W_c of h~_t = tanh(W_c [c_t; h_t])
        self.out = nn.Dense(self.vocab_size)

    # ------------------------------------------------------------------ the protocol

    def encode(self, src_BxS: jax.Array, *, train: bool = False) -> dict:
        """Memory ``{"mask": [B, S], "keys": [B, S, H'] (with attention), "final": [per
        decoder layer {name: [B, H'']}] (unless bridge = "zeros")}``, H' = H or 2H."""
        check_rank(src_BxS, 2, "RNNSeq2Seq sources", "[B, S] token ids")
        if not jnp.issubdtype(src_BxS.dtype, jnp.integer):
            raise ValueError(f"RNNSeq2Seq sources must be integer token ids; got {src_BxS.dtype}")
        mask_BxS = source_mask(src_BxS)
        lengths_B = jnp.sum(mask_BxS.astype(jnp.int32), axis=1)
        if self.reverse_source:
            src_BxS = reverse_within_lengths(src_BxS, lengths_B)
        embed = self.tgt_embed if self.share_embeddings else self.src_embed
        e_BxSxE = self.drop(embed(src_BxS), deterministic=not train)
        finals, y_BxSxH = self.encoder(e_BxSxE, train=train, lengths=lengths_B, return_carry=True)
        memory = {"mask": mask_BxS}
        if self.attention != "none":
            # Back to source order: attention over keys is order-free, its maps are not.
            rev = self.reverse_source
            memory["keys"] = reverse_within_lengths(y_BxSxH, lengths_B) if rev else y_BxSxH
        if self.bridge != "zeros":
            skip = self.encoder_layers - self.decoder_layers
            memory["final"] = [
                self._final_state(finals[max(0, skip + layer)])
                for layer in range(self.decoder_layers)
            ]
        return memory

    def _final_state(self, carry) -> dict:
        if not self.bidirectional:
            return dict(carry)
        fwd, bwd = carry  # h→ after step L − 1, h← after reading step 0
        return {name: jnp.concatenate([fwd[name], bwd[name]], axis=-1) for name in fwd}

    def init_carry(self, memory: dict) -> dict:
        """``{"rnn": [per decoder layer {name: [B, H]}], "feed": [B, H] (input feeding)}``."""
        batch = memory["mask"].shape[0]
        dtype = self.tgt_embed.embedding.dtype
        names = self.decoder[0].carry_names
        if self.bridge == "zeros":
            rnn = [cell.zero_carry(batch, dtype) for cell in self.decoder]
        elif self.bridge == "copy":
            rnn = [dict(final) for final in memory["final"]]
        else:
            rnn = [
                {
                    name: jnp.tanh(self.bridges[layer * len(names) + k](final[name]))
                    for k, name in enumerate(names)
                }
                for layer, final in enumerate(memory["final"])
            ]
        carry = {"rnn": rnn}
        if self.input_feeding:
            carry["feed"] = jnp.zeros((batch, self.hidden), dtype)
        return carry

    def step(self, memory: dict, carry: dict, token_B: jax.Array):
        """One decoding step: ``(carry, logits [B, V], {"attention": [B, S]})`` (all-zero
        attention without it, so the aux shapes never change)."""
        e_BxE = self.tgt_embed(token_B)
        carry, o_BxH, a_BxS = self._decoder_step(memory, carry, e_BxE, train=False)
        return carry, self.out(o_BxH), {"attention": a_BxS}

    def __call__(self, src_BxS: jax.Array, tgt_in_BxT: jax.Array, *, train: bool) -> jax.Array:
        """Teacher-forced logits ``[B, T, V]``: the gold previous token at every step
        (``tgt_in`` = ``<bos> w_1 ...``); ``train`` enables dropout (a "dropout" rng)."""
        check_rank(tgt_in_BxT, 2, "RNNSeq2Seq decoder inputs", "[B, T] token ids")
        memory = self.encode(src_BxS, train=train)
        carry = self.init_carry(memory)
        e_BxTxE = self.drop(self.tgt_embed(tgt_in_BxT), deterministic=not train)
        if self.input_feeding or self.attention in PREVIOUS_STATE_SCORES:
            o_BxTxH = self._decode_scan(memory, carry, e_BxTxE, train)
        else:
            o_BxTxH = self._decode_layers(memory, carry, e_BxTxE, train)
        return self.out(self.drop(o_BxTxH, deterministic=not train))

    # ------------------------------------------------------------------ the decoder

    def _attend(self, memory: dict, q_BxTxH: jax.Array) -> tuple[jax.Array, jax.Array]:
        keys = memory["keys"]
        return self.attend(q_BxTxH, keys, keys, memory["mask"])

    def _decoder_step(self, memory: dict, carry: dict, e_BxE: jax.Array, train: bool):
        """``(carry, h~_t [B, H], attention [B, S])`` for one step; see the module docstring."""
        parts = [e_BxE]
        if self.input_feeding:
            parts.append(carry["feed"])
        c_BxH = a_BxS = None
        if self.attention in PREVIOUS_STATE_SCORES:
            c_Bx1xH, a_Bx1xS = self._attend(memory, carry["rnn"][-1]["h"][:, None])
            c_BxH, a_BxS = c_Bx1xH[:, 0], a_Bx1xS[:, 0]
            parts.append(c_BxH)
        x_BxD = jnp.concatenate(parts, axis=-1)
        rnn = []
        for layer, cell in enumerate(self.decoder):
            if layer > 0:
                x_BxD = self.drop(x_BxD, deterministic=not train)
            layer_carry, x_BxD = cell(carry["rnn"][layer], x_BxD)
            rnn.append(layer_carry)
        h_BxH = x_BxD
        if self.attention != "none" and c_BxH is None:  # Luong: query with h_t
            c_Bx1xH, a_Bx1xS = self._attend(memory, h_BxH[:, None])
            c_BxH, a_BxS = c_Bx1xH[:, 0], a_Bx1xS[:, 0]
        if self.attention == "none":
            o_BxH, a_BxS = h_BxH, jnp.zeros(memory["mask"].shape, h_BxH.dtype)
        else:
            o_BxH = jnp.tanh(self.combine(jnp.concatenate([c_BxH, h_BxH], axis=-1)))
        new_carry = {"rnn": rnn}
        if self.input_feeding:
            new_carry["feed"] = o_BxH
        return new_carry, o_BxH, a_BxS

    def _decode_scan(self, memory: dict, carry: dict, e_BxTxE: jax.Array, train: bool):
        """The full decoder step in one ``nn.scan`` over time (parameters shared by all
        steps, a fresh dropout key per step): ``h~ [B, T, H]``."""

        def body(module, carry, e_BxE, memory):
            carry, o_BxH, _ = module._decoder_step(memory, carry, e_BxE, train)
            return carry, o_BxH

        scan = nn.scan(
            body,
            variable_broadcast="params",
            split_rngs={"params": False, "dropout": True},
            in_axes=(0, nn.broadcast),
            out_axes=0,
        )
        _, o_TxBxH = scan(self, carry, jnp.swapaxes(e_BxTxE, 0, 1), memory)
        return jnp.swapaxes(o_TxBxH, 0, 1)

    def _decode_layers(self, memory: dict, carry: dict, e_BxTxE: jax.Array, train: bool):
        """No step reads the previous step's attention: each decoder layer is one scan over
        the whole target (input projections hoisted), then attention for all T queries at
        once. Returns ``h~ [B, T, H]``."""
        x_BxTxD = e_BxTxE
        for layer, cell in enumerate(self.decoder):
            if layer > 0:
                x_BxTxD = self.drop(x_BxTxD, deterministic=not train)
            xp_TxBxG = cell.project(jnp.swapaxes(x_BxTxD, 0, 1))
            rec = cell.recurrent_params()
            _, y_TxBxH = scan_cell(cell.step_fn(), rec, carry["rnn"][layer], xp_TxBxG)
            x_BxTxD = jnp.swapaxes(y_TxBxH, 0, 1)
        if self.attention == "none":
            return x_BxTxD
        c_BxTxH, _ = self._attend(memory, x_BxTxD)
        return jnp.tanh(self.combine(jnp.concatenate([c_BxTxH, x_BxTxD], axis=-1)))


class RNNSeq2SeqConfig(Section):
    """RNN encoder–decoder over token sources (``x``, 0 = padding) and ``<bos> ... <eos>``
    targets: LSTM/GRU, bidirectional or reversed source, optional Bahdanau/Luong attention.

    The source vocabulary is the data set's ``vocab_size``; the target one the task's classes.
    """

    name: Literal["rnn_seq2seq"] = "rnn_seq2seq"
    cell: one_of(CELLS, "cell") = "lstm"
    reset_after: bool = Field(
        False, description="gru: reset gate after the recurrent matmul (PyTorch/cuDNN form)"
    )
    embed_dim: PositiveInt = 32
    hidden: PositiveInt = 64
    encoder_layers: PositiveInt = 1
    decoder_layers: PositiveInt = 1
    bidirectional: bool = False
    reverse_source: bool = Field(False, description="read the source backwards (Sutskever)")
    bridge: one_of(BRIDGES, "bridge") = "dense"
    attention: one_of(ATTENTIONS, "attention") = "none"
    normaliser: one_of(NORMALISERS, "normaliser") = "softmax"
    attention_dim: PositiveInt | None = Field(None, description="additive/concat width (None: H)")
    input_feeding: bool = Field(False, description="feed h~_{t-1} to step t (Luong)")
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    share_embeddings: bool = Field(False, description="source and target share one embedding")

    @model_validator(mode="after")
    def _options_fit(self):
        if self.reset_after and self.cell != "gru":
            raise ValueError(
                f"reset_after applies to the 'gru' cell; cell {self.cell!r} has no reset gate"
            )
        fields = self.model_dump(include=set(inspect.signature(check_options).parameters))
        check_options(**fields)
        return self

    def needs(self) -> tuple[Need, ...]:
        return (Need("x", ("tokens",), "source token ids [S] (0 = padding)", (1,)),)

    def make(self, out_features: int, data: DataSpec | None = None) -> RNNSeq2Seq:
        if data is None or "vocab_size" not in data.info:
            raise ValueError("model rnn_seq2seq needs a token data set with a vocabulary")
        src_vocab = int(data.info["vocab_size"])
        if self.share_embeddings and src_vocab != out_features:
            raise ValueError(
                f"share_embeddings needs one vocabulary; the source has {src_vocab} tokens, the "
                f"target {out_features}"
            )
        fields = self.model_dump(exclude={"name", "reset_after"})
        cell_kwargs = {"reset_after": True} if self.reset_after else {}  # only gru has it
        return RNNSeq2Seq(
            vocab_size=out_features,
            src_vocab_size=src_vocab,
            cell_kwargs=FrozenDict(cell_kwargs),
            **fields,
        )
