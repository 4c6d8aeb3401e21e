"""Schemathesis hooks for scripts/schemathesis.sh (loaded through SCHEMATHESIS_HOOKS).

They only bring POSITIVE (schema-valid) cases within rules docs/openapi.json states in words
because JSON Schema cannot express them; negative cases are left alone.

- A `cursor` is opaque: only a `next_cursor` this API issued for the same query is accepted;
  any other non-empty string is 400 `invalid_cursor`. A generated cursor is never a valid
  one, so positive cases leave it out (valid cursors are covered by tests/tests/openapi.rs
  with real pages).
- A `since` position is, like a cursor, something this API issued: the id of a notification
  the caller received. Any other id is 410 `position_expired` (unknown or beyond
  retention), and `since` with `type` is 400 (the document says it cannot be combined), so
  positive cases leave it out; tests/tests/live_feed.rs covers real positions.
- An `Idempotency-Key` names ONE request: reusing it with another body is 422 and, while
  the first is in flight, 409 (the document says so). Generators reuse example values
  freely, so a positive case gets a key derived from its own method, path and body: the
  same request replays (201), a different one never collides.
- Byte limits (`title`, `queue` at most 200 UTF-8 bytes, `status` 64, `requestor` 254 with
  a local part of at most 64): the document's `maxLength` counts characters, so a positive
  case's value is cut, character by character, until it fits in bytes as well.
"""

import hashlib
import json

import schemathesis

BYTE_LIMITS = {"title": 200, "queue": 200, "status": 64}


def fit_bytes(value, limit):
    """`value` cut from the end until its trimmed form is at most `limit` UTF-8 bytes,
    keeping a non-blank character (the trimmed value may not be empty)."""
    while len(value.strip().encode("utf-8")) > limit:
        value = value[:-1]
    return value if value.strip() else "x"


def fit_requestor(value):
    email = value.strip()
    local, _, domain = email.rpartition("@")
    if len(local.encode("utf-8")) <= 64 and len(email.encode("utf-8")) <= 254:
        return value
    return "schemathesis@example.com"


def fit_fields(fields):
    if not isinstance(fields, dict):
        return
    for name, limit in BYTE_LIMITS.items():
        if isinstance(fields.get(name), str):
            fields[name] = fit_bytes(fields[name], limit)
    if isinstance(fields.get("requestor"), str):
        fields["requestor"] = fit_requestor(fields["requestor"])


@schemathesis.hook
def map_case(context, case):
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive:
        return case
    if case.query:
        case.query.pop("cursor", None)
        case.query.pop("since", None)
        fit_fields(case.query)
    fit_fields(case.body)
    if case.headers and any(h.lower() == "idempotency-key" for h in case.headers):
        for h in [h for h in case.headers if h.lower() == "idempotency-key"]:
            del case.headers[h]
        body = json.dumps(case.body, sort_keys=True, default=str)
        digest = hashlib.sha256(f"{case.method} {case.path}\n{body}".encode()).hexdigest()
        case.headers["Idempotency-Key"] = f"st-{digest[:40]}"
    return case
