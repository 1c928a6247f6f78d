"""Regenerate ``tests/data/bccd_subset/`` from the full bccd set: byte-identical copies of a fixed choice of files.

    python tests/data/make_bccd_subset.py [FULL_BCCD_DIR] [OUT_DIR]

FULL_BCCD_DIR defaults to ``$MULTIBOX_DATASETS/bccd`` (``<repo>/../shared/datasets/bccd`` when unset), OUT_DIR to
``tests/data/bccd_subset`` next to this script. The choice of images is the rule in :func:`choose`: from bccd's
own train split every 4th line of ``ImageSets/Main/train.txt`` starting at the 3rd (51 images; the offset puts
BloodImage_00343, the one train image with a zero-area box, in the subset), from its test split every 3rd line of
``test.txt`` starting at the 1st (24 images). Images, annotations and ``labels.txt`` are copied byte for byte; the
two split files list the chosen ids in bccd's order. ``SOURCE.md`` and ``LICENSE`` are kept by hand, not written.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]

# split: (every, start) over the lines of the full set's ImageSets/Main/<split>.txt
RULE = {"train": (4, 2), "test": (3, 0)}


def default_source() -> Path:
    return Path(os.environ.get("MULTIBOX_DATASETS", REPO_ROOT.parent / "shared" / "datasets")) / "bccd"


def read_split(bccd: Path, split: str) -> list[str]:
    return (bccd / "ImageSets" / "Main" / f"{split}.txt").read_text().split()


def choose(bccd: Path) -> dict[str, list[str]]:
    """The image ids of each subset split, in the full split's order."""
    chosen = {}
    for split, (every, start) in RULE.items():
        chosen[split] = read_split(bccd, split)[start::every]
    return chosen


def make_subset(bccd: Path, out: Path) -> dict[str, list[str]]:
    """Write the subset of ``bccd`` into ``out`` (its Annotations/, JPEGImages/ and ImageSets/ are replaced)."""
    chosen = choose(bccd)
    for folder in ("Annotations", "JPEGImages", "ImageSets"):
        if (out / folder).exists():
            shutil.rmtree(out / folder)
        (out / folder).mkdir(parents=True)
    (out / "ImageSets" / "Main").mkdir()
    shutil.copyfile(bccd / "labels.txt", out / "labels.txt")
    for split, ids in chosen.items():
        (out / "ImageSets" / "Main" / f"{split}.txt").write_text("".join(f"{i}\n" for i in ids))
        for image_id in ids:
            shutil.copyfile(bccd / "Annotations" / f"{image_id}.xml", out / "Annotations" / f"{image_id}.xml")
            shutil.copyfile(bccd / "JPEGImages" / f"{image_id}.jpg", out / "JPEGImages" / f"{image_id}.jpg")
    return chosen


def main(argv: list[str]) -> int:
    bccd = Path(argv[0]) if argv else default_source()
    out = Path(argv[1]) if len(argv) > 1 else HERE / "bccd_subset"
    if not (bccd / "ImageSets" / "Main" / "train.txt").is_file():
        print(f"make_bccd_subset: no bccd set at {bccd}", file=sys.stderr)
        return 2
    chosen = make_subset(bccd, out)
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    counts = ", ".join(f"{split} {len(ids)}" for split, ids in chosen.items())
    print(f"wrote {out}: {counts} images, {size / 2**20:.2f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
