"""The original's RecordIO detection files (``.rec`` + ``.idx``), as ``im2rec.py --pack-label`` writes them.

Pure Python, no MXNet. The framing is dmlc-core's: each record is the uint32 magic ``0xced7230a``, a uint32
``cflag << 29 | length``, ``length`` bytes and zero padding to a multiple of 4. A payload holding the magic
word at a 4-aligned offset is cut there (the word itself is dropped and put back on reading) into parts with
cflag 1 (first), 2 (middle) and 3 (last); cflag 0 is a whole record. The payload is MXNet's image record: the
``IRHeader`` ``<IfQQ`` (flag, label, id, id2), then ``flag`` float32 label values, then the encoded image.
A detection label is ``[header_width, object_width, extra header values..., (cls, x1, y1, x2, y2[,
difficult]) x n]`` with corners normalised to [0, 1]. The ``.idx`` beside the ``.rec`` holds lines
``key \\t byte offset``; without it the ``.rec`` is read from start to end.
"""

from __future__ import annotations

import io
import os
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image

from multibox.data.formats.classes import resolve_class_names
from multibox.data.formats.export_images import replace_file
from multibox.data.formats.lst import record_from_objects
from multibox.data.formats.targets import WrittenPaths
from multibox.data.image_io import ImageDecodeError, open_image, to_rgb
from multibox.data.records import DetectionDataset, DetectionRecord, Problem
from multibox.errors import ConfigError, DataError, MissingSplitError

MAGIC = 0xCED7230A
"""The word that starts every record part."""

_MAGIC_BYTES = struct.pack("<I", MAGIC)
_FRAME = struct.Struct("<II")  # magic, cflag << 29 | length
_IR_HEADER = struct.Struct("<IfQQ")  # flag (number of float32 labels), label, id, id2
_LENGTH_MASK = (1 << 29) - 1
_PREFIX = 1 << 13  # bytes of a record read at loading: its label and, mostly, its image header


class _RecordError(Exception):
    """A record that cannot be read; ``lost`` when the records after it cannot be found without an index."""

    def __init__(self, reason: str, lost: bool = False) -> None:
        super().__init__(reason)
        self.reason, self.lost = reason, lost


def _read_payload(file: BinaryIO, size: int, offset: int, limit: int | None = None) -> tuple[bytes, int, int]:
    """The payload of the record at byte ``offset`` (its first ``limit`` bytes only, when given), its full
    length, and the offset of the next record; parts are joined with the magic word between them."""
    pieces, kept, total, position = [], 0, 0, offset
    while True:
        file.seek(position)
        frame = file.read(_FRAME.size)
        if len(frame) < _FRAME.size:
            where = "inside" if pieces or position < size else "before"
            raise _RecordError(f"the file ends {where} the record (at byte {size})", lost=True)
        magic, word = _FRAME.unpack(frame)
        if magic != MAGIC:
            raise _RecordError(f"no record magic at byte {position} (found 0x{magic:08x})", lost=True)
        cflag, length = word >> 29, word & _LENGTH_MASK
        if (cflag in (2, 3)) != bool(pieces) or cflag > 3:
            raise _RecordError(f"part flag {cflag} out of order at byte {position}", lost=True)
        position += _FRAME.size + (length + 3) // 4 * 4
        if position > size:
            raise _RecordError(
                f"the file ends inside the record (at byte {size}; it runs to {position})", lost=True
            )
        take = length if limit is None else max(0, min(length, limit - kept))
        pieces.append(file.read(take))
        kept, total = kept + take, total + length
        if cflag in (0, 3):
            return b"".join(pieces)[:limit], total, position
        pieces.append(_MAGIC_BYTES)
        kept, total = kept + 4, total + 4


