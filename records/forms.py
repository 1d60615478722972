"""Console forms for collections, their fields, records and CSV imports.

Forms turn what a browser posts into the plain values the write spine takes; the spine validates
again and its typed errors come back as form errors (`form_errors_from`).
"""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

from django import forms
from django.core.exceptions import ValidationError

from records.errors import RecordError, ValidationFailed
from records.fields import FIELD_TYPES, LONG_TEXT_MAX, TEXT_MAX, key_problem
from records.imports import CellError, cell_parse
from records.models import Collection
from records.services import SLUG_RE

INT_LIMIT = 2**53 - 1
_PARAM_FIELD = re.compile(r"^fields\[\d+\]\.?(\w*)$")


def message_plain(message: str) -> str:
    """Service messages name keys as `key`; the console shows them in quotes."""
    return re.sub(r"`([^`]*)`", r"“\1”", message)


def form_errors_from(form: forms.Form, exc: RecordError, *, field_for=None) -> None:
    """Put a spine error on the form: `data.<key>` (or what `field_for(param)` maps) to that field."""
    errors = exc.errors if isinstance(exc, ValidationFailed) else [{"param": exc.param, "message": exc.message}]
    for error in errors:
        param = error.get("param") or ""
        name = field_for(param) if field_for else (param.split(".")[1] if param.startswith("data.") else None)
        target = name if name in form.fields else None
        if target is not None and target in form.errors and message_plain(error["message"]) in form.errors[target]:
            continue
        form.add_error(target, message_plain(error["message"]))


# --- collections and fields -----------------------------------------------------------------------


class CollectionCreateForm(forms.Form):
    name = forms.CharField(max_length=120)
    slug = forms.CharField(
        max_length=63,
        required=False,
        help_text="Used in URLs and the API. Lowercase letters, digits, - and _; left empty, it comes from the name.",
    )
    description = forms.CharField(required=False, max_length=2000, widget=forms.Textarea(attrs={"rows": 2}))

    def clean_slug(self) -> str:
        slug = self.cleaned_data["slug"].strip().lower()
        if slug and not SLUG_RE.match(slug):
            raise ValidationError("Start with a letter; use lowercase letters, digits, - and _ (max 63).")
        return slug

    def clean(self):
        data = super().clean()
        if not data.get("slug") and data.get("name"):
            from django.utils.text import slugify

            slug = slugify(data["name"])[:63].strip("-")
            if not slug or not slug[0].isalpha():
                slug = ("c-" + slug)[:63].strip("-")
            if not SLUG_RE.match(slug):
                self.add_error("slug", "Choose a slug: the name gives none.")
            data["slug"] = slug
        return data


class CollectionDetailsForm(forms.Form):
    name = forms.CharField(max_length=120)
    description = forms.CharField(required=False, max_length=2000, widget=forms.Textarea(attrs={"rows": 2}))


class CollectionDeleteForm(forms.Form):
    """Deleting a collection that holds records: its name typed again, so a slip cannot do it."""

    confirm = forms.CharField(label="Type the collection's name to confirm", max_length=200)

    def __init__(self, *args, collection: Collection, **kwargs):
        super().__init__(*args, **kwargs)
        self.collection = collection
        self.fields["confirm"].widget.attrs.update({"autocomplete": "off", "spellcheck": "false"})

    def clean_confirm(self) -> str:
        typed = self.cleaned_data["confirm"].strip()
        if typed != self.collection.name.strip():
            raise ValidationError(f"Type “{self.collection.name}” exactly as it is written, to confirm.")
        return typed


