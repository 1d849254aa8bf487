"""MNIST: reading the IDX files, the TFDS fallback, and torchvision's transforms in NumPy.

The PyTorch tutorials load MNIST with ``torchvision.datasets.MNIST`` and
``transforms.Compose([ToTensor(), Normalize((0.5,), (0.5,))])``. Here both frameworks get their
data from the same NumPy arrays so that a parity test compares models, not loaders:

* :func:`load_mnist` finds the four IDX files (a folder given explicitly, else
  ``$JAXTUT_DATA_DIR``, else TFDS), checks them against their published SHA-256 and parses them
  with NumPy. Results are cached in-process and handed out read-only.
* :func:`to_tensor`, :func:`normalize` and :func:`mnist_arrays` reproduce torchvision's arithmetic
  (same operations, same order, same dtype) so the inputs agree bit for bit.

Every user-facing failure (missing folder or file, bad gzip, wrong header, altered bytes, no
network for TFDS) is a :class:`~jaxtut.errors.DataError` with a one-line message naming the file
and the fix.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import io
import os
import socket
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from jaxtut.data._dtypes import as_dtype
from jaxtut.errors import DataError, JaxtutError, MissingDependencyError

__all__ = [
    "ENV_VAR",
    "IMAGES_MAGIC",
    "LABELS_MAGIC",
    "SHA256",
    "Mnist",
    "clear_mnist_cache",
    "load_mnist",
    "load_mnist_tfds",
    "mnist_arrays",
    "normalize",
    "parse_idx",
    "read_idx_file",
    "to_tensor",
]

ENV_VAR = "JAXTUT_DATA_DIR"
IMAGES_MAGIC = 0x00000803  # unsigned bytes, 3 dimensions
LABELS_MAGIC = 0x00000801  # unsigned bytes, 1 dimension

# SHA-256 of the decompressed IDX bytes (from shared/datasets/mnist/SHA256SUMS). These are the
# same in every copy of MNIST, whereas the .gz wrappers differ from mirror to mirror.
SHA256: dict[str, str] = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}

# (field of Mnist, file name, expected magic), in the order they are read.
_FILES = (
    ("train_images", "train-images-idx3-ubyte", IMAGES_MAGIC),
    ("train_labels", "train-labels-idx1-ubyte", LABELS_MAGIC),
    ("test_images", "t10k-images-idx3-ubyte", IMAGES_MAGIC),
    ("test_labels", "t10k-labels-idx1-ubyte", LABELS_MAGIC),
)

_FIX = f"set {ENV_VAR} to a folder with the four MNIST IDX files, or pass --data-dir"
_GZIP_MAGIC = b"\x1f\x8b"
# The largest MNIST file (train-images) is 47,040,016 bytes; a cap well above it bounds the memory
# a corrupt or hostile .gz can claim while still reading any file of MNIST's layout.
MAX_DECOMPRESSED_BYTES = 128 * 2**20


@dataclass(frozen=True)
class Mnist:
    """The MNIST arrays as stored in the IDX files (read-only; see :func:`mnist_arrays`).

    Attributes:
        train_images: ``(60000, 28, 28)`` uint8.
        train_labels: ``(60000,)`` int64.
        test_images: ``(10000, 28, 28)`` uint8.
        test_labels: ``(10000,)`` int64.
        source: The folder the files came from, or ``"tfds"``.
    """

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    source: str


# Parsed data sets keyed by (resolved folder, file names, mtimes, sizes) or ("tfds", data_dir).
# Only complete, verified loads are stored, so a failure can never leave a partial entry.
_CACHE: dict[tuple[Any, ...], Mnist] = {}
# A failed TFDS download, by TFDS folder: offline, TFDS retries for minutes before it gives up,
# and a test suite or a multi-run script would pay that on every load. Later loads re-raise at once.
_TFDS_FAILED: dict[tuple[Any, ...], str] = {}


def clear_mnist_cache() -> None:
    """Forgets every cached MNIST load and failed download (the next load tries again)."""
    _CACHE.clear()
    _TFDS_FAILED.clear()


# --------------------------------------------------------------------------------------------
# IDX files
# --------------------------------------------------------------------------------------------


def parse_idx(data: bytes, *, expected_magic: int, name: str) -> np.ndarray:
    """Parses the bytes of an uncompressed IDX file of unsigned bytes.

    The header is a big-endian uint32 magic number (``0x0000080N``: type ``0x08`` = uint8, ``N``
    dimensions) followed by ``N`` big-endian uint32 sizes; the payload is the data in C order.

    Args:
        data: The whole decompressed file.
        expected_magic: :data:`IMAGES_MAGIC` or :data:`LABELS_MAGIC`.
        name: The file name, used in error messages.

    Returns:
        A uint8 array with the dimensions from the header (a read-only view of ``data``).

    Raises:
        DataError: If the magic number, the header or the payload size is wrong.
    """
    if len(data) < 4:
        raise DataError(f"{name}: only {len(data)} bytes, too short for an IDX header")
    magic = int(np.frombuffer(data, dtype=">u4", count=1)[0])
    if magic != expected_magic:
        raise DataError(
            f"{name}: IDX magic number is 0x{magic:08x}, expected 0x{expected_magic:08x}"
            " (wrong or corrupt file)"
        )
    ndim = magic & 0xFF
    header_size = 4 + 4 * ndim
    if len(data) < header_size:
        raise DataError(
            f"{name}: IDX header needs {header_size} bytes for {ndim} dimensions, "
            f"file has {len(data)} (truncated)"
        )
    shape = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    # Python ints: a product of uint32 sizes must not wrap around.
    expected = 1
    for d in shape:
        expected *= d
    payload = len(data) - header_size
    if payload != expected:
        what = "truncated" if payload < expected else "has trailing bytes"
        raise DataError(
            f"{name}: IDX payload is {payload} bytes but shape {shape} needs {expected} ({what})"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header_size).reshape(shape)


def _known_name(path: Path) -> str:
    """The MNIST name of ``path`` without a ``.gz`` suffix (may be unknown)."""
    return path.name.removesuffix(".gz")


def _read_bytes(path: Path) -> bytes:
    """Reads ``path`` and gunzips it when it is gzip (by suffix or by magic bytes)."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found; {_FIX}") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc}); {_FIX}") from None
    if path.suffix != ".gz" and not raw.startswith(_GZIP_MAGIC):
        return raw
    try:
        # Read at most one byte past the cap, so a gzip bomb (a few KB that inflate to GBs)
        # is stopped after MAX_DECOMPRESSED_BYTES instead of exhausting memory.
        with gzip.GzipFile(fileobj=io.BytesIO(raw)) as stream:
            data = stream.read(MAX_DECOMPRESSED_BYTES + 1)
    # EOFError: truncated stream; BadGzipFile (an OSError): bad header; zlib.error: bad data.
    except (EOFError, OSError, zlib.error) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(
            f"{path}: not a valid gzip file ({reason}); it is truncated or corrupt, replace it"
        ) from None
    if len(data) > MAX_DECOMPRESSED_BYTES:
        raise DataError(
            f"{path}: decompresses to more than {MAX_DECOMPRESSED_BYTES // 2**20} MiB, far more "
            "than any MNIST file; it is not an MNIST file, replace it"
        )
    return data


