"""Tied weights: a decoder that reuses the transposes of its encoder's kernels.

An MLP encoder with widths [a, b] and code width K has kernels W_0 [D, a], W_1 [a, b],
W_2 [b, K]; the mirrored decoder (widths [b, a], output D) has layers of shapes [K, b],
[b, a], [a, D], exactly the transposes in reverse order. With n dense layers:

    decoder Dense_i kernel = (encoder Dense_{n-1-i} kernel)^T,   i = 0 .. n-1

The decoder keeps its own biases (and any norm or PReLU parameters); its stored parameters
hold no kernels at all, so the parameter count is honest and the optimizer never sees an
unused copy. Before the decoder module is applied, :func:`tied_decoder_params` builds the
full tree it expects from the encoder's kernels and the decoder's own leaves; gradients
then flow into the encoder's kernels from both uses.
"""

from typing import Any

import jax.numpy as jnp

from dlcore.config.errors import FieldError

Params = dict[str, Any]


def dense_layers(params: Params) -> int:
    """The number n of ``Dense_<i>`` layers in an MLP's parameter tree."""
    return sum(1 for name in params if name.startswith("Dense_"))


def drop_kernels(decoder_params: Params) -> Params:
    """The decoder's parameters without the kernels tying replaces; a layer that had
    nothing but a kernel (a Dense before batch norm has no bias) disappears."""
    out = {}
    for name, leaves in decoder_params.items():
        if name.startswith("Dense_"):
            leaves = {k: v for k, v in leaves.items() if k != "kernel"}
            if not leaves:
                continue
        out[name] = leaves
    return out


def tied_decoder_params(encoder_params: Params, decoder_params: Params) -> Params:
    """The full decoder tree: kernel of Dense_i = (encoder Dense_{n-1-i} kernel)^T, the rest
    (biases, norm parameters) the decoder's own.

    Args:
      encoder_params: an MLP's parameters, ``Dense_0 .. Dense_{n-1}`` with kernels.
      decoder_params: the mirrored MLP's parameters after :func:`drop_kernels`.

    Returns:
      A tree the decoder module applies as if it were untied.

    Example:
      >>> dec = tied_decoder_params(params["encoder"], params["decoder"])
      >>> decoder.apply({"params": dec}, z_BxK, train=False)   # uses W^T
    """
    n = dense_layers(encoder_params)
    out = dict(decoder_params)
    for i in range(n):
        kernel = jnp.transpose(encoder_params[f"Dense_{n - 1 - i}"]["kernel"])
        out[f"Dense_{i}"] = {**decoder_params.get(f"Dense_{i}", {}), "kernel": kernel}
    return out


def _widths(section) -> list[int] | None:
    # Only these two models are plain stacks of Dense layers named Dense_0, Dense_1, ...
    if section.name == "mlp":
        return list(section.widths)
    if section.name == "linear":
        return []
    return None


def _plain_dense(section) -> str | None:
    """Why an mlp's layers are not Dense kernels that could be tied, else None."""
    if section.name != "mlp":
        return None
    if section.activation == "maxout":
        return "activation = 'maxout' (maxout layers have no single kernel)"
    if section.dropconnect > 0 or section.weight_noise > 0:
        return "dropconnect or weight_noise (they perturb the kernel they own)"
    return None


def check_mirrored(encoder, decoder) -> None:
    """Refuses tying unless both models are mlp/linear and the decoder mirrors the encoder.

    Args:
      encoder: the ``[models.encoder]`` section.
      decoder: the ``[models.decoder]`` section.

    Raises:
      FieldError: naming ``models.<role>.name``, ``models.decoder.widths`` or the option.
    """
    for role, section in (("encoder", encoder), ("decoder", decoder)):
        if _widths(section) is None:
            raise FieldError(
                f"models.{role}.name",
                f"tied = true needs mlp or linear models (stacks of dense layers); got "
                f"{section.name}",
            )
        problem = _plain_dense(section)
        if problem is not None:
            raise FieldError(f"models.{role}", f"tied = true cannot tie {problem}")
    mirrored = _widths(encoder)[::-1]
    if _widths(decoder) != mirrored:
        raise FieldError(
            "models.decoder.widths",
            f"tied = true needs the encoder's widths reversed, {mirrored}, so that every "
            f"decoder kernel is an encoder kernel transposed; got {_widths(decoder)}",
        )
