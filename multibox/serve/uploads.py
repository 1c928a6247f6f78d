"""Uploaded images, read safely: the request body is capped as it streams, and the image type comes from its bytes.

Nothing here trusts the client: a declared ``Content-Type`` is ignored (Pillow sniffs the real one from the
bytes, and only JPEG, PNG and WebP decoders are tried), the pixel count is checked from the header before any
decoding, and every decoding failure becomes an :class:`UploadError` carrying the HTTP status to answer with.
"""

from __future__ import annotations

from PIL import Image
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from multibox.data.image_io import ImageDecodeError, open_image, to_rgb

ALLOWED_FORMATS = ("JPEG", "PNG", "WEBP")
"""Pillow format names that are decoded; any other bytes are answered with 415."""


class UploadError(Exception):
    """An upload that cannot be served, with the HTTP status and the message for the client."""

    def __init__(self, status_code: int, detail: str) -> None:
        super().__init__(detail)
        self.status_code = status_code
        self.detail = detail


def decode_image(data: bytes, max_pixels: int) -> tuple[Image.Image, str]:
    """The RGB image as displayed (EXIF orientation applied) and its real format (``"JPEG"``, ``"PNG"``, ``"WEBP"``).

    Decoded by :mod:`multibox.data.image_io`, as every image multibox reads (16-bit PNGs scaled to 8 bits,
    alpha dropped). Raises :class:`UploadError`: 415 for bytes that are not one of :data:`ALLOWED_FORMATS`,
    413 for an image over ``max_pixels`` (checked from the header, before decoding), 400 for truncated or
    corrupt image data.
    """
    if not data:
        raise UploadError(400, "the uploaded file is empty")
    try:
        image = open_image(data, max_pixels=max_pixels, formats=ALLOWED_FORMATS, name="the upload")
    except ImageDecodeError as error:
        if error.kind == "not an image":
            raise UploadError(415, "the upload is not a JPEG, PNG or WebP image") from error
        if error.kind == "too large":
            raise UploadError(413, error.reason) from error
        raise UploadError(400, f"the image is truncated or corrupt: {error.reason}") from error
    image_format = image.format
    try:
        rgb = to_rgb(image, orient=True, name="the upload")
    except ImageDecodeError as error:
        status = 413 if error.kind == "too large" else 400
        detail = (
            error.reason
            if status == 413
            else f"the {image_format} image is truncated or corrupt: {error.reason}"
        )
        raise UploadError(status, detail) from error
    return rgb, image_format


class BodyLimit:
    """ASGI middleware that answers 413 to a request body over ``max_bytes`` without reading the rest of it.

    A ``Content-Length`` over the limit is refused before a single byte of the body is read; a body without one
    (chunked) is counted as it streams in and reading stops at the first chunk past the limit.
    """

    def __init__(self, app: ASGIApp, max_bytes: int, detail: str | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.detail = detail or f"the request body is over the limit of {max_bytes:,} bytes"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None:
            if not declared.isdigit():
                await JSONResponse({"detail": "invalid Content-Length header"}, 400)(scope, receive, send)
                return
            if int(declared) > self.max_bytes:
                response = JSONResponse({"detail": self.detail}, 413, headers={"Connection": "close"})
                await response(scope, receive, send)
                return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    # An HTTPException passes through FastAPI's body parsing and becomes the 413 answer.
                    raise HTTPException(413, self.detail, headers={"Connection": "close"})
            return message

        await self.app(scope, limited_receive, send)
