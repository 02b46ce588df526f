"""Deterministic sample data for the README demo, the tests and the benchmarks: a staffing agency.

`generate(rows, seed)` builds four related Arrow tables (workers, clients, placements, notes).
Every value is a pure function of (seed, column, row id): a counter-based SplitMix64 hash run with
Arrow compute kernels on whole columns. So the output is the same on every machine and every run,
does not depend on the chunk size, needs no numpy, and any table can look up a worker's attributes
(name, skills, pay rate) by recomputing them from the worker id instead of joining.
"""

from __future__ import annotations

import functools
import string
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

TABLES = ("workers", "clients", "placements", "notes")
FORMATS = ("csv", "tsv", "ndjson", "parquet")


def _list(text: str) -> tuple[str, ...]:
    return tuple(text.split(", "))


CHUNK_ROWS = 1 << 18

# Fixed anchors (days / seconds since the Unix epoch); nothing depends on the clock.
HIRED_FROM = 16436  # 2015-01-01
HIRED_SPAN = 3287  # up to 2023-12-31
START_FROM = 18993  # 2022-01-01
START_SPAN = 730
NOTES_FROM = 1672531200  # 2023-01-01T00:00:00Z
NOTES_SPAN = 2 * 365 * 86400

P_ACTIVE_WORKER = 0.85
P_ONGOING = 0.20
P_CANCELLED = 0.10
P_NEWLINE = 0.05
P_QUOTE = 0.05

FIRST_NAMES = _list(
    "Ana, Marcus, Priya, Jamal, Mei, Carlos, Fatima, Tyler, Keisha, Dmitri, Lucia, Andre, Hannah, "
    "Omar, Grace, Luis, Aisha, Kevin, Rosa, Tomas, Linh, Samuel, Maria, Jordan, Elena, Darnell, "
    "Sofia, Raj, Chloe, Mateo, Imani, Wei"
)
LAST_NAMES = _list(
    "Garcia, Johnson, Nguyen, Patel, Smith, Williams, Rodriguez, Kim, Brown, Lopez, Okafor, Kowalski, "
    "Chen, Davis, Hernandez, Martinez, Thompson, O'Neil, Silva, Jackson, Ali, Rossi, Walker, Santos, "
    "Murphy, Reyes, Novak, Haddad, Bennett, Flores, Ibrahim, Park"
)
CITIES = _list(
    "Chicago, Houston, Phoenix, Dallas, San Antonio, Columbus, Charlotte, Indianapolis, Denver, "
    "Nashville, Louisville, Memphis, Atlanta, Sacramento, Fresno, Tampa, Newark, Reno, Boise, Tulsa"
)
AREA_CODES = _list("415, 212, 312, 617, 206, 512, 303, 404, 713, 602, 615, 916")
EMAIL_DOMAINS = _list("example.com, example.org, example.net")

# (skill, phrase used in notes, two roles a placement can have). 13 skills: a prime, see _distinct.
SKILLS = (
    ("forklift", "forklift operation", "Forklift Operator", "Reach Truck Operator"),
    ("welding", "MIG and TIG welding", "MIG Welder", "Fabrication Welder"),
    ("nursing", "patient care", "CNA", "LPN"),
    ("cdl", "commercial driving", "CDL-A Driver", "Delivery Driver"),
    ("bilingual", "bilingual customer service", "Bilingual Customer Service Rep", "Interpreter"),
    ("warehouse", "warehouse picking and packing", "Warehouse Associate", "Picker/Packer"),
    ("kitchen", "line cooking", "Line Cook", "Dishwasher"),
    ("security", "site security", "Security Officer", "Event Security"),
    ("childcare", "childcare", "Childcare Aide", "Daycare Assistant"),
    ("data entry", "data entry", "Data Entry Clerk", "Admin Assistant"),
    ("cleaning", "commercial cleaning", "Custodian", "Housekeeper"),
    ("reception", "front desk reception", "Receptionist", "Front Desk Agent"),
    ("carpentry", "finish carpentry", "Carpenter", "General Laborer"),
)
MAX_SKILLS = 4

