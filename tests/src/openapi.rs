//! The OpenAPI document (`docs/openapi.json`) as tests use it: find an operation's
//! documented response for a status, and check a real response's body and headers against
//! it. The checker covers the JSON Schema subset the document uses (OpenAPI 3.0: `$ref`,
//! `type` with `nullable`, `properties`, `required`, `additionalProperties`, `items`,
//! `enum`, `minimum`/`maximum`, `minLength`/`maxLength` in characters, `maxItems`, `anyOf`,
//! `format: date-time` and `uri`, and the simple anchored `pattern`s the document has);
//! a keyword it does not know fails the check rather than passing silently.

use serde_json::Value;

/// The document, parsed.
pub fn document() -> Value {
    serde_json::from_str(rt_relay_gateway::openapi::DOCUMENT).expect("docs/openapi.json is JSON")
}

/// Follows a local `$ref` (`#/components/...`).
pub fn resolve<'a>(doc: &'a Value, value: &'a Value) -> &'a Value {
    let mut v = value;
    for _ in 0..16 {
        let Some(r) = v.get("$ref").and_then(Value::as_str) else {
            return v;
        };
        let pointer = r.strip_prefix('#').unwrap_or_else(|| panic!("non-local $ref {r}"));
        v = doc.pointer(pointer).unwrap_or_else(|| panic!("$ref {r} points nowhere"));
    }
    panic!("$ref chain too long at {value}")
}

/// The operation object at `path` (as written in the document) and `method` (lower case).
pub fn operation<'a>(doc: &'a Value, path: &str, method: &str) -> &'a Value {
    doc["paths"]
        .get(path)
        .and_then(|p| p.get(method))
        .unwrap_or_else(|| panic!("the document has no {method} {path}"))
}

/// Checks a real response against the operation's documented response for `status`:
/// the status is documented, the body is JSON matching its schema, and every header the
/// document marks required is present and matches. Returns the problems found.
pub fn check_response(
    doc: &Value,
    path: &str,
    method: &str,
    status: u16,
    headers: &reqwest::header::HeaderMap,
    body: &[u8],
) -> Vec<String> {
    let op = operation(doc, path, method);
    let Some(resp) = op["responses"].get(status.to_string()).map(|r| resolve(doc, r)) else {
        return vec![format!("{method} {path}: status {status} is not documented")];
    };
    let mut problems = Vec::new();
    for (name, h) in resp.get("headers").and_then(Value::as_object).into_iter().flatten() {
        let h = resolve(doc, h);
        match headers.get(name.as_str()).and_then(|v| v.to_str().ok()) {
            None if h["required"] == true => {
                problems.push(format!("{method} {path} {status}: header {name} is missing"))
            }
            None => {}
            Some(v) => validate(
                doc,
                &h["schema"],
                &Value::String(v.to_owned()),
                &format!("header {name}"),
                &mut problems,
            ),
        }
    }
    let Some(media) = resp.get("content").and_then(|c| c.get("application/json")) else {
        return problems;
    };
    let content_type = headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("");
    if !content_type.starts_with("application/json") {
        problems.push(format!(
            "{method} {path} {status}: content-type {content_type:?}, documented application/json"
        ));
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(json) => validate(doc, &media["schema"], &json, "body", &mut problems),
        Err(e) => problems.push(format!("{method} {path} {status}: body is not JSON: {e}")),
    }
    problems
}