def _unpack_label(payload: bytes) -> tuple[int, np.ndarray, int]:
    """``(image id, (L,) float32 label, offset of the image)`` of a record's payload (or its start)."""
    if len(payload) < _IR_HEADER.size:
        raise _RecordError(f"{len(payload)} bytes, shorter than the {_IR_HEADER.size}-byte record header")
    flag, _, low, high = _IR_HEADER.unpack_from(payload)
    if flag == 0:
        raise _RecordError("a single label value, not a detection label (pack with im2rec.py --pack-label)")
    start = _IR_HEADER.size + 4 * flag
    if len(payload) < start:
        raise _RecordError(f"the record ends inside its {flag} label values")
    return high << 64 | low, np.frombuffer(payload, "<f4", flag, _IR_HEADER.size), start


def _objects(label: np.ndarray) -> np.ndarray:
    """``(n, object_width)`` float64 objects of a packed detection label; ``_RecordError`` saying why not."""
    if label.size < 2 or not np.isfinite(label[:2]).all():
        raise _RecordError(f"label {label[:2].tolist()} does not start with header width and object width")
    header, width = float(label[0]), float(label[1])
    if header != int(header) or not 2 <= header <= label.size:
        raise _RecordError(f"header width {header:g} is not a whole number from 2 to {label.size}")
    if width != int(width) or width < 5:
        raise _RecordError(f"object width {width:g} < 5 (cls x1 y1 x2 y2 [difficult])")
    values = label[int(header) :].astype(np.float64)
    if values.size % int(width):
        raise _RecordError(f"{values.size} object values are not whole objects of {int(width)}")
    return values.reshape(-1, int(width))


@dataclass(frozen=True)
class RecordImage:
    """The image of one record, read when called: ``image()`` -> the PIL image opened (not decoded) by
    :func:`multibox.data.image_io.open_image`; ``read_bytes()`` -> its encoded bytes. Picklable."""

    rec_path: Path
    offset: int
    number: int

    @property
    def name(self) -> str:
        return f"{self.rec_path.name}#{self.number}"

    def read_bytes(self) -> bytes:
        try:
            with open(self.rec_path, "rb") as file:
                payload, _, _ = _read_payload(file, os.fstat(file.fileno()).st_size, self.offset)
            return payload[_unpack_label(payload)[2] :]
        except _RecordError as error:
            kind = "truncated" if "the file ends" in error.reason else "corrupt"
            raise ImageDecodeError(self.name, error.reason, kind) from None
        except OSError as error:
            raise ImageDecodeError(self.name, error.strerror or str(error), "unreadable") from None

    def __call__(self) -> Image.Image:
        return open_image(self.read_bytes(), name=self.name)


def _read_index(path: Path) -> list[int]:
    """The record offsets of an ``.idx`` file, in its order; ``DataError`` for a line that does not parse."""
    offsets = []
    for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        fields = line.strip().split("\t")
        if not line.strip():
            continue
        if len(fields) != 2 or not fields[1].isdigit():
            raise DataError(
                f"{path}:{number}: {line.strip()!r} is not 'key<TAB>offset'; fix the index, or delete it to "
                "read the .rec from start to end"
            )
        offsets.append(int(fields[1]))
    return offsets


def _payloads(
    file: BinaryIO, size: int, offsets: list[int] | None
) -> Iterator[tuple[int, bytes | _RecordError, int]]:
    """``(offset, payload start, full length)`` of each record, at the index's offsets or from start to end;
    a record that cannot be read gives ``(offset, _RecordError, 0)`` (without an index, as the last)."""
    if offsets is not None:
        for offset in offsets:
            try:
                start, total, _ = _read_payload(file, size, offset, _PREFIX)
            except _RecordError as error:
                start, total = error, 0
            yield offset, start, total
        return
    offset = 0
    while offset < size:
        try:
            start, total, following = _read_payload(file, size, offset, _PREFIX)
        except _RecordError as error:
            yield offset, error, 0
            return
        yield offset, start, total
        offset = following


def _read_label(file: BinaryIO, size: int, image: RecordImage, start: bytes, total: int) -> tuple:
    """``(id, (n, object_width) objects, payload start)`` of the record whose payload begins with ``start``
    (read whole when its label runs past ``start``); ``_RecordError`` for a bad record."""
    try:
        identifier, label, _ = _unpack_label(start)
    except _RecordError:
        if len(start) >= total:
            raise
        start = _read_payload(file, size, image.offset)[0]
        identifier, label, _ = _unpack_label(start)
    return identifier, _objects(label), start


