"""The records console: collections and their fields, the records table (sort, filter, search, keyset
pages), the record form (typed inputs, inline errors, stale edits merged or shown as conflicts), history,
and who may do what. Pages are driven as a browser without JavaScript does (tests.html_forms), plus the
htmx fragments where the page offers them."""

from __future__ import annotations

import re

import pytest

from audit.models import AuditEvent
from rbac.roles import Role
from records.models import Change, Collection, Record
from records.services import collection_create, collection_update, record_create, record_update
from tests.html_forms import form_with_button, forms_of

HX = {"HTTP_HX_REQUEST": "true"}


def text(response) -> str:
    return response.content.decode()


def table_ids(response) -> list[str]:
    """Record ids in the order the records table shows them."""
    body = re.search(r'<table class="table records".*?</table>', text(response), re.S)
    assert body, "no records table on the page"
    return re.findall(r'<tr data-id="([^"]+)"', body.group(0))


def errors_of(response) -> list[str]:
    return re.findall(r'<p class="error"[^>]*>([^<]*)</p>', text(response))


@pytest.fixture
def as_role(tenant, client_for, make_user, admin_user):
    def make(role: str):
        user = admin_user if role == Role.ADMIN else make_user(role=role)
        return client_for(tenant, user)

    return make


@pytest.fixture
def people(customers, admin_user):
    """Five customers with distinct names, scores and tiers (one without a score)."""
    rows = [
        {"name": "Ada", "email": "ada@x.test", "tier": "pro", "score": 30},
        {"name": "Bob", "email": "bob@x.test", "tier": "free", "score": 10},
        {"name": "Cy", "email": "cy@x.test", "tier": "pro", "score": 20},
        {"name": "Dee", "email": "dee@x.test", "tier": "free"},
        {"name": "Eve", "email": "eve@x.test", "tier": "free", "score": 50, "notes": "VIP customer"},
    ]
    return {row["name"]: record_create(actor=admin_user, collection=customers, data=row) for row in rows}


# --- navigation and roles ----------------------------------------------------------------------------


def test_navigation_records_link_opens_the_collections_list_with_counts(admin_client, people):
    home = admin_client.get("/")
    assert '<a href="/records/"' in text(home)

    page = admin_client.get("/records/")

    assert page.status_code == 200
    assert re.search(r'<a href="/records/"\s+aria-current="page">Records</a>', text(page))
    row = re.search(r'<tr data-slug="customers">.*?</tr>', text(page), re.S).group(0)
    assert "Customers" in row
    assert re.search(r'data-testid="record-count">5<', row)


@pytest.mark.parametrize("role", [Role.VIEWER, Role.ANALYST, Role.MANAGER])
def test_roles_without_collections_manage_read_fields_but_cannot_change_them(as_role, customers, role):
    browser = as_role(role)
    fields_page = browser.get("/records/customers/settings/")
    spec = customers.fields[0]

    assert fields_page.status_code == 200
    assert "<code>name</code>" in text(fields_page)
    assert not forms_of(fields_page) or all(
        "fields" not in f.action for f in forms_of(fields_page) if f.method == "post"
    )
    assert browser.get("/records/").status_code == 200
    assert "Create collection" not in text(browser.get("/records/"))
    for url, data in [
        ("/records/", {"name": "X", "slug": "x"}),
        ("/records/customers/settings/", {"name": "Renamed"}),
        ("/records/customers/settings/fields/", {"add-key": "x", "add-type": "text"}),
        (f"/records/customers/settings/fields/{spec['id']}/", {"key": "renamed", "type": "text"}),
        (f"/records/customers/settings/fields/{spec['id']}/move/", {"direction": "down"}),
        (f"/records/customers/settings/fields/{spec['id']}/remove/", {}),
        ("/records/customers/settings/delete/", {}),
    ]:
        assert browser.post(url, data).status_code == 403, url
    assert browser.get(f"/records/customers/settings/fields/{spec['id']}/").status_code == 403
    customers.refresh_from_db()
    assert [f["key"] for f in customers.fields] == ["name", "email", "tier", "score", "notes"]
    assert customers.name == "Customers"


@pytest.mark.parametrize("role", [Role.VIEWER, Role.ANALYST])
def test_viewer_and_analyst_read_records_but_cannot_edit(as_role, people, role):
    browser = as_role(role)
    ada = people["Ada"]

    table = browser.get("/records/customers/")
    detail = browser.get(f"/records/customers/r/{ada.id}/")

    assert table.status_code == 200 and len(table_ids(table)) == 5
    assert "New record" not in text(table)
    assert detail.status_code == 200
    assert 'data-testid="values"' in text(detail) and "ada@x.test" in text(detail)
    assert not [f for f in forms_of(detail) if f.method == "post" and "r/" in f.action]
    assert browser.get("/records/customers/new/").status_code == 403
    assert browser.post("/records/customers/new/", {"f-name": "Zed"}).status_code == 403
    assert browser.post(f"/records/customers/r/{ada.id}/", {"f-name": "X", "base_version": "1"}).status_code == 403
    assert browser.post(f"/records/customers/r/{ada.id}/delete/", {"base_version": "1"}).status_code == 403
    assert browser.get("/records/customers/import/").status_code == 403
    assert browser.get(f"/records/customers/r/{ada.id}/history/").status_code == 200
    ada.refresh_from_db()
    assert ada.data["name"] == "Ada" and ada.deleted_at is None


def test_export_is_for_analysts_managers_and_admins_not_viewers(as_role, people):
    for role, allowed in [(Role.VIEWER, False), (Role.ANALYST, True), (Role.MANAGER, True), (Role.ADMIN, True)]:
        browser = as_role(role)
        table = text(browser.get("/records/customers/"))
        response = browser.get("/records/customers/export.csv")
        assert (response.status_code == 200) is allowed, role
        assert ('data-testid="export-csv"' in table) is allowed, role
        if not allowed:
            assert response.status_code == 403


def test_manager_edits_records_but_not_fields(as_role, people, customers):
    manager = as_role(Role.MANAGER)
    created = manager.post("/records/customers/new/", {"f-name": "Fay", "f-tier": "pro", "f-score": "7"})

    assert created.status_code == 302
    fay = Record.objects.get(collection=customers, data__name="Fay")
    assert fay.data == {"name": "Fay", "tier": "pro", "score": 7}
    settings = manager.get("/records/customers/settings/")
    assert "Add a field" not in text(settings) and "Edit<span" not in text(settings)


