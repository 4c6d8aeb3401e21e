//! Reading RT REST 1.0's answers, without I/O: the status line that opens every answer (the
//! HTTP status is always 200), the forms RT composes, and what a refusal means. The form rules
//! mirror RT 5.0.3's `RT::Interface::REST::form_parse` (see [`super::form`] for the writing
//! side). Every operation works on whole characters: an answer in any language or charset
//! cannot make a parser panic.

use super::super::{answer, strip_prefix_ignore_ascii_case, RtError};

/// The status line opening every REST 1.0 answer, `RT/<version> <code> <text>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Answer<'a> {
    /// The real status (the HTTP status is always 200).
    pub code: u16,
    /// The status text, e.g. `Ok` or `Credentials required`.
    pub reason: &'a str,
    /// What follows the status line and the one empty line after it.
    pub body: &'a str,
}

/// Parses `^RT/\S+ (\d+) (.*)$` (the version may look like `5.0.3+dfsg-3~deb12u6`).
pub fn parse_status_line(line: &str) -> Option<(u16, &str)> {
    let rest = line.strip_prefix("RT/")?;
    let (version, rest) = rest.split_once(' ')?;
    if version.is_empty() || version.chars().any(char::is_whitespace) {
        return None;
    }
    let (code, reason) = match rest.split_once(' ') {
        Some((code, reason)) => (code, reason),
        None => (rest, ""),
    };
    if code.is_empty() || code.len() > 3 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((code.parse().ok()?, reason.trim_end_matches('\r')))
}

/// Splits an answer into its status and body. RT writes `status\n\nbody`; exactly that one
/// empty line is removed, so a raw attachment body keeps its own leading newlines.
pub fn parse_answer(text: &str) -> Option<Answer<'_>> {
    let (line, rest) = text.split_once('\n').unwrap_or((text, ""));
    let (code, reason) = parse_status_line(line)?;
    Some(Answer { code, reason, body: rest.strip_prefix('\n').unwrap_or(rest) })
}

/// Splits an answer made of several answers one after another (RT's `show` of several
/// history entries writes one status line per entry).
pub fn parse_answers(text: &str) -> Vec<Answer<'_>> {
    let mut starts = Vec::new();
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        if parse_status_line(line.trim_end_matches('\n')).is_some() {
            starts.push(offset);
        }
        offset += line.len();
    }
    starts
        .iter()
        .enumerate()
        .filter_map(|(i, &start)| {
            let end = starts.get(i + 1).copied().unwrap_or(text.len());
            text.get(start..end).and_then(parse_answer)
        })
        .collect()
}

/// One form of an answer: its leading `#` comments and its fields in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ParsedForm {
    /// Comment lines without the leading `# `.
    pub comments: Vec<String>,
    /// `(key, value)` pairs; multi-line values are joined with `\n`.
    pub fields: Vec<(String, String)>,
}

impl ParsedForm {
    /// The value of a field, its name compared case-insensitively.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.fields.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| v.as_str())
    }

    fn is_empty(&self) -> bool {
        self.comments.is_empty() && self.fields.is_empty()
    }
}

