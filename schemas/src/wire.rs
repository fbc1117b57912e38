//! The Confluent wire format: magic byte 0, the schema id as a 4-byte big-endian integer, then
//! the Avro binary datum. Stock Confluent serializers and deserializers speak it.

pub const MAGIC: u8 = 0;
pub const HEADER_LEN: usize = 5;

/// Writes the 5-byte header into `out`.
pub fn write_header(schema_id: u32, out: &mut Vec<u8>) {
    out.push(MAGIC);
    out.extend_from_slice(&schema_id.to_be_bytes());
}

/// Splits a framed record into its schema id and Avro datum, or `None` if it is not framed.
pub fn split(bytes: &[u8]) -> Option<(u32, &[u8])> {
    if bytes.len() < HEADER_LEN || bytes[0] != MAGIC {
        return None;
    }
    let id = u32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]);
    Some((id, &bytes[HEADER_LEN..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trip() {
        let mut out = Vec::new();
        write_header(0x0102_0304, &mut out);
        out.extend_from_slice(b"datum");
        assert_eq!(&out[..5], &[0, 1, 2, 3, 4]);
        assert_eq!(split(&out), Some((0x0102_0304, &b"datum"[..])));
    }

    #[test]
    fn unframed_bytes_are_refused() {
        assert_eq!(split(b""), None);
        assert_eq!(split(&[0, 0, 0, 1]), None);
        assert_eq!(split(&[1, 0, 0, 0, 1, 2]), None);
    }
}
