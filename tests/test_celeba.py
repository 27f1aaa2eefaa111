"""The CelebA reader and the image-folder reader on folders built here: both layouts, splits, the
decoded-image cache (reused, rebuilt on change), and clear errors for damaged copies."""

import os
import sys

import numpy as np
import pytest

PIL = pytest.importorskip("PIL", reason="Pillow not installed")
from PIL import Image  # noqa: E402

import tinyvae.datasets.images  # noqa: E402
import tinyvae.progress  # noqa: E402
from tinyvae.datasets import CELEBA_ATTRIBUTES, DatasetError, load_celeba, load_image_folder  # noqa: E402

N = 30  # images in the fake copy
SIZE = 16  # output size: small, fast


def colour_of(i):
    return np.array([(37 * i) % 200 + 30, (91 * i) % 200 + 30, (53 * i) % 200 + 30])


def write_face(path, i, width=178, height=218):
    """A CelebA-sized JPEG: colour_of(i) in the central 148 x 148 square, pure red around it."""
    pixels = np.zeros((height, width, 3), np.uint8)
    pixels[...] = (255, 0, 0)
    top, left = (height - 148) // 2, (width - 148) // 2
    pixels[top : top + 148, left : left + 148] = colour_of(i)
    Image.fromarray(pixels).save(path, quality=95, subsampling=0)


def fake_attributes(n=N):
    rng = np.random.default_rng(0)
    return rng.integers(0, 2, (n, 40)).astype(np.uint8)


def make_celeba(root, layout, partition=True, n=N):
    """A CelebA copy in torchvision's ("torchvision") or Kaggle's nested ("kaggle") layout; returns its attributes."""
    folder = root / "celeba" if layout == "torchvision" else root
    images = folder / "img_align_celeba"
    if layout == "kaggle":
        images = images / "img_align_celeba"
    images.mkdir(parents=True)
    attributes, names = fake_attributes(n), [f"{i + 1:06d}.jpg" for i in range(n)]
    for i, name in enumerate(names):
        write_face(images / name, i)
    signs = np.where(attributes == 1, "1", "-1")
    splits = [0] * (n - 10) + [1] * 5 + [2] * 5
    if layout == "torchvision":
        rows = [f"{name} " + " ".join(f"{s:>2}" for s in row) for name, row in zip(names, signs)]
        header = f"{n}\n" + " ".join(CELEBA_ATTRIBUTES) + " \n"  # count line; names line (with CelebA's trailing space)
        (folder / "list_attr_celeba.txt").write_text(header + "\n".join(rows) + "\n")
        if partition:
            (folder / "list_eval_partition.txt").write_text("".join(f"{a} {s}\n" for a, s in zip(names, splits)))
    else:
        rows = [f"{name}," + ",".join(row) for name, row in zip(names, signs)]
        header = "image_id," + ",".join(CELEBA_ATTRIBUTES) + "\n"
        (folder / "list_attr_celeba.csv").write_text(header + "\n".join(rows) + "\n")
        if partition:
            (folder / "list_eval_partition.csv").write_text(
                "image_id,partition\n" + "".join(f"{a},{s}\n" for a, s in zip(names, splits))
            )
    return attributes, np.array(splits)


def load(root, split, cache_dir):
    return load_celeba(root, image_size=SIZE, split=split, cache_dir=cache_dir, progress=False)


def assert_colours(images, indices):
    """Each image is its source's central square: colour_of(i) everywhere, no red border."""
    for image, i in zip(images, indices):
        error = np.abs(image.astype(int) - colour_of(i)[:, None, None])
        assert error.mean() < 4 and error.max() < 40, i


@pytest.mark.parametrize("layout", ["torchvision", "kaggle"])
def test_both_layouts_load_with_their_splits(tmp_path, layout):
    attributes, splits = make_celeba(tmp_path / "data", layout)
    for split, code in (("train", 0), ("valid", 1), ("test", 2)):
        images, attrs, names = load(tmp_path / "data", split, tmp_path / "cache")
        indices = np.nonzero(splits == code)[0]
        assert images.shape == (len(indices), 3, SIZE, SIZE) and images.dtype == np.uint8
        assert attrs.shape == (len(indices), 40) and attrs.dtype == np.uint8
        np.testing.assert_array_equal(attrs, attributes[indices])
        assert names == list(CELEBA_ATTRIBUTES)
        assert_colours(images, indices)
    all_images, _, _ = load(tmp_path / "data", "all", tmp_path / "cache")
    assert len(all_images) == N


def test_root_may_be_the_celeba_folder_itself(tmp_path):
    make_celeba(tmp_path, "torchvision")
    images, _, _ = load_celeba(tmp_path / "celeba", image_size=SIZE, cache_dir=tmp_path / "cache", progress=False)
    assert len(images) == N - 10


