//! Per-worker free lists of connection buffers, so that an idle keep-alive
//! connection holds none (nginx-style): a connection takes a read and a write
//! buffer (and the parsed form of a request head, with its list of header
//! fields) when bytes arrive and gives them back when it goes idle again.
//!
//! Under load the same few buffers circulate without touching the allocator;
//! with ten thousand idle connections, memory is what the connections' small
//! state needs, not ten thousand buffers. The lists are bounded, so a burst
//! of activity does not pin its peak memory forever.

use crate::http::request::RequestHead;
use std::cell::RefCell;
use std::ops::Deref;

/// Size of a pooled read buffer (grown buffers are not pooled).
pub(crate) const READ_BUF: usize = 4096;
/// Capacity of a pooled write buffer.
const WRITE_BUF: usize = 4096;
/// Largest write buffer worth keeping.
const WRITE_KEEP: usize = 64 * 1024;
/// Free buffers kept per list.
const KEEP: usize = 1024;

/// Capacity of a pooled head's header-field list; longer lists are not kept.
const HEADERS_KEEP: usize = 64;

#[derive(Default)]
pub(crate) struct BufPool {
    read: RefCell<Vec<Vec<u8>>>,
    write: RefCell<Vec<Vec<u8>>>,
    // Boxed in the list too: a connection holds its head by the box, and
    // handing the box back and forth moves 8 bytes, not the head.
    #[allow(clippy::vec_box)]
    heads: RefCell<Vec<Box<RequestHead>>>,
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

    /// Storage for a parsed request head (88 bytes with its field list's
    /// header, which an idle connection would otherwise keep).
    pub(crate) fn take_head(&self) -> Box<RequestHead> {
        self.heads.borrow_mut().pop().unwrap_or_default()
    }

    pub(crate) fn put_head(&self, mut head: Box<RequestHead>) {
        let mut free = self.heads.borrow_mut();
        if free.len() < KEEP {
            if head.headers.capacity() > HEADERS_KEEP {
                head.headers = Vec::new();
            }
            head.headers.clear();
            free.push(head);
        }
    }
}

/// A connection's parsed request head: held only while the connection has a
/// request in hand, in the pool otherwise. Read while not held, it is an
/// empty head (which a correct caller never sees).
#[derive(Default)]
pub(crate) struct HeadSlot(Option<Box<RequestHead>>);

static NO_HEAD: RequestHead = RequestHead::EMPTY;

impl HeadSlot {
    /// The head to parse into, taken from `pool` if not held.
    pub(crate) fn get_mut(&mut self, pool: &BufPool) -> &mut RequestHead {
        self.0.get_or_insert_with(|| pool.take_head())
    }

    /// Gives the head back to `pool` (the connection is idle).
    pub(crate) fn release(&mut self, pool: &BufPool) {
        if let Some(h) = self.0.take() {
            pool.put_head(h);
        }
    }
}

impl Deref for HeadSlot {
    type Target = RequestHead;
    fn deref(&self) -> &RequestHead {
        self.0.as_deref().unwrap_or(&NO_HEAD)
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

        let mut slot = HeadSlot::default();
        assert_eq!(slot.len, 0, "an empty head while not held");
        let h = slot.get_mut(&pool);
        h.len = 7;
        h.headers.push(Default::default());
        let ptr = h.headers.as_ptr();
        slot.release(&pool);
        assert_eq!(slot.len, 0);
        let h = slot.get_mut(&pool);
        assert!(h.headers.is_empty() && h.headers.as_ptr() == ptr, "reused, list emptied");
        h.headers = Vec::with_capacity(HEADERS_KEEP + 1);
        slot.release(&pool);
        assert_eq!(pool.heads.borrow()[0].headers.capacity(), 0, "long lists are not kept");
    }
}
