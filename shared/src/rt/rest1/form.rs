//! Writing RT REST 1.0's text forms, without I/O: an encoder that makes field injection
//! impossible and carries multi-line text byte for byte ([`super::parse`] reads RT's answers).
//! RT reads a submitted form with RT 5.0.3's `RT::Interface::REST::form_parse`:
//!
//! * A line `Key: value` starts a field; a line `--` starts a new form; `#` lines are comments.
//! * Lines that are empty or start with whitespace continue the field above. RT then drops
//!   empty lines at the end, finds the SHORTEST leading whitespace of the continuation lines,
//!   removes exactly that prefix from every line, drops empty lines at the start, and joins the
//!   lines with `\n`. A key given twice becomes a list that RT splits at commas.
//!
//! How [`Form::text`] encodes a multi-line value so that this parse returns it unchanged:
//!
//! ```text
//! Text:            <- empty first line: RT's `\s+` would eat the value's leading whitespace
//!  ␠               <- marker: a line of exactly one space, so the common indent is exactly one
//!  ␠line one          space even when every line of the text is itself indented
//!  ␠  indented
//!  ␠               <- an empty line of the text (one space, so RT keeps it, also at the end)
//! ```
//!
//! Every text line gets one leading space, so no line of the text can start a field, a form
//! (`--`) or a comment. After RT strips the one-space indent, the marker and the empty first
//! line are the only empty lines at the start, which RT drops. The one thing this cannot carry
//! is a text whose first line is empty (it starts with `\n`): RT drops leading empty lines
//! whatever their encoding, so [`Form::text`] refuses such a value.

use std::fmt::Write as _;

use super::parse::is_field_name;

/// Why a value cannot be put into a REST 1.0 form without changing its meaning.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormError {
    /// Not a plain RT field name (`[A-Za-z][A-Za-z0-9_-]*`).
    #[error("{0:?} is not a valid RT field name")]
    BadKey(String),
    /// The same field twice: RT would turn it into a comma-split list.
    #[error("field {0} is given twice")]
    DuplicateKey(String),
    /// A one-line value with a control character (newline, carriage return, tab, ...).
    #[error("{0} must be one line without control characters")]
    ControlCharacter(String),
    /// A one-line value starting with whitespace, which RT would drop.
    #[error("{0} must not start with whitespace")]
    LeadingWhitespace(String),
    /// A text starting with an empty line, which RT REST 1.0 always drops.
    #[error("{0} must not start with an empty line: RT REST 1.0 drops leading empty lines")]
    LeadingEmptyLine(String),
}

/// A REST 1.0 form under construction (the `content` of e.g. `ticket/new`).
#[derive(Debug, Default, Clone)]
pub struct Form {
    text: String,
    keys: Vec<String>,
}

impl Form {
    /// An empty form.
    pub fn new() -> Self {
        Self::default()
    }

    fn add_key(&mut self, key: &str) -> Result<(), FormError> {
        if !is_field_name(key) {
            return Err(FormError::BadKey(key.to_owned()));
        }
        if self.keys.iter().any(|k| k.eq_ignore_ascii_case(key)) {
            return Err(FormError::DuplicateKey(key.to_owned()));
        }
        self.keys.push(key.to_owned());
        Ok(())
    }

    /// Adds a one-line field. Refuses control characters (a newline would start a new
    /// field) and leading whitespace (RT would drop it); trailing whitespace is kept.
    pub fn line(&mut self, key: &str, value: &str) -> Result<&mut Self, FormError> {
        if value.chars().any(char::is_control) {
            return Err(FormError::ControlCharacter(key.to_owned()));
        }
        if value.starts_with(char::is_whitespace) {
            return Err(FormError::LeadingWhitespace(key.to_owned()));
        }
        self.add_key(key)?;
        if value.is_empty() {
            let _ = writeln!(self.text, "{key}:");
        } else {
            let _ = writeln!(self.text, "{key}: {value}");
        }
        Ok(self)
    }

    /// Adds a multi-line field that RT reads back byte for byte (see the module docs).
    /// Refuses only a value whose first line is empty.
    pub fn text(&mut self, key: &str, value: &str) -> Result<&mut Self, FormError> {
        if value.starts_with('\n') {
            return Err(FormError::LeadingEmptyLine(key.to_owned()));
        }
        self.add_key(key)?;
        self.text.reserve(value.len() + value.len() / 16 + key.len() + 8);
        let _ = writeln!(self.text, "{key}:");
        self.text.push_str(" \n");
        for line in value.split('\n') {
            self.text.push(' ');
            self.text.push_str(line);
            self.text.push('\n');
        }
        Ok(self)
    }

    /// The form's text.
    pub fn finish(self) -> String {
        self.text
    }
}

#[cfg(test)]
mod tests {
    use super::{super::parse::field_line, *};