def test_without_a_partition_file_the_rows_split_80_10_10_in_order(tmp_path):
    attributes, _ = make_celeba(tmp_path, "kaggle", partition=False)
    sizes = {}
    for split in ("train", "valid", "test"):
        images, attrs, _ = load(tmp_path, split, tmp_path / "cache")
        sizes[split] = len(images)
        start = {"train": 0, "valid": 24, "test": 27}[split]
        np.testing.assert_array_equal(attrs, attributes[start : start + len(attrs)])
    assert sizes == {"train": 24, "valid": 3, "test": 3}


def test_a_64_pixel_load_shows_its_progress(tmp_path, capsys, monkeypatch):
    make_celeba(tmp_path, "torchvision", n=3)
    (tmp_path / "celeba" / "list_eval_partition.txt").unlink()
    monkeypatch.setattr(tinyvae.progress, "PIPED_EVERY_S", 0.0)  # a line per image, not every 10 s
    images, _, _ = load_celeba(tmp_path, split="all", cache_dir=tmp_path / "cache")
    assert images.shape == (3, 3, 64, 64)
    assert_colours(images, range(3))
    err = capsys.readouterr().err
    assert "decoding 3 images into celeba_64_all_" in err and "image 3/3 (100%)" in err


def test_the_cache_is_reused_then_rebuilt_when_a_source_changes(tmp_path, monkeypatch):
    make_celeba(tmp_path, "torchvision")
    cache = tmp_path / "cache"
    first, _, _ = load_celeba(tmp_path, image_size=SIZE, cache_dir=cache, progress=False)
    [cache_file] = cache.glob("celeba_16_train_*.npy")
    assert isinstance(first, np.memmap)

    real_decode = tinyvae.datasets.images.decode_image

    def no_decoding(*args):
        raise AssertionError("decoded again although the cache is valid")

    monkeypatch.setattr(tinyvae.datasets.images, "decode_image", no_decoding)
    second, _, _ = load_celeba(tmp_path, image_size=SIZE, cache_dir=cache, progress=False)
    np.testing.assert_array_equal(second, first)

    monkeypatch.setattr(tinyvae.datasets.images, "decode_image", real_decode)
    changed = tmp_path / "celeba" / "img_align_celeba" / "000002.jpg"
    write_face(changed, 7)  # image 2 now looks like image 7
    os.utime(changed, ns=(10**18, 10**18))  # a different mtime even on coarse clocks
    third, _, _ = load_celeba(tmp_path, image_size=SIZE, cache_dir=cache, progress=False)
    assert_colours(third[1:2], [7])
    np.testing.assert_array_equal(third[2:], first[2:])
    [new_cache_file] = cache.glob("celeba_16_train_*.npy")  # the stale cache is gone
    assert new_cache_file != cache_file


def test_a_damaged_cache_file_is_rebuilt(tmp_path):
    make_celeba(tmp_path, "kaggle")
    cache = tmp_path / "cache"
    first = np.array(load_celeba(tmp_path, image_size=SIZE, cache_dir=cache, progress=False)[0])  # not a map of
    [cache_file] = cache.glob("*.npy")  # the file damaged here: reading a truncated map is a bus error
    cache_file.write_bytes(b"not an npy file")
    second, _, _ = load_celeba(tmp_path, image_size=SIZE, cache_dir=cache, progress=False)
    np.testing.assert_array_equal(second, first)


# --------------------------------------------------------------------------------------
# Damaged copies: a DatasetError naming the file, and no cache written
# --------------------------------------------------------------------------------------


def damage_missing_image(folder):
    (folder / "img_align_celeba" / "000005.jpg").unlink()
    return r"000005\.jpg: missing image"


def damage_unreadable_image(folder):
    (folder / "img_align_celeba" / "000005.jpg").write_bytes(b"\xff\xd8 this is no JPEG")
    return r"000005\.jpg: unreadable image"


def damage_count(folder):
    path = folder / "list_attr_celeba.txt"
    path.write_text(path.read_text().replace(f"{N}\n", f"{N + 1}\n", 1))
    return rf"list_attr_celeba\.txt: line 1 says {N + 1} images, the file has {N} rows"


def damage_row(folder):
    path = folder / "list_attr_celeba.txt"
    lines = path.read_text().splitlines()
    lines[6] = lines[6].rsplit(" ", 1)[0] + " 2"  # a value that is neither 1 nor -1
    path.write_text("\n".join(lines) + "\n")
    return r"list_attr_celeba\.txt, line 7: expected an image name and 40 values of 1 or -1"


