"""tinyvae.checkpoint: round trip, atomic writes, clear errors for mismatches, corruption and hostile files."""

import json
import tracemalloc
import zipfile

import numpy as np
import pytest

import tinyvae
from tinyvae import checkpoint as ckpt_module
from tinyvae.checkpoint import CheckpointError, load_checkpoint, load_run, save_checkpoint


def tiny_model(latent_dim=2, hidden=8, seed=0):
    return tinyvae.mlp_vae(latent_dim=latent_dim, hidden=hidden, rng=np.random.default_rng(seed))


def restored_copy(ckpt, model, optimizer):
    """A differently initialized model, Adam and RNG restored from ``ckpt``: checked equal to the saved pair."""
    fresh, fresh_rng = tiny_model(seed=1), np.random.default_rng(123)
    fresh_opt = tinyvae.Adam(fresh.params, lr=1e-2)
    ckpt.restore(fresh, fresh_opt, fresh_rng)
    for k in model.params:
        np.testing.assert_array_equal(fresh.params[k], model.params[k])
        np.testing.assert_array_equal(fresh_opt.m[k], optimizer.m[k])
        np.testing.assert_array_equal(fresh_opt.v[k], optimizer.v[k])
    assert fresh_opt.step_count == optimizer.step_count
    return fresh, fresh_opt, fresh_rng


def trained(steps=3, seed=0):
    """A tiny model, its Adam after ``steps`` steps, and the RNG that drove them."""
    model, rng = tiny_model(seed=seed), np.random.default_rng(seed)
    optimizer = tinyvae.Adam(model.params, lr=1e-2)
    x = (rng.random((8, 1, 28, 28)) < 0.3).astype(np.float32)
    for _ in range(steps):
        model.loss_and_grads(x, rng=rng)
        optimizer.step(model.grads)
    return model, optimizer, rng


def npz_of(directory):
    return directory / json.loads((directory / "checkpoint.json").read_text())["npz"]


def files(directory):
    return {p.name: p.read_bytes() for p in directory.iterdir()}


def test_round_trip_restores_params_optimizer_and_rng(tmp_path):
    model, optimizer, rng = trained()
    history = [{"epoch": 1, "loss": 500.0}]
    path = save_checkpoint(tmp_path, model, optimizer, epoch=1, rng=rng, config={"lr": 1e-2}, history=history)
    twin = np.random.default_rng()
    twin.bit_generator.state = rng.bit_generator.state
    expected = twin.standard_normal(5)  # what the saved RNG draws next

    ckpt = load_checkpoint(tmp_path)
    assert ckpt.path == path and ckpt.epoch == 1
    assert ckpt.meta["version"] == 2 and ckpt.meta["model"] == model.config()
    assert ckpt.meta["config"] == {"lr": 1e-2} and ckpt.meta["history"] == history
    assert ckpt.meta["optimizers"] == {"optimizer": {"type": "Adam", "lr": 1e-2, "betas": [0.9, 0.999], "eps": 1e-8}}
    assert ckpt.meta["architecture"] == json.loads(json.dumps(model.architecture()))

    fresh, fresh_opt, fresh_rng = restored_copy(ckpt, model, optimizer)
    np.testing.assert_array_equal(fresh_rng.standard_normal(5), expected)


def test_files_are_plain_npz_and_json_and_old_epochs_are_removed(tmp_path):
    model, optimizer, rng = trained()
    save_checkpoint(tmp_path, model, optimizer, epoch=1, rng=rng)
    save_checkpoint(tmp_path, model, optimizer, epoch=2, rng=rng)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-epoch0002.npz", "checkpoint.json"]
    meta = json.loads((tmp_path / "checkpoint.json").read_text())
    assert meta["npz"] == "checkpoint-epoch0002.npz" and meta["epoch"] == 2
    with np.load(tmp_path / meta["npz"], allow_pickle=False) as data:  # no pickled objects inside
        assert set(data.files) == {f"model/{k}" for k in model.state_dict()} | {
            f"optimizer/optimizer/{k}" for k in optimizer.state_dict()
        }
        assert all(data[k].dtype != object for k in data.files)