def test_anonymous_visitors_go_to_log_in(anon_client, people):
    for path in ["/records/", "/records/customers/", f"/records/customers/r/{people['Ada'].id}/"]:
        response = anon_client.get(path)
        assert response.status_code == 302 and response["Location"].startswith("/accounts/login/"), path


def test_unknown_collection_record_and_field_are_404(admin_client, people):
    assert admin_client.get("/records/nope/").status_code == 404
    assert admin_client.get("/records/customers/r/NOPE123/").status_code == 404
    assert admin_client.get("/records/customers/settings/fields/fld_nope/").status_code == 404
    assert admin_client.get("/records/customers/export.xml").status_code == 404


# --- collections and fields ---------------------------------------------------------------------------


def test_admin_creates_a_collection_then_adds_fields_without_javascript(admin_client):
    listing = admin_client.get("/records/")
    created = form_with_button(listing, "Create collection").submit(
        admin_client, "/records/", name="Suppliers", slug="", description="Who sells to us"
    )

    assert created.status_code == 302 and created["Location"] == "/records/suppliers/settings/"
    collection = Collection.objects.get(slug="suppliers")
    assert collection.name == "Suppliers" and collection.description == "Who sells to us"

    page = admin_client.get("/records/suppliers/settings/")
    add = form_with_button(page, "Add field")
    added = add.submit(admin_client, "", **{"add-key": "company", "add-label": "Company", "add-type": "text"})
    assert added.status_code == 302
    added = add.submit(
        admin_client,
        "",
        **{"add-key": "status", "add-type": "choice", "add-choices": "new\nactive\n\nactive ", "add-default": "new"},
    )
    assert added.status_code == 400
    assert "Each option may appear once." in errors_of(added)
    added = add.submit(
        admin_client,
        "",
        **{"add-key": "status", "add-type": "choice", "add-choices": "new\nactive", "add-default": "new"},
    )
    assert added.status_code == 302
    collection.refresh_from_db()
    assert [(f["key"], f["type"]) for f in collection.fields] == [("company", "text"), ("status", "choice")]
    assert collection.fields[1]["choices"] == ["new", "active"] and collection.fields[1]["default"] == "new"
    assert AuditEvent.objects.filter(action="collection.updated", target_id=str(collection.pk)).count() == 2


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        ({"add-key": ""}, "This field is required."),
        ({"add-key": "Bad Key"}, "Start with a lowercase letter"),
        ({"add-key": "id"}, "reserved"),
        ({"add-key": "name"}, "Two fields use the key “name”."),
        ({"add-key": "a__b"}, "single underscores"),
        ({"add-key": "x", "add-type": "nope"}, "Select a valid choice"),
        ({"add-key": "x", "add-type": "choice"}, "List at least one option"),
        ({"add-key": "x", "add-type": "reference"}, "Choose the collection"),
        ({"add-key": "x", "add-type": "reference", "add-collection": "ghosts"}, "Select a valid choice"),
        ({"add-key": "x", "add-type": "integer", "add-default": "many"}, "must be a whole number"),
        ({"add-key": "x", "add-type": "json", "add-default": "{oops"}, "must be JSON"),
        ({"add-key": "x", "add-type": "email", "add-default": "not-mail"}, "Invalid default"),
        ({"add-key": "x", "add-type": "boolean", "add-unique": "on"}, "cannot be unique"),
        ({"add-key": "x", "add-type": "text", "add-required": "on"}, "give the field a default"),
        ({"add-key": "x", "add-label": "L" * 121}, "at most 120 characters"),
    ],
)
def test_bad_field_definitions_are_form_errors_not_500(admin_client, people, changes, error):
    data = {"add-key": "x", "add-type": "text", **changes}

    response = admin_client.post("/records/customers/settings/fields/", data)

    assert response.status_code == 400
    assert any(error in e for e in errors_of(response)), errors_of(response)
    assert [f["key"] for f in Collection.objects.get(slug="customers").fields] == [
        "name",
        "email",
        "tier",
        "score",
        "notes",
    ]


def test_bad_collection_input_is_400(admin_client, customers):
    for data, error in [
        ({"name": "", "slug": "x"}, "This field is required."),
        ({"name": "Dup", "slug": "customers"}, "already exists"),
        ({"name": "X", "slug": "9lives"}, "Start with a letter"),
        ({"name": "N" * 121, "slug": "long"}, "at most 120 characters"),
    ]:
        response = admin_client.post("/records/", data)
        assert response.status_code == 400, data
        assert any(error in e for e in errors_of(response)), (data, errors_of(response))
    assert admin_client.post("/records/customers/settings/", {"name": ""}).status_code == 400


def test_renaming_a_field_keeps_its_data_visible_in_the_table(admin_client, people, customers):
    score = customers.field("score")
    edit = admin_client.get(f"/records/customers/settings/fields/{score['id']}/")
    form = form_with_button(edit, "Save field")

    saved = form.submit(admin_client, "", key="points", label="Points")

    assert saved.status_code == 302
    customers.refresh_from_db()
    assert [f["key"] for f in customers.fields] == ["name", "email", "tier", "points", "notes"]
    assert customers.field("points")["id"] == score["id"]
    table = admin_client.get("/records/customers/?sort=-points")
    assert "<a href=" in text(table) and ">Points" in text(table)
    assert table_ids(table)[:4] == [people[n].id for n in ["Eve", "Ada", "Cy", "Bob"]]
    assert re.search(r"<td class=\"num\"[^>]*>\s*50\s*</td>", text(table))
    assert Record.objects.get(pk=people["Eve"].id).data["points"] == 50


def test_field_type_cannot_change_and_rename_errors_stay_on_the_page(admin_client, customers):
    score = customers.field("score")
    url = f"/records/customers/settings/fields/{score['id']}/"

    kept_type = admin_client.post(url, {"key": "score", "type": "text"})
    clash = admin_client.post(url, {"key": "name", "type": "integer"})

    assert kept_type.status_code == 302
    customers.refresh_from_db()
    assert customers.field("score")["type"] == "integer"  # a disabled input: the posted type is ignored
    assert clash.status_code == 400 and "Two fields use the key “name”." in errors_of(clash)