    /// RT 5.0.3's `form_parse` for one form, transcribed line by line from
    /// `RT::Interface::REST` (Perl): the oracle the encoder is checked against.
    fn rt_form_parse(content: &str) -> Vec<Vec<(String, String)>> {
        let mut forms = Vec::new();
        let mut fields: Vec<(String, String)> = Vec::new();
        // Perl's split drops trailing empty fields.
        let mut lines: Vec<&str> = content.split('\n').collect();
        while lines.last() == Some(&"") {
            lines.pop();
        }
        let mut i = 0;
        while i < lines.len() {
            let line = lines[i];
            i += 1;
            if line.is_empty() {
                continue;
            }
            if line == "--" {
                if !fields.is_empty() {
                    forms.push(std::mem::take(&mut fields));
                }
                continue;
            }
            let Some((key, first)) = field_line(line) else {
                continue;
            };
            let mut v: Vec<String> = vec![first.to_owned()];
            while i < lines.len()
                && (lines[i].is_empty() || lines[i].starts_with(char::is_whitespace))
            {
                v.push(lines[i].to_owned());
                i += 1;
            }
            while v.last().is_some_and(|s| s.is_empty()) {
                v.pop();
            }
            // my $ws = (""); foreach my $ls (map {/^(\s+)/} @v[1..$#v]) { shortest }
            let mut ws: Option<String> = None;
            for s in v.iter().skip(1) {
                let lead: String = s.chars().take_while(|c| c.is_whitespace()).collect();
                if lead.is_empty() {
                    continue;
                }
                if ws.as_ref().is_none_or(|w| lead.chars().count() < w.chars().count()) {
                    ws = Some(lead);
                }
            }
            let ws = ws.unwrap_or_default();
            for s in v.iter_mut() {
                if let Some(rest) = s.strip_prefix(ws.as_str()) {
                    *s = rest.to_owned();
                }
            }
            while v.first().is_some_and(|s| s.is_empty()) {
                v.remove(0);
            }
            fields.push((key.to_owned(), v.join("\n")));
        }
        if !fields.is_empty() {
            forms.push(fields);
        }
        forms
    }

    fn text_round_trip(value: &str) -> String {
        let mut form = Form::new();
        form.line("id", "ticket/new").unwrap().text("Text", value).unwrap();
        let parsed = rt_form_parse(&form.finish());
        assert_eq!(parsed.len(), 1, "exactly one form for {value:?}");
        let fields = &parsed[0];
        assert_eq!(fields.len(), 2, "exactly id and Text for {value:?}: {fields:?}");
        assert_eq!(fields[0], ("id".to_owned(), "ticket/new".to_owned()));
        assert_eq!(fields[1].0, "Text");
        fields[1].1.clone()
    }

    const ADVERSARIAL: &[&str] = &[
        "",
        "hello",
        "  indented\n  block\n\nOwner: root\n--\nlast  \n\n",
        "Owner: root\nStatus: resolved\nQueue: Support\nPriority: 99\n",
        "--\n--\n",
        "# comment\nid: ticket/1\n",
        "  a\n  b",
        "\ta\n\tb\n",
        "a\r\nb\r\n",
        "\r\nx",
        "x\n\n\n",
        "   ",
        " ",
        "trailing   \n  \n",
        "ção ü 日本 ☃",
        "\u{a0}nbsp\n\u{3000}ideographic space",
        "line\u{2028}separator",
        "0",
        "a\n \n  \n",
        "Text: injected\nSubject: x",
    ];

    #[test]
    fn given_adversarial_text_when_rt_parses_the_form_then_it_is_byte_exact_and_adds_no_field() {
        for value in ADVERSARIAL {
            assert_eq!(text_round_trip(value), *value, "round trip of {value:?}");
        }
    }

    #[test]
    fn given_a_text_with_a_leading_empty_line_then_it_is_refused() {
        for value in ["\n", "\nx", "\n\nx"] {
            let mut form = Form::new();
            assert_eq!(
                form.text("Text", value).unwrap_err(),
                FormError::LeadingEmptyLine("Text".into())
            );
        }
        // A first line that is not empty (a carriage return, spaces) is fine.
        assert_eq!(text_round_trip("\r\nx"), "\r\nx");
        assert_eq!(text_round_trip("  \n\nx"), "  \n\nx");
    }

    #[test]
    fn text_encoding_is_one_space_per_line_after_a_marker() {
        let mut form = Form::new();
        form.text("Text", "a\n  b\n").unwrap();
        assert_eq!(form.finish(), "Text:\n \n a\n   b\n \n");
    }

    #[test]
    fn one_line_values_refuse_anything_that_could_add_or_change_a_field() {
        let mut form = Form::new();
        for bad in ["x\nOwner: root", "x\rOwner: root", "tab\there", "nel\u{85}x", "\u{0}"] {
            assert_eq!(
                form.line("Subject", bad).unwrap_err(),
                FormError::ControlCharacter("Subject".into()),
                "{bad:?}"
            );
        }
        for bad in [" x", "\u{a0}x", "\u{3000}x"] {
            assert_eq!(
                form.line("Subject", bad).unwrap_err(),
                FormError::LeadingWhitespace("Subject".into()),
                "{bad:?}"
            );
        }
        assert!(form.finish().is_empty(), "a refused value writes nothing");
    }

    #[test]
    fn one_line_values_that_look_like_fields_stay_in_their_field() {
        let mut form = Form::new();
        form.line("id", "ticket/new").unwrap();
        form.line("Subject", "Owner: root -- Status: resolved  ").unwrap();
        form.line("Queue", "--").unwrap();
        form.line("Requestor", "").unwrap();
        let parsed = rt_form_parse(&form.finish());
        assert_eq!(
            parsed,
            vec![vec![
                ("id".to_owned(), "ticket/new".to_owned()),
                ("Subject".to_owned(), "Owner: root -- Status: resolved  ".to_owned()),
                ("Queue".to_owned(), "--".to_owned()),
                ("Requestor".to_owned(), String::new()),
            ]]
        );
    }

    #[test]
    fn keys_are_checked_and_never_repeated() {
        let mut form = Form::new();
        form.line("Subject", "a").unwrap();
        assert_eq!(
            form.line("subject", "b").unwrap_err(),
            FormError::DuplicateKey("subject".into())
        );
        assert_eq!(
            form.text("SUBJECT", "b").unwrap_err(),
            FormError::DuplicateKey("SUBJECT".into())
        );
        for bad in ["", "1x", "Sub ject", "Owner:", "a\nb", "CF.{x}"] {
            assert_eq!(form.line(bad, "v").unwrap_err(), FormError::BadKey(bad.into()), "{bad:?}");
        }
    }
}