def buffered(model):
    """``model`` with one buffer (state that is not a parameter), as a normalizing layer would have."""
    model.decoder._buffers["seen"] = np.zeros(3, np.float32)
    return model


def test_buffers_and_several_named_optimizers_round_trip(tmp_path):
    model, rng = buffered(tiny_model()), np.random.default_rng(0)
    model.buffers["decoder.seen"][...] = [1, 2, 3]
    enc = {k: v for k, v in model.params.items() if k.startswith("encoder.")}
    dec = {k: v for k, v in model.params.items() if k.startswith("decoder.")}
    optimizers = {"encoder": tinyvae.Adam(enc, lr=1e-3), "decoder": tinyvae.SGD(dec, lr=0.1, momentum=0.5)}
    x = (rng.random((4, 1, 28, 28)) < 0.3).astype(np.float32)
    model.loss_and_grads(x, rng=rng)
    for name, opt in optimizers.items():
        opt.step({k: model.grads[k] for k in opt.params})
    save_checkpoint(tmp_path, model, optimizers, epoch=1, rng=rng)
    ckpt = load_checkpoint(tmp_path)
    assert ckpt.meta["optimizers"]["decoder"] == {"type": "SGD", "lr": 0.1, "momentum": 0.5}

    fresh = buffered(tiny_model(seed=1))
    fresh_opts = {"encoder": tinyvae.Adam({k: fresh.params[k] for k in enc}, lr=1e-3),
                  "decoder": tinyvae.SGD({k: fresh.params[k] for k in dec}, lr=0.1, momentum=0.5)}  # fmt: skip
    ckpt.restore(fresh, fresh_opts)
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(fresh.state_dict()[k], v)
    for name, opt in optimizers.items():
        for k, v in opt.state_dict().items():
            np.testing.assert_array_equal(fresh_opts[name].state_dict()[k], v)
    with pytest.raises(CheckpointError, match=r"optimizers: checkpoint \['decoder', 'encoder'\], given \['optimizer'\]"):
        ckpt.restore(fresh, fresh_opts["encoder"])


def test_load_run_rebuilds_the_model_in_eval_mode(tmp_path, monkeypatch):
    model, optimizer, rng = trained()
    put_in_eval_mode = []
    monkeypatch.setattr(tinyvae.VAE, "eval", lambda self: put_in_eval_mode.append(self), raising=False)
    save_checkpoint(tmp_path, model, optimizer, epoch=3, rng=rng, history=[{"epoch": 3, "loss": 1.5}])
    loaded = load_run(tmp_path)
    assert loaded.config() == model.config()
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(loaded.state_dict()[k], v)
    x = (np.random.default_rng(5).random((4, 1, 28, 28)) < 0.3).astype(np.float32)
    np.testing.assert_array_equal(loaded.reconstruct(x), model.reconstruct(x))
    assert put_in_eval_mode == [loaded]
    assert load_checkpoint(tmp_path).meta["history"] == [{"epoch": 3, "loss": 1.5}]


def test_load_run_without_a_model_config_says_what_to_do(tmp_path):
    model, optimizer, rng = trained()
    custom = tinyvae.VAE(model.encoder, model.decoder, model.latent_dim, model.input_shape)  # config() == {}
    save_checkpoint(tmp_path, custom, optimizer, epoch=1, rng=rng)
    with pytest.raises(CheckpointError, match=r"checkpoint\.json: no model config.*load_checkpoint\(.*\)\.restore"):
        load_run(tmp_path)


