//! Serde adapters between `rust_decimal::Decimal` and Avro's `decimal` logical type: the
//! unscaled value as big-endian two's-complement bytes, at the scale the schema declares.
//!
//! Use with `#[serde(with = "crate::decimal::scale2")]` (fiat), `scale6` (USDT), `scale8`
//! (rates) or `scale4` (percentages), and the `opt_*` forms for nullable fields. A value with
//! more places than the schema's scale is refused at encoding: rounding is the caller's job.

use rust_decimal::Decimal;
use serde::de::{Error as _, Visitor};
use serde::{Deserializer, Serializer};

/// The unscaled value of `amount` at `scale`, as minimal two's-complement big-endian bytes.
pub fn to_avro_bytes(amount: Decimal, scale: u32) -> Result<Vec<u8>, String> {
    let exact = amount.normalize();
    if exact.scale() > scale {
        return Err(format!("{amount} has more than {scale} decimal places"));
    }
    let mut scaled = exact;
    scaled.rescale(scale);
    let bytes = scaled.mantissa().to_be_bytes();
    // Drop leading bytes that only repeat the sign, keeping the sign bit intact.
    let mut start = 0;
    while start < bytes.len() - 1 {
        let (b, next) = (bytes[start], bytes[start + 1]);
        let redundant = (b == 0x00 && next & 0x80 == 0) || (b == 0xff && next & 0x80 != 0);
        if !redundant {
            break;
        }
        start += 1;
    }
    Ok(bytes[start..].to_vec())
}

/// Reads an unscaled two's-complement big-endian value at `scale`.
pub fn from_avro_bytes(bytes: &[u8], scale: u32) -> Result<Decimal, String> {
    if bytes.is_empty() || bytes.len() > 16 {
        return Err(format!("decimal of {} bytes is out of range", bytes.len()));
    }
    let fill = if bytes[0] & 0x80 != 0 { 0xff } else { 0x00 };
    let mut wide = [fill; 16];
    wide[16 - bytes.len()..].copy_from_slice(bytes);
    Decimal::try_from_i128_with_scale(i128::from_be_bytes(wide), scale)
        .map_err(|e| format!("decimal out of range: {e}"))
}

struct BytesVisitor(u32);

impl<'de> Visitor<'de> for BytesVisitor {
    type Value = Decimal;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "an Avro decimal (bytes) at scale {}", self.0)
    }
    fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Decimal, E> {
        from_avro_bytes(v, self.0).map_err(E::custom)
    }
    fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Decimal, E> {
        self.visit_bytes(&v)
    }
}

struct OptVisitor(u32);

impl<'de> Visitor<'de> for OptVisitor {
    type Value = Option<Decimal>;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "null or an Avro decimal at scale {}", self.0)
    }
    fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_bytes(BytesVisitor(self.0)).map(Some)
    }
    fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Self::Value, E> {
        from_avro_bytes(v, self.0).map(Some).map_err(E::custom)
    }
}

pub fn serialize<S: Serializer>(v: &Decimal, scale: u32, s: S) -> Result<S::Ok, S::Error> {
    let bytes = to_avro_bytes(*v, scale).map_err(serde::ser::Error::custom)?;
    s.serialize_bytes(&bytes)
}

pub fn deserialize<'de, D: Deserializer<'de>>(d: D, scale: u32) -> Result<Decimal, D::Error> {
    d.deserialize_bytes(BytesVisitor(scale))
}

pub fn serialize_opt<S: Serializer>(
    v: &Option<Decimal>,
    scale: u32,
    s: S,
) -> Result<S::Ok, S::Error> {
    match v {
        None => s.serialize_none(),
        Some(v) => {
            let bytes = to_avro_bytes(*v, scale).map_err(serde::ser::Error::custom)?;
            let wrapped = serde_bytes_ref(&bytes);
            s.serialize_some(&wrapped)
        }
    }
}

pub fn deserialize_opt<'de, D: Deserializer<'de>>(
    d: D,
    scale: u32,
) -> Result<Option<Decimal>, D::Error> {
    d.deserialize_option(OptVisitor(scale))
        .map_err(|e| D::Error::custom(format!("{e}")))
}

/// Serializes a byte slice as bytes (a plain `&[u8]` would serialize as a sequence).
fn serde_bytes_ref(bytes: &[u8]) -> impl serde::Serialize + '_ {
    struct Bytes<'a>(&'a [u8]);
    impl serde::Serialize for Bytes<'_> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_bytes(self.0)
        }
    }
    Bytes(bytes)
}