def _header_size(payload: bytes, name: str) -> tuple[int, int]:
    with open_image(payload[_unpack_label(payload)[2] :], name=name) as opened:
        return opened.size


def _read_size(file: BinaryIO, size: int, image: RecordImage, start: bytes, total: int) -> tuple[int, int]:
    """``(width, height)`` from the image header (the whole record read when the header runs past ``start``);
    ``ImageDecodeError`` for a bad image."""
    try:
        return _header_size(start, image.name)
    except ImageDecodeError:
        if len(start) >= total:
            raise
    return _header_size(_read_payload(file, size, image.offset)[0], image.name)


def _bad_record(path: Path, number: int, offset: int, error: _RecordError, indexed: bool) -> Problem:
    where = f"{path.name}#{number}"
    detail = f"{where} (byte {offset}): {error.reason}"
    if error.lost and not indexed:
        detail += "; the records after it cannot be found without its .idx"
    return Problem("bad record", f"record {number}", detail, True, where)


def _class_numbers(objects: np.ndarray) -> list[int]:
    """The whole class numbers in ``[0, 65536)`` of ``(n, width)`` objects (what default names cover)."""
    classes = objects[:, 0]
    whole = np.isfinite(classes) & (classes == np.round(classes)) & (classes >= 0) & (classes < 1 << 16)
    return classes[whole].astype(np.int64).tolist()


def _records(path: Path, offsets: list[int] | None, problems: list[Problem]) -> list[tuple]:
    """``(id, RecordImage, width, height, objects)`` of every readable record; problems for the others."""
    rows = []
    with open(path, "rb") as file:
        size = os.fstat(file.fileno()).st_size
        if size and file.read(4) != _MAGIC_BYTES:
            raise DataError(
                f"{path} is not an MXNet RecordIO file (it does not start with the record magic "
                f"0x{MAGIC:08x}); give a .rec written by im2rec.py or `multibox data convert --to recordio`"
            )
        for number, (offset, start, total) in enumerate(_payloads(file, size, offsets)):
            image = RecordImage(path, offset, number)
            try:
                if isinstance(start, _RecordError):
                    raise start
                identifier, objects, start = _read_label(file, size, image, start, total)
            except _RecordError as error:
                problems.append(_bad_record(path, number, offset, error, offsets is not None))
                continue
            try:
                width, height = _read_size(file, size, image, start, total)
            except ImageDecodeError as error:
                detail = f"{image.name}: {error.reason}"
                problems.append(Problem(error.problem_kind, str(identifier), detail, True, image.name))
                continue
            rows.append((identifier, image, width, height, objects))
    return rows


def read_recordio(
    path: str | Path, class_names: Sequence[str] | str | Path | None = None
) -> DetectionDataset:
    """Read an MXNet detection ``.rec`` (at the offsets of the ``.idx`` beside it when there is one).

    Images stay in the file and are read when used (``record.image`` is a :class:`RecordImage`); sizes come
    from their headers, boxes are the normalised corners times the size. Image ids are the records' ids
    (``id2 << 64 | id``, also ``source_id``). Classes: ``class_names``, else ``labels.txt`` beside the
    ``.rec``, else ``"0"``, ``"1"``, ... up to the largest class number. A record that cannot be read is left
    out (``bad record``, subject ``<file>#<n>``; without an index, reading stops at a record whose framing is
    broken); objects of class numbers without a name are left out (``unknown class``, subject ``#<number>``).

    Raises:
        DataError: a file that is not RecordIO at all, or an ``.idx`` line that does not parse.
    """
    path = Path(path)
    index = path.with_suffix(".idx")
    problems: list[Problem] = []
    rows = _records(path, _read_index(index) if index.is_file() else None, problems)
    numbers = [n for row in rows for n in _class_numbers(row[4])]
    names = resolve_class_names(class_names, [], path.parent / "labels.txt")
    names = names or [str(i) for i in range(max(numbers, default=-1) + 1)]
    records = []
    for identifier, image, width, height, objects in rows:
        record, unknown = record_from_objects(str(identifier), image, width, height, objects, names)
        record.source_id = identifier
        records.append(record)
        problems += unknown
    return DetectionDataset(records, names, name=path.stem, problems=problems)


