//! Reading RT's HTTP answers for both adapters: bodies read within a size bound, and RT's
//! messages trimmed to something fit to pass on to a client.

use std::time::Duration;

use super::RtError;

/// Longest RT message passed on, in characters.
pub(crate) const MAX_MESSAGE_CHARS: usize = 300;
/// Largest answer read into memory. Descriptions are at most 64 KiB; lists of 100 tickets
/// are a few hundred KiB; anything near this bound is not an answer rt-relay asked for.
pub(crate) const MAX_ANSWER_BYTES: usize = 8 * 1024 * 1024;

/// Reads the rest of a body, failing (not truncating) past `cap` bytes.
pub(crate) async fn read_body(
    resp: &mut reqwest::Response,
    cap: usize,
    timeout: Duration,
) -> Result<Vec<u8>, RtError> {
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| RtError::from_transport(e, timeout))? {
        if body.len() + chunk.len() > cap {
            return Err(RtError::Malformed(format!("answer larger than {cap} bytes")));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// RT's message made safe to pass on: trimmed, without the Perl source location RT appends
/// to some errors (` at /usr/share/.../Tickets.pm line 3187.`), at most
/// [`MAX_MESSAGE_CHARS`] characters.
pub(crate) fn message(raw: &str) -> String {
    let mut text = raw.trim();
    if let Some(at) = text.rfind(" at /") {
        let tail = &text[at..];
        if let Some(line_pos) = tail.rfind(" line ") {
            let number = tail[line_pos + 6..].trim_end_matches('.');
            if !number.is_empty() && number.bytes().all(|b| b.is_ascii_digit()) {
                text = text[..at].trim_end();
            }
        }
    }
    match text.char_indices().nth(MAX_MESSAGE_CHARS) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perl_locations_are_removed() {
        let raw = "Wrong query, expecting a OPERATOR in 'bogus >syntax<--here' at /usr/share/request-tracker5/lib/RT/Tickets.pm line 3187.\n";
        assert_eq!(message(raw), "Wrong query, expecting a OPERATOR in 'bogus >syntax<--here'");
        assert_eq!(message("Queue not set"), "Queue not set");
        assert_eq!(message("meet at /home at noon"), "meet at /home at noon");
    }

    #[test]
    fn long_messages_are_capped_on_a_character_boundary() {
        let long = "é".repeat(1000);
        let m = message(&long);
        assert_eq!(m.chars().count(), MAX_MESSAGE_CHARS + 1);
        assert!(m.ends_with('…'));
    }
}
