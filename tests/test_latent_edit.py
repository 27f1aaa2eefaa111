"""Latent arithmetic on synthetic codes, with expectations computed by hand."""

import numpy as np
import pytest

from tinyvae.latent_edit import add_attribute, attribute_vector, morph


def test_attribute_vector_is_the_mean_with_minus_the_mean_without():
    codes = np.array([[1.0, 0.0], [3.0, 2.0], [0.0, 5.0], [0.0, 1.0], [0.0, 0.0]])
    has = np.array([1, 1, 0, 0, 0], dtype=np.uint8)
    # with: mean of rows 0, 1 = (2, 1); without: mean of rows 2, 3, 4 = (0, 2)
    np.testing.assert_array_equal(attribute_vector(codes, has), [2.0, -1.0])
    np.testing.assert_array_equal(attribute_vector(codes, has.astype(bool)), [2.0, -1.0])


def test_attribute_vector_recovers_a_planted_direction():
    """Codes = noise + direction for the faces with the attribute: the vector is the direction, up to the noise."""
    rng = np.random.default_rng(0)
    direction = rng.standard_normal(16).astype(np.float32)
    has = rng.random(4000) < 0.3
    codes = rng.standard_normal((4000, 16)).astype(np.float32) + has[:, None] * direction
    vector = attribute_vector(codes, has)
    assert vector.dtype == np.float32 and vector.shape == (16,)
    # each mean's standard error is 1/sqrt(n): about 0.03 (1200 with) and 0.02 (2800 without)
    np.testing.assert_allclose(vector, direction, atol=0.2)


def test_add_attribute_adds_each_factor_times_the_vector():
    codes = np.array([[0.0, 1.0], [2.0, -1.0]], dtype=np.float32)
    edited = add_attribute(codes, np.array([1.0, 10.0]), [-1, 0, 2])
    assert edited.shape == (2, 3, 2) and edited.dtype == np.float32
    np.testing.assert_array_equal(edited[0], [[-1.0, -9.0], [0.0, 1.0], [2.0, 21.0]])
    np.testing.assert_array_equal(edited[1], [[1.0, -11.0], [2.0, -1.0], [4.0, 19.0]])


def test_morph_walks_the_straight_line_from_a_to_b():
    a, b = np.array([0.0, 4.0, -2.0]), np.array([4.0, 0.0, 2.0])
    path = morph(a, b, steps=5)
    np.testing.assert_array_equal(path, [[0, 4, -2], [1, 3, -1], [2, 2, 0], [3, 1, 1], [4, 0, 2]])
    assert morph(a.astype(np.float32), b, 3).dtype == np.float32


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: attribute_vector(np.zeros((3, 2)), [1, 1, 1]), "no code without the attribute"),
        (lambda: attribute_vector(np.zeros((3, 2)), [0, 0, 0]), "no code with the attribute"),
        (lambda: attribute_vector(np.zeros((3, 2)), [0, 1]), r"has_attribute must be \(3,\)"),
        (lambda: attribute_vector(np.zeros((3, 2)), [0, 1, 2]), "of 0/1"),
        (lambda: attribute_vector(np.zeros(3), [0, 1, 1]), r"codes must be .* \(N, latent_dim\)"),
        (lambda: add_attribute(np.zeros((3, 2)), np.zeros(3), [1]), r"vector must be \(2,\)"),
        (lambda: add_attribute(np.zeros((3, 2)), np.zeros(2), [[1]]), r"factors must be .* \(F,\)"),
        (lambda: morph(np.zeros(2), np.zeros(3), 4), "one shape"),
        (lambda: morph(np.zeros(2), np.zeros(2), 1), "steps"),
    ],
)
def test_bad_arguments_are_clear_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call()
