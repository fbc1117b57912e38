//! The set of known schemas with their ids, and the codec that uses them.
//!
//! By default ids come from [`crate::catalogue::SCHEMAS`]; with an external Schema Registry the
//! ids it assigned are used instead ([`SchemaRegistry::with_ids`]). Decoding resolves the
//! writer's schema (by the id in the record) against the newest version we know, so old records
//! keep decoding after a schema evolves.

use crate::catalogue::{SchemaSource, KEY_SCHEMA, SCHEMAS};
use crate::inline::inline_refs;
use crate::records::Record;
use crate::topics::TOPICS;
use crate::wire;
use apache_avro::Schema;
use std::collections::HashMap;
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error("schema {name} v{version} does not parse: {reason}")]
    Invalid {
        name: &'static str,
        version: u32,
        reason: String,
    },
    #[error("schema id {0} is used twice")]
    DuplicateId(u32),
    #[error("no id given for schema {name} v{version}")]
    MissingId { name: &'static str, version: u32 },
}

/// Why a record could not be encoded or decoded. None of these is retriable: the record is
/// malformed for us, and a consumer sends it to the dead-letter topic.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("record is not in the Confluent wire format (magic byte 0 + 4-byte schema id)")]
    NotFramed,
    #[error("unknown schema id {0}")]
    UnknownSchemaId(u32),
    #[error("schema id {id} is a {found} schema, expected {expected}")]
    WrongSchema {
        id: u32,
        expected: &'static str,
        found: &'static str,
    },
    #[error("avro: {0}")]
    Avro(String),
    #[error("{0} bytes left after the Avro datum")]
    TrailingBytes(usize),
}

impl From<apache_avro::Error> for CodecError {
    fn from(e: apache_avro::Error) -> Self {
        CodecError::Avro(e.to_string())
    }
}

/// One schema version, parsed, with the id used on the wire.
#[derive(Debug)]
pub struct RegisteredSchema {
    pub id: u32,
    pub source: &'static SchemaSource,
    pub schema: Schema,
    /// The same schema with named references inlined, for the direct serde writer.
    write_schema: Schema,
    /// The same schema as the fast reader sees it: logical types dropped, so values reach our
    /// serde adapters as they are on the wire (decimals as bytes, ids as strings).
    read_schema: serde_avro_fast::Schema,
}

impl RegisteredSchema {
    pub fn name(&self) -> &'static str {
        self.source.name
    }
    pub fn version(&self) -> u32 {
        self.source.version
    }
    /// The schema text as a Schema Registry returns it (canonical JSON of the parsed schema).
    pub fn text(&self) -> &'static str {
        self.source.text
    }
}

#[derive(Debug, Clone)]
pub struct SchemaRegistry {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    by_id: HashMap<u32, Arc<RegisteredSchema>>,
    /// Versions of each schema family, oldest first.
    by_name: HashMap<&'static str, Vec<Arc<RegisteredSchema>>>,
}

impl SchemaRegistry {
    /// The shipped schemas with their fixed ids.
    pub fn builtin() -> Result<Self, SchemaError> {
        Self::with_ids(|s| Some(s.id))
    }

    /// The shipped schemas with ids chosen by `id_of` (for example those an external registry
    /// assigned). Two versions may share an id only if they are the same schema.
    pub fn with_ids(id_of: impl Fn(&SchemaSource) -> Option<u32>) -> Result<Self, SchemaError> {
        let mut by_id: HashMap<u32, Arc<RegisteredSchema>> = HashMap::new();
        let mut by_name: HashMap<&'static str, Vec<Arc<RegisteredSchema>>> = HashMap::new();
        for source in SCHEMAS {
            let invalid = |e: apache_avro::Error| SchemaError::Invalid {
                name: source.name,
                version: source.version,
                reason: e.to_string(),
            };
            let schema = Schema::parse_str(source.text).map_err(invalid)?;
            let write_schema = inline_refs(&schema).map_err(invalid)?;
            let read_schema =
                wire_types_only(source.text).map_err(|reason| SchemaError::Invalid {
                    name: source.name,
                    version: source.version,
                    reason,
                })?;
            let id = id_of(source).ok_or(SchemaError::MissingId {
                name: source.name,
                version: source.version,
            })?;
            let entry = Arc::new(RegisteredSchema {
                id,
                source,
                schema,
                write_schema,
                read_schema,
            });
            if by_id.insert(id, entry.clone()).is_some() {
                return Err(SchemaError::DuplicateId(id));
            }
            by_name.entry(source.name).or_default().push(entry);
        }
        for versions in by_name.values_mut() {
            versions.sort_by_key(|s| s.source.version);
        }
        Ok(Self {
            inner: Arc::new(Inner { by_id, by_name }),
        })
    }

    pub fn by_id(&self, id: u32) -> Option<&Arc<RegisteredSchema>> {
        self.inner.by_id.get(&id)
    }

