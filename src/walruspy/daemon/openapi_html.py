"""The OpenAPI document as a page people read: `GET /v1/api` for a browser.

A browser asks with `Accept: text/html` first; everything else (curl, clients, tools) gets the
YAML as before (`walruspy.daemon.app`). The page lists each path and method with its summary,
description, parameters (where, name, type, required) and responses (status and description),
`$ref`s shown by the name they point at. Every value from the document is escaped. It links the
explorer's style sheet, and reads without it.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from typing import Any, Final

__all__ = ["render_openapi_html", "wants_html"]

_METHODS: Final = ("get", "head", "put", "post", "delete", "patch", "options")


def wants_html(accept: str | None) -> bool:
    """Whether an `Accept` header asks for HTML before YAML (what browsers send)."""
    if not accept:
        return False
    for part in accept.split(","):
        media = part.split(";")[0].strip().lower()
        if media in ("text/html", "application/xhtml+xml"):
            return True
        if media in ("application/yaml", "application/x-yaml", "text/yaml", "*/*"):
            return False
    return False


def _text(value: object) -> str:
    return html.escape(str(value)) if value is not None else ""


def _resolve(document: Mapping[str, Any], item: Any) -> Any:
    """A `$ref` within the document, followed once (the name is kept for the type column)."""
    if isinstance(item, Mapping) and isinstance(item.get("$ref"), str):
        node: Any = document
        for part in item["$ref"].lstrip("#/").split("/"):
            node = node.get(part, {}) if isinstance(node, Mapping) else {}
        return node
    return item


def _type_of(schema: Any) -> str:
    if not isinstance(schema, Mapping):
        return ""
    if isinstance(schema.get("$ref"), str):
        return str(schema["$ref"]).rsplit("/", 1)[-1]
    kind = schema.get("type", "")
    if kind == "array":
        return f"array of {_type_of(schema.get('items'))}"
    fmt = schema.get("format")
    return f"{kind} ({fmt})" if fmt else str(kind)


def _parameters(document: Mapping[str, Any], operation: Mapping[str, Any]) -> str:
    rows = []
    for raw in operation.get("parameters", []):
        param = _resolve(document, raw)
        if not isinstance(param, Mapping):
            continue
        rows.append(
            "<tr>"
            f"<td><code>{_text(param.get('name'))}</code></td>"
            f"<td>{_text(param.get('in'))}</td>"
            f"<td>{_text(_type_of(param.get('schema')))}</td>"
            f"<td>{'yes' if param.get('required') else ''}</td>"
            f"<td>{_text(param.get('description'))}</td>"
            "</tr>"
        )
    body = operation.get("requestBody")
    if isinstance(body, Mapping):
        types = ", ".join(str(t) for t in (body.get("content") or {}))
        rows.append(
            f"<tr><td><em>body</em></td><td>body</td><td>{_text(types)}</td>"
            f"<td>{'yes' if body.get('required') else ''}</td>"
            f"<td>{_text(body.get('description'))}</td></tr>"
        )
    if not rows:
        return ""
    return (
        "<h4>Parameters</h4><table><thead><tr><th>Name</th><th>In</th><th>Type</th>"
        "<th>Required</th><th>Description</th></tr></thead><tbody>"
        + "".join(rows)
        + "</tbody></table>"
    )


def _responses(document: Mapping[str, Any], operation: Mapping[str, Any]) -> str:
    rows = []
    for status, raw in (operation.get("responses") or {}).items():
        response = _resolve(document, raw)
        description = response.get("description") if isinstance(response, Mapping) else ""
        types = ", ".join(str(t) for t in (response.get("content") or {})) if response else ""
        rows.append(
            f"<tr><td><code>{_text(status)}</code></td><td>{_text(types)}</td>"
            f"<td>{_text(description)}</td></tr>"
        )
    if not rows:
        return ""
    return (
        "<h4>Responses</h4><table><thead><tr><th>Status</th><th>Content</th>"
        "<th>Description</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>"
    )


def render_openapi_html(document: Mapping[str, Any]) -> str:
    """The document as one HTML page: its title, then each path's operations."""
    info = document.get("info") or {}
    title = _text(info.get("title", "API"))
    sections = []
    for path, item in (document.get("paths") or {}).items():
        if not isinstance(item, Mapping):
            continue
        for method in _METHODS:
            operation = item.get(method)
            if not isinstance(operation, Mapping):
                continue
            anchor = _text(operation.get("operationId", f"{method}-{path}"))
            sections.append(
                f'<section class="operation" id="{anchor}">'
                f'<h3><span class="method method-{method}">{method.upper()}</span> '
                f"<code>{_text(path)}</code></h3>"
                f"<p><strong>{_text(operation.get('summary'))}</strong></p>"
                f"<p>{_text(operation.get('description'))}</p>"
                + _parameters(document, operation)
                + _responses(document, operation)
                + "</section>"
            )
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{title}</title>"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<link rel="stylesheet" href="/explorer/static/explorer.css"></head>'
        f'<body><main class="api-doc"><h1>{title}</h1>'
        f"<p>Version {_text(info.get('version'))}. {_text(info.get('description'))}</p>"
        '<p>The same document as YAML: <code>curl -H "Accept: application/yaml" .../v1/api'
        "</code>.</p>" + "".join(sections) + "</main></body></html>"
    )
