"""The imageMogr2 rule parser: what ``validate_rule`` accepts and the codes of what it rejects."""

from __future__ import annotations

import pytest

from airflow_provider_ci.emulator.imaging import ProcessingError, process, validate_rule

VALID_RULES = [
    "imageMogr2",
    "imageMogr2/auto-orient/thumbnail/!50p/format/webp/quality/85/strip",  # the ci_api.md §7 example
    "imageMogr2/rotate/0",
    "imageMogr2/rotate/360",
    "imageMogr2/rotate/45",
    "imageMogr2/flip/vertical/flip/horizontal",
    *(
        f"imageMogr2/thumbnail/{geometry}"
        for geometry in ("!50p", "!50px", "!x50p", "100x", "x100", "100x80", "100x80>", "100x80<", "100x80!")
    ),
    "imageMogr2/thumbnail/!100x80r",
    "imageMogr2/thumbnail/10000@",
    "imageMogr2/thumbnail/99999x99999",  # clamped to 10000, not rejected (§6)
    "imageMogr2/crop/300x400",
    "imageMogr2/crop/300x/gravity/center",
    "imageMogr2/crop/x400/gravity/SouthEast",
    "imageMogr2/crop/300x400/strip/gravity/north",  # settings in between do not separate gravity from crop
    "imageMogr2/format/JPG/format/jpeg/format/png/format/webp/format/gif/format/bmp",
    "imageMogr2/quality/0/quality/100/quality/90!",
    "imageMogr2/rquality/50/lquality/60",
    "imageMogr2/interlace/0/interlace/1/ignore-error/0/ignore-error/1",
]


@pytest.mark.parametrize("rule", VALID_RULES)
def test_valid_rules_pass(rule: str) -> None:
    validate_rule(rule)


INVALID_RULES = [
    # (rule, code, text the message must contain)
    ("", "InvalidArgument", "imageMogr2"),
    ("imageView2/1/w/100", "InvalidArgument", "imageMogr2"),
    ("imagemogr2/rotate/90", "InvalidArgument", "imageMogr2"),
    ("imageMogr2/rotate/90/", "InvalidArgument", "empty segment"),
    ("imageMogr2//rotate/90", "InvalidArgument", "empty segment"),
    ("imageMogr2/frobnicate/1", "InvalidArgument", "frobnicate"),
    ("imageMogr2/strip/1", "InvalidArgument", "unknown operation '1'"),
    ("imageMogr2/rotate", "InvalidArgument", "rotate: missing argument"),
    ("imageMogr2/rotate/abc", "InvalidArgument", "rotate/abc"),
    ("imageMogr2/rotate/361", "InvalidArgument", "rotate/361"),
    ("imageMogr2/rotate/-90", "InvalidArgument", "rotate/-90"),
    ("imageMogr2/rotate/45.5", "InvalidArgument", "rotate/45.5"),
    ("imageMogr2/rotate/" + "9" * 5000, "InvalidArgument", "rotate/999"),
    ("imageMogr2/flip/diagonal", "InvalidArgument", "flip/diagonal"),
    ("imageMogr2/thumbnail/abc", "InvalidArgument", "thumbnail/abc"),
    ("imageMogr2/thumbnail/10x10x", "InvalidArgument", "thumbnail/10x10x"),
    ("imageMogr2/thumbnail/!50", "InvalidArgument", "thumbnail/!50"),
    ("imageMogr2/thumbnail/0x10", "InvalidArgument", "thumbnail/0x10"),
    ("imageMogr2/thumbnail/x0", "InvalidArgument", "thumbnail/x0"),
    ("imageMogr2/thumbnail/!0p", "InvalidArgument", "1 to 1000"),
    ("imageMogr2/thumbnail/!1001p", "InvalidArgument", "1 to 1000"),
    ("imageMogr2/thumbnail/0@", "InvalidArgument", "thumbnail/0@"),
    ("imageMogr2/crop/x", "InvalidArgument", "crop/x"),
    ("imageMogr2/crop/0x10", "InvalidArgument", "crop/0x10"),
    ("imageMogr2/crop/10", "InvalidArgument", "crop/10"),
    ("imageMogr2/crop/10x10/gravity/middle", "InvalidArgument", "gravity/middle"),
    ("imageMogr2/gravity/center", "InvalidArgument", "must follow a crop"),
    ("imageMogr2/crop/10x10/rotate/90/gravity/center", "InvalidArgument", "must follow a crop"),
    ("imageMogr2/crop/10x10/gravity/center/gravity/east", "InvalidArgument", "already has a gravity"),
    ("imageMogr2/format/tiff", "InvalidArgument", "format/tiff"),
    ("imageMogr2/quality/101", "InvalidArgument", "quality/101"),
    ("imageMogr2/quality/abc", "InvalidArgument", "quality/abc"),
    ("imageMogr2/quality/50!!", "InvalidArgument", "quality/50!"),
    ("imageMogr2/rquality/0", "InvalidArgument", "rquality/0"),
    ("imageMogr2/rquality/50!", "InvalidArgument", "rquality/50!"),
    ("imageMogr2/lquality/101", "InvalidArgument", "lquality/101"),
    ("imageMogr2/interlace/2", "InvalidArgument", "interlace/2"),
    ("imageMogr2/ignore-error/yes", "InvalidArgument", "ignore-error/yes"),
    ("imageMogr2/format/avif", "UnsupportedOperation", "format/avif"),
    ("imageMogr2/format/heif", "UnsupportedOperation", "format/heif"),
    ("imageMogr2/format/yjpeg", "UnsupportedOperation", "format/yjpeg"),
    ("imageMogr2/blur/3x5", "UnsupportedOperation", "blur"),
    ("imageMogr2/cut/10x10x0x0", "UnsupportedOperation", "cut"),
    ("imageMogr2/size-limit/15k", "UnsupportedOperation", "size-limit"),
    ("imageMogr2/rotate/90|watermark/1", "UnsupportedOperation", "'|'"),
]


@pytest.mark.parametrize(("rule", "code", "fragment"), INVALID_RULES)
def test_invalid_rules_raise_with_code_and_named_operation(rule: str, code: str, fragment: str) -> None:
    with pytest.raises(ProcessingError) as caught:
        validate_rule(rule)
    assert (caught.value.code, str(caught.value)) == (code, f"{code}: {caught.value.message}")
    assert fragment in caught.value.message


def test_process_checks_the_rule_before_the_image() -> None:
    with pytest.raises(ProcessingError) as caught:
        process(b"not an image", "imageMogr2/rotate/abc")
    assert caught.value.code == "InvalidArgument"
