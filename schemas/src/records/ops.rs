//! Processor changelogs and dead letters.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InputOffset {
    pub topic: String,
    pub partition: i32,
    /// The next offset to read: everything below it is applied.
    pub offset: i64,
}

/// `<processor>.changelog` (compacted), key = state key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChangelogEntry {
    pub state_key: String,
    #[serde(with = "opt_bytes")]
    pub state: Option<Vec<u8>>,
    pub state_schema_id: Option<i32>,
    pub covered_offsets: Vec<InputOffset>,
    pub marker: Option<String>,
    pub written_at: i64,
    /// The restore marker of the instance that wrote the record (v2).
    #[serde(default)]
    pub writer: Option<String>,
    /// Set on a batch record: one chunk of a batch's logged decisions (v2).
    #[serde(default)]
    pub batch: Option<LoggedBatch>,
}

/// One chunk of a batch's decisions, written before any of its outputs is produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoggedBatch {
    /// The batch's number in its partition, from 1.
    pub sequence: i64,
    pub chunk: i32,
    /// The batch counts only once every chunk was read.
    pub chunks: i32,
    pub changes: Vec<LoggedChange>,
    pub outputs: Vec<LoggedOutput>,
}

/// A state change of a logged batch: as a state record would carry it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoggedChange {
    pub state_key: String,
    #[serde(with = "opt_bytes")]
    pub state: Option<Vec<u8>>,
}

/// An output of a logged batch, encoded as it is produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoggedOutput {
    pub topic: String,
    #[serde(with = "serde_bytes")]
    pub key: Vec<u8>,
    #[serde(with = "serde_bytes")]
    pub payload: Vec<u8>,
}

/// `deadletters`, key = source topic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetter {
    pub source_topic: String,
    pub source_partition: i32,
    pub source_offset: i64,
    pub consumer: String,
    pub error: String,
    #[serde(with = "opt_bytes")]
    pub key: Option<Vec<u8>>,
    #[serde(with = "opt_bytes")]
    pub payload: Option<Vec<u8>>,
    pub failed_at: i64,
}

/// Nullable Avro `bytes`: serde would write a `Vec<u8>` as an array of ints.
mod opt_bytes {
    use serde::de::Visitor;
    use serde::{Deserializer, Serialize, Serializer};

    struct Bytes<'a>(&'a [u8]);
    impl Serialize for Bytes<'_> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_bytes(self.0)
        }
    }

    pub fn serialize<S: Serializer>(v: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            None => s.serialize_none(),
            Some(b) => s.serialize_some(&Bytes(b)),
        }
    }

    struct OptVisitor;
    impl<'de> Visitor<'de> for OptVisitor {
        type Value = Option<Vec<u8>>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("null or bytes")
        }
        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_none<E>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_bytes(self)
        }
        fn visit_bytes<E>(self, v: &[u8]) -> Result<Self::Value, E> {
            Ok(Some(v.to_vec()))
        }
        fn visit_byte_buf<E>(self, v: Vec<u8>) -> Result<Self::Value, E> {
            Ok(Some(v))
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
        d.deserialize_option(OptVisitor)
    }
}
