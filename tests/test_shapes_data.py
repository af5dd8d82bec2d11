"""The generated ``shapes`` images, masks and captions, and digits' image options."""

import numpy as np
import pytest
import scipy.ndimage
from pydantic import ValidationError

from dlcore.data.digits import DigitsConfig, make_digits, resize_matrix
from dlcore.data.shapes import (
    COLOURS,
    SHAPES,
    ShapesConfig,
    decode_caption,
    make_shapes,
    relation,
    shape_mask,
)

SMALL = dict(n_samples=160, image_size=24)


@pytest.fixture(scope="module")
def single():
    return make_shapes(ShapesConfig(**SMALL, noise=0.0))


@pytest.fixture(scope="module")
def scenes():
    return make_shapes(ShapesConfig(**SMALL, mode="scene", noise=0.0, min_size=0.13, max_size=0.2))


def test_same_config_same_bytes_and_another_seed_differs():
    a, b = make_shapes(ShapesConfig(**SMALL)), make_shapes(ShapesConfig(**SMALL))
    c = make_shapes(ShapesConfig(**SMALL, seed=1))
    assert a.train.x.tobytes() == b.train.x.tobytes()
    assert np.array_equal(a.test["seg"], b.test["seg"])
    assert a.train.x.tobytes() != c.train.x.tobytes()


def test_every_class_appears_and_the_map_is_exactly_the_painted_shape(single):
    x, y, seg = single.train.x, single.train.y, single.train["seg"]
    assert x.shape[1:] == (24, 24, 3) and x.dtype == np.float32 and seg.dtype == np.int32
    assert set(y.tolist()) == set(range(len(SHAPES)))
    palette = np.asarray(list(COLOURS.values()), np.float32)
    for image, label, m in zip(x, y, seg, strict=True):
        assert set(np.unique(m).tolist()) == {0, 1 + int(label)}
        shape_px, background = image[m > 0], image[m == 0]
        # Without noise the shape is one palette colour and the background one grey.
        colour = shape_px[0]
        assert np.allclose(shape_px, colour) and np.min(np.abs(palette - colour).sum(1)) < 1e-6
        assert np.allclose(background, background[0]) and np.ptp(background[0]) == 0
        assert 12 <= (m > 0).sum() <= 0.6 * m.size


def test_each_shape_spans_what_its_radius_allows(single):
    # Radii are min_size..max_size of the side (24 px: 4.8..9.6 px); a shape fits in its
    # bounding circle, and every shape is at least 1.1 radii long in some axis direction.
    r_min, r_max = 0.2 * 24, 0.4 * 24
    for m in single.train["seg"][:60]:
        rows, cols = np.nonzero(m)
        extent = max(np.ptp(rows), np.ptp(cols)) + 1
        assert 1.1 * r_min - 1 <= extent <= 2 * r_max + 1


def test_shapes_follow_their_outlines():
    # A circle of radius 3 at a pixel corner covers the pixel centres (i + 0.5, j + 0.5)
    # within 3 of it: offsets a, b in {0.5, 1.5, 2.5} with a^2 + b^2 <= 9, 8 per quadrant.
    expected = sum(
        (i + 0.5 - 5) ** 2 + (j + 0.5 - 5) ** 2 <= 9 for i in range(10) for j in range(10)
    )
    assert expected == 32
    assert shape_mask("circle", 10, (5.0, 5.0), 3.0, 0.0).sum() == expected
    ring = shape_mask("ring", 21, (10.5, 10.5), 9.0, 0.0)
    assert not ring[10, 10] and ring[10, 1]  # hollow middle, painted rim
    cross = shape_mask("cross", 21, (10.5, 10.5), 9.0, 0.0)
    assert cross[10, 1] and cross[1, 10] and not cross[2, 2]  # arms, no corners
    tri = shape_mask("triangle", 21, (10.5, 10.5), 9.0, 0.0)
    # Vertex at v = +1 (rows grow downwards: the bottom), base at v = -0.5 (row 6).
    assert tri[7, 4] and not tri[17, 4] and tri[17, 10] and not tri[5, 10]
    # The diamond is a rhombus: no rotation of it is the square.
    square = shape_mask("square", 21, (10.5, 10.5), 9.0, 0.0).sum()
    rhombus = [shape_mask("diamond", 21, (10.5, 10.5), 9.0, t).sum() for t in (0, 0.7, 1.3)]
    assert all(abs(r - square) > 0.25 * square for r in rhombus)


def _objects(image, seg):
    """{(colour, class id): centroid (x, y)} of the shapes in a noise-free scene."""
    found = {}
    for cls in np.unique(seg[seg > 0]):
        for name, rgb in COLOURS.items():
            mask = (seg == cls) & np.all(np.isclose(image, np.asarray(rgb, np.float32)), axis=-1)
            parts, count = scipy.ndimage.label(mask)
            for part in range(1, count + 1):
                rows, cols = np.nonzero(parts == part)
                centre = (cols.mean() + 0.5, rows.mean() + 0.5)
                found.setdefault((name, int(cls) - 1), []).append(centre)
    return found