def write_version_1(directory, model, optimizer, rng, epoch):
    """A checkpoint laid out as version 1 wrote it (before buffers and named optimizers)."""
    name = f"checkpoint-epoch{epoch:04d}.npz"
    arrays = {f"model/{k}": v for k, v in model.params.items()}
    arrays.update({f"optimizer/{k}": v for k, v in optimizer.state_dict().items()})
    np.savez(directory / name, **arrays)
    meta = {
        "format": "tinyvae-checkpoint", "version": 1, "npz": name, "npz_sha256": ckpt_module._sha256(directory / name),
        "epoch": epoch, "architecture": model.architecture(), "config": {"lr": optimizer.lr},
        "optimizer": {"type": "Adam", "step": optimizer.step_count, "lr": optimizer.lr, "beta1": optimizer.beta1,
                      "beta2": optimizer.beta2, "eps": optimizer.eps},
        "rng_state": rng.bit_generator.state, "history": [],
    }  # fmt: skip
    (directory / "checkpoint.json").write_text(json.dumps(meta))


def test_version_1_checkpoints_still_load(tmp_path):
    model, optimizer, rng = trained()
    write_version_1(tmp_path, model, optimizer, rng, epoch=2)
    ckpt = load_checkpoint(tmp_path)
    assert ckpt.epoch == 2 and ckpt.meta["config"] == {"lr": 1e-2}
    fresh, fresh_opt, fresh_rng = restored_copy(ckpt, model, optimizer)
    assert fresh_rng.bit_generator.state == rng.bit_generator.state
    with pytest.raises(CheckpointError, match="lr: checkpoint 0.01, given 0.001"):
        ckpt.restore(fresh, tinyvae.Adam(fresh.params, lr=1e-3))
    with pytest.raises(CheckpointError, match=r"no model config .*\(a version 1 checkpoint\)"):
        load_run(tmp_path)
    # The next save replaces it with a version-2 checkpoint and removes the version-1 arrays.
    save_checkpoint(tmp_path, fresh, fresh_opt, epoch=3, rng=fresh_rng)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-epoch0003.npz", "checkpoint.json"]


def test_architecture_mismatch_names_file_and_difference(tmp_path):
    model, optimizer, rng = trained()
    save_checkpoint(tmp_path, model, optimizer, epoch=1, rng=rng)
    other = tiny_model(latent_dim=3)
    with pytest.raises(CheckpointError, match=r"checkpoint\.json.*latent_dim: checkpoint 2, model 3"):
        load_checkpoint(tmp_path).restore(other)
    conv = tinyvae.conv_vae(latent_dim=2, rng=np.random.default_rng(0))
    with pytest.raises(CheckpointError, match=r"checkpoint\.json.*architecture differs.*encoder: checkpoint 4 entries \[Flatten, Dense"):
        load_checkpoint(tmp_path).restore(conv)


def test_optimizer_mismatch_is_an_error_and_changes_nothing(tmp_path):
    model, optimizer, rng = trained()
    save_checkpoint(tmp_path, model, optimizer, epoch=1, rng=rng)
    fresh = tiny_model(seed=1)
    before = fresh.state_dict()
    with pytest.raises(CheckpointError, match=r"optimizer 'optimizer' differs .*lr: checkpoint 0.01, given 0.001"):
        load_checkpoint(tmp_path).restore(fresh, tinyvae.Adam(fresh.params, lr=1e-3))
    with pytest.raises(CheckpointError, match="type: checkpoint 'Adam', given 'SGD'"):
        load_checkpoint(tmp_path).restore(fresh, tinyvae.SGD(fresh.params, lr=1e-2))
    for k, v in fresh.state_dict().items():
        np.testing.assert_array_equal(v, before[k])


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


def edit_meta(directory, **changes):
    pointer = directory / "checkpoint.json"
    meta = json.loads(pointer.read_text())
    meta.update(changes)
    pointer.write_text(json.dumps(meta))


def rewrite_npz(directory, add, drop=None):
    """Rewrite the checkpoint's .npz: its members but ``drop``, then ``add(zipfile)``; the digest is fixed to match."""
    npz = npz_of(directory)
    with np.load(npz, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files if k != drop}
    with zipfile.ZipFile(npz, "w") as zf:
        for k, v in arrays.items():
            with zf.open(k + ".npy", "w") as f:
                np.lib.format.write_array(f, v, allow_pickle=False)
        add(zf)
    edit_meta(directory, npz_sha256=ckpt_module._sha256(npz))
    return npz


