import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.errors import UnsatisfiableRangeError
from domain.identifiers import EvaluationId
from domain.payload import (
    PayloadLocation,
    RequestedRange,
    StorageThresholds,
    clamp_range,
    decode_tail,
    route_payload,
    tail_bytes,
)
from domain.tenancy import DEFAULT_TENANT

EID = EvaluationId("e1")
DEFAULTS = StorageThresholds()


def test_threshold_stays_inline() -> None:
    routed = route_payload(DEFAULT_TENANT, EID, "output", "a" * 102_400, DEFAULTS, "t1")
    assert routed.stored.location is PayloadLocation.INLINE
    assert routed.stored.size == 102_400
    assert routed.blob is None
    assert not routed.stored.truncated
    assert routed.stored.text == "a" * 102_400


def test_one_byte_over_goes_to_file_compressed() -> None:
    routed = route_payload(DEFAULT_TENANT, EID, "output", "a" * 102_401, DEFAULTS, "t1")
    assert routed.stored.location is PayloadLocation.FILE
    assert routed.stored.size == 102_401
    assert routed.stored.compressed
    assert routed.stored.key == "evaluations/e1/output.t1.txt.zst"
    assert routed.stored.text == "a" * 1000
    assert routed.stored.truncated
    assert routed.blob == b"a" * 102_401


def test_multibyte_counts_bytes_and_preview_keeps_characters() -> None:
    text = "é" * 51_201  # 102,402 bytes, 51,201 characters
    routed = route_payload(DEFAULT_TENANT, EID, "error", text, DEFAULTS, "t1")
    assert routed.stored.size == 102_402
    assert routed.stored.location is PayloadLocation.FILE
    assert routed.stored.text == "é" * 1000
    assert routed.stored.key == "evaluations/e1/error.t1.txt.zst"


def test_thresholds_come_from_settings() -> None:
    small = StorageThresholds(large_file_threshold=10, compression_threshold=100, preview_size=3)
    routed = route_payload(DEFAULT_TENANT, EID, "output", "abcdefghijk", small, "t1")
    assert routed.stored.location is PayloadLocation.FILE
    assert not routed.stored.compressed
    assert routed.stored.key == "evaluations/e1/output.t1.txt"
    assert routed.stored.text == "abc"


@given(
    st.text(max_size=400),
    st.integers(min_value=0, max_value=300),
    st.integers(min_value=0, max_value=50),
)
def test_routing_invariants(text: str, threshold: int, preview: int) -> None:
    thresholds = StorageThresholds(
        large_file_threshold=threshold, compression_threshold=threshold, preview_size=preview
    )
    routed = route_payload(DEFAULT_TENANT, EID, "output", text, thresholds, "t1")
    size = len(text.encode("utf-8"))
    assert routed.stored.size == size
    if size <= threshold:
        assert routed.stored.location is PayloadLocation.INLINE
        assert routed.stored.text == text
    else:
        assert routed.blob == text.encode("utf-8")
        assert text.startswith(routed.stored.text)
        assert len(routed.stored.text) == min(preview, len(text))


@pytest.mark.parametrize("kind", ["output", "error"])
def test_small_text_has_no_blob(kind: str) -> None:
    routed = route_payload(DEFAULT_TENANT, EID, kind, "hi", DEFAULTS, "t1")  # type: ignore[arg-type]
    assert routed.blob is None and routed.stored.key is None


@pytest.mark.parametrize(
    ("requested", "size", "expected"),
    [
        (RequestedRange(start=2, end=6), 10, (2, 6)),
        (RequestedRange(start=2), 10, (2, 10)),
        (RequestedRange(start=8, end=101), 10, (8, 10)),
        (RequestedRange(suffix=3), 10, (7, 10)),
        (RequestedRange(suffix=30), 10, (0, 10)),
    ],
)
def test_a_requested_range_is_clamped_to_the_size(
    requested: RequestedRange, size: int, expected: tuple[int, int]
) -> None:
    clamped = clamp_range(requested, size)
    assert (clamped.start, clamped.end, clamped.size) == (*expected, size)


@pytest.mark.parametrize(
    ("requested", "size"),
    [(RequestedRange(start=10), 10), (RequestedRange(suffix=0), 10), (RequestedRange(suffix=5), 0)],
)
def test_a_range_with_no_byte_in_the_content_is_unsatisfiable(
    requested: RequestedRange, size: int
) -> None:
    with pytest.raises(UnsatisfiableRangeError) as refused:
        clamp_range(requested, size)
    assert refused.value.size == size


def test_a_blob_payload_keeps_its_last_characters_for_search() -> None:
    text = "é" * 150_000 + "ValueError: boom"
    thresholds = StorageThresholds(tail_size=20)

    routed = route_payload(DEFAULT_TENANT, EvaluationId("tail"), "error", text, thresholds, "t")
    inline = route_payload(DEFAULT_TENANT, EvaluationId("tail"), "error", "short", thresholds, "t")
    none_kept = route_payload(
        DEFAULT_TENANT, EvaluationId("tail"), "error", text, StorageThresholds(tail_size=0), "t"
    )

    assert routed.stored.tail == text[-20:]
    assert inline.stored.tail is None  # the whole text is inline: nothing more to keep
    assert none_kept.stored.tail is None


@pytest.mark.parametrize("cut", [0, 1, 2, 3])
def test_a_streamed_tail_begins_on_a_character_whatever_byte_it_was_cut_at(cut: int) -> None:
    encoded = ("a€ü😀" * 10).encode()
    end = encoded[-(tail_bytes(5) + cut) :]

    assert decode_tail(end, 5) == ("a€ü😀" * 10)[-5:]
    assert decode_tail(b"", 5) is None
