//! Byte encodings of the redb tables' values: a stored key's record (in the
//! kv table, keyed by the key) and one revision's events (in the history
//! table, keyed by the revision). Little-endian, length-prefixed, versioned
//! by a leading tag byte.

use crate::{Event, EventKind, KeyValue, LeaseId, Revision, StoreError};

const KV_TAG: u8 = 1;
const EVENTS_TAG: u8 = 1;

/// Encodes the kv table's value for `kv` (everything but the key).
pub(crate) fn encode_kv(kv: &KeyValue) -> Vec<u8> {
    let mut out = Vec::with_capacity(34 + kv.value.len());
    out.push(KV_TAG);
    put_meta(
        &mut out,
        kv.create_revision,
        kv.mod_revision,
        kv.version,
        kv.lease,
    );
    out.extend_from_slice(&kv.value);
    out
}

/// Decodes a kv table value stored under `key`.
pub(crate) fn decode_kv(key: &str, bytes: &[u8]) -> Result<KeyValue, StoreError> {
    let mut r = Reader {
        bytes,
        what: "a key's record",
    };
    r.tag(KV_TAG)?;
    let (create_revision, mod_revision, version, lease) = r.meta()?;
    Ok(KeyValue {
        key: key.to_string(),
        value: r.bytes.to_vec(),
        create_revision,
        mod_revision,
        version,
        lease,
    })
}

/// Encodes one revision's events for the history table.
pub(crate) fn encode_events(events: &[Event]) -> Vec<u8> {
    let size: usize = events
        .iter()
        .map(|e| 42 + e.kv.key.len() + e.kv.value.len())
        .sum();
    let mut out = Vec::with_capacity(5 + size);
    out.push(EVENTS_TAG);
    out.extend_from_slice(&len_u32(events.len()).to_le_bytes());
    for event in events {
        out.push(match event.kind {
            EventKind::Put => 0,
            EventKind::Delete => 1,
        });
        put_bytes(&mut out, event.kv.key.as_bytes());
        let kv = &event.kv;
        put_meta(
            &mut out,
            kv.create_revision,
            kv.mod_revision,
            kv.version,
            kv.lease,
        );
        put_bytes(&mut out, &kv.value);
    }
    out
}

/// Decodes one revision's events from the history table.
pub(crate) fn decode_events(bytes: &[u8]) -> Result<Vec<Event>, StoreError> {
    let mut r = Reader {
        bytes,
        what: "a revision's events",
    };
    r.tag(EVENTS_TAG)?;
    let count = r.u32()? as usize;
    let mut events = Vec::with_capacity(count.min(1024));
    for _ in 0..count {
        let kind = match r.take(1)?[0] {
            0 => EventKind::Put,
            1 => EventKind::Delete,
            other => return Err(r.corrupt(&format!("unknown event kind {other}"))),
        };
        let key = r.string()?;
        let (create_revision, mod_revision, version, lease) = r.meta()?;
        let value = r.sized()?.to_vec();
        events.push(Event {
            kind,
            kv: KeyValue {
                key,
                value,
                create_revision,
                mod_revision,
                version,
                lease,
            },
        });
    }
    if !r.bytes.is_empty() {
        return Err(r.corrupt("trailing bytes"));
    }
    Ok(events)
}

fn len_u32(len: usize) -> u32 {
    // Keys and values are far below 4 GiB: redb itself caps a value at 3 GiB.
    u32::try_from(len).expect("length below 4 GiB")
}

fn put_meta(
    out: &mut Vec<u8>,
    create: Revision,
    modified: Revision,
    version: i64,
    lease: Option<LeaseId>,
) {
    out.extend_from_slice(&create.to_le_bytes());
    out.extend_from_slice(&modified.to_le_bytes());
    out.extend_from_slice(&version.to_le_bytes());
    match lease {
        None => out.push(0),
        Some(id) => {
            out.push(1);
            out.extend_from_slice(&id.to_le_bytes());
        }
    }
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&len_u32(bytes.len()).to_le_bytes());
    out.extend_from_slice(bytes);
}

struct Reader<'a> {
    bytes: &'a [u8],
    what: &'static str,
}

impl<'a> Reader<'a> {
    fn corrupt(&self, detail: &str) -> StoreError {
        StoreError::Corrupt(format!("cannot decode {}: {detail}", self.what))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], StoreError> {
        if self.bytes.len() < n {
            return Err(self.corrupt("truncated"));
        }
        let (head, tail) = self.bytes.split_at(n);
        self.bytes = tail;
        Ok(head)
    }

    fn tag(&mut self, expected: u8) -> Result<(), StoreError> {
        let tag = self.take(1)?[0];
        if tag != expected {
            return Err(self.corrupt(&format!("format tag {tag}, expected {expected}")));
        }
        Ok(())
    }

    fn u32(&mut self) -> Result<u32, StoreError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn i64(&mut self) -> Result<i64, StoreError> {
        let b = self.take(8)?;
        let mut arr = [0u8; 8];
        arr.copy_from_slice(b);
        Ok(i64::from_le_bytes(arr))
    }

    fn meta(&mut self) -> Result<(Revision, Revision, i64, Option<LeaseId>), StoreError> {
        let create = self.i64()?;
        let modified = self.i64()?;
        let version = self.i64()?;
        let lease = match self.take(1)?[0] {
            0 => None,
            1 => Some(self.i64()?),
            other => return Err(self.corrupt(&format!("lease flag {other}"))),
        };
        Ok((create, modified, version, lease))
    }

    fn sized(&mut self) -> Result<&'a [u8], StoreError> {
        let len = self.u32()? as usize;
        self.take(len)
    }

    fn string(&mut self) -> Result<String, StoreError> {
        let bytes = self.sized()?;
        String::from_utf8(bytes.to_vec()).map_err(|_| self.corrupt("a key is not UTF-8"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(key: &str, value: &[u8], lease: Option<LeaseId>) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: value.to_vec(),
            create_revision: 3,
            mod_revision: 7,
            version: 2,
            lease,
        }
    }

    #[test]
    fn kv_round_trips() {
        for lease in [None, Some(-5), Some(i64::MAX)] {
            let original = kv("t/a/x", b"hello", lease);
            let decoded = decode_kv("t/a/x", &encode_kv(&original)).unwrap();
            assert_eq!(decoded, original);
        }
        let empty = kv("k", b"", None);
        assert_eq!(decode_kv("k", &encode_kv(&empty)).unwrap(), empty);
    }

    #[test]
    fn events_round_trip() {
        let events = vec![
            Event {
                kind: EventKind::Put,
                kv: kv("a", b"1", Some(9)),
            },
            Event {
                kind: EventKind::Delete,
                kv: kv("b/c", b"", None),
            },
        ];
        assert_eq!(decode_events(&encode_events(&events)).unwrap(), events);
        assert_eq!(decode_events(&encode_events(&[])).unwrap(), vec![]);
    }

    #[test]
    fn damaged_bytes_are_corrupt_not_panics() {
        let bytes = encode_events(&[Event {
            kind: EventKind::Put,
            kv: kv("a", b"1", None),
        }]);
        for cut in 0..bytes.len() {
            assert!(matches!(
                decode_events(&bytes[..cut]),
                Err(StoreError::Corrupt(_))
            ));
        }
        assert!(matches!(
            decode_kv("k", &[9, 0]),
            Err(StoreError::Corrupt(_))
        ));
        assert!(matches!(decode_kv("k", &[]), Err(StoreError::Corrupt(_))));
    }
}