def test_reorder_and_remove_fields_with_confirmation(admin_client, people, customers):
    notes = customers.field("notes")
    tier = customers.field("tier")

    moved = admin_client.post(f"/records/customers/settings/fields/{notes['id']}/move/", {"direction": "up"})
    bad_move = admin_client.post(f"/records/customers/settings/fields/{notes['id']}/move/", {"direction": "sideways"})
    confirm = admin_client.get(f"/records/customers/settings/fields/{tier['id']}/remove/")

    assert moved.status_code == 302 and bad_move.status_code == 400
    customers.refresh_from_db()
    assert [f["key"] for f in customers.fields] == ["name", "email", "tier", "notes", "score"]
    assert confirm.status_code == 200
    assert "5 records have a value in this field" in " ".join(text(confirm).split()).replace("<strong>", "").replace(
        "</strong>", ""
    )
    assert "tier" in customers.fields[2]["key"]  # nothing removed by looking at the confirmation
    removed = form_with_button(confirm, "Remove field").submit(admin_client, "")
    assert removed.status_code == 302
    customers.refresh_from_db()
    assert "tier" not in [f["key"] for f in customers.fields]
    assert all("tier" not in r.data for r in Record.objects.filter(collection=customers))


def test_field_editor_htmx_fragments_edit_inline_and_show_errors_in_place(admin_client, customers):
    tier = customers.field("tier")
    url = f"/records/customers/settings/fields/{tier['id']}/"

    inline = admin_client.get(url, **HX)
    bad = admin_client.post(url, {"key": "Tier!", "type": "choice", "choices": "free\npro"}, **HX)
    good = admin_client.post(url, {"key": "plan", "type": "choice", "choices": "free\npro\nteam"}, **HX)
    move = admin_client.post(f"{url}move/", {"direction": "down"}, **HX)
    confirm = admin_client.get(f"{url}remove/", **HX)

    for response in (inline, bad, good, move, confirm):
        assert text(response).lstrip().startswith('<section id="fields"'), response
        assert "<html" not in text(response)
    assert 'class="editing"' in text(inline) and "Save field" in text(inline)
    assert bad.status_code == 400 and 'class="editing"' in text(bad)
    assert good.status_code == 200 and "renamed to “plan”" in text(good)
    assert 'class="removing"' in text(confirm)
    customers.refresh_from_db()
    assert customers.field("plan")["choices"] == ["free", "pro", "team"]
    assert [f["key"] for f in customers.fields].index("plan") == 3


def test_an_empty_collection_is_deleted_without_typing_its_name(admin_client, admin_user):
    empty = collection_create(actor=admin_user, name="Empty", slug="empty", fields=[])
    page = admin_client.get("/records/empty/settings/delete/")
    deleted = admin_client.post("/records/empty/settings/delete/")

    assert "The collection is empty." in text(page) and 'name="confirm"' not in text(page)
    assert deleted.status_code == 302 and deleted["Location"] == "/records/"
    assert Collection.objects.get(pk=empty.pk).deleted_at is not None


def test_a_collection_with_records_goes_only_when_its_name_is_typed(admin_client, people, customers):
    page = admin_client.get("/records/customers/settings/delete/")
    form = form_with_button(page, "Delete the collection and its 5 records")
    untyped = admin_client.post(form.action, form.fields)
    mistyped = admin_client.post(form.action, {**form.fields, "confirm": "customers"})

    assert "It holds <strong>5</strong> records." in text(page)
    for refused in (untyped, mistyped):
        assert refused.status_code == 400
    assert "Type “Customers” exactly as it is written, to confirm." in errors_of(mistyped)
    assert Collection.objects.get(pk=customers.pk).deleted_at is None
    assert Record.objects.filter(collection=customers, deleted_at=None).count() == 5

    done = admin_client.post(form.action, {**form.fields, "confirm": " Customers "}, follow=True)

    assert "Collection “Customers” deleted." in text(done) and "in the background" not in text(done)
    assert not Record.objects.filter(collection=customers, deleted_at=None).exists()
    assert Change.objects.filter(collection=customers, op="deleted").count() == 5  # webhooks, phones hear each
    assert admin_client.get("/records/customers/").status_code == 404
    events = AuditEvent.objects.filter(target_id=str(customers.pk))
    assert list(events.filter(action="collection.deleted").values_list("changes", flat=True)) == [{"records": 5}]
    assert not AuditEvent.objects.filter(action="record.deleted").exists()  # one event, not one per record


def test_a_big_collection_is_deleted_in_the_background_with_progress_on_the_records_page(
    admin_client, people, customers, monkeypatch
):
    """A worker deletes what the request did not: here the task's code run in this process (the broker
    between them is left out); DELETION_BATCH is made small so five records make three batches."""
    from records import services
    from records.services import collection_records_delete

    monkeypatch.setattr(services, "DELETION_BATCH", 2)
    done = admin_client.post("/records/customers/settings/delete/", {"confirm": "Customers"}, follow=True)
    polled = admin_client.get("/records/-/deletions/", **HX)

    assert "Its 5 records are being deleted in the background" in text(done)
    assert "2 of 5 records deleted (40 %)" in text(done) and "2 of 5 records deleted" in text(polled)
    assert 'hx-trigger="every 1s"' in text(polled) and "<html" not in text(polled)
    assert '<progress max="5" value="2"' in text(polled)
    assert "Customers" not in re.search(r'data-testid="collections".*?</table>|$', text(done), re.S).group(0)

    assert collection_records_delete(collection=customers, limit=2) is False
    assert "4 of 5 records deleted (80 %)" in text(admin_client.get("/records/-/deletions/", **HX))
    assert collection_records_delete(collection=customers) is True
    finished = admin_client.get("/records/-/deletions/", **HX)

    assert "Done: all 5 records deleted." in text(finished) and "hx-trigger" not in text(finished)
    assert not Record.objects.filter(collection=customers, deleted_at=None).exists()
    assert AuditEvent.objects.filter(action="collection.deleted").count() == 1