    /// Every version of a schema family, oldest first.
    pub fn versions(&self, name: &str) -> &[Arc<RegisteredSchema>] {
        self.inner
            .by_name
            .get(name)
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    /// The newest version of a schema family.
    pub fn latest(&self, name: &str) -> Option<&Arc<RegisteredSchema>> {
        self.versions(name).last()
    }

    /// Subjects by the Confluent naming strategy: `<topic>-key` and `<topic>-value`, sorted.
    pub fn subjects(&self) -> Vec<String> {
        let mut subjects: Vec<String> = TOPICS
            .iter()
            .flat_map(|t| [format!("{}-key", t.name), format!("{}-value", t.name)])
            .collect();
        subjects.sort();
        subjects
    }

    /// The versions of a subject, oldest first, or `None` for an unknown subject.
    pub fn subject_versions(&self, subject: &str) -> Option<&[Arc<RegisteredSchema>]> {
        let (topic, part) = subject.rsplit_once('-')?;
        let spec = TOPICS.iter().find(|t| t.name == topic)?;
        match part {
            "key" => Some(self.versions(KEY_SCHEMA)),
            "value" => Some(self.versions(spec.value_schema)),
            _ => None,
        }
    }

    /// Encodes a record with the newest version of its schema, framed.
    pub fn encode<T: Record>(&self, record: &T) -> Result<Vec<u8>, CodecError> {
        let schema = self.latest(T::SCHEMA).ok_or(CodecError::Avro(format!(
            "no schema named {} is registered",
            T::SCHEMA
        )))?;
        let mut out = Vec::with_capacity(128);
        wire::write_header(schema.id, &mut out);
        apache_avro::write_avro_datum_ref(&schema.write_schema, record, &mut out)?;
        Ok(out)
    }

    /// Decodes a framed record written with any known version of `T`'s schema.
    pub fn decode<T: Record>(&self, bytes: &[u8]) -> Result<T, CodecError> {
        let (id, datum) = wire::split(bytes).ok_or(CodecError::NotFramed)?;
        let writer = self.by_id(id).ok_or(CodecError::UnknownSchemaId(id))?;
        if writer.name() != T::SCHEMA {
            return Err(CodecError::WrongSchema {
                id,
                expected: T::SCHEMA,
                found: writer.name(),
            });
        }
        // Read with the writer's schema straight into the Rust type, by field name: fields a
        // newer version added (each with an Avro default, enforced by the compatibility test)
        // take their serde default. Not apache-avro's reader-schema resolution: up to 0.22 it
        // refuses any bytes decimal shorter than its declared precision, i.e. every amount we
        // write. Not apache-avro's reader either: it builds a `Value` tree (and a BigInt per
        // decimal) for every record, which was the pipeline's largest CPU cost.
        let mut state =
            serde_avro_fast::de::DeserializerState::from_slice(datum, &writer.read_schema);
        let record =
            T::deserialize(state.deserializer()).map_err(|e| CodecError::Avro(e.to_string()))?;
        let rest = std::io::BufRead::fill_buf(&mut state.into_reader())
            .map(<[u8]>::len)
            .unwrap_or(0);
        if rest > 0 {
            return Err(CodecError::TrailingBytes(rest));
        }
        Ok(record)
    }

    /// Encodes a record key (an id or a pool name) as a framed Avro string.
    pub fn encode_key(&self, key: &str) -> Vec<u8> {
        let id = self
            .latest(KEY_SCHEMA)
            .expect("the key schema is shipped")
            .id;
        let mut out = Vec::with_capacity(wire::HEADER_LEN + key.len() + 2);
        wire::write_header(id, &mut out);
        // An Avro string is its length as a zig-zag varint, then the UTF-8 bytes.
        let mut n = zigzag(key.len() as i64);
        loop {
            let byte = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.push(byte);
                break;
            }
            out.push(byte | 0x80);
        }
        out.extend_from_slice(key.as_bytes());
        out
    }

    pub fn decode_key(&self, bytes: &[u8]) -> Result<String, CodecError> {
        self.decode::<KeyString>(bytes).map(|k| k.0)
    }
}

/// `text` with every `logicalType` removed, parsed for the fast reader.
fn wire_types_only(text: &str) -> Result<serde_avro_fast::Schema, String> {
    fn strip(value: &mut serde_json::Value) {
        match value {
            serde_json::Value::Object(map) => {
                map.remove("logicalType");
                map.values_mut().for_each(strip);
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(strip),
            _ => {}
        }
    }
    let mut json: serde_json::Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    strip(&mut json);
    json.to_string()
        .parse()
        .map_err(|e: serde_avro_fast::schema::SchemaError| e.to_string())
}

fn zigzag(n: i64) -> u64 {
    ((n << 1) ^ (n >> 63)) as u64
}

/// The key schema as a record type, so keys decode through the same path as values.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
struct KeyString(String);

impl Record for KeyString {
    const SCHEMA: &'static str = KEY_SCHEMA;
}
