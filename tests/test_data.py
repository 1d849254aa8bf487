"""Tests for jaxtut.data: IDX parsing, MNIST loading and caching, transforms, batches, tables.

The real MNIST files are read from ``$JAXTUT_DATA_DIR`` or ``../shared/datasets/mnist`` (next to
the project root); tests that need them are skipped, with the reason, when neither exists. The
TFDS route is exercised offline with TFDS's own ``tfds.testing.mock_data``.
"""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from jaxtut.data import (
    ENV_VAR,
    IMAGES_MAGIC,
    LABELS_MAGIC,
    SHA256,
    BatchPlan,
    Mnist,
    as_dtype,
    breast_cancer,
    clear_mnist_cache,
    full_batch,
    linear_toy,
    load_mnist,
    load_mnist_tfds,
    make_regression_data,
    mnist_arrays,
    normalize,
    parse_idx,
    perceptron_toy,
    read_idx_file,
    sequential_batches,
    shuffled_batches,
    to_tensor,
)
from jaxtut.data import mnist as mnist_module
from jaxtut.errors import ConfigError, DataError, MissingDependencyError

from mnist_dir import find_mnist_dir

TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
NAMES = list(SHA256)


MNIST_DIR = find_mnist_dir()
needs_mnist = pytest.mark.skipif(
    MNIST_DIR is None,
    reason=f"real MNIST not found: set {ENV_VAR} or put the IDX files in ../shared/datasets/mnist",
)


@pytest.fixture(autouse=True)
def _tfds_download_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    """The TFDS tests fake or mock the download itself, so the reachability check stands aside;
    ``test_tfds_unreachable_host_fails_fast`` checks it on its own."""
    monkeypatch.setattr(mnist_module, "_tfds_download_blocked", lambda tfds, data_dir: None)


@pytest.fixture(autouse=True)
def _clean_cache():
    """Each test starts and ends with an empty MNIST cache (mocked TFDS data must not leak)."""
    clear_mnist_cache()
    yield
    clear_mnist_cache()


@pytest.fixture(scope="module")
def real() -> Mnist:
    if MNIST_DIR is None:
        pytest.skip(f"real MNIST not found: set {ENV_VAR} or provide ../shared/datasets/mnist")
    return load_mnist(MNIST_DIR)


@pytest.fixture
def mnist_copy(tmp_path: Path) -> Path:
    """A private copy of the MNIST folder that a test may damage."""
    if MNIST_DIR is None:
        pytest.skip(f"real MNIST not found: set {ENV_VAR} or provide ../shared/datasets/mnist")
    folder = tmp_path / "mnist"
    folder.mkdir()
    for name in NAMES:
        src = MNIST_DIR / f"{name}.gz"
        if src.is_file():
            shutil.copyfile(src, folder / src.name)
        else:
            shutil.copyfile(MNIST_DIR / name, folder / name)
    return folder


def _idx_bytes(array: np.ndarray) -> bytes:
    """Hand-built IDX bytes for a uint8 array."""
    magic = 0x00000800 | array.ndim
    header = np.array([magic, *array.shape], dtype=">u4").tobytes()
    return header + array.astype(np.uint8).tobytes()


def _raw_bytes(folder: Path, name: str) -> bytes:
    gz = folder / f"{name}.gz"
    return gzip.decompress(gz.read_bytes()) if gz.is_file() else (folder / name).read_bytes()


def _one_line(err: pytest.ExceptionInfo) -> str:
    message = str(err.value)
    assert message
    assert "\n" not in message
    return message


# ---------------------------------------------------------------------------------------------
# Real MNIST
# ---------------------------------------------------------------------------------------------


