"""Synthetic faces: shapes, determinism, attribute frequencies, and that each attribute is drawn
where it should be (the same faces with one attribute flipped differ only there)."""

import numpy as np
import pytest

import tinyvae
import tinyvae.datasets.faces
from tinyvae.datasets import FACE_ATTRIBUTES, FACE_PROBABILITIES, synthetic_faces

S = 64


def faces(n, seed=0, size=S, attributes=None):
    return synthetic_faces(n, size=size, rng=np.random.default_rng(seed), attributes=attributes)


def test_shapes_dtypes_and_names():
    images, attributes, names = faces(5, size=32)
    assert images.shape == (5, 3, 32, 32) and images.dtype == np.uint8
    assert attributes.shape == (5, 6) and attributes.dtype == np.uint8 and set(np.unique(attributes)) <= {0, 1}
    assert names == list(FACE_ATTRIBUTES) == ["Blond_Hair", "Eyeglasses", "Male", "Mustache", "Smiling", "Wearing_Hat"]
    assert tinyvae.datasets.synthetic_faces is synthetic_faces


def test_a_seed_gives_the_same_faces_and_another_seed_other_faces():
    first, second, other = faces(20, seed=7), faces(20, seed=7), faces(20, seed=8)
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])
    assert not np.array_equal(first[0], other[0])


def test_the_chunks_faces_are_painted_in_do_not_change_them(monkeypatch):
    whole = faces(20, seed=3)[0]
    monkeypatch.setattr(tinyvae.datasets.faces, "_CHUNK", 7)
    np.testing.assert_array_equal(faces(20, seed=3)[0], whole)


def test_faces_vary_in_nuisance_too():
    images, _, _ = faces(50, size=32)
    background = images[:, :, 0, 0].astype(float)  # the top-left pixel: background (or a hat)
    assert background.std(axis=0).min() > 20
    assert len({img.tobytes() for img in images}) == 50


def test_attribute_frequencies_match_the_stated_probabilities_and_are_independent():
    _, attributes, _ = faces(4000, size=16)
    np.testing.assert_allclose(attributes.mean(axis=0), FACE_PROBABILITIES, atol=0.04)  # ~5 standard errors
    correlation = np.corrcoef(attributes.T.astype(float))
    assert np.abs(correlation - np.eye(6)).max() < 0.1


def flipped(name, n=60, seed=1):
    """The same n faces without and with attribute ``name`` (everything else as drawn)."""
    _, drawn, _ = faces(n, seed=seed)
    off, on = drawn.copy(), drawn.copy()
    k = FACE_ATTRIBUTES.index(name)
    off[:, k], on[:, k] = 0, 1
    return faces(n, seed=seed, attributes=off)[0].astype(float), faces(n, seed=seed, attributes=on)[0].astype(float)


def changed_rows(without, with_):
    """Rows (as a fraction of the height) of the pixels that the attribute changed, and the mask."""
    changed = np.any(without != with_, axis=1)  # (n, S, S)
    rows = np.nonzero(changed)[1] / S
    return rows, changed


@pytest.mark.parametrize("name", FACE_ATTRIBUTES)
def test_every_attribute_changes_every_face(name):
    without, with_ = flipped(name)
    _, changed = changed_rows(without, with_)
    assert changed.sum(axis=(1, 2)).min() >= 10  # pixels per face


def test_eyeglasses_darken_the_eye_band():
    without, with_ = flipped("Eyeglasses")
    rows, changed = changed_rows(without, with_)
    assert 0.3 < rows.min() and rows.max() < 0.68  # a band around the eyes, nothing else
    darker = (without - with_).sum(axis=1)[changed]  # brightness lost per changed pixel
    assert darker.mean() > 100


def test_smiling_and_mustache_change_only_the_lower_face():
    for name in ("Smiling", "Mustache"):
        without, with_ = flipped(name)
        rows, _ = changed_rows(without, with_)
        assert rows.min() > 0.5, name


def test_a_hat_covers_the_top_of_the_head_only():
    rows, _ = changed_rows(*flipped("Wearing_Hat"))
    assert rows.max() < 0.5


def test_blond_hair_is_brighter():
    without, with_ = flipped("Blond_Hair")
    _, changed = changed_rows(without, with_)
    red_green_gain = (with_ - without)[:, :2].sum(axis=1)[changed]
    assert red_green_gain.mean() > 150


def test_not_male_means_long_hair_beside_the_lower_face():
    without, with_ = flipped("Male")  # without: long hair; with: short hair, thick eyebrows
    rows, _ = changed_rows(without, with_)
    assert np.mean(rows > 0.55) > 0.5  # most changed pixels are the long hair below the eyes


def test_bad_arguments_are_clear_errors():
    with pytest.raises(ValueError, match="synthetic_faces: rng must be a numpy.random.Generator"):
        synthetic_faces(3, rng=0)
    with pytest.raises(ValueError, match="synthetic_faces: n must be an int >= 1"):
        synthetic_faces(0, rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="synthetic_faces: size must be an int >= 16"):
        synthetic_faces(3, size=8, rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"attributes must be an \(3, 6\) array of 0/1"):
        synthetic_faces(3, rng=np.random.default_rng(0), attributes=np.full((3, 6), 2))
