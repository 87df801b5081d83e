"""Catalog ingestion: JSONL (also .gz), CSV and Parquet into validated products.

Canonical fields are `id` and `title` (required) and `description`, `brand`,
`category` (string or list), `price` and `image` (optional). Every other field
is kept as an attribute (nested objects flattened with dots) and can be used in
filters. A field map renames a catalog's own columns onto the canonical ones.

Bad rows are never dropped silently: each is returned as a `Reject` with its
line number and reason, so the caller can skip and report them, or fail the
whole run in strict mode.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from shoplens.common.errors import CatalogError, one_line
from shoplens.indexers.rows import (CANONICAL_FIELDS, SUPPORTED_SUFFIXES, BrokenRow as _BrokenRow, ValueProblem,
                                    clean_row, iter_raw_rows)
MAX_ID_CHARS = 512
MAX_ATTRIBUTES = 1000  # attribute fields one row may add (each is a column of the product store)
MAX_ATTRIBUTE_NAME_CHARS = 200
MAX_PRICE = 1e12  # above it a price is a unit or parsing mistake (and prints as a 300-digit number)
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")  # C0 and C1 control characters (newline, tab, NUL, escape...)


@dataclass
class Product:
    """One validated catalog row in canonical form."""

    id: str
    title: str
    description: str = ""
    brand: str = ""
    category: list[str] = field(default_factory=list)
    price: float | None = None
    image: str | None = None  # absolute path, or None when the row has no image
    attributes: dict[str, Any] = field(default_factory=dict)
    line: int = 0  # where the row came from in its file (1-based; rows for Parquet)

    def to_record(self) -> dict[str, Any]:
        """A plain dict of the product, as stored and as shown in results."""
        return {
            "id": self.id,
            "title": self.title,
            "description": self.description,
            "brand": self.brand,
            "category": list(self.category),
            "price": self.price,
            "image": self.image,
            "attributes": dict(self.attributes),
        }

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> "Product":
        return cls(
            id=record["id"],
            title=record["title"],
            description=record.get("description") or "",
            brand=record.get("brand") or "",
            category=list(record.get("category") or []),
            price=record.get("price"),
            image=record.get("image"),
            attributes=dict(record.get("attributes") or {}),
        )


@dataclass
class Reject:
    """A catalog row that was not accepted, with where it was and why."""

    line: int
    reason: str
    id: str | None = None
    raw: str = ""
    source: str | None = None  # the file the row came from, when rows of several files are validated together

    def to_json(self) -> dict[str, Any]:
        data = {"line": self.line, "id": self.id, "reason": self.reason, "raw": self.raw[:500]}
        return {"source": self.source, **data} if self.source else data

    def describe(self) -> str:
        who = f" (id {self.id})" if self.id else ""
        where = f"{self.source} line {self.line}" if self.source else f"line {self.line}"
        return f"{where}{who}: {self.reason}"


@dataclass
class CatalogReadResult:
    products: list[Product]
    rejects: list[Reject]
    path: Path
    rows_read: int


def parse_field_map(pairs: Iterable[str]) -> dict[str, list[str]]:
    """Parse `canonical=source[,source...]` pairs into a field map.

    Several sources are allowed for `category` (their values become the
    category list) and for text fields (joined with spaces).
    """
    mapping: dict[str, list[str]] = {}
    for pair in pairs:
        if "=" not in pair:
            raise CatalogError(f"field map {pair!r} must look like canonical=column, e.g. title=productDisplayName")
        canonical, sources = (part.strip() for part in pair.split("=", 1))
        if canonical not in CANONICAL_FIELDS:
            raise CatalogError(
                f"field map names unknown canonical field {canonical!r}; use one of {', '.join(CANONICAL_FIELDS)}"
            )
        names = [name.strip() for name in sources.split(",") if name.strip()]
        if not names:
            raise CatalogError(f"field map {pair!r} names no source column")
        if len(names) > 1 and canonical in ("id", "price", "image"):
            raise CatalogError(f"field {canonical!r} can be mapped from one column only, got {sources!r}")
        if canonical in mapping:  # the later --map would replace the earlier one silently
            raise CatalogError(f"--map names {canonical!r} twice; give it once (several columns comma-separated)")
        taken = next(((name, field) for name in names for field, used in mapping.items() if name in used), None)
        if taken:  # a column is read once: the second field would find it gone
            raise CatalogError(f"--map maps column {taken[0]!r} to both {taken[1]!r} and {canonical!r}; "
                               "map each column to one field")
        mapping[canonical] = list(dict.fromkeys(names))
    return mapping


Existing = Callable[[str], "dict[str, Any] | None"]
# A raw row as `rows.iter_raw_rows` yields it, (line, row, raw text), optionally with the name of its file
# as a fourth item (rows of several files validated together, as `watch` does).
RawRow = tuple


def read_catalog(path: str | Path, field_map: dict[str, list[str]] | None = None,
                 existing: Existing | None = None) -> CatalogReadResult:
    """Read and validate a catalog file. Raises CatalogError if the file itself is unusable.

    With `existing` (id -> stored record, for deltas), a row for a product the
    index already holds is a patch: fields it names replace the stored ones
    (null clears a field), fields it leaves out keep their stored values.
    """
    path = Path(path)
    result = validate_rows(iter_raw_rows(path, field_map), path.name, path.parent.resolve(), field_map, existing)
    result.path = path
    return result


def validate_rows(rows: Iterable[RawRow], name: str, base_dir: Path, field_map: dict[str, list[str]] | None = None,
                  existing: Existing | None = None) -> CatalogReadResult:
    """Validate raw rows, `(line, row, raw[, source file])`, into products and rejects, as `read_catalog`
    does for a file. `name` names the rows in errors; relative image paths are read from `base_dir`."""
    validator = _Validator(base_dir, field_map or {}, existing)
    for row in rows:
        validator.add(*row)
    hint = mapping_hint(name, validator.rejects, validator.columns, bool(validator.products), field_map) \
        or layout_hint(name, validator.rejects, bool(validator.products)) or column_hint(name, validator)
    if hint:
        raise CatalogError(hint)
    return CatalogReadResult(validator.products, validator.rejects, Path(name), validator.rows_read)


def mapping_hint(name: str, rejects: list["Reject"], columns: dict[str, None], any_valid: bool,
                 field_map: dict[str, list[str]] | None = None) -> str | None:
    """When every row lacks the same required field, the file's own column names probably differ:
    list them and suggest the --map that would read it; or, where a --map names that field from
    columns the file does not have, say so (the map was mistyped, not missing)."""
    unmapped = [c for c in columns if c not in CANONICAL_FIELDS]
    if any_valid or not rejects or not unmapped:
        return None
    shown = ", ".join(list(columns)[:30]) + (" ..." if len(columns) > 30 else "")
    for required in ("id", "title"):
        sources = (field_map or {}).get(required, [required])
        absent = [source for source in sources if source not in columns]
        if not absent:  # the column is there, its values are empty: the rejects say so row by row
            continue
        if all(reject.reason == f"missing {required}" for reject in rejects):
            if required in (field_map or {}):
                return (f"{name} has no valid products: --map {required}={','.join(sources)} names "
                        f"{', '.join(map(repr, absent))}, which no row has; its columns are: {shown}; "
                        f"map {required} from one of them (names are case-sensitive)")
            words = {"id": ("id", "sku", "code"), "title": ("title", "name")}[required]
            guess = next((c for c in unmapped if any(w in c.lower() for w in words)), None) or "COLUMN"
            return (f"{name} has no valid products: no row has {required!r}; its columns are: {shown}; "
                    f"say which column holds it, e.g. --map {required}={guess}")
    return None


def layout_hint(name: str, rejects: list["Reject"], any_valid: bool) -> str | None:
    """A JSON file that is not JSON Lines (one array, or objects spread over several lines as a pretty-printer
    writes them) had every line rejected as "invalid JSON"; say what the file is and how to convert it."""
    if any_valid or not rejects or rejects[0].line != 1:
        return None
    first = rejects[0]
    if first.reason == "expected a JSON object, got list" or first.raw.strip() == "[":
        what, command = "one JSON array", f"jq -c '.[]' {name}"
    elif first.raw.strip() == "{" and first.reason.startswith("invalid JSON"):
        what, command = "JSON objects spread over several lines", f"jq -c . {name}"
    else:
        return None
    return (f"{name} is not JSON Lines: it holds {what}; write one product object a line "
            f"(e.g. {command} > products.jsonl)")


def column_hint(name: str, validator: "_Validator") -> str | None:
    """Every row rejected for a value of the same column (a Parquet column of image bytes, of durations, of
    unsigned 64-bit hashes; a JSON field that is Infinity everywhere): the column is the problem, not each row.
    One error names it and its reason instead of the same reject on every line."""
    rejects = validator.rejects
    if validator.products or len(rejects) < 2 or list(validator.value_columns.values()) != [len(rejects)]:
        return None
    column = next(iter(validator.value_columns))
    fix = ("save each photo as a file and give its path there" if column in validator.field_map.get("image", ["image"])
           else "drop that column from the file, or store it as text or numbers")
    return f"{name} has no valid products: every row was rejected for column {column!r} ({rejects[0].reason}); {fix}"


def is_broken(row: Any) -> str | None:
    """The reason a raw row could not even be parsed, or None."""
    if isinstance(row, _BrokenRow):
        return row.reason
    if not isinstance(row, dict):
        return f"expected a JSON object, got {type(row).__name__}"
    return None


class _Validator:
    """Turns raw rows into Products or Rejects, keeping order and first-seen ids."""

    def __init__(self, base_dir: Path, field_map: dict[str, list[str]], existing: Existing | None = None):
        self.base_dir = base_dir
        self.field_map = field_map
        self.existing = existing
        self.products: list[Product] = []
        self.rejects: list[Reject] = []
        self.seen: dict[str, int] = {}
        self.rows_read = 0
        self.columns: dict[str, None] = {}  # column names of the first rows, in order (for mapping hints)
        self.value_columns: dict[str | None, int] = {}  # rows rejected for a value of a column, by column

    def add(self, line: int, row: Any, raw: str, source: str | None = None) -> None:
        self.rows_read += 1
        reject = self._check(line, row, raw)
        if reject is not None:
            reject.source = source
            self.rejects.append(reject)

    def _check(self, line: int, row: Any, raw: str) -> Reject | None:
        """Adds the row's product, or returns the row's Reject."""
        if isinstance(row, _BrokenRow):
            return Reject(line, row.reason, raw=raw)
        if not isinstance(row, dict):
            return Reject(line, f"expected a JSON object, got {type(row).__name__}", raw=raw)
        if self.rows_read <= 100:
            self.columns.update(dict.fromkeys(str(key) for key in row))
        try:
            row = clean_row(row)
            product = normalize_row(row, self.field_map, self.base_dir, self.existing)
        except ValueProblem as exc:
            self.value_columns[exc.column] = self.value_columns.get(exc.column, 0) + 1
            return Reject(line, str(exc), raw=raw or _dump(row))
        except _RowError as exc:
            return Reject(line, str(exc), id=exc.product_id, raw=raw or _dump(row))
        if product.id in self.seen:
            return Reject(line, f"duplicate id (first seen on line {self.seen[product.id]})", id=product.id,
                          raw=raw or _dump(row))
        product.line = line
        self.seen[product.id] = line
        self.products.append(product)
        return None


class _RowError(ValueError):
    def __init__(self, message: str, product_id: str | None = None):
        super().__init__(message)
        self.product_id = product_id


def _dump(row: dict[str, Any]) -> str:
    try:
        return json.dumps(row, default=str, ensure_ascii=False)
    except (TypeError, ValueError):
        return repr(row)


def normalize_row(row: dict[str, Any], field_map: dict[str, list[str]], base_dir: Path,
                  existing: Existing | None = None) -> Product:
    """Map, validate and normalize one raw row. Raises _RowError with the reason."""
    mapped, named, rest = _map_fields(row, field_map)
    product_id = _clean_id(mapped.get("id"))
    if product_id is None:
        raise _RowError("missing id")
    if len(product_id) > MAX_ID_CHARS:
        raise _RowError(f"id is longer than {MAX_ID_CHARS} characters")
    if CONTROL.search(product_id):
        raise _RowError(f"id {product_id[:40]!r} has a control character (a newline, tab, NUL...); "
                        "an id is one line of printable text")
    stored = existing(product_id) if existing is not None else None
    attributes: dict[str, Any] = {}
    if stored is not None:  # a patch: fields the row does not name keep their stored values
        for canonical in CANONICAL_FIELDS[1:]:
            if canonical not in named:
                mapped[canonical] = stored.get(canonical)
        attributes = {k: v for k, v in (stored.get("attributes") or {}).items() if not _named_by(k, rest)}
        for key, value in rest.items():
            _flatten_into(attributes, str(key), value)
        rest = {}
    try:
        title = _text(mapped.get("title"), "title")
        description = _text(mapped.get("description"), "description", lists=True)
        brand = _text(mapped.get("brand"), "brand", lists=True)
        category = [item for item in _as_list(mapped.get("category")) if item]
    except ValueError as exc:
        raise _RowError(str(exc), product_id) from None
    title = " ".join(CONTROL.sub(" ", title).split())  # control characters count as spaces in a title
    if not title:
        raise _RowError("missing title", product_id)
    price = _clean_price(mapped.get("price"), product_id)
    image_path = _image_path(mapped.get("image"), base_dir, product_id)
    for key, value in rest.items():
        _flatten_into(attributes, str(key), value)
    _check_attributes(attributes, product_id)
    return Product(id=product_id, title=title, description=description, brand=brand,
                   category=category, price=price, image=image_path, attributes=attributes)


def _named_by(attribute: str, fields: dict[str, Any]) -> bool:
    """Whether a patch's field replaces a stored attribute: the field itself, or one flattened out of it (a patch
    giving "specs" or "variants" anew, or null, leaves none of the stored specs.* or variants.* behind)."""
    parts = attribute.split(".")
    return any(".".join(parts[:end]) in fields for end in range(1, len(parts) + 1))


def _check_attributes(attributes: dict[str, Any], product_id: str) -> None:
    """Attribute names become product-store columns and filter fields: at most MAX_ATTRIBUTES of them a row,
    each a non-empty name of at most MAX_ATTRIBUTE_NAME_CHARS printable characters."""
    if len(attributes) > MAX_ATTRIBUTES:
        raise _RowError(f"row has {len(attributes):,} attribute fields, more than {MAX_ATTRIBUTES:,}; "
                        "keep the fields shoppers filter or search on", product_id)
    for name in attributes:
        if not name.strip() or len(name) > MAX_ATTRIBUTE_NAME_CHARS or CONTROL.search(name):
            raise _RowError(f"attribute name {name[:40]!r} is empty, longer than {MAX_ATTRIBUTE_NAME_CHARS} "
                            "characters or has a control character; rename the column", product_id)


def _map_fields(row: dict[str, Any], field_map: dict[str, list[str]]) -> tuple[dict[str, Any], set[str], dict[str, Any]]:
    """(canonical values, canonical fields the row names even as null, the remaining columns)."""
    row = dict(row)
    mapped: dict[str, Any] = {}
    named: set[str] = set()
    for canonical, sources in field_map.items():
        if any(source in row for source in sources):
            named.add(canonical)
        values = [row.pop(source) for source in sources if source in row]
        values = [value for value in values if not _is_missing(value)]
        if not values:
            continue
        if canonical == "category":
            mapped[canonical] = [item for value in values for item in _as_list(value)]
        elif len(values) == 1:
            mapped[canonical] = values[0]
        else:
            mapped[canonical] = " ".join(_text(value, canonical, lists=True) for value in values)
    for canonical in CANONICAL_FIELDS:
        if canonical not in mapped and canonical in row and canonical not in field_map:
            named.add(canonical)
            mapped[canonical] = row.pop(canonical)
    return mapped, named, row


def relative_image_path(image: Any) -> bool:
    """Whether a row's image is a relative file path (read against its catalog's folder): not a URL, and no
    NUL (a path with one cannot be resolved: `watch` ended in "ValueError: embedded null byte")."""
    return (isinstance(image, str) and bool(image.strip()) and "\0" not in image and not URL.match(image.strip())
            and not Path(image.strip()).is_absolute())


def _image_path(image: Any, base_dir: Path, product_id: str) -> str | None:
    """An image path made absolute against the catalog's folder (None when the row has none)."""
    if _is_missing(image):
        return None
    if not isinstance(image, str):
        raise _RowError(f"image must be a file path (text), got {_kind(image)}", product_id)
    if "\0" in image:  # "must be a file path (text), got str" said nothing of the NUL no file name can hold
        raise _RowError(f"image path {one_line(image)[:80]} holds a NUL character, which no file name can; "
                        "give the file's path", product_id)
    if URL.match(image.strip()):
        return image.strip()  # kept as written: encoding reports it as an image it does not download
    candidate = Path(image.strip())
    return str(candidate if candidate.is_absolute() else (base_dir / candidate))


