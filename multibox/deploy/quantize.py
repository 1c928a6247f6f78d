"""INT8 and FP16 versions of an exported float ONNX detector, in which only the network changes precision.

A ``multibox export`` ONNX file is the preprocessing (cast, resize, /255), the SSD network, then the decoding
(softmax, box decoding, NonMaxSuppression, top-k). Both conversions touch the network's nodes only: halving or
quantizing the decoding would cost accuracy and save next to no time, and ONNX Runtime's NonMaxSuppression
takes float32 only. The network's nodes are the ones the exporter scoped under :class:`DeployableSSD`'s
``network`` module (node metadata ``pkg.torch.onnx.name_scopes``); after ONNX Runtime's graph optimisation they
are found again as the nodes on a path from the network's input tensors to its output tensors.
"""

from __future__ import annotations

import ast
import contextlib
import io
import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import onnx

from multibox.errors import ConfigError, DataError

CALIBRATION_METHODS = ("minmax", "entropy", "percentile")
"""``--calibration-method``: ONNX Runtime's ``CalibrationMethod.MinMax``, ``Entropy`` and ``Percentile``."""

QUANTIZED_OP_TYPES = ("Conv", "ConvTranspose", "MatMul", "Gemm", "Relu", "Clip", "Add", "MaxPool")
"""The operators quantized inside the network: convolutions, matrix products, and the activations, additions
and max-pools between them (so that ONNX Runtime runs conv chains in int8 without float round trips)."""

NETWORK_SCOPE = "network"
METADATA_KEY = "multibox"


@dataclass(frozen=True)
class NetworkBoundary:
    """The tensors where the network starts (the normalised image) and ends (its box and class predictions)."""

    inputs: tuple[str, ...]
    outputs: tuple[str, ...]


def network_boundary(model: onnx.ModelProto) -> NetworkBoundary:
    """The boundary of the network in a float file just written by ``multibox export`` (its node scopes).

    Raises :class:`DataError` for a file without the exporter's scopes (not written by ``multibox export``).
    """
    nodes = list(model.graph.node)
    inside = [_in_network(node) for node in nodes]
    if not any(inside):
        raise DataError(
            "the ONNX file carries no module scopes of multibox's exporter, so its network cannot be told from "
            "its decoding: export the checkpoint again with multibox export"
        )
    constants = {t.name for t in model.graph.initializer}
    constants |= {out for node in nodes if node.op_type == "Constant" for out in node.output}
    produced_inside = {out for node, ins in zip(nodes, inside, strict=True) if ins for out in node.output}
    consumed_outside = {t for node, ins in zip(nodes, inside, strict=True) if not ins for t in node.input}
    consumed_outside |= {o.name for o in model.graph.output}
    inputs = {
        name
        for node, ins in zip(nodes, inside, strict=True)
        if ins
        for name in node.input
        if name and name not in produced_inside and name not in constants
    }
    return NetworkBoundary(tuple(sorted(inputs)), tuple(sorted(produced_inside & consumed_outside)))


def _in_network(node: onnx.NodeProto) -> bool:
    scopes = next((p.value for p in node.metadata_props if p.key == "pkg.torch.onnx.name_scopes"), None)
    if scopes is None:
        return False
    try:
        names = ast.literal_eval(scopes)
    except (ValueError, SyntaxError):
        return False
    return any(n == NETWORK_SCOPE or str(n).startswith(NETWORK_SCOPE + ".") for n in names)


