"""Window geometry shared by every spatial layer: per-axis arguments, padding, output sizes.

For one spatial axis of size ``n``, a window of ``k`` taps with dilation ``d`` spans
``k_eff = d (k - 1) + 1`` inputs; with stride ``s`` and zero padding ``lo``/``hi``

    convolution, pooling, locally connected:  out = (n + lo + hi - k_eff) // s + 1
    transposed convolution (PyTorch's rule):  out = (n - 1) s - lo - hi + k_eff + output_padding

Padding is ``'valid'`` (none), ``'same'`` (out = ceil(n / s); the odd pixel goes to the
bottom/right, as in XLA and TensorFlow), ``'full'`` (``k_eff - 1`` per side), an int (every
side), one int per axis, or one ``(lo, hi)`` pair per axis. A layer whose output would be
smaller than 1 raises :func:`check_fits`'s one-line ValueError naming the layer.
"""

from collections.abc import Sequence

import flax.linen as nn

PADDINGS = ("same", "valid", "full")
Pads = tuple[tuple[int, int], ...]  # one (lo, hi) per spatial axis
PaddingLike = str | int | Sequence[int] | Sequence[Sequence[int]]


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def per_axis(value: int | Sequence[int], ndim: int, what: str, minimum: int = 1) -> tuple:
    """``k`` or ``(k_1, ..., k_ndim)`` as an ``ndim``-tuple of ints ``>= minimum``.

    Example:
      >>> per_axis(2, 2, "stride"), per_axis([3, 1], 2, "kernel size")
      ((2, 2), (3, 1))
    """
    values = (value,) * ndim if _is_int(value) else value
    if (
        isinstance(values, str)
        or not isinstance(values, Sequence)
        or len(values) != ndim
        or not all(_is_int(v) and v >= minimum for v in values)
    ):
        raise ValueError(
            f"{what} must be an int >= {minimum} or {ndim} of them (one per spatial axis); "
            f"got {value!r}"
        )
    return tuple(values)


def check_padding(padding: PaddingLike, ndim: int | None = None, what: str = "conv") -> None:
    """Raises a one-line ValueError unless ``padding`` is a valid padding spec (module doc)."""
    try:
        _explicit_pads(padding, ndim or _guess_ndim(padding))
    except (TypeError, ValueError):
        raise ValueError(
            f"{what} padding must be 'same', 'valid', 'full' or an int >= 0, one int per axis or "
            f"one (lo, hi) pair per axis; got {padding!r}"
        ) from None


def _guess_ndim(padding) -> int:
    return len(padding) if isinstance(padding, Sequence) and not isinstance(padding, str) else 1


def _explicit_pads(padding: PaddingLike, ndim: int) -> Pads | None:
    """The explicit pads of a non-named spec (None for a name); raises on anything else."""
    if isinstance(padding, str):
        if padding not in PADDINGS:
            raise ValueError(padding)
        return None
    if _is_int(padding):
        items = (padding,) * ndim
    elif ndim == 1 and len(padding) == 2 and all(_is_int(p) for p in padding):
        items = (tuple(padding),)  # 1-D: a bare (lo, hi) pair
    else:
        items = tuple(padding)
    if len(items) != ndim:
        raise ValueError(padding)
    pads = tuple((p, p) if _is_int(p) else tuple(p) for p in items)
    if not all(len(p) == 2 and all(_is_int(v) and v >= 0 for v in p) for p in pads):
        raise ValueError(padding)
    return pads


