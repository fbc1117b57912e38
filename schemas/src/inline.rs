//! A copy of a schema with every named reference replaced by its definition.
//!
//! apache-avro's direct serde writer (`write_avro_datum_ref`, no intermediate `Value`) does not
//! resolve references to named types defined elsewhere in the same schema. Avro's binary
//! encoding does not depend on names, so writing with the inlined copy gives the same bytes.

use apache_avro::schema::{ArraySchema, MapSchema, Name, ResolvedSchema, UnionSchema};
use apache_avro::Schema;
use std::collections::HashMap;

pub fn inline_refs(schema: &Schema) -> Result<Schema, apache_avro::Error> {
    let resolved = ResolvedSchema::try_from(schema)?;
    let names: HashMap<Name, Schema> = resolved
        .get_names()
        .iter()
        .map(|(name, s)| (name.clone(), (*s).clone()))
        .collect();
    inline(schema, &names, 0)
}

/// Our schemas are not recursive; the depth bound turns a recursive one into an error, not a
/// stack overflow.
const MAX_DEPTH: usize = 32;

fn inline(
    schema: &Schema,
    names: &HashMap<Name, Schema>,
    depth: usize,
) -> Result<Schema, apache_avro::Error> {
    if depth > MAX_DEPTH {
        return Err(apache_avro::Error::new(
            apache_avro::error::Details::SchemaResolutionError(Name::new("recursive")?),
        ));
    }
    Ok(match schema {
        Schema::Ref { name } => match names.get(name) {
            Some(def) => inline(def, names, depth + 1)?,
            None => schema.clone(),
        },
        Schema::Record(record) => {
            let mut record = record.clone();
            for field in &mut record.fields {
                field.schema = inline(&field.schema, names, depth + 1)?;
            }
            Schema::Record(record)
        }
        Schema::Array(array) => Schema::Array(ArraySchema {
            items: Box::new(inline(&array.items, names, depth + 1)?),
            attributes: array.attributes.clone(),
        }),
        Schema::Map(map) => Schema::Map(MapSchema {
            types: Box::new(inline(&map.types, names, depth + 1)?),
            attributes: map.attributes.clone(),
        }),
        Schema::Union(union) => {
            let variants = union
                .variants()
                .iter()
                .map(|v| inline(v, names, depth + 1))
                .collect::<Result<Vec<_>, _>>()?;
            Schema::Union(UnionSchema::new(variants)?)
        }
        other => other.clone(),
    })
}