# ----------------------------------------------------------------------------------------------- writing
def pack_label(record: DetectionRecord, width: int, height: int) -> np.ndarray:
    """``(2 + 6 K,)`` float32 ``[2, 6, (cls, x1/W, y1/H, x2/W, y2/H, difficult) x K]`` of a record."""
    scale = np.array([width, height, width, height], np.float64)
    objects = np.column_stack(
        [
            record.labels.astype(np.float64),
            record.boxes.astype(np.float64) / scale,
            record.difficult.astype(np.float64),
        ]
    )
    return np.concatenate([[2.0, 6.0], objects.ravel()]).astype(np.float32)


def pack_payload(identifier: int, label: np.ndarray, image: bytes) -> bytes:
    """MXNet's ``recordio.pack`` of an array label: ``IRHeader(flag=len(label), 0.0, id, id2)``, the float32
    label values, the image bytes."""
    label = np.asarray(label, "<f4").reshape(-1)
    header = _IR_HEADER.pack(label.size, 0.0, identifier & (1 << 64) - 1, identifier >> 64)
    return header + label.tobytes() + image


def _aligned_magics(payload: bytes) -> list[int]:
    """The 4-aligned offsets in ``payload`` where the magic word stands."""
    found, at = [], payload.find(_MAGIC_BYTES)
    while at != -1:
        if at % 4 == 0:
            found.append(at)
        at = payload.find(_MAGIC_BYTES, at + (4 if at % 4 == 0 else 1))
    return found


def frame_record(payload: bytes) -> bytes:
    """``payload`` framed as dmlc-core's ``RecordIOWriter::WriteRecord`` does: cut at each 4-aligned magic
    word (parts with cflag 1, 2 ..., 3; cflag 0 when there is none), zero padding to a multiple of 4."""
    if len(payload) > _LENGTH_MASK:
        raise ValueError(f"a record of {len(payload):,} bytes is over RecordIO's limit of {_LENGTH_MASK:,}")
    pieces, start = [], 0
    for cut in _aligned_magics(payload):
        pieces += [_FRAME.pack(MAGIC, (2 if start else 1) << 29 | cut - start), payload[start:cut]]
        start = cut + 4
    last = _FRAME.pack(MAGIC, (3 if start else 0) << 29 | len(payload) - start)
    return b"".join([*pieces, last, payload[start:], bytes(-len(payload) % 4)])


def _jpeg_bytes(record: DetectionRecord) -> tuple[bytes, tuple[int, int]]:
    """The record's image as JPEG bytes, and its size: a JPEG file's (or record's) own bytes unchanged, any
    other image decoded and encoded at quality 95."""
    source, data = record.image, None
    name = source.name if isinstance(source, RecordImage) else record.image_id
    if isinstance(source, RecordImage):
        data = source.read_bytes()
    elif not callable(source):
        name = str(source)
        try:
            data = Path(source).read_bytes()
        except OSError as error:
            raise ImageDecodeError(name, error.strerror or str(error), "unreadable") from None
    with record.open_image() if data is None else open_image(data, name=name) as image:
        if data is not None and image.format == "JPEG":
            return data, image.size
        buffer = io.BytesIO()
        to_rgb(image, name=name).save(buffer, "JPEG", quality=95)
        return buffer.getvalue(), image.size


