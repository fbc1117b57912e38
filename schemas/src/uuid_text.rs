//! UUIDs as Avro `{"type":"string","logicalType":"uuid"}`: the hyphenated text.
//!
//! Needed because the `uuid` crate serializes as 16 raw bytes to serializers that say they are
//! not human-readable (as apache-avro's direct writer does), which other Avro readers reject.
//! Use with `#[serde(with = "crate::uuid_text")]`, `uuid_text::option` or `uuid_text::vec`.

use serde::{Deserialize, Deserializer, Serializer};
use uuid::Uuid;

pub fn serialize<S: Serializer>(id: &Uuid, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(id.hyphenated().encode_lower(&mut Uuid::encode_buffer()))
}

pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Uuid, D::Error> {
    let text = std::borrow::Cow::<str>::deserialize(d)?;
    Uuid::parse_str(&text).map_err(serde::de::Error::custom)
}

// Transparent: a newtype struct is not a wire type to the fast reader.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
struct Text(#[serde(with = "self")] Uuid);

pub mod option {
    use super::Text;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use uuid::Uuid;

    pub fn serialize<S: Serializer>(id: &Option<Uuid>, s: S) -> Result<S::Ok, S::Error> {
        id.map(Text).serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Uuid>, D::Error> {
        Ok(Option::<Text>::deserialize(d)?.map(|t| t.0))
    }
}

pub mod vec {
    use super::Text;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use uuid::Uuid;

    pub fn serialize<S: Serializer>(ids: &[Uuid], s: S) -> Result<S::Ok, S::Error> {
        ids.iter()
            .copied()
            .map(Text)
            .collect::<Vec<_>>()
            .serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Uuid>, D::Error> {
        Ok(Vec::<Text>::deserialize(d)?
            .into_iter()
            .map(|t| t.0)
            .collect())
    }
}
