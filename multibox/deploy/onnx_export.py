"""Writing a :class:`DeployableSSD` as one ONNX file: preprocessing, network, decoding and NonMaxSuppression."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import warnings
from pathlib import Path

import torch

from multibox.deploy.deployable import DeployableSSD
from multibox.deploy.fixed_nms import onnx_translation

INPUT_NAME = "images"
OUTPUT_NAMES = ("boxes", "scores", "classes", "count")
OPSET = 18


def export_onnx(
    deployable: DeployableSSD,
    path: str | Path,
    *,
    dynamic_batch: bool = False,
    batch_size: int = 1,
    metadata: dict | None = None,
) -> Path:
    """Export ``deployable`` (built with ``onnx_nms=True``) to ``path``; returns the path.

    The graph takes ``images`` ``(N, 3, H, W)`` uint8 with any ``H, W`` (and any ``N`` with
    ``dynamic_batch``, else ``N = batch_size``) and returns ``boxes (N, K, 4)`` normalised corners,
    ``scores (N, K)``, ``classes (N, K)`` int64 (-1 on padding) and ``count (N,)``. ``metadata`` is stored
    as JSON in the model's ``metadata_props`` under ``multibox``.
    """
    import onnx

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    deployable = deployable.eval().cpu()
    height, width = deployable.data_shape
    # An example size unlike the network's, so that the exporter keeps height and width symbolic.
    example_batch = 2 if dynamic_batch else batch_size
    example = torch.randint(0, 256, (example_batch, 3, height + 7, width + 13), dtype=torch.uint8)
    dims = {2: torch.export.Dim("height", min=8, max=8192), 3: torch.export.Dim("width", min=8, max=8192)}
    if dynamic_batch:
        dims[0] = torch.export.Dim("batch", min=1, max=4096)
    quiet = contextlib.redirect_stdout(io.StringIO())  # the exporter prints its progress
    with (
        warnings.catch_warnings(),
        torch.no_grad(),
        quiet,
        _quiet_loggers("onnxscript", "onnx_ir", "torch.onnx"),
    ):
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            deployable,
            (example,),
            dynamo=True,
            opset_version=OPSET,
            input_names=[INPUT_NAME],
            output_names=list(OUTPUT_NAMES),
            dynamic_shapes={"images": dims},
            custom_translation_table=onnx_translation(),
            verbose=False,
        )
    program.save(str(path))
    proto = onnx.load(str(path))
    if metadata is not None:
        entry = proto.metadata_props.add()
        entry.key, entry.value = "multibox", json.dumps(metadata)
    onnx.checker.check_model(proto, full_check=True)
    onnx.save(proto, str(path))
    return path


@contextlib.contextmanager
def _quiet_loggers(*names: str):
    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)
