"""CSV import: upload, column mapping, then the import page streamed as it runs."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.loader import render_to_string
from django.views.decorators.http import require_http_methods

from rbac.permissions import permission_required
from records.forms import ImportMappingForm, ImportUploadForm
from records.imports import (
    IMPORT_MAX_BYTES,
    CellError,
    ImportProgress,
    csv_preview,
    import_discard,
    import_stage,
    import_staged,
    mapping_guess,
    records_import,
)
from records.views.common import _collection, _page, _streaming, _tz


@require_http_methods(["GET", "POST"])
@permission_required("records.edit")
def record_import(request: HttpRequest, slug: str) -> HttpResponse:
    collection = _collection(slug)
    posted = request.method == "POST"
    form = ImportUploadForm(
        request.POST if posted else None, request.FILES if posted else None, max_bytes=IMPORT_MAX_BYTES
    )
    if request.method == "POST" and form.is_valid():
        staged = import_stage(user=request.user, collection=collection, upload=form.cleaned_data["file"])
        try:
            csv_preview(staged)
        except CellError as exc:
            import_discard(staged.token)
            form.add_error("file", exc.message)
        else:
            return redirect("records:import_map", slug=slug, token=staged.token)
    status = 400 if request.method == "POST" else 200
    return _page(request, "records/import.html", {"collection": collection, "form": form}, status=status)


@require_http_methods(["GET", "POST"])
@permission_required("records.edit")
def record_import_map(request: HttpRequest, slug: str, token: str) -> HttpResponse:
    collection = _collection(slug)
    staged = import_staged(token=token, user=request.user, collection=collection)
    if staged is None:
        return _page(request, "records/import_gone.html", {"collection": collection}, status=410)
    header, preview = csv_preview(staged)
    form = ImportMappingForm(
        request.POST if request.method == "POST" else None,
        collection=collection,
        header=header,
        guess=mapping_guess(collection, header),
    )
    samples = [[row[i] for row in preview if i < len(row) and row[i].strip()] for i in range(len(header))]
    context = {
        "collection": collection,
        "form": form,
        "staged": staged,
        "columns": list(zip(form.column_fields(), samples, strict=True)),
    }
    if request.method == "GET" or not form.is_valid():
        return _page(request, "records/import_map.html", context, status=200 if request.method == "GET" else 400)
    check_only = request.POST.get("action") == "check"
    steps = records_import(
        actor=request.user,
        collection=collection,
        staged=staged,
        header=header,
        mapping=form.cleaned_data["mapping"],
        mode=form.cleaned_data["mode"],
        tz=_tz(),
        check_only=check_only,
    )
    page = render_to_string("records/import_run.html", {**context, "check_only": check_only}, request=request)
    head, _, rest = page.partition("<!--progress-->")
    middle, _, tail = rest.partition("<!--report-->")
    chunks = _import_page(request, collection, staged, steps, head, middle, tail)
    return _streaming(request, chunks, "text/html; charset=utf-8")


def _import_page(request, collection, staged, steps, head: str, middle: str, tail: str):
    """The import page as it happens: the page's top, a line per batch, then the report."""
    yield head.encode()
    report = None
    for step in steps:
        if isinstance(step, ImportProgress):
            verb = "Checked" if step.phase == "checking" else "Imported"
            yield f'<p class="progress-line">{verb} {step.rows:,} rows…</p>\n'.encode()
        else:
            report = step
    if report is not None and report.committed and not report.check_only:
        import_discard(staged.token)
    yield middle.encode()
    numbers = {}
    if report is not None:
        fields = ("rows", "created", "updated", "unchanged", "bad_rows", "errors_total")
        numbers = {name: f"{getattr(report, name):,}" for name in fields}
    yield render_to_string(
        "records/_import_report.html",
        {"collection": collection, "report": report, "n": numbers, "staged": staged},
        request=request,
    ).encode()
    yield tail.encode()
