//! The metadata store, through Spin's PostgreSQL interface
//! (`spin:postgres/postgres@4.0.0`).
//!
//! The statements are `xtream_core::metadata`'s; this module only binds
//! their parameters, reads rows back and says what a failure means to a
//! client. A connection is opened per use and comes from the host's pool
//! (Spin's and the embedded host's alike), so opening one is cheap and no
//! request holds one while it streams a body.

use crate::config::variable;
use spin_sdk::pg4::{Connection, DbValue, ParameterValue, PgError, QueryError};
use xtream_core::metadata::{self, Param, Statement};
use xtream_core::{ApiError, VideoId, VideoRecord};

/// An open connection to the metadata database.
pub struct Metadata(Connection);

/// Opens a connection to the database the Spin variables name
/// (`db_host`, `db_port`, `db_name`, `db_user`, `db_password`, `db_sslmode`).
pub fn open() -> Result<Metadata, ApiError> {
    Connection::open(&address()?)
        .map(Metadata)
        .map_err(|e| to_api_error(&e))
}

/// The connection string the `db_*` variables make.
pub fn address() -> Result<String, ApiError> {
    Ok(metadata::connection_string(&[
        ("host", variable("db_host")?),
        ("port", variable("db_port")?),
        ("dbname", variable("db_name")?),
        ("user", variable("db_user")?),
        ("password", variable("db_password")?),
        ("sslmode", variable("db_sslmode")?),
    ]))
}

impl Metadata {
    /// Runs `statement` and returns its rows.
    pub fn rows(&self, statement: &Statement) -> Result<Vec<Vec<DbValue>>, ApiError> {
        let params = bind(&statement.params);
        self.0
            .query(&statement.sql, &params)
            .map(|set| set.rows)
            .map_err(|e| to_api_error(&e))
    }

    /// Runs `statement` and returns how many rows it changed.
    pub fn execute(&self, statement: &Statement) -> Result<u64, ApiError> {
        let params = bind(&statement.params);
        self.0
            .execute(&statement.sql, &params)
            .map_err(|e| to_api_error(&e))
    }

    /// The record of video `id`, if it exists.
    pub fn record(&self, id: VideoId) -> Result<Option<VideoRecord>, ApiError> {
        match self.rows(&metadata::select_record(id))?.first() {
            Some(row) => metadata::decode_record(&text(row, 0)?).map(Some),
            None => Ok(None),
        }
    }

    /// Whether the database answers and has its schema (for readiness).
    pub fn check(&self) -> Result<(), ApiError> {
        self.rows(&metadata::ping()).map(drop)
    }
}

fn bind(params: &[Param]) -> Vec<ParameterValue> {
    params
        .iter()
        .map(|param| match param {
            Param::Uuid(id) => ParameterValue::Uuid(id.to_string()),
            Param::Text(text) => ParameterValue::Str(text.clone()),
            Param::NullableText(text) => text
                .clone()
                .map_or(ParameterValue::DbNull, ParameterValue::Str),
            Param::BigInt(n) => ParameterValue::Int64(*n),
            Param::NullableBigInt(n) => n.map_or(ParameterValue::DbNull, ParameterValue::Int64),
            Param::NullableFloat(x) => x.map_or(ParameterValue::DbNull, ParameterValue::Floating64),
            Param::Jsonb(value) => ParameterValue::Jsonb(
                serde_json::to_vec(value).expect("a JSON value always serialises"),
            ),
        })
        .collect()
}

/// Column `index` of `row` as text.
pub fn text(row: &[DbValue], index: usize) -> Result<String, ApiError> {
    match row.get(index) {
        Some(DbValue::Str(text)) => Ok(text.clone()),
        other => Err(unexpected(index, other)),
    }
}

/// Column `index` of `row` as text, taken out of the row (no copy: it
/// may be large).
pub fn take_text(row: &mut [DbValue], index: usize) -> Result<String, ApiError> {
    match row.get_mut(index) {
        Some(DbValue::Str(text)) => Ok(std::mem::take(text)),
        other => Err(unexpected(index, other.map(|value| &*value))),
    }
}

/// Column `index` of `row` as text, taken out of the row (no copy: it
/// may be large), `None` when NULL.
pub fn take_optional_text(row: &mut [DbValue], index: usize) -> Result<Option<String>, ApiError> {
    match row.get(index) {
        Some(DbValue::DbNull) => Ok(None),
        _ => take_text(row, index).map(Some),
    }
}

/// Column `index` of `row` as a boolean.
pub fn boolean(row: &[DbValue], index: usize) -> Result<bool, ApiError> {
    match row.get(index) {
        Some(DbValue::Boolean(value)) => Ok(*value),
        other => Err(unexpected(index, other)),
    }
}

/// Column `index` of `row` as a 64-bit integer.
pub fn int64(row: &[DbValue], index: usize) -> Result<i64, ApiError> {
    match row.get(index) {
        Some(DbValue::Int64(n)) => Ok(*n),
        other => Err(unexpected(index, other)),
    }
}

/// Column `index` of `row` as a 64-bit integer, `None` when NULL.
pub fn optional_int64(row: &[DbValue], index: usize) -> Result<Option<i64>, ApiError> {
    match row.get(index) {
        Some(DbValue::DbNull) => Ok(None),
        _ => int64(row, index).map(Some),
    }
}

fn unexpected(index: usize, value: Option<&DbValue>) -> ApiError {
    ApiError::internal(format!(
        "the database answered {value:?} in column {index}, which this code does not expect"
    ))
}

/// What a database failure means to the client. Failures that may pass
/// (the server is unreachable, restarting, overloaded, or not migrated
/// yet) are 503s a client may retry; anything else is our bug, a 500.
fn to_api_error(error: &PgError) -> ApiError {
    match error {
        PgError::ConnectionFailed(why) => {
            ApiError::database_unavailable(format!("the metadata database is unreachable: {why}"))
        }
        PgError::QueryFailed(QueryError::DbError(db)) => {
            match metadata::sqlstate_meaning(&db.code) {
                metadata::SqlStateMeaning::Transient => ApiError::database_unavailable(format!(
                    "the metadata database cannot answer now ({}: {})",
                    db.code, db.message
                )),
                metadata::SqlStateMeaning::SchemaMissing => {
                    ApiError::database_unavailable(format!(
                        "the metadata database has no Xtream schema yet (run `xtream-worker migrate`): {}",
                        db.message
                    ))
                }
                metadata::SqlStateMeaning::Bug => ApiError::internal(format!(
                    "the metadata database refused a statement ({}: {})",
                    db.code, db.message
                )),
            }
        }
        // No structured error: the connection broke mid-query.
        PgError::QueryFailed(QueryError::Text(why)) => ApiError::database_unavailable(format!(
            "the metadata database connection failed: {why}"
        )),
        PgError::BadParameter(why) | PgError::ValueConversionFailed(why) | PgError::Other(why) => {
            ApiError::internal(format!("metadata database: {why}"))
        }
    }
}
