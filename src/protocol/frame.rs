//! Streaming message framing: `type byte + Int32 length (including itself) + body`.
//!
//! [`FrameScanner`] walks a byte buffer and says, step by step, what lies at
//! its front. Bodies of messages nobody needs to inspect are passed on in
//! whatever pieces arrive ([`Step::Start`] then [`Step::Body`]), so memory use
//! does not depend on message size. Messages the caller asked to inspect are
//! held back until complete and then reported whole ([`Step::Message`]).

use super::ProtocolError;

/// Which side sent the bytes being scanned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Client → server: message types are validated.
    Frontend,
    /// Server → client: trusted to be well formed beyond its framing.
    Backend,
}

/// Frontend message types of protocol 3.0.
pub mod frontend {
    pub const BIND: u8 = b'B';
    pub const CLOSE: u8 = b'C';
    pub const COPY_DATA: u8 = b'd';
    pub const COPY_DONE: u8 = b'c';
    pub const COPY_FAIL: u8 = b'f';
    pub const DESCRIBE: u8 = b'D';
    pub const EXECUTE: u8 = b'E';
    pub const FLUSH: u8 = b'H';
    pub const FUNCTION_CALL: u8 = b'F';
    pub const PARSE: u8 = b'P';
    /// PasswordMessage, SASLInitialResponse, SASLResponse, GSSResponse.
    pub const PASSWORD: u8 = b'p';
    pub const QUERY: u8 = b'Q';
    pub const SYNC: u8 = b'S';
    pub const TERMINATE: u8 = b'X';

    /// Whether `tag` is a frontend message type of protocol 3.0.
    pub fn is_known(tag: u8) -> bool {
        matches!(
            tag,
            BIND | CLOSE
                | COPY_DATA
                | COPY_DONE
                | COPY_FAIL
                | DESCRIBE
                | EXECUTE
                | FLUSH
                | FUNCTION_CALL
                | PARSE
                | PASSWORD
                | QUERY
                | SYNC
                | TERMINATE
        )
    }
}

/// Backend message types the proxy cares about.
pub mod backend {
    pub const AUTHENTICATION: u8 = b'R';
    pub const BACKEND_KEY_DATA: u8 = b'K';
    pub const COPY_IN_RESPONSE: u8 = b'G';
    pub const ERROR_RESPONSE: u8 = b'E';
    pub const NEGOTIATE_PROTOCOL_VERSION: u8 = b'v';
    pub const PARAMETER_STATUS: u8 = b'S';
    pub const READY_FOR_QUERY: u8 = b'Z';
}

/// What lies at the front of the buffer handed to [`FrameScanner::next`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// A complete message of `len` bytes (type byte included) starts at the front.
    Message { tag: u8, len: usize },
    /// A message starts at the front but is not complete in the buffer; the
    /// first `avail` bytes (its header and part of its body) may be passed on
    /// now, the rest follows as [`Step::Body`].
    Start { tag: u8, avail: usize },
    /// The next `n` bytes continue the body of the message last started.
    Body(usize),
    /// Nothing can be decided until more bytes arrive.
    NeedMore,
}

impl Step {
    /// The bytes to pass on now, and the type byte when a message starts
    /// with them; `None` for [`Step::NeedMore`].
    pub fn span(self) -> Option<(Option<u8>, usize)> {
        match self {
            Step::Message { tag, len } => Some((Some(tag), len)),
            Step::Start { tag, avail } => Some((Some(tag), avail)),
            Step::Body(n) => Some((None, n)),
            Step::NeedMore => None,
        }
    }
}

/// Length of a message header: type byte + Int32 length.
pub const HEADER_LEN: usize = 5;

/// Walks the messages of one direction of a connection.
#[derive(Debug, Clone)]
pub struct FrameScanner {
    direction: Direction,
    /// Largest accepted value of the length field.
    max_len: usize,
    /// Body bytes of the current message not yet seen.
    remaining: usize,
}

