"""Write the MXNet ``.params`` fixtures of ``tests/model/test_mxnet_params.py`` into tests/fixtures/mxnet_params/.

Runs inside ``benchmarks/.venv-mxnet`` (see ``setup_mxnet.sh``; MXNet 1.9.1, numpy 1.23.5):

    benchmarks/.venv-mxnet/bin/python benchmarks/make_mxnet_params_fixture.py

Every array comes from one seeded numpy generator. Each ``NAME.params`` is written by MXNet itself
(``mx.nd.save``, ``mx.model.save_checkpoint``, ``mx.npx.save``), except the two old-format files, which MXNet
1.9.1 can only read: those are assembled here byte by byte after ``NDArray::LegacyLoad`` in
src/ndarray/ndarray.cc, and MXNet must read them back. Next to each file, ``NAME.expected.npz`` holds
``names`` (a unicode array, empty for an unnamed list), ``named`` (0-d bool) and ``array_0``, ``array_1``, ...
in file order; it has no object arrays, so ``numpy.load`` reads it with ``allow_pickle=False``. Every file is
loaded back with MXNet and compared with its expected arrays before the script ends.
"""

from __future__ import annotations

import argparse
import struct
from pathlib import Path

import mxnet as mx
import numpy as np

OUT = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "mxnet_params"

# mshadow type flags (3rdparty/mshadow/mshadow/base.h, enum TypeFlag)
TYPE_FLAG = {"float32": 0, "float64": 1, "float16": 2, "uint8": 3, "int32": 4, "int8": 5, "int64": 6}
NDARRAY_V1_MAGIC = 0xF993FAC8
LIST_MAGIC = 0x112


def dense_arrays(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """A save_checkpoint-like dict: arg:/aux: keys, conv/fc/bn shapes, every dtype MXNet 1.9.1 saves."""
    special = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1e-45, 3.4e38, -1.5], dtype=np.float32)
    return {
        "arg:conv1_weight": rng.standard_normal((8, 3, 3, 3)).astype(np.float32),
        "arg:conv1_bias": rng.standard_normal(8).astype(np.float32),
        "arg:fc_weight": rng.standard_normal((4, 8)).astype(np.float32),
        "arg:special_values": special,
        "arg:six_dims": rng.standard_normal((1, 2, 1, 3, 1, 2)).astype(np.float32),
        "arg:one": np.array([0.25], dtype=np.float32),
        "arg:f64": rng.standard_normal((2, 3)),
        "arg:f16": rng.standard_normal(5).astype(np.float16),
        "arg:u8": rng.integers(0, 256, (2, 2, 2)).astype(np.uint8),
        "arg:i32": rng.integers(-(2**31), 2**31 - 1, 3).astype(np.int32),
        "arg:i8": rng.integers(-128, 128, 4).astype(np.int8),
        "arg:i64": np.array([-(2**62), 7, 2**62], dtype=np.int64),
        "arg:flags": np.array([True, False, True]),
        "arg:caf\u00e9_\u00fc": np.arange(3, dtype=np.float32),
        "aux:bn1_moving_mean": rng.standard_normal(8).astype(np.float32),
        "aux:bn1_moving_var": rng.random(8).astype(np.float32) + 0.5,
    }


def to_mx(a: np.ndarray) -> mx.nd.NDArray:
    return mx.nd.array(a, dtype=a.dtype)


def write_expected(path: Path, arrays: list[np.ndarray], names: list[str] | None) -> None:
    fields = {f"array_{i}": a for i, a in enumerate(arrays)}
    names_array = np.array(names if names is not None else [], dtype=str)
    # no object arrays, so no pickles
    np.savez(path, names=names_array, named=np.array(names is not None), **fields)


def check_mx(
    path: Path, arrays: list[np.ndarray], names: list[str] | None, *, np_shape: bool = False
) -> None:
    """MXNet reads ``path`` back to exactly ``arrays`` (and ``names``)."""
    loaded = mx.npx.load(str(path)) if np_shape else mx.nd.load(str(path))
    if names is None:
        assert isinstance(loaded, list), path
        got = [a.asnumpy() for a in loaded]
    else:
        assert list(loaded) == names, (path, list(loaded))
        got = [loaded[k].asnumpy() for k in names]
    assert len(got) == len(arrays), path
    for want, have in zip(arrays, got, strict=True):
        assert have.dtype == want.dtype and have.shape == want.shape, (path, have.dtype, have.shape)
        np.testing.assert_array_equal(have, want)


def legacy_record(a: np.ndarray, *, v1: bool) -> bytes:
    """One NDArray as MXNet before the V2 format wrote it (what NDArray::LegacyLoad reads).

    V1: magic 0xF993fac8, int32 ndim, int64 dims. Older: no magic, uint32 ndim, uint32 dims. Then both: context
    (int32 dev_type, int32 dev_id), int32 type flag, raw little-endian data.
    """
    if v1:
        head = struct.pack(f"<Ii{a.ndim}q", NDARRAY_V1_MAGIC, a.ndim, *a.shape)
    else:
        head = struct.pack(f"<I{a.ndim}I", a.ndim, *a.shape)
    body = struct.pack("<iii", 1, 0, TYPE_FLAG[a.dtype.name])
    return head + body + a.astype(a.dtype.newbyteorder("<")).tobytes()