# (industry, company-name suffix)
INDUSTRIES = (
    ("Logistics", "Logistics"),
    ("Healthcare", "Health"),
    ("Manufacturing", "Manufacturing"),
    ("Hospitality", "Hospitality"),
    ("Retail", "Retail"),
    ("Construction", "Builders"),
    ("Security", "Security Services"),
    ("Education", "Learning Centers"),
    ("Food Service", "Foods"),
)
CLIENT_PREFIXES = _list(
    "Harbor, Summit, Pioneer, Bayview, Redwood, Lakeside, Ironbridge, Northstar, Cedar, Granite, "
    "Riverside, Keystone, Blue Ridge, Evergreen, Silverline, Crescent"
)
CONTACT_ROLES = _list("hr, hiring, ops, staffing")

RECRUITERS = _list(
    "Dana Whitfield, Miguel Ortega, Sarah Lindqvist, Terrence Boyd, Nadia Rahman, Colin Mercer, "
    "Yuki Tanaka, Brenda Achebe"
)
SHIFTS = _list("night, day, swing, weekend, early morning, overnight, split")
DAYS = ("weekends", "weekdays", "holidays", "short notice", "Mondays and Fridays", "Sundays")
LANGUAGES = _list(  # 11: a prime, see _distinct
    "Spanish, Portuguese, Tagalog, Vietnamese, Mandarin, Haitian Creole, Polish, Arabic, French, Russian, Korean"
)
CERTS = _list(
    "OSHA 10, OSHA 30, ServSafe, CPR and First Aid, forklift, CNA, Class A CDL, AWS D1.1, TWIC, food handler, BLS"
)

# Note sentences. Placeholders are filled per row; none of these holds a double quote or a newline,
# so the share of notes with those is controlled by P_QUOTE and P_NEWLINE alone. 19 (a prime) of
# them so up to four distinct ones can be drawn per note, see _distinct.
SENTENCES = (
    "{name} is certified for {skill} and prefers {shift} shifts.",
    "Reliable on {days}; speaks {lang} and {lang2}.",
    "{name} holds a current {cert} certification.",
    "Strong background in {skill}, would place again.",
    "Available for {shift} shifts starting next week.",
    "Completed {num} assignments in a row without a no-show.",
    "Bilingual: fluent in {lang}, conversational in {lang2}.",
    "{name} asked for more hours on {days}.",
    "Needs to renew {cert} before the next placement.",
    "Client praised {name} for {skill2}, punctuality and attitude.",
    "Late twice last month, otherwise dependable on {shift} shifts.",
    "Prefers assignments close to home; doesn't drive, relies on transit.",
    "{name} can cover {skill2} if the regular crew is short.",
    "Interviewed in {lang}; references check out.",
    "Not available on {days} due to a school schedule.",
    "Trained new hires in {skill} at the last client.",
    "Had one no-call no-show; spoke with {name} and it has not happened again.",
    "Open to overtime and {shift} shifts, ideally {days}.",
    "Has {cert} and {num} years of experience in {skill}.",
)
QUOTED_SENTENCES = (
    'Client feedback: "{name} is the best at {skill} we have had."',
    '{name} said "happy to pick up {shift} shifts" during the check-in call.',
    'Supervisor called {name} "rock solid" on {days}.',
    'Marked "do not return" by one client over a scheduling mix-up; {name} disputes it.',
)
SLOTS = ("", "name", "skill", "skill2", "shift", "days", "lang", "lang2", "cert", "num")
MAX_SLOTS = 3

