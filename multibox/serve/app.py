"""The FastAPI application: ``POST /v1/detect``, ``GET /healthz`` and the web page at ``/``."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import IO, Annotated, Any

from fastapi import FastAPI, File, HTTPException, Query, UploadFile
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from multibox import __version__
from multibox.deploy.detector import Detector
from multibox.serve.uploads import BodyLimit, UploadError, decode_image
from multibox.serve.worker import Busy, InferenceWorker

STATIC_DIR = Path(__file__).resolve().parent / "static"
FORM_OVERHEAD = 64 * 1024
"""Bytes of multipart framing allowed on top of the upload limit when the whole request body is capped."""


def create_app(
    detector: Detector,
    *,
    max_upload_bytes: int = 20 * 2**20,
    max_pixels: int = 50_000_000,
    default_threshold: float = 0.5,
    max_pending: int = 64,
    model_info: dict[str, Any] | None = None,
) -> FastAPI:
    """An app serving ``detector``.

    ``max_upload_bytes`` caps an uploaded file (413, refused from ``Content-Length`` before the body is read);
    ``max_pixels`` caps the decoded image size (413, checked from the image header); ``default_threshold`` is
    the minimum score when a request gives no ``threshold``; ``max_pending`` requests may wait for the detector,
    which runs one request at a time on its own thread (503 beyond that). ``model_info`` is reported as the
    ``model`` of every answer, with the class names added.
    """
    if not 0.0 <= default_threshold <= 1.0:
        raise ValueError(f"default_threshold must be in [0, 1], got {default_threshold}")
    model = {**(model_info or {}), "class_names": list(detector.class_names)}
    too_large = (
        f"the upload is over the limit of {max_upload_bytes:,} bytes ({max_upload_bytes / 2**20:g} MiB)"
    )
    worker = InferenceWorker(max_pending)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        worker.close()

    app = FastAPI(
        title="multibox",
        version=__version__,
        summary="SSD object detection over HTTP",
        lifespan=lifespan,
        docs_url=None,  # FastAPI's docs pages load their scripts from a CDN; the schema stays at /openapi.json
        redoc_url=None,
    )
    app.add_middleware(BodyLimit, max_bytes=max_upload_bytes + FORM_OVERHEAD, detail=too_large)

    def detect_upload(stream: IO[bytes], threshold: float) -> dict[str, Any]:
        # Runs on the detector thread: reading, decoding and inference of one upload at a time.
        data = stream.read(max_upload_bytes + 1)
        if len(data) > max_upload_bytes:
            raise UploadError(413, too_large)
        image, image_format = decode_image(data, max_pixels)
        start = time.perf_counter()
        (found,) = detector.predict([image], threshold=threshold)
        elapsed_ms = (time.perf_counter() - start) * 1000
        names = model["class_names"]
        return {
            "image": {"width": image.width, "height": image.height, "format": image_format},
            "detections": [
                {
                    "box": [round(float(v), 2) for v in box],
                    "score": round(float(score), 4),
                    "class_id": int(label),
                    "class_name": names[int(label)],
                }
                for box, score, label in zip(found["boxes"], found["scores"], found["labels"], strict=True)
            ],
            "threshold": threshold,
            "model": model,
            "inference_ms": round(elapsed_ms, 1),
        }

    @app.post("/v1/detect", summary="Detect objects in an uploaded JPEG, PNG or WebP image")
    async def detect(
        file: Annotated[UploadFile, File(description="the image (JPEG, PNG or WebP)")],
        threshold: Annotated[float, Query(ge=0.0, le=1.0, description="minimum score")] = default_threshold,
    ) -> dict[str, Any]:
        if file.size is not None and file.size > max_upload_bytes:
            raise HTTPException(413, too_large)
        try:
            return await worker.run(detect_upload, file.file, threshold)
        except UploadError as error:
            raise HTTPException(error.status_code, error.detail) from error
        except Busy as error:
            raise HTTPException(503, f"server busy: {error}", headers={"Retry-After": "1"}) from error

    @app.get("/healthz", summary="Liveness, the model and the limits")
    async def healthz() -> dict[str, Any]:
        return {
            "status": "ok",
            "model": model,
            "default_threshold": default_threshold,
            "max_upload_bytes": max_upload_bytes,
            "max_pixels": max_pixels,
            "pending": worker.pending,
        }

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app