def resolve_pads(
    padding: PaddingLike,
    size: Sequence[int],
    kernel: Sequence[int],
    stride: Sequence[int],
    dilation: Sequence[int] | None = None,
) -> Pads:
    """Explicit ``(lo, hi)`` zero padding per spatial axis for a window layer.

    Example:
      >>> resolve_pads("same", (7, 8), (3, 3), (2, 2))
      ((1, 1), (0, 1))
    """
    ndim = len(size)
    dilation = dilation or (1,) * ndim
    check_padding(padding, ndim)
    explicit = _explicit_pads(padding, ndim)
    if explicit is not None:
        return explicit
    pads = []
    for n, k, s, d in zip(size, kernel, stride, dilation, strict=True):
        span = d * (k - 1) + 1
        if padding == "valid":
            pads.append((0, 0))
        elif padding == "full":
            pads.append((span - 1, span - 1))
        else:  # same
            total = max((-(-n // s) - 1) * s + span - n, 0)
            pads.append((total // 2, total - total // 2))
    return tuple(pads)


def window_out(n: int, k: int, s: int, pad: tuple[int, int], d: int = 1) -> int:
    """``(n + lo + hi - k_eff) // s + 1``, or 0 when the window does not fit at all."""
    padded = n + pad[0] + pad[1]
    span = d * (k - 1) + 1
    return (padded - span) // s + 1 if padded >= span else 0


def transpose_out(n: int, k: int, s: int, pad: tuple[int, int], d: int, output_pad: int) -> int:
    """PyTorch's ``(n - 1) s - lo - hi + d (k - 1) + output_padding + 1``."""
    return (n - 1) * s - pad[0] - pad[1] + d * (k - 1) + output_pad + 1


def layer_name(module: nn.Module) -> str:
    """The module's path (``stage3/conv1``), else its name, else its class name."""
    scope = getattr(module, "scope", None)
    path = "/".join(str(p) for p in scope.path) if scope is not None else ""
    return path or module.name or type(module).__name__


def _fmt(sizes: Sequence[int]) -> str:
    return "x".join(str(v) for v in sizes)


def check_fits(
    layer: str,
    kind: str,
    size: Sequence[int],
    out: Sequence[int],
    kernel: Sequence[int],
    stride: Sequence[int],
    padding: PaddingLike,
    pads: Pads,
    dilation: Sequence[int] | None = None,
) -> None:
    """Raises a one-line ValueError if any output side ``out`` is below 1.

    Args:
      layer: who raises: a module path such as ``resnet/stage3/conv1``, or a function name.
      kind: ``"kernel"`` or ``"window"``.
      size, out: spatial input and output sizes.
      kernel, stride, padding, pads, dilation: the layer's geometry (``padding`` as given).

    Example:
      >>> check_fits("stage3/conv1", "kernel", (2, 2), (0, 0), (3, 3), (2, 2), "valid",
      ...            ((0, 0), (0, 0)))
      Traceback (most recent call last):
      ...
      ValueError: stage3/conv1: 3x3 kernel, stride 2, padding 'valid' shrinks a 2x2 feature \
map to 0x0 (stage3/conv1 kernel 3x3 is larger than the padded input 2x2)
    """
    if min(out) >= 1:
        return
    dilation = dilation or (1,) * len(size)
    span = [d * (k - 1) + 1 for k, d in zip(kernel, dilation, strict=True)]
    padded = [n + lo + hi for n, (lo, hi) in zip(size, pads, strict=True)]

    def one(v: Sequence[int]) -> str:
        return str(v[0]) if len(set(v)) == 1 else _fmt(v)

    dil = f", dilation {one(dilation)}" if max(dilation) > 1 else ""
    # Named paddings and any real padding say "padded input"; unpadded pools say "input".
    where = "padded input" if isinstance(padding, str) or any(map(any, pads)) else "input"
    reason = (
        f"{layer} {kind} {_fmt(span)} is larger than the {where} {_fmt(padded)}"
        if any(p < s for p, s in zip(padded, span, strict=True))
        else "the padding crops more than the output has"
    )
    raise ValueError(
        f"{layer}: {_fmt(kernel)} {kind}, stride {one(stride)}{dil}, padding {padding!r} "
        f"shrinks a {_fmt(size)} feature map to {_fmt(out)} ({reason})"
    )