def test_every_caption_is_true_of_its_scene(scenes):
    vocab_classes = scenes.info["classes"]
    checked = 0
    for image, seg, ids in zip(
        scenes.train.x, scenes.train["seg"], scenes.train["caption"], strict=True
    ):
        objects = _objects(image, seg)
        for clause in decode_caption(ids).split(" and "):
            words = clause.split()
            first = (words[1], vocab_classes.index(words[2]))
            second = (words[-2], vocab_classes.index(words[-1]))
            rel = " ".join(words[3:-3])
            if len(objects.get(first, [])) != 1 or len(objects.get(second, [])) != 1:
                continue  # two shapes of the same colour and class: skip the ambiguous pair
            assert relation(objects[first][0], objects[second][0]) == rel, clause
            checked += 1
    assert checked > 100


def test_scenes_hold_two_or_three_shapes_and_padded_captions(scenes):
    counts = {decode_caption(c).count(" and ") + 2 for c in scenes.train["caption"]}
    assert counts == {2, 3}
    assert scenes.info["vocab"][0] == "<pad>" and "y" not in scenes.train
    assert scenes.spec().fields["caption"].role == "tokens"


def test_class_subsets_relabel_and_train_per_class_caps():
    data = make_shapes(ShapesConfig(**SMALL, classes=["ring", "cross"], train_per_class=7))
    assert data.num_classes == 2 and data.info["classes"] == ["ring", "cross"]
    assert np.bincount(data.train.y).tolist() == [7, 7]
    assert set(np.unique(data.val["seg"]).tolist()) == {0, 1, 2}


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"classes": ["circle", "oval"]}, "oval"),
        ({"classes": ["circle", "circle"]}, "twice"),
        ({"mode": "scene", "max_size": 0.4}, "max_size <= 0.25"),
        ({"image_size": 12, "min_size": 0.2}, "under 3 pixels"),
        ({"min_size": 0.3, "max_size": 0.25}, "larger than max_size"),
    ],
)
def test_bad_settings_are_refused(fields, message):
    with pytest.raises(ValidationError, match=message):
        ShapesConfig(**fields)


def test_digits_8x8_are_unchanged_and_resize_is_bilinear():
    from sklearn.datasets import load_digits

    flat = make_digits(DigitsConfig(preprocess="none"))
    image = make_digits(DigitsConfig(layout="image", preprocess="none"))
    assert np.array_equal(flat.train.x, image.train.x.reshape(-1, 64))
    assert {tuple(r) for r in flat.train.x[:50]} <= {tuple(r) for r in load_digits().data}
    big = make_digits(DigitsConfig(layout="image", image_size=32, preprocess="none"))
    assert big.train.x.shape[1:] == (32, 32, 1) and np.array_equal(big.train.y, image.train.y)
    a = resize_matrix(8, 32)
    np.testing.assert_allclose(a.sum(axis=1), 1.0)
    np.testing.assert_allclose(
        big.train.x[3, :, :, 0], a @ image.train.x[3, :, :, 0] @ a.T, rtol=1e-6
    )
    # Up-sampling by 2: new pixel 3 has its centre at old coordinate 1.25.
    np.testing.assert_allclose(resize_matrix(8, 16)[3, 1:3], [0.75, 0.25])


def test_digit_subsets_relabel_and_cap_the_training_split_only():
    full = make_digits(DigitsConfig())
    sub = make_digits(DigitsConfig(classes=[7, 2], train_per_class=4))
    assert sub.num_classes == 2 and np.bincount(sub.train.y).tolist() == [4, 4]
    kept = np.isin(full.test.y, [7, 2])
    assert np.array_equal(sub.test.y, np.where(full.test.y[kept] == 7, 0, 1))
    with pytest.raises(ValidationError, match="needs layout = 'image'"):
        DigitsConfig(image_size=16)
    with pytest.raises(ValidationError, match="distinct digits"):
        DigitsConfig(classes=[1, 1])


def test_sample_photos_are_rgb_in_the_unit_range():
    from dlcore.viz.inputs import sample_photo

    for name, size in (("china", 16), ("flower", 9)):
        photo = sample_photo(name, size)
        assert photo.shape == (size, size, 3) and photo.dtype == np.float32
        assert 0.0 <= photo.min() < photo.max() <= 1.0
    assert sample_photo("china", 10, 20).shape == (10, 20, 3)
    with pytest.raises(ValueError, match="unknown photo 'dog'; photos: china, flower"):
        sample_photo("dog", 8)


def test_reading_order_captions_name_the_shapes_top_left_first():
    data = make_shapes(
        ShapesConfig(
            **SMALL, mode="scene", noise=0.0, min_size=0.13, max_size=0.2, caption_order="reading"
        )
    )
    classes, checked = data.info["classes"], 0
    for image, seg, ids in zip(data.train.x, data.train["seg"], data.train["caption"], strict=True):
        clauses = [c.split() for c in decode_caption(ids).split(" and ")]
        assert " ".join(clauses[0][3:-3]) in ("left of", "above")
        assert all(" ".join(c[3:-3]) in ("right of", "below") for c in clauses[1:])
        objects = _objects(image, seg)
        named = [(c[1], classes.index(c[2])) for c in clauses] + [
            (clauses[0][-2], classes.index(clauses[0][-1]))
        ]
        if all(len(objects.get(k, [])) == 1 for k in named):  # no twin shapes
            # first, (third), reference; pixel centroids are off the true centres by < 1 px
            sums = [sum(objects[k][0]) for k in named]
            assert sums[0] < sums[-1] + 1 and all(v > sums[-1] - 1 for v in sums[1:-1])
            checked += 1
    assert checked > 50
