//! Compact binary encoding of a hot row's value.
//!
//! Layout: `format version u8 | seq varint | count varint | count × (name id varint | tag u8 |
//! payload)`. Name ids are strictly ascending, which lets a projected read stop as soon as it has
//! passed the last wanted name. Payloads: Null/False/True have none, Int is a zigzag varint, Float
//! is 8 bytes little-endian, Str is a varint length then UTF-8 bytes.

use strata_core::{NameId, Value};

use crate::error::StorageError;

/// Current value format. A reader refuses versions it does not know instead of misreading them.
pub const FORMAT_VERSION: u8 = 1;

const TAG_NULL: u8 = 0;
const TAG_FALSE: u8 = 1;
const TAG_TRUE: u8 = 2;
const TAG_INT: u8 = 3;
const TAG_FLOAT: u8 = 4;
const TAG_STR: u8 = 5;

/// A decoded value borrowing its text from the stored bytes, so reads need not allocate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ValueRef<'a> {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(&'a str),
}

impl ValueRef<'_> {
    pub fn to_value(&self) -> Value {
        match *self {
            ValueRef::Null => Value::Null,
            ValueRef::Bool(b) => Value::Bool(b),
            ValueRef::Int(i) => Value::Int(i),
            ValueRef::Float(f) => Value::Float(f),
            ValueRef::Str(s) => Value::Str(s.to_owned()),
        }
    }
}

impl<'a> From<&'a Value> for ValueRef<'a> {
    fn from(value: &'a Value) -> Self {
        match value {
            Value::Null => ValueRef::Null,
            Value::Bool(b) => ValueRef::Bool(*b),
            Value::Int(i) => ValueRef::Int(*i),
            Value::Float(f) => ValueRef::Float(*f),
            Value::Str(s) => ValueRef::Str(s),
        }
    }
}

pub fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

#[inline]
fn zigzag(value: i64) -> u64 {
    ((value << 1) ^ (value >> 63)) as u64
}

#[inline]
fn unzigzag(value: u64) -> i64 {
    ((value >> 1) as i64) ^ -((value & 1) as i64)
}

/// Encodes the part of a value that does not depend on the sequence number: the count and the
/// values. `values` must be sorted by strictly ascending name id.
pub fn encode_body(values: &[(NameId, Value)], out: &mut Vec<u8>) {
    debug_assert!(
        values.windows(2).all(|w| w[0].0 < w[1].0),
        "name ids must be strictly ascending"
    );
    put_varint(out, values.len() as u64);
    for (name, value) in values {
        put_varint(out, u64::from(*name));
        match value {
            Value::Null => out.push(TAG_NULL),
            Value::Bool(false) => out.push(TAG_FALSE),
            Value::Bool(true) => out.push(TAG_TRUE),
            Value::Int(i) => {
                out.push(TAG_INT);
                put_varint(out, zigzag(*i));
            }
            Value::Float(f) => {
                out.push(TAG_FLOAT);
                out.extend_from_slice(&f.to_le_bytes());
            }
            Value::Str(s) => {
                out.push(TAG_STR);
                put_varint(out, s.len() as u64);
                out.extend_from_slice(s.as_bytes());
            }
        }
    }
}

/// Prepends the version byte and sequence number to an encoded body.
pub fn encode_record(seq: u64, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + 10 + body.len());
    out.push(FORMAT_VERSION);
    put_varint(&mut out, seq);
    out.extend_from_slice(body);
    out
}

/// Encodes a whole value record (version, seq, values); values must be sorted by name id.
pub fn encode_value(seq: u64, values: &[(NameId, Value)]) -> Vec<u8> {
    let mut body = Vec::new();
    encode_body(values, &mut body);
    encode_record(seq, &body)
}

fn corrupt(what: &str) -> StorageError {
    StorageError::Corrupt {
        what: format!("hot row value: {what}"),
    }
}

/// A forward reader over an encoded value. Call [`ValueReader::next_name`], then exactly one of
/// [`ValueReader::read_value`] or [`ValueReader::skip_value`].
pub struct ValueReader<'a> {
    bytes: &'a [u8],
    pos: usize,
    remaining: u64,
    seq: u64,
    previous_name: Option<NameId>,
}

impl<'a> ValueReader<'a> {
    /// Reads the header. Fails on an unknown version or a truncated header.
    pub fn new(bytes: &'a [u8]) -> Result<Self, StorageError> {
        let mut reader = ValueReader {
            bytes,
            pos: 0,
            remaining: 0,
            seq: 0,
            previous_name: None,
        };
        let version = reader.byte()?;
        if version != FORMAT_VERSION {
            return Err(corrupt(&format!("unknown format version {version}")));
        }
        reader.seq = reader.varint()?;
        reader.remaining = reader.varint()?;
        // Every value takes at least two bytes, so a larger count is corruption, not a big row.
        if reader.remaining > (bytes.len() - reader.pos) as u64 / 2 {
            return Err(corrupt("value count exceeds the record size"));
        }
        Ok(reader)
    }

