"""Read MXNet's NDArray files (``mx.nd.save``, ``mx.model.save_checkpoint``'s ``prefix-0000.params``) with numpy.

No MXNet is needed. The layout, all little-endian, is MXNet 1.9.1's (src/ndarray/ndarray.cc, ``NDArray::Save``
and ``NDArray::Load``, both the one-array and the list forms; dmlc-core's include/dmlc/serializer.h for the
vectors and strings)::

    file    := uint64 0x112 | uint64 reserved | uint64 count | record * count
               | uint64 name_count (0 or count) | (uint64 length | utf-8 bytes) * name_count
    record  := V2/V3: uint32 magic 0xF993fac9 (V2) or 0xF993faca (V3, numpy-shape semantics)
                      | int32 storage type (0 dense; 1 row_sparse, 2 csr are refused) | shape
                      | context | int32 type flag | data
               V1:    uint32 magic 0xF993fac8 | shape | context | int32 type flag | data
               older: uint32 ndim (in place of a magic) | uint32 dims * ndim | context | int32 type flag | data
    shape   := int32 ndim | int64 dims * ndim
    context := int32 dev_type (1 cpu, 2 gpu, 3 cpu_pinned, 5 cpu_shared) | int32 dev_id
    data    := product(dims) * itemsize raw bytes, C order

The type flag is mshadow's (3rdparty/mshadow/mshadow/base.h): 0 float32, 1 float64, 2 float16, 3 uint8,
4 int32, 5 int8, 6 int64, 7 bool; 12 (bfloat16, no numpy dtype) is refused. A V3 record with ndim -1 or a dim
of -1, or a V2 / V1 / older one with ndim 0, is MXNet's "none" placeholder (no context or data follow); it
holds no values and is refused too (MXNet 1.9.1 itself would misread an old ndim-0 record as a 0-d array).
V3 records may be 0-d or have zero-size dims. The context only says where the array lived when saved; the
data is the same.

Every problem with a file (missing, wrong magic, truncated, trailing bytes, sizes larger than the file, an
unsupported record) raises :class:`~multibox.errors.DataError` with a one-line message naming the file; every
size is checked against the bytes left in the file before anything is allocated.
"""

from __future__ import annotations

import os
import struct
from typing import BinaryIO

import numpy as np

from multibox.errors import DataError

__all__ = ["read_mxnet_checkpoint_params", "read_mxnet_ndarrays", "read_mxnet_params"]

LIST_MAGIC = 0x112
NDARRAY_V1_MAGIC = 0xF993FAC8
NDARRAY_V2_MAGIC = 0xF993FAC9
NDARRAY_V3_MAGIC = 0xF993FACA

# mshadow::TypeFlag -> numpy dtype (little-endian on disk)
_DTYPES = {
    0: np.dtype("<f4"),
    1: np.dtype("<f8"),
    2: np.dtype("<f2"),
    3: np.dtype("u1"),
    4: np.dtype("<i4"),
    5: np.dtype("i1"),
    6: np.dtype("<i8"),
    7: np.dtype("?"),
}
_STORAGE_NAMES = {1: "row_sparse", 2: "csr"}
_DEVICE_TYPES = {1, 2, 3, 5}  # Context::DeviceType: kCPU, kGPU, kCPUPinned, kCPUShared
_MAX_NDIM = 32  # numpy's limit (1.x); far beyond any network parameter
# smallest possible record: magic, storage type, ndim 0 (a V2 "none")
_MIN_RECORD_BYTES = 12