SCHEMAS = {
    "workers": pa.schema(
        [
            pa.field("worker_id", pa.int64(), nullable=False),
            pa.field("full_name", pa.string(), nullable=False),
            pa.field("email", pa.string(), nullable=False),
            pa.field("phone", pa.string(), nullable=False),
            pa.field("city", pa.string(), nullable=False),
            pa.field("skills", pa.string(), nullable=False),
            pa.field("hourly_rate", pa.float64(), nullable=False),
            pa.field("hired_on", pa.date32(), nullable=False),
            pa.field("active", pa.bool_(), nullable=False),
        ]
    ),
    "clients": pa.schema(
        [
            pa.field("client_id", pa.int64(), nullable=False),
            pa.field("name", pa.string(), nullable=False),
            pa.field("industry", pa.string(), nullable=False),
            pa.field("city", pa.string(), nullable=False),
            pa.field("contact_email", pa.string(), nullable=False),
        ]
    ),
    "placements": pa.schema(
        [
            pa.field("placement_id", pa.int64(), nullable=False),
            pa.field("worker_id", pa.int64(), nullable=False),
            pa.field("client_id", pa.int64(), nullable=False),
            pa.field("role", pa.string(), nullable=False),
            pa.field("start_date", pa.date32(), nullable=False),
            pa.field("end_date", pa.date32(), nullable=True),
            pa.field("hours", pa.float64(), nullable=False),
            pa.field("bill_rate", pa.float64(), nullable=False),
            pa.field("status", pa.string(), nullable=False),
        ]
    ),
    "notes": pa.schema(
        [
            pa.field("note_id", pa.int64(), nullable=False),
            pa.field("worker_id", pa.int64(), nullable=False),
            pa.field("written_on", pa.timestamp("us", tz="UTC"), nullable=False),
            pa.field("author", pa.string(), nullable=False),
            pa.field("text", pa.string(), nullable=False),
        ]
    ),
}

_MASK64 = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15
_MIX1 = 0xBF58476D1CE4E5B9
_MIX2 = 0x94D049BB133111EB


def _u64(value: int) -> pa.Scalar:
    return pa.scalar(value & _MASK64, pa.uint64())


def _mix_int(x: int) -> int:
    """SplitMix64's finalizer on one Python int (used to derive per-column keys)."""
    x &= _MASK64
    x = ((x ^ (x >> 30)) * _MIX1) & _MASK64
    x = ((x ^ (x >> 27)) * _MIX2) & _MASK64
    return x ^ (x >> 31)


def _mix(x: pa.Array) -> pa.Array:
    """The same finalizer over a uint64 column (Arrow's unchecked multiply wraps modulo 2**64)."""
    x = pc.multiply(pc.bit_wise_xor(x, pc.shift_right(x, _u64(30))), _u64(_MIX1))
    x = pc.multiply(pc.bit_wise_xor(x, pc.shift_right(x, _u64(27))), _u64(_MIX2))
    return pc.bit_wise_xor(x, pc.shift_right(x, _u64(31)))


def _key(seed: int, column: str) -> int:
    return _mix_int(_mix_int(seed) ^ _mix_int(zlib.crc32(column.encode()) + _GOLDEN))


@dataclass(frozen=True)
class _Rows:
    """Row ids (1-based, uint64) of one chunk, and the seed: the source of every random column."""

    seed: int
    ids: pa.Array

    def bits(self, column: str) -> pa.Array:
        return _mix(pc.add(pc.multiply(self.ids, _u64(_GOLDEN)), _u64(_key(self.seed, column))))

    def below(self, column: str, bound: int | pa.Array) -> pa.Array:
        """Uniform ints in [0, bound) for bound < 2**32 (Lemire's multiply-shift)."""
        high = pc.shift_right(self.bits(column), _u64(32))
        scale = _u64(bound) if isinstance(bound, int) else pc.cast(bound, pa.uint64())
        return pc.shift_right(pc.multiply(high, scale), _u64(32))

    def between(self, column: str, low: int, high: int) -> pa.Array:
        """Uniform ints in [low, high]."""
        return pc.add(self.below(column, high - low + 1), _u64(low))

    def chance(self, column: str, p: float) -> pa.Array:
        return pc.less(self.bits(column), _u64(int(p * 2.0**64)))

    def pick(self, column: str, values: Sequence[str]) -> pa.Array:
        return pc.take(pa.array(values, pa.string()), self.below(column, len(values)))

    def of(self, ids: pa.Array) -> _Rows:
        """The same generator at other row ids: how a table reads a referenced worker's attributes."""
        return _Rows(self.seed, pc.cast(ids, pa.uint64()))


