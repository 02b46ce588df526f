from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa
import pytest

from lakehouse.server.catalog.pii import (
    PiiKind,
    column_name_tokens,
    detect_pii,
    is_card_number,
    is_date,
    is_email,
    is_ip_address,
    is_phone_number,
    is_ssn,
    kinds_from_name,
    luhn_valid,
)

NONE: frozenset[PiiKind] = frozenset()


def only(kind: PiiKind) -> frozenset[PiiKind]:
    return frozenset({kind})


def string_table(**columns: Sequence[str | None]) -> pa.Table:
    return pa.table({name: pa.array(values, pa.string()) for name, values in columns.items()})


def judge_values(values: Sequence[str | None]) -> frozenset[PiiKind]:
    """Value signal alone: "col" carries no name hint."""
    return detect_pii(["col"], string_table(col=values))["col"]


# --- enum -------------------------------------------------------------------


def test_pii_kind_members_and_values() -> None:
    expected = [
        "EMAIL",
        "PHONE",
        "SSN",
        "CARD_NUMBER",
        "IP_ADDRESS",
        "DATE_OF_BIRTH",
        "ADDRESS",
        "SALARY",
        "PERSON_NAME",
    ]
    assert [kind.name for kind in PiiKind] == expected
    assert [kind.value for kind in PiiKind] == expected
    assert PiiKind.EMAIL == "EMAIL"


# --- name heuristics ----------------------------------------------------------


def test_column_name_tokens_split_camel_case_acronyms_and_separators() -> None:
    assert column_name_tokens("emailAddress") == ["email", "address"]
    assert column_name_tokens("clientIP") == ["client", "ip"]
    assert column_name_tokens("IPAddress") == ["ip", "address"]
    assert column_name_tokens("Social-Security.Number") == ["social", "security", "number"]
    assert column_name_tokens("address_line1") == ["address", "line", "1"]


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("email", PiiKind.EMAIL),
        ("e_mail", PiiKind.EMAIL),
        ("emailAddress", PiiKind.EMAIL),
        ("EMAIL_ADDRESS", PiiKind.EMAIL),
        ("phone", PiiKind.PHONE),
        ("phone_number", PiiKind.PHONE),
        ("mobile", PiiKind.PHONE),
        ("tel", PiiKind.PHONE),
        ("cell", PiiKind.PHONE),
        ("ssn", PiiKind.SSN),
        ("social_security", PiiKind.SSN),
        ("social_security_number", PiiKind.SSN),
        ("card_number", PiiKind.CARD_NUMBER),
        ("cc_number", PiiKind.CARD_NUMBER),
        ("credit_card", PiiKind.CARD_NUMBER),
        ("pan", PiiKind.CARD_NUMBER),
        ("ip", PiiKind.IP_ADDRESS),
        ("ip_address", PiiKind.IP_ADDRESS),
        ("ipv4", PiiKind.IP_ADDRESS),
        ("client_ip", PiiKind.IP_ADDRESS),
        ("clientIp", PiiKind.IP_ADDRESS),
        ("dob", PiiKind.DATE_OF_BIRTH),
        ("date_of_birth", PiiKind.DATE_OF_BIRTH),
        ("birth_date", PiiKind.DATE_OF_BIRTH),
        ("birthdate", PiiKind.DATE_OF_BIRTH),
        ("birthday", PiiKind.DATE_OF_BIRTH),
        ("address", PiiKind.ADDRESS),
        ("street", PiiKind.ADDRESS),
        ("street_address", PiiKind.ADDRESS),
        ("home_address", PiiKind.ADDRESS),
        ("billing_address", PiiKind.ADDRESS),
        ("postcode", PiiKind.ADDRESS),
        ("zip", PiiKind.ADDRESS),
        ("zip_code", PiiKind.ADDRESS),
        ("salary", PiiKind.SALARY),
        ("pay_rate", PiiKind.SALARY),
        ("hourly_rate", PiiKind.SALARY),
        ("wage", PiiKind.SALARY),
        ("compensation", PiiKind.SALARY),
        ("annual_pay", PiiKind.SALARY),
        ("first_name", PiiKind.PERSON_NAME),
        ("lastName", PiiKind.PERSON_NAME),
        ("full_name", PiiKind.PERSON_NAME),
        ("surname", PiiKind.PERSON_NAME),
        ("given_name", PiiKind.PERSON_NAME),
        ("customer_first_name", PiiKind.PERSON_NAME),
    ],
)
def test_name_heuristics_tag_exactly_one_kind(name: str, kind: PiiKind) -> None:
    assert kinds_from_name(name) == only(kind)