def read_idx_file(
    path: str | os.PathLike[str], *, expected_magic: int, verify: bool = True
) -> np.ndarray:
    """Reads one IDX file, raw or gzip-compressed, and parses it.

    Args:
        path: The file; gzip is detected by a ``.gz`` suffix or by the gzip magic bytes.
        expected_magic: :data:`IMAGES_MAGIC` or :data:`LABELS_MAGIC`.
        verify: Check the SHA-256 of the decompressed bytes when the file name (without ``.gz``)
            is one of the four MNIST files in :data:`SHA256`. Other names are never checked.

    Returns:
        The parsed uint8 array (read-only).

    Raises:
        DataError: If the file is missing, unreadable, not valid gzip, altered or malformed.
    """
    path = Path(path)
    data = _read_bytes(path)
    name = _known_name(path)
    if verify and name in SHA256 and hashlib.sha256(data).hexdigest() != SHA256[name]:
        raise DataError(
            f"{path}: SHA-256 of the decompressed bytes does not match MNIST's {name}; "
            "the file is altered or truncated, replace it with a fresh copy"
        )
    return parse_idx(data, expected_magic=expected_magic, name=str(path))


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------


def _readonly(array: np.ndarray) -> np.ndarray:
    array.flags.writeable = False
    return array


def _check_pair(images: np.ndarray, labels: np.ndarray, where: str) -> None:
    """Checks that a split has 28x28 images and one label per image."""
    if images.ndim != 3 or images.shape[1:] != (28, 28):
        raise DataError(f"{where}: images have shape {images.shape}, expected (N, 28, 28)")
    if labels.shape != (images.shape[0],):
        raise DataError(
            f"{where}: {labels.shape} labels for {images.shape[0]} images; the files do not match"
        )