class _Reader:
    """Reads little-endian fields from ``f``, never past its ``size`` bytes."""

    def __init__(self, f: BinaryIO, size: int, path: str) -> None:
        self.f, self.size, self.path, self.pos = f, size, path, 0

    @property
    def left(self) -> int:
        return self.size - self.pos

    def error(self, what: str) -> DataError:
        return DataError(f"{self.path}: bad MXNet .params file: {what}")

    def unsupported(self, what: str) -> DataError:
        return DataError(f"{self.path}: unsupported MXNet .params content: {what}")

    def take(self, n: int, what: str) -> bytes:
        if n > self.left:
            raise self.error(f"truncated at byte {self.pos}: {what} needs {n} bytes, {self.left} remain")
        data = self.f.read(n)
        if len(data) != n:
            raise self.error(f"could not read {what} at byte {self.pos} (file changed while reading?)")
        self.pos += n
        return data

    def unpack(self, fmt: str, what: str) -> tuple[int, ...]:
        return struct.unpack("<" + fmt, self.take(struct.calcsize("<" + fmt), what))

    def read_into(self, out: np.ndarray, what: str) -> None:
        n = out.nbytes
        if n > self.left:
            raise self.error(f"truncated at byte {self.pos}: {what} needs {n} bytes, {self.left} remain")
        if n and self.f.readinto(memoryview(out.reshape(-1).view(np.uint8))) != n:
            raise self.error(f"could not read {what} at byte {self.pos} (file changed while reading?)")
        self.pos += n


def _shape(r: _Reader, what: str, *, np_shape: bool) -> tuple[int, ...] | None:
    """A TShape (int32 ndim, int64 dims); None for MXNet's unknown shape (V3: ndim -1 or a dim of -1)."""
    (ndim,) = r.unpack("i", f"{what} ndim")
    if np_shape and ndim == -1:
        return None
    if not 0 <= ndim <= _MAX_NDIM:
        raise r.error(f"{what} has {ndim} dimensions (expected 0 to {_MAX_NDIM})")
    dims = r.unpack(f"{ndim}q", f"{what} dims")
    if np_shape and -1 in dims:
        return None
    if any(d < 0 for d in dims):
        raise r.error(f"{what} has a negative dimension: {dims}")
    return dims


def _record(r: _Reader, index: int) -> np.ndarray:
    what = f"array #{index}"
    start = r.pos
    (magic,) = r.unpack("I", f"{what} magic")
    if magic in (NDARRAY_V2_MAGIC, NDARRAY_V3_MAGIC):
        np_shape = magic == NDARRAY_V3_MAGIC
        (stype,) = r.unpack("i", f"{what} storage type")
        if stype in _STORAGE_NAMES:
            raise r.unsupported(
                f"{what} is stored as {_STORAGE_NAMES[stype]} (sparse); only dense arrays are supported"
            )
        if stype != 0:
            raise r.error(f"{what} has unknown storage type {stype}")
        shape = _shape(r, what, np_shape=np_shape)
        if shape is None or (not np_shape and len(shape) == 0):
            raise r.unsupported(f"{what} is an MXNet 'none' array (no shape, no values)")
    elif magic == NDARRAY_V1_MAGIC or magic <= _MAX_NDIM:
        # V1, or before it a record that starts with its ndim and uint32 dims. Both date from when ndim 0
        # meant "none" (nothing follows it), so 0-d is refused here as in V2.
        if magic == NDARRAY_V1_MAGIC:
            shape = _shape(r, what, np_shape=False)
        else:
            shape = r.unpack(f"{magic}I", f"{what} dims")
        if not shape:
            raise r.unsupported(f"{what} is an MXNet 'none' array (no shape, no values)")
    else:
        raise r.error(f"{what} at byte {start} has unknown magic 0x{magic:08x} (not an MXNet NDArray)")
    dev_type, dev_id = r.unpack("ii", f"{what} context")
    if dev_type not in _DEVICE_TYPES or dev_id < -1:
        raise r.error(f"{what} has an invalid device context ({dev_type}, {dev_id})")
    (flag,) = r.unpack("i", f"{what} type flag")
    if flag == 12:
        raise r.unsupported(f"{what} is bfloat16, which numpy cannot hold; cast it in MXNet first")
    if flag not in _DTYPES:
        raise r.error(f"{what} has unknown type flag {flag}")
    dtype = _DTYPES[flag]
    count = 1
    for d in shape:
        count *= d
    if count * dtype.itemsize > r.left:  # before allocating
        raise r.error(
            f"truncated at byte {r.pos}: {what} of shape {tuple(shape)} {dtype.name} needs "
            f"{count * dtype.itemsize} bytes, {r.left} remain"
        )
    out = np.empty(count, dtype=dtype)
    r.read_into(out, f"{what} data")
    try:  # a zero-size shape can still have dims numpy cannot index, e.g. (0, 2**62, 2**62)
        return out.astype(dtype.newbyteorder("="), copy=False).reshape(shape)
    except ValueError:
        raise r.error(f"{what} has shape {tuple(shape)}, too large for numpy") from None