def npy_member(zf, name, shape, descr="<f4", data=b"", zeros=0):
    """A .npy member whose header declares ``shape`` and ``descr``, then ``data`` and ``zeros`` zero bytes (deflated)."""
    info = zipfile.ZipInfo(name + ".npy")
    info.compress_type = zipfile.ZIP_DEFLATED
    with zf.open(info, "w", force_zip64=True) as f:
        np.lib.format.write_array_header_1_0(f, {"descr": descr, "fortran_order": False, "shape": shape})
        f.write(data)
        block = bytes(1 << 20)
        for start in range(0, zeros, len(block)):
            f.write(block[: zeros - start])


def test_unreadable_npz_with_matching_digest_is_an_error(tmp_path):
    model, optimizer, rng = trained()
    save_checkpoint(tmp_path, model, optimizer, epoch=1, rng=rng)
    npz = npz_of(tmp_path)
    npz.write_bytes(b"not a zip file")
    edit_meta(tmp_path, npz_sha256=ckpt_module._sha256(npz))
    with pytest.raises(CheckpointError, match=r"checkpoint-epoch0001\.npz: cannot read the arrays"):
        load_checkpoint(tmp_path)


BOMB = 256 << 20  # bytes of zeros, deflated to about 1 MB


@pytest.mark.parametrize(
    "name, match",
    [
        ("junk", r"member 'junk\.npy': unexpected"),
        ("model/decoder.9.weight", r"member 'model/decoder\.9\.weight\.npy': unexpected"),
        ("model/decoder.0.weight",  # the expected name, with a huge shape
         r"member 'model/decoder\.0\.weight\.npy': checkpoint \(67108864,\) float32, model \(2, 8\) float32"),
    ],
)
def test_hostile_deflated_member_is_refused_before_it_is_decompressed(tmp_path, name, match):
    model, optimizer, rng = trained()
    save_checkpoint(tmp_path, model, optimizer, epoch=1, rng=rng)
    npz = rewrite_npz(tmp_path, lambda zf: npy_member(zf, name, (BOMB // 4,), zeros=BOMB), drop=name)
    assert npz.stat().st_size < BOMB // 50
    fresh = tiny_model(seed=1)
    tracemalloc.start()
    try:
        with pytest.raises(CheckpointError, match=rf"{npz}: {match}"):
            load_checkpoint(tmp_path).restore(fresh, tinyvae.Adam(fresh.params, lr=1e-2))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 32 << 20


@pytest.mark.parametrize(
    "shape, descr, data, match",
    [
        ((2**40,), "<f4", b"\0" * 16, r"declares shape \(1099511627776,\) float32 \(4398046511104 bytes\) but holds 16"),
        ((2, 8), "|O", b"", r"dtype object is not numeric"),
        ((2, 8), "<c8", bytes(128), r"dtype complex64 is not numeric"),
        ((2, 8), [("a", "<f4")], bytes(64), r"is not numeric"),
        ((2, 8), "<f4", bytes(10), r"declares shape \(2, 8\) float32 \(64 bytes\) but holds 10"),
    ],
)
def test_member_headers_are_checked_before_any_data_is_read(tmp_path, shape, descr, data, match):
    model, optimizer, rng = trained()
    save_checkpoint(tmp_path, model, optimizer, epoch=1, rng=rng)
    name = "model/decoder.0.weight"
    npz = rewrite_npz(tmp_path, lambda zf: npy_member(zf, name, shape, descr=descr, data=data), drop=name)
    with pytest.raises(CheckpointError, match=rf"{npz}: member 'model/decoder\.0\.weight\.npy': .*{match}"):
        load_checkpoint(tmp_path)


def test_members_compressed_otherwise_than_numpy_does_are_refused(tmp_path):
    model, optimizer, rng = trained()
    save_checkpoint(tmp_path, model, optimizer, epoch=1, rng=rng)
    name = "model/decoder.0.weight"
    npz = rewrite_npz(tmp_path, lambda zf: zf.writestr(name + ".npy", b"x" * 100, zipfile.ZIP_BZIP2), drop=name)
    with pytest.raises(CheckpointError, match=rf"{npz}: member '{name}\.npy': .*compressed with zip method 12"):
        load_checkpoint(tmp_path)


def test_non_finite_arrays_in_a_checkpoint_are_refused(tmp_path):
    model, optimizer, rng = trained()
    save_checkpoint(tmp_path, model, optimizer, epoch=1, rng=rng)
    name, bad = "model/decoder.0.weight", model.params["decoder.0.weight"].copy()
    bad[0, 1] = np.inf
    npz = rewrite_npz(tmp_path, lambda zf: np.lib.format.write_array(zf.open(name + ".npy", "w"), bad), drop=name)
    fresh = tiny_model(seed=1)
    before = fresh.state_dict()
    with pytest.raises(CheckpointError, match=rf"{npz}: member 'model/decoder\.0\.weight\.npy': 1 non-finite"):
        load_checkpoint(tmp_path).restore(fresh)
    for k, v in fresh.state_dict().items():
        np.testing.assert_array_equal(v, before[k])


def test_a_missing_member_or_another_rng_is_refused_before_anything_changes(tmp_path):
    model, optimizer, rng = trained()
    save_checkpoint(tmp_path, model, optimizer, epoch=1, rng=rng)
    fresh = tiny_model(seed=1)
    before = fresh.state_dict()
    with pytest.raises(CheckpointError, match=r'"rng_state": cannot restore it into MT19937'):
        load_checkpoint(tmp_path).restore(fresh, rng=np.random.Generator(np.random.MT19937(0)))
    npz = rewrite_npz(tmp_path, lambda zf: None, drop="optimizer/optimizer/m.decoder.0.weight")
    with pytest.raises(CheckpointError, match=rf"{npz}: no member for optimizer/optimizer/m\.decoder\.0\.weight"):
        load_checkpoint(tmp_path).restore(fresh, tinyvae.Adam(fresh.params, lr=1e-2))
    for k, v in fresh.state_dict().items():
        np.testing.assert_array_equal(v, before[k])


@pytest.mark.parametrize(
    "changes, match",
    [
        ({"npz": "../elsewhere/checkpoint-epoch0001.npz"}, r'"npz": expected a plain file name in the same folder'),
        ({"npz": "/tmp/checkpoint-epoch0001.npz"}, r'"npz": expected a plain file name in the same folder'),
        ({"npz": ".."}, r'"npz": expected a plain file name'),
        ({"epoch": "3"}, r'"epoch": expected a non-negative integer, got \'3\''),
        ({"epoch": -1}, r'"epoch": expected a non-negative integer, got -1'),
        ({"epoch": True}, r'"epoch": expected a non-negative integer, got True'),
        ({"config": [1]}, r'"config": expected a JSON object'),
        ({"history": {"epoch": 1}}, r'"history": expected a list of JSON objects'),
        ({"history": [1]}, r'"history": expected a list of JSON objects'),
        ({"rng_state": "PCG64"}, r'"rng_state": expected a JSON object'),
        ({"optimizers": {"optimizer": 3}}, r'"optimizers": expected a JSON object name -> \{"type": ...\}'),
        ({"model": None}, r'"model": expected a JSON object'),
        ({"version": 3}, r"format version 3, expected 1 or 2"),
    ],
)
def test_json_fields_are_type_checked(tmp_path, changes, match):
    model, optimizer, rng = trained()
    save_checkpoint(tmp_path, model, optimizer, epoch=1, rng=rng)
    (tmp_path.parent / "elsewhere").mkdir(exist_ok=True)
    (tmp_path.parent / "elsewhere" / "checkpoint-epoch0001.npz").write_bytes(npz_of(tmp_path).read_bytes())
    edit_meta(tmp_path, **changes)
    with pytest.raises(CheckpointError, match=rf"checkpoint\.json: .*{match}"):
        load_checkpoint(tmp_path)


def test_a_model_that_went_non_finite_is_not_saved(tmp_path):
    model, optimizer, rng = trained()
    save_checkpoint(tmp_path, model, optimizer, epoch=1, rng=rng)
    before = files(tmp_path)
    model.params["decoder.0.weight"][1, 2] = np.nan
    with pytest.raises(CheckpointError, match=r"model/decoder\.0\.weight: 1 non-finite value .*nothing was written"):
        save_checkpoint(tmp_path, model, optimizer, epoch=2, rng=rng)
    optimizer.v["encoder.1.weight"][0, 0] = np.inf
    model.params["decoder.0.weight"][1, 2] = 0.0
    with pytest.raises(CheckpointError, match=r"optimizer/optimizer/v\.encoder\.1\.weight: 1 non-finite"):
        save_checkpoint(tmp_path, model, optimizer, epoch=2, rng=rng)
    assert files(tmp_path) == before and load_checkpoint(tmp_path).epoch == 1


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"history": [{"epoch": 1, "loss": float("nan")}]}, r"history\[0\]\.loss: nan is not a finite number"),
        ({"config": {"lr": np.inf}}, r"config\.lr: inf is not a finite number"),
        ({"config": {"x": object()}}, r"config\.x: not JSON \(object\)"),
        ({"config": {1: "a"}}, r"config: keys must be strings, got 1"),
        ({"history": {"epoch": 1}}, r"history: expected a list of dicts"),
        ({"rng": None}, r"rng: expected a numpy\.random\.Generator, got None"),
        ({"epoch": -1}, r"epoch: expected a non-negative integer, got -1"),
        ({"epoch": 2.5}, r"epoch: expected a non-negative integer, got 2\.5"),
    ],
)
def test_save_refuses_bad_metadata_before_writing(tmp_path, kwargs, match):
    model, optimizer, rng = trained()
    with pytest.raises(CheckpointError, match=match):
        save_checkpoint(tmp_path, model, optimizer, **{"epoch": 1, "rng": rng, **kwargs})
    assert not tmp_path.exists() or not any(tmp_path.iterdir())