def _locate(data_dir: str | os.PathLike[str], origin: str) -> tuple[Path, list[Path]]:
    """Resolves the folder and picks ``name.gz`` (preferred) or ``name`` for each file."""
    folder = Path(data_dir).expanduser()
    if not folder.exists():
        raise DataError(f"MNIST folder {folder} (from {origin}) does not exist; {_FIX}")
    if not folder.is_dir():
        raise DataError(f"MNIST folder {folder} (from {origin}) is not a directory; {_FIX}")
    folder = folder.resolve()
    paths = []
    for _, name, _ in _FILES:
        gz, raw = folder / f"{name}.gz", folder / name
        if gz.is_file():
            paths.append(gz)
        elif raw.is_file():
            paths.append(raw)
        else:
            raise DataError(f"MNIST file {name}[.gz] not found in {folder}; {_FIX}")
    return folder, paths


def _load_dir(data_dir: str | os.PathLike[str], origin: str) -> Mnist:
    folder, paths = _locate(data_dir, origin)
    # mtimes and sizes in the key: replacing a file (e.g. after a checksum error) is noticed.
    stats = [p.stat() for p in paths]
    key = (
        "dir",
        str(folder),
        *((p.name, s.st_mtime_ns, s.st_size) for p, s in zip(paths, stats, strict=True)),
    )
    if key in _CACHE:
        return _CACHE[key]
    arrays = {}
    for (field, _, magic), path in zip(_FILES, paths, strict=True):
        arrays[field] = read_idx_file(path, expected_magic=magic)
    for split in ("train", "test"):
        _check_pair(arrays[f"{split}_images"], arrays[f"{split}_labels"], f"{folder} ({split})")
    data = Mnist(
        train_images=_readonly(arrays["train_images"]),
        train_labels=_readonly(arrays["train_labels"].astype(np.int64)),
        test_images=_readonly(arrays["test_images"]),
        test_labels=_readonly(arrays["test_labels"].astype(np.int64)),
        source=str(folder),
    )
    _CACHE[key] = data
    return data


def load_mnist(data_dir: str | os.PathLike[str] | None = None) -> Mnist:
    """Loads MNIST from the first place that is configured.

    Search order: ``data_dir`` if given, else ``$JAXTUT_DATA_DIR`` if set and non-empty, else
    TFDS (:func:`load_mnist_tfds`). A configured folder is never skipped silently: if it is
    missing or incomplete, that is an error rather than a fall-through to a download.

    In a folder each file is read as ``name.gz`` if present, else as the raw ``name``, and checked
    against :data:`SHA256`. A load is cached in-process, keyed by the resolved folder and the
    files' modification times and sizes; the second call returns the same :class:`Mnist`.

    Args:
        data_dir: A folder with the four MNIST IDX files.

    Returns:
        The data set, with read-only arrays.

    Raises:
        DataError: If the folder or a file is missing, or a file is corrupt or altered.
        MissingDependencyError: If the TFDS fallback is needed but not installed.
    """
    if data_dir is not None:
        return _load_dir(data_dir, "the data_dir argument")
    env = os.environ.get(ENV_VAR, "")
    if env:
        return _load_dir(env, ENV_VAR)
    return load_mnist_tfds()


def _import_tfds() -> Any:
    # Lazy: importing TFDS costs ~0.5 s and is only needed when no folder is configured.
    try:
        import tensorflow_datasets as tfds
    except ImportError as exc:
        raise MissingDependencyError(
            f"loading MNIST through TFDS needs tensorflow-datasets ({exc}); "
            f"pip install tensorflow-datasets importlib_resources, or {_FIX}"
        ) from None
    return tfds


# Where TFDS downloads MNIST from, and how long a connection attempt may take before we call it
# unreachable. Offline, TFDS itself retries for ~3.5 minutes, printing a warning per retry.
_TFDS_HOST = "storage.googleapis.com"
_CONNECT_TIMEOUT_S = 5.0
_PROXY_VARS = ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")