def test_only_those_who_manage_collections_delete_one(as_role, people):
    manager = as_role(Role.MANAGER)

    assert manager.get("/records/customers/settings/delete/").status_code == 403
    assert manager.post("/records/customers/settings/delete/", {"confirm": "Customers"}).status_code == 403
    assert manager.get("/records/-/deletions/", **HX).status_code == 200
    assert Record.objects.filter(deleted_at=None).count() == 5


@pytest.mark.saas_only
def test_another_workspaces_admin_can_neither_delete_nor_watch_this_deletion(
    admin_client, people, customers, tenant, tenant_b, client_for, monkeypatch
):
    from accounts.models import User
    from records import services
    from tenants.runtime import workspace_context

    monkeypatch.setattr(services, "DELETION_BATCH", 2)
    with workspace_context(tenant_b):
        on_b = client_for(tenant_b, User.objects.get(email="admin@beta.test"))
    refused = on_b.post("/records/customers/settings/delete/", {"confirm": "Customers"})
    with workspace_context(tenant):
        admin_client.post("/records/customers/settings/delete/", {"confirm": "Customers"})
    watched = on_b.get("/records/-/deletions/", **HX)

    assert refused.status_code == 404
    assert "Customers" not in text(watched) and "records deleted" not in text(watched)


# --- the records table --------------------------------------------------------------------------------


def test_table_shows_columns_from_fields_newest_first(admin_client, people):
    page = admin_client.get("/records/customers/")

    assert page.status_code == 200
    headers = re.findall(r'<th scope="col"[^>]*data-key="([^"]+)"', text(page))
    assert headers == ["name", "email", "tier", "score", "notes", "updated_at"]
    assert table_ids(page) == [people[n].id for n in ["Eve", "Dee", "Cy", "Bob", "Ada"]]
    assert 'data-testid="count">5 records<' in text(page)
    assert 'href="mailto:ada@x.test"' in text(page)


@pytest.mark.parametrize(
    ("sort", "names"),
    [
        ("name", ["Ada", "Bob", "Cy", "Dee", "Eve"]),
        ("-name", ["Eve", "Dee", "Cy", "Bob", "Ada"]),
        ("score", ["Bob", "Cy", "Ada", "Eve", "Dee"]),  # no value sorts last both ways
        ("-score", ["Eve", "Ada", "Cy", "Bob", "Dee"]),
        ("tier", ["Bob", "Dee", "Eve", "Ada", "Cy"]),  # ties break on creation order
        ("id", ["Ada", "Bob", "Cy", "Dee", "Eve"]),
        ("updated_at", ["Ada", "Bob", "Cy", "Dee", "Eve"]),
    ],
)
def test_sort_by_any_column(admin_client, people, sort, names):
    page = admin_client.get(f"/records/customers/?sort={sort}")

    assert page.status_code == 200
    assert table_ids(page) == [people[n].id for n in names]


def test_header_links_toggle_the_sort_direction(admin_client, people):
    page = text(admin_client.get("/records/customers/?sort=score"))

    assert re.search(r'aria-sort="ascending"[^>]*data-key="score"', page)
    assert 'href="/records/customers/?sort=-score"' in page
    assert 'href="/records/customers/?sort=name"' in page


@pytest.mark.parametrize(
    ("query", "names"),
    [
        ("tier=pro", ["Cy", "Ada"]),
        ("tier__ne=pro", ["Eve", "Dee", "Bob"]),
        ("score__gt=10", ["Eve", "Cy", "Ada"]),
        ("score__gte=20&score__lt=50", ["Cy", "Ada"]),
        ("score__isnull=true", ["Dee"]),
        ("name__contains=e", ["Eve", "Dee"]),
        ("tier__in=free,pro&score__lte=20", ["Cy", "Bob"]),
        ("q=vip", ["Eve"]),
        ("q=BOB@X", ["Bob"]),
        ("q=pro&sort=name", ["Ada", "Cy"]),
        ("q=nobody", []),
    ],
)
def test_filters_and_search(admin_client, people, query, names):
    page = admin_client.get(f"/records/customers/?{query}")

    assert page.status_code == 200
    assert table_ids(page) == [people[n].id for n in names]
    assert f"{len(names)} matching record" in text(page)


def test_filter_form_adds_a_filter_and_redirects_to_the_canonical_url(admin_client, people):
    page = admin_client.get("/records/customers/?q=x")
    form = next(f for f in forms_of(page) if f.method == "get" and "filter_field" in f.fields)

    response = form.submit(
        admin_client, "/records/customers/", q="", filter_field="score", filter_op="gte", filter_value="20"
    )

    assert response.status_code == 302
    assert response["Location"] == "/records/customers/?score__gte=20"
    followed = admin_client.get(response["Location"])
    assert table_ids(followed) == [people[n].id for n in ["Eve", "Cy", "Ada"]]
    chip = re.search(r'data-testid="filter-chip">(.*?)</li>', text(followed), re.S).group(1)
    assert "Score" in chip or "score" in chip
    assert 'href="/records/customers/"' in chip  # removing the only filter


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("bogus=1", "No field “bogus” to filter on."),
        ("score__between=1", "Unknown filter"),
        ("score__gt=lots", "must be a number"),
        ("notes__gt=a", "cannot be compared"),
        ("sort=nothing", "Cannot sort by “nothing”."),
        ("per_page=7", "Rows per page"),
        ("after=%%%%", "not valid any more"),
        ("before=bm90IGpzb24", "not valid any more"),
        ("filter_field=nope&filter_value=1", "No field “nope”"),
        ("filter_field=score&filter_op=gt&filter_value=", "Enter a value"),
        ("filter_field=score&filter_op=zz&filter_value=1", "Unknown filter"),
        (f"q={'x' * 201}", "at most 200"),
        ("q=a%00b", "NUL character"),
        ("name__contains=%00", "NUL character"),
    ],
)
def test_bad_table_urls_are_400_with_a_message(admin_client, people, query, message):
    page = admin_client.get(f"/records/customers/?{query}")

    assert page.status_code == 400
    shown = re.search(r'data-testid="table-error">([^<]*)<', text(page)).group(1)
    assert message in shown