    /// The write sequence number of the row.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// How many values are still unread.
    pub fn remaining(&self) -> u64 {
        self.remaining
    }

    #[inline]
    fn byte(&mut self) -> Result<u8, StorageError> {
        let byte = *self
            .bytes
            .get(self.pos)
            .ok_or_else(|| corrupt("truncated"))?;
        self.pos += 1;
        Ok(byte)
    }

    #[inline]
    fn varint(&mut self) -> Result<u64, StorageError> {
        let mut value = 0u64;
        let mut shift = 0u32;
        loop {
            let byte = self.byte()?;
            if shift == 63 && byte > 1 {
                return Err(corrupt("varint overflows 64 bits"));
            }
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
            shift += 7;
            if shift > 63 {
                return Err(corrupt("varint too long"));
            }
        }
    }

    #[inline]
    fn take(&mut self, len: u64) -> Result<&'a [u8], StorageError> {
        let len = usize::try_from(len).map_err(|_| corrupt("length overflows"))?;
        let end = self
            .pos
            .checked_add(len)
            .filter(|end| *end <= self.bytes.len())
            .ok_or_else(|| corrupt("truncated"))?;
        let slice = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(slice)
    }

    /// The next value's name id, or `None` after the last value.
    #[inline]
    pub fn next_name(&mut self) -> Result<Option<NameId>, StorageError> {
        if self.remaining == 0 {
            if self.pos != self.bytes.len() {
                return Err(corrupt("trailing bytes"));
            }
            return Ok(None);
        }
        self.remaining -= 1;
        let name = NameId::try_from(self.varint()?).map_err(|_| corrupt("name id out of range"))?;
        if self.previous_name.is_some_and(|previous| previous >= name) {
            return Err(corrupt("name ids not ascending"));
        }
        self.previous_name = Some(name);
        Ok(Some(name))
    }

    /// Decodes the value after the name just returned.
    #[inline]
    pub fn read_value(&mut self) -> Result<ValueRef<'a>, StorageError> {
        Ok(match self.byte()? {
            TAG_NULL => ValueRef::Null,
            TAG_FALSE => ValueRef::Bool(false),
            TAG_TRUE => ValueRef::Bool(true),
            TAG_INT => ValueRef::Int(unzigzag(self.varint()?)),
            TAG_FLOAT => {
                let mut word = [0u8; 8];
                word.copy_from_slice(self.take(8)?);
                ValueRef::Float(f64::from_le_bytes(word))
            }
            TAG_STR => {
                let len = self.varint()?;
                let bytes = self.take(len)?;
                ValueRef::Str(std::str::from_utf8(bytes).map_err(|_| corrupt("invalid UTF-8"))?)
            }
            tag => return Err(corrupt(&format!("unknown tag {tag}"))),
        })
    }

    /// Skips the value after the name just returned without decoding or validating its text.
    #[inline]
    pub fn skip_value(&mut self) -> Result<(), StorageError> {
        match self.byte()? {
            TAG_NULL | TAG_FALSE | TAG_TRUE => {}
            TAG_INT => {
                self.varint()?;
            }
            TAG_FLOAT => {
                self.take(8)?;
            }
            TAG_STR => {
                let len = self.varint()?;
                self.take(len)?;
            }
            tag => return Err(corrupt(&format!("unknown tag {tag}"))),
        }
        Ok(())
    }

    /// Calls `visit` for each value whose name is in `wanted` (sorted ascending; `None` = all),
    /// skipping the rest without decoding their text. Stops early once past the last wanted name.
    pub fn for_each(
        &mut self,
        wanted: Option<&[NameId]>,
        mut visit: impl FnMut(NameId, ValueRef<'a>),
    ) -> Result<(), StorageError> {
        debug_assert!(wanted.is_none_or(|w| w.windows(2).all(|p| p[0] < p[1])));
        let mut wanted_pos = 0usize;
        while let Some(name) = self.next_name()? {
            match wanted {
                None => visit(name, self.read_value()?),
                Some(wanted) => {
                    while wanted_pos < wanted.len() && wanted[wanted_pos] < name {
                        wanted_pos += 1;
                    }
                    if wanted_pos == wanted.len() {
                        // Nothing wanted remains; the rest of the record is not needed.
                        return Ok(());
                    }
                    if wanted[wanted_pos] == name {
                        visit(name, self.read_value()?);
                    } else {
                        self.skip_value()?;
                    }
                }
            }
        }
        Ok(())
    }
}

/// Decodes a whole record into owned values (optionally projected); returns its seq.
pub fn decode_value(
    bytes: &[u8],
    wanted: Option<&[NameId]>,
    out: &mut Vec<(NameId, Value)>,
) -> Result<u64, StorageError> {
    let mut reader = ValueReader::new(bytes)?;
    let seq = reader.seq();
    reader.for_each(wanted, |name, value| out.push((name, value.to_value())))?;
    Ok(seq)
}
