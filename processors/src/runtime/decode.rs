//! Input records, decoded by the topic they come from.

use crate::core::Input;
use jivapay_schemas::topics::*;
use jivapay_schemas::{CodecError, SchemaRegistry};

/// Decodes a record value of `topic` into an [`Input`].
pub fn decode(registry: &SchemaRegistry, topic: &str, payload: &[u8]) -> Result<Input, CodecError> {
    Ok(match topic {
        ORDERS_REQUESTED => Input::Requested(registry.decode(payload)?),
        ORDERS_SCREENED => Input::Screened(registry.decode(payload)?),
        ORDERS_ROUTED => Input::Routed(registry.decode(payload)?),
        TRADER_COMMANDS => Input::Command(registry.decode(payload)?),
        ORDERS_EVENTS => Input::Event(registry.decode(payload)?),
        STORE_POSTINGS => Input::StorePosting(registry.decode(payload)?),
        TRADER_POSTINGS => Input::TraderPosting(registry.decode(payload)?),
        other => {
            return Err(CodecError::Avro(format!(
                "{other} is not a processor input"
            )))
        }
    })
}

/// Encodes an output for its topic.
pub fn encode(registry: &SchemaRegistry, emit: &crate::core::Emit) -> Result<Vec<u8>, CodecError> {
    use crate::core::Emit;
    match emit {
        Emit::Screened(r) => registry.encode(r),
        Emit::Routed(r) => registry.encode(r),
        Emit::Event(r) => registry.encode(r),
        Emit::Transfer(r) => registry.encode(r),
        Emit::StorePosting(r) => registry.encode(r),
        Emit::TraderPosting(r) => registry.encode(r),
        Emit::Capacity(r) => registry.encode(r),
        Emit::Command(r) => registry.encode(r),
    }
}