impl FrameScanner {
    /// A scanner accepting messages whose length field is at most `max_len`.
    pub fn new(direction: Direction, max_len: usize) -> Self {
        FrameScanner {
            direction,
            max_len,
            remaining: 0,
        }
    }

    /// Whether the scanner is between messages.
    pub fn at_boundary(&self) -> bool {
        self.remaining == 0
    }

    /// Decide what lies at the front of `buf`, which must start where the
    /// previous step ended. `whole(tag)` says which message types must be
    /// reported only once complete.
    ///
    /// The caller consumes exactly the bytes the step describes (`len`,
    /// `avail` or `n`) before the next call.
    pub fn next(&mut self, buf: &[u8], whole: impl Fn(u8) -> bool) -> Result<Step, ProtocolError> {
        if self.remaining > 0 {
            if buf.is_empty() {
                return Ok(Step::NeedMore);
            }
            let n = self.remaining.min(buf.len());
            self.remaining -= n;
            return Ok(Step::Body(n));
        }
        let Some(header) = buf.first_chunk::<HEADER_LEN>() else {
            // Check the type byte as soon as it is visible: a bad one must not
            // wait for four more bytes that may never come.
            if let Some(&tag) = buf.first() {
                self.check_tag(tag)?;
            }
            return Ok(Step::NeedMore);
        };
        let tag = header[0];
        self.check_tag(tag)?;
        let len = i32::from_be_bytes([header[1], header[2], header[3], header[4]]);
        if len < 4 {
            return Err(ProtocolError::InvalidLength { tag, len });
        }
        // A non-negative i32 always fits in usize on the platforms we build for.
        let len = usize::try_from(len).map_err(|_| ProtocolError::InvalidLength { tag, len })?;
        if len > self.max_len {
            return Err(ProtocolError::TooLarge {
                tag,
                len,
                max: self.max_len,
            });
        }
        let total = len + 1;
        if buf.len() >= total {
            return Ok(Step::Message { tag, len: total });
        }
        if whole(tag) {
            return Ok(Step::NeedMore);
        }
        self.remaining = total - buf.len();
        Ok(Step::Start {
            tag,
            avail: buf.len(),
        })
    }

