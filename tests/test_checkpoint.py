"""tinyvae.checkpoint: round trip, atomic writes, clear errors for mismatches and corruption."""

import json
import zipfile

import numpy as np
import pytest

import tinyvae
from tinyvae import checkpoint as ckpt_module
from tinyvae.checkpoint import CheckpointError, load_checkpoint, save_checkpoint


def tiny_model(latent_dim=2, hidden=8, seed=0):
    return tinyvae.mlp_vae(latent_dim=latent_dim, hidden=hidden, rng=np.random.default_rng(seed))


def trained(steps=3, seed=0):
    """A tiny model, its Adam after ``steps`` steps, and the RNG that drove them."""
    model, rng = tiny_model(seed=seed), np.random.default_rng(seed)
    optimizer = tinyvae.Adam(model.params, lr=1e-2)
    x = (rng.random((8, 1, 28, 28)) < 0.3).astype(np.float32)
    for _ in range(steps):
        model.loss_and_grads(x, rng=rng)
        optimizer.step(model.grads)
    return model, optimizer, rng


def test_round_trip_restores_params_optimizer_and_rng(tmp_path):
    model, optimizer, rng = trained()
    history = [{"epoch": 1, "total": 500.0}]
    path = save_checkpoint(tmp_path, model, optimizer, epoch=1, rng=rng, config={"lr": 1e-2}, history=history)
    twin = np.random.default_rng()
    twin.bit_generator.state = rng.bit_generator.state
    expected = twin.standard_normal(5)  # what the saved RNG draws next

    ckpt = load_checkpoint(tmp_path)
    assert ckpt.path == path and ckpt.epoch == 1
    assert ckpt.meta["config"] == {"lr": 1e-2} and ckpt.meta["history"] == history
    assert ckpt.meta["optimizer"] == {"type": "Adam", "step": 3, "lr": 1e-2, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8}
    assert ckpt.meta["architecture"] == json.loads(json.dumps(model.architecture()))

    fresh, fresh_rng = tiny_model(seed=1), np.random.default_rng(123)
    fresh_opt = tinyvae.Adam(fresh.params, lr=1e-2)
    ckpt.restore(fresh, fresh_opt, fresh_rng)
    for k in model.params:
        np.testing.assert_array_equal(fresh.params[k], model.params[k])
        np.testing.assert_array_equal(fresh_opt.m[k], optimizer.m[k])
        np.testing.assert_array_equal(fresh_opt.v[k], optimizer.v[k])
    assert fresh_opt.step_count == 3
    np.testing.assert_array_equal(fresh_rng.standard_normal(5), expected)


def test_files_are_plain_npz_and_json_and_old_epochs_are_removed(tmp_path):
    model, optimizer, rng = trained()
    save_checkpoint(tmp_path, model, optimizer, epoch=1, rng=rng)
    save_checkpoint(tmp_path, model, optimizer, epoch=2, rng=rng)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-epoch0002.npz", "checkpoint.json"]
    meta = json.loads((tmp_path / "checkpoint.json").read_text())
    assert meta["npz"] == "checkpoint-epoch0002.npz" and meta["epoch"] == 2
    with np.load(tmp_path / meta["npz"], allow_pickle=False) as data:  # no pickled objects inside
        assert {k for k in data.files} == {f"model/{k}" for k in model.params} | {
            f"optimizer/{k}" for k in optimizer.state_dict()
        }
        assert all(data[k].dtype != object for k in data.files)


def test_architecture_mismatch_names_file_and_difference(tmp_path):
    model, optimizer, rng = trained()
    save_checkpoint(tmp_path, model, optimizer, epoch=1, rng=rng)
    other = tiny_model(latent_dim=3)
    with pytest.raises(CheckpointError, match=r"checkpoint\.json.*latent_dim: checkpoint 2, model 3"):
        load_checkpoint(tmp_path).restore(other)
    conv = tinyvae.conv_vae(latent_dim=2, rng=np.random.default_rng(0))
    with pytest.raises(CheckpointError, match=r"checkpoint\.json.*architecture differs.*encoder: checkpoint 4 entries \[Flatten, Dense"):
        load_checkpoint(tmp_path).restore(conv)