def test_numpy_scalars_in_metadata_are_saved_as_plain_numbers(tmp_path):
    model, optimizer, rng = trained()
    history = [{"epoch": np.int64(1), "loss": np.float32(0.5), "ok": np.bool_(True)}]
    config = {"lr": np.float64(0.01)}
    save_checkpoint(tmp_path, model, optimizer, epoch=np.int64(1), rng=rng, config=config, history=history)
    meta = load_checkpoint(tmp_path).meta
    assert meta["history"] == [{"epoch": 1, "loss": 0.5, "ok": True}] and meta["config"] == {"lr": 0.01}
    assert meta["epoch"] == 1


def test_saving_an_epoch_again_never_overwrites_the_current_arrays(tmp_path, monkeypatch):
    """A new run over an epoch-0 checkpoint, killed between writing its .npz and its JSON."""
    model, optimizer, rng = trained()
    save_checkpoint(tmp_path, model, optimizer, epoch=0, rng=rng)
    saved = model.state_dict()
    write = ckpt_module.atomic_write

    def killed_before_the_json(path, write_fn):
        if path.name == "checkpoint.json":
            raise KeyboardInterrupt  # as if killed after the .npz was renamed into place
        write(path, write_fn)

    monkeypatch.setattr(ckpt_module, "atomic_write", killed_before_the_json)
    model.params["decoder.0.weight"][...] = 7.0
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(tmp_path, model, optimizer, epoch=0, rng=rng)
    monkeypatch.undo()
    fresh = tiny_model(seed=1)
    load_checkpoint(tmp_path).restore(fresh)
    for k, v in saved.items():
        np.testing.assert_array_equal(fresh.params[k], v)
    # Saving epoch 0 again works; the .npz of the killed save stays (nothing names it).
    save_checkpoint(tmp_path, model, optimizer, epoch=0, rng=rng)
    assert load_checkpoint(tmp_path).meta["npz"] == "checkpoint-epoch0000-3.npz"
    assert sorted(p.name for p in tmp_path.glob("checkpoint-epoch*.npz")) == [
        "checkpoint-epoch0000-2.npz", "checkpoint-epoch0000-3.npz"
    ]  # fmt: skip