def legacy_file(arrays: list[np.ndarray], names: list[str], *, v1: bool) -> bytes:
    out = [struct.pack("<QQQ", LIST_MAGIC, 0, len(arrays))]
    out += [legacy_record(a, v1=v1) for a in arrays]
    out.append(struct.pack("<Q", len(names)))
    for n in names:
        b = n.encode()
        out.append(struct.pack("<Q", len(b)) + b)
    return b"".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT)
    out = parser.parse_args().out
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(20240616)
    written = []

    # (a) a named dict, as mx.nd.save(dict) / save_checkpoint write it (V2 records)
    d = dense_arrays(rng)
    p = out / "dict.params"
    mx.nd.save(str(p), {k: to_mx(v) for k, v in d.items()})
    written.append((p, list(d.values()), list(d)))

    # (b) an unnamed list: mx.nd.save(list)
    lst = [
        rng.standard_normal((2, 3, 1, 1)).astype(np.float32),
        rng.integers(0, 100, 5).astype(np.int32),
        rng.standard_normal(4),
    ]
    p = out / "list.params"
    mx.nd.save(str(p), [to_mx(a) for a in lst])
    written.append((p, lst, None))

    # (c) save_checkpoint of a tiny conv + batchnorm symbol
    data = mx.sym.Variable("data")
    conv = mx.sym.Convolution(data, num_filter=4, kernel=(3, 3), pad=(1, 1), name="conv")
    net = mx.sym.Activation(mx.sym.BatchNorm(conv, name="bn"), act_type="relu", name="relu")
    arg_shapes, _, aux_shapes = net.infer_shape(data=(1, 3, 8, 8))
    arg = {
        n: rng.standard_normal(s).astype(np.float32)
        for n, s in zip(net.list_arguments(), arg_shapes, strict=True)
        if n != "data"
    }
    aux = {
        n: rng.random(s).astype(np.float32) + 0.5
        for n, s in zip(net.list_auxiliary_states(), aux_shapes, strict=True)
    }
    prefix = out / "tiny"
    mx.model.save_checkpoint(
        str(prefix), 0, net, {k: to_mx(v) for k, v in arg.items()}, {k: to_mx(v) for k, v in aux.items()}
    )
    p = out / "tiny-0000.params"
    ck_names = [f"arg:{k}" for k in arg] + [f"aux:{k}" for k in aux]
    written.append((p, [*arg.values(), *aux.values()], ck_names))
    _, arg_back, aux_back = mx.model.load_checkpoint(str(prefix), 0)
    assert sorted(arg_back) == sorted(arg) and sorted(aux_back) == sorted(aux)

    # old formats, assembled here (MXNet 1.9.1 reads them, it cannot write them)
    old = [rng.standard_normal((3, 2)).astype(np.float32), rng.integers(0, 9, (2, 1, 2)).astype(np.uint8)]
    old_names = ["arg:old_weight", "aux:old_state"]
    for v1, name in ((True, "legacy_v1.params"), (False, "legacy_v0.params")):
        p = out / name
        p.write_bytes(legacy_file(old, old_names, v1=v1))
        written.append((p, old, old_names))

    # (d) numpy-shape semantics (V3 records): 0-d and zero-size arrays exist only there
    with mx.util.np_shape(True), mx.util.np_array(True):
        npx = {
            "scalar": np.array(2.5, dtype=np.float32),
            "empty": np.zeros((0, 3), dtype=np.float32),
            "vector": np.arange(3, dtype=np.int64),
        }
        p = out / "npx.params"
        mx.npx.save(str(p), {k: mx.np.array(v, dtype=v.dtype) for k, v in npx.items()})
        check_mx(p, list(npx.values()), list(npx), np_shape=True)
        write_expected(p.with_name("npx.expected.npz"), list(npx.values()), list(npx))

    # sparse storage, for the refusal tests (no expected file)
    mx.nd.save(
        str(out / "row_sparse.params"), {"r": mx.nd.sparse.row_sparse_array(np.eye(3, dtype="float32"))}
    )
    mx.nd.save(str(out / "csr.params"), [mx.nd.sparse.csr_matrix(np.eye(3, dtype="float32"))])

    for p, arrays, names in written:
        check_mx(p, arrays, names)
        write_expected(p.with_name(p.name.removesuffix(".params") + ".expected.npz"), arrays, names)
    total = sum(f.stat().st_size for f in out.iterdir())
    print(f"mxnet {mx.__version__} numpy {np.__version__}: wrote {out} ({total} bytes)")


if __name__ == "__main__":
    main()