def damage_short_row(folder):
    path = folder / "list_attr_celeba.txt"
    lines = path.read_text().splitlines()
    lines[3] = lines[3].rsplit(" ", 3)[0]
    path.write_text("\n".join(lines) + "\n")
    return r"list_attr_celeba\.txt, line 4: expected an image name and 40 values"


def damage_name(folder):
    path = folder / "list_attr_celeba.txt"
    path.write_text(path.read_text().replace("Smiling", "Grinning", 1))
    return r"list_attr_celeba\.txt: unknown attribute name\(s\) \['Grinning'\]"


def damage_partition(folder):
    path = folder / "list_eval_partition.txt"
    path.write_text("".join(path.read_text().splitlines(keepends=True)[:-1]))  # one image fewer
    return rf"list_eval_partition\.txt: lists {N - 1} images, the attribute file {N}"


def damage_partition_value(folder):
    path = folder / "list_eval_partition.txt"
    path.write_text(path.read_text().replace("000003.jpg 0", "000003.jpg 3"))
    return r"list_eval_partition\.txt, line 3: expected an image name and 0, 1 or 2"


def damage_attribute_file(folder):
    (folder / "list_attr_celeba.txt").unlink()
    return r"no CelebA attribute file"


def damage_image_folder(folder):
    for path in (folder / "img_align_celeba").iterdir():
        path.unlink()
    (folder / "img_align_celeba").rmdir()
    return r"img_align_celeba: missing CelebA image folder"


@pytest.mark.parametrize(
    "damage",
    [damage_missing_image, damage_unreadable_image, damage_count, damage_row, damage_short_row, damage_name,
     damage_partition, damage_partition_value, damage_attribute_file, damage_image_folder],
)  # fmt: skip
def test_a_damaged_copy_is_a_clear_error_and_writes_no_cache(tmp_path, damage):
    make_celeba(tmp_path, "torchvision")
    message = damage(tmp_path / "celeba")
    with pytest.raises(DatasetError, match=message):
        load_celeba(tmp_path, image_size=SIZE, cache_dir=tmp_path / "cache", progress=False)
    assert not (tmp_path / "cache").exists() or not list((tmp_path / "cache").iterdir())


def test_a_malformed_csv_row_names_the_file_and_line(tmp_path):
    make_celeba(tmp_path, "kaggle")
    path = tmp_path / "list_attr_celeba.csv"
    lines = path.read_text().splitlines()
    lines[2] = lines[2] + ",1"  # one value too many
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DatasetError, match=r"list_attr_celeba\.csv, line 3"):
        load_celeba(tmp_path, image_size=SIZE, cache_dir=tmp_path / "cache", progress=False)


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="split must be one of"):
        load_celeba(tmp_path, split="training")
    with pytest.raises(DatasetError, match="no such CelebA folder"):
        load_celeba(tmp_path / "nowhere")


# --------------------------------------------------------------------------------------
# Any folder of images
# --------------------------------------------------------------------------------------


def test_image_folder_reads_pngs_and_jpegs_center_cropped(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    wide = np.zeros((20, 40, 3), np.uint8)
    wide[:, :10] = wide[:, 30:] = (255, 0, 0)  # the centered 20 x 20 square is black
    Image.fromarray(wide).save(folder / "b_wide.png")
    write_face(folder / "a_face.JPG", 3, width=148, height=148)
    (folder / "notes.txt").write_text("not an image")
    images, names = load_image_folder(folder, image_size=8, cache_dir=tmp_path / "cache", progress=False)
    assert names == ["a_face.JPG", "b_wide.png"]
    assert images.shape == (2, 3, 8, 8) and images.dtype == np.uint8
    assert_colours(images[:1], [3])
    assert images[1].max() == 0


def test_image_folder_errors_name_the_folder_or_file(tmp_path):
    with pytest.raises(DatasetError, match="not a folder of images"):
        load_image_folder(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match=r"empty: no image files"):
        load_image_folder(tmp_path / "empty")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "x.png").write_bytes(b"garbage")
    with pytest.raises(DatasetError, match=r"x\.png: unreadable image"):
        load_image_folder(tmp_path / "bad", cache_dir=tmp_path / "cache", progress=False)


def test_without_pillow_the_error_says_how_to_install_it(tmp_path, monkeypatch):
    make_celeba(tmp_path, "torchvision", n=2)
    monkeypatch.setitem(sys.modules, "PIL", None)  # makes `from PIL import Image` raise ImportError
    with pytest.raises(ImportError, match=r"needs Pillow: `pip install tinyvae\[images\]`"):
        load_celeba(tmp_path, split="all", cache_dir=tmp_path / "cache", progress=False)
    assert not list((tmp_path / "cache").glob("*.npy"))