/// Validates `value` against `schema`, appending a message per problem (`at` names the place).
pub fn validate(doc: &Value, schema: &Value, value: &Value, at: &str, problems: &mut Vec<String>) {
    let schema = resolve(doc, schema);
    let Some(map) = schema.as_object() else {
        problems.push(format!("{at}: schema is not an object: {schema}"));
        return;
    };
    if value.is_null() && schema["nullable"] == true {
        return;
    }
    for (keyword, arg) in map {
        match keyword.as_str() {
            "description" | "nullable" | "default" | "example" | "title" => {}
            "type" => {
                let ok = match arg.as_str().unwrap_or("") {
                    "object" => value.is_object(),
                    "array" => value.is_array(),
                    "string" => value.is_string(),
                    "integer" => value.is_i64() || value.is_u64(),
                    "number" => value.is_number(),
                    "boolean" => value.is_boolean(),
                    other => {
                        problems.push(format!("{at}: unknown type {other}"));
                        true
                    }
                };
                if !ok {
                    problems.push(format!("{at}: expected {arg}, got {value}"));
                    return;
                }
            }
            "format" => {
                if let Some(s) = value.as_str() {
                    let ok = match arg.as_str().unwrap_or("") {
                        "date-time" => chrono::DateTime::parse_from_rfc3339(s).is_ok(),
                        "uri" => url::Url::parse(s).is_ok(),
                        // Formats that only describe (int64, email) are not checked.
                        _ => true,
                    };
                    if !ok {
                        problems.push(format!("{at}: {s:?} is not a {arg}"));
                    }
                }
            }
            "properties" => {
                if let Some(obj) = value.as_object() {
                    for (name, sub) in arg.as_object().into_iter().flatten() {
                        if let Some(v) = obj.get(name) {
                            validate(doc, sub, v, &format!("{at}.{name}"), problems);
                        }
                    }
                }
            }
            "required" => {
                if let Some(obj) = value.as_object() {
                    for name in arg.as_array().into_iter().flatten().filter_map(Value::as_str) {
                        if !obj.contains_key(name) {
                            problems.push(format!("{at}: required property {name} is missing"));
                        }
                    }
                }
            }
            "additionalProperties" => {
                if let (Some(obj), Some(false)) = (value.as_object(), arg.as_bool()) {
                    let known = map.get("properties").and_then(Value::as_object);
                    for name in obj.keys().filter(|k| !known.is_some_and(|p| p.contains_key(*k))) {
                        problems.push(format!("{at}: property {name} is not in the document"));
                    }
                } else if !arg.is_boolean() {
                    problems.push(format!(
                        "{at}: additionalProperties with a schema is not supported by this checker"
                    ));
                }
            }
            "items" => {
                for (i, item) in value.as_array().into_iter().flatten().enumerate() {
                    validate(doc, arg, item, &format!("{at}[{i}]"), problems);
                }
            }
            "maxItems" => {
                if let (Some(a), Some(max)) = (value.as_array(), arg.as_u64()) {
                    if a.len() as u64 > max {
                        problems.push(format!("{at}: {} items, at most {max}", a.len()));
                    }
                }
            }
            "enum" => {
                if !arg.as_array().is_some_and(|options| options.contains(value)) {
                    problems.push(format!("{at}: {value} is not one of {arg}"));
                }
            }
            "minimum" | "maximum" => {
                if let (Some(v), Some(bound)) = (value.as_f64(), arg.as_f64()) {
                    if (keyword == "minimum" && v < bound) || (keyword == "maximum" && v > bound) {
                        problems.push(format!("{at}: {value} breaks {keyword} {arg}"));
                    }
                }
            }
            "minLength" | "maxLength" => {
                if let (Some(s), Some(bound)) = (value.as_str(), arg.as_u64()) {
                    let n = s.chars().count() as u64;
                    if (keyword == "minLength" && n < bound)
                        || (keyword == "maxLength" && n > bound)
                    {
                        problems.push(format!("{at}: {n} characters break {keyword} {bound}"));
                    }
                }
            }
            "pattern" => {
                if let Some(s) = value.as_str() {
                    match matches_simple_pattern(arg.as_str().unwrap_or(""), s) {
                        Some(true) => {}
                        Some(false) => problems.push(format!("{at}: {s:?} does not match {arg}")),
                        None => {
                            problems.push(format!("{at}: pattern {arg} is beyond this checker"))
                        }
                    }
                }
            }
            "anyOf" => {
                let options = arg.as_array().cloned().unwrap_or_default();
                let fits = options.iter().any(|option| {
                    let mut p = Vec::new();
                    validate(doc, option, value, at, &mut p);
                    p.is_empty()
                });
                if !fits {
                    problems.push(format!("{at}: {value} matches none of anyOf"));
                }
            }
            other => {
                problems.push(format!("{at}: keyword {other} is not supported by this checker"))
            }
        }
    }
}

