//! UUIDs as Avro `{"type":"string","logicalType":"uuid"}`: the hyphenated text.
//!
//! Needed because the `uuid` crate serializes as 16 raw bytes to serializers that say they are
//! not human-readable (as apache-avro's direct writer does), which other Avro readers reject.
//! Use with `#[serde(with = "crate::uuid_text")]`, `uuid_text::option` or `uuid_text::vec`, on a
//! `Uuid` or on one of the domain's id newtypes (anything that converts to and from a `Uuid`).

use serde::{Deserialize, Deserializer, Serializer};
use uuid::Uuid;

pub fn serialize<T, S>(id: &T, s: S) -> Result<S::Ok, S::Error>
where
    T: Copy + Into<Uuid>,
    S: Serializer,
{
    let id: Uuid = (*id).into();
    s.serialize_str(id.hyphenated().encode_lower(&mut Uuid::encode_buffer()))
}

pub fn deserialize<'de, T, D>(d: D) -> Result<T, D::Error>
where
    T: From<Uuid>,
    D: Deserializer<'de>,
{
    let text = std::borrow::Cow::<str>::deserialize(d)?;
    Uuid::parse_str(&text)
        .map(T::from)
        .map_err(serde::de::Error::custom)
}

// Transparent: a newtype struct is not a wire type to the fast reader.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
struct Text(#[serde(with = "self")] Uuid);

pub mod option {
    use super::Text;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use uuid::Uuid;

    pub fn serialize<T, S>(id: &Option<T>, s: S) -> Result<S::Ok, S::Error>
    where
        T: Copy + Into<Uuid>,
        S: Serializer,
    {
        id.map(|id| Text(id.into())).serialize(s)
    }

    pub fn deserialize<'de, T, D>(d: D) -> Result<Option<T>, D::Error>
    where
        T: From<Uuid>,
        D: Deserializer<'de>,
    {
        Ok(Option::<Text>::deserialize(d)?.map(|t| T::from(t.0)))
    }
}

pub mod vec {
    use super::Text;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use uuid::Uuid;

    pub fn serialize<T, S>(ids: &[T], s: S) -> Result<S::Ok, S::Error>
    where
        T: Copy + Into<Uuid>,
        S: Serializer,
    {
        ids.iter()
            .map(|id| Text((*id).into()))
            .collect::<Vec<_>>()
            .serialize(s)
    }

    pub fn deserialize<'de, T, D>(d: D) -> Result<Vec<T>, D::Error>
    where
        T: From<Uuid>,
        D: Deserializer<'de>,
    {
        Ok(Vec::<Text>::deserialize(d)?
            .into_iter()
            .map(|t| T::from(t.0))
            .collect())
    }
}