def read_mxnet_ndarrays(path: str | os.PathLike[str]) -> tuple[list[np.ndarray], list[str] | None]:
    """The arrays of an MXNet NDArray file in file order, and their names (None when saved as a list).

    Arrays come back as writable, C-contiguous, native-endian numpy arrays of the saved dtype and shape.
    """
    shown = os.fspath(path)
    try:
        with open(path, "rb") as f:
            return _read(_Reader(f, os.fstat(f.fileno()).st_size, shown))
    except OSError as e:
        raise DataError(f"{shown}: cannot read the MXNet .params file: {e.strerror or e}") from None


def _read(r: _Reader) -> tuple[list[np.ndarray], list[str] | None]:
    if r.size < 24:
        raise r.error(f"only {r.size} bytes, shorter than the 24-byte header")
    magic, _reserved, count = r.unpack("QQQ", "header")
    if magic != LIST_MAGIC:
        raise r.error(f"header magic is 0x{magic:x}, expected 0x{LIST_MAGIC:x}")
    if count * _MIN_RECORD_BYTES > r.left:
        raise r.error(f"header claims {count} arrays, more than the {r.left} bytes left can hold")
    arrays = [_record(r, i) for i in range(count)]
    (name_count,) = r.unpack("Q", "the name count")
    if name_count not in (0, count):
        raise r.error(f"{name_count} names for {count} arrays")
    names = []
    for i in range(name_count):
        (length,) = r.unpack("Q", f"name #{i} length")
        raw = r.take(length, f"name #{i}")
        try:
            names.append(raw.decode("utf-8"))
        except UnicodeDecodeError:
            raise r.error(f"name #{i} is not UTF-8 text") from None
    if r.left:
        raise r.error(f"{r.left} bytes of trailing data after the last name (byte {r.pos} on)")
    return arrays, names if name_count else None


def read_mxnet_params(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Name -> array of an MXNet NDArray file, in file order (``mx.nd.load`` as a dict).

    Keys are as saved: ``arg:conv4_3_weight``, ``aux:bn_moving_mean``, ... for ``save_checkpoint`` files.
    A file saved from a list has no names; its keys are then ``"0"``, ``"1"``, ... in order. A name saved
    twice raises :class:`~multibox.errors.DataError`.
    """
    arrays, names = read_mxnet_ndarrays(path)
    if names is None:
        return {str(i): a for i, a in enumerate(arrays)}
    params = dict(zip(names, arrays, strict=True))
    if len(params) != len(names):
        twice = sorted({n for n in names if names.count(n) > 1})
        raise DataError(f"{os.fspath(path)}: name {', '.join(map(repr, twice))} saved more than once")
    return params


def read_mxnet_checkpoint_params(
    path: str | os.PathLike[str],
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """``(arg_params, aux_params)`` of a ``save_checkpoint`` file, prefixes removed (as ``mx.model.load_checkpoint``).

    Every key must start with ``arg:`` or ``aux:``; anything else raises :class:`~multibox.errors.DataError`.
    """
    arg: dict[str, np.ndarray] = {}
    aux: dict[str, np.ndarray] = {}
    for key, value in read_mxnet_params(path).items():
        kind, sep, name = key.partition(":")
        if not sep or kind not in ("arg", "aux"):
            raise DataError(
                f"{os.fspath(path)}: key {key!r} starts with neither 'arg:' nor 'aux:'; "
                "not a save_checkpoint .params file"
            )
        (arg if kind == "arg" else aux)[name] = value
    return arg, aux