def _tfds_download_blocked(tfds: Any, data_dir: Any) -> str | None:
    """Why a TFDS download of MNIST cannot work right now, or ``None`` if it may.

    ``None`` when MNIST is already prepared in TFDS's folder (no download needed), when a proxy is
    configured (a direct connection says nothing then), or when the download host accepts a
    connection within :data:`_CONNECT_TIMEOUT_S`.
    """
    if tfds.builder("mnist", data_dir=data_dir).is_prepared():
        return None
    if any(os.environ.get(var) for var in _PROXY_VARS):
        return None
    try:
        with socket.create_connection((_TFDS_HOST, 443), timeout=_CONNECT_TIMEOUT_S):
            return None
    except OSError as exc:
        return f"MNIST is not in TFDS's folder and {_TFDS_HOST} is unreachable ({exc})"


def _has_tensorflow() -> bool:
    """Whether ``tfds.load`` can build its tf.data pipeline (TFDS itself works without TF)."""
    return importlib.util.find_spec("tensorflow") is not None


def _tfds_split(images: Any, labels: Any, where: str) -> tuple[np.ndarray, np.ndarray]:
    """Turns TFDS's ``(N, 28, 28, 1)`` uint8 images and labels into the IDX layout."""
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 1:
        raise DataError(f"{where}: images have shape {images.shape}, expected (N, 28, 28, 1)")
    images = np.ascontiguousarray(images[..., 0], dtype=np.uint8)
    labels = np.asarray(labels).astype(np.int64)
    _check_pair(images, labels, where)
    return _readonly(images), _readonly(labels)


def _tfds_via_load(tfds: Any, data_dir: Any) -> list[tuple[np.ndarray, np.ndarray]]:
    """The documented route: whole splits as one batch each, converted to NumPy."""
    splits = tfds.load(
        "mnist", split=["train", "test"], batch_size=-1, as_supervised=True, data_dir=data_dir
    )
    return [tuple(split) for split in tfds.as_numpy(splits)]


def _tfds_via_data_source(tfds: Any, data_dir: Any) -> list[tuple[np.ndarray, np.ndarray]]:
    """The TensorFlow-free route: ``tfds.data_source`` reads ArrayRecord files record by record.

    ``tfds.load`` builds a ``tf.data`` pipeline and so needs TensorFlow, which this project does
    not depend on; ``tfds.data_source`` returns random-access sequences of NumPy examples.
    """
    sources = tfds.data_source("mnist", split=["train", "test"], data_dir=data_dir)
    result = []
    for source in sources:
        examples = [source[i] for i in range(len(source))]
        images = np.stack([np.asarray(ex["image"]) for ex in examples])
        labels = np.asarray([ex["label"] for ex in examples])
        result.append((images, labels))
    return result


def load_mnist_tfds(data_dir: str | os.PathLike[str] | None = None) -> Mnist:
    """Loads MNIST through TensorFlow Datasets, downloading it on first use.

    With TensorFlow installed this is ``tfds.load("mnist", split=["train", "test"],
    batch_size=-1, as_supervised=True)`` followed by ``tfds.as_numpy``; without it,
    ``tfds.data_source`` is used instead. Either way the channel axis is squeezed away and labels
    become int64, so the result looks exactly like one read from the IDX files.

    Args:
        data_dir: TFDS's own data folder (where it keeps prepared data sets); ``None`` for its
            default (``~/tensorflow_datasets``).

    Returns:
        The data set, with read-only arrays and ``source="tfds"``.

    Raises:
        MissingDependencyError: If tensorflow-datasets (or a module it needs) is not installed.
        DataError: If the download or preparation fails (e.g. no network).
    """
    tfds = _import_tfds()
    key = ("tfds", None if data_dir is None else os.fspath(data_dir))
    if key in _CACHE:
        return _CACHE[key]
    if key in _TFDS_FAILED:
        raise DataError(_TFDS_FAILED[key] + " (failed earlier in this process; not retried)")
    tfds_dir = key[1]
    blocked = _tfds_download_blocked(tfds, tfds_dir)
    if blocked:
        _TFDS_FAILED[key] = f"could not load MNIST through TFDS: {blocked}; {_FIX}"
        raise DataError(_TFDS_FAILED[key])
    try:
        if _has_tensorflow():
            splits = _tfds_via_load(tfds, tfds_dir)
        else:
            splits = _tfds_via_data_source(tfds, tfds_dir)
    except JaxtutError:
        raise
    except ImportError as exc:
        raise MissingDependencyError(
            f"TFDS could not import {exc.name or 'a module'} while loading MNIST; "
            f"pip install tensorflow-datasets importlib_resources, or {_FIX}"
        ) from exc
    except Exception as exc:
        # Network, DNS, checksum and preparation errors come in many types; one line for all.
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        message = f"could not load MNIST through TFDS ({type(exc).__name__}: {reason}); {_FIX}"
        _TFDS_FAILED[key] = message
        raise DataError(message) from exc
    if len(splits) != 2:
        raise DataError(f"TFDS returned {len(splits)} splits for MNIST, expected train and test")
    train_images, train_labels = _tfds_split(*splits[0], "tfds mnist train")
    test_images, test_labels = _tfds_split(*splits[1], "tfds mnist test")
    data = Mnist(train_images, train_labels, test_images, test_labels, source="tfds")
    _CACHE[key] = data
    return data


