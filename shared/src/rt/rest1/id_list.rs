//! The id list of a REST 1.0 search (`format=i`), read as it streams in: REST 1.0 has no
//! paging, so the adapter counts every matching id and keeps only the requested page,
//! with memory bounded by the page size whatever the total.

use super::super::RtError;

/// Longest line accepted in the id list (`ticket/<id>`).
const MAX_ID_LINE: usize = 64;

/// Counts the `ticket/<id>` lines of a `format=i` search, fed in arbitrary pieces, and
/// keeps only one page of ids.
#[derive(Debug)]
pub(super) struct IdPage {
    skip: u64,
    limit: usize,
    total: u64,
    ids: Vec<u64>,
    partial: Vec<u8>,
}

impl IdPage {
    pub(super) fn new(skip: u64, limit: u32) -> Self {
        Self { skip, limit: limit as usize, total: 0, ids: Vec::new(), partial: Vec::new() }
    }

    fn line(&mut self, line: &[u8]) -> Result<(), RtError> {
        let line = std::str::from_utf8(line).map(str::trim).unwrap_or("?");
        if line.is_empty() {
            return Ok(());
        }
        let id: u64 =
            line.strip_prefix("ticket/").and_then(|n| n.parse().ok()).ok_or_else(|| {
                RtError::Malformed(format!("unexpected line in RT's id list: {line:?}"))
            })?;
        if self.total >= self.skip && self.ids.len() < self.limit {
            self.ids.push(id);
        }
        self.total += 1;
        Ok(())
    }

    /// Takes the next bytes of the answer (after its status line).
    pub(super) fn feed(&mut self, bytes: &[u8]) -> Result<(), RtError> {
        let mut buf = std::mem::take(&mut self.partial);
        buf.extend_from_slice(bytes);
        let mut start = 0;
        while let Some(len) = buf[start..].iter().position(|&b| b == b'\n') {
            self.line(&buf[start..start + len])?;
            start += len + 1;
        }
        buf.drain(..start);
        if buf.len() > MAX_ID_LINE {
            return Err(RtError::Malformed("unexpected long line in RT's id list".into()));
        }
        self.partial = buf;
        Ok(())
    }

    /// How many ids there were, and the page's ids.
    pub(super) fn finish(mut self) -> Result<(u64, Vec<u64>), RtError> {
        let rest = std::mem::take(&mut self.partial);
        self.line(&rest)?;
        Ok((self.total, self.ids))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_lists_count_everything_and_keep_one_page_whatever_the_chunking() {
        let body = b"ticket/9\nticket/8\n\nticket/7\nticket/6\nticket/5";
        for split in 0..body.len() {
            let mut page = IdPage::new(2, 2);
            page.feed(&body[..split]).unwrap();
            page.feed(&body[split..]).unwrap();
            assert_eq!(page.finish().unwrap(), (5, vec![7, 6]), "split at {split}");
        }
        let mut past_the_end = IdPage::new(10, 3);
        past_the_end.feed(body).unwrap();
        assert_eq!(past_the_end.finish().unwrap(), (5, vec![]));
        let mut bad = IdPage::new(0, 3);
        assert!(matches!(bad.feed(b"No matching results.\n"), Err(RtError::Malformed(_))));
        let mut long = IdPage::new(0, 3);
        assert!(matches!(long.feed(&[b'1'; 200]), Err(RtError::Malformed(_))));
    }
}