def test_keyset_pages_walk_forwards_and_backwards_without_gaps(admin_client, customers, admin_user):
    records = [
        record_create(actor=admin_user, collection=customers, data={"name": f"P{i:02d}", "score": i % 7})
        for i in range(60)
    ]
    expected = sorted(records, key=lambda r: (r.data["score"], r.id))
    seen: list[str] = []
    url = "/records/customers/?sort=score&per_page=25"
    pages = []
    while url:
        page = admin_client.get(url)
        assert page.status_code == 200
        pages.append(page)
        seen += table_ids(page)
        nxt = re.search(r'<a href="([^"]+)" hx-get="[^"]+" rel="next">', text(page))
        url = nxt.group(1).replace("&amp;", "&") if nxt else None

    assert seen == [r.id for r in expected]
    assert [len(table_ids(p)) for p in pages] == [25, 25, 10]
    prev = re.search(r'<a href="([^"]+)" hx-get="[^"]+" rel="prev">', text(pages[-1])).group(1).replace("&amp;", "&")
    assert table_ids(admin_client.get(prev)) == [r.id for r in expected[25:50]]
    last = re.search(r'<a href="([^"]+)" hx-get="[^"]+" rel="last">', text(pages[0])).group(1).replace("&amp;", "&")
    assert table_ids(admin_client.get(last)) == [r.id for r in expected[35:]]
    assert 'rel="prev"' not in text(pages[0]) and 'rel="next"' not in text(pages[-1])


def _links(response, rel: str) -> str | None:
    found = re.search(rf'<a href="([^"]+)" hx-get="[^"]+" rel="{rel}">', text(response))
    return found.group(1).replace("&amp;", "&") if found else None


@pytest.mark.parametrize("sort", ["score", "-score"])
def test_keyset_pages_cross_from_values_to_missing_values_both_ways(admin_client, customers, admin_user, sort):
    records = [
        record_create(
            actor=admin_user, collection=customers, data={"name": f"Q{i}", **({"score": i % 5} if i % 4 else {})}
        )
        for i in range(63)
    ]
    with_score = sorted((r for r in records if "score" in r.data), key=lambda r: (r.data["score"], r.id))
    without = sorted((r for r in records if "score" not in r.data), key=lambda r: r.id)
    if sort.startswith("-"):
        with_score, without = with_score[::-1], without[::-1]
    expected = [r.id for r in with_score + without]  # missing values last, whichever the direction

    forwards, url = [], f"/records/customers/?sort={sort}&per_page=25"
    while url:
        page = admin_client.get(url)
        forwards.append(table_ids(page))
        url = _links(page, "next")
    backwards, url = [], _links(admin_client.get(f"/records/customers/?sort={sort}&per_page=25"), "last")
    while url:
        page = admin_client.get(url)
        backwards.insert(0, table_ids(page))
        url = _links(page, "prev")

    assert [i for ids in forwards for i in ids] == expected
    assert [len(ids) for ids in forwards] == [25, 25, 13]
    assert [i for ids in backwards for i in ids] == expected  # the last page first, then back to the start
    assert [len(ids) for ids in backwards] == [13, 25, 25]


def test_deleted_and_sandbox_records_are_not_in_the_console(admin_client, people, customers, admin_user):
    from records.services import record_delete

    sandbox = collection_create(
        actor=admin_user, name="Customers", slug="customers", fields=[{"key": "name", "type": "text"}], livemode=False
    )
    record_create(actor=admin_user, collection=sandbox, data={"name": "Sandboxed"})
    record_delete(actor=admin_user, record=people["Bob"])

    page = admin_client.get("/records/customers/")

    assert people["Bob"].id not in table_ids(page)
    assert "Sandboxed" not in text(page)
    assert len(table_ids(page)) == 4


def test_table_htmx_request_gets_only_the_table_fragment(admin_client, people):
    page = admin_client.get("/records/customers/?sort=name", **HX)
    added = admin_client.get("/records/customers/?filter_field=tier&filter_op=eq&filter_value=pro", **HX)

    assert text(page).lstrip().startswith('<div id="records-view"') and "<html" not in text(page)
    assert page["Vary"] and "HX-Request" in page["Vary"]
    assert added.status_code == 200 and added["HX-Push-Url"] == "/records/customers/?tier=pro"
    assert table_ids(added) == [people["Cy"].id, people["Ada"].id]


# --- the record form ---------------------------------------------------------------------------------


@pytest.fixture
def everything(tenant, admin_user, customers):
    """A collection with one field of every type."""
    return collection_create(
        actor=admin_user,
        name="Everything",
        slug="everything",
        fields=[
            {"key": "title", "type": "text", "required": True, "description": "What it is"},
            {"key": "body", "type": "long_text"},
            {"key": "price", "type": "number"},
            {"key": "qty", "type": "integer"},
            {"key": "active", "type": "boolean"},
            {"key": "due", "type": "date"},
            {"key": "at", "type": "datetime"},
            {"key": "size", "type": "choice", "choices": ["S", "M", "L"]},
            {"key": "contact", "type": "email", "unique": True},
            {"key": "site", "type": "url"},
            {"key": "owner", "type": "reference", "collection": "customers"},
            {"key": "meta", "type": "json"},
        ],
    )


def test_record_form_has_the_right_input_for_each_type(admin_client, everything, people):
    page = text(admin_client.get("/records/everything/new/"))

    def tag(name):
        return re.search(rf'<(input|textarea|select)[^>]*name="f-{name}"[^>]*>', page).group(0)

    assert 'type="text"' in tag("title") and "required" in tag("title")
    assert tag("body").startswith("<textarea")
    assert 'type="number"' in tag("price") and 'step="any"' in tag("price")
    assert 'type="number"' in tag("qty")
    assert 'type="checkbox"' in tag("active")
    assert 'type="date"' in tag("due")
    assert 'type="datetime-local"' in tag("at")
    assert tag("size").startswith("<select")
    assert 'type="email"' in tag("contact")
    assert 'type="url"' in tag("site")
    assert tag("owner").startswith("<select")
    assert f'<option value="{people["Ada"].id}">Ada' in page
    assert tag("meta").startswith("<textarea")
    assert "What it is" in page


