"""tinyvae.optim: argument checks, config(), and state_dict round trips that validate what they load."""

import numpy as np
import pytest

from tinyvae import SGD, Adam


def params():
    return {"w": np.zeros((2, 3), np.float32), "b": np.zeros(3, np.float32)}


def read_only(array):
    array.flags.writeable = False
    return array


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: Adam(params(), betas=(1.0, 0.999)), r"Adam: betas\[0\] must be in \[0, 1\), got 1\.0"),
        (lambda: Adam(params(), betas=(0.9, 1.5)), r"Adam: betas\[1\] must be in \[0, 1\), got 1\.5"),
        (lambda: Adam(params(), betas=(-0.1, 0.9)), r"Adam: betas\[0\] must be in \[0, 1\)"),
        (lambda: Adam(params(), betas=(0.9,)), r"Adam: betas must be a pair \(beta1, beta2\)"),
        (lambda: Adam(params(), eps=0), r"Adam: eps must be a finite number > 0, got 0"),
        (lambda: Adam(params(), eps=float("nan")), r"Adam: eps must be a finite number > 0, got nan"),
        (lambda: Adam(params(), lr=float("inf")), r"Adam: lr must be a finite number > 0, got inf"),
        (lambda: Adam(params(), lr=float("nan")), r"Adam: lr must be a finite number > 0, got nan"),
        (lambda: Adam(params(), lr="fast"), r"Adam: lr must be a finite number > 0, got 'fast'"),
        (lambda: SGD(params(), lr=-1.0), r"SGD: lr must be a finite number > 0, got -1\.0"),
        (lambda: SGD(params(), momentum=1.0), r"SGD: momentum must be in \[0, 1\), got 1\.0"),
        (lambda: SGD(params(), momentum=-0.5), r"SGD: momentum must be in \[0, 1\), got -0\.5"),
        (lambda: SGD(params(), momentum=float("nan")), r"SGD: momentum must be in \[0, 1\), got nan"),
        (lambda: Adam([np.zeros(3)]), r"Adam: params must be a dict name -> float array \(e\.g\. model\.params\), got list"),
        (lambda: Adam({}), r"Adam: params must be a non-empty dict"),
        (lambda: Adam({"w": np.zeros(3, np.int64)}), r"Adam: params\['w'\] must be a writable float array, got int64"),
        (lambda: Adam({"w": [0.0, 1.0]}), r"Adam: params\['w'\] must be a writable float array, got list"),
        (lambda: Adam({"w": read_only(np.zeros(3))}),
         r"Adam: params\['w'\] must be a writable float array, got a read-only float64 array"),
        (lambda: SGD({1: np.zeros(3)}), r"SGD: params must be a dict name -> float array .* key 1"),
    ],
)
def test_bad_arguments_name_the_argument_and_the_range(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_config_describes_the_optimizer():
    assert Adam(params(), lr=1e-2, betas=(0.8, 0.99), eps=1e-6).config() == {
        "type": "Adam", "lr": 1e-2, "betas": [0.8, 0.99], "eps": 1e-6
    }  # fmt: skip
    assert SGD(params(), lr=0.1, momentum=0.5).config() == {"type": "SGD", "lr": 0.1, "momentum": 0.5}


def stepped(make, steps=2):
    p = params()
    opt = make(p)
    rng = np.random.default_rng(0)
    for _ in range(steps):
        opt.step({k: rng.standard_normal(v.shape).astype(v.dtype) for k, v in p.items()})
    return opt


@pytest.mark.parametrize("make", [Adam, SGD])
def test_state_dict_round_trip(make):
    opt, fresh = stepped(make), make(params())
    fresh.load_state_dict(opt.state_dict())
    assert fresh.step_count == 2
    for k, v in opt.state_dict().items():
        np.testing.assert_array_equal(fresh.state_dict()[k], v)


@pytest.mark.parametrize(
    "damage, match",
    [
        (lambda s: s.pop("m.w"), r"Adam.load_state_dict: missing \['m\.w'\]"),
        (lambda s: s.update({"m.extra": np.zeros(1, np.float32)}), r"unexpected \['m\.extra'\]"),
        (lambda s: s.update({"v.b": np.zeros(4, np.float32)}), r"v\.b: expected \(3,\) float32, got \(4,\) float32"),
        (lambda s: s.update({"v.b": np.zeros(3, np.float64)}), r"v\.b: expected \(3,\) float32, got \(3,\) float64"),
        (lambda s: s.update({"step": np.array(2.5)}), r"step: expected a non-negative integer scalar, got 2\.5"),
        (lambda s: s.update({"step": np.array([2, 3])}), r"step: expected a non-negative integer scalar"),
        (lambda s: s.update({"step": np.array(-1)}), r"step: expected a non-negative integer scalar, got -1"),
    ],
)
def test_load_state_dict_validates_everything_before_changing_anything(damage, match):
    state, fresh = stepped(Adam).state_dict(), Adam(params())
    before = fresh.state_dict()
    damage(state)
    with pytest.raises(ValueError, match=match):
        fresh.load_state_dict(state)
    assert fresh.step_count == 0
    for k, v in fresh.state_dict().items():
        np.testing.assert_array_equal(v, before[k])