def network_nodes(graph: onnx.GraphProto, boundary: NetworkBoundary) -> list[str]:
    """Names of the nodes of ``graph`` on a path from ``boundary.inputs`` to ``boundary.outputs``."""
    nodes = list(graph.node)
    names = {t for node in nodes for t in node.output} | {i.name for i in graph.input}
    missing = [t for t in (*boundary.inputs, *boundary.outputs) if t not in names]
    if missing:
        raise RuntimeError(f"the network's boundary tensors {missing} are gone from the graph")
    downstream, reached = set(), set(boundary.inputs)
    for index, node in enumerate(nodes):  # topological order
        if any(t in reached for t in node.input):
            downstream.add(index)
            reached.update(node.output)
    producer = {t: index for index, node in enumerate(nodes) for t in node.output}
    upstream, todo = set(), list(boundary.outputs)
    while todo:
        index = producer.get(todo.pop())
        if index is None or index in upstream or index not in downstream:
            continue
        upstream.add(index)
        todo.extend(nodes[index].input)
    found = [nodes[index].name for index in sorted(downstream & upstream)]
    if not found:  # an empty list would let ONNX Runtime quantize every node
        raise RuntimeError("no node lies between the network's input and output tensors")
    return found


def read_metadata(model: onnx.ModelProto) -> dict:
    """The ``multibox`` metadata stored in an exported file (``{}`` when there is none)."""
    text = next((p.value for p in model.metadata_props if p.key == METADATA_KEY), None)
    return json.loads(text) if text else {}


def write_metadata(model: onnx.ModelProto, metadata: dict) -> None:
    """Store ``metadata`` as the model's ``multibox`` entry, replacing the old one."""
    kept = [p for p in model.metadata_props if p.key != METADATA_KEY]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    entry = model.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, json.dumps(metadata)