def _id_range(start: int, stop: int) -> pa.Array:
    """uint64 ids start+1 .. stop."""
    return pc.cumulative_sum(pa.repeat(_u64(1), stop - start), start=_u64(start))


def _text(values: pa.Array) -> pa.Array:
    return pc.cast(values, pa.string())


def _join(*parts: pa.Array | str) -> pa.Array:
    return pc.binary_join_element_wise(*parts, "")


def _date(days: pa.Array, base: int) -> pa.Array:
    """date32 `base + days` (days since the Unix epoch)."""
    return pc.cast(pc.cast(pc.add(days, _u64(base)), pa.int32()), pa.date32())


def _cents_to_float(cents: pa.Array) -> pa.Array:
    return pc.divide(pc.cast(cents, pa.float64()), 100.0)


def _optional(keep: pa.Array, separator: str | pa.Array, value: pa.Array) -> pa.Array:
    """`separator + value` where keep, else "" (join with nulls skipped drops rows in Arrow 26)."""
    return pc.if_else(keep, _join(separator, value), "")


def _distinct(r: _Rows, column: str, size: int, count: int, first: pa.Array | None = None) -> list[pa.Array]:
    """`count` distinct ints in [0, size) per row, size prime: first + j*step (mod size), step != 0."""
    start = first if first is not None else r.below(f"{column}.start", size)
    step = r.between(f"{column}.step", 1, size - 1)
    table = pa.array(list(range(size)) * count, pa.uint64())
    return [pc.take(table, pc.add(start, pc.multiply(step, _u64(j)))) for j in range(count)]


# ---- worker attributes, recomputable from the worker id anywhere --------------------------------


def _first_name(w: _Rows) -> pa.Array:
    return w.pick("w.first", FIRST_NAMES)


def _skill_count(w: _Rows) -> pa.Array:
    return w.between("w.skills.count", 1, MAX_SKILLS)


def _skill_ids(w: _Rows) -> list[pa.Array]:
    return _distinct(w, "w.skills", len(SKILLS), MAX_SKILLS)


def _rate_cents(w: _Rows) -> pa.Array:
    return w.between("w.rate", 1500, 6500)


def _skill_column(index: int) -> pa.Array:
    return pa.array([entry[index] for entry in SKILLS], pa.string())


# ---- workers --------------------------------------------------------------------------------------


def _skills_text(w: _Rows) -> pa.Array:
    count, names = _skill_count(w), _skill_column(0)
    first, *others = (pc.take(names, skill) for skill in _skill_ids(w))
    return _join(first, *(_optional(pc.less(_u64(j), count), ",", name) for j, name in enumerate(others, 1)))


def _email(w: _Rows, first: pa.Array, last: pa.Array) -> pa.Array:
    local = pc.replace_substring(pc.utf8_lower(_join(first, ".", last)), "'", "")
    return _join(local, _text(w.ids), "@", w.pick("w.domain", EMAIL_DOMAINS))


def _phone(w: _Rows) -> pa.Array:
    line = pc.utf8_lpad(_text(w.between("w.phone", 100, 199)), 4, "0")
    return _join("+1 ", w.pick("w.area", AREA_CODES), "-555-", line)


def _workers(r: _Rows, ctx: _Context) -> list[pa.Array]:
    first, last = _first_name(r), r.pick("w.last", LAST_NAMES)
    return [
        pc.cast(r.ids, pa.int64()),
        _join(first, " ", last),
        _email(r, first, last),
        _phone(r),
        r.pick("w.city", CITIES),
        _skills_text(r),
        _cents_to_float(_rate_cents(r)),
        _date(r.below("w.hired", HIRED_SPAN), HIRED_FROM),
        r.chance("w.active", P_ACTIVE_WORKER),
    ]


# ---- clients --------------------------------------------------------------------------------------


