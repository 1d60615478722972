"""Read console pages the way a browser without JavaScript does: forms, their fields, the navigation.

Tests submit the forms a page really shows (action, method, hidden CSRF token, selected options)
instead of hand-building POST data, so a form that only works with JavaScript fails here.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from html.parser import HTMLParser


@dataclass
class Form:
    action: str
    method: str
    fields: dict[str, str] = field(default_factory=dict)
    selects: dict[str, list[str]] = field(default_factory=dict)
    buttons: list[str] = field(default_factory=list)

    def submit(self, client, page_url: str, **changes: str):
        """POST (or GET) the form as a browser would, with some fields changed."""
        data = {**self.fields, **changes}
        url = self.action or page_url
        if self.method == "post":
            return client.post(url, data)
        return client.get(url, data)


class _FormParser(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.forms: list[Form] = []
        self._form: Form | None = None
        self._select: str | None = None
        self._select_first: str | None = None
        self._select_chosen: str | None = None
        self._button: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        a = {k: (v if v is not None else "") for k, v in attrs}
        if tag == "form":
            self._form = Form(action=a.get("action", ""), method=a.get("method", "get").lower())
            self.forms.append(self._form)
        elif self._form is None:
            return
        elif tag == "input" and a.get("name"):
            kind = a.get("type", "text").lower()
            if kind in {"checkbox", "radio"} and "checked" not in a:
                return
            if kind not in {"submit", "button", "image"}:
                self._form.fields[a["name"]] = a.get("value", "")
        elif tag == "textarea" and a.get("name"):
            self._form.fields[a["name"]] = ""
        elif tag == "select" and a.get("name"):
            self._select, self._select_first, self._select_chosen = a["name"], None, None
            self._form.selects[a["name"]] = []
        elif tag == "option" and self._select is not None:
            value = a.get("value", "")
            self._form.selects[self._select].append(value)
            if self._select_first is None:
                self._select_first = value
            if "selected" in a:
                self._select_chosen = value
        elif tag == "button":
            self._button = []

    def handle_data(self, data):
        if self._button is not None:
            self._button.append(data)

    def handle_endtag(self, tag):
        if tag == "form":
            self._form = None
        elif tag == "select" and self._select is not None and self._form is not None:
            chosen = self._select_chosen if self._select_chosen is not None else self._select_first
            self._form.fields[self._select] = chosen or ""
            self._select = None
        elif tag == "button" and self._button is not None:
            if self._form is not None:
                self._form.buttons.append(" ".join("".join(self._button).split()))
            self._button = None


def forms_of(response) -> list[Form]:
    parser = _FormParser()
    parser.feed(response.content.decode())
    return parser.forms


def form_with_button(response, label: str, action: str | None = None) -> Form:
    """The one form holding a submit button labelled `label` (and posting to `action`, if given)."""
    found = [f for f in forms_of(response) if label in f.buttons and (action is None or f.action == action)]
    assert len(found) == 1, f"expected one form with a {label!r} button, found {len(found)}"
    return found[0]


def nav_links(response) -> dict[str, str]:
    """The console's navigation as {section name: path}, in order."""
    match = re.search(r'<nav class="sidebar".*?</nav>', response.content.decode(), re.S)
    assert match, "the page has no section navigation"
    return {
        html.unescape(text).strip(): html.unescape(href)
        for href, text in re.findall(r'<a href="([^"]+)"[^>]*>([^<]+)</a>', match.group(0))
    }


def nav_sections(response) -> list[str]:
    """The section names in the console's navigation, in order."""
    return list(nav_links(response))