def _refuse_own_source(dataset: DetectionDataset, path: Path) -> None:
    """``ConfigError`` when writing ``path`` (and its ``.idx``) would replace the ``.rec`` or ``.idx`` that the
    dataset's images are read from."""
    written = {path.resolve(), path.with_suffix(".idx").resolve()}
    sources = {r.image.rec_path for r in dataset.records if isinstance(r.image, RecordImage)}
    for source in sources:
        if written & {source.resolve(), source.with_suffix(".idx").resolve()}:
            raise ConfigError(
                f"{path} would replace {source} or its .idx, which hold the dataset's own images; write to "
                "another file"
            )


def write_recordio(dataset: DetectionDataset, path: str | Path) -> Path:
    """Write ``path`` (``.rec``), the ``.idx`` beside it and ``labels.txt`` beside them, as ``im2rec.py
    --pack-label --pass-through`` does from an ``.lst``: record ``i`` has key and id ``i``, the label of
    :func:`pack_label`, and the image of :func:`_jpeg_bytes`. Images without objects are written too (label
    ``[2, 6]``); ``crowd`` flags are not stored. Existing files are replaced, never written through a link.
    """
    path = Path(path)
    _refuse_own_source(dataset, path)
    path.parent.mkdir(parents=True, exist_ok=True)
    index, lines = replace_file(path.with_suffix(".idx")), []  # no stale index beside a new .rec
    with open(replace_file(path), "wb") as rec:
        for number, record in enumerate(dataset.records):
            image, (width, height) = _jpeg_bytes(record)
            if record.width > 0 and record.height > 0:
                width, height = record.width, record.height
            payload = pack_payload(number, pack_label(record, width, height), image)
            if len(payload) > _LENGTH_MASK:
                raise DataError(
                    f"{record.image_id}: its record of {len(payload):,} bytes is over RecordIO's limit of "
                    f"{_LENGTH_MASK:,} bytes; shrink the image"
                )
            lines.append(f"{number}\t{rec.tell()}\n")
            rec.write(frame_record(payload))
    index.write_text("".join(lines))
    replace_file(path.parent / "labels.txt").write_text("".join(f"{name}\n" for name in dataset.class_names))
    return path


# ------------------------------------------------------------------------------------- the table's entry
def recognises(source: str | Path) -> bool:
    """A ``.rec`` file, or a folder holding ``.rec`` files (read as ``<split>.rec``, or its only one)."""
    path = Path(source)
    return path.suffix == ".rec" or (path.is_dir() and any(path.glob("*.rec")))


def rec_file(source: str | Path, split: str | None) -> Path:
    """The ``.rec`` a source names: itself, or in a folder ``<split>.rec`` (without a split, its only one)."""
    path = Path(source)
    if not path.is_dir():
        return path
    found = ", ".join(sorted(p.name for p in path.glob("*.rec"))) or "none"
    if split:
        if not (path / f"{split}.rec").is_file():
            raise MissingSplitError(
                f"no split {split!r} in {path}: no {split}.rec (.rec files there: {found})"
            )
        return path / f"{split}.rec"
    files = sorted(path.glob("*.rec"))
    if len(files) != 1:
        held = f"several .rec files ({found})" if files else "no .rec file"
        raise ConfigError(f"{path} holds {held}; give the .rec file, or --split NAME for NAME.rec")
    return files[0]


def read_recordio_source(
    source: str | Path, split: str | None, class_names: Sequence[str] | str | Path | None
) -> DetectionDataset:
    return read_recordio(rec_file(source, split), class_names)


def write_recordio_target(dataset: DetectionDataset, target: Path, split: str) -> Path:
    return write_recordio(dataset, target if target.suffix == ".rec" else target / f"{split}.rec")


def recordio_paths(target: Path, split: str, generated_images: bool) -> WrittenPaths:
    """What :func:`write_recordio_target` writes: the ``.rec``, its ``.idx`` and ``labels.txt`` (in a new
    folder ``target`` unless the target is a ``.rec``)."""
    rec = target if target.suffix == ".rec" else target / f"{split}.rec"
    files = [rec, rec.with_suffix(".idx"), rec.parent / "labels.txt"]
    return WrittenPaths([] if target.suffix == ".rec" else [target], files)
