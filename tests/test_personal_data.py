"""What looks like personal data in text: one detector refuses it in what a person writes, and
the export's masking guard masks it in what a machine wrote, embedded in letters or not."""

from __future__ import annotations

import pytest

from tests.conftest import id_number
from workflow.context import Request
from workflow.identity import mask_personal_data, personal_data_in

PERSON = id_number(7, region="350203", born="19900101")


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        (PERSON, "an ID number"),
        (f"r{PERSON}", "an ID number"),
        (f"see{PERSON}please", "an ID number"),
        ("350203 19900101 0026", "an ID number"),
        ("35020319900101123x", "an ID number"),
        ("old card 350203900101002", "an ID number"),  # 15 digits: the first-generation number
        ("call 13800138000", "a mobile number"),
        ("tel13800138000", "a mobile number"),
        ("138-0013-8000", "a mobile number"),
        ("+86 138 0013 8000", "a mobile number"),
        ("6222 0212 3456 7890", "a card number"),
        ("card6222021234567890123", "a card number"),
        ("account 123456789012", "a card number"),
    ],
)
def test_text_a_person_writes_is_found_to_hold_personal_data(text: str, kind: str) -> None:
    assert personal_data_in(text) == kind


@pytest.mark.parametrize(
    "text",
    [
        "documents sent by post on 2026-03-02",
        "2026-03-02 2026-03-05",
        "ward 12, bed 305",
        "phone the agency at 0750 3220",
        "12345678901",  # eleven digits that are no mobile number
        "",
    ],
)
def test_ordinary_words_and_dates_hold_no_personal_data(text: str) -> None:
    assert personal_data_in(text) is None


def test_the_masking_guard_masks_an_id_number_after_a_letter() -> None:
    masked = mask_personal_data(f"r{PERSON} and x13912345678")

    assert PERSON not in masked and "13912345678" not in masked
    assert masked == f"r{PERSON[:4]}{'*' * 10}{PERSON[-4:]} and x139****5678"


def test_the_masking_guard_masks_a_valid_id_number_inside_a_hex_run() -> None:
    masked = mask_personal_data(f"deadbeef{PERSON}ff")

    assert masked == f"deadbeef{PERSON[:4]}{'*' * 10}{PERSON[-4:]}ff"


@pytest.mark.parametrize(
    "text",
    [
        "1" * 64,  # a hash that happens to be all digits
        "0190ab3c4d5e13800138000f",  # a hex id with a mobile-shaped run inside
        "adm0190ab3c4d5e123456789012",
        "key:123456789012",  # a key id: twelve hex digits, here all of them digits
        "ba350203199001010027",  # eighteen digits in hex whose check digit is wrong
        "e579370054760321714805c3a7020b5d",  # a request id: a window reads 5476-03-21
    ],
)
def test_the_masking_guard_leaves_hashes_and_ids_as_they_are(text: str) -> None:
    assert mask_personal_data(text) == text


def test_a_generated_request_id_is_drawn_again_when_it_reads_like_an_id_number(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    unlucky, fine = f"ab{PERSON}cdef01234567", "0123456789abcdef0123456789abcdef"
    draws = iter([unlucky, fine])
    monkeypatch.setattr("workflow.context.secrets.token_hex", lambda _n: next(draws))

    request = Request.new()

    assert request.request_id == request.correlation_id == fine
