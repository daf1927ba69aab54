//! Byte-class checks over header values, eight bytes at a time.
//!
//! Every request's `Host` and every response's `Content-Type` are checked
//! for bytes that must not be there (controls, CR/LF/NUL, …). A byte loop
//! costs a compare and a branch per byte, and these checks showed up as a
//! few percent of the pipelined hot path; word-at-a-time ("SWAR") tests
//! answer for eight bytes with a handful of integer operations.
//!
//! The tests are the classic ones: `x - 0x01…01` borrows into a byte's top
//! bit exactly when that byte is below the subtrahend, and `& !x` drops
//! bytes whose own top bit was set (≥ 0x80). A borrow can ripple into the
//! next byte only from a byte that already matched, so "any byte matches"
//! is exact even though "which byte" would not be.

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// Some byte of `x` is below `n` (`n` ≤ 0x80).
#[inline]
pub(crate) fn has_less(x: u64, n: u8) -> bool {
    x.wrapping_sub(ONES * u64::from(n)) & !x & HIGHS != 0
}

/// Some byte of `x` equals `b`.
#[inline]
pub(crate) fn has_byte(x: u64, b: u8) -> bool {
    has_less(x ^ (ONES * u64::from(b)), 1)
}

/// True if `bad` holds for some 8-byte word covering `bytes`. Short input is
/// padded with `pad` (which must not be bad); the last word of longer input
/// overlaps the one before instead of being padded.
#[inline]
pub(crate) fn any_word(bytes: &[u8], pad: u8, bad: impl Fn(u64) -> bool) -> bool {
    let n = bytes.len();
    if n < 8 {
        let mut word = [pad; 8];
        for (w, &b) in word.iter_mut().zip(bytes) {
            *w = b;
        }
        return bad(u64::from_le_bytes(word));
    }
    let word = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
    let mut found = bad(word(n - 8));
    let mut at = 0;
    while at + 8 < n {
        found |= bad(word(at));
        at += 8;
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every byte value at every position of every length up to 20, in a
    /// background of good bytes, against the byte-by-byte answer.
    fn agrees(pad: u8, swar: impl Fn(u64) -> bool, naive: impl Fn(u8) -> bool) {
        for len in 0..=20 {
            let mut v = vec![pad; len];
            assert!(!any_word(&v, pad, &swar), "all-good input of {len} bytes");
            for pos in 0..len {
                for b in 0..=255u8 {
                    v[pos] = b;
                    assert_eq!(any_word(&v, pad, &swar), naive(b), "byte {b:#04x} at {pos} of {len}");
                }
                v[pos] = pad;
            }
        }
    }

    #[test]
    fn less_than_matches_the_byte_loop() {
        for (n, pad) in [(1u8, b'a'), (0x21, b'a'), (0x80, 0xc0)] {
            agrees(pad, |w| has_less(w, n), |b| b < n);
        }
    }

    #[test]
    fn equal_byte_matches_the_byte_loop() {
        for c in [0u8, b'\r', b'\n', b'/', b'@', 0x7f, 0xff] {
            agrees(b'a', |w| has_byte(w, c), |b| b == c);
        }
    }

    #[test]
    fn two_matches_and_high_bytes() {
        // A match next to bytes ≥ 0x80 and a second match: still found, and
        // high bytes alone are not.
        assert!(any_word(b"\xff\x00\xff\x00\x80\x80\x80\x80\x80", b'a', |w| has_byte(w, 0)));
        assert!(!any_word(b"\xff\xfe\x80\x81\x90\xa0\xb0\xc0\xd0", b'a', |w| has_less(w, 0x21)));
    }
}