class FieldForm(forms.Form):
    """One field definition. For an existing field the type is fixed (the service refuses a change)."""

    key = forms.CharField(
        max_length=63,
        help_text="Lowercase letters, digits and _, starting with a letter. Renaming keeps the data.",
    )
    label = forms.CharField(max_length=120, required=False)
    type = forms.ChoiceField(choices=list(FIELD_TYPES.items()))
    required = forms.BooleanField(required=False)
    unique = forms.BooleanField(required=False, help_text="No two records may share a value (not case-sensitive).")
    default = forms.CharField(
        required=False,
        max_length=2000,
        help_text="Used when a new record leaves the field empty.",
    )
    description = forms.CharField(required=False, max_length=500, widget=forms.Textarea(attrs={"rows": 2}))
    choices = forms.CharField(
        required=False,
        max_length=50_000,
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text="Choice fields: one option per line.",
    )
    collection = forms.ChoiceField(
        required=False, label="Target collection", help_text="Reference fields: the collection they point to."
    )

    def __init__(self, *args, collection: Collection, existing: dict | None = None, targets=(), **kwargs):
        self.collection, self.existing = collection, existing
        if existing is not None and "initial" not in kwargs:
            kwargs["initial"] = field_form_initial(existing)
        super().__init__(*args, **kwargs)
        self.fields["collection"].choices = [("", "—")] + [(c.slug, f"{c.name} ({c.slug})") for c in targets]
        if existing is not None:
            self.fields["type"].disabled = True
            self.fields["type"].help_text = "A field's type cannot change; add a new field instead."

    def clean_key(self) -> str:
        key = self.cleaned_data["key"].strip()
        problem = key_problem(key)
        if problem and (self.existing is None or self.existing.get("key") != key):
            raise ValidationError(problem)
        return key

    def clean(self):
        data = super().clean()
        ftype = data.get("type")
        if ftype == "choice":
            choices = [c.strip() for c in (data.get("choices") or "").splitlines() if c.strip()]
            if not choices:
                self.add_error("choices", "List at least one option, one per line.")
            elif len(set(choices)) != len(choices):
                self.add_error("choices", "Each option may appear once.")
            data["choices_list"] = choices
        if ftype == "reference" and not data.get("collection"):
            self.add_error("collection", "Choose the collection this field points to.")
        raw_default = (data.get("default") or "").strip()
        data["default_value"] = None
        if raw_default and ftype:
            spec = {"type": ftype, "key": data.get("key", ""), "choices": data.get("choices_list", [])}
            try:
                data["default_value"] = cell_parse(spec, raw_default, tz=ZoneInfo("UTC"))
            except CellError as exc:
                self.add_error("default", exc.message)
        return data

    def definition(self) -> dict[str, Any]:
        """The field definition for the service (an existing field keeps its id and type)."""
        data = self.cleaned_data
        ftype = self.existing["type"] if self.existing else data["type"]
        out: dict[str, Any] = {
            "key": data["key"],
            "label": data.get("label") or data["key"],
            "type": ftype,
            "required": data.get("required", False),
            "unique": data.get("unique", False),
            "description": data.get("description", ""),
        }
        if self.existing is not None:
            out["id"] = self.existing["id"]
        if ftype == "choice":
            out["choices"] = data.get("choices_list", [])
        if ftype == "reference":
            out["collection"] = data.get("collection")
        if data.get("default_value") is not None:
            out["default"] = data["default_value"]
        return out

    @staticmethod
    def field_for(param: str) -> str | None:
        """`fields[3].choices` → `choices`; `fields` (the list as a whole) → the form itself."""
        match = _PARAM_FIELD.match(param or "")
        if not match:
            return None
        name = match.group(1)
        return name if name and name != "id" else None


def field_form_initial(spec: dict) -> dict[str, Any]:
    default = spec.get("default")
    if isinstance(default, bool):
        default = "true" if default else "false"
    elif isinstance(default, (dict, list)):
        default = json.dumps(default)
    return {
        "key": spec["key"],
        "label": spec.get("label", spec["key"]),
        "type": spec["type"],
        "required": spec.get("required", False),
        "unique": spec.get("unique", False),
        "default": "" if default is None else str(default),
        "description": spec.get("description", ""),
        "choices": "\n".join(spec.get("choices", [])),
        "collection": spec.get("collection", ""),
    }


# --- records --------------------------------------------------------------------------------------


class NumberField(forms.CharField):
    """A JSON number: whole numbers stay integers, others become floats."""

    widget = forms.NumberInput

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.widget.attrs.setdefault("step", "any")

    def to_python(self, value):
        value = super().to_python(value)
        if value in self.empty_values:
            return None
        try:
            number = Decimal(value.replace(",", "") if re.fullmatch(r"-?\d{1,3}(,\d{3})+(\.\d+)?", value) else value)
        except InvalidOperation as exc:
            raise ValidationError("Enter a number.", code="invalid") from exc
        if not number.is_finite():
            raise ValidationError("Enter a number.", code="invalid")
        if number == number.to_integral_value() and "." not in value and "e" not in value.lower():
            if abs(number) > INT_LIMIT:
                raise ValidationError("Enter a smaller number.", code="invalid")
            return int(number)
        if not math.isfinite(float(number)):
            raise ValidationError("Enter a smaller number.", code="invalid")
        return float(number)


