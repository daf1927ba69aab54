//! A provided-buffer ring (`IORING_REGISTER_PBUF_RING`, Linux 5.19): receive
//! buffers the kernel picks from as data arrives, so a connection waiting for
//! its next request has no buffer of its own posted, and one multishot
//! receive per connection replaces a readiness poll plus a `recv` per request.
//!
//! The ring is an array of `io_uring_buf` entries shared with the kernel; we
//! append returned buffers at the tail, the kernel consumes from the head.

use io_uring::types::BufRingEntry;
use std::alloc::{Layout, alloc_zeroed, dealloc};
use std::io;
use std::sync::atomic::{AtomicU16, Ordering};

pub(crate) struct BufRing {
    ring: *mut BufRingEntry,
    ring_layout: Layout,
    entries: u16,
    tail: u16,
    /// All buffers, back to back: buffer `bid` is `data[bid * size..][..size]`.
    data: Vec<u8>,
    size: usize,
}

impl BufRing {
    /// `entries` buffers of `size` bytes (`entries` a power of two ≤ 32768).
    pub(crate) fn new(entries: u16, size: usize) -> io::Result<BufRing> {
        assert!(entries.is_power_of_two());
        let ring_layout =
            Layout::from_size_align(entries as usize * std::mem::size_of::<BufRingEntry>(), 4096)
                .map_err(|_| io::Error::other("bad buffer ring layout"))?;
        // SAFETY: non-zero size; freed in Drop with the same layout.
        let ring = unsafe { alloc_zeroed(ring_layout) } as *mut BufRingEntry;
        if ring.is_null() {
            return Err(io::Error::from(io::ErrorKind::OutOfMemory));
        }
        let mut r =
            BufRing { ring, ring_layout, entries, tail: 0, data: vec![0; entries as usize * size], size };
        for bid in 0..entries {
            r.push(bid);
        }
        r.publish();
        Ok(r)
    }

    pub(crate) fn ring_addr(&self) -> u64 {
        self.ring as u64
    }

    pub(crate) fn entries(&self) -> u16 {
        self.entries
    }

    /// The first `len` bytes of buffer `bid`, as filled by the kernel.
    pub(crate) fn get(&self, bid: u16, len: usize) -> &[u8] {
        let start = bid as usize * self.size;
        &self.data[start..start + len.min(self.size)]
    }

    /// Queues buffer `bid` to be handed back to the kernel at [`publish`].
    pub(crate) fn push(&mut self, bid: u16) {
        debug_assert!(bid < self.entries);
        let idx = (self.tail & (self.entries - 1)) as usize;
        // SAFETY: idx < entries; the entry is ours until the tail moves past it.
        let entry = unsafe { &mut *self.ring.add(idx) };
        entry.set_addr(self.data.as_ptr() as u64 + (bid as usize * self.size) as u64);
        entry.set_len(self.size as u32);
        entry.set_bid(bid);
        self.tail = self.tail.wrapping_add(1);
    }

    /// Makes pushed buffers visible to the kernel.
    pub(crate) fn publish(&self) {
        // SAFETY: the tail lives in the first entry's reserved field; the
        // kernel reads it with acquire semantics.
        unsafe {
            let tail = BufRingEntry::tail(self.ring) as *const AtomicU16;
            (*tail).store(self.tail, Ordering::Release);
        }
    }
}

impl Drop for BufRing {
    fn drop(&mut self) {
        // SAFETY: allocated in new() with this layout. The io_uring that used
        // it is dropped first (field order in Driver).
        unsafe { dealloc(self.ring as *mut u8, self.ring_layout) };
    }
}
