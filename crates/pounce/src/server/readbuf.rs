//! A connection's read buffer: received bytes not yet consumed. The memory
//! comes from the worker's [`BufPool`] when bytes are expected and goes back
//! when the connection is idle, so idle connections hold none.
//!
//! Requests are parsed in place, as spans relative to the start of
//! [`ReadBuf::data`], so compacting or growing the buffer never invalidates a
//! parsed head. The buffer starts small and grows (doubling) only while a head
//! is incomplete, up to its cap; once a request is done its bytes are
//! consumed and, when nothing is left, the cursors simply reset.

use super::pool::{BufPool, READ_BUF};

pub(crate) struct ReadBuf {
    /// Fully initialised; empty while released.
    buf: Vec<u8>,
    // Offsets in 32 bits (the cap is far below 4 GiB): this is part of
    // every idle connection's memory.
    start: u32,
    end: u32,
    cap: u32,
}

/// Initial size: a typical request head (wrk's is 40 bytes, browsers' < 1 KiB)
/// and a batch of pipelined ones fit.
pub(crate) const INITIAL: usize = READ_BUF;

impl ReadBuf {
    /// An empty read buffer that may grow to `cap` bytes; holds no memory yet.
    pub(crate) fn new(cap: usize) -> ReadBuf {
        let cap = u32::try_from(cap.max(INITIAL)).unwrap_or(u32::MAX);
        ReadBuf { buf: Vec::new(), start: 0, end: 0, cap }
    }

    /// Takes memory from the pool if none is held.
    pub(crate) fn acquire(&mut self, pool: &BufPool) {
        if self.buf.is_empty() {
            self.buf = pool.take_read();
        }
    }

    /// Gives the memory back if no unconsumed bytes are held.
    pub(crate) fn release(&mut self, pool: &BufPool) {
        if self.is_empty() && !self.buf.is_empty() {
            pool.put_read(std::mem::take(&mut self.buf));
        }
    }

    pub(crate) fn data(&self) -> &[u8] {
        &self.buf[self.start as usize..self.end as usize]
    }

    /// [`data`](Self::data), writable: TLS records are decrypted in place.
    pub(crate) fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buf[self.start as usize..self.end as usize]
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.start == self.end
    }

    pub(crate) fn len(&self) -> usize {
        (self.end - self.start) as usize
    }

    /// Drops the first `n` bytes of [`data`](Self::data).
    pub(crate) fn consume(&mut self, n: usize) {
        debug_assert!(n <= self.len());
        self.start += n as u32;
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// Keeps only the first `len` bytes of [`data`](Self::data).
    pub(crate) fn truncate(&mut self, len: usize) {
        debug_assert!(len <= self.len());
        self.end = self.start + len as u32;
    }

    /// Free space after the data, made by compacting and then growing (up to
    /// the cap). Empty only when the buffer holds `cap` bytes of data (or
    /// none has been [`acquire`](Self::acquire)d).
    pub(crate) fn spare(&mut self) -> &mut [u8] {
        if self.end as usize == self.buf.len() {
            if self.start > 0 {
                self.buf.copy_within(self.start as usize..self.end as usize, 0);
                self.end -= self.start;
                self.start = 0;
            } else if self.buf.len() < self.cap as usize {
                let new_len = (self.buf.len() * 2).min(self.cap as usize);
                self.buf.resize(new_len, 0);
            }
        }
        &mut self.buf[self.end as usize..]
    }

    /// Records that `n` bytes were written into [`spare`](Self::spare).
    pub(crate) fn filled(&mut self, n: usize) {
        self.end += n as u32;
        debug_assert!(self.end as usize <= self.buf.len());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn push(b: &mut ReadBuf, data: &[u8]) {
        b.acquire(&BufPool::default());
        let spare = b.spare();
        spare[..data.len()].copy_from_slice(data);
        b.filled(data.len());
    }

    #[test]
    fn consume_compact_grow() {
        let mut b = ReadBuf::new(16 * 1024);
        push(&mut b, b"hello world");
        assert_eq!(b.data(), b"hello world");
        b.consume(6);
        assert_eq!(b.data(), b"world");
        b.consume(5);
        assert!(b.is_empty());
        assert_eq!(b.spare().len(), INITIAL, "cursors reset when empty");

        let chunk = vec![b'x'; INITIAL];
        push(&mut b, &chunk);
        b.consume(100);
        // Full at the end with room at the front: compacts, does not grow.
        assert_eq!(b.spare().len(), 100);
        assert_eq!(b.data().len(), INITIAL - 100);
        push(&mut b, &chunk[..100]);
        // Full from the start: grows by doubling.
        assert_eq!(b.spare().len(), INITIAL);
        b.truncate(10);
        assert_eq!(b.len(), 10);
    }

    #[test]
    fn memory_only_while_needed() {
        let pool = BufPool::default();
        let mut b = ReadBuf::new(16 * 1024);
        assert!(b.spare().is_empty(), "nothing held before acquire");
        b.acquire(&pool);
        assert_eq!(b.spare().len(), INITIAL);
        b.spare()[0] = b'x';
        b.filled(1);
        b.release(&pool);
        assert_eq!(b.data(), b"x", "kept while it holds data");
        b.consume(1);
        b.release(&pool);
        assert!(b.spare().is_empty(), "released once empty");
    }

    #[test]
    fn growth_stops_at_the_cap() {
        let mut b = ReadBuf::new(8192);
        let chunk = vec![b'x'; 8192];
        push(&mut b, &chunk[..4096]);
        push(&mut b, &chunk[..4096]);
        assert_eq!(b.spare().len(), 0);
    }
}