def test_optimizer_mismatch_is_an_error(tmp_path):
    model, optimizer, rng = trained()
    save_checkpoint(tmp_path, model, optimizer, epoch=1, rng=rng)
    with pytest.raises(CheckpointError, match="lr: checkpoint 0.01, model 0.001"):
        load_checkpoint(tmp_path).restore(tiny_model(), tinyvae.Adam(tiny_model().params, lr=1e-3))
    with pytest.raises(CheckpointError, match="type: checkpoint 'Adam', model 'SGD'"):
        model2 = tiny_model()
        load_checkpoint(tmp_path).restore(model2, tinyvae.SGD(model2.params, lr=1e-2))


def test_missing_checkpoint(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint here"):
        load_checkpoint(tmp_path)


@pytest.mark.parametrize("damage", ["truncate_npz", "flip_npz_byte", "delete_npz", "truncate_json", "not_a_checkpoint"])
def test_corrupt_checkpoint_gives_clear_error(tmp_path, damage):
    model, optimizer, rng = trained()
    save_checkpoint(tmp_path, model, optimizer, epoch=4, rng=rng)
    npz, pointer = tmp_path / "checkpoint-epoch0004.npz", tmp_path / "checkpoint.json"
    if damage == "truncate_npz":
        npz.write_bytes(npz.read_bytes()[:1000])
        match = r"checkpoint-epoch0004\.npz: corrupt or truncated"
    elif damage == "flip_npz_byte":
        data = bytearray(npz.read_bytes())
        data[len(data) // 2] ^= 0xFF
        npz.write_bytes(bytes(data))
        match = r"checkpoint-epoch0004\.npz: corrupt or truncated"
    elif damage == "delete_npz":
        npz.unlink()
        match = r"checkpoint-epoch0004\.npz: missing, but checkpoint\.json points to it"
    elif damage == "truncate_json":
        pointer.write_text(pointer.read_text()[:200])
        match = r"checkpoint\.json: corrupt or truncated checkpoint metadata"
    else:
        pointer.write_text('{"hello": 1}')
        match = r"checkpoint\.json: not a tinyvae-checkpoint file"
    with pytest.raises(CheckpointError, match=match):
        load_checkpoint(tmp_path)


def test_unreadable_npz_with_matching_digest_is_an_error(tmp_path):
    model, optimizer, rng = trained()
    save_checkpoint(tmp_path, model, optimizer, epoch=1, rng=rng)
    npz, pointer = tmp_path / "checkpoint-epoch0001.npz", tmp_path / "checkpoint.json"
    npz.write_bytes(b"not a zip file")
    meta = json.loads(pointer.read_text())
    meta["npz_sha256"] = ckpt_module._sha256(npz)
    pointer.write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match=r"checkpoint-epoch0001\.npz: cannot read the arrays"):
        load_checkpoint(tmp_path)


@pytest.mark.parametrize("fail_at", ["npz", "json"])
def test_a_crash_while_saving_keeps_the_previous_checkpoint(tmp_path, monkeypatch, fail_at):
    model, optimizer, rng = trained()
    save_checkpoint(tmp_path, model, optimizer, epoch=1, rng=rng)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}

    def crash(*args, **kwargs):
        raise OSError("disk full")

    if fail_at == "npz":
        monkeypatch.setattr(ckpt_module.np, "savez", crash)
    else:
        monkeypatch.setattr(ckpt_module.json, "dumps", crash)
    model.params["decoder.0.weight"][...] = 7.0
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(tmp_path, model, optimizer, epoch=2, rng=rng)
    monkeypatch.undo()
    after = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.name != "checkpoint-epoch0002.npz"}
    assert after == before  # no temporary files left, the old files untouched
    assert load_checkpoint(tmp_path).epoch == 1


def test_zip_with_pickled_object_is_refused(tmp_path):
    model, optimizer, rng = trained()
    save_checkpoint(tmp_path, model, optimizer, epoch=1, rng=rng)
    npz, pointer = tmp_path / "checkpoint-epoch0001.npz", tmp_path / "checkpoint.json"
    np.savez(npz, **{"model/x": np.array([{"a": 1}], dtype=object)})
    meta = json.loads(pointer.read_text())
    meta["npz_sha256"] = ckpt_module._sha256(npz)
    pointer.write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="cannot read the arrays"):
        load_checkpoint(tmp_path)
    assert zipfile.is_zipfile(npz)
