"""PII detection for catalog columns.

Pure domain logic (no gRPC): given a table's column names and an optional
pyarrow sample of its rows, decide which kinds of personal data each column
probably holds. Two independent signals are combined with OR:

* the column name, tokenised and matched against a small vocabulary, and
* the sampled values, matched by per-kind predicates, where a column is
  tagged once at least 60% of its non-null, non-empty values match.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from enum import StrEnum

import pyarrow as pa


class PiiKind(StrEnum):
    EMAIL = "EMAIL"
    PHONE = "PHONE"
    SSN = "SSN"
    CARD_NUMBER = "CARD_NUMBER"
    IP_ADDRESS = "IP_ADDRESS"
    DATE_OF_BIRTH = "DATE_OF_BIRTH"
    ADDRESS = "ADDRESS"
    SALARY = "SALARY"
    PERSON_NAME = "PERSON_NAME"


# Bounds the cost of scanning a sample: judging a column's contents does not
# need more than this many values, and huge samples must stay cheap.
MAX_SAMPLED_VALUES = 1_000
# A column is tagged when at least MATCH_NUMERATOR / MATCH_DENOMINATOR (60%)
# of its examined values match; integer arithmetic avoids float edge cases.
MATCH_NUMERATOR = 3
MATCH_DENOMINATOR = 5

ValuePredicate = Callable[[str], bool]

# ---------------------------------------------------------------------------
# Column-name signal
# ---------------------------------------------------------------------------

# Splits camelCase / PascalCase (keeping acronyms such as "IP" or "SSN"
# together) and drops every separator; digits become their own tokens.
_TOKEN_PATTERN = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+")

# Vocabulary keys are *concatenated* token runs, so "e_mail", "eMail" and
# "email" all match "email", and "zip_code" / "zipcode" both match "zipcode".
# Matching whole tokens only is what keeps "ip" out of "description",
# "ship_date" and "recipient", and "zip" out of "zipped_at".
_NAME_KEYS: Mapping[PiiKind, tuple[str, ...]] = {
    PiiKind.EMAIL: ("email", "emails", "emailaddress", "emailaddr"),
    PiiKind.PHONE: (
        "phone",
        "phones",
        "phonenumber",
        "phoneno",
        "phonenum",
        "mobile",
        "mobilephone",
        "mobilenumber",
        "tel",
        "telephone",
        "telno",
        "cell",
        "cellphone",
        "cellnumber",
        "msisdn",
    ),
    PiiKind.SSN: ("ssn", "socialsecurity", "socialsecuritynumber", "socialsecurityno"),
    PiiKind.CARD_NUMBER: (
        "cardnumber",
        "cardno",
        "cardnum",
        "ccnumber",
        "ccnum",
        "ccno",
        "creditcard",
        "creditcardnumber",
        "debitcard",
        "pan",
    ),
    PiiKind.IP_ADDRESS: (
        "ip",
        "ips",
        "ipaddress",
        "ipaddr",
        "ipv4",
        "ipv6",
        "ipv4address",
        "ipv6address",
    ),
    PiiKind.DATE_OF_BIRTH: ("dob", "dateofbirth", "birthdate", "birthdt", "birthday", "bornon"),
    PiiKind.ADDRESS: (
        "address",
        "addresses",
        "street",
        "streetaddress",
        "homeaddress",
        "postcode",
        "postalcode",
        "zip",
        "zipcode",
    ),
    PiiKind.SALARY: (
        "salary",
        "salaries",
        "payrate",
        "hourlyrate",
        "wage",
        "wages",
        "compensation",
        "annualpay",
        "annualsalary",
        "basepay",
    ),
    # Bare "name" is deliberately absent: dataset_name, product_name, ...
    PiiKind.PERSON_NAME: (
        "firstname",
        "lastname",
        "fullname",
        "surname",
        "givenname",
        "middlename",
        "familyname",
        "forename",
    ),
}

# Runs that contain a PII word but are not PII. They are matched like any
# other key (longest run wins), so "mac_address" is consumed whole and its
# "address" token is never seen on its own.
_NON_PII_KEYS = ("macaddress", "walletaddress", "contractaddress", "mobileapp")

_NAME_VOCABULARY: Mapping[str, PiiKind | None] = {
    **{key: kind for kind, keys in _NAME_KEYS.items() for key in keys},
    **{key: None for key in _NON_PII_KEYS},
}
_LONGEST_KEY_TOKENS = 4  # "social_security_number_x" never needs a longer run

# Weaker hint than the vocabulary: "birth_place" is not a birth date, so these
# tokens only tag DATE_OF_BIRTH when the values are dates as well.
_BIRTH_HINT_TOKENS = frozenset({"birth", "born"})


def column_name_tokens(name: str) -> list[str]:
    """Lower-cased words of a column name (camelCase and separators split)."""
    return [token.lower() for token in _TOKEN_PATTERN.findall(name)]


def kinds_from_name(name: str) -> frozenset[PiiKind]:
    """PII kinds suggested by the column name alone."""
    tokens = column_name_tokens(name)
    kinds: set[PiiKind] = set()
    start = 0
    while start < len(tokens):
        end, kind = _longest_vocabulary_run(tokens, start)
        if kind is not None:
            kinds.add(kind)
        start = end
    return frozenset(kinds)


def _longest_vocabulary_run(tokens: Sequence[str], start: int) -> tuple[int, PiiKind | None]:
    """(end, kind) of the longest vocabulary run at start, else (start + 1, None).

    Longest-first is what makes "email_address" EMAIL only, and
    "ip_address" IP_ADDRESS only, instead of also ADDRESS.
    """
    last = min(len(tokens), start + _LONGEST_KEY_TOKENS)
    for end in range(last, start, -1):
        run = "".join(tokens[start:end])
        if run in _NAME_VOCABULARY:
            return end, _NAME_VOCABULARY[run]
    return start + 1, None


def _suggests_birth(name: str) -> bool:
    return not _BIRTH_HINT_TOKENS.isdisjoint(column_name_tokens(name))


# ---------------------------------------------------------------------------
# Value predicates
# ---------------------------------------------------------------------------

_EMAIL_PATTERN = re.compile(
    r"[A-Za-z0-9._%+'-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*\.[A-Za-z]{2,}"
)
_E164_PATTERN = re.compile(r"\+[1-9]\d{8,14}")
# NANP needs separators or parentheses: a bare 10-digit run is as likely an
# id as a phone number, so plain integers never count.
_NANP_PATTERN = re.compile(r"(?:\+?1[ .-]?)?(?:\(\d{3}\) ?|\d{3}[ .-])\d{3}[ .-]\d{4}")
# International formats are only accepted with a leading "+", which keeps
# them apart from SSNs, card numbers and dates.
_INTL_PATTERN = re.compile(r"\+\d{1,3}(?:[ .-]?\(?\d{1,5}\)?){1,6}")
_PHONE_DIGITS = range(9, 16)
# Area 000/666/9xx, group 00 and serial 0000 are never issued.
_SSN_PATTERN = re.compile(r"(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}")
_CARD_PATTERN = re.compile(r"\d(?:[ -]?\d){12,18}")
_DATE_FORMATS = ("%Y-%m-%d", "%Y/%m/%d", "%m/%d/%Y", "%d/%m/%Y", "%d.%m.%Y")


def is_email(value: str) -> bool:
    return _EMAIL_PATTERN.fullmatch(value) is not None


def is_phone_number(value: str) -> bool:
    if not any(p.fullmatch(value) for p in (_E164_PATTERN, _NANP_PATTERN, _INTL_PATTERN)):
        return False
    return sum(ch.isdigit() for ch in value) in _PHONE_DIGITS


def is_ssn(value: str) -> bool:
    return _SSN_PATTERN.fullmatch(value) is not None


def is_card_number(value: str) -> bool:
    if _CARD_PATTERN.fullmatch(value) is None:
        return False
    digits = [int(ch) for ch in value if ch.isdigit()]
    # All zeros passes Luhn trivially but is a placeholder, not a card.
    return any(digits) and luhn_valid(digits)


def luhn_valid(digits: Sequence[int]) -> bool:
    """Luhn mod-10 checksum, as used by every major card scheme."""
    total = 0
    for position, digit in enumerate(reversed(digits)):
        # Every second digit from the right is doubled; 2-digit results are
        # reduced by summing their digits, i.e. subtracting 9.
        doubled = digit * 2 - 9 if digit > 4 else digit * 2
        total += doubled if position % 2 == 1 else digit
    return total % 10 == 0


def is_ip_address(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def is_date(value: str) -> bool:
    return any(_parses_as(value, fmt) for fmt in _DATE_FORMATS)


def _parses_as(value: str, fmt: str) -> bool:
    try:
        datetime.strptime(value, fmt)
    except ValueError:
        return False
    return True


_STRING_DETECTORS: Mapping[PiiKind, ValuePredicate] = {
    PiiKind.EMAIL: is_email,
    PiiKind.PHONE: is_phone_number,
    PiiKind.SSN: is_ssn,
    PiiKind.CARD_NUMBER: is_card_number,
    PiiKind.IP_ADDRESS: is_ip_address,
}
# Integers can only be card numbers: phone numbers stored as ints lose their
# formatting, and we reject unformatted digit runs as phones anyway.
_INTEGER_DETECTORS: Mapping[PiiKind, ValuePredicate] = {PiiKind.CARD_NUMBER: is_card_number}


def kinds_from_values(values: Iterable[str], detectors: Mapping[PiiKind, ValuePredicate]) -> frozenset[PiiKind]:
    """Kinds whose predicate matches at least 60% of the non-empty values."""
    examined = _non_empty(values)
    return frozenset(kind for kind, matches in detectors.items() if _meets_threshold(examined, matches))


def _non_empty(values: Iterable[str]) -> list[str]:
    stripped = (value.strip() for value in values)
    return [value for value in stripped if value][:MAX_SAMPLED_VALUES]


def _meets_threshold(values: Sequence[str], matches: ValuePredicate) -> bool:
    if not values:
        return False
    hits = sum(1 for value in values if matches(value))
    return hits * MATCH_DENOMINATOR >= len(values) * MATCH_NUMERATOR


# ---------------------------------------------------------------------------
# Sample access
# ---------------------------------------------------------------------------


def _sample_column(sample: pa.Table, name: str) -> pa.ChunkedArray | None:
    indices = sample.schema.get_all_field_indices(name)
    if not indices:
        return None
    column = sample.column(indices[0])
    # Dictionary-encoded strings are still strings; judge the decoded values.
    if pa.types.is_dictionary(column.type):
        column = column.cast(column.type.value_type)
    return column


def _detectors_for(name: str, column_type: pa.DataType) -> Mapping[PiiKind, ValuePredicate]:
    if pa.types.is_integer(column_type):
        return _INTEGER_DETECTORS
    if not _is_string_type(column_type):
        return {}  # other types are judged by name only
    if _suggests_birth(name):
        # Dates are only birth dates when the name says so; otherwise every
        # created_at-style string column would be flagged.
        return {**_STRING_DETECTORS, PiiKind.DATE_OF_BIRTH: is_date}
    return _STRING_DETECTORS


def _is_string_type(column_type: pa.DataType) -> bool:
    return bool(
        pa.types.is_string(column_type) or pa.types.is_large_string(column_type) or pa.types.is_string_view(column_type)
    )


def _sampled_values(column: pa.ChunkedArray) -> list[str]:
    """Up to MAX_SAMPLED_VALUES non-null, non-empty values, read in windows.

    Windowing keeps a huge sample that is mostly nulls or empty strings from
    being materialised in Python all at once.
    """
    values: list[str] = []
    for start in range(0, len(column), MAX_SAMPLED_VALUES):
        window = column.slice(start, MAX_SAMPLED_VALUES).drop_null().to_pylist()
        values.extend(_non_empty(str(value) for value in window))
        if len(values) >= MAX_SAMPLED_VALUES:
            break
    return values[:MAX_SAMPLED_VALUES]


def _value_kinds(name: str, sample: pa.Table | None) -> frozenset[PiiKind]:
    column = None if sample is None else _sample_column(sample, name)
    if column is None:
        return frozenset()
    detectors = _detectors_for(name, column.type)
    if not detectors:
        return frozenset()
    return kinds_from_values(_sampled_values(column), detectors)


# ---------------------------------------------------------------------------
# Public entry point
# ---------------------------------------------------------------------------


def detect_pii(column_names: Sequence[str], sample: pa.Table | None) -> dict[str, frozenset[PiiKind]]:
    """PII kinds per column: name signal OR value signal.

    Every name in column_names gets an entry (an empty frozenset when nothing
    was detected); sample columns not named in column_names are ignored, and
    named columns missing from the sample are judged by name only.
    """
    return {name: kinds_from_name(name) | _value_kinds(name, sample) for name in column_names}
