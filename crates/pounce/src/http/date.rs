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
    #[test]
    fn cold_cache_is_filled() {
        let mut out = Vec::new();
        super::append(&mut out);
        assert_eq!(out.len(), crate::time::HTTP_DATE_LEN);
        assert!(out.ends_with(b" GMT"), "{out:?}");
        super::refresh();
        let mut again = Vec::new();
        super::append(&mut again);
        // Same second (or the next one, at a boundary): same shape.
        assert_eq!(again.len(), out.len());
        assert!(again.ends_with(b" GMT"));
    }
}