/// Whether `key` is a plain RT field name, `[A-Za-z][A-Za-z0-9_-]*` (the only names
/// [`super::form::Form`] writes).
pub(super) fn is_field_name(key: &str) -> bool {
    let mut chars = key.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// Whether `key` names a custom field, `CF.{name}` (`CF.` in any case).
fn is_custom_field_name(key: &str) -> bool {
    strip_prefix_ignore_ascii_case(key, "CF.")
        .and_then(|rest| rest.strip_prefix('{'))
        .is_some_and(|rest| rest.ends_with('}'))
}

/// Splits a field line `Key: value` (RT's `field_spec`, custom fields included).
pub(super) fn field_line(line: &str) -> Option<(&str, &str)> {
    let (key, value) = line.split_once(':')?;
    if !is_field_name(key) && !is_custom_field_name(key) {
        return None;
    }
    if value.is_empty() {
        return Some((key, ""));
    }
    // RT requires whitespace after the colon and drops all of it.
    if !value.starts_with(char::is_whitespace) {
        return None;
    }
    Some((key, value.trim_start()))
}

/// Whether a line continues the field above it: empty, or starting with whitespace.
fn is_continuation(line: &str) -> bool {
    line.is_empty() || line.starts_with(char::is_whitespace)
}

/// A field's value from its first line and continuation lines, the way RT joins them: empty
/// lines at the end dropped, the shortest leading whitespace of the continuation lines
/// removed from every line that starts with exactly that prefix, empty lines at the start
/// dropped, lines joined with `\n`.
fn field_value(mut lines: Vec<&str>) -> String {
    while lines.len() > 1 && lines.last().is_some_and(|v| v.is_empty()) {
        lines.pop();
    }
    let indent = lines
        .iter()
        .skip(1)
        .filter_map(|v| v.strip_suffix(v.trim_start()))
        .filter(|ws| !ws.is_empty())
        .min_by_key(|ws| ws.chars().count())
        .unwrap_or("");
    let kept: Vec<&str> = lines
        .iter()
        .map(|v| v.strip_prefix(indent).unwrap_or(v))
        .skip_while(|v| v.is_empty())
        .collect();
    kept.join("\n")
}

/// Parses the forms of an answer body the way RT's `form_parse` reads them: `--` separates
/// forms, indented lines continue a field and lose their common indent.
pub fn parse_forms(text: &str) -> Vec<ParsedForm> {
    let mut forms = Vec::new();
    let mut form = ParsedForm::default();
    let mut lines = text.split('\n').peekable();
    while let Some(line) = lines.next() {
        if line.is_empty() {
            continue;
        }
        if line == "--" {
            if !form.is_empty() {
                forms.push(std::mem::take(&mut form));
            }
        } else if let Some(comment) = line.strip_prefix('#') {
            form.comments.push(comment.strip_prefix(' ').unwrap_or(comment).to_owned());
        } else if let Some((key, first)) = field_line(line) {
            let mut values = vec![first];
            while let Some(more) = lines.next_if(|l| is_continuation(l)) {
                values.push(more);
            }
            form.fields.push((key.to_owned(), field_value(values)));
        }
        // Anything else is not part of a form RT composes; it is skipped.
    }
    if !form.is_empty() {
        forms.push(form);
    }
    forms
}

/// Splits a raw answer (bytes, as read) after its status line: the status code if the first
/// line is one, and the bytes after that line.
pub(super) fn raw_status(raw: &[u8]) -> (Option<u16>, &[u8]) {
    let (line, rest) = match raw.iter().position(|&b| b == b'\n') {
        Some(end) => (raw.get(..end).unwrap_or_default(), raw.get(end + 1..).unwrap_or_default()),
        None => (raw, &[][..]),
    };
    (parse_status_line(&String::from_utf8_lossy(line)).map(|(code, _)| code), rest)
}

/// The error a form's `#` comments report, if any (`# Ticket 7 does not exist.`, ...).
pub(super) fn comment_error(comments: &[String]) -> Option<RtError> {
    let text = comments.join(" ");
    let lower = text.to_ascii_lowercase();
    if lower.contains("does not exist") {
        Some(RtError::NotFound)
    } else if lower.contains("not allowed")
        || lower.contains("no permission")
        || lower.contains("permission denied")
    {
        Some(RtError::Forbidden(answer::message(&text)))
    } else {
        None
    }
}

/// The message of a refusal that is fit for a client: RT's own words, i.e. the first
/// paragraph of the body (`# ` removed) up to the first field line, since RT repeats the
/// submitted form under some refusals and that echo is not a message; else the status text;
/// else a fixed text.
fn refusal_message(answer: &Answer<'_>) -> String {
    let own: Vec<&str> = answer
        .body
        .lines()
        .map(str::trim)
        .skip_while(|l| l.is_empty())
        .take_while(|l| !l.is_empty() && field_line(l).is_none())
        .map(|l| l.trim_start_matches('#').trim_start())
        .collect();
    let own = own.join(" ");
    let said = [own.as_str(), answer.reason].into_iter().find(|m| !m.trim().is_empty());
    answer::message_or(said, "no message from RT")
}

/// Maps an answer's status to an error, or returns the answer.
fn check_status(answer: Answer<'_>) -> Result<Answer<'_>, RtError> {
    let msg = || refusal_message(&answer);
    match answer.code {
        200 => Ok(answer),
        401 => Err(RtError::Unauthenticated),
        403 => Err(RtError::Forbidden(msg())),
        404 => Err(RtError::NotFound),
        400 | 409 | 422 => Err(RtError::Rejected(msg())),
        code @ 500..=599 => Err(RtError::Server(code)),
        code => Err(RtError::Malformed(format!("RT REST 1.0 status {code} {}", answer.reason))),
    }
}

/// Reads an answer's status line and maps a refusal to its error.
pub(super) fn parse_answer_text(text: &str) -> Result<Answer<'_>, RtError> {
    // RT prints nothing at all, not even a status line, for a 200 with nothing to say
    // (e.g. the attachment list of a ticket without attachments).
    if text.is_empty() {
        return Ok(Answer { code: 200, reason: "", body: "" });
    }
    let answer = parse_answer(text).ok_or_else(|| {
        let start: String = text.chars().take(80).collect();
        RtError::Malformed(format!("not an RT REST 1.0 answer: {start:?}"))
    })?;
    check_status(answer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines_parse_with_debian_versions() {
        assert_eq!(parse_status_line("RT/5.0.3+dfsg-3~deb12u6 200 Ok"), Some((200, "Ok")));
        assert_eq!(
            parse_status_line("RT/4.4.4 401 Credentials required"),
            Some((401, "Credentials required"))
        );
        assert_eq!(parse_status_line("RT/5.0.3 409 Syntax Error\r"), Some((409, "Syntax Error")));
        assert_eq!(parse_status_line("RT/5.0.3 200"), Some((200, "")));
        for bad in [
            "",
            "RT/ 200 Ok",
            "HTTP/1.1 200 OK",
            "RT/5 abc Ok",
            "RT/5 2000 Ok",
            "rt/5 200 Ok",
            "RT/5  200 Ok",
        ] {
            assert_eq!(parse_status_line(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn answers_keep_raw_bodies_exact() {
        let a = parse_answer("RT/5.0.3 200 Ok\n\n\n  raw\n\n").unwrap();
        assert_eq!((a.code, a.reason, a.body), (200, "Ok", "\n  raw\n\n"));
        let a = parse_answer("RT/5.0.3 401 Credentials required\n").unwrap();
        assert_eq!((a.code, a.body), (401, ""));
        assert!(parse_answer("<html>").is_none());
        assert!(parse_answer("").is_none());
    }

    #[test]
    fn several_answers_split_at_their_status_lines() {
        let text = "RT/5 200 Ok\n\n# 1/1 (id/48/total)\n\nTicket: 3\nCreated: 2026-11-29 00:02:54\nid: 48\n\n\
                    RT/5 200 Ok\n\n# Ticket 9999 does not exist.\n\n\n";
        let answers = parse_answers(text);
        assert_eq!(answers.len(), 2);
        let first = &parse_forms(answers[0].body)[0];
        assert_eq!(first.get("ticket"), Some("3"));
        assert_eq!(first.get("Created"), Some("2026-11-29 00:02:54"));
        assert_eq!(parse_forms(answers[1].body)[0].comments, vec!["Ticket 9999 does not exist."]);
    }

    #[test]
    fn composed_forms_parse_back() {
        let text = "id: ticket/2\nQueue: General\nSubject: Owner: root  \nRequestors: a@example.com, b@example.com,\n            c@example.com\n\
                    Created: Sat Nov 28 23:58:11 2026\n\n--\n\nid: ticket/1\nSubject: --\nAttachments: \n             22: untitled (0b)\n\n";
        let forms = parse_forms(text);
        assert_eq!(forms.len(), 2);
        assert_eq!(forms[0].get("subject"), Some("Owner: root  "));
        assert_eq!(
            forms[0].get("Requestors"),
            Some("a@example.com, b@example.com,\nc@example.com")
        );
        assert_eq!(forms[1].get("Subject"), Some("--"));
        assert_eq!(forms[1].get("Attachments"), Some("22: untitled (0b)"));
        assert_eq!(forms[1].get("Queue"), None);
    }

    #[test]
    fn multi_byte_keys_never_split_a_character() {
        // `a日b` and `aaéx` once panicked: the custom-field check sliced the key's first three
        // bytes, which end inside a character there.
        let text =
            "a日b: x\naaéx: y\nCé.{z}: z\nCF.{日本}: cf\ncf.{é}: lower\n日本語: no\nid: ticket/1\n";
        let forms = parse_forms(text);
        assert_eq!(
            forms[0].fields,
            vec![
                ("CF.{日本}".to_owned(), "cf".to_owned()),
                ("cf.{é}".to_owned(), "lower".to_owned()),
                ("id".to_owned(), "ticket/1".to_owned()),
            ]
        );
        // Every prefix of a multi-byte text, as a key and as an answer.
        let sample = "CF.{é日🎫}: v\n# ü\n  ção\n";
        for (cut, _) in sample.char_indices() {
            let (head, tail) = sample.split_at(cut);
            for piece in [head, tail] {
                parse_forms(piece);
                parse_answers(piece);
                let _ = parse_answer_text(&format!("RT/5 400 Bad\n\n{piece}"));
                let _ = field_line(&format!("{piece}: x"));
            }
        }
    }

    #[test]
    fn raw_answers_split_after_the_status_line_whatever_the_bytes() {
        assert_eq!(raw_status(b"RT/5 200 Ok\n\nx\xff"), (Some(200), &b"\nx\xff"[..]));
        assert_eq!(raw_status(b"RT/5 404 Not\xc3"), (Some(404), &b""[..]));
        assert_eq!(raw_status(b"\xe6\x97\n"), (None, &b""[..]));
    }

    #[test]
    fn comments_report_missing_and_forbidden_tickets() {
        assert!(matches!(
            comment_error(&["Ticket 9 does not exist.".into()]),
            Some(RtError::NotFound)
        ));
        assert!(matches!(
            comment_error(&["You are not allowed to display ticket 9.".into()]),
            Some(RtError::Forbidden(_))
        ));
        assert!(comment_error(&["1/1 (id/38/total)".into()]).is_none());
    }

    #[test]
    fn statuses_map_to_errors() {
        let err = |text: &str| parse_answer_text(text).err();
        assert!(err("RT/5.0.3+dfsg-3~deb12u6 200 Ok\n\nx").is_none());
        assert!(matches!(
            err("RT/5.0.3 401 Credentials required\n\nYour username or password is incorrect\n"),
            Some(RtError::Unauthenticated)
        ));
        assert!(
            matches!(err("RT/5.0.3 400 Bad request\n\nInvalid query: 'x'.\n"), Some(RtError::Rejected(m)) if m == "Invalid query: 'x'.")
        );
        assert!(matches!(
            err("RT/5.0.3 409 Syntax Error\n\n# Could not create ticket.\n"),
            Some(RtError::Rejected(_))
        ));
        assert!(matches!(
            err("RT/5.0.3 500 Server Error\n\nUnsupported object type."),
            Some(RtError::Server(500))
        ));
        assert!(matches!(err("<html>login</html>"), Some(RtError::Malformed(_))));
        assert!(err("").is_none(), "RT's silent 200");
    }

    #[test]
    fn refusals_pass_on_rt_s_own_words_never_the_echoed_form() {
        let message = |text: &str| match parse_answer_text(text) {
            Err(RtError::Rejected(m) | RtError::Forbidden(m)) => m,
            other => panic!("{text:?}: {other:?}"),
        };
        let echo =
            "RT/5.0.3 409 Syntax Error\n\n# Could not create ticket.\n# Unknown field: Bogus\n\n\
                    id: ticket/new\nQueue: General\nText: \n  a private description\n";
        assert_eq!(message(echo), "Could not create ticket. Unknown field: Bogus");
        assert_eq!(
            message("RT/5.0.3 409 Syntax Error\n\nid: ticket/new\nText: secret\n"),
            "Syntax Error"
        );
        assert_eq!(message("RT/5.0.3 403 \n\n"), "no message from RT");
        assert_eq!(message("RT/5.0.3 400 Bad request\n\n日本語の説明\n"), "日本語の説明");
    }
}
