"""The train stage's examples, checked before TensorFlow reads them.

The split and the training list name files under ``paths.raw`` (and, offline, under
``paths.augmented``) as they were when split and augment ran. When that changed
since (another ``paths.raw``, files moved), TensorFlow would fail mid-pipeline with a
traceback; one stat per file says it first, in one line.
"""

from __future__ import annotations

from pathlib import Path

from imgclf.data.datasets import Examples
from imgclf.errors import StageInputError

SHOWN = 3  # missing files named in the message; the count says the rest


def require_files(root: Path, *sets: Examples) -> None:
    """Raise unless every file of ``sets`` exists.

    Args:
        root: the project folder, for shorter names in the message.

    Raises:
        StageInputError: naming the first missing files and the commands that list them anew.
    """
    listed = [file for examples in sets for file in examples.files]
    missing = [file for file in listed if not file.is_file()]
    if not missing:
        return
    names = ", ".join(_shown(file, root) for file in missing[:SHOWN])
    more = f" and {len(missing) - SHOWN} more" if len(missing) > SHOWN else ""
    raise StageInputError(
        f"{len(missing)} of the {len(listed)} images the split and training list name are missing "
        f"({names}{more}): they were listed for other data or another paths.raw; "
        "run `imgclf validate`, `imgclf split` and `imgclf augment` again (or `dvc repro`)"
    )


def _shown(file: Path, root: Path) -> str:
    try:
        return str(file.relative_to(root.resolve()))
    except ValueError:
        return str(file)
