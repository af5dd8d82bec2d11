"""The images the viz tools look at, in the model's input space: a data example as it is,
or one of scikit-learn's bundled sample photographs mapped into the range of the data the
model was trained on.

A photograph p (RGB in [0, 1], centre-cropped to a square and resized) becomes

    grey if the model reads one channel:   p = 0.299 R + 0.587 G + 0.114 B
    x[..., c] = (p[..., c] - mean p[..., c]) / std p[..., c] · s_c + m_c

with m_c, s_c the per-channel mean and standard deviation of the training inputs, so it
has the brightness and contrast the model is used to whatever the data's preprocessing.
"""

import numpy as np

PHOTOS = ("china", "flower")  # scikit-learn's sample images (no download)
_LUMA = np.array([0.299, 0.587, 0.114])


def sample_photo(name: str, height: int, width: int | None = None) -> np.ndarray:
    """A bundled photograph, centre-cropped to the target aspect and resized: RGB
    ``[height, width, 3]`` float32 in [0, 1].

    Raises:
      ValueError: for an unknown name (listing the photographs) or a size below 1.

    Example:
      >>> sample_photo("china", 32).shape
      (32, 32, 3)
    """
    from PIL import Image  # installed with matplotlib
    from sklearn.datasets import load_sample_image

    if name not in PHOTOS:
        raise ValueError(f"unknown photo {name!r}; photos: {', '.join(PHOTOS)}")
    width = width or height
    if height < 1 or width < 1:
        raise ValueError(f"photo size must be at least 1x1; got {height}x{width}")
    rgb = load_sample_image(f"{name}.jpg")  # [427, 640, 3] uint8
    h, w = rgb.shape[:2]
    if w * height > h * width:  # wider than the target: keep the height
        crop_h, crop_w = h, round(h * width / height)
    else:
        crop_h, crop_w = round(w * height / width), w
    top, left = (h - crop_h) // 2, (w - crop_w) // 2
    image = Image.fromarray(rgb[top : top + crop_h, left : left + crop_w])
    image = image.resize((width, height), Image.Resampling.LANCZOS)
    return np.asarray(image, np.float32) / 255.0


def channel_stats(x_NxHxWxC: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean m_c and standard deviation s_c over examples and pixels, ``[C]``.

    Example:
      >>> m, s = channel_stats(np.stack([np.zeros((2, 2, 1)), np.full((2, 2, 1), 2.0)]))
      >>> m.tolist(), s.tolist()
      ([1.0], [1.0])
    """
    x = np.asarray(x_NxHxWxC, np.float64)
    return x.mean(axis=(0, 1, 2)), x.std(axis=(0, 1, 2))


def photo_as_input(
    photo_HxWx3: np.ndarray, channels: int, mean_C: np.ndarray, std_C: np.ndarray
) -> np.ndarray:
    """The photograph in the model's input space (module docstring): ``[H, W, channels]``.

    Raises:
      ValueError: if the model reads neither 1 nor 3 channels.

    Example:
      >>> x = photo_as_input(sample_photo("flower", 8), 1, np.array([5.0]), np.array([2.0]))
      >>> x.shape, round(float(x.mean()), 4), round(float(x.std()), 4)
      ((8, 8, 1), 5.0, 2.0)
    """
    photo_HxWx3 = np.asarray(photo_HxWx3, np.float64)
    if channels == 1:
        photo_HxWxC = (photo_HxWx3 @ _LUMA)[..., None]
    elif channels == 3:
        photo_HxWxC = photo_HxWx3
    else:
        raise ValueError(f"photos feed models reading 1 or 3 channels; this one reads {channels}")
    mean = photo_HxWxC.mean(axis=(0, 1))
    std = np.maximum(photo_HxWxC.std(axis=(0, 1)), 1e-6)
    return ((photo_HxWxC - mean) / std * std_C + mean_C).astype(np.float32)
