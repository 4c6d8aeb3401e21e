//! The paging arithmetic every [`super::RtClient`] shares, so all adapters clamp a request
//! the same way and say whether another page follows from the total (never from RT's own
//! `next_page`, which RT once sent malformed).

use super::{RtPage, RtTicket, MAX_PER_PAGE};

/// The page a caller asked for, clamped: `page` is at least 1 and `per_page` in
/// 1..=[`MAX_PER_PAGE`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PageWindow {
    /// 1-based page number.
    pub(crate) page: u32,
    /// Tickets per page.
    pub(crate) per_page: u32,
}

impl PageWindow {
    /// Clamps a caller's `page` and `per_page`.
    pub(crate) fn new(page: u32, per_page: u32) -> Self {
        Self { page: page.max(1), per_page: per_page.clamp(1, MAX_PER_PAGE) }
    }

    /// How many matching tickets come before this page.
    pub(crate) fn skip(self) -> u64 {
        u64::from(self.page - 1) * u64::from(self.per_page)
    }

    /// This page holding `tickets`, out of `total` matching tickets.
    pub(crate) fn page_of(self, tickets: Vec<RtTicket>, total: u64) -> RtPage {
        let has_more = u64::from(self.page) * u64::from(self.per_page) < total;
        RtPage { tickets, page: self.page, total, has_more }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_clamped() {
        assert_eq!(PageWindow::new(0, 0), PageWindow { page: 1, per_page: 1 });
        assert_eq!(PageWindow::new(3, 1000), PageWindow { page: 3, per_page: MAX_PER_PAGE });
        assert_eq!(PageWindow::new(u32::MAX, MAX_PER_PAGE).skip(), (u64::from(u32::MAX) - 1) * 100);
    }

    #[test]
    fn more_follows_only_while_the_total_is_not_reached() {
        let window = PageWindow::new(2, 3);
        assert_eq!(window.skip(), 3);
        assert!(window.page_of(Vec::new(), 7).has_more);
        assert!(!window.page_of(Vec::new(), 6).has_more);
        let last = PageWindow::new(3, 3).page_of(Vec::new(), 7);
        assert_eq!((last.page, last.total, last.has_more), (3, 7, false));
    }
}