@needs_mnist
def test_real_mnist_shapes_dtypes_and_label_counts(real: Mnist) -> None:
    assert real.train_images.shape == (60000, 28, 28)
    assert real.train_images.dtype == np.uint8
    assert real.test_images.shape == (10000, 28, 28)
    assert real.test_images.dtype == np.uint8
    assert real.train_labels.shape == (60000,)
    assert real.train_labels.dtype == np.int64
    assert real.test_labels.shape == (10000,)
    assert real.test_labels.dtype == np.int64
    assert np.bincount(real.train_labels).tolist() == TRAIN_COUNTS
    assert np.bincount(real.test_labels).tolist() == TEST_COUNTS
    assert real.train_images.max() == 255
    assert real.source == str(MNIST_DIR.resolve())


@needs_mnist
def test_real_idx_files_read_individually() -> None:
    labels = read_idx_file(MNIST_DIR / "t10k-labels-idx1-ubyte.gz", expected_magic=LABELS_MAGIC)
    assert labels.shape == (10000,)
    assert labels.dtype == np.uint8
    assert np.bincount(labels).tolist() == TEST_COUNTS


@needs_mnist
def test_parse_and_verify_real_files_under_3s() -> None:
    clear_mnist_cache()
    start = time.perf_counter()
    data = load_mnist(MNIST_DIR)
    elapsed = time.perf_counter() - start
    print(f"MNIST parse + SHA-256 verify from a cold cache: {elapsed:.3f} s")
    assert data.train_images.shape == (60000, 28, 28)
    assert elapsed < 3.0


@needs_mnist
def test_cache_returns_same_object_and_arrays_are_read_only() -> None:
    first = load_mnist(MNIST_DIR)
    assert load_mnist(str(MNIST_DIR)) is first
    for array in (first.train_images, first.train_labels, first.test_images, first.test_labels):
        assert not array.flags.writeable
        with pytest.raises(ValueError):
            array[0] = 1


# ---------------------------------------------------------------------------------------------
# Hand-made IDX files and failures
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("compressed", [False, True])
def test_tiny_idx_files_raw_and_gz(tmp_path: Path, compressed: bool) -> None:
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    labels = np.array([7, 1], dtype=np.uint8)
    for name, array, magic in [("imgs", images, IMAGES_MAGIC), ("lbls", labels, LABELS_MAGIC)]:
        data = _idx_bytes(array)
        path = tmp_path / (f"{name}.gz" if compressed else name)
        path.write_bytes(gzip.compress(data) if compressed else data)
        result = read_idx_file(path, expected_magic=magic)
        assert result.dtype == np.uint8
        np.testing.assert_array_equal(result, array)


def test_gzip_detected_by_magic_bytes_without_suffix(tmp_path: Path) -> None:
    labels = np.array([3, 1, 4, 1, 5], dtype=np.uint8)
    path = tmp_path / "labels-no-suffix"
    path.write_bytes(gzip.compress(_idx_bytes(labels)))
    np.testing.assert_array_equal(read_idx_file(path, expected_magic=LABELS_MAGIC), labels)


def test_parse_idx_in_memory() -> None:
    images = np.arange(5 * 2 * 2, dtype=np.uint8).reshape(5, 2, 2)
    np.testing.assert_array_equal(
        parse_idx(_idx_bytes(images), expected_magic=IMAGES_MAGIC, name="x"), images
    )


def test_wrong_magic_number(tmp_path: Path) -> None:
    path = tmp_path / "labels-as-images"
    path.write_bytes(_idx_bytes(np.array([1, 2, 3], dtype=np.uint8)))
    with pytest.raises(DataError) as err:
        read_idx_file(path, expected_magic=IMAGES_MAGIC)
    message = _one_line(err)
    assert str(path) in message
    assert "0x00000801" in message
    assert "0x00000803" in message


