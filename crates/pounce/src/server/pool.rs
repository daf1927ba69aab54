//! Per-worker free lists of connection buffers, so that an idle keep-alive
//! connection holds none (nginx-style): a connection takes a read and a write
//! buffer (and a list for its parsed header fields) when bytes arrive and
//! gives them back when it goes idle again.
//!
//! Under load the same few buffers circulate without touching the allocator;
//! with ten thousand idle connections, memory is what the connections' small
//! state needs, not ten thousand buffers. The lists are bounded, so a burst
//! of activity does not pin its peak memory forever.

use crate::http::Span;
use std::cell::RefCell;

/// Size of a pooled read buffer (grown buffers are not pooled).
pub(crate) const READ_BUF: usize = 4096;
/// Capacity of a pooled write buffer.
const WRITE_BUF: usize = 4096;
/// Largest write buffer worth keeping.
const WRITE_KEEP: usize = 64 * 1024;
/// Free buffers kept per list.
const KEEP: usize = 1024;

/// Capacity of a pooled parsed-headers list (fields); longer ones are not kept.
const HEADERS_KEEP: usize = 64;

#[derive(Default)]
pub(crate) struct BufPool {
    read: RefCell<Vec<Vec<u8>>>,
    write: RefCell<Vec<Vec<u8>>>,
    headers: RefCell<Vec<Vec<(Span, Span)>>>,
}

impl BufPool {
    /// A zero-initialised read buffer of [`READ_BUF`] bytes.
    pub(crate) fn take_read(&self) -> Vec<u8> {
        self.read.borrow_mut().pop().unwrap_or_else(|| vec![0; READ_BUF])
    }

    pub(crate) fn put_read(&self, buf: Vec<u8>) {
        let mut free = self.read.borrow_mut();
        if buf.len() == READ_BUF && free.len() < KEEP {
            free.push(buf);
        }
    }

    /// An empty write buffer with some capacity.
    pub(crate) fn take_write(&self) -> Vec<u8> {
        self.write.borrow_mut().pop().unwrap_or_else(|| Vec::with_capacity(WRITE_BUF))
    }

    pub(crate) fn put_write(&self, mut buf: Vec<u8>) {
        let mut free = self.write.borrow_mut();
        if buf.capacity() >= WRITE_BUF && buf.capacity() <= WRITE_KEEP && free.len() < KEEP {
            buf.clear();
            free.push(buf);
        }
    }

    /// An empty list for a request head's parsed fields (the 64-odd bytes a
    /// connection would otherwise keep while idle).
    pub(crate) fn take_headers(&self) -> Vec<(Span, Span)> {
        self.headers.borrow_mut().pop().unwrap_or_default()
    }

    pub(crate) fn put_headers(&self, mut list: Vec<(Span, Span)>) {
        let mut free = self.headers.borrow_mut();
        if list.capacity() > 0 && list.capacity() <= HEADERS_KEEP && free.len() < KEEP {
            list.clear();
            free.push(list);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_circulate_and_odd_sizes_are_dropped() {
        let pool = BufPool::default();
        let a = pool.take_read();
        assert_eq!(a.len(), READ_BUF);
        let ptr = a.as_ptr();
        pool.put_read(a);
        let again = pool.take_read();
        assert_eq!(again.as_ptr(), ptr, "reused, not reallocated");
        pool.put_read(vec![0; READ_BUF * 2]);
        assert!(pool.read.borrow().is_empty(), "grown buffers are not kept");

        let mut w = pool.take_write();
        w.extend_from_slice(b"abc");
        pool.put_write(w);
        let w = pool.take_write();
        assert!(w.is_empty() && w.capacity() >= WRITE_BUF);
        pool.put_write(Vec::with_capacity(1 << 20));
        assert!(pool.write.borrow().is_empty(), "huge buffers are not kept");

        let mut h = pool.take_headers();
        h.push((Span::default(), Span::default()));
        let ptr = h.as_ptr();
        pool.put_headers(h);
        let h = pool.take_headers();
        assert!(h.is_empty() && h.as_ptr() == ptr, "reused, emptied");
        pool.put_headers(Vec::with_capacity(HEADERS_KEEP + 1));
        pool.put_headers(Vec::new());
        assert!(pool.headers.borrow().is_empty(), "long and unallocated lists are not kept");
    }
}
