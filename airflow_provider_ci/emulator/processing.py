"""The work of one job: read the input object, apply the rule, write the output object.

Runs in a worker thread (file I/O and Pillow would stall the event loop) and only touches the
job's immutable spec and the object files, so it needs no locks.
"""

from __future__ import annotations

from typing import Any

from . import imaging
from .jobs import JobSpec
from .storage import Storage, etag


def execute(storage: Storage, bucket: str, spec: JobSpec) -> dict[str, Any]:
    """Process one job; returns its ``PicProcessResult`` tree (Shape A of ci_api.md §2.5).

    Raises ``imaging.ProcessingError`` with the job's failure code: ``InputObjectNotExist`` for
    a missing input, ``OutputObjectWriteFailed`` when the output cannot be written, or whatever
    the imaging engine reports.
    """
    try:
        data = storage.get(bucket, spec.input_object)
    except FileNotFoundError:
        raise imaging.ProcessingError(
            "InputObjectNotExist", f"input object {spec.input_object!r} does not exist in bucket {bucket}"
        ) from None
    processed = imaging.process(data, spec.rule)
    try:
        output_etag = storage.put(spec.output_bucket, spec.output_object, processed.data)
    except OSError as exc:
        raise imaging.ProcessingError(
            "OutputObjectWriteFailed",
            f"cannot write output object {spec.output_object!r} to bucket {spec.output_bucket}: {exc.strerror}",
        ) from None
    original: dict[str, Any] = {"Etag": etag(data)}
    if spec.is_pic_info:
        info = imaging.image_info(data)
        original["ImageInfo"] = {
            "Ave": info.ave,
            "Format": info.format,
            "Height": str(info.height),
            "Orientation": str(info.orientation),
            "Quality": str(info.quality),
            "Width": str(info.width),
        }
    result = processed.info
    return {
        "ObjectName": spec.output_object,
        "OriginalInfo": original,
        "ProcessResult": {
            "Etag": output_etag,
            "Format": result.format,
            "Height": str(result.height),
            "Quality": str(result.quality),
            "Size": str(len(processed.data)),
            "Width": str(result.width),
        },
    }