def _is_missing(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and not value.strip()


def _clean_id(value: Any) -> str | None:
    """Ids are text or whole numbers (a float such as 12.0 is the id "12"); other types are not ids."""
    if _is_missing(value):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, (dict, list, bool)):
        raise _RowError(f"id must be text or a number, got {_kind(value)}")
    text = str(value).strip()
    return text or None


def _kind(value: Any) -> str:
    return {bool: "true/false", list: "a list", dict: "an object"}.get(type(value), type(value).__name__)


_MONEY = r"(?:[$€£¥₹]|rs\.?|inr|usd|eur|gbp|aud|cad|chf|jpy|cny|sek|nok|dkk|pln|brl|mxn|zar)"
CURRENCY = re.compile(rf"^{_MONEY}?\s*(.*?)\s*{_MONEY}?$", re.IGNORECASE)
URL = re.compile(r"^[a-z][a-z0-9+.-]*://", re.IGNORECASE)
THOUSANDS = re.compile(r"^\d{1,3}(?:,\d{3})+(?:\.\d+)?$")
LAKHS = re.compile(r"^\d{1,2}(?:,\d{2})+,\d{3}(?:\.\d+)?$")  # Indian grouping: "1,00,000", "12,34,567.50"
DECIMAL_COMMA = re.compile(r"^\d+,\d{1,2}$")
DOTTED_DECIMAL_COMMA = re.compile(r"^\d{1,3}(?:\.\d{3})+,\d{1,2}$")  # "1.299,50": thousands dots, a decimal comma