def quantize_int8(
    float_path: str | Path,
    out: str | Path,
    calibration,
    method: str = "minmax",
    per_channel: bool = True,
    metadata: dict | None = None,
) -> Path:
    """Write ``out``: ``float_path`` with its network statically quantized to 8 bits by ONNX Runtime (QDQ
    format; uint8 activations and int8 weights, per output channel when ``per_channel``: ONNX Runtime's advice
    for x86 CPUs, where int8 activations ran slower than float32), calibrated on the batches
    of ``calibration`` (a :class:`multibox.deploy.calibration.CalibrationImages`) with ``method`` (one of
    :data:`CALIBRATION_METHODS`). Preprocessing and decoding stay float32; the file keeps its input and
    outputs. ``metadata`` (default: the float file's, with ``"precision": "int8"``) is stored in the file.
    Returns ``out``."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if method not in CALIBRATION_METHODS:
        raise ConfigError(
            f"calibration method must be one of {', '.join(CALIBRATION_METHODS)}, got {method!r}"
        )
    float_model = onnx.load(str(float_path))
    boundary = network_boundary(float_model)
    out = Path(out)
    with tempfile.TemporaryDirectory(prefix="multibox-int8-") as tmp, _quiet_onnxruntime():
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(float_path), str(prepared), skip_symbolic_shape=True)
        nodes = network_nodes(onnx.load(str(prepared)).graph, boundary)
        quantize_static(
            str(prepared),
            str(out),
            calibration,
            quant_format=QuantFormat.QDQ,
            op_types_to_quantize=list(QUANTIZED_OP_TYPES),
            nodes_to_quantize=nodes,
            per_channel=per_channel,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method={
                "minmax": CalibrationMethod.MinMax,
                "entropy": CalibrationMethod.Entropy,
                "percentile": CalibrationMethod.Percentile,
            }[method],
            extra_options={"CalibStridedMinMax": _stride(len(calibration))},
        )
    quantized = onnx.load(str(out))
    write_metadata(
        quantized, {**read_metadata(float_model), "precision": "int8"} if metadata is None else metadata
    )
    onnx.save(quantized, str(out))
    return out


def _stride(batches: int, largest: int = 4) -> int:
    """Batches per calibration pass: a divisor of ``batches`` (ONNX Runtime's rule), at most ``largest``, so
    that the entropy and percentile histograms never hold more than a few batches' activations."""
    return max(s for s in range(1, min(largest, batches) + 1) if batches % s == 0)


FLOAT, HALF = onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16
_FLOAT32_ONLY_INPUTS = {"Resize": {2}, "Upsample": {1}}  # scales stay float32 whatever the data type


def convert_fp16(float_path: str | Path, out: str | Path, metadata: dict | None = None) -> Path:
    """Write ``out``: ``float_path`` with its network in float16 (weights and activations), for GPUs.

    The input, the preprocessing, the decoding (with NMS) and the outputs stay float32: the network's float
    inputs are cast to float16 where it starts, its float outputs back to float32 where it ends, and its own
    weights and constants are stored in float16. The result passes ONNX's full model check. Returns ``out``.
    """
    model = onnx.load(str(float_path))
    graph = model.graph
    inside = set(network_nodes(graph, network_boundary(model)))
    types = _tensor_types(model)
    _half_network_inputs(graph, inside, types)
    _cast_network_outputs_back(graph, inside, types)
    for node in graph.node:  # casts inside the network to float32 now cast to float16
        if node.name in inside and node.op_type == "Cast":
            for attribute in node.attribute:
                if attribute.name == "to" and attribute.i == FLOAT:
                    attribute.i = HALF
    del graph.value_info[:]  # the float32 types of the network's tensors are stale
    used = {t for node in graph.node for t in node.input}
    unused = [t for t in graph.initializer if t.name not in used]  # the float32 weights the copies replace
    for tensor in unused:
        graph.initializer.remove(tensor)
    _sort_nodes(graph)
    half = onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
    onnx.checker.check_model(half, full_check=True)
    write_metadata(half, {**read_metadata(model), "precision": "fp16"} if metadata is None else metadata)
    out = Path(out)
    onnx.save(half, str(out))
    return out


def _tensor_types(model: onnx.ModelProto) -> dict[str, int]:
    """Element type of every tensor of ``model`` (ONNX shape inference, initializers, inputs, outputs)."""
    inferred = onnx.shape_inference.infer_shapes(model).graph
    found = {v.name: v.type.tensor_type.elem_type for v in [*inferred.value_info, *inferred.input]}
    found.update({v.name: v.type.tensor_type.elem_type for v in inferred.output})
    found.update({t.name: t.data_type for t in model.graph.initializer})
    return found


def _half_network_inputs(graph: onnx.GraphProto, inside: set[str], types: dict[str, int]) -> None:
    """Feed the network's nodes float16 copies of the float32 tensors they take from outside: initializers
    and constants as float16 initializers, computed tensors through a Cast."""
    from onnx import helper, numpy_helper

    produced_inside = {t for node in graph.node if node.name in inside for t in node.output}
    constants = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            constants[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
    copies: dict[str, str] = {}
    for node in [n for n in graph.node if n.name in inside]:
        for position, name in enumerate(node.input):
            keep = position in _FLOAT32_ONLY_INPUTS.get(node.op_type, ())
            if not name or name in produced_inside or types.get(name) != FLOAT or keep:
                continue
            if name not in copies:
                copies[name] = f"{name}__fp16"
                if name in constants:
                    graph.initializer.append(
                        numpy_helper.from_array(constants[name].astype("float16"), copies[name])
                    )
                else:
                    graph.node.append(
                        helper.make_node("Cast", [name], [copies[name]], f"{name}__to_fp16", to=HALF)
                    )
            node.input[position] = copies[name]


def _cast_network_outputs_back(graph: onnx.GraphProto, inside: set[str], types: dict[str, int]) -> None:
    """Cast the network's float outputs (the tensors its nodes hand to the decoding) back to float32."""
    from onnx import helper

    consumed_outside = {t for node in graph.node if node.name not in inside for t in node.input}
    consumed_outside |= {o.name for o in graph.output}
    for node in [n for n in graph.node if n.name in inside]:
        for position, name in enumerate(node.output):
            if name not in consumed_outside or types.get(name) != FLOAT:
                continue
            half_name = f"{name}__fp16"
            node.output[position] = half_name
            for consumer in graph.node:
                if consumer.name in inside:
                    consumer.input[:] = [half_name if t == name else t for t in consumer.input]
            graph.node.append(helper.make_node("Cast", [half_name], [name], f"{name}__to_fp32", to=FLOAT))


def _sort_nodes(graph: onnx.GraphProto) -> None:
    """Put ``graph``'s nodes in topological order (as ONNX requires), keeping their order where it is one."""
    nodes = list(graph.node)
    available = {i.name for i in graph.input} | {t.name for t in graph.initializer} | {""}
    placed, ordered = [False] * len(nodes), []
    while len(ordered) < len(nodes):
        before = len(ordered)
        for index, node in enumerate(nodes):
            if not placed[index] and all(t in available for t in node.input):
                placed[index] = True
                ordered.append(node)
                available.update(node.output)
        if len(ordered) == before:
            raise RuntimeError("the graph has a cycle or an input that no node produces")
    del graph.node[:]
    graph.node.extend(ordered)


@contextlib.contextmanager
def _quiet_onnxruntime() -> Iterator[None]:
    """ONNX Runtime's quantization tools log through the root logger, print their progress, and their
    sessions print warnings."""
    import onnxruntime

    from multibox.deploy.onnx_export import _quiet_loggers

    onnxruntime.set_default_logger_severity(3)
    try:
        with _quiet_loggers("", "onnxruntime"), contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        onnxruntime.set_default_logger_severity(2)  # ONNX Runtime's default: warnings


@dataclass(frozen=True)
class AccuracyCheck:
    """VOC07 mAP of the float and the INT8 file on the same held-out images, and the drop allowed."""

    images: int
    float_map: float
    int8_map: float
    max_drop: float

    @property
    def drop(self) -> float:
        return self.float_map - self.int8_map

    @property
    def ok(self) -> bool:
        return (
            self.drop <= self.max_drop + 1e-9
        )  # a drop equal to the allowance (up to float rounding) passes

    def __str__(self) -> str:
        return (
            f"VOC07 mAP on {self.images} held-out images: float {self.float_map:.4f}, int8 {self.int8_map:.4f}, "
            f"drop {self.drop:.4f} (allowed {self.max_drop:.4f})"
        )

    def to_dict(self) -> dict:
        return {
            "images": self.images,
            "float_mAP_voc07": self.float_map,
            "int8_mAP_voc07": self.int8_map,
            "drop": self.drop,
            "max_map_drop": self.max_drop,
        }


def rejected_path(out: str | Path) -> Path:
    """Where a file that failed its accuracy check is kept on request: ``best.int8.onnx`` ->
    ``best.int8.REJECTED.onnx`` (still an ``.onnx`` file, so ``multibox evaluate`` and ``detect`` take it)."""
    out = Path(out)
    return out.with_name(f"{out.stem}.REJECTED{out.suffix}")


def place_checked(candidate: Path, out: Path, check: AccuracyCheck, keep_anyway: bool = False) -> Path:
    """Move ``candidate`` to ``out`` when ``check`` passed; else delete it, or with ``keep_anyway`` move it to
    :func:`rejected_path`, and raise a one-line :class:`DataError`. Nothing is ever written to ``out`` for a
    file that failed."""
    if check.ok:
        os.replace(candidate, out)
        return out
    advice = (
        "calibrate on more or more typical images (--calibration-images), try --calibration-method entropy or "
        "percentile, or allow a larger drop with --max-map-drop"
    )
    if keep_anyway:
        kept = rejected_path(out)
        os.replace(candidate, kept)
        where = f"kept as {kept} (--keep-anyway), nothing written to {out}"
    else:
        candidate.unlink()
        where = f"nothing written to {out} (--keep-anyway keeps it as {rejected_path(out).name})"
    raise DataError(f"INT8 accuracy check failed: {check}; {where}; {advice}")


def store_metadata(path: str | Path, metadata: dict) -> None:
    """Replace the ``multibox`` metadata stored in the ONNX file ``path``."""
    model = onnx.load(str(path))
    write_metadata(model, metadata)
    onnx.save(model, str(path))