def test_create_a_record_of_every_type(admin_client, everything, people, tenant, monkeypatch):
    # monkeypatch: the session's tenant object outlives this test's transaction (later tests read it)
    monkeypatch.setattr(tenant, "timezone", "Europe/Paris")
    tenant.save()

    response = admin_client.post(
        "/records/everything/new/",
        {
            "f-title": "  Widget ",
            "f-body": "Line 1\nLine 2",
            "f-price": "9.50",
            "f-qty": "3",
            "f-active": "on",
            "f-due": "2026-02-01",
            "f-at": "2026-02-01T10:30",
            "f-size": "M",
            "f-contact": "Sales@Example.test",
            "f-site": "https://example.test/w",
            "f-owner": people["Ada"].id,
            "f-meta": '{"tags": ["a", "b"]}',
        },
    )

    assert response.status_code == 302, errors_of(response)
    record = Record.objects.get(collection=everything)
    assert response["Location"] == f"/records/everything/r/{record.id}/"
    assert record.data == {
        "title": "Widget",
        "body": "Line 1\nLine 2",
        "price": 9.5,
        "qty": 3,
        "active": True,
        "due": "2026-02-01",
        "at": "2026-02-01T09:30:00Z",  # 10:30 in Paris is 09:30 UTC
        "size": "M",
        "contact": "Sales@Example.test",
        "site": "https://example.test/w",
        "owner": people["Ada"].id,
        "meta": {"tags": ["a", "b"]},
    }
    edit = text(admin_client.get(response["Location"]))
    assert 'value="2026-02-01T10:30:00"' in edit  # shown back in the workspace's time
    assert re.search(r'name="f-active"[^>]*checked', edit)


@pytest.mark.parametrize(
    ("field", "value", "error"),
    [
        ("f-title", "", "This field is required."),
        ("f-title", "x" * 2001, "at most 2000 characters"),
        ("f-price", "cheap", "Enter a number."),
        ("f-price", "NaN", "Enter a number."),
        ("f-qty", "1.5", "Enter a whole number."),
        ("f-qty", str(2**60), "less than or equal to"),
        ("f-due", "31/01/2026", "Enter a valid date."),
        ("f-due", "2026-02-30", "Enter a valid date."),
        ("f-at", "tomorrow", "Enter a date and time."),
        ("f-size", "XL", "Select a valid choice."),
        ("f-contact", "not an email", "Enter a valid email address."),
        ("f-site", "javascript:alert(1)", "Enter a valid URL."),
        ("f-owner", "NOSUCHRECORD", "Select a valid choice."),
        ("f-meta", "{broken", "Enter a valid JSON."),
        ("f-meta", '{"x": NaN}', "Enter a valid JSON."),
        ("f-meta", '{"x": "a\\u0000b"}', "NUL character"),
        ("f-price", "1e400", "Enter a smaller number."),
        ("f-title", "a\x00b", "Null characters are not allowed."),
    ],
)
def test_bad_input_re_renders_the_form_with_the_error_at_the_field(
    admin_client, everything, people, field, value, error
):
    data = {"f-title": "Widget", field: value}

    response = admin_client.post("/records/everything/new/", data)

    assert response.status_code == 400
    block = re.search(rf'<div class="field invalid">\s*<label for="id_{field}".*?</div>', text(response), re.S)
    assert block, f"no error shown at {field}: {errors_of(response)}"
    assert error in block.group(0)
    assert not Record.objects.filter(collection=everything).exists()


def test_spine_errors_land_on_their_field(admin_client, everything, people, admin_user):
    record_create(actor=admin_user, collection=everything, data={"title": "First", "contact": "dup@x.test"})

    dup = admin_client.post("/records/everything/new/", {"f-title": "Second", "f-contact": "DUP@x.test"})

    assert dup.status_code == 400
    block = re.search(r'<div class="field invalid">\s*<label for="id_f-contact".*?</div>', text(dup), re.S)
    assert block and "Another record already has this “contact”." in block.group(0)


def test_reference_to_a_big_collection_is_an_id_input_checked_by_the_spine(admin_client, everything, admin_user):
    from records.views import record as views

    customers = Collection.objects.get(slug="customers")
    for i in range(3):
        record_create(actor=admin_user, collection=customers, data={"name": f"C{i}"})
    original = views.REFERENCE_SELECT_MAX
    views.REFERENCE_SELECT_MAX = 2
    try:
        page = text(admin_client.get("/records/everything/new/"))
        missing = admin_client.post("/records/everything/new/", {"f-title": "W", "f-owner": "01NOSUCHRECORD"})
    finally:
        views.REFERENCE_SELECT_MAX = original

    assert re.search(r'<input type="text" name="f-owner"', page)
    assert missing.status_code == 400
    assert "No customers record 01NOSUCHRECORD." in " ".join(errors_of(missing))


def test_edit_saves_with_the_version_it_was_opened_at(admin_client, people):
    ada = people["Ada"]
    page = admin_client.get(f"/records/customers/r/{ada.id}/")
    form = form_with_button(page, "Save")
    assert form.fields["base_version"] == "1"

    saved = form.submit(admin_client, "", **{"f-score": "31", "f-notes": ""})

    assert saved.status_code == 302
    ada.refresh_from_db()
    assert ada.version == 2 and ada.data["score"] == 31 and ada.data["name"] == "Ada"
    unchanged = form_with_button(admin_client.get(f"/records/customers/r/{ada.id}/"), "Save").submit(admin_client, "")
    ada.refresh_from_db()
    assert unchanged.status_code == 302 and ada.version == 2  # saving an untouched form changes nothing


def test_stale_edit_of_other_fields_is_merged_not_overwritten(admin_client, people, admin_user):
    ada = people["Ada"]
    form = form_with_button(admin_client.get(f"/records/customers/r/{ada.id}/"), "Save")
    record_update(actor=admin_user, record=ada, data={"notes": "Called on Monday"})  # someone else, meanwhile

    saved = form.submit(admin_client, "", **{"f-score": "99", "f-notes": ""})

    assert saved.status_code == 302
    ada.refresh_from_db()
    assert ada.data["score"] == 99
    assert ada.data["notes"] == "Called on Monday"  # the stale form's empty notes did not wipe it
    follow = admin_client.get(saved["Location"])
    assert "their changes to other fields were kept" in text(follow)


