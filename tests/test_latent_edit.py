"""Latent arithmetic on synthetic codes, and judged edits on a fake model and judge, with expectations by hand."""

import numpy as np
import pytest

import tinyvae
from tinyvae.evaluate import attribute_accuracy, attribute_edit_rates, check_attribute_judge, check_judge
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


# --------------------------------------------------------------------------------------
# Judged edits (tinyvae.evaluate): a fake VAE whose code is the image, a fake judge that thresholds pixels
# --------------------------------------------------------------------------------------


class PixelCodes:
    """A 'VAE' whose code is the image itself: x (N, 1, 1, L) <-> z (N, L); decoding is exact."""

    latent_dim, input_shape, dtype = 3, (1, 1, 3), np.dtype(np.float64)

    def encode(self, x):
        return x.reshape(len(x), 3), np.zeros((len(x), 3))

    def decode(self, z):
        return z.reshape(len(z), 1, 1, 3)

    def mean(self, decoded):
        return decoded

    def reconstruct(self, x):
        return x


class PixelJudge:
    """An 'attribute classifier': attribute a is on when pixel a is above 1/2."""

    multilabel, attributes, num_classes, input_shape, dtype = True, ("a", "b", "c"), 3, (1, 1, 3), np.float64

    def predict(self, x):
        return x.reshape(len(x), 3) > 0.5


def images(rows):
    return np.array(rows, dtype=np.float64).reshape(-1, 1, 1, 3)


def test_edit_rates_count_switched_attributes_and_changed_others_by_hand():
    # none has "a"; adding 1 x (0.4, 0, 0.2): row 0 stays below 1/2 in a; row 1 turns a on but c too (0.4 -> 0.6);
    # row 2 turns a on and keeps c below 1/2 (0.25 -> 0.45)
    x = images([[0.0, 0.0, 0.0], [0.2, 0.9, 0.4], [0.4, 0.1, 0.25]])
    vector = np.array([0.4, 0.0, 0.2])
    rates = attribute_edit_rates(PixelCodes(), PixelJudge(), x, "a", vector, 1.0, batch_size=2)
    assert rates == {"switched": 2 / 3, "others_kept": 2 / 3, "both": 1 / 3, "n": 3, "factor": 1.0}
    # factor 2: every row turns a on; only row 0 keeps c off (0 -> 0.4)
    rates = attribute_edit_rates(PixelCodes(), PixelJudge(), x, "a", vector, 2.0)
    assert (rates["switched"], rates["others_kept"], rates["both"]) == (1.0, 1 / 3, 1 / 3)
    # removing "b" from the faces with it: row 0 (0.9 -> 0.4) turns it off, row 1 (0.95 -> 0.45) too, and
    # row 1's a (0.7 -> 0.2) goes with it
    x = images([[0.0, 0.9, 0.0], [0.7, 0.95, 0.0]])
    rates = attribute_edit_rates(PixelCodes(), PixelJudge(), x, "b", np.array([1.0, 1.0, 0.0]), -0.5)
    assert (rates["switched"], rates["others_kept"], rates["both"]) == (1.0, 0.5, 0.5)


def test_other_attributes_are_compared_with_the_reconstruction_not_the_input():
    class Blurry(PixelCodes):
        def decode(self, z):  # the decoder halves pixel c: c is lost on every reconstruction already
            return (z * np.array([1.0, 1.0, 0.5])).reshape(len(z), 1, 1, 3)

    x = images([[0.0, 0.0, 0.9]])  # the judge sees c on x, not on its reconstruction nor on the edit
    rates = attribute_edit_rates(Blurry(), PixelJudge(), x, "a", np.array([1.0, 0.0, 0.0]), 1.0)
    assert rates["switched"] == 1.0 and rates["others_kept"] == 1.0


def test_attribute_accuracy_is_per_attribute():
    x = images([[0.9, 0.0, 0.0], [0.9, 0.9, 0.0]])
    truth = np.array([[1, 0, 1], [0, 1, 1]])
    assert attribute_accuracy(PixelJudge(), x, truth) == {"a": 0.5, "b": 1.0, "c": 0.0}
    with pytest.raises(ValueError, match=r"attribute_accuracy: expected attributes as an array of shape \(2, 3\)"):
        attribute_accuracy(PixelJudge(), x, truth[:, :2])


def test_edit_rates_refuse_what_they_cannot_judge():
    x, vector = images([[0.0, 0.0, 0.0]]), np.zeros(3)
    with pytest.raises(ValueError, match=r"attribute judge: it does not know smile; it classifies a, b, c"):
        attribute_edit_rates(PixelCodes(), PixelJudge(), x, "smile", vector, 1.0)
    with pytest.raises(ValueError, match=r"factor must be a nonzero finite number"):
        attribute_edit_rates(PixelCodes(), PixelJudge(), x, "a", vector, 0.0)
    with pytest.raises(ValueError, match=r"vector must be \(3,\) like a code, got \(2,\)"):
        attribute_edit_rates(PixelCodes(), PixelJudge(), x, "a", np.zeros(2), 1.0)
    with pytest.raises(ValueError, match=r"expected an AttributeClassifier .* got a PixelCodes"):
        check_attribute_judge(PixelCodes(), (1, 1, 3), np.float64)
    with pytest.raises(ValueError, match=r"it takes \(1, 1, 3\) float64 images, but the model makes \(1, 1, 4\)"):
        check_attribute_judge(PixelJudge(), (1, 1, 4), np.float64)


def test_label_accuracy_refuses_a_multi_label_judge():
    """A CVAE's samples are judged by a classifier of classes; an AttributeClassifier of as many outputs is not one."""
    rng = np.random.default_rng(0)
    cvae = tinyvae.mlp_vae(2, hidden=4, input_shape=(1, 4, 4), num_classes=3, rng=rng)
    judge = tinyvae.attribute_classifier(["x", "y", "z"], input_shape=(1, 4, 4), channels=(2, 2), hidden=4, rng=rng)
    with pytest.raises(ValueError, match=r"the judge must be a Classifier of classes, got a multi-label"):
        check_judge(cvae, judge)
