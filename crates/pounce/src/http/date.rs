//! The `Date` header value, cached per executor thread and refreshed once a
//! second by a timer task in each worker (the may-minihttp approach), so the
//! hot path copies 29 bytes instead of formatting a date per response.

use crate::time::{Civil, HTTP_DATE_LEN, http_date, unix_now};
use std::cell::Cell;

thread_local! {
    static CACHED: Cell<(i64, [u8; HTTP_DATE_LEN])> = const { Cell::new((i64::MIN, [0; HTTP_DATE_LEN])) };
}

/// Re-formats the cached date if the second has changed. Called by each
/// worker's once-a-second task, and lazily on a cold cache.
pub(crate) fn refresh() -> [u8; HTTP_DATE_LEN] {
    let now = unix_now();
    let (secs, bytes) = CACHED.get();
    if secs == now {
        return bytes;
    }
    let bytes = http_date(&Civil::from_unix(now));
    CACHED.set((now, bytes));
    bytes
}

/// The cached IMF-fixdate for this thread.
#[inline]
pub(crate) fn current() -> [u8; HTTP_DATE_LEN] {
    let (secs, bytes) = CACHED.get();
    if secs == i64::MIN { refresh() } else { bytes }
}

#[cfg(test)]
mod tests {
    #[test]
    fn cold_cache_is_filled() {
        let d = super::current();
        assert!(d.ends_with(b" GMT"));
        assert_eq!(d, super::refresh());
    }
}
