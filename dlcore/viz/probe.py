"""Reading a layer's output inside a Flax model, by the layer's path.

A layer is named by its module path joined with ``/`` (``conv1``, ``stage2/block0/conv``)
or ``output`` for the model's own result. :func:`layer_output` runs the model only up to
that layer: a Flax method interceptor raises as soon as the layer returns, and the value
is caught inside the traced function, so gradients flow and the layers after it (a dense
head that fixes the input size) never run. That is why DeepDream on a convolutional
layer works at any image size.
"""

import flax.errors
import flax.linen as nn
import jax

OUTPUT = "output"  # the name of the model's own result


class _Reached(Exception):
    def __init__(self, value):
        super().__init__("layer reached")
        self.value = value


def _path(module: nn.Module) -> str:
    return "/".join(module.path) or OUTPUT


def _is_array(value) -> bool:
    return hasattr(value, "shape") and hasattr(value, "dtype")


def layer_output(module: nn.Module, variables, x: jax.Array, layer: str) -> jax.Array:
    """The output of ``layer`` when ``module`` reads ``x`` in evaluation mode.

    Args:
      module: a model called as ``module.apply(variables, x, train=False)``.
      variables: its variables (``{"params": ..., "batch_stats": ...}``).
      x: the model's input, e.g. ``[B, H, W, C]``.
      layer: a name from :func:`layer_shapes`.

    Returns:
      That layer's first output (its first call, if called more than once).

    Raises:
      ValueError: if the model never calls a layer of that name.

    Example:
      >>> import jax.numpy as jnp
      >>> from dlcore.models import LeNet5
      >>> model = LeNet5(out_features=3, image_size=16)
      >>> x = jnp.zeros((1, 16, 16, 1))
      >>> variables = model.init(jax.random.key(0), x, train=False)
      >>> layer_output(model, variables, jnp.zeros((1, 40, 40, 1)), "conv1").shape
      (1, 40, 40, 6)
    """
    if layer == OUTPUT:
        return module.apply(variables, x, train=False)

    def stop_at_layer(next_fun, args, kwargs, context):
        out = next_fun(*args, **kwargs)
        if context.method_name == "__call__" and _path(context.module) == layer:
            raise _Reached(out)
        return out

    try:
        with nn.intercept_methods(stop_at_layer):
            module.apply(variables, x, train=False)
    except _Reached as reached:
        return reached.value
    raise ValueError(f"the model has no layer {layer!r}")


def layer_shapes(module: nn.Module, variables, x: jax.Array) -> dict[str, tuple[int, ...]]:
    """Every named layer's output shape for input ``x``, in the order the model calls them,
    ``output`` last. Only shapes are computed (``jax.eval_shape``); nothing runs.

    Example:
      >>> import jax.numpy as jnp
      >>> from dlcore.models import LeNet5
      >>> model = LeNet5(out_features=3, image_size=16)
      >>> x = jnp.zeros((1, 16, 16, 1))
      >>> shapes = layer_shapes(model, model.init(jax.random.key(0), x, train=False), x)
      >>> shapes["conv2"], list(shapes)[-1]
      ((1, 4, 4, 16), 'output')
    """
    order: list[str] = []
    shapes: dict[str, tuple[int, ...]] = {}

    def record(next_fun, args, kwargs, context):
        name = _path(context.module) if context.method_name == "__call__" else None
        if name is not None and name not in order:
            order.append(name)
        out = next_fun(*args, **kwargs)
        if name is not None and name not in shapes and _is_array(out):
            shapes[name] = tuple(out.shape)
        return out

    def run(x):
        with nn.intercept_methods(record):
            return module.apply(variables, x, train=False)

    _shape_of(run, x, OUTPUT)
    named = [n for n in order if n in shapes and n != OUTPUT]
    return {n: shapes[n] for n in [*named, OUTPUT] if n in shapes}


def describe_layers(shapes: dict[str, tuple[int, ...]]) -> str:
    """``conv1 [16, 16, 6], ..., output [10]``: names with per-example shapes."""
    return ", ".join(f"{name} {list(shape[1:])}" for name, shape in shapes.items())


def check_layer(
    shapes: dict[str, tuple[int, ...]], layer: str, feature_maps: bool = False
) -> tuple[int, ...]:
    """The shape of ``layer``, after checking it exists (and gives ``[B, H, W, C]`` feature
    maps when ``feature_maps``).

    Raises:
      ValueError: one line naming the layer and listing the valid ones.
    """
    if layer not in shapes:
        raise ValueError(f"unknown layer {layer!r}; the model's layers: {describe_layers(shapes)}")
    shape = shapes[layer]
    if feature_maps and len(shape) != 4:
        maps = [n for n, s in shapes.items() if len(s) == 4]
        raise ValueError(
            f"layer {layer!r} gives {list(shape[1:])}, not feature maps [H, W, C]; layers with "
            f"feature maps: {', '.join(maps) or 'none'}"
        )
    return shape


def check_reads(module: nn.Module, variables, x: jax.Array, layer: str) -> tuple[int, ...]:
    """The shape of ``layer``'s output for ``x``, or one line saying why the model cannot
    read an input of that size up to that layer (e.g. a dense layer that fixes the size).

    Raises:
      ValueError: naming the input shape, the layer and the model's complaint.
    """
    return _shape_of(lambda x: layer_output(module, variables, x, layer), x, layer)


def _shape_of(fn, x: jax.Array, layer: str) -> tuple[int, ...]:
    try:
        out = jax.eval_shape(fn, x)
    except (ValueError, TypeError, flax.errors.FlaxError) as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(
            f"the model cannot read an input of shape {list(x.shape[1:])} up to layer "
            f"{layer!r}: {reason}"
        ) from None
    return tuple(out.shape) if _is_array(out) else ()