@pytest.mark.parametrize(
    "name",
    [
        "zipped_at",
        "description",
        "ship_date",
        "recipient",
        "tip_amount",
        "name",
        "dataset_name",
        "product_name",
        "created_at",
        "id",
        "company",
        "hotel_id",
        "mac_address",
        "birth_place",
        "",
    ],
)
def test_name_heuristics_avoid_false_positives(name: str) -> None:
    assert kinds_from_name(name) == NONE


def test_qualified_address_columns_are_not_street_addresses() -> None:
    assert kinds_from_name("email_address") == only(PiiKind.EMAIL)
    assert kinds_from_name("ip_address") == only(PiiKind.IP_ADDRESS)
    assert kinds_from_name("e_mail_address") == only(PiiKind.EMAIL)


def test_name_can_carry_several_kinds() -> None:
    assert kinds_from_name("phone_or_email") == frozenset({PiiKind.PHONE, PiiKind.EMAIL})


# --- value predicates ------------------------------------------------------------


def test_is_email() -> None:
    assert is_email("alice@example.com")
    assert is_email("bob.o'neil+tag@mail.example.co.uk")
    assert not is_email("alice@example")
    assert not is_email("alice.example.com")
    assert not is_email("@example.com")
    assert not is_email("alice@@example.com")


@pytest.mark.parametrize(
    "value",
    [
        "+14155552671",
        "+442079460958",
        "(415) 555-2671",
        "415-555-2671",
        "415.555.2671",
        "+1 415 555 2671",
        "1-800-555-1234",
        "+44 20 7946 0958",
        "+49 (30) 1234567",
    ],
)
def test_is_phone_number_accepts_common_formats(value: str) -> None:
    assert is_phone_number(value)


@pytest.mark.parametrize(
    "value",
    [
        "12345",
        "4155552671",
        "123456789",
        "+1234567",
        "+1234567890123456",
        "123-45-6789",
        "2024-01-15",
        "555-1234",
        "hello",
    ],
)
def test_is_phone_number_rejects_plain_ints_and_other_shapes(value: str) -> None:
    assert not is_phone_number(value)


def test_is_ssn_valid() -> None:
    assert is_ssn("123-45-6789")
    assert is_ssn("001-01-0001")
    assert is_ssn("899-99-9999")


@pytest.mark.parametrize(
    "value",
    [
        "000-12-3456",
        "666-12-3456",
        "900-12-3456",
        "999-12-3456",
        "123-00-4567",
        "123-45-0000",
        "123456789",
        "123-456-789",
        "12-345-6789",
        "123-45-67890",
    ],
)
def test_is_ssn_rejects_invalid(value: str) -> None:
    assert not is_ssn(value)


def test_luhn_valid() -> None:
    assert luhn_valid([int(d) for d in "79927398713"])
    assert not luhn_valid([int(d) for d in "79927398710"])


@pytest.mark.parametrize(
    "value",
    [
        "4111111111111111",
        "4111 1111 1111 1111",
        "4111-1111-1111-1111",
        "5500005555555559",
        "378282246310005",
        "6011111111111117",
        "4222222222222",
    ],
)
def test_is_card_number_accepts_luhn_valid(value: str) -> None:
    assert is_card_number(value)


@pytest.mark.parametrize(
    "value",
    [
        "4111111111111112",
        "4111 1111 1111 1112",
        "5500005555555550",
        "0000000000000000",
        "411111111111",
        "41111111111111111111",
        "4111x1111x1111x1111",
    ],
)
def test_is_card_number_rejects_luhn_invalid_and_bad_lengths(value: str) -> None:
    assert not is_card_number(value)