def test_only_the_previous_npz_is_deleted(tmp_path):
    model, optimizer, rng = trained()
    save_checkpoint(tmp_path, model, optimizer, epoch=1, rng=rng)
    keep = ["checkpoint-epoch0001-best.npz", "checkpoint-epoch0007.npz.bak", "notes.txt"]
    for name in keep:
        (tmp_path / name).write_bytes(npz_of(tmp_path).read_bytes())
    save_checkpoint(tmp_path, model, optimizer, epoch=2, rng=rng)
    save_checkpoint(tmp_path, model, optimizer, epoch=2, rng=rng)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*keep, npz_of(tmp_path).name, "checkpoint.json"])


def test_temp_files_of_killed_saves_are_cleaned_up_by_the_next_save(tmp_path):
    model, optimizer, rng = trained()
    leftovers = [".checkpoint.json.k2j4_x9a.tmp", ".checkpoint-epoch0002.npz.abcdefgh.tmp",
                 ".checkpoint-epoch0002-2.npz.0a1b2c3d.tmp"]  # fmt: skip
    others = [".checkpoint.json.tmp", "checkpoint.json.abcdefgh.tmp", ".summary.json.abcdefgh.tmp",
              ".checkpoint.json.abcdefgh.tmp.keep", ".mydata.npz.abcdefgh.tmp"]  # fmt: skip
    for name in leftovers + others:
        (tmp_path / name).write_bytes(b"partial")
    save_checkpoint(tmp_path, model, optimizer, epoch=1, rng=rng)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*others, "checkpoint-epoch0001.npz", "checkpoint.json"])


