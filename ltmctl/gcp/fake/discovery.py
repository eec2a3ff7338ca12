"""Google's own API descriptions as the fake's contract: every request it receives, and every answer it gives, is
checked against the discovery document of its API (shipped in google-api-python-client, under
`googleapiclient/discovery_cache/documents/`).

A request must name a method that exists for its HTTP verb and path; its path parameters must match their
patterns; its query parameters must be known and well typed; it carries a body exactly when the method takes one;
and every body field must exist in the method's request schema, recursively, with the right JSON type and a valid
enum (a name, or a number: the generated REST clients send enums as numbers). A violation is Google's 400
INVALID_ARGUMENT, worded as Google words it. The fake's own answers are checked against the response schema, so the
fake cannot invent a field a real client would never see.

Only the standard library (plus the discovery documents themselves), like the rest of the fake.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import unquote

# Parameters every Google API takes, by the names the REST clients use: the documents' own `parameters`, plus the
# `$`-prefixed system-parameter spellings that the generated (gapic) REST transports send, e.g.
# `$alt=json;enum-encoding=int` (https://cloud.google.com/apis/docs/system-parameters).
SYSTEM_ALIASES = {"$alt": "alt", "$fields": "fields", "$prettyPrint": "prettyPrint", "$callback": "callback",
                  "$key": "key", "$quotaUser": "quotaUser", "$userIp": "userIp"}


class Violation(Exception):
    """A request Google would refuse: 400 INVALID_ARGUMENT with this message and field."""

    def __init__(self, message: str, field: str = "") -> None:
        super().__init__(message)
        self.message, self.field = message, field


@dataclass(frozen=True)
class Method:
    id: str
    http_method: str
    template: str  # the path template, for specificity and messages
    regex: re.Pattern[str]  # on the still percent-encoded path
    groups: dict[str, str]  # regex group → parameter name
    parameters: dict[str, dict[str, Any]]  # the method's own, by name
    request: str | None  # schema name of the body, None: the method takes no body
    response: str | None
    doc: Doc
    upload: bool = False  # a media-upload path (`/upload/...`): the body is the object, not JSON
    download: bool = False

    @property
    def literal_length(self) -> int:
        return len(re.sub(r"\{[^}]*\}", "", self.template))


@dataclass
class Doc:
    name: str  # e.g. "pubsub.v1"
    schemas: dict[str, Any]
    parameters: dict[str, Any]  # the document-level (standard) query parameters
    methods: list[Method]


def documents_dir() -> Path:
    import googleapiclient

    return Path(googleapiclient.__file__).parent / "discovery_cache" / "documents"


@cache
def load(name: str) -> Doc:
    """A discovery document by `api.version` (`run.v2`), with its methods indexed for matching."""
    raw = json.loads((documents_dir() / f"{name}.json").read_text(encoding="utf-8"))
    doc = Doc(name, raw.get("schemas", {}), raw.get("parameters", {}), [])
    base = "/" + raw.get("servicePath", "")
    for method in _walk(raw):
        request = (method.get("request") or {}).get("$ref")
        response = (method.get("response") or {}).get("$ref")
        common = dict(id=method["id"], http_method=method["httpMethod"], parameters=method.get("parameters", {}),
                      request=request, response=response, doc=doc)
        # `path` (with `{+name}` and its pattern) rather than `flatPath`: the parameter checks need real names.
        template = base + method["path"]
        regex, groups = _compile(template)
        doc.methods.append(Method(template=template, regex=regex, groups=groups,
                                  download=bool(method.get("supportsMediaDownload")), **common))
        if method.get("supportsMediaDownload"):
            template = "/download" + base + method["path"]
            regex, groups = _compile(template)
            doc.methods.append(Method(template=template, regex=regex, groups=groups, download=True, **common))
        for protocol in (method.get("mediaUpload") or {}).get("protocols", {}).values():
            regex, groups = _compile(protocol["path"])
            doc.methods.append(Method(template=protocol["path"], regex=regex, groups=groups, upload=True, **common))
    return doc


def _walk(node: dict[str, Any]) -> list[dict[str, Any]]:
    out = list(node.get("methods", {}).values())
    for child in node.get("resources", {}).values():
        out += _walk(child)
    return out


def _compile(template: str) -> tuple[re.Pattern[str], dict[str, str]]:
    """`{x}` is one path segment; `{+x}` (reserved expansion) may span segments."""
    out, pos, groups = "", 0, {}
    for i, m in enumerate(re.finditer(r"\{(\+?)([^}]+)\}", template)):
        out += re.escape(template[pos:m.start()])
        group = f"p{i}"
        groups[group] = m.group(2)
        out += f"(?P<{group}>.+)" if m.group(1) else f"(?P<{group}>[^/]+)"
        pos = m.end()
    return re.compile("^" + out + re.escape(template[pos:]) + "$"), groups


@dataclass(frozen=True)
class Match:
    method: Method
    path: dict[str, str]  # parameter name → decoded value


def resolve(docs: list[Doc], verb: str, raw_path: str) -> Match | None:
    """The method this request calls: the most specific template of its verb whose path parameters all match their
    patterns. Raises Violation when templates match but a path parameter does not (a malformed resource name)."""
    candidates: list[tuple[Method, dict[str, str]]] = []
    for doc in docs:
        for method in doc.methods:
            if method.http_method != verb:
                continue
            m = method.regex.match(raw_path)
            if m:
                candidates.append((method, {method.groups[g]: unquote(v) for g, v in m.groupdict().items()}))
    candidates.sort(key=lambda c: -c[0].literal_length)
    first_problem: Violation | None = None
    for method, values in candidates:
        problem = _path_problem(method, values)
        if problem is None:
            return Match(method, values)
        first_problem = first_problem or problem
    if first_problem is not None:
        raise first_problem
    return None


def _path_problem(method: Method, values: dict[str, str]) -> Violation | None:
    for name, value in values.items():
        spec = method.parameters.get(name, {})
        if not value:
            return Violation(f"Missing required path parameter '{name}' of {method.id}.", name)
        pattern = spec.get("pattern")
        if pattern and not re.match(pattern, value):
            return Violation(f"Invalid value at '{_snake(name)}' (TYPE_STRING), \"{value}\": does not match the "
                             f"pattern {pattern} of {method.id}.", name)
    return None


# --- the request ---------------------------------------------------------------------------------------------------
# Query parameters that Google's own client libraries send, and Google therefore accepts, although the documents leave
# them out: google-cloud-bigquery's get_job and cancel_job (client.py) add projection=full to every call, so every
# poll of a running job carries it.
UNLISTED = {method: {"projection": {"type": "string", "location": "query", "enum": ["full", "minimal"]}}
            for method in ("bigquery.jobs.get", "bigquery.jobs.cancel")}


def check_request(match: Match, params: dict[str, list[str]], body: Any, raw: bytes, content_type: str) -> None:
    """Query parameters and body of a request to `match.method`; raises Violation."""
    method = match.method
    for name, values in params.items():
        spec = method.parameters.get(name) or UNLISTED.get(method.id, {}).get(name)
        if spec is None or spec.get("location") == "path":
            standard = SYSTEM_ALIASES.get(name, name)
            spec = method.doc.parameters.get(standard)
            if name.startswith("$") and name not in SYSTEM_ALIASES and name != "$.xgafv":
                spec = None
            if name == "$alt":  # `json;enum-encoding=int`: the format, then the gapic transport's options
                values = [v.split(";", 1)[0] for v in values]
        if spec is None:
            raise Violation(f"Invalid JSON payload received. Unknown name \"{name}\": Cannot bind query parameter. "
                            f"Field '{_snake(name)}' could not be found in request message.", name)
        if len(values) > 1 and not spec.get("repeated"):
            raise Violation(f"Invalid JSON payload received. Repeated values for field '{_snake(name)}' that is "
                            "not repeated.", name)
        for value in values:
            _check_query_value(name, spec, value)
            if spec.get("format") == "google-fieldmask" and method.request and not method.upload:
                for path in (p.strip() for p in value.split(",") if p.strip()):
                    if path != "*" and field_path(method.doc, method.request, path) is None:
                        raise Violation(f"Invalid field mask path \"{path}\": no such field in {method.request}.",
                                        name)
    for name, spec in method.parameters.items():
        if spec.get("location") == "query" and spec.get("required") and name not in params:
            raise Violation(f"Required query parameter '{name}' is missing ({method.id}).", name)
    if method.upload:
        return  # the object itself (media, or multipart with JSON metadata): its bytes are not a JSON message
    has_body = body is not None or bool(raw)
    if method.request is None:
        if isinstance(body, dict) and body:
            # Google binds what it cannot take as a body to the request message's fields, and finds none.
            name = next(iter(body))
            raise Violation(f"Invalid JSON payload received. Unknown name \"{name}\": Cannot bind query parameter. "
                            f"Field '{_snake(name)}' could not be found in request message.", name)
        if has_body:
            raise Violation(f"Invalid JSON payload received. {method.id} takes no request body, but one was sent.")
        return
    if raw and body is None:
        raise Violation("Invalid JSON payload received. Unexpected token: the body is not JSON.")
    if body is None:
        return  # an empty body is the empty message
    if not isinstance(body, dict):
        raise Violation(f"Invalid JSON payload received. Expected an object for {method.request}.")
    check_value(method.doc, {"$ref": method.request}, body, _body_field(method))


def _body_field(method: Method) -> str:
    """Where Google's messages place the body: under the request field it maps to (`service`, `iap_settings`) when
    the body is one resource of a larger request message; at the top when it is the whole request (`*Request`
    messages, and Pub/Sub's PUT creates whose request is the resource itself)."""
    name = method.request or ""
    if name.endswith("Request") or method.http_method == "PUT":
        return ""
    return _snake(re.sub(r"^Google(?:Cloud|Devtools|Iam)?[A-Z][a-z]+V\d+(?:beta\d*|alpha\d*)?", "", name))


def field_path(doc: Doc, schema: str, path: str) -> list[str] | None:
    """An update-mask path (`access_settings.oauth_settings`, snake or camel case) as the camelCase keys it names
    in `schema`, or None when a part names no field."""
    keys: list[str] = []
    current: dict[str, Any] | None = doc.schemas.get(schema)
    for part in path.split("."):
        props = (current or {}).get("properties") or {}
        key = part if part in props else _camel(part)
        if key not in props:
            return None
        keys.append(key)
        ref = props[key].get("$ref") or (props[key].get("items") or {}).get("$ref")
        current = doc.schemas.get(ref) if ref else {}
    return keys


def _check_query_value(name: str, spec: dict[str, Any], value: str) -> None:
    kind = spec.get("type", "string")
    enum = spec.get("enum")
    bad = False
    if enum is not None:
        bad = value not in enum and not (value.isdigit() and _enum_name(enum, int(value)))
    elif kind == "integer" or spec.get("format") in ("int64", "uint64", "int32", "uint32"):
        bad = re.fullmatch(r"-?\d+", value) is None
    elif kind == "boolean":
        bad = value not in ("true", "false", "True", "False", "1", "0")
    elif kind == "number":
        bad = re.fullmatch(r"-?\d+(\.\d*)?([eE][-+]?\d+)?", value) is None
    elif spec.get("format") == "google-duration":
        bad = re.fullmatch(r"-?\d+(\.\d+)?s", value) is None
    elif spec.get("format") in ("google-datetime", "date-time"):
        bad = _TIMESTAMP.fullmatch(value) is None
    if bad:
        raise Violation(f"Invalid value at '{_snake(name)}' ({_type_name(spec)}), \"{value}\"", name)


# --- values against schemas ----------------------------------------------------------------------------------------

_TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?(Z|[+-]\d\d:\d\d)")
_DURATION = re.compile(r"-?\d+(\.\d{1,9})?s")


def check_value(doc: Doc, schema: dict[str, Any], value: Any, at: str, *, response: bool = False) -> None:
    """`value` fits `schema` (a discovery JSON schema, `$ref`s resolved in `doc`); raises Violation naming where."""
    if "$ref" in schema:
        ref = schema["$ref"]
        target = doc.schemas.get(ref)
        if target is None:
            return  # a reference the document does not define: nothing to check against
        schema = target
    if value is None:
        return  # JSON null is the field's default in proto JSON
    kind = schema.get("type", "any")
    if kind == "object":
        if not isinstance(value, dict):
            raise _type_error(at, schema, value)
        props = schema.get("properties")
        extra = schema.get("additionalProperties")
        for key, item in value.items():
            where = f"{at}.{_snake(key)}" if at else _snake(key)
            if props is not None and key in props:
                check_value(doc, props[key], item, where, response=response)
            elif props is not None and _camel(key) in props:
                check_value(doc, props[_camel(key)], item, where, response=response)
            elif extra is not None:
                check_value(doc, extra, item, where, response=response)
            else:
                location = f" at '{at}'" if at else ""
                raise Violation(f"Invalid JSON payload received. Unknown name \"{key}\"{location}: Cannot find field.",
                                where)
        return
    if kind == "array":
        if not isinstance(value, list):
            raise _type_error(at, schema, value)
        for i, item in enumerate(value):
            check_value(doc, schema.get("items", {}), item, f"{at}[{i}]", response=response)
        return
    if "enum" in schema:
        names = schema["enum"]
        ok = (isinstance(value, str) and value in names) or (
            not response and isinstance(value, int) and not isinstance(value, bool) and _enum_name(names, value))
        if not ok:
            raise Violation(f"Invalid value at '{at}' ({_type_name(schema)}), {json.dumps(value)}", at)
        return
    fmt = schema.get("format")
    if kind == "string":
        if fmt in ("int64", "uint64") and isinstance(value, int) and not isinstance(value, bool):
            return
        if not isinstance(value, str):
            raise _type_error(at, schema, value)
        if fmt in ("int64", "uint64") and re.fullmatch(r"-?\d+", value) is None:
            raise _type_error(at, schema, value)
        if fmt == "google-duration" and _DURATION.fullmatch(value) is None:
            raise _type_error(at, schema, value)
        if fmt in ("google-datetime", "date-time") and _TIMESTAMP.fullmatch(value) is None:
            raise _type_error(at, schema, value)
        return
    if kind == "integer":
        if isinstance(value, bool) or not (isinstance(value, int) or (
                isinstance(value, str) and re.fullmatch(r"-?\d+", value))):
            raise _type_error(at, schema, value)
        return
    if kind == "number":
        if isinstance(value, bool) or not (isinstance(value, int | float) or value in ("NaN", "Infinity",
                                                                                          "-Infinity")):
            if not (isinstance(value, str) and re.fullmatch(r"-?\d+(\.\d*)?([eE][-+]?\d+)?", value)):
                raise _type_error(at, schema, value)
        return
    if kind == "boolean" and not isinstance(value, bool):
        raise _type_error(at, schema, value)


def _enum_name(names: list[str], number: int) -> str | None:
    from ltmctl.gcp.fake.enums import name_of

    return name_of(names, number)


def _type_error(at: str, schema: dict[str, Any], value: Any) -> Violation:
    from ltmctl.text import cut

    text = cut(json.dumps(value), 60)
    return Violation(f"Invalid value at '{at}' ({_type_name(schema)}), {text}", at)


def _type_name(schema: dict[str, Any]) -> str:
    fmt = schema.get("format")
    if "enum" in schema:
        return "TYPE_ENUM"
    return {"int32": "TYPE_INT32", "int64": "TYPE_INT64", "uint32": "TYPE_UINT32", "uint64": "TYPE_UINT64",
            "double": "TYPE_DOUBLE", "float": "TYPE_FLOAT", "byte": "TYPE_BYTES"}.get(
        fmt or "", {"string": "TYPE_STRING", "boolean": "TYPE_BOOL", "integer": "TYPE_INT32", "number": "TYPE_DOUBLE",
                    "object": "TYPE_MESSAGE", "array": "TYPE_MESSAGE"}.get(schema.get("type", ""), "TYPE_MESSAGE"))


def _snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower()


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def canonical(doc: Doc, schema: dict[str, Any], value: Any) -> Any:
    """`value` (already checked) as Google would store and echo it: enum numbers as names, field names in
    lowerCamelCase. The generated REST clients send enums as numbers; Google always answers with names."""
    if "$ref" in schema:
        schema = doc.schemas.get(schema["$ref"], {})
    if value is None:
        return None
    kind = schema.get("type", "any")
    if kind == "object" and isinstance(value, dict):
        props = schema.get("properties")
        extra = schema.get("additionalProperties")
        out = {}
        for key, item in value.items():
            if props is not None and (key in props or _camel(key) in props):
                name = key if key in props else _camel(key)
                out[name] = canonical(doc, props[name], item)
            else:
                out[key] = canonical(doc, extra, item) if extra is not None else item
        return out
    if kind == "array" and isinstance(value, list):
        return [canonical(doc, schema.get("items", {}), item) for item in value]
    if "enum" in schema and isinstance(value, int) and not isinstance(value, bool):
        from ltmctl.gcp.fake.enums import name_of

        return name_of(schema["enum"], value)
    return value