def test_is_ip_address() -> None:
    assert is_ip_address("192.168.1.10")
    assert is_ip_address("2001:db8::1")
    assert is_ip_address("::1")
    assert not is_ip_address("256.1.1.1")
    assert not is_ip_address("192.168.1")
    assert not is_ip_address("10")
    assert not is_ip_address("example.com")


def test_is_date() -> None:
    assert is_date("1990-04-23")
    assert is_date("04/23/1990")
    assert is_date("23.04.1990")
    assert not is_date("1990-02-30")
    assert not is_date("yesterday")


# --- detect_pii: value signal --------------------------------------------------


def test_values_detect_email() -> None:
    assert judge_values(["a@example.com", "b@example.org", "c@example.net"]) == only(PiiKind.EMAIL)


def test_values_detect_phone() -> None:
    assert judge_values(["+14155552671", "(415) 555-2671", "+44 20 7946 0958"]) == only(PiiKind.PHONE)


def test_values_detect_ssn_but_not_invalid_ssns() -> None:
    assert judge_values(["123-45-6789", "234-56-7890", "345-67-8901"]) == only(PiiKind.SSN)
    assert judge_values(["000-12-3456", "666-12-3456", "900-12-3456"]) == NONE


def test_values_detect_luhn_valid_card_strings_only() -> None:
    valid = ["4111111111111111", "5500 0055 5555 5559", "3782-822463-10005"]
    invalid = ["4111111111111112", "5500 0055 5555 5550", "3782-822463-10006"]
    assert judge_values(valid) == only(PiiKind.CARD_NUMBER)
    assert judge_values(invalid) == NONE


def test_values_detect_card_numbers_in_integer_columns() -> None:
    valid = pa.array([4111111111111111, 5500005555555559, 6011111111111117], pa.int64())
    invalid = pa.array([4111111111111112, 5500005555555550, 6011111111111110], pa.int64())
    result = detect_pii(["a", "b"], pa.table({"a": valid, "b": invalid}))
    assert result == {"a": only(PiiKind.CARD_NUMBER), "b": NONE}


def test_integer_columns_are_not_judged_as_phones() -> None:
    phones_as_ints = pa.array([14155552671, 14155552672, 14155552673], pa.int64())
    assert detect_pii(["col"], pa.table({"col": phones_as_ints})) == {"col": NONE}


def test_values_detect_ipv4_and_ipv6() -> None:
    assert judge_values(["10.0.0.1", "192.168.1.1", "2001:db8::1"]) == only(PiiKind.IP_ADDRESS)


def test_date_values_alone_are_not_date_of_birth() -> None:
    dates = ["1990-04-23", "1985-12-01", "2001-07-15"]
    assert judge_values(dates) == NONE
    result = detect_pii(["created", "born", "birth_dt"], string_table(created=dates, born=dates, birth_dt=dates))
    assert result == {
        "created": NONE,
        "born": only(PiiKind.DATE_OF_BIRTH),
        "birth_dt": only(PiiKind.DATE_OF_BIRTH),
    }


def test_birth_hint_without_date_values_is_not_date_of_birth() -> None:
    sample = string_table(birth_place=["Paris", "Lagos", "Lima"])
    assert detect_pii(["birth_place"], sample) == {"birth_place": NONE}


def test_salary_is_never_detected_from_values() -> None:
    amounts = ["55000", "72000.50", "$120,000"]
    assert judge_values(amounts) == NONE
    assert detect_pii(["salary"], string_table(salary=amounts)) == {"salary": only(PiiKind.SALARY)}


def test_mixed_column_below_threshold_is_not_tagged() -> None:
    values = [
        "a@example.com",
        "b@example.com",
        "c@example.com",
        "d@example.com",
        "e@example.com",
        "x",
        "y",
        "z",
        "w",
        "v",
    ]  # 50% emails
    assert judge_values(values) == NONE


def test_mixed_column_at_threshold_is_tagged() -> None:
    values = ["a@example.com", "b@example.com", "c@example.com", "x", "y"]  # exactly 60%
    assert judge_values(values) == only(PiiKind.EMAIL)


def test_nulls_and_empty_strings_are_ignored() -> None:
    values: list[str | None] = ["a@example.com", None, "", "  ", "b@example.com", None, "x"]
    # 2 of 3 non-empty values match (67%); counting nulls/empties would give 29%.
    assert judge_values(values) == only(PiiKind.EMAIL)