# --------------------------------------------------------------------------------------------
# torchvision's transforms
# --------------------------------------------------------------------------------------------


def to_tensor(images: np.ndarray, *, dtype: Any = np.float32) -> np.ndarray:
    """torchvision's ``ToTensor()`` for grayscale uint8 images: ``images / 255`` in ``dtype``.

    torchvision computes ``img.to(float32).div(255)``, i.e. a division in the target dtype (not a
    multiplication by ``1/255``, and not in float64 then cast), which is what is done here so the
    values agree bit for bit. The layout is unchanged (no channel axis is added).

    Args:
        images: uint8 array of any shape.
        dtype: ``"float32"`` (default) or ``"float64"``.

    Returns:
        A new array in ``[0, 1]``.
    """
    dt = as_dtype(dtype)
    return images.astype(dt) / dt.type(255)


def _sub_div(x: np.ndarray, mean: float, std: float) -> np.ndarray:
    if not np.issubdtype(x.dtype, np.floating):
        raise TypeError(f"normalize needs a float array, got {x.dtype}; apply to_tensor first")
    # torchvision: tensor.sub_(mean).div_(std) with mean and std as tensors of tensor's dtype.
    return (x - x.dtype.type(mean)) / x.dtype.type(std)


def normalize(x: np.ndarray, mean: float = 0.5, std: float = 0.5) -> np.ndarray:
    """torchvision's ``Normalize((mean,), (std,))``: ``(x - mean) / std`` in ``x``'s dtype.

    Args:
        x: A float array (e.g. the output of :func:`to_tensor`).
        mean: Subtracted first.
        std: Divided by second.

    Returns:
        A new array of the same dtype; with the defaults, ``[0, 1]`` maps to ``[-1, 1]``.
    """
    return _sub_div(x, mean, std)


def mnist_arrays(
    data: Mnist, *, normalize: bool, dtype: Any = "float32", flatten: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The model-ready arrays: ``ToTensor()`` (+ ``Normalize((0.5,), (0.5,))``), then flattening.

    Args:
        data: From :func:`load_mnist`.
        normalize: Also map ``[0, 1]`` to ``[-1, 1]`` as the tutorials' ``Normalize`` does.
        dtype: ``"float32"`` or ``"float64"`` (or a NumPy dtype) for the images.
        flatten: Reshape images to ``(N, 784)``; otherwise keep ``(N, 28, 28)``.

    Returns:
        ``(x_train, y_train, x_test, y_test)``: new, writable arrays; labels are int64 as
        PyTorch's ``NLLLoss``/``CrossEntropyLoss`` expect.
    """
    dt = as_dtype(dtype)

    def images(raw: np.ndarray) -> np.ndarray:
        x = to_tensor(raw, dtype=dt)
        if normalize:
            x = _sub_div(x, 0.5, 0.5)
        return x.reshape(len(x), -1) if flatten else x

    # Copies: the cached labels are read-only, and torch.from_numpy warns on read-only arrays.
    return (
        images(data.train_images),
        np.array(data.train_labels, dtype=np.int64),
        images(data.test_images),
        np.array(data.test_labels, dtype=np.int64),
    )
