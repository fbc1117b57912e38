//! Schema evolution rules: every version of a schema family must be readable by the newest
//! one (backward compatibility): a version only adds fields, each with a default, and keeps
//! every existing field with its exact type.
//! The checks are shown to bite on a deliberately broken pair.

use apache_avro::schema::RecordSchema;
use apache_avro::Schema;
use jivapay_schemas::{SchemaRegistry, SCHEMAS};
use std::collections::BTreeSet;

/// Field names the newer record adds without a default (those break old data).
fn added_without_default(old: &Schema, new: &Schema) -> Vec<String> {
    let (Schema::Record(old), Schema::Record(new)) = (old, new) else {
        return vec![];
    };
    let old_names: BTreeSet<&str> = field_names(old);
    new.fields
        .iter()
        .filter(|f| !old_names.contains(f.name.as_str()) && f.default.is_none())
        .map(|f| f.name.clone())
        .collect()
}

fn field_names(record: &RecordSchema) -> BTreeSet<&str> {
    record.fields.iter().map(|f| f.name.as_str()).collect()
}

/// Fields of the older record that the newer one drops or retypes. Our decoder resolves an
/// older record to the Rust type by field name (schemas/src/registry.rs), so an existing field
/// must keep its exact type. (apache-avro's own `SchemaCompatibility` cannot judge our schemas:
/// up to 0.22 it calls a nullable decimal incompatible with itself.)
fn changed_fields(old: &Schema, new: &Schema) -> Vec<String> {
    let (Schema::Record(old), Schema::Record(new)) = (old, new) else {
        return if old == new {
            vec![]
        } else {
            vec!["<not a record>".into()]
        };
    };
    old.fields
        .iter()
        .filter(|f| {
            new.fields
                .iter()
                .find(|n| n.name == f.name)
                .is_none_or(|n| n.schema != f.schema)
        })
        .map(|f| f.name.clone())
        .collect()
}

fn check(old: &Schema, new: &Schema) -> Result<(), String> {
    let changed = changed_fields(old, new);
    if !changed.is_empty() {
        return Err(format!("fields dropped or retyped: {changed:?}"));
    }
    let missing = added_without_default(old, new);
    if !missing.is_empty() {
        return Err(format!("fields added without a default: {missing:?}"));
    }
    Ok(())
}

#[test]
fn newest_version_reads_every_older_version() {
    let registry = SchemaRegistry::builtin().unwrap();
    let families: BTreeSet<&str> = SCHEMAS.iter().map(|s| s.name).collect();
    for family in families {
        let versions = registry.versions(family);
        let newest = versions.last().unwrap();
        for old in &versions[..versions.len() - 1] {
            check(&old.schema, &newest.schema).unwrap_or_else(|e| {
                panic!(
                    "{family} v{} cannot read v{}: {e}",
                    newest.version(),
                    old.version()
                )
            });
        }
    }
}

#[test]
fn versions_are_numbered_from_one_without_gaps() {
    let registry = SchemaRegistry::builtin().unwrap();
    for source in SCHEMAS {
        let versions: Vec<u32> = registry
            .versions(source.name)
            .iter()
            .map(|s| s.version())
            .collect();
        let expected: Vec<u32> = (1..=versions.len() as u32).collect();
        assert_eq!(versions, expected, "{}", source.name);
    }
}

#[test]
fn the_rules_reject_a_breaking_change() {
    let v1 = Schema::parse_str(
        r#"{"type":"record","name":"R","fields":[{"name":"a","type":"string"}]}"#,
    )
    .unwrap();
    let with_default = Schema::parse_str(
        r#"{"type":"record","name":"R","fields":[{"name":"a","type":"string"},
            {"name":"b","type":["null","string"],"default":null}]}"#,
    )
    .unwrap();
    let without_default = Schema::parse_str(
        r#"{"type":"record","name":"R","fields":[{"name":"a","type":"string"},
            {"name":"b","type":"string"}]}"#,
    )
    .unwrap();
    let retyped =
        Schema::parse_str(r#"{"type":"record","name":"R","fields":[{"name":"a","type":"int"}]}"#)
            .unwrap();
    assert!(check(&v1, &with_default).is_ok());
    assert!(check(&v1, &without_default).is_err());
    assert!(check(&v1, &retyped).is_err());
}
