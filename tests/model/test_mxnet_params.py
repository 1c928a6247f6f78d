"""The pure-numpy reader of MXNet's NDArray ``.params`` files, against files MXNet 1.9.1 wrote (no MXNet needed).

The fixtures and their expected arrays are in tests/fixtures/mxnet_params/ (see its README).
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from multibox.errors import DataError
from multibox.model.mxnet_params import (
    read_mxnet_checkpoint_params,
    read_mxnet_ndarrays,
    read_mxnet_params,
)

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "mxnet_params"
READABLE = ["dict", "list", "tiny-0000", "npx", "legacy_v1", "legacy_v0"]
V2, V3 = 0xF993FAC9, 0xF993FACA


def expected(name: str) -> tuple[list[np.ndarray], list[str] | None]:
    with np.load(FIXTURES / f"{name}.expected.npz", allow_pickle=False) as z:
        arrays = [z[f"array_{i}"] for i in range(len(z.files) - 2)]
        names = [str(n) for n in z["names"]] if bool(z["named"]) else None
    return arrays, names


def assert_same(got: np.ndarray, want: np.ndarray) -> None:
    assert got.dtype == want.dtype and got.shape == want.shape
    assert got.tobytes() == want.tobytes()  # bit for bit: nan, -0.0 and denormals included


def header(count: int) -> bytes:
    return struct.pack("<QQQ", 0x112, 0, count)


def v2_record(
    a: np.ndarray, *, magic: int = V2, stype: int = 0, ctx=(1, 0), flag: int | None = None
) -> bytes:
    flag = {"float32": 0, "int32": 4}[a.dtype.name] if flag is None else flag
    shape = struct.pack(f"<i{a.ndim}q", a.ndim, *a.shape)
    return struct.pack("<Ii", magic, stype) + shape + struct.pack("<iii", *ctx, flag) + a.tobytes()


def names_block(names: list[bytes]) -> bytes:
    return struct.pack("<Q", len(names)) + b"".join(struct.pack("<Q", len(n)) + n for n in names)


def write(tmp_path: Path, data: bytes, name: str = "bad.params") -> Path:
    p = tmp_path / name
    p.write_bytes(data)
    return p


def raises(path: Path, match: str) -> DataError:
    with pytest.raises(DataError, match=match) as info:
        read_mxnet_params(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ") and "\n" not in message
    return info.value


# --- files MXNet wrote ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", READABLE)
def test_reproduces_what_mxnet_saved(name):
    want_arrays, want_names = expected(name)
    arrays, names = read_mxnet_ndarrays(FIXTURES / f"{name}.params")
    assert names == want_names
    assert len(arrays) == len(want_arrays)
    for got, want in zip(arrays, want_arrays, strict=True):
        assert_same(got, want)
        assert got.flags.c_contiguous and got.flags.writeable and got.dtype.isnative

    params = read_mxnet_params(FIXTURES / f"{name}.params")
    assert list(params) == (want_names or [str(i) for i in range(len(want_arrays))])
    for got, want in zip(params.values(), want_arrays, strict=True):
        assert_same(got, want)


def test_dict_fixture_covers_dtypes_and_shapes():
    params = read_mxnet_params(FIXTURES / "dict.params")
    dtypes = {a.dtype.name for a in params.values()}
    assert dtypes == {"float32", "float64", "float16", "uint8", "int32", "int8", "int64", "bool"}
    assert params["arg:conv1_weight"].shape == (8, 3, 3, 3)
    assert params["arg:six_dims"].ndim == 6
    assert "arg:caf\u00e9_\u00fc" in params
    assert np.isnan(params["arg:special_values"]).sum() == 1
    npx = read_mxnet_params(FIXTURES / "npx.params")
    assert npx["scalar"].shape == () and npx["scalar"] == np.float32(2.5)
    assert npx["empty"].shape == (0, 3)


def test_checkpoint_split_matches_the_symbol():
    arg, aux = read_mxnet_checkpoint_params(FIXTURES / "tiny-0000.params")
    assert list(arg) == ["conv_weight", "conv_bias", "bn_gamma", "bn_beta"]
    assert list(aux) == ["bn_moving_mean", "bn_moving_var"]
    assert arg["conv_weight"].shape == (4, 3, 3, 3)
    assert all(a.shape == (4,) for a in [*aux.values(), arg["bn_gamma"]])
    symbol = json.loads((FIXTURES / "tiny-symbol.json").read_text())
    variables = {n["name"] for n in symbol["nodes"] if n["op"] == "null"}
    assert variables == {"data", *arg, *aux}


def test_checkpoint_split_refuses_keys_without_prefix():
    with pytest.raises(DataError, match=r"key '0' starts with neither 'arg:' nor 'aux:'"):
        read_mxnet_checkpoint_params(FIXTURES / "list.params")


@pytest.mark.parametrize(("name", "kind"), [("row_sparse", "row_sparse"), ("csr", "csr")])
def test_sparse_is_refused(name, kind):
    raises(FIXTURES / f"{name}.params", rf"unsupported .*array #0 is stored as {kind} \(sparse\)")


# --- damaged copies of real files -------------------------------------------------------------------------


@pytest.mark.parametrize("name", READABLE)
def test_every_truncation_is_a_data_error(tmp_path, name):
    data = (FIXTURES / f"{name}.params").read_bytes()
    cuts = range(len(data)) if len(data) < 400 else sorted({*range(0, 64), *range(0, len(data), 7)})
    for n in cuts:
        p = write(tmp_path, data[:n])
        raises(p, r"bad MXNet \.params file: (truncated|only \d+ bytes|header claims)")


@pytest.mark.parametrize("extra", [b"\0", b"x" * 100])
def test_trailing_bytes(tmp_path, extra):
    data = (FIXTURES / "list.params").read_bytes()
    raises(write(tmp_path, data + extra), rf"{len(extra)} bytes of trailing data after the last name")


def test_flipped_list_magic(tmp_path):
    data = bytearray((FIXTURES / "dict.params").read_bytes())
    data[0] ^= 0x01
    raises(write(tmp_path, bytes(data)), r"header magic is 0x113, expected 0x112")


def test_flipped_record_magic(tmp_path):
    data = bytearray((FIXTURES / "dict.params").read_bytes())
    data[27] ^= 0x80  # high byte of the first record's magic
    raises(write(tmp_path, bytes(data)), r"array #0 at byte 24 has unknown magic 0x7993fac9")


def test_not_a_params_file(tmp_path):
    raises(FIXTURES / "tiny-symbol.json", r"header magic is 0x")
    raises(write(tmp_path, b""), r"only 0 bytes, shorter than the 24-byte header")


def test_missing_file_and_directory(tmp_path):
    raises(tmp_path / "nope.params", r"cannot read the MXNet \.params file: No such file")
    raises(tmp_path, r"cannot read the MXNet \.params file")


# --- hand-made headers that lie ---------------------------------------------------------------------------


A = np.arange(6, dtype=np.float32).reshape(2, 3)


def test_hand_made_v2_file_reads(tmp_path):
    p = write(
        tmp_path, header(2) + v2_record(A) + v2_record(A[0].astype(np.int32)) + names_block([b"a", b"b"])
    )
    params = read_mxnet_params(p)
    assert list(params) == ["a", "b"]
    assert_same(params["a"], A)
    assert_same(params["b"], np.array([0, 1, 2], dtype=np.int32))
    assert read_mxnet_params(write(tmp_path, header(0) + names_block([]))) == {}


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (header(2**63) + v2_record(A) + names_block([]), r"header claims 9223372036854775808 arrays"),
        (
            header(1) + struct.pack("<Iii2q", V2, 0, 2, 2**40, 2**40) + struct.pack("<iii", 1, 0, 0),
            r"truncated at byte 64: array #0 of shape \(1099511627776, 1099511627776\) float32 needs "
            r"4835703278458516698824704 bytes, 0 remain",
        ),
        (
            header(1) + struct.pack("<Iii3q", V2, 0, 3, 0, 2**62, 2**62) + struct.pack("<iii", 1, 0, 0),
            r"array #0 has shape \(0, 4611686018427387904, 4611686018427387904\), too large for numpy",
        ),
        (header(1) + struct.pack("<Iii", V2, 0, 1000) + b"\0" * 64, r"array #0 has 1000 dimensions"),
        (header(1) + struct.pack("<Iii", V2, 0, -5) + b"\0" * 64, r"array #0 has -5 dimensions"),
        (header(1) + struct.pack("<Iiiq", V2, 0, 1, -3) + b"\0" * 64, r"array #0 has a negative dimension"),
        (
            header(1) + v2_record(A) + struct.pack("<QQ", 1, 2**62),
            r"truncated at byte 104: name #0 needs 4611686018427387904 bytes, 0 remain",
        ),
        (header(1) + v2_record(A) + names_block([b"a", b"b"]), r"2 names for 1 arrays"),
        (header(1) + v2_record(A) + names_block([b"\xff\xfe"]), r"name #0 is not UTF-8 text"),
        (header(1) + v2_record(A, flag=99), r"array #0 has unknown type flag 99"),
        (header(1) + v2_record(A, stype=7), r"array #0 has unknown storage type 7"),
        (header(1) + v2_record(A, ctx=(9, 0)), r"array #0 has an invalid device context \(9, 0\)"),
        (header(1) + v2_record(A, ctx=(1, -7)), r"array #0 has an invalid device context \(1, -7\)"),
        (
            header(1) + v2_record(A)[:-4],
            r"truncated at byte 64: array #0 of shape \(2, 3\) float32 needs 24 bytes, 20 remain",
        ),
    ],
    ids=[
        "count",
        "dims",
        "zero-size-dims",
        "ndim",
        "negative-ndim",
        "negative-dim",
        "name-length",
        "name-count",
        "name-utf8",
        "type-flag",
        "storage",
        "device",
        "device-id",
        "data",
    ],
)
def test_lying_headers(tmp_path, data, match):
    raises(write(tmp_path, data), r"bad MXNet \.params file: " + match)


@pytest.mark.parametrize(
    ("record", "match"),
    [
        (struct.pack("<Iii", V2, 0, 0), r"array #0 is an MXNet 'none' array"),
        (struct.pack("<Iii", V3, 0, -1), r"array #0 is an MXNet 'none' array"),
        (struct.pack("<Iiiq", V3, 0, 1, -1), r"array #0 is an MXNet 'none' array"),
        (struct.pack("<I", 0), r"array #0 is an MXNet 'none' array"),
        (struct.pack("<Ii", 0xF993FAC8, 0), r"array #0 is an MXNet 'none' array"),
        (v2_record(A, flag=12), r"array #0 is bfloat16, which numpy cannot hold"),
    ],
    ids=["v2-ndim0", "v3-ndim-1", "v3-dim-1", "v0-ndim0", "v1-ndim0", "bfloat16"],
)
def test_unsupported_records(tmp_path, record, match):
    raises(write(tmp_path, header(1) + record + b"\0" * 32), r"unsupported MXNet \.params content: " + match)


def test_duplicate_names(tmp_path):
    p = write(tmp_path, header(2) + v2_record(A) + v2_record(A) + names_block([b"w", b"w"]))
    assert read_mxnet_ndarrays(p)[1] == ["w", "w"]
    raises(p, r"name 'w' saved more than once")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(flips=st.lists(st.tuples(st.integers(0, 10**6), st.integers(1, 255)), min_size=1, max_size=4))
def test_corrupted_bytes_never_crash(tmp_path, flips):
    data = bytearray((FIXTURES / "list.params").read_bytes())
    for pos, mask in flips:
        data[pos % len(data)] ^= mask
    p = write(tmp_path, bytes(data))
    try:
        arrays, _ = read_mxnet_ndarrays(p)
    except DataError as e:
        assert str(e).startswith(f"{p}: ") and "\n" not in str(e)
    else:
        assert len(arrays) == 3
