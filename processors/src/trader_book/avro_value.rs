//! Small helpers to build and read `apache_avro` values by hand. The changelog codec builds
//! values itself instead of going through serde: UUIDs must be `fixed(16)` (serde gives
//! apache-avro no way to ask for that), and reading the writer's values by field name keeps
//! the decoding independent of field order and of apache-avro's schema resolution.

use apache_avro::types::Value;
use rust_decimal::Decimal;
use uuid::Uuid;

/// A changelog value that is not what its schema promises.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("empty value")]
    Empty,
    #[error("unknown format byte {0:#04x}")]
    UnknownFormat(u8),
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
    #[error("avro: {0}")]
    Avro(#[from] apache_avro::Error),
    #[error("{0} bytes left after the record")]
    Trailing(usize),
    #[error("the value ends inside the record")]
    Truncated,
    #[error("field {0} is missing or not of its schema's type")]
    Field(&'static str),
}

pub fn uuid(id: &Uuid) -> Value {
    Value::Fixed(16, id.as_bytes().to_vec())
}

pub fn decimal(value: &Decimal) -> Value {
    // `to_string` keeps the scale (`100.00` stays `100.00`), so a restore gives back the very
    // value, as the JSON encoding did.
    Value::String(value.to_string())
}

/// A `["null", T]` union.
pub fn optional<T>(value: Option<T>, to_value: impl FnOnce(T) -> Value) -> Value {
    match value {
        None => Value::Union(0, Box::new(Value::Null)),
        Some(v) => Value::Union(1, Box::new(to_value(v))),
    }
}

/// An enum symbol from a table of (variant, symbol) in the schema's order: apache-avro writes
/// the index it is given, so the table's order must be the schema's (the round-trip tests
/// encode every variant and would read another symbol back).
pub fn symbol<T: PartialEq + Copy>(table: &[(T, &'static str)], variant: T) -> Value {
    let at = table
        .iter()
        .position(|(v, _)| *v == variant)
        .expect("every variant is in its table");
    Value::Enum(at as u32, table[at].1.to_owned())
}

/// A decoded record, read field by field by name.
pub struct Fields(Vec<(String, Value)>);

impl Fields {
    pub fn of(value: Value, name: &'static str) -> Result<Fields, CodecError> {
        match value {
            Value::Record(fields) => Ok(Fields(fields)),
            _ => Err(CodecError::Field(name)),
        }
    }

    pub fn take(&mut self, name: &'static str) -> Result<Value, CodecError> {
        let (_, value) = self
            .0
            .iter_mut()
            .find(|(n, _)| n == name)
            .ok_or(CodecError::Field(name))?;
        Ok(std::mem::replace(value, Value::Null))
    }

    pub fn uuid(&mut self, name: &'static str) -> Result<Uuid, CodecError> {
        as_uuid(self.take(name)?, name)
    }

    pub fn string(&mut self, name: &'static str) -> Result<String, CodecError> {
        match self.take(name)? {
            Value::String(s) => Ok(s),
            _ => Err(CodecError::Field(name)),
        }
    }

    pub fn decimal(&mut self, name: &'static str) -> Result<Decimal, CodecError> {
        as_decimal(self.take(name)?, name)
    }

    pub fn int(&mut self, name: &'static str) -> Result<i32, CodecError> {
        match self.take(name)? {
            Value::Int(n) => Ok(n),
            _ => Err(CodecError::Field(name)),
        }
    }

    pub fn long(&mut self, name: &'static str) -> Result<i64, CodecError> {
        as_long(self.take(name)?, name)
    }

    /// A `["null", T]` union's value.
    pub fn optional(&mut self, name: &'static str) -> Result<Option<Value>, CodecError> {
        Ok(match self.take(name)? {
            Value::Union(_, value) => match *value {
                Value::Null => None,
                value => Some(value),
            },
            Value::Null => None,
            value => Some(value),
        })
    }

    pub fn array(&mut self, name: &'static str) -> Result<Vec<Value>, CodecError> {
        match self.take(name)? {
            Value::Array(items) => Ok(items),
            _ => Err(CodecError::Field(name)),
        }
    }

    /// An enum read by its symbol (not its index), so a later schema may add symbols.
    pub fn symbol<T: Copy>(
        &mut self,
        name: &'static str,
        table: &[(T, &'static str)],
    ) -> Result<T, CodecError> {
        match self.take(name)? {
            Value::Enum(_, s) => table
                .iter()
                .find(|(_, symbol)| *symbol == s)
                .map(|(v, _)| *v)
                .ok_or(CodecError::Field(name)),
            _ => Err(CodecError::Field(name)),
        }
    }
}

pub fn as_uuid(value: Value, name: &'static str) -> Result<Uuid, CodecError> {
    match value {
        Value::Fixed(16, bytes) => Uuid::from_slice(&bytes).map_err(|_| CodecError::Field(name)),
        _ => Err(CodecError::Field(name)),
    }
}

pub fn as_decimal(value: Value, name: &'static str) -> Result<Decimal, CodecError> {
    match value {
        Value::String(s) => s.parse().map_err(|_| CodecError::Field(name)),
        _ => Err(CodecError::Field(name)),
    }
}

pub fn as_long(value: Value, name: &'static str) -> Result<i64, CodecError> {
    match value {
        Value::Long(n) | Value::TimestampMillis(n) => Ok(n),
        _ => Err(CodecError::Field(name)),
    }
}

pub fn as_int(value: Value, name: &'static str) -> Result<i32, CodecError> {
    match value {
        Value::Int(n) => Ok(n),
        _ => Err(CodecError::Field(name)),
    }
}
