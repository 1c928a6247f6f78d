"""The FastAPI application: ``POST /v1/detect``, ``GET /healthz`` and the web page at ``/``."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Annotated, Any

from fastapi import FastAPI, File, HTTPException, Query, UploadFile
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from multibox.inference.detections import Detector, detections_to_json
from multibox.serve.uploads import BodyLimit, UploadError, decode_image
from multibox.serve.worker import Busy, InferenceWorker
from multibox.version import __version__

STATIC_DIR = Path(__file__).resolve().parent / "static"
FORM_OVERHEAD = 64 * 1024
"""Bytes of multipart framing allowed on top of the upload limit when the whole request body is capped."""


@dataclass(frozen=True)
class Service:
    """What the routes share: the detector, its description, the limits and the thread it runs on."""

    detector: Detector
    model: dict[str, Any]
    max_upload_bytes: int
    max_pixels: int
    default_threshold: float
    worker: InferenceWorker

    @property
    def too_large(self) -> str:
        limit = self.max_upload_bytes
        return f"the upload is over the limit of {limit:,} bytes ({limit / 2**20:g} MiB)"


def create_app(
    detector: Detector,
    *,
    max_upload_bytes: int = 20 * 2**20,
    max_pixels: int = 50_000_000,
    default_threshold: float | None = None,
    max_pending: int = 64,
    model_info: dict[str, Any] | None = None,
) -> FastAPI:
    """An app serving ``detector``.

    ``max_upload_bytes`` caps an uploaded file (413, refused from ``Content-Length`` before the body is read);
    ``max_pixels`` caps the decoded image size (413, checked from the image header); ``default_threshold`` is
    the minimum score when a request gives no ``threshold`` (default: the detector's ``display_threshold``);
    ``max_pending`` requests may wait for the detector,
    which runs one request at a time on its own thread (503 beyond that). ``model_info`` is reported as the
    ``model`` of every answer, with the class names added.
    """
    if default_threshold is None:  # the detector's tuned threshold
        default_threshold = float(getattr(detector, "display_threshold", 0.5))
    if not 0.0 <= default_threshold <= 1.0:
        raise ValueError(f"default_threshold must be in [0, 1], got {default_threshold}")
    model = {**(model_info or {}), "class_names": list(detector.class_names)}
    worker = InferenceWorker(max_pending)
    service = Service(detector, model, max_upload_bytes, max_pixels, default_threshold, worker)
    app = _empty_app(worker)
    app.add_middleware(BodyLimit, max_bytes=max_upload_bytes + FORM_OVERHEAD, detail=service.too_large)
    _add_detect_route(app, service)
    _add_info_routes(app, service)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app


def _empty_app(worker: InferenceWorker) -> FastAPI:
    """The app without routes; its shutdown stops the detector thread."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        worker.close()

    return FastAPI(
        title="multibox",
        version=__version__,
        summary="SSD object detection over HTTP",
        lifespan=lifespan,
        docs_url=None,  # FastAPI's docs pages load their scripts from a CDN; the schema stays at /openapi.json
        redoc_url=None,
    )


def detect_upload(service: Service, stream: IO[bytes], threshold: float) -> dict[str, Any]:
    """The answer to one upload; runs on the detector thread: reading, decoding and inference."""
    data = stream.read(service.max_upload_bytes + 1)
    if len(data) > service.max_upload_bytes:
        raise UploadError(413, service.too_large)
    image, image_format = decode_image(data, service.max_pixels)
    start = time.perf_counter()
    (found,) = service.detector.predict([image], threshold=threshold)
    elapsed_ms = (time.perf_counter() - start) * 1000
    return {
        "image": {"width": image.width, "height": image.height, "format": image_format},
        "detections": detections_to_json(found, service.model["class_names"]),
        "threshold": threshold,
        "model": service.model,
        "inference_ms": round(elapsed_ms, 1),
    }


def _add_detect_route(app: FastAPI, service: Service) -> None:
    @app.post("/v1/detect", summary="Detect objects in an uploaded JPEG, PNG or WebP image")
    async def detect(
        file: Annotated[UploadFile, File(description="the image (JPEG, PNG or WebP)")],
        threshold: Annotated[
            float, Query(ge=0.0, le=1.0, description="minimum score")
        ] = service.default_threshold,
    ) -> dict[str, Any]:
        if file.size is not None and file.size > service.max_upload_bytes:
            raise HTTPException(413, service.too_large)
        try:
            return await service.worker.run(detect_upload, service, file.file, threshold)
        except UploadError as error:
            raise HTTPException(error.status_code, error.detail) from error
        except Busy as error:
            raise HTTPException(503, f"server busy: {error}", headers={"Retry-After": "1"}) from error


def _add_info_routes(app: FastAPI, service: Service) -> None:
    @app.get("/healthz", summary="Liveness, the model and the limits")
    async def healthz() -> dict[str, Any]:
        return {
            "status": "ok",
            "model": service.model,
            "default_threshold": service.default_threshold,
            "max_upload_bytes": service.max_upload_bytes,
            "max_pixels": service.max_pixels,
            "pending": service.worker.pending,
        }

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html")