def _clients(r: _Rows, ctx: _Context) -> list[pa.Array]:
    industry = r.below("c.industry", len(INDUSTRIES))
    prefix = r.pick("c.prefix", CLIENT_PREFIXES)
    suffix = pc.take(pa.array([s for _, s in INDUSTRIES]), industry)
    ids = _text(r.ids)
    slug = pc.replace_substring(pc.utf8_lower(prefix), " ", "")
    contact = _join(r.pick("c.contact", CONTACT_ROLES), ".", slug, ids, "@", r.pick("c.domain", EMAIL_DOMAINS))
    return [
        pc.cast(r.ids, pa.int64()),
        _join(prefix, " ", suffix, " ", ids),
        pc.take(pa.array([i for i, _ in INDUSTRIES]), industry),
        r.pick("c.city", CITIES),
        contact,
    ]


# ---- placements -----------------------------------------------------------------------------------


def _role(r: _Rows, worker: _Rows) -> pa.Array:
    """One of the two roles of the worker's primary skill."""
    roles = pa.array([role for entry in SKILLS for role in entry[2:]], pa.string())
    which = pc.add(pc.multiply(_skill_ids(worker)[0], _u64(2)), r.below("p.role", 2))
    return pc.take(roles, which)


def _hours(r: _Rows, duration: pa.Array) -> pa.Array:
    """Workdays (5 of 7) times 4..8 hours a day, in quarter hours."""
    workdays = pc.max_element_wise(pc.divide(pc.multiply(duration, _u64(5)), _u64(7)), _u64(1))
    quarters = pc.multiply(workdays, r.between("p.quarters", 16, 32))
    return pc.divide(pc.cast(quarters, pa.float64()), 4.0)


def _bill_rate(r: _Rows, worker: _Rows) -> pa.Array:
    """The worker's rate marked up 25..75 %, rounded down to the cent: always above the rate."""
    markup = r.between("p.markup", 125, 175)
    return _cents_to_float(pc.divide(pc.multiply(_rate_cents(worker), markup), _u64(100)))


def _status(r: _Rows, ongoing: pa.Array) -> pa.Array:
    ended = pc.if_else(r.chance("p.cancelled", P_CANCELLED), "cancelled", "completed")
    return pc.if_else(ongoing, "active", ended)


def _placements(r: _Rows, ctx: _Context) -> list[pa.Array]:
    worker_ids = pc.add(r.below("p.worker", ctx.workers), _u64(1))
    worker = r.of(worker_ids)
    start = r.below("p.start", START_SPAN)
    duration = r.between("p.days", 1, 180)
    ongoing = r.chance("p.ongoing", P_ONGOING)
    end = pc.if_else(ongoing, pa.scalar(None, pa.date32()), _date(pc.add(start, duration), START_FROM))
    return [
        pc.cast(r.ids, pa.int64()),
        pc.cast(worker_ids, pa.int64()),
        pc.cast(pc.add(r.below("p.client", ctx.clients), _u64(1)), pa.int64()),
        _role(r, worker),
        _date(start, START_FROM),
        end,
        _hours(r, duration),
        _bill_rate(r, worker),
        _status(r, ongoing),
    ]


# ---- notes ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Templates:
    """Sentences split into literal pieces and slot numbers (indexes into SLOTS), column-wise."""

    literals: list[pa.Array]  # MAX_SLOTS + 1 string columns, one row per sentence
    slots: list[pa.Array]  # MAX_SLOTS uint64 columns, one row per sentence

    @classmethod
    def parse(cls, sentences: Sequence[str]) -> _Templates:
        literals: list[list[str]] = [[] for _ in range(MAX_SLOTS + 1)]
        slots: list[list[int]] = [[] for _ in range(MAX_SLOTS)]
        for sentence in sentences:
            pieces = [(text, field) for text, field, _, _ in string.Formatter().parse(sentence)]
            if len(pieces) > MAX_SLOTS + 1:
                raise ValueError(f"too many placeholders: {sentence!r}")
            pieces += [("", None)] * (MAX_SLOTS + 1 - len(pieces))
            for i, (text, field) in enumerate(pieces):
                literals[i].append(text)
                if i < MAX_SLOTS:
                    slots[i].append(SLOTS.index(field or ""))
        return cls([pa.array(c, pa.string()) for c in literals], [pa.array(c, pa.uint64()) for c in slots])


