//! Incremental decoder for `Transfer-Encoding: chunked` request bodies
//! (RFC 9112 §7.1), sans I/O.
//!
//! Fed whatever bytes have arrived, it appends decoded data to the body and
//! says how much input it used; the rest (a pipelined request) stays for the
//! head parser. It is strict where leniency lets two parsers disagree about
//! where the body ends: hex sizes only, overflow refused, CRLF required after
//! every size line and every chunk, extensions bounded, trailers bounded and
//! discarded.

/// Longest chunk-size line (size plus extensions) accepted.
pub(crate) const MAX_CHUNK_LINE: usize = 4096;
/// Most trailer bytes accepted after the last chunk.
pub(crate) const MAX_TRAILERS: usize = 16 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChunkError {
    /// 400: malformed framing.
    Bad(&'static str),
    /// 413: the decoded body exceeds max_body_size.
    TooLarge,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading hex digits of the size.
    Size {
        digits: u8,
    },
    /// After the digits: whitespace before `;` is allowed (BWS).
    SizeWs,
    /// Inside `;ext=val`, up to CR.
    Ext,
    /// CR seen at the end of the size line; LF must follow.
    SizeLf,
    Data,
    DataCr,
    DataLf,
    /// At the start of a trailer line (or the final empty line).
    TrailerStart,
    TrailerLine,
    TrailerLf {
        empty: bool,
    },
    Done,
}

#[derive(Debug, Clone)]
pub(crate) struct ChunkedDecoder {
    state: State,
    size: u64,
    /// Bytes of the current size line / of all trailers, for the limits.
    line_len: usize,
    trailer_len: usize,
}

impl Default for ChunkedDecoder {
    fn default() -> Self {
        ChunkedDecoder { state: State::Size { digits: 0 }, size: 0, line_len: 0, trailer_len: 0 }
    }
}

impl ChunkedDecoder {
    pub(crate) fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Decodes from `input`, appending data to `out` (never past `max_body`
    /// bytes in total). Returns the number of input bytes consumed; stops at
    /// the end of the body, leaving what follows unconsumed.
    pub(crate) fn decode(
        &mut self,
        input: &[u8],
        out: &mut Vec<u8>,
        max_body: usize,
    ) -> Result<usize, ChunkError> {
        let mut i = 0;
        while i < input.len() {
            let b = input[i];
            match self.state {
                State::Size { digits } => {
                    if let Some(v) = hex(b) {
                        if digits >= 16 {
                            return Err(ChunkError::Bad("chunk size overflows"));
                        }
                        self.size = (self.size << 4) | u64::from(v);
                        self.state = State::Size { digits: digits + 1 };
                        self.line_len += 1;
                    } else if digits == 0 {
                        return Err(ChunkError::Bad("chunk size is not hex"));
                    } else {
                        match b {
                            b'\r' => self.state = State::SizeLf,
                            b';' => self.state = State::Ext,
                            b' ' | b'\t' => self.state = State::SizeWs,
                            _ => return Err(ChunkError::Bad("invalid byte after chunk size")),
                        }
                        self.line_len += 1;
                    }
                    i += 1;
                }
                State::SizeWs => {
                    match b {
                        b' ' | b'\t' => {}
                        b';' => self.state = State::Ext,
                        _ => return Err(ChunkError::Bad("whitespace after chunk size")),
                    }
                    self.bump_line()?;
                    i += 1;
                }
                State::Ext => {
                    match b {
                        b'\r' => self.state = State::SizeLf,
                        b'\t' | b' '..=b'~' | 0x80..=0xff => {}
                        _ => return Err(ChunkError::Bad("control byte in chunk extension")),
                    }
                    self.bump_line()?;
                    i += 1;
                }
                State::SizeLf => {
                    if b != b'\n' {
                        return Err(ChunkError::Bad("chunk size line not ended by CRLF"));
                    }
                    i += 1;
                    self.line_len = 0;
                    if self.size == 0 {
                        self.state = State::TrailerStart;
                    } else {
                        if out.len() as u64 + self.size > max_body as u64 {
                            return Err(ChunkError::TooLarge);
                        }
                        self.state = State::Data;
                    }
                }
                State::Data => {
                    let take = (input.len() - i).min(usize::try_from(self.size).unwrap_or(usize::MAX));
                    out.extend_from_slice(&input[i..i + take]);
                    i += take;
                    self.size -= take as u64;
                    if self.size == 0 {
                        self.state = State::DataCr;
                    }
                }
                State::DataCr => {
                    if b != b'\r' {
                        return Err(ChunkError::Bad("chunk data not followed by CRLF"));
                    }
                    self.state = State::DataLf;
                    i += 1;
                }
                State::DataLf => {
                    if b != b'\n' {
                        return Err(ChunkError::Bad("chunk data not followed by CRLF"));
                    }
                    self.state = State::Size { digits: 0 };
                    i += 1;
                }
                State::TrailerStart | State::TrailerLine => {
                    let empty = self.state == State::TrailerStart;
                    match b {
                        b'\r' => self.state = State::TrailerLf { empty },
                        b'\n' | 0 => return Err(ChunkError::Bad("bare LF or NUL in trailers")),
                        _ => self.state = State::TrailerLine,
                    }
                    self.bump_trailer()?;
                    i += 1;
                }
                State::TrailerLf { empty } => {
                    if b != b'\n' {
                        return Err(ChunkError::Bad("bare CR in trailers"));
                    }
                    self.bump_trailer()?;
                    i += 1;
                    if empty {
                        self.state = State::Done;
                        return Ok(i);
                    }
                    self.state = State::TrailerStart;
                }
                State::Done => return Ok(i),
            }
        }
        Ok(i)
    }

    fn bump_line(&mut self) -> Result<(), ChunkError> {
        self.line_len += 1;
        if self.line_len > MAX_CHUNK_LINE {
            return Err(ChunkError::Bad("chunk extension too long"));
        }
        Ok(())
    }

    fn bump_trailer(&mut self) -> Result<(), ChunkError> {
        self.trailer_len += 1;
        if self.trailer_len > MAX_TRAILERS {
            return Err(ChunkError::Bad("trailers too large"));
        }
        Ok(())
    }
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(input: &[u8], max: usize) -> Result<(Vec<u8>, usize), ChunkError> {
        let mut d = ChunkedDecoder::default();
        let mut out = Vec::new();
        let n = d.decode(input, &mut out, max)?;
        assert!(d.is_done(), "not done after {:?}", String::from_utf8_lossy(input));
        Ok((out, n))
    }

    #[test]
    fn basic_and_leaves_the_rest() {
        let input = b"5\r\nHello\r\n7;name=val\r\n, World\r\n0\r\n\r\nGET / HTTP/1.1\r\n";
        let (out, n) = decode_all(input, 100).unwrap();
        assert_eq!(out, b"Hello, World");
        assert_eq!(&input[n..], b"GET / HTTP/1.1\r\n");
    }

    #[test]
    fn byte_at_a_time_equals_all_at_once() {
        let input = b"A\r\n0123456789\r\n1 ; x=\"y\"\r\n!\r\n0\r\nTrailer: t\r\n\r\n";
        let mut d = ChunkedDecoder::default();
        let mut out = Vec::new();
        let mut used = 0;
        for b in input.iter() {
            used += d.decode(std::slice::from_ref(b), &mut out, 100).unwrap();
        }
        assert!(d.is_done());
        assert_eq!(used, input.len());
        assert_eq!(out, b"0123456789!");
    }

    #[test]
    fn hostile_inputs() {
        let cases: &[&[u8]] = &[
            b"x\r\n",
            b"\r\n",
            b"-1\r\n",
            b"0x5\r\nhello\r\n0\r\n\r\n",
            b"5\nhello\r\n0\r\n\r\n",
            b"5\r\nhelloX\r\n0\r\n\r\n",
            b"5\r\nhello\n0\r\n\r\n",
            b"11111111111111111\r\n",
            b"5 \r\nhello\r\n0\r\n\r\n",
            b"5;a\nb\r\n",
            b"5;a\0\r\n",
            b"0\r\nX: y\n\r\n",
            b"0\r\nX: y\r\r\n",
        ];
        for input in cases {
            let mut d = ChunkedDecoder::default();
            let r = d.decode(input, &mut Vec::new(), 1 << 20);
            assert!(matches!(r, Err(ChunkError::Bad(_))), "{:?}: {r:?}", String::from_utf8_lossy(input));
        }
    }

    #[test]
    fn oversized_extension_and_trailers() {
        let mut input = b"1;".to_vec();
        input.extend(std::iter::repeat_n(b'a', MAX_CHUNK_LINE));
        let r = ChunkedDecoder::default().decode(&input, &mut Vec::new(), 100);
        assert_eq!(r, Err(ChunkError::Bad("chunk extension too long")));
        let mut input = b"0\r\n".to_vec();
        input.extend(std::iter::repeat_n(b'a', MAX_TRAILERS + 1));
        let r = ChunkedDecoder::default().decode(&input, &mut Vec::new(), 100);
        assert_eq!(r, Err(ChunkError::Bad("trailers too large")));
    }

    #[test]
    fn body_limit() {
        assert_eq!(decode_all(b"4\r\nabcd\r\n0\r\n\r\n", 4).unwrap().0, b"abcd");
        let mut d = ChunkedDecoder::default();
        let r = d.decode(b"4\r\nabcd\r\n1\r\n", &mut Vec::new(), 4);
        assert_eq!(r, Err(ChunkError::TooLarge));
        // Refused from the size line alone, before the data arrives.
        let r = ChunkedDecoder::default().decode(b"FFFFFFFF\r\n", &mut Vec::new(), 1 << 20);
        assert_eq!(r, Err(ChunkError::TooLarge));
    }
}