    fn check_tag(&self, tag: u8) -> Result<(), ProtocolError> {
        if self.direction == Direction::Frontend && !frontend::is_known(tag) {
            return Err(ProtocolError::UnknownMessageType(tag));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut v = vec![tag];
        v.extend_from_slice(&(body.len() as i32 + 4).to_be_bytes());
        v.extend_from_slice(body);
        v
    }

    fn never(_: u8) -> bool {
        false
    }

    #[test]
    fn complete_messages_are_reported_whole() {
        let mut buf = msg(b'Q', b"select 1\0");
        buf.extend(msg(b'S', b""));
        let mut s = FrameScanner::new(Direction::Frontend, 1 << 20);
        assert_eq!(
            s.next(&buf, never).unwrap(),
            Step::Message { tag: b'Q', len: 14 }
        );
        assert_eq!(
            s.next(&buf[14..], never).unwrap(),
            Step::Message { tag: b'S', len: 5 }
        );
        assert_eq!(s.next(&buf[19..], never).unwrap(), Step::NeedMore);
    }

    #[test]
    fn large_message_streams_in_pieces() {
        let body = vec![7u8; 100];
        let buf = msg(b'D', &body);
        let mut s = FrameScanner::new(Direction::Backend, usize::MAX);
        // Only 30 bytes have arrived.
        assert_eq!(
            s.next(&buf[..30], never).unwrap(),
            Step::Start {
                tag: b'D',
                avail: 30
            }
        );
        assert!(!s.at_boundary());
        assert_eq!(s.next(&buf[30..60], never).unwrap(), Step::Body(30));
        assert_eq!(s.next(&[], never).unwrap(), Step::NeedMore);
        // The rest plus the start of the next message.
        let mut rest = buf[60..].to_vec();
        rest.extend(msg(b'Z', b"I"));
        assert_eq!(s.next(&rest, never).unwrap(), Step::Body(45));
        assert!(s.at_boundary());
        assert_eq!(
            s.next(&rest[45..], never).unwrap(),
            Step::Message { tag: b'Z', len: 6 }
        );
    }

    #[test]
    fn inspected_messages_wait_until_complete() {
        let buf = msg(b'K', &[0, 0, 0, 1, 0, 0, 0, 2]);
        let mut s = FrameScanner::new(Direction::Backend, usize::MAX);
        let is_k = |t| t == b'K';
        assert_eq!(s.next(&buf[..3], is_k).unwrap(), Step::NeedMore);
        assert_eq!(s.next(&buf[..8], is_k).unwrap(), Step::NeedMore);
        assert_eq!(
            s.next(&buf, is_k).unwrap(),
            Step::Message { tag: b'K', len: 13 }
        );
    }

    #[test]
    fn unknown_frontend_type_is_rejected_from_its_first_byte() {
        let mut s = FrameScanner::new(Direction::Frontend, 1 << 20);
        assert_eq!(
            s.next(b"?", never),
            Err(ProtocolError::UnknownMessageType(b'?'))
        );
        // The backend direction does not validate types.
        let mut b = FrameScanner::new(Direction::Backend, 1 << 20);
        assert_eq!(
            b.next(&msg(b'?', b""), never).unwrap(),
            Step::Message { tag: b'?', len: 5 }
        );
    }

    #[test]
    fn short_length_is_rejected() {
        let mut s = FrameScanner::new(Direction::Frontend, 1 << 20);
        assert_eq!(
            s.next(&[b'Q', 0, 0, 0, 3], never),
            Err(ProtocolError::InvalidLength { tag: b'Q', len: 3 })
        );
        assert_eq!(
            s.next(&[b'Q', 0xff, 0xff, 0xff, 0xff], never),
            Err(ProtocolError::InvalidLength { tag: b'Q', len: -1 })
        );
    }

    #[test]
    fn oversized_message_is_rejected_from_its_header() {
        let mut s = FrameScanner::new(Direction::Frontend, 1000);
        let header = [b'Q', 0, 0, 0x03, 0xe9]; // length 1001
        assert_eq!(
            s.next(&header, never),
            Err(ProtocolError::TooLarge {
                tag: b'Q',
                len: 1001,
                max: 1000
            })
        );
        let mut ok = vec![b'Q'];
        ok.extend_from_slice(&1000i32.to_be_bytes());
        assert_eq!(
            s.next(&ok, never).unwrap(),
            Step::Start {
                tag: b'Q',
                avail: 5
            }
        );
    }

    #[test]
    fn arbitrary_splits_reassemble_the_same_messages() {
        let mut stream = Vec::new();
        for i in 0..50u8 {
            stream.extend(msg(b'd', &vec![i; (i as usize) * 37 % 300]));
        }
        for chunk in [1usize, 2, 3, 5, 7, 64, 1000] {
            let mut s = FrameScanner::new(Direction::Frontend, 1 << 20);
            let mut pending: Vec<u8> = Vec::new();
            let mut tags = Vec::new();
            let mut passed = 0usize;
            for piece in stream.chunks(chunk) {
                pending.extend_from_slice(piece);
                loop {
                    match s.next(&pending, never).unwrap() {
                        Step::Message { tag, len } => {
                            tags.push(tag);
                            passed += len;
                            pending.drain(..len);
                        }
                        Step::Start { tag, avail } => {
                            tags.push(tag);
                            passed += avail;
                            pending.drain(..avail);
                        }
                        Step::Body(n) => {
                            passed += n;
                            pending.drain(..n);
                        }
                        Step::NeedMore => break,
                    }
                }
            }
            assert_eq!(passed, stream.len(), "chunk {chunk}");
            assert_eq!(tags.len(), 50, "chunk {chunk}");
        }
    }
}