@functools.cache
def _templates() -> _Templates:
    # Built on first use: pa.array over Python lists imports pandas (a second at every CLI start).
    return _Templates.parse(SENTENCES + QUOTED_SENTENCES)


def _slot_values(r: _Rows, worker: _Rows) -> pa.Array:
    """All slot columns of a chunk end to end, in SLOTS order: value of slot s, row i at s*n + i."""
    n = len(r.ids)
    phrases = _skill_column(1)
    skills = _skill_ids(worker)
    last_skill = pc.choose(pc.subtract(_skill_count(worker), _u64(1)), *skills)
    lang = r.below("n.lang", len(LANGUAGES))
    lang2 = _distinct(r, "n.lang2", len(LANGUAGES), 2, first=lang)[1]
    languages = pa.array(LANGUAGES, pa.string())
    columns = [
        pa.repeat(pa.scalar("", pa.string()), n),
        _first_name(worker),
        pc.take(phrases, skills[0]),
        pc.take(phrases, last_skill),
        r.pick("n.shift", SHIFTS),
        r.pick("n.days", DAYS),
        pc.take(languages, lang),
        pc.take(languages, lang2),
        r.pick("n.cert", CERTS),
        _text(r.between("n.num", 2, 10)),
    ]
    return pa.concat_arrays(columns)


def _sentence(template: pa.Array, values: pa.Array) -> pa.Array:
    n = len(template)
    rows = _id_range(0, n)  # 1..n
    parts: list[pa.Array] = []
    templates = _templates()
    for i, slot in enumerate(templates.slots):
        parts.append(pc.take(templates.literals[i], template))
        where = pc.subtract(pc.add(pc.multiply(pc.take(slot, template), _u64(n)), rows), _u64(1))
        parts.append(pc.take(values, where))
    parts.append(pc.take(templates.literals[MAX_SLOTS], template))
    return _join(*parts)


def _note_text(r: _Rows, worker: _Rows) -> pa.Array:
    """1-4 distinct sentences; P_QUOTE of notes open with a quoted one, P_NEWLINE break a line."""
    newline = r.chance("n.newline", P_NEWLINE)
    count = pc.max_element_wise(r.between("n.count", 1, 4), pc.if_else(newline, _u64(2), _u64(1)))
    picks = _distinct(r, "n.sentence", len(SENTENCES), 4)
    quoted = pc.add(r.below("n.quoted", len(QUOTED_SENTENCES)), _u64(len(SENTENCES)))
    picks[0] = pc.if_else(r.chance("n.quote", P_QUOTE), quoted, picks[0])
    values = _slot_values(r, worker)
    separators: list[str | pa.Array] = [pc.if_else(newline, "\n", " "), " ", " "]
    rest = [_optional(pc.less(_u64(j), count), separators[j - 1], _sentence(picks[j], values)) for j in range(1, 4)]
    return _join(_sentence(picks[0], values), *rest)


def _notes(r: _Rows, ctx: _Context) -> list[pa.Array]:
    worker_ids = pc.add(r.below("n.worker", ctx.workers), _u64(1))
    seconds = pc.add(pc.cast(r.below("n.when", NOTES_SPAN), pa.int64()), NOTES_FROM)
    return [
        pc.cast(r.ids, pa.int64()),
        pc.cast(worker_ids, pa.int64()),
        pc.cast(pc.multiply(seconds, 1_000_000), pa.timestamp("us", tz="UTC")),
        r.pick("n.author", RECRUITERS),
        _note_text(r, r.of(worker_ids)),
    ]


# ---- assembly -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Context:
    seed: int
    workers: int
    clients: int


_Builder = Callable[[_Rows, _Context], list[pa.Array]]
_BUILDERS: dict[str, _Builder] = {
    "workers": _workers,
    "clients": _clients,
    "placements": _placements,
    "notes": _notes,
}