def test_same_field_conflict_shows_both_values_and_resolves(admin_client, people, make_user):
    ada = people["Ada"]
    other = make_user(Role.MANAGER, email="mia@alpha.test")
    form = form_with_button(admin_client.get(f"/records/customers/r/{ada.id}/"), "Save")
    record_update(actor=other, record=ada, data={"score": 40, "tier": "free"})

    conflict = form.submit(admin_client, "", **{"f-score": "35", "f-notes": ""})

    assert conflict.status_code == 409
    page = text(conflict)
    row = re.search(r'<tr data-conflict="score">.*?</tr>', page, re.S).group(0)
    assert re.search(r'data-testid="theirs">40<', row) and re.search(r'data-testid="mine">35<', row)
    assert "mia@alpha.test changed this record" in page
    ada.refresh_from_db()
    assert ada.data["score"] == 40 and ada.version == 2  # nothing overwritten
    again = form_with_button(conflict, "Save")
    assert again.fields["base_version"] == "2"
    assert again.fields["f-score"] == "35" and again.fields["f-tier"] == "free"  # theirs kept elsewhere

    keep_mine = again.submit(admin_client, "", **{"f-notes": ""})

    assert keep_mine.status_code == 302
    ada.refresh_from_db()
    assert ada.data["score"] == 35 and ada.data["tier"] == "free" and ada.version == 3


def test_conflict_can_keep_their_value(admin_client, people, admin_user):
    ada = people["Ada"]
    form = form_with_button(admin_client.get(f"/records/customers/r/{ada.id}/"), "Save")
    record_update(actor=admin_user, record=ada, data={"score": 40})
    conflict = form.submit(admin_client, "", **{"f-score": "35", "f-notes": ""})
    again = form_with_button(conflict, "Save")

    resolved = admin_client.post(
        f"/records/customers/r/{ada.id}/", {**again.fields, "f-notes": "", "theirs": "score", "f-name": "Ada L."}
    )

    assert resolved.status_code == 302
    ada.refresh_from_db()
    assert ada.data["score"] == 40 and ada.data["name"] == "Ada L."


@pytest.mark.parametrize("version", ["", "abc", "0", "-1", "99999999999"])
def test_missing_or_broken_base_version_is_400(admin_client, people, version):
    ada = people["Ada"]

    response = admin_client.post(f"/records/customers/r/{ada.id}/", {"f-name": "X", "base_version": version})

    assert response.status_code == 400
    assert "reload the record" in text(response)
    ada.refresh_from_db()
    assert ada.data["name"] == "Ada"


def test_unknown_base_version_is_a_clear_409(admin_client, people):
    response = admin_client.post(f"/records/customers/r/{people['Ada'].id}/", {"f-name": "X", "base_version": "7"})

    assert response.status_code == 409
    assert "reload it" in text(response)


def test_delete_asks_first_and_refuses_a_stale_confirmation(admin_client, people, admin_user):
    bob = people["Bob"]
    confirm = admin_client.get(f"/records/customers/r/{bob.id}/delete/")
    form = form_with_button(confirm, "Delete record")
    record_update(actor=admin_user, record=bob, data={"score": 11})

    stale = form.submit(admin_client, "")
    bob.refresh_from_db()
    assert stale.status_code == 409 and bob.deleted_at is None
    assert "changed since you opened it" in text(stale)

    deleted = form_with_button(stale, "Delete record").submit(admin_client, "")

    assert deleted.status_code == 302 and deleted["Location"] == "/records/customers/"
    bob.refresh_from_db()
    assert bob.deleted_at is not None
    assert admin_client.get(f"/records/customers/r/{bob.id}/").status_code == 404


def test_editing_a_record_deleted_meanwhile_says_so(admin_client, people, admin_user):
    from records.services import record_delete

    cy = people["Cy"]
    form = form_with_button(admin_client.get(f"/records/customers/r/{cy.id}/"), "Save")
    record_delete(actor=admin_user, record=cy)

    response = form.submit(admin_client, "", **{"f-notes": ""})

    assert response.status_code == 404


# --- history ------------------------------------------------------------------------------------------


def test_history_shows_who_changed_which_fields_from_what_to_what(as_role, people, customers, make_user, admin_user):
    ada = people["Ada"]
    manager = make_user(Role.MANAGER, email="max@alpha.test")
    record_update(actor=manager, record=ada, data={"score": 31, "notes": "Renewed"})
    renamed = [{**f, "label": "Points"} if f["key"] == "score" else f for f in customers.fields]
    collection_update(actor=admin_user, collection=customers, fields=renamed)

    response = as_role(Role.VIEWER).get(f"/records/customers/r/{ada.id}/history/")

    assert response.status_code == 200
    items = re.findall(r'<li data-action="([^"]+)">(.*?)</li>', text(response), re.S)
    assert [a for a, _ in items] == ["record.updated", "record.created"]
    updated, created = items[0][1], items[1][1]
    assert "max@alpha.test" in updated and "(version 2)" in updated
    assert re.search(r"Points</th>\s*<td><del>30</del></td>\s*<td><ins>31</ins>", updated)
    assert re.search(r"notes</th>\s*<td><span class=\"muted\">—</span></td>\s*<td><ins>Renewed</ins>", updated)
    assert "Email" not in updated and "email" not in updated  # unchanged fields are not listed
    assert "admin@alpha.test" in created and "<ins>ada@x.test</ins>" in created


# --- staying fast: indexes and counts ---------------------------------------------------------------------


def _plan(qs) -> str:
    """The query plan, with the planner told to prefer indexes (test tables are too small to need them)."""
    from django.db import connection

    sql, params = qs.query.sql_with_params() if hasattr(qs, "query") else (qs, ())
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET LOCAL enable_seqscan = off")
            cursor.execute("SET LOCAL enable_sort = off")  # a sort then shows only if no index gives the order
            cursor.execute("EXPLAIN " + sql, params)
        else:
            cursor.execute("EXPLAIN QUERY PLAN " + sql, params)
        return "\n".join(str(row) for row in cursor.fetchall())


def _page_queries(collection, params: str) -> list[str]:
    """The SQL of the record queries one table page runs."""
    from django.db import connection
    from django.http import QueryDict
    from django.test.utils import CaptureQueriesContext

    from records.query import record_table_page, table_query_parse

    with CaptureQueriesContext(connection) as captured:
        record_table_page(collection, table_query_parse(collection, QueryDict(params)))
    queries = [q["sql"] for q in captured.captured_queries]
    return [
        sql for sql in queries if sql.startswith("SELECT") and 'FROM "records_record"' in sql and "COUNT" not in sql
    ]