macro_rules! scale_module {
    ($name:ident, $opt:ident, $scale:expr) => {
        /// For a `Decimal` or a domain amount (anything that converts to and from a `Decimal`).
        pub mod $name {
            use rust_decimal::Decimal;
            pub fn serialize<T, S>(v: &T, s: S) -> Result<S::Ok, S::Error>
            where
                T: Copy + Into<Decimal>,
                S: serde::Serializer,
            {
                super::serialize(&(*v).into(), $scale, s)
            }
            pub fn deserialize<'de, T, D>(d: D) -> Result<T, D::Error>
            where
                T: TryFrom<Decimal>,
                T::Error: std::fmt::Display,
                D: serde::Deserializer<'de>,
            {
                let amount = super::deserialize(d, $scale)?;
                T::try_from(amount).map_err(serde::de::Error::custom)
            }
        }
        pub mod $opt {
            use rust_decimal::Decimal;
            pub fn serialize<T, S>(v: &Option<T>, s: S) -> Result<S::Ok, S::Error>
            where
                T: Copy + Into<Decimal>,
                S: serde::Serializer,
            {
                super::serialize_opt(&v.map(Into::into), $scale, s)
            }
            pub fn deserialize<'de, T, D>(d: D) -> Result<Option<T>, D::Error>
            where
                T: TryFrom<Decimal>,
                T::Error: std::fmt::Display,
                D: serde::Deserializer<'de>,
            {
                super::deserialize_opt(d, $scale)?
                    .map(T::try_from)
                    .transpose()
                    .map_err(serde::de::Error::custom)
            }
        }
    };
}

scale_module!(scale2, opt_scale2, 2);
scale_module!(scale4, opt_scale4, 4);
scale_module!(scale6, opt_scale6, 6);
scale_module!(scale8, opt_scale8, 8);

/// Arrays of fiat amounts (`{"type":"array","items": decimal(20,2)}`).
pub mod vec_scale2 {
    use rust_decimal::Decimal;
    use serde::ser::SerializeSeq;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize, Deserialize)]
    #[serde(transparent)]
    struct Item(#[serde(with = "super::scale2")] Decimal);

    pub fn serialize<T, S>(v: &[T], s: S) -> Result<S::Ok, S::Error>
    where
        T: Copy + Into<Decimal>,
        S: Serializer,
    {
        let mut seq = s.serialize_seq(Some(v.len()))?;
        for d in v {
            seq.serialize_element(&Item((*d).into()))?;
        }
        seq.end()
    }

    pub fn deserialize<'de, T, D>(d: D) -> Result<Vec<T>, D::Error>
    where
        T: TryFrom<Decimal>,
        T::Error: std::fmt::Display,
        D: Deserializer<'de>,
    {
        Vec::<Item>::deserialize(d)?
            .into_iter()
            .map(|i| T::try_from(i.0).map_err(serde::de::Error::custom))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    #[test]
    fn bytes_round_trip_at_scale() {
        for s in [
            "0",
            "0.01",
            "-0.01",
            "1.27",
            "1.28",
            "-1.28",
            "-1.29",
            "5000",
            "99999999999.99",
        ] {
            let d = Decimal::from_str(s).unwrap();
            let bytes = to_avro_bytes(d, 2).unwrap();
            assert_eq!(from_avro_bytes(&bytes, 2).unwrap(), d, "{s}");
        }
    }

    #[test]
    fn encoding_is_minimal_twos_complement() {
        assert_eq!(
            to_avro_bytes(Decimal::from_str("1.27").unwrap(), 2).unwrap(),
            vec![127]
        );
        assert_eq!(
            to_avro_bytes(Decimal::from_str("1.28").unwrap(), 2).unwrap(),
            vec![0, 128]
        );
        assert_eq!(
            to_avro_bytes(Decimal::from_str("-1.28").unwrap(), 2).unwrap(),
            vec![128]
        );
        assert_eq!(to_avro_bytes(Decimal::ZERO, 6).unwrap(), vec![0]);
    }

    #[test]
    fn extra_places_are_refused() {
        assert!(to_avro_bytes(Decimal::from_str("0.001").unwrap(), 2).is_err());
    }
}
