"""Field types of a collection and their compilation to JSON Schema.

A collection's `fields` is an ordered list of field definitions (dicts). `field_definitions_clean`
validates what an Admin or partner sends; `collection_json_schema` compiles the list to the JSON
Schema every record write is validated against (cached per collection and schema version).
"""

from __future__ import annotations

import re
import secrets
from datetime import date, datetime
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

from django.core.validators import EmailValidator
from jsonschema import Draft202012Validator, FormatChecker

FIELD_TYPES = {
    "text": "Text",
    "long_text": "Long text",
    "number": "Number",
    "integer": "Integer",
    "boolean": "Yes / no",
    "date": "Date",
    "datetime": "Date and time",
    "choice": "Choice",
    "email": "E-mail",
    "url": "URL",
    "reference": "Reference",
    "json": "JSON",
}
KEY_RE = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
RECORD_ID_RE = r"^[A-Za-z0-9_-]{1,64}$"
RESERVED_KEYS = frozenset({"id", "version", "created_at", "updated_at", "deleted", "collection", "object", "livemode"})
# Words the record filters and list parameters give a meaning (`f__contains`, `?q=`, `?limit=`): a
# field of that name could not be filtered unambiguously. Checked for new fields only.
FILTER_WORDS = frozenset(
    {"eq", "ne", "contains", "gt", "gte", "lt", "lte", "in", "isnull"}
    | {"q", "limit", "starting_after", "ending_before", "updated_since", "order_by", "sort", "page", "format"}
)


def key_problem(key: str) -> str | None:
    """Why `key` cannot name a new field (the same rule for the console and the API), else None."""
    if not KEY_RE.fullmatch(key):
        return "Start with a lowercase letter; use lowercase letters, digits and _ (at most 63)."
    if "__" in key:
        return "Use single underscores: “__” separates a key from a filter."
    if key in RESERVED_KEYS or key in FILTER_WORDS:
        return f"`{key}` is reserved; choose another key."
    return None


TEXT_MAX = 2000
LONG_TEXT_MAX = 100_000


class FieldDefinitionError(ValueError):
    def __init__(self, message: str, *, param: str = "fields"):
        super().__init__(message)
        self.message, self.param = message, param


def _fmt_date(value: object) -> bool:
    if not isinstance(value, str):
        return True
    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return len(value) == 10


def _fmt_datetime(value: object) -> bool:
    if not isinstance(value, str):
        return True
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False
    return parsed.tzinfo is not None and "T" in value


def _fmt_email(value: object) -> bool:
    if not isinstance(value, str):
        return True
    try:
        EmailValidator()(value)
    except Exception:
        return False
    return True


def _fmt_url(value: object) -> bool:
    if not isinstance(value, str):
        return True
    try:
        parts = urlsplit(value)
    except ValueError:
        return False
    return parts.scheme in {"http", "https"} and bool(parts.netloc) and " " not in value


FORMATS = FormatChecker(formats=())
FORMATS.checks("date")(_fmt_date)
FORMATS.checks("date-time")(_fmt_datetime)
FORMATS.checks("email")(_fmt_email)
FORMATS.checks("uri")(_fmt_url)


def storable(value: Any) -> bool:
    """Whether every text in a JSON value (keys included) can be stored: PostgreSQL's text and jsonb
    refuse the NUL character, so both runtimes refuse it alike."""
    if isinstance(value, str):
        return "\x00" not in value
    if isinstance(value, dict):
        return all(storable(k) and storable(v) for k, v in value.items())
    if isinstance(value, list):
        return all(storable(v) for v in value)
    return True


def field_id_new() -> str:
    return "fld_" + secrets.token_hex(6)


def field_definitions_clean(raw: Any, *, existing: list[dict] | None = None) -> list[dict]:
    """Validate and normalise a list of field definitions; keeps ids of fields that already exist."""
    if not isinstance(raw, list):
        raise FieldDefinitionError("`fields` must be a list of field definitions.")
    if len(raw) > 200:
        raise FieldDefinitionError("A collection holds at most 200 fields.")
    by_id = {f["id"]: f for f in existing or []}
    seen: set[str] = set()
    out = []
    for i, item in enumerate(raw):
        param = f"fields[{i}]"
        if not isinstance(item, dict):
            raise FieldDefinitionError("Each field must be an object.", param=param)
        key = item.get("key")
        if not isinstance(key, str) or not KEY_RE.fullmatch(key):
            raise FieldDefinitionError(
                "`key` must start with a lowercase letter and use lowercase letters, digits and _ (max 63).",
                param=f"{param}.key",
            )
        if key in RESERVED_KEYS:
            raise FieldDefinitionError(f"`{key}` is reserved; choose another key.", param=f"{param}.key")
        problem = key_problem(key) if item.get("id") is None else None
        if problem and not any(f["key"] == key for f in by_id.values()):
            raise FieldDefinitionError(problem, param=f"{param}.key")
        if key in seen:
            raise FieldDefinitionError(f"Two fields use the key `{key}`.", param=f"{param}.key")
        seen.add(key)
        ftype = item.get("type")
        if ftype not in FIELD_TYPES:
            raise FieldDefinitionError(f"`type` must be one of: {', '.join(FIELD_TYPES)}.", param=f"{param}.type")
        fid = item.get("id")
        if fid is not None and fid not in by_id:
            raise FieldDefinitionError("Unknown field id.", param=f"{param}.id")
        if fid is not None and by_id[fid]["type"] != ftype:
            raise FieldDefinitionError("A field's type cannot change; add a new field instead.", param=f"{param}.type")
        label = item.get("label", key)
        description = item.get("description", "")
        if not isinstance(label, str) or len(label) > 120 or not isinstance(description, str) or len(description) > 500:
            raise FieldDefinitionError("`label` (≤120) and `description` (≤500) must be text.", param=param)
        if not storable(item):
            raise FieldDefinitionError("Texts cannot contain the NUL character.", param=param)
        field = {
            "id": fid or field_id_new(),
            "key": key,
            "label": label.strip() or key,
            "type": ftype,
            "required": bool(item.get("required", False)),
            "unique": bool(item.get("unique", False)),
            "description": description,
        }
        if ftype == "choice":
            choices = item.get("choices")
            if (
                not isinstance(choices, list)
                or not choices
                or len(choices) > 500
                or not all(isinstance(c, str) and 0 < len(c) <= 200 for c in choices)
                or len(set(choices)) != len(choices)
            ):
                raise FieldDefinitionError(
                    "`choices` must be a list of distinct, non-empty texts.", param=f"{param}.choices"
                )
            field["choices"] = choices
        if ftype == "reference":
            target = item.get("collection")
            if not isinstance(target, str) or not target:
                raise FieldDefinitionError(
                    "A reference field names its target collection by slug.", param=f"{param}.collection"
                )
            field["collection"] = target
        if field["unique"] and ftype in {"json", "long_text", "boolean"}:
            raise FieldDefinitionError(f"A {ftype} field cannot be unique.", param=f"{param}.unique")
        if "default" in item and item["default"] is not None:
            field["default"] = item["default"]
            errors = list(
                Draft202012Validator(_value_schema(field), format_checker=FORMATS).iter_errors(item["default"])
            )
            if errors:
                raise FieldDefinitionError(f"Invalid default: {errors[0].message}", param=f"{param}.default")
        out.append(field)
    return out