def table_sizes(rows: int) -> dict[str, int]:
    """Row counts per table for `rows` workers."""
    return {"workers": rows, "clients": max(1, rows // 20), "placements": 2 * rows, "notes": rows}


def _build(name: str, size: int, ctx: _Context) -> pa.Table:
    schema = SCHEMAS[name]
    batches = []
    for start in range(0, size, CHUNK_ROWS):
        rows = _Rows(ctx.seed, _id_range(start, min(size, start + CHUNK_ROWS)))
        batches.append(pa.RecordBatch.from_arrays(_BUILDERS[name](rows, ctx), schema=schema))
    return pa.Table.from_batches(batches, schema=schema)


def generate(rows: int, seed: int = 7) -> dict[str, pa.Table]:
    """The four tables for `rows` workers; identical for the same (rows, seed) everywhere."""
    if rows < 1:
        raise ValueError(f"rows must be at least 1, got {rows}")
    sizes = table_sizes(rows)
    ctx = _Context(seed=seed, workers=sizes["workers"], clients=sizes["clients"])
    return {name: _build(name, sizes[name], ctx) for name in TABLES}


# ---- writing --------------------------------------------------------------------------------------


def _write_delimited(table: pa.Table, path: Path, delimiter: str) -> None:
    # "needed" quotes every string, so commas, quotes (doubled) and newlines in notes round-trip.
    options = pacsv.WriteOptions(include_header=True, delimiter=delimiter, quoting_style="needed")
    pacsv.write_csv(table, path, write_options=options)


def _write_ndjson(table: pa.Table, path: Path) -> None:
    import duckdb

    with duckdb.connect() as con:
        con.execute("SET TimeZone = 'UTC'")
        con.register("sample_table", table)
        target = str(path).replace("'", "''")
        con.execute(f"COPY (SELECT * FROM sample_table) TO '{target}' (FORMAT json)")


_WRITERS: dict[str, Callable[[pa.Table, Path], None]] = {
    "csv": lambda table, path: _write_delimited(table, path, ","),
    "tsv": lambda table, path: _write_delimited(table, path, "\t"),
    "ndjson": _write_ndjson,
    "parquet": lambda table, path: pq.write_table(table, path, compression="zstd"),
}


def write(tables: dict[str, pa.Table], out_dir: Path, fmt: str = "csv") -> dict[str, Path]:
    """Writes each table to out_dir/<table>.<fmt> and returns the paths."""
    if fmt not in _WRITERS:
        raise ValueError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    for name, table in tables.items():
        paths[name] = out_dir / f"{name}.{fmt}"
        _WRITERS[fmt](table, paths[name])
    return paths


# ---- CLI ------------------------------------------------------------------------------------------


def _summary_rows(tables: dict[str, pa.Table], paths: dict[str, Path]) -> list[tuple[Any, ...]]:
    from lakehouse.cli import output

    return [
        (name, f"{tables[name].num_rows:,}", str(paths[name]), output.size(paths[name].stat().st_size))
        for name in tables
    ]


@click.command("sample")
@click.option(
    "--rows",
    default=1000,
    show_default=True,
    type=click.IntRange(min=1),
    help="Workers to generate (clients = rows/20, placements = 2×rows, notes = rows).",  # noqa: RUF001
)
@click.option("--seed", default=7, show_default=True, help="Same rows and seed give the same bytes.")
@click.option("--format", "fmt", type=click.Choice(list(FORMATS)), default="csv", show_default=True)
@click.option(
    "-o",
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("sample-data"),
    show_default=True,
)
def sample_command(rows: int, seed: int, fmt: str, out_dir: Path) -> None:
    """Write deterministic staffing-agency sample data: workers, clients, placements, notes."""
    from lakehouse.cli import output

    tables = generate(rows, seed)
    paths = write(tables, out_dir, fmt)
    output.table(f"sample data (seed {seed}, {fmt})", ["table", "rows", "file", "size"], _summary_rows(tables, paths))