def price_number(text: str) -> float:
    """A price written as text: "1299", "1,299.50", "$19.99", "Rs. 999", "₹ 1,00,000" (Indian grouping),
    "19,99 EUR" and "1.299,50 €" (a decimal comma); ValueError for anything else."""
    number = CURRENCY.match(text.strip()).group(1)
    if THOUSANDS.match(number) or LAKHS.match(number):
        number = number.replace(",", "")
    elif DECIMAL_COMMA.match(number):
        number = number.replace(",", ".")
    elif DOTTED_DECIMAL_COMMA.match(number):
        number = number.replace(".", "").replace(",", ".")
    return float(number)


def _clean_price(value: Any, product_id: str) -> float | None:
    if _is_missing(value):
        return None
    if isinstance(value, bool):
        raise _RowError(f"price {value!r} is not a number", product_id)
    try:
        price = price_number(value) if isinstance(value, str) else float(value)
    except (TypeError, ValueError):
        raise _RowError(f"price {value!r} is not a number", product_id) from None
    if not math.isfinite(price):
        raise _RowError(f"price {value!r} is not a finite number", product_id)
    if price < 0:
        raise _RowError(f"price {value!r} is negative", product_id)
    if price > MAX_PRICE:
        raise _RowError(f"price {value!r} is larger than {MAX_PRICE:,.0f}; check its unit", product_id)
    return abs(price)  # -0.0 is 0


