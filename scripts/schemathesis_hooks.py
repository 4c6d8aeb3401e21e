"""Schemathesis hooks for scripts/schemathesis.sh (loaded through SCHEMATHESIS_HOOKS).

A `cursor` is opaque: only a `next_cursor` this API issued for the same query is accepted;
any other non-empty string is 400 `invalid_cursor`, as docs/openapi.json says. JSON Schema
cannot describe "a string this server issued", so a generated cursor is never a valid one:
positive (schema-valid) cases leave it out, negative cases keep testing that bad cursors
are refused, and valid cursors are covered by tests/tests/openapi.rs (real pages).
"""

import schemathesis


@schemathesis.hook
def map_case(context, case):
    meta = case.meta
    if meta is not None and meta.generation.mode.is_positive and case.query:
        case.query.pop("cursor", None)
    return case
