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
/// [`MAX_MESSAGE_CHARS`] characters. Works on characters only, so no input can split one.
pub(crate) fn message(raw: &str) -> String {
    let mut text = raw.trim();
    if let Some((before, location)) = text.rsplit_once(" at /") {
        if let Some((_, number)) = location.rsplit_once(" line ") {
            let number = number.trim_end_matches('.');
            if !number.is_empty() && number.bytes().all(|b| b.is_ascii_digit()) {
                text = before.trim_end();
            }
        }
    }
    let mut chars = text.chars();
    let kept: String = chars.by_ref().take(MAX_MESSAGE_CHARS).collect();
    if chars.next().is_some() {
        format!("{kept}…")
    } else {
        kept
    }
}

/// What a refusal tells the client: RT's own message when RT gave one (see [`message`]),
/// otherwise `fixed`, a text rt-relay chose. Nothing else from RT's answer is passed on.
pub(crate) fn message_or(rt_message: Option<&str>, fixed: &str) -> String {
    match rt_message.map(message) {
        Some(m) if !m.is_empty() => m,
        _ => fixed.to_owned(),
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
        let exact = "日".repeat(MAX_MESSAGE_CHARS);
        assert_eq!(message(&exact), exact, "nothing cut, no ellipsis");
    }

    #[test]
    fn multi_byte_text_around_the_location_never_splits_a_character() {
        for raw in ["é at /é line 1.", " at /x line ", "日 at / line 日", "x at /y line 7.日"]
        {
            let m = message(raw);
            assert!(raw.contains(m.as_str()), "{raw:?} -> {m:?}");
        }
        assert_eq!(message("日本 at /usr/lib/RT.pm line 3."), "日本");
    }

    #[test]
    fn refusals_carry_rt_s_message_or_the_fixed_text() {
        assert_eq!(message_or(Some("  Queue not set \n"), "fixed"), "Queue not set");
        assert_eq!(message_or(Some("  "), "fixed"), "fixed");
        assert_eq!(message_or(None, "fixed"), "fixed");
    }
}