def _text(value: Any, name: str = "", lists: bool = False) -> str:
    """The text of a text field. Rule: text, or a number (its decimal form); description and brand
    may also be a list of those (joined with spaces). True/false, objects and nested lists are refused."""
    if _is_missing(value):
        return ""
    if isinstance(value, list) and lists:
        return " ".join(_text(item, name) for item in value if not _is_missing(item)).strip()
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ValueError(f"{name or 'field'} must be text, got {_kind(value)}")
    return str(value).strip()


def _as_list(value: Any) -> list[str]:
    """Categories: a list stays a list; a string splits on '>' or '|' paths."""
    if _is_missing(value):
        return []
    if isinstance(value, (list, tuple)):
        return [_text(item, "category") for item in value if not _is_missing(item)]
    if isinstance(value, (bool, dict)):
        raise ValueError(f"category must be text or a list, got {_kind(value)}")
    text = str(value)
    for separator in (">", "|"):
        if separator in text:
            return [part.strip() for part in text.split(separator) if part.strip()]
    return [text.strip()]


def _flatten_into(target: dict[str, Any], key: str, value: Any) -> None:
    if _is_missing(value):
        return
    if isinstance(value, dict):
        for sub_key, sub_value in value.items():
            _flatten_into(target, f"{key}.{sub_key}", sub_value)
        return
    if isinstance(value, (list, tuple)):
        lists: dict[str, list[Any]] = {}
        _collect_list(lists, key, value)
        target.update(lists)
        return
    if isinstance(value, str):
        value = value.strip()
        if value.upper() == "NA":
            return
    target[key] = value


def _collect_list(lists: dict[str, list[Any]], key: str, value: Any) -> None:
    """A list's values under `key`, those of lists inside it too; an object in it is flattened like one outside a
    list, each of its fields becoming the list of its values across the objects: "variants": [{"size": "M"},
    {"size": "L"}] is variants.size = ["M", "L"] (such fields were dropped unseen, in JSON and Parquet alike)."""
    if _is_missing(value):
        return
    if isinstance(value, dict):
        for sub_key, sub_value in value.items():
            _collect_list(lists, f"{key}.{sub_key}", sub_value)
    elif isinstance(value, (list, tuple)):
        for item in value:
            _collect_list(lists, key, item)
    else:
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        lists.setdefault(key, []).append(value if number else str(value).strip())


def write_rejects(path: Path, rejects: list[Reject]) -> None:
    """Write rejected rows as JSONL (atomically) so a user can fix and re-run them."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        for reject in rejects:
            handle.write(json.dumps(reject.to_json(), ensure_ascii=False) + "\n")
    tmp.replace(path)