def test_all_null_column_is_judged_by_name_only() -> None:
    sample = string_table(email=[None, None], notes=[None, ""])
    assert detect_pii(["email", "notes"], sample) == {"email": only(PiiKind.EMAIL), "notes": NONE}


def test_at_most_1000_values_are_examined() -> None:
    emails_first = [f"user{i}@example.com" for i in range(1_000)] + ["nope"] * 5_000
    assert judge_values(emails_first) == only(PiiKind.EMAIL)
    junk_first = ["nope"] * 1_000 + [f"user{i}@example.com" for i in range(5_000)]
    assert judge_values(junk_first) == NONE


def test_sample_cap_counts_non_empty_values_across_reads() -> None:
    # 600 emails then 1,600 junk: the first 1,000 non-null values are 60% emails.
    values: list[str | None] = ["a@example.com"] * 600 + [None] * 400 + ["nope"] * 1_600
    assert judge_values(values) == only(PiiKind.EMAIL)


def test_empty_strings_do_not_use_up_the_sample_cap() -> None:
    values: list[str | None] = [""] * 2_500 + [None] * 2_500 + ["a@example.com"] * 3
    assert judge_values(values) == only(PiiKind.EMAIL)


def test_values_are_stripped_before_matching() -> None:
    assert judge_values([" a@example.com ", "\tb@example.com\n"]) == only(PiiKind.EMAIL)


def test_name_and_value_signals_are_combined() -> None:
    sample = string_table(contact=["a@example.com", "b@example.com"], phone=["a@example.com", "b@example.com"])
    assert detect_pii(["contact", "phone"], sample) == {
        "contact": only(PiiKind.EMAIL),
        "phone": frozenset({PiiKind.PHONE, PiiKind.EMAIL}),
    }


def test_non_string_non_integer_columns_are_judged_by_name_only() -> None:
    sample = pa.table(
        {
            "amount": pa.array([1.5, 2.5], pa.float64()),
            "salary": pa.array([50_000.0, 60_000.0], pa.float64()),
            "flag": pa.array([True, False]),
        }
    )
    assert detect_pii(["amount", "salary", "flag"], sample) == {
        "amount": NONE,
        "salary": only(PiiKind.SALARY),
        "flag": NONE,
    }


def test_large_string_and_dictionary_columns_are_sampled() -> None:
    emails = ["a@example.com", "b@example.com", "c@example.com"]
    sample = pa.table(
        {
            "big": pa.array(emails, pa.large_string()),
            "dict": pa.array(emails, pa.string()).dictionary_encode(),
        }
    )
    assert detect_pii(["big", "dict"], sample) == {
        "big": only(PiiKind.EMAIL),
        "dict": only(PiiKind.EMAIL),
    }


def test_chunked_sample_columns_are_sampled() -> None:
    chunked = pa.chunked_array([["x", None], ["a@example.com", "b@example.com", "c@example.com"]])
    assert detect_pii(["col"], pa.table({"col": chunked})) == {"col": only(PiiKind.EMAIL)}


# --- detect_pii: result shape ----------------------------------------------------


def test_none_sample_uses_names_only() -> None:
    assert detect_pii(["email", "ssn", "notes"], None) == {
        "email": only(PiiKind.EMAIL),
        "ssn": only(PiiKind.SSN),
        "notes": NONE,
    }


def test_every_column_name_is_present_in_result() -> None:
    names = ["id", "email", "missing_from_sample", "notes"]
    sample = string_table(
        id=["1", "2"], email=["x", "y"], notes=["123-45-6789", None], extra=["a@example.com", "b@example.com"]
    )
    result = detect_pii(names, sample)
    assert list(result) == names
    assert all(isinstance(kinds, frozenset) for kinds in result.values())
    assert result == {
        "id": NONE,
        "email": only(PiiKind.EMAIL),
        "missing_from_sample": NONE,
        "notes": only(PiiKind.SSN),
    }


def test_empty_column_names_give_empty_result() -> None:
    assert detect_pii([], string_table(email=["a@example.com"])) == {}
