"""Pages of the served docs that are not the OpenAPI ones: the CSV format (/docs/csv-format)."""

from __future__ import annotations

import re

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe
from django.views.decorators.http import require_safe

from bulkimport.csv_format import TEMPLATE_FILENAME, csv_format_sections, template_csv

_CODE = re.compile(r"`([^`]+)`")
_EMPHASIS = re.compile(r"\*([^*]+)\*")


def _inline(text: str) -> SafeString:
    """The sections' text markup (`code`, *emphasis*) as HTML, everything else escaped."""
    html = _CODE.sub(r"<code>\1</code>", str(escape(text)))
    return mark_safe(_EMPHASIS.sub(r"<em>\1</em>", html))  # noqa: S308 (escaped above)


@require_safe
def csv_format_page(request: HttpRequest) -> HttpResponse:
    """The CSV format, rendered from the same sections as docs/csv-format.md."""
    sections = [
        {
            "title": section.title,
            "anchor": section.anchor,
            "paragraphs": [_inline(p) for p in section.paragraphs],
            "header": section.table.header if section.table else (),
            "rows": [[_inline(cell) for cell in row] for row in section.table.rows] if section.table else [],
            "after": [_inline(p) for p in section.after],
            "code_block": section.code_block,
        }
        for section in csv_format_sections()
    ]
    return render(request, "docs/csv_format.html", {"sections": sections})


@require_safe
def csv_template_download(request: HttpRequest) -> HttpResponse:
    """The template as a file of the docs (it holds no data of anyone): the same bytes as the API's
    GET /medical/v1/patient/bulk/template, downloadable from the page without an API key."""
    response = HttpResponse(template_csv(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{TEMPLATE_FILENAME}"'
    return response