class WorkspaceDateTimeField(forms.Field):
    """`<input type=datetime-local>` in the workspace's time zone; the record stores UTC (`…Z`)."""

    widget = forms.DateTimeInput
    FORMATS = ("%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S")

    def __init__(self, *, tz: ZoneInfo, **kwargs):
        self.tz = tz
        super().__init__(**kwargs)
        self.widget = forms.DateTimeInput(attrs={"type": "datetime-local", "step": "1"})

    def prepare_value(self, value):
        if isinstance(value, str) and value and "T" in value:
            try:
                instant = datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                return value
            if instant.tzinfo is not None:
                return instant.astimezone(self.tz).strftime("%Y-%m-%dT%H:%M:%S")
        return value

    def to_python(self, value):
        value = (value or "").strip()
        if not value:
            return None
        for fmt in self.FORMATS:
            try:
                naive = datetime.strptime(value, fmt)
            except ValueError:
                continue
            instant = naive.replace(tzinfo=self.tz).astimezone(UTC)
            return instant.strftime("%Y-%m-%dT%H:%M:%SZ")
        raise ValidationError("Enter a date and time.", code="invalid")


class RecordForm(forms.Form):
    """A record's fields as inputs of the right kind. Field names are the keys (prefixed `f-` in HTML)."""

    prefix = "f"

    def __init__(
        self,
        *args,
        collection: Collection,
        tz: ZoneInfo,
        reference_options: dict[str, list[tuple[str, str]] | None] | None = None,
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        self.collection = collection
        self.tz = tz
        for spec in collection.fields:
            options = (reference_options or {}).get(spec["key"])
            self.fields[spec["key"]] = self._input(spec, options)

    def _input(self, spec: dict, options: list[tuple[str, str]] | None) -> forms.Field:
        t = spec["type"]
        common = {
            "label": spec.get("label") or spec["key"],
            "required": bool(spec.get("required")) and t != "boolean",
            "help_text": spec.get("description", ""),
        }
        if t == "text":
            return forms.CharField(max_length=TEXT_MAX, **common)
        if t == "long_text":
            return forms.CharField(max_length=LONG_TEXT_MAX, widget=forms.Textarea(attrs={"rows": 4}), **common)
        if t == "number":
            return NumberField(**common)
        if t == "integer":
            return forms.IntegerField(min_value=-INT_LIMIT, max_value=INT_LIMIT, **common)
        if t == "boolean":
            return forms.BooleanField(**common)
        if t == "date":
            return forms.DateField(widget=forms.DateInput(attrs={"type": "date"}), input_formats=["%Y-%m-%d"], **common)
        if t == "datetime":
            return WorkspaceDateTimeField(tz=self.tz, **common)
        if t == "choice":
            return forms.ChoiceField(choices=[("", "—")] + [(c, c) for c in spec.get("choices", [])], **common)
        if t == "email":
            return forms.EmailField(max_length=254, **common)
        if t == "url":
            return forms.URLField(max_length=2000, assume_scheme="https", **common)
        if t == "reference":
            if options is not None:
                return forms.ChoiceField(choices=[("", "—"), *options], **common)
            common["help_text"] = (common["help_text"] + " " if common["help_text"] else "") + (
                f"The id of a record in “{spec['collection']}”."
            )
            return forms.RegexField(regex=r"^[A-Za-z0-9_-]{1,64}$", max_length=64, **common)
        return forms.JSONField(
            widget=forms.Textarea(attrs={"rows": 4, "spellcheck": "false"}),
            validators=[_json_storable],
            **common,
        )

    def record_data(self, base: dict | None = None) -> dict[str, Any]:
        """The record's full new data. A value equal to the base's (e.g. the same instant written
        differently) keeps the base's spelling, so saving an untouched form changes nothing."""
        base = base or {}
        out: dict[str, Any] = {}
        for spec in self.collection.fields:
            key = spec["key"]
            value = self.cleaned_data.get(key)
            if spec["type"] == "date" and value is not None:
                value = value.isoformat()
            if spec["type"] == "boolean" and value is False and key not in base:
                value = None  # an unticked box on a record that never had the field: leave it unset
            if value in (None, "") and spec["type"] != "json":
                continue
            if value is None:
                continue
            if key in base and _same_value(spec["type"], base[key], value):
                value = base[key]
            out[key] = value
        return out


def _json_storable(value: Any) -> None:
    """What PostgreSQL's jsonb refuses: NaN/Infinity and NUL characters in text."""
    try:
        text = json.dumps(value, allow_nan=False)
    except ValueError as exc:
        raise ValidationError("Numbers in JSON must be finite (no NaN or Infinity).", code="invalid") from exc
    if "\\u0000" in text:
        raise ValidationError("Text in JSON cannot hold a NUL character (\\u0000).", code="null_characters_not_allowed")


def _same_value(ftype: str, old: Any, new: Any) -> bool:
    if ftype == "datetime" and isinstance(old, str) and isinstance(new, str):
        try:
            return datetime.fromisoformat(old.replace("Z", "+00:00")) == datetime.fromisoformat(
                new.replace("Z", "+00:00")
            )
        except ValueError:
            return False
    if ftype == "number":
        return isinstance(old, (int, float)) and not isinstance(old, bool) and old == new
    return type(old) is type(new) and old == new


# --- CSV import ------------------------------------------------------------------------------------

IMPORT_MODES = [
    ("all", "All or nothing: import only if every row is valid"),
    ("skip", "Skip bad rows: import the valid rows, report the others"),
]


class ImportUploadForm(forms.Form):
    file = forms.FileField(label="CSV file", help_text="UTF-8 (or Windows-1252), with a header row.")

    def __init__(self, *args, max_bytes: int, **kwargs):
        super().__init__(*args, **kwargs)
        self.max_bytes = max_bytes
        self.fields["file"].widget.attrs["accept"] = ".csv,text/csv"

    def clean_file(self):
        upload = self.cleaned_data["file"]
        if upload.size == 0:
            raise ValidationError("The file is empty.")
        if upload.size > self.max_bytes:
            raise ValidationError(f"The file is larger than {self.max_bytes // (1024 * 1024)} MB; split it.")
        return upload


class ImportMappingForm(forms.Form):
    """One select per CSV column: the field it fills, the record id, or nothing."""

    mode = forms.ChoiceField(choices=IMPORT_MODES, initial="all", widget=forms.RadioSelect, label="If a row is bad")

    def __init__(self, *args, collection: Collection, header: list[str], guess: dict[int, str], **kwargs):
        super().__init__(*args, **kwargs)
        self.collection, self.header = collection, header
        choices = [("", "— skip this column —"), ("id", "Record id (updates that record)")] + [
            (f["key"], f"{f.get('label') or f['key']} ({f['key']})") for f in collection.fields
        ]
        for i, name in enumerate(header):
            self.fields[f"col_{i}"] = forms.ChoiceField(
                choices=choices, required=False, initial=guess.get(i, ""), label=name or f"Column {i + 1}"
            )

    def column_fields(self):
        return [self[f"col_{i}"] for i in range(len(self.header))]

    def clean(self):
        data = super().clean()
        mapping: dict[int, str] = {}
        seen: dict[str, int] = {}
        for i in range(len(self.header)):
            target = data.get(f"col_{i}") or ""
            if not target:
                continue
            if target in seen:
                self.add_error(f"col_{i}", f"Column {seen[target] + 1} already fills “{target}”.")
                continue
            seen[target] = i
            mapping[i] = target
        if not [t for t in mapping.values() if t != "id"]:
            raise ValidationError("Choose at least one column to import into a field.")
        if "id" not in seen:
            missing = [
                f["key"]
                for f in self.collection.fields
                if f.get("required") and "default" not in f and f["key"] not in seen
            ]
            if missing:
                raise ValidationError("Required fields without a column: " + ", ".join(f"“{k}”" for k in missing) + ".")
        data["mapping"] = mapping
        return data
