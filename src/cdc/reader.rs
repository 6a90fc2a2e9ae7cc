//! A bounds-checked reader over one message's bytes.
//!
//! Every read checks what is left first and fails with
//! [`DecodeError::Truncated`]; no read indexes past the end, and no length
//! from the input is trusted for an allocation (see [`Reader::capacity_for`]).

use bytes::Bytes;

use super::error::DecodeError;
use super::wal::{Lsn, Timestamp, Xid};
use crate::catalog::Oid;

/// Reads big-endian fields from the front of a message. Byte strings come out
/// as [`Bytes`] slices sharing the message's buffer (no copy).
pub(crate) struct Reader<'a> {
    buf: &'a Bytes,
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a Bytes) -> Reader<'a> {
        Reader { buf, pos: 0 }
    }

    /// Bytes not yet read.
    pub(crate) fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    /// The next `n` bytes, advancing past them.
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], DecodeError> {
        let rest = self.buf.get(self.pos..).unwrap_or_default();
        let taken = rest.get(..n).ok_or(DecodeError::Truncated {
            what,
            needed: n,
            remaining: rest.len(),
        })?;
        self.pos += n;
        Ok(taken)
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], DecodeError> {
        let bytes = self.take(N, what)?;
        let mut out = [0; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    pub(crate) fn u8(&mut self, what: &'static str) -> Result<u8, DecodeError> {
        Ok(u8::from_be_bytes(self.array(what)?))
    }

    pub(crate) fn u16(&mut self, what: &'static str) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes(self.array(what)?))
    }

    pub(crate) fn u32(&mut self, what: &'static str) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array(what)?))
    }

    pub(crate) fn i32(&mut self, what: &'static str) -> Result<i32, DecodeError> {
        Ok(i32::from_be_bytes(self.array(what)?))
    }

    pub(crate) fn u64(&mut self, what: &'static str) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.array(what)?))
    }

    pub(crate) fn i64(&mut self, what: &'static str) -> Result<i64, DecodeError> {
        Ok(i64::from_be_bytes(self.array(what)?))
    }

    pub(crate) fn lsn(&mut self, what: &'static str) -> Result<Lsn, DecodeError> {
        self.u64(what).map(Lsn)
    }

    pub(crate) fn xid(&mut self, what: &'static str) -> Result<Xid, DecodeError> {
        self.u32(what).map(Xid)
    }

    pub(crate) fn oid(&mut self, what: &'static str) -> Result<Oid, DecodeError> {
        self.u32(what).map(Oid)
    }

    pub(crate) fn timestamp(&mut self, what: &'static str) -> Result<Timestamp, DecodeError> {
        self.i64(what).map(Timestamp)
    }

    /// A one-byte boolean that must be 0 or 1.
    pub(crate) fn bool(&mut self, what: &'static str) -> Result<bool, DecodeError> {
        match self.u8(what)? {
            0 => Ok(false),
            1 => Ok(true),
            byte => Err(DecodeError::InvalidByte { what, byte }),
        }
    }

    /// A NUL-terminated UTF-8 string.
    pub(crate) fn string(&mut self, what: &'static str) -> Result<String, DecodeError> {
        let rest = self.buf.get(self.pos..).unwrap_or_default();
        let len = rest
            .iter()
            .position(|&b| b == 0)
            .ok_or(DecodeError::Unterminated { what })?;
        let text = self.take(len, what)?;
        self.pos += 1; // the NUL found above
        std::str::from_utf8(text)
            .map(str::to_owned)
            .map_err(|_| DecodeError::InvalidUtf8 { what })
    }

    /// The next `len` bytes as a slice of the message buffer.
    pub(crate) fn bytes(&mut self, len: u32, what: &'static str) -> Result<Bytes, DecodeError> {
        let len = usize::try_from(len).map_err(|_| DecodeError::Truncated {
            what,
            needed: usize::MAX,
            remaining: self.remaining(),
        })?;
        let start = self.pos;
        self.take(len, what)?;
        Ok(self.buf.slice(start..self.pos))
    }

    /// Everything not yet read, as a slice of the message buffer.
    pub(crate) fn rest(&mut self) -> Bytes {
        let start = self.pos.min(self.buf.len());
        self.pos = self.buf.len();
        self.buf.slice(start..)
    }

    /// A safe initial capacity for `count` items of at least `min_size` bytes
    /// each: never more than the rest of the message could hold, so a forged
    /// count cannot make the decoder allocate gigabytes up front.
    pub(crate) fn capacity_for(&self, count: usize, min_size: usize) -> usize {
        count.min(self.remaining() / min_size.max(1))
    }

    /// Succeeds only when the whole message `tag` has been read.
    pub(crate) fn finish(&self, tag: u8) -> Result<(), DecodeError> {
        match self.remaining() {
            0 => Ok(()),
            extra => Err(DecodeError::TrailingBytes { tag, extra }),
        }
    }
}
