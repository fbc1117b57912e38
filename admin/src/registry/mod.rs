//! The read-only subset of the Confluent Schema Registry REST API:
//! `GET /schemas/ids/{id}`, `GET /subjects`, `GET /subjects/{subject}/versions`,
//! `GET /subjects/{subject}/versions/{version|latest}` (and `/schema` below it), `GET /config`.
//! Subjects follow the topic naming strategy: `<topic>-key` and `<topic>-value`.

mod routes;

pub use routes::router;
