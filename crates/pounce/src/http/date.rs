//! The `Date` header value, cached per executor thread and refreshed once a
//! second by a timer task in each worker (the may-minihttp approach), so the
//! hot path copies 29 bytes instead of formatting a date per response.

use crate::time::{Civil, HTTP_DATE_LEN, http_date, unix_now};
use std::cell::RefCell;

thread_local! {
    static CACHED: RefCell<(i64, [u8; HTTP_DATE_LEN])> =
        const { RefCell::new((i64::MIN, [0; HTTP_DATE_LEN])) };
}

/// Re-formats the cached date if the second has changed. Called by each
/// worker's once-a-second task, and lazily on a cold cache.
pub(crate) fn refresh() {
    let now = unix_now();
    CACHED.with_borrow_mut(|(secs, bytes)| {
        if *secs != now {
            *bytes = http_date(&Civil::from_unix(now));
            *secs = now;
        }
    });
}

/// Appends this thread's cached IMF-fixdate to `out`, copied straight from
/// the cache (a copy through a temporary costs a store-forwarding stall
/// per response).
#[inline]
pub(crate) fn append(out: &mut Vec<u8>) {
    if CACHED.with_borrow(|(secs, _)| *secs == i64::MIN) {
        refresh();
    }
    CACHED.with_borrow(|(_, bytes)| out.extend_from_slice(bytes));
}

#[cfg(test)]
mod tests {
    use crate::time::{Civil, http_date, unix_now};

    /// What `append` wrote is the date of a second between `before` and
    /// `after`, formatted afresh.
    fn is_date_between(out: &[u8], before: i64, after: i64) -> bool {
        (before..=after).any(|s| out == http_date(&Civil::from_unix(s)))
    }

    #[test]
    fn cold_cache_is_filled_and_refreshed() {
        let before = unix_now();
        let mut out = Vec::new();
        super::append(&mut out);
        assert!(is_date_between(&out, before, unix_now()), "{:?}", String::from_utf8_lossy(&out));
        let before = unix_now();
        super::refresh();
        let mut again = Vec::new();
        super::append(&mut again);
        assert!(is_date_between(&again, before, unix_now()), "{:?}", String::from_utf8_lossy(&again));
    }
}
