"""Does an HTTP response of `jobflow-tui server` say what openapi.yaml says it would?

The operation is found by matching the request's path against the documented path templates
(a path parameter with an `enum`, like `{action}`, matches only its values); then the checks
schemathesis runs on the responses it gets itself are run on this one: the status is one the
operation documents, the content type is one documented for that status, documented headers
are there (when the headers are given) and the body fits the documented schema (JSON bodies,
and every event of a `text/event-stream` one). A status with no documented content must come
with an empty body. A path no operation has is a 404, a method the path does not have a 405
(with `Allow`), and anything may be a 401 (all three with the `{"error": ...}` body). Any
mismatch is an AssertionError saying what was expected and what came.

    from .openapi_check import conforms, conforms_aiohttp, conforms_response

    # the parts of a response (headers: any mapping, optional; without it no header is checked)
    conforms("GET", "/api/runs/20261130T042626-8bab/tasks/a/logs?attempt=1", 200,
             "application/octet-stream", b"hello\\n", headers=None)
    body = await conforms_aiohttp(resp)                  # an aiohttp ClientResponse (read here)
    body = conforms_response(requests.get(url, headers=auth))
    with urllib.request.urlopen(req) as r:               # urllib, http.client: the body is read
        body = conforms_response(r, method=req.get_method())   # here, so it is handed back

`conforms` returns the operationId (None for a 401/404/405 outside every operation); the
wrappers return the body. An event stream is judged by its complete events (what follows the
last blank line is left out), so a stream read in part can be checked; do not hand a live
run's endless stream to a wrapper, which reads to the end.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import jsonschema_rs
import requests
import schemathesis
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.core.transport import Response

SPEC = Path(__file__).resolve().parent.parent / "openapi.yaml"
BASE = "http://jobflow-tui.test"  # a response needs a request with a URL; nothing is sent
OUTSIDE_STATUSES = {401: "Unauthorized", 404: "NotFound", 405: "MethodNotAllowed"}

__all__ = ["SPEC", "conforms", "conforms_aiohttp", "conforms_response", "find_operation", "load"]


@functools.cache
def load() -> Any:
    """openapi.yaml as schemathesis reads it (loaded once)."""
    return schemathesis.openapi.from_path(SPEC)


@functools.cache
def _templates() -> list[tuple[list[str], Any]]:
    """(template segments, operation) of every documented operation, literal paths first."""
    found = []
    for result in load().get_all_operations():
        op = result.ok()
        found.append((op.path.strip("/").split("/"), op))
    found.sort(key=lambda t: sum(s.startswith("{") for s in t[0]))
    return found


@functools.cache
def _raw_path_params(path: str, method: str) -> dict[str, dict[str, Any]]:
    """The schemas of the path parameters of `method` `path` in the document, $refs resolved."""
    raw = load().raw_schema
    item = raw["paths"][path]
    params = list(item.get("parameters", [])) + list(item.get(method, {}).get("parameters", []))
    out: dict[str, dict[str, Any]] = {}
    for p in params:
        if "$ref" in p:
            node: Any = raw
            for part in p["$ref"].lstrip("#/").split("/"):
                node = node[part]
            p = node
        if p.get("in") == "path":
            out[p["name"]] = p.get("schema") or {}
    return out


def _segment_fits(value: str, schema: Mapping[str, Any]) -> bool:
    if "enum" in schema:
        return value in schema["enum"]
    if "const" in schema:
        return value == schema["const"]
    return value != ""


def find_operation(method: str, path: str) -> tuple[Any | None, dict[str, str], set[str]]:
    """The documented operation `method` `path` (a request path, query allowed) is served by,
    if any, with its path parameters; and the methods the path is documented with (HEAD
    counted with GET)."""
    method = method.upper()
    segments = urlsplit(path).path.strip("/").split("/")
    allowed: set[str] = set()
    found, found_params = None, {}
    for template, op in _templates():
        if len(template) != len(segments):
            continue
        schemas = _raw_path_params(op.path, op.method)
        params: dict[str, str] | None = {}
        for t, s in zip(template, segments, strict=True):
            if t.startswith("{") and t.endswith("}"):
                value = unquote(s)
                if not _segment_fits(value, schemas.get(t[1:-1], {})):
                    params = None
                    break
                params[t[1:-1]] = value
            elif t != s:
                params = None
                break
        if params is None:
            continue
        allowed.add(op.method.upper())
        if op.method.upper() == "GET":
            allowed.add("HEAD")
        if found is None and (op.method.upper() == method or (method == "HEAD" and op.method.upper() == "GET")):
            found, found_params = op, params
    return found, found_params, allowed


@functools.cache
def _outside_validator(name: str) -> tuple[Any, list[str]]:
    """A validator of the body of components/responses/`name`, and its required headers."""
    raw = load().raw_schema
    response = raw["components"]["responses"][name]
    schema = response["content"]["application/json"]["schema"]
    while "$ref" in schema:
        node: Any = raw
        for part in schema["$ref"].lstrip("#/").split("/"):
            node = node[part]
        schema = node
    required = [h for h, d in (response.get("headers") or {}).items() if d.get("required")]
    return jsonschema_rs.validator_for(schema), required


def _media_type(content_type: str) -> str:
    return content_type.split(";")[0].strip().lower()


def _complete_events(body: bytes) -> bytes:
    """An event stream without what follows its last complete event."""
    text = body.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    end = text.rfind(b"\n\n")
    return text[: end + 2] if end >= 0 else b""


def _fail(method: str, path: str, status: int, content_type: str, body: bytes, why: str) -> AssertionError:
    shown = body[:400].decode("utf-8", "replace") + ("..." if len(body) > 400 else "")
    return AssertionError(f"{method} {path} -> {status} {content_type or '(no content type)'}: {why}\n"
                          f"  body: {shown!r}")


def _outside(method: str, path: str, status: int, content_type: str, body: bytes,
             headers: Mapping[str, str] | None, allowed: set[str]) -> None:
    """A response to a request no documented operation takes: 401, 404 or 405."""
    expected = 405 if allowed else 404
    if status not in (401, expected):
        what = (f"the path has only {', '.join(sorted(allowed))}: expected 405 (or 401)" if allowed
                else "no documented path matches: expected 404 (or 401)")
        raise _fail(method, path, status, content_type, body, f"{what}, got {status}")
    if method.upper() == "HEAD" and not body:
        return
    if _media_type(content_type) != "application/json":
        raise _fail(method, path, status, content_type, body, "expected application/json (an error)")
    try:
        data = json.loads(body)
    except ValueError as e:
        raise _fail(method, path, status, content_type, body, f"the body is not JSON: {e}") from None
    validator, required = _outside_validator(OUTSIDE_STATUSES[status])
    errors = [f"{'/'.join(map(str, e.instance_path)) or '(body)'}: {e.message}" for e in validator.iter_errors(data)]
    if errors:
        raise _fail(method, path, status, content_type, body,
                    f"does not fit components/responses/{OUTSIDE_STATUSES[status]}: " + "; ".join(errors))
    if headers is not None:
        lower = {k.lower(): v for k, v in headers.items()}
        missing = [h for h in required if h.lower() not in lower]
        if missing:
            raise _fail(method, path, status, content_type, body, f"missing header(s): {', '.join(missing)}")
        if status == 405:
            listed = {m.strip().upper() for m in lower.get("allow", "").split(",") if m.strip()}
            if listed != allowed:
                raise _fail(method, path, status, content_type, body,
                            f"Allow says {sorted(listed)}, the document has {sorted(allowed)}")


def conforms(method: str, path: str, status: int, content_type: str | None, body: bytes | None,
             headers: Mapping[str, str] | None = None) -> str | None:
    """Raise AssertionError unless the response `status` / `content_type` / `body` to `method`
    `path` (a request path, e.g. `/api/runs/RUN/tasks/a/logs?attempt=1`) is one openapi.yaml
    documents. With `headers` (any mapping), documented headers are checked too. Returns the
    operationId (None for a 401/404/405 outside any operation)."""
    method = method.upper()
    content_type = content_type or ""
    body = body or b""
    op, params, allowed = find_operation(method, path)
    if op is None:
        _outside(method, path, status, content_type, body, headers, allowed)
        return None

    definition = op.responses.find_by_status_code(status)
    if definition is None:
        raise _fail(method, path, status, content_type, body,
                    f"{op.label} documents only {', '.join(op.responses.status_codes)}")
    documented = definition.definition.get("content") or {}
    if not documented and body and method != "HEAD":
        raise _fail(method, path, status, content_type, body,
                    f"{op.label} documents no body for {status}, but one came")
    if _media_type(content_type) == "text/event-stream":
        body = _complete_events(body)
    if method == "HEAD":
        body = b""

    wire_headers: dict[str, list[str]] = {}
    checks = [not_a_server_error, status_code_conformance, content_type_conformance]
    if headers is not None:
        for k, v in headers.items():
            wire_headers.setdefault(k.lower(), []).append(v)
        checks.append(response_headers_conformance)
    if content_type:
        wire_headers["content-type"] = [content_type]
    if method != "HEAD" and documented:
        checks.append(response_schema_conformance)
    query = urlsplit(path).query
    url = BASE + urlsplit(path).path + (f"?{query}" if query else "")
    response = Response(status_code=status, headers=wire_headers, content=body,
                        request=requests.Request(method, url).prepare(), elapsed=0.0, verify=True)
    case = op.Case(method=method if method != "HEAD" else op.method.upper(), path_parameters=params)
    try:
        case.validate_response(response, checks=checks)
    except (AssertionError, BaseExceptionGroup) as e:
        raise _fail(method, path, status, content_type, body, f"does not conform to {op.label}:\n{e}") from None
    return op.definition.raw.get("operationId")


async def conforms_aiohttp(response: Any) -> bytes:
    """`conforms` for an aiohttp ClientResponse: reads the body (aiohttp keeps it, so
    `.json()` / `.text()` still work) and returns it."""
    body = await response.read()
    url = response.url
    path = url.raw_path + (f"?{url.raw_query_string}" if url.raw_query_string else "")
    conforms(response.method, path, response.status, response.headers.get("Content-Type"), body,
             response.headers)
    return body


def conforms_response(response: Any, *, method: str | None = None, path: str | None = None,
                      body: bytes | None = None) -> bytes:
    """`conforms` for a requests.Response, or a urllib / http.client response (urlopen's, an
    HTTPError): reads the body unless given, and returns it. Without `method`, the request's
    (requests) or GET; without `path`, the response's URL."""
    if isinstance(response, requests.Response):
        method = method or response.request.method or "GET"
        path = path or response.request.path_url
        status = response.status_code
        body = response.content if body is None else body
    else:
        status = getattr(response, "status", None) or response.getcode()
        method = method or "GET"
        if path is None:
            url = getattr(response, "url", None)
            if not url:
                raise TypeError("this response does not know its URL (http.client's): give path=")
            parts = urlsplit(url)
            path = parts.path + (f"?{parts.query}" if parts.query else "")
        if body is None:
            body = response.read()
    headers = response.headers
    conforms(method, path, int(status), headers.get("Content-Type"), body, headers)
    return body