def _value_schema(field: dict) -> dict:
    t = field["type"]
    if t == "text":
        return {"type": "string", "maxLength": TEXT_MAX}
    if t == "long_text":
        return {"type": "string", "maxLength": LONG_TEXT_MAX}
    if t == "number":
        return {"type": "number"}
    if t == "integer":
        return {"type": "integer", "minimum": -(2**53) + 1, "maximum": 2**53 - 1}
    if t == "boolean":
        return {"type": "boolean"}
    if t == "date":
        return {"type": "string", "format": "date"}
    if t == "datetime":
        return {"type": "string", "format": "date-time"}
    if t == "choice":
        return {"type": "string", "enum": field["choices"]}
    if t == "email":
        return {"type": "string", "format": "email", "maxLength": 254}
    if t == "url":
        return {"type": "string", "format": "uri", "maxLength": 2000}
    if t == "reference":
        return {"type": "string", "pattern": RECORD_ID_RE}
    return {}  # json: anything


def json_schema_compile(fields: list[dict]) -> dict:
    properties = {}
    for f in fields:
        value = _value_schema(f)
        if f.get("description"):
            value = {**value, "description": f["description"]}
        properties[f["key"]] = value if f["required"] or f["type"] == "json" else {"anyOf": [value, {"type": "null"}]}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "properties": properties,
        "required": [f["key"] for f in fields if f["required"]],
        "additionalProperties": False,
    }


@lru_cache(maxsize=512)
def _validator(cache_key: tuple[int, int, str], schema_json: str) -> Draft202012Validator:
    import json

    return Draft202012Validator(json.loads(schema_json), format_checker=FORMATS)


def data_errors(fields: list[dict], data: Any, *, cache_key: tuple[int, int, str]) -> list[dict]:
    """Validation errors as [{param, code, message}] (empty when valid)."""
    import json

    if not isinstance(data, dict):
        return [{"param": "data", "code": "invalid_type", "message": "`data` must be an object."}]
    validator = _validator(cache_key, json.dumps(json_schema_compile(fields), sort_keys=True))
    errors = [
        {"param": f"data.{key}", "code": "invalid_character", "message": f"`{key}` cannot contain the NUL character."}
        for key, value in data.items()
        if not (storable(key) and storable(value))
    ]
    if errors:
        return errors
    for err in sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path)):
        path = ".".join(str(p) for p in err.absolute_path)
        if err.validator == "required":
            missing = err.message.split("'")[1] if "'" in err.message else ""
            errors.append({"param": f"data.{missing}", "code": "required", "message": f"`{missing}` is required."})
        elif err.validator == "additionalProperties":
            extra = sorted(set(data) - {f["key"] for f in fields})
            for key in extra:
                errors.append({"param": f"data.{key}", "code": "unknown_field", "message": f"No field `{key}`."})
        else:
            field = next((f for f in fields if f["key"] == path.split(".")[0]), None)
            code = "invalid_" + (field["type"] if field else "value")
            message = _friendly(field, err)
            errors.append({"param": f"data.{path}", "code": code, "message": message})
    return errors


def _friendly(field: dict | None, err) -> str:
    if field is None:
        return err.message
    label = field["key"]
    t = field["type"]
    expected = {
        "text": "text",
        "long_text": "text",
        "number": "a number",
        "integer": "a whole number",
        "boolean": "true or false",
        "date": "a date like 2026-01-31",
        "datetime": "a date and time with zone like 2026-01-31T09:30:00Z",
        "choice": "one of: " + ", ".join(field.get("choices", [])[:10]),
        "email": "an e-mail address",
        "url": "an http(s) URL",
        "reference": "a record id",
        "json": "JSON",
    }[t]
    if err.validator == "maxLength":
        return f"`{label}` is too long (max {err.validator_value} characters)."
    return f"`{label}` must be {expected}."