@pytest.mark.parametrize("compressed", [False, True])
def test_truncated_tiny_file(tmp_path: Path, compressed: bool) -> None:
    data = _idx_bytes(np.arange(4 * 28 * 28, dtype=np.uint8).reshape(4, 28, 28) % 251)
    path = tmp_path / ("imgs.gz" if compressed else "imgs")
    if compressed:
        packed = gzip.compress(data)
        path.write_bytes(packed[: len(packed) // 2])
    else:
        path.write_bytes(data[:-10])
    with pytest.raises(DataError) as err:
        read_idx_file(path, expected_magic=IMAGES_MAGIC)
    message = _one_line(err)
    assert str(path) in message
    assert ("gzip" in message) if compressed else ("truncated" in message)


def test_bad_headers_and_trailing_bytes() -> None:
    good = _idx_bytes(np.zeros((2, 2, 2), dtype=np.uint8))
    cases = [
        (good[:2], "too short"),
        (good[:10], "truncated"),  # magic + 1.5 of 3 dimensions
        (good + b"\0", "trailing"),
    ]
    for data, expected in cases:
        with pytest.raises(DataError, match=expected) as err:
            parse_idx(data, expected_magic=IMAGES_MAGIC, name="tiny-file")
        assert "tiny-file" in _one_line(err)


def test_not_gzip_despite_suffix(tmp_path: Path) -> None:
    path = tmp_path / "junk.gz"
    path.write_bytes(b"this is not gzip at all")
    with pytest.raises(DataError, match="gzip") as err:
        read_idx_file(path, expected_magic=LABELS_MAGIC)
    assert str(path) in _one_line(err)


def test_missing_single_file(tmp_path: Path) -> None:
    with pytest.raises(DataError) as err:
        read_idx_file(tmp_path / "nothing-here", expected_magic=LABELS_MAGIC)
    assert "nothing-here" in _one_line(err)


def test_altered_copy_fails_checksum(mnist_copy: Path) -> None:
    name = "train-labels-idx1-ubyte"
    data = bytearray(_raw_bytes(mnist_copy, name))
    data[100] ^= 0x01  # still a valid IDX file: only the checksum can tell
    (mnist_copy / f"{name}.gz").unlink()
    (mnist_copy / name).write_bytes(bytes(data))
    with pytest.raises(DataError) as err:
        load_mnist(mnist_copy)
    message = _one_line(err)
    assert name in message
    assert "altered or truncated" in message
    # Without verification the same bytes parse fine.
    assert read_idx_file(mnist_copy / name, expected_magic=LABELS_MAGIC, verify=False).shape == (
        60000,
    )


def test_truncated_real_gz_file(mnist_copy: Path) -> None:
    path = mnist_copy / "t10k-labels-idx1-ubyte.gz"
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(DataError) as err:
        load_mnist(mnist_copy)
    assert "t10k-labels-idx1-ubyte.gz" in _one_line(err)


def test_raw_file_used_when_no_gz(mnist_copy: Path) -> None:
    name = "t10k-images-idx3-ubyte"
    raw = _raw_bytes(mnist_copy, name)
    (mnist_copy / f"{name}.gz").unlink()
    (mnist_copy / name).write_bytes(raw)
    data = load_mnist(mnist_copy)
    assert data.test_images.shape == (10000, 28, 28)
    assert np.bincount(data.test_labels).tolist() == TEST_COUNTS


def test_missing_file_in_folder(mnist_copy: Path) -> None:
    (mnist_copy / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError) as err:
        load_mnist(mnist_copy)
    message = _one_line(err)
    assert "t10k-labels-idx1-ubyte" in message
    assert str(mnist_copy.resolve()) in message
    assert ENV_VAR in message
    assert "--data-dir" in message


def test_missing_folder(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-folder"
    with pytest.raises(DataError) as err:
        load_mnist(missing)
    message = _one_line(err)
    assert str(missing) in message
    assert ENV_VAR in message


def test_failed_load_leaves_no_cache_entry(mnist_copy: Path) -> None:
    good = mnist_copy / "t10k-labels-idx1-ubyte.gz"
    saved = good.read_bytes()
    good.write_bytes(saved[:500])
    with pytest.raises(DataError):
        load_mnist(mnist_copy)
    assert mnist_module._CACHE == {}
    # Repairing the folder makes the next load succeed: nothing was poisoned.
    good.write_bytes(saved)
    data = load_mnist(mnist_copy)
    assert np.bincount(data.test_labels).tolist() == TEST_COUNTS
    assert len(mnist_module._CACHE) == 1


def test_replaced_file_is_noticed_despite_cache(mnist_copy: Path) -> None:
    load_mnist(mnist_copy)
    path = mnist_copy / "train-labels-idx1-ubyte.gz"
    data = bytearray(gzip.decompress(path.read_bytes()))
    data[200] ^= 0x02
    path.write_bytes(gzip.compress(bytes(data)))
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # a surely different mtime
    with pytest.raises(DataError, match="altered"):
        load_mnist(mnist_copy)


# ---------------------------------------------------------------------------------------------
# Where the data comes from
# ---------------------------------------------------------------------------------------------


@needs_mnist
def test_explicit_dir_beats_env_var(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "does-not-exist"))
    assert load_mnist(MNIST_DIR).source == str(MNIST_DIR.resolve())
    with pytest.raises(DataError) as err:
        load_mnist()
    message = _one_line(err)
    assert ENV_VAR in message
    assert "does-not-exist" in message
    monkeypatch.setenv(ENV_VAR, str(MNIST_DIR))
    assert load_mnist().source == str(MNIST_DIR.resolve())


def test_no_folder_falls_back_to_tfds(monkeypatch: pytest.MonkeyPatch) -> None:
    tfds = pytest.importorskip("tensorflow_datasets")
    monkeypatch.delenv(ENV_VAR, raising=False)
    with tfds.testing.mock_data(num_examples=3):
        data = load_mnist()
    assert data.source == "tfds"
    assert data.train_images.shape == (3, 28, 28)


def test_tfds_offline_with_mock_data() -> None:
    tfds = pytest.importorskip("tensorflow_datasets")
    with tfds.testing.mock_data(num_examples=6):
        data = load_mnist_tfds()
        assert load_mnist_tfds() is data  # cached
    assert data.source == "tfds"
    for images, labels in [
        (data.train_images, data.train_labels),
        (data.test_images, data.test_labels),
    ]:
        assert images.shape == (6, 28, 28)
        assert images.dtype == np.uint8
        assert labels.shape == (6,)
        assert labels.dtype == np.int64
        assert labels.min() >= 0
        assert labels.max() <= 9
        assert not images.flags.writeable
        assert not labels.flags.writeable
    # The mocked data runs through the same transforms as the real data.
    x_train, y_train, _, _ = mnist_arrays(data, normalize=True)
    assert x_train.shape == (6, 784)
    assert y_train.dtype == np.int64


def test_tfds_load_route(monkeypatch: pytest.MonkeyPatch) -> None:
    """With TensorFlow present, ``tfds.load(batch_size=-1)`` + ``tfds.as_numpy`` are used."""
    tfds = pytest.importorskip("tensorflow_datasets")
    rng = np.random.default_rng(0)
    fake = [
        (rng.integers(0, 256, (n, 28, 28, 1), dtype=np.uint8), rng.integers(0, 10, n))
        for n in (4, 2)
    ]
    calls = {}

    def fake_load(name, **kwargs):
        calls["load"] = (name, kwargs)
        return "splits"

    def fake_as_numpy(splits):
        calls["as_numpy"] = splits
        return fake

    monkeypatch.setattr(mnist_module, "_has_tensorflow", lambda: True)
    monkeypatch.setattr(tfds, "load", fake_load)
    monkeypatch.setattr(tfds, "as_numpy", fake_as_numpy)
    data = load_mnist_tfds(data_dir="/tmp/tfds-dir")
    assert calls["load"] == (
        "mnist",
        dict(split=["train", "test"], batch_size=-1, as_supervised=True, data_dir="/tmp/tfds-dir"),
    )
    assert calls["as_numpy"] == "splits"
    np.testing.assert_array_equal(data.train_images, fake[0][0][..., 0])
    np.testing.assert_array_equal(data.test_labels, fake[1][1])
    assert data.train_images.shape == (4, 28, 28)
    assert data.test_labels.dtype == np.int64


@pytest.mark.parametrize("tensorflow", [False, True])
def test_tfds_download_failure_is_one_line(
    monkeypatch: pytest.MonkeyPatch, tensorflow: bool
) -> None:
    tfds = pytest.importorskip("tensorflow_datasets")

    def offline(*args, **kwargs):
        raise OSError("Failed to establish a connection\nTraceback-ish second line")

    monkeypatch.setattr(mnist_module, "_has_tensorflow", lambda: tensorflow)
    monkeypatch.setattr(tfds, "load", offline)
    monkeypatch.setattr(tfds, "data_source", offline)
    with pytest.raises(DataError) as err:
        load_mnist_tfds()
    message = _one_line(err)
    assert "TFDS" in message
    assert "Failed to establish a connection" in message
    assert ENV_VAR in message
    assert mnist_module._CACHE == {}


def test_tfds_download_failure_is_not_retried_in_the_process(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tfds = pytest.importorskip("tensorflow_datasets")
    calls = []

    def offline(*args, **kwargs):
        calls.append(1)
        raise OSError("Failed to establish a connection")

    monkeypatch.setattr(mnist_module, "_has_tensorflow", lambda: False)
    monkeypatch.setattr(tfds, "data_source", offline)
    for _ in range(3):
        with pytest.raises(DataError) as err:
            load_mnist_tfds()
    assert len(calls) == 1
    assert "not retried" in _one_line(err) and "Failed to establish" in _one_line(err)
    clear_mnist_cache()  # forgetting the failure allows a new attempt
    with pytest.raises(DataError):
        load_mnist_tfds()
    assert len(calls) == 2


def test_tfds_unreachable_host_fails_fast(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    tfds = pytest.importorskip("tensorflow_datasets")
    monkeypatch.undo()  # the real reachability check, not the autouse stand-in
    for var in mnist_module._PROXY_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(mnist_module, "_TFDS_HOST", "mnist.invalid")  # never resolves (RFC 2606)
    calls = []
    monkeypatch.setattr(tfds, "data_source", lambda *a, **k: calls.append(1))
    monkeypatch.setattr(tfds, "load", lambda *a, **k: calls.append(1))
    with pytest.raises(DataError) as err:
        load_mnist_tfds(tmp_path)  # an empty TFDS folder: MNIST is not prepared there
    message = _one_line(err)
    assert "mnist.invalid is unreachable" in message and ENV_VAR in message
    assert calls == []  # TFDS's own download (minutes of retries offline) was never started


def test_tfds_not_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tensorflow_datasets", None)  # makes the import fail
    with pytest.raises(MissingDependencyError) as err:
        load_mnist_tfds()
    message = _one_line(err)
    assert "pip install tensorflow-datasets importlib_resources" in message
    assert ENV_VAR in message
    assert isinstance(err.value, ImportError)


def test_import_is_light() -> None:
    code = (
        "import sys, jaxtut.data; "
        "heavy = [m for m in ('tensorflow_datasets', 'sklearn', 'torch') if m in sys.modules]; "
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[1])


# ---------------------------------------------------------------------------------------------
# Transforms
# ---------------------------------------------------------------------------------------------


def test_transform_matches_hand_computation() -> None:
    pixels = np.array([0, 255, 51, 128], dtype=np.uint8)
    x = normalize(to_tensor(pixels))
    assert x.dtype == np.float32
    eps = np.finfo(np.float32).eps
    np.testing.assert_allclose(x[:3], [-1.0, 1.0, -0.6], rtol=0, atol=eps)
    # torchvision's exact float32 sequence: divide by 255, subtract 0.5, divide by 0.5.
    f = np.float32
    expected = (f(128) / f(255) - f(0.5)) / f(0.5)
    assert x[3] == expected


def test_transform_float64() -> None:
    pixels = np.arange(256, dtype=np.uint8)
    x = to_tensor(pixels, dtype="float64")
    assert x.dtype == np.float64
    np.testing.assert_array_equal(x, np.arange(256) / 255.0)
    y = normalize(x)
    assert y.dtype == np.float64
    assert y[0] == -1.0
    assert y[-1] == 1.0


def test_normalize_rejects_integers() -> None:
    with pytest.raises(TypeError, match="to_tensor"):
        normalize(np.zeros(3, dtype=np.uint8))


@needs_mnist
def test_mnist_arrays_on_real_data(real: Mnist) -> None:
    x_train, y_train, x_test, y_test = mnist_arrays(real, normalize=True)
    assert x_train.shape == (60000, 784)
    assert x_test.shape == (10000, 784)
    assert x_train.dtype == np.float32
    assert x_train.min() == -1.0
    assert x_train.max() == 1.0
    assert y_train.dtype == np.int64
    assert y_test.dtype == np.int64
    assert y_train.flags.writeable  # a copy: torch.from_numpy warns on read-only arrays
    np.testing.assert_array_equal(y_test, real.test_labels)

    x_plain, _, _, _ = mnist_arrays(real, normalize=False, dtype=np.float64, flatten=False)
    assert x_plain.shape == (60000, 28, 28)
    assert x_plain.dtype == np.float64
    assert x_plain.min() == 0.0
    assert x_plain.max() == 1.0


def test_as_dtype() -> None:
    assert as_dtype("float32") == np.float32
    assert as_dtype(np.float64) == np.float64
    assert as_dtype(np.dtype("float32")) == np.float32
    for bad in ("int32", "float16", None, "no-such-type"):
        with pytest.raises(ConfigError):
            as_dtype(bad)


# ---------------------------------------------------------------------------------------------
# Batches
# ---------------------------------------------------------------------------------------------


def test_same_seed_same_batches_and_different_seed_different_order() -> None:
    a = shuffled_batches(1000, 32, 3, seed=7)
    b = shuffled_batches(1000, 32, 3, seed=7)
    c = shuffled_batches(1000, 32, 3, seed=8)
    np.testing.assert_array_equal(a.idx, b.idx)
    np.testing.assert_array_equal(a.mask, b.mask)
    assert not np.array_equal(a.idx, c.idx)
    assert not np.array_equal(a.idx[0], a.idx[1])  # a new order every epoch


def test_plan_follows_one_generator() -> None:
    plan = shuffled_batches(100, 10, 2, seed=3)
    rng = np.random.default_rng(3)
    for epoch in range(2):
        np.testing.assert_array_equal(plan.idx[epoch].ravel(), rng.permutation(100))


def test_mnist_sized_plan_keeps_and_pads_last_batch() -> None:
    plan = shuffled_batches(60000, 64, 2, seed=0)
    assert isinstance(plan, BatchPlan)
    assert (plan.epochs, plan.steps_per_epoch, plan.batch_size) == (2, 938, 64)
    assert plan.num_steps == 2 * 938
    assert plan.idx.dtype == np.int64
    assert plan.mask.dtype == np.bool_
    assert plan.counts.shape == (2, 938)
    assert (plan.counts[:, :-1] == 64).all()
    assert (plan.counts[:, -1] == 32).all()
    assert plan.mask[:, -1, :32].all()
    assert not plan.mask[:, -1, 32:].any()
    assert (plan.idx[:, -1, 32:] == 0).all()
    for epoch in range(plan.epochs):
        # Every epoch is a permutation: each index exactly once among the real samples.
        real_idx = plan.idx[epoch][plan.mask[epoch]]
        np.testing.assert_array_equal(np.sort(real_idx), np.arange(60000))
        batches = plan.batches(epoch)
        assert len(batches) == 938
        assert [len(b) for b in batches[-2:]] == [64, 32]
        np.testing.assert_array_equal(np.concatenate(batches), real_idx)


def test_mnist_sized_plan_drops_last_batch() -> None:
    plan = shuffled_batches(60000, 64, 2, seed=0, drop_last=True)
    assert plan.steps_per_epoch == 937
    assert plan.mask.all()
    for epoch in range(plan.epochs):
        flat = plan.idx[epoch].ravel()
        assert len(np.unique(flat)) == 937 * 64  # no index twice, 32 left out


def test_plan_is_read_only_and_batches_are_copies() -> None:
    plan = sequential_batches(10, 4, 1)
    with pytest.raises(ValueError):
        plan.idx[0, 0, 0] = 5
    batch = plan.batches(0)[0]
    batch[0] = 99
    assert plan.idx[0, 0, 0] == 0
    with pytest.raises(IndexError):
        plan.batches(1)


def test_sequential_and_full_batch() -> None:
    seq = sequential_batches(5, 2, 2)
    assert seq.idx.shape == (2, 3, 2)
    assert [b.tolist() for b in seq.batches(1)] == [[0, 1], [2, 3], [4]]
    ones = sequential_batches(4, 1, 1)
    assert ones.idx.ravel().tolist() == [0, 1, 2, 3]
    assert ones.mask.all()
    full = full_batch(455, 3)
    assert full.idx.shape == (3, 1, 455)
    assert full.mask.all()
    np.testing.assert_array_equal(full.idx[2, 0], np.arange(455))


@pytest.mark.parametrize(
    ("call", "word"),
    [
        (lambda: shuffled_batches(0, 1, 1, 0), "n"),
        (lambda: shuffled_batches(10, 0, 1, 0), "batch_size"),
        (lambda: shuffled_batches(10, 2, 0, 0), "epochs"),
        (lambda: shuffled_batches(10, 2, 1, -1), "seed"),
        (lambda: shuffled_batches(10, 20, 1, 0, drop_last=True), "drop_last"),
        (lambda: sequential_batches(10, 2.5, 1), "batch_size"),
        (lambda: full_batch(10, 0), "epochs"),
    ],
)
def test_batch_arguments_are_validated(call, word: str) -> None:
    with pytest.raises(ConfigError, match=word) as err:
        call()
    _one_line(err)


# ---------------------------------------------------------------------------------------------
# Tables
# ---------------------------------------------------------------------------------------------


def test_breast_cancer() -> None:
    x_train, y_train, x_test, y_test = breast_cancer()
    assert x_train.shape == (455, 30)
    assert x_test.shape == (114, 30)
    assert y_train.shape == (455, 1)
    assert y_test.shape == (114, 1)
    assert {a.dtype for a in (x_train, y_train, x_test, y_test)} == {np.dtype(np.float32)}
    assert set(np.unique(y_train)) <= {0.0, 1.0}
    np.testing.assert_allclose(x_train.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(x_train.std(axis=0), 1.0, atol=1e-5)
    x64, _, _, _ = breast_cancer(dtype="float64")
    assert x64.dtype == np.float64
    np.testing.assert_allclose(x64, x_train, rtol=1e-6, atol=1e-6)


def test_make_regression_data() -> None:
    x, y = make_regression_data()
    assert x.shape == (20, 1)
    assert y.shape == (20, 1)
    assert x.dtype == y.dtype == np.float32
    assert make_regression_data("float64")[0].dtype == np.float64


def test_toy_tables() -> None:
    x, y, x_test, y_test = linear_toy()
    assert x.tolist() == [1, 2, 3, 4, 5]
    assert y.tolist() == [2, 4, 6, 8, 10]
    assert (x_test.tolist(), y_test.tolist()) == ([6], [12])
    assert x.dtype == np.float32
    assert linear_toy("float64")[0].dtype == np.float64
    px, py = perceptron_toy()
    assert px.shape == py.shape == (6,)
    assert list(zip(px.tolist(), py.tolist(), strict=True)) == [
        (1, 3),
        (2, 6),
        (3, 9),
        (4, 12),
        (5, 15),
        (6, 18),
    ]