/// The document's patterns are anchored sequences of literals and character classes with
/// `*` / `+`: `^[a-z][a-z0-9_]*$`, `^ticket-[1-9][0-9]*-created$`, `^/tickets/[1-9][0-9]*$`,
/// `^[!-~]+$`. This matches those (greedy, with backtracking); `None` for anything else.
pub fn matches_simple_pattern(pattern: &str, text: &str) -> Option<bool> {
    #[derive(Debug)]
    enum Atom {
        Lit(char),
        Class(Vec<(char, char)>),
    }
    let inner = pattern.strip_prefix('^')?.strip_suffix('$')?;
    // One top-level group of alternatives, `^(A|B)$`: any alternative matching is a match.
    if let Some(group) = inner.strip_prefix('(').and_then(|g| g.strip_suffix(')')) {
        if !group.contains(['(', ')']) {
            let mut any = false;
            for alternative in group.split('|') {
                any |= matches_simple_pattern(&format!("^{alternative}$"), text)?;
            }
            return Some(any);
        }
    }
    let chars: Vec<char> = inner.chars().collect();
    let mut atoms: Vec<(Atom, usize, usize)> = Vec::new(); // atom, min, max repeats
    let mut i = 0;
    while i < chars.len() {
        let atom = match chars[i] {
            '[' => {
                let end = chars[i..].iter().position(|c| *c == ']')? + i;
                let body = &chars[i + 1..end];
                let mut ranges = Vec::new();
                let mut j = 0;
                while j < body.len() {
                    if j + 2 < body.len() && body[j + 1] == '-' {
                        ranges.push((body[j], body[j + 2]));
                        j += 3;
                    } else {
                        ranges.push((body[j], body[j]));
                        j += 1;
                    }
                }
                i = end + 1;
                Atom::Class(ranges)
            }
            '\\' | '(' | ')' | '|' | '.' | '?' | '{' | '*' | '+' => return None,
            c => {
                i += 1;
                Atom::Lit(c)
            }
        };
        let (min, max) = match chars.get(i) {
            Some('*') => {
                i += 1;
                (0, usize::MAX)
            }
            Some('+') => {
                i += 1;
                (1, usize::MAX)
            }
            _ => (1, 1),
        };
        atoms.push((atom, min, max));
    }
    fn fits(atom: &Atom, c: char) -> bool {
        match atom {
            Atom::Lit(l) => *l == c,
            Atom::Class(ranges) => ranges.iter().any(|(a, b)| (*a..=*b).contains(&c)),
        }
    }
    fn go(atoms: &[(Atom, usize, usize)], text: &[char]) -> bool {
        let Some(((atom, min, max), rest)) = atoms.split_first() else {
            return text.is_empty();
        };
        let mut n = 0;
        while n < *max && n < text.len() && fits(atom, text[n]) {
            n += 1;
        }
        (*min..=n).rev().any(|k| go(rest, &text[k..]))
    }
    let text: Vec<char> = text.chars().collect();
    Some(go(&atoms, &text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simple_patterns() {
        assert_eq!(matches_simple_pattern("^[a-z][a-z0-9_]*$", "rt_timeout"), Some(true));
        assert_eq!(matches_simple_pattern("^[a-z][a-z0-9_]*$", "Bad"), Some(false));
        assert_eq!(
            matches_simple_pattern("^ticket-[1-9][0-9]*-created$", "ticket-42-created"),
            Some(true)
        );
        assert_eq!(
            matches_simple_pattern("^ticket-[1-9][0-9]*-created$", "ticket-042-created"),
            Some(false)
        );
        assert_eq!(matches_simple_pattern("^/tickets/[1-9][0-9]*$", "/tickets/7"), Some(true));
        assert_eq!(matches_simple_pattern("^[!-~]+$", "a b"), Some(false));
        assert_eq!(matches_simple_pattern("^a(b|c)$", "ab"), None);
    }
}