def test_table_pages_are_read_in_index_order_not_sorted(people, customers):
    """First and deep pages, by id and by last update, come straight off an index: no sort step."""
    from django.db import connection

    from records.query import cursor_encode

    cy = people["Cy"]
    cases = [
        "per_page=25",
        f"per_page=25&after={cursor_encode(cy.id, cy.id)}",
        "sort=updated_at&per_page=25",
        f"sort=updated_at&per_page=25&after={cursor_encode(cy.updated_at, cy.id)}",
        "sort=-updated_at&per_page=25&before=end",
    ]
    for params in cases:
        queries = _page_queries(customers, params)
        assert queries, params
        for sql in queries:
            plan = _plan(sql)
            assert "Sort" not in plan and "TEMP B-TREE" not in plan, (params, plan)
            if connection.vendor == "sqlite":  # SQLite picks the partial indexes of migration 0002
                assert "records_rec_live_" in plan, (params, plan)


@pytest.mark.saas_only
def test_search_matches_the_trigram_index(people, customers):
    """The index (migration 0002) is on exactly the expression record_search filters on."""
    from django.db import connection

    from records.selectors import record_list, record_search

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexdef FROM pg_indexes WHERE schemaname = current_schema() AND indexname = %s",
            ["records_rec_live_text_trgm"],
        )
        (indexdef,) = cursor.fetchone()
    plan = _plan(record_search(record_list(collection=customers), "zanzibar").order_by("-id")[:51])

    assert (
        "gin (upper((data)::text) public.gin_trgm_ops)" in indexdef
        or "gin (upper((data)::text) gin_trgm_ops)" in indexdef
    )
    assert "upper((data)::text) ~~ '%ZANZIBAR%'::text" in plan


def test_counts_are_capped_for_filters_and_estimated_for_big_tables(admin_client, people, admin_user, monkeypatch):
    from django.db import connection

    from records import query
    from records.views import table as views

    collection = people["Ada"].collection
    for i in range(25):
        record_create(actor=admin_user, collection=collection, data={"name": f"More {i}", "tier": "free"})
    monkeypatch.setattr(query, "COUNT_CAP", 20)
    monkeypatch.setattr(views, "COUNT_CAP", 20)
    monkeypatch.setattr(query, "ESTIMATE_ABOVE", 10)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE records_record")  # the planner's estimate needs statistics

    deferred = admin_client.get("/records/customers/?tier=free&per_page=25")
    capped = admin_client.get("/records/customers/?tier=free&per_page=25&count=1")
    counted = admin_client.get("/records/customers/?tier=free&per_page=25&count=1", **HX)
    small = admin_client.get("/records/customers/?tier=pro&per_page=25")
    everything = admin_client.get("/records/customers/?per_page=25")

    # A filtered view spanning pages is not counted with the page; htmx asks for the count at once.
    assert re.search(r'data-testid="count" hx-get="/records/customers/\?[^"]*count=1"', text(deferred))
    assert "25+ matching records" in text(deferred)
    assert text(counted).strip() == '<span data-testid="count">More than 20 matching records</span>'
    assert 'data-testid="count">More than 20 matching records<' in text(capped)
    assert 'data-testid="count">2 matching records<' in text(small)  # all on one page: counted from the page
    if connection.vendor == "postgresql":
        assert re.search(r'data-testid="count">About \d[\d,]* records<', text(everything))  # the planner's estimate
    else:
        assert 'data-testid="count">30 records<' in text(everything)


@pytest.mark.saas_only
def test_sorting_a_big_collection_builds_a_sort_index_and_renames_drop_it(admin_client, people, customers, monkeypatch):
    """The page that sorts never builds the index itself (no DDL in a GET): it asks a worker. Here the
    worker is the task run in this process when asked (the queue between them is left out)."""
    from django.core.cache import cache
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from records import sort_indexes, tasks

    for field in ("score", "points"):  # forget earlier requests (the cache is shared with other tests)
        spec = {**customers.field("score"), "key": field}
        cache.delete(sort_indexes._requested_key(sort_indexes.sort_index_name(customers, spec)))
    asked = []
    monkeypatch.setattr(
        tasks.sort_index_build_task, "delay", lambda *args: asked.append(args) or tasks.sort_index_build_task(*args)
    )
    monkeypatch.setattr(sort_indexes, "SORT_INDEX_MIN_ROWS", 3)
    name = sort_indexes.sort_index_name(customers, customers.field("score"))

    with CaptureQueriesContext(connection) as queries:
        sorted_page = admin_client.get("/records/customers/?sort=-score")
    by_name = admin_client.get("/records/customers/?sort=name")  # text: values may be too big for an index

    assert sorted_page.status_code == 200 and by_name.status_code == 200
    assert table_ids(sorted_page) == [people[n].id for n in ["Eve", "Ada", "Cy", "Bob", "Dee"]]
    assert asked == [(customers.pk, "score")]
    assert not [q for q in queries if "CREATE INDEX" in q["sql"]]  # the request itself ran no DDL
    assert set(sort_indexes._existing(customers)) == {name}
    for sql in _page_queries(customers, "sort=-score&per_page=25"):
        if "IS NOT NULL" in sql:
            assert name in _plan(sql)
    score = customers.field("score")
    admin_client.post(f"/records/customers/settings/fields/{score['id']}/", {"key": "points", "type": "integer"})
    customers.refresh_from_db()
    # The old key's index went with the rename, and the field change asked for the new key's.
    assert set(sort_indexes._existing(customers)) == {
        sort_indexes.sort_index_name(customers, customers.field("points"))
    }
    assert asked[-1] == (customers.pk, "points")
    assert table_ids(admin_client.get("/records/customers/?sort=-points"))[0] == people["Eve"].id


def test_small_collections_and_sqlite_get_no_sort_index(admin_client, people, customers):
    from records import sort_indexes

    assert admin_client.get("/records/customers/?sort=score").status_code == 200
    assert sort_indexes.sort_index_ensure(customers, "score") is False