@pytest.mark.parametrize("fail_at", ["npz", "json"])
def test_a_crash_while_saving_keeps_the_previous_checkpoint(tmp_path, monkeypatch, fail_at):
    model, optimizer, rng = trained()
    save_checkpoint(tmp_path, model, optimizer, epoch=1, rng=rng)
    before = files(tmp_path)
    write = ckpt_module.atomic_write

    def crash(path, write_fn):
        if path.suffix == f".{fail_at}":
            raise OSError("disk full")
        write(path, write_fn)

    monkeypatch.setattr(ckpt_module, "atomic_write", crash)
    model.params["decoder.0.weight"][...] = 7.0
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(tmp_path, model, optimizer, epoch=2, rng=rng)
    monkeypatch.undo()
    after = {k: v for k, v in files(tmp_path).items() if k != "checkpoint-epoch0002.npz"}
    assert after == before  # the old files untouched
    assert load_checkpoint(tmp_path).epoch == 1


SAVE_LOOP = """
import sys, numpy as np, tinyvae
from tinyvae.checkpoint import save_checkpoint
model = tinyvae.mlp_vae(latent_dim=2, hidden=64, rng=np.random.default_rng(0))
optimizer, rng = tinyvae.Adam(model.params, lr=1e-3), np.random.default_rng(0)
print("saving", flush=True)
for i in range(100000):
    save_checkpoint(sys.argv[1], model, optimizer, epoch=i % 3, rng=rng)  # re-saves epochs too
"""


def test_kill_9_in_the_middle_of_saves_leaves_a_loadable_checkpoint(tmp_path):
    """SIGKILL a process that saves in a loop, at scattered moments: the checkpoint always loads."""
    import signal
    import subprocess
    import sys
    import time

    delays = np.random.default_rng(0).uniform(0.0, 0.3, size=6)  # seconds after the first save starts
    save_checkpoint(tmp_path, tiny_model(hidden=64), None, epoch=0, rng=np.random.default_rng(0))
    for delay in delays:
        proc = subprocess.Popen([sys.executable, "-c", SAVE_LOOP, str(tmp_path)], stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline() == "saving\n"
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        model = tiny_model(hidden=64, seed=1)
        load_checkpoint(tmp_path).restore(model)
        np.testing.assert_array_equal(model.params["encoder.1.weight"], tiny_model(hidden=64).params["encoder.1.weight"])
