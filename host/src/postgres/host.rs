//! The `connection` resource: what one instance's guest opens, queries
//! and drops.

use super::allowed_hosts::check_address;
use super::client::{ErrorChain, PgPools};
use super::types;
use super::wit::{self, Column, DbError, DbValue, Error, ParameterValue, QueryError, RowSet};
use crate::outbound::OutboundPolicy;
use futures::TryStreamExt;
use std::collections::HashMap;
use std::sync::Arc;
use tokio_postgres::types::ToSql;
use wasmtime::component::Resource;

/// Most connections one instance may hold open at once (as in Spin); one
/// more is `connection-failed("too many connections")`.
pub const MAX_CONNECTIONS_PER_INSTANCE: usize = 1024;

/// Most bytes of rows one `query` may buffer before it fails (Spin's
/// limit): the whole row set is handed to the guest at once.
pub const MAX_RESULT_BYTES: usize = 128 << 20;

/// One instance's side of `spin:postgres`: its component's outbound
/// policy, the host's pools and the connections the guest holds.
pub struct PostgresState {
    component: Arc<str>,
    policy: Arc<OutboundPolicy>,
    pools: PgPools,
    connections: HashMap<u32, deadpool_postgres::Object>,
    next_rep: u32,
}

impl std::fmt::Debug for PostgresState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresState")
            .field("component", &self.component)
            .field("connections", &self.connections.len())
            .finish()
    }
}

impl PostgresState {
    /// The state of a new instance of `component`, whose connections must
    /// be allowed by `policy` and come from `pools`.
    pub fn new(component: Arc<str>, policy: Arc<OutboundPolicy>, pools: PgPools) -> Self {
        PostgresState {
            component,
            policy,
            pools,
            connections: HashMap::new(),
            next_rep: 0,
        }
    }

    /// How many connections the guest holds.
    pub fn open_connections(&self) -> usize {
        self.connections.len()
    }

    /// `connection.open`: checks `address` against the policy, then takes
    /// a pooled connection to it.
    pub async fn open(&mut self, address: &str) -> Result<Resource<wit::Connection>, Error> {
        if let Err(denied) = check_address(&self.policy, address) {
            tracing::warn!(
                component = %self.component,
                "PostgreSQL connection refused: {}",
                error_text(&denied)
            );
            return Err(denied);
        }
        // Checked before connecting, so a guest at its limit cannot make
        // the pool open yet another connection.
        if self.connections.len() >= MAX_CONNECTIONS_PER_INSTANCE {
            return Err(too_many_connections());
        }
        let client = self
            .pools
            .connect(address)
            .await
            .map_err(|e| Error::ConnectionFailed(format!("{e:#}")))?;
        // Reps are never reused within an instance, so a stale handle
        // cannot reach a later connection.
        let rep = self.next_rep;
        self.next_rep = self
            .next_rep
            .checked_add(1)
            .ok_or_else(too_many_connections)?;
        self.connections.insert(rep, client);
        Ok(Resource::new_own(rep))
    }

    #[allow(
        clippy::result_large_err,
        reason = "the interface's own error type, handed to the guest as it is"
    )]
    fn client(
        &self,
        connection: &Resource<wit::Connection>,
    ) -> Result<&deadpool_postgres::Object, Error> {
        // The guest only holds handles this state gave out; one that is not
        // here is a host bug, reported the way Spin reports it.
        self.connections
            .get(&connection.rep())
            .ok_or_else(|| Error::ConnectionFailed("no connection found".into()))
    }

    /// `connection.execute`: runs `statement` and returns the number of
    /// rows it affected.
    pub async fn execute(
        &mut self,
        connection: &Resource<wit::Connection>,
        statement: &str,
        params: &[ParameterValue],
    ) -> Result<u64, Error> {
        let client = self.client(connection)?;
        // Spin reports a parameter `execute` cannot convert as a value
        // conversion failure (`query` calls it a bad parameter).
        let params = types::sql_parameters(params).map_err(Error::ValueConversionFailed)?;
        let params = borrowed(&params);
        let executed = match prepare_cached(client, statement).await {
            Some(prepared) => match client.execute(&prepared, &params).await {
                Err(e) if kept_statement_failed(client, &e) => {
                    client.execute(statement, &params).await
                }
                done => done,
            },
            None => client.execute(statement, &params).await,
        };
        executed.map_err(query_failed)
    }

    /// `connection.query`: runs `statement` and returns every row.
    ///
    /// As in Spin, the columns are described by the first row, so a query
    /// with no rows has no columns either, and only a failure before the
    /// first row (planning, binding) is a structured `db-error`: one that
    /// PostgreSQL reports while rows stream, or a value that cannot be
    /// converted, is `query-failed(text)`.
    pub async fn query(
        &mut self,
        connection: &Resource<wit::Connection>,
        statement: &str,
        params: &[ParameterValue],
    ) -> Result<RowSet, Error> {
        let client = self.client(connection)?;
        let params = types::sql_parameters(params).map_err(Error::BadParameter)?;
        let rows = match prepare_cached(client, statement).await {
            Some(prepared) => match client.query_raw(&prepared, borrowed(&params)).await {
                Err(e) if kept_statement_failed(client, &e) => {
                    client.query_raw(statement, borrowed(&params)).await
                }
                streaming => streaming,
            },
            None => client.query_raw(statement, borrowed(&params)).await,
        }
        .map_err(query_failed)?;
        let mut rows = std::pin::pin!(rows);
        let mut columns = None;
        let mut values = Vec::new();
        let mut buffered = 0;
        while let Some(row) = rows.try_next().await.map_err(query_failed_as_text)? {
            if columns.is_none() {
                columns = Some(columns_of(&row));
            }
            let row = (0..row.len())
                .map(|index| types::db_value(&row, index))
                .collect::<Result<Vec<DbValue>, _>>()
                .map_err(|e| {
                    Error::QueryFailed(QueryError::Text(format!(
                        "cannot convert a column value: {}",
                        ErrorChain(e.as_ref())
                    )))
                })?;
            buffered += row.iter().map(types::approximate_size).sum::<usize>();
            if buffered > MAX_RESULT_BYTES {
                return Err(Error::QueryFailed(QueryError::Text(format!(
                    "query result exceeds limit of {MAX_RESULT_BYTES} bytes"
                ))));
            }
            values.push(row);
        }
        Ok(RowSet {
            columns: columns.unwrap_or_default(),
            rows: values,
        })
    }

    /// Dropping the resource: the connection goes back to its pool.
    pub fn close(&mut self, connection: Resource<wit::Connection>) {
        self.connections.remove(&connection.rep());
    }
}

/// Most statements prepared and kept on one pooled connection; the cache
/// starts over beyond it, so a guest that builds its SQL with literals
/// cannot grow a server process without bound.
pub const MAX_CACHED_STATEMENTS: usize = 128;

/// `statement` prepared on this connection once and reused after, or
/// `None` when preparing fails.
///
/// Spin prepares every statement anew (an unnamed statement: parse, plan,
/// then bind). Keeping it prepared saves a round trip and the planning,
/// which for a search query costs more than running it. It is only a
/// shortcut: when preparing fails, the caller runs Spin's own path, so the
/// guest sees exactly the error Spin gives (and a guest's own `PREPARE`
/// that took one of the driver's statement names does no harm).
async fn prepare_cached(
    client: &deadpool_postgres::Object,
    statement: &str,
) -> Option<tokio_postgres::Statement> {
    if client.statement_cache.size() >= MAX_CACHED_STATEMENTS {
        client.statement_cache.clear();
    }
    client.prepare_cached(statement).await.ok()
}

/// Whether a kept statement's failure may be the keeping's fault, so the
/// caller runs the statement again unprepared, as Spin would have, and the
/// cache starts over. That is so when the statement never ran:
/// - the driver refused the parameters before sending them (the kept
///   statement's parameter types predate a migration that changed a
///   column: an `int8` for what was an `int4`);
/// - the server refused the kept statement itself, because a migration
///   changed what it reads ("cached plan must not change result type") or
///   the guest deallocated it (`DEALLOCATE ALL`).
///
/// A failure while the statement ran (a constraint, a division by zero)
/// is never retried: it is the guest's answer, and inside a transaction a
/// second attempt would only meet the aborted transaction.
fn kept_statement_failed(
    client: &deadpool_postgres::Object,
    error: &tokio_postgres::Error,
) -> bool {
    use tokio_postgres::error::SqlState;
    let retry = match error.as_db_error() {
        None => !client.is_closed(),
        Some(db) => {
            *db.code() == SqlState::INVALID_SQL_STATEMENT_NAME
                || (*db.code() == SqlState::FEATURE_NOT_SUPPORTED
                    && db.message().starts_with("cached plan"))
        }
    };
    if retry {
        client.statement_cache.clear();
    }
    retry
}

fn too_many_connections() -> Error {
    Error::ConnectionFailed("too many connections".into())
}

fn borrowed(params: &[types::SqlParameter]) -> Vec<&(dyn ToSql + Sync)> {
    params
        .iter()
        .map(|p| p.as_ref() as &(dyn ToSql + Sync))
        .collect()
}

fn columns_of(row: &tokio_postgres::Row) -> Vec<Column> {
    row.columns()
        .iter()
        .map(|column| Column {
            name: column.name().to_owned(),
            data_type: types::data_type(column.type_()),
        })
        .collect()
}

/// A failed statement: structured when the server said why, text when the
/// failure was the driver's or the connection's.
fn query_failed(error: tokio_postgres::Error) -> Error {
    let as_text = ErrorChain(&error).to_string();
    let Some(db) = error.as_db_error() else {
        return Error::QueryFailed(QueryError::Text(as_text));
    };
    let optional = [
        ("column", db.column().map(str::to_owned)),
        ("constraint", db.constraint().map(str::to_owned)),
        ("routine", db.routine().map(str::to_owned)),
        ("hint", db.hint().map(str::to_owned)),
        ("table", db.table().map(str::to_owned)),
        ("datatype", db.datatype().map(str::to_owned)),
        ("schema", db.schema().map(str::to_owned)),
        ("file", db.file().map(str::to_owned)),
        ("line", db.line().map(|line| line.to_string())),
        ("where_", db.where_().map(str::to_owned)),
    ];
    Error::QueryFailed(QueryError::DbError(DbError {
        as_text,
        severity: db.severity().to_owned(),
        code: db.code().code().to_owned(),
        message: db.message().to_owned(),
        detail: db.detail().map(str::to_owned),
        extras: optional
            .into_iter()
            .filter_map(|(name, value)| Some((name.to_owned(), value?)))
            .collect(),
    }))
}

/// A failure while rows stream in, flattened to text as Spin does.
fn query_failed_as_text(error: tokio_postgres::Error) -> Error {
    Error::QueryFailed(QueryError::Text(ErrorChain(&error).to_string()))
}

/// The message inside an error, for logs.
pub(crate) fn error_text(error: &Error) -> &str {
    match error {
        Error::ConnectionFailed(text)
        | Error::BadParameter(text)
        | Error::ValueConversionFailed(text)
        | Error::Other(text)
        | Error::QueryFailed(QueryError::Text(text)) => text,
        Error::QueryFailed(QueryError::DbError(db)) => &db.as_text,
    }
}

impl wit::HostConnection for PostgresState {
    async fn open(&mut self, address: String) -> Result<Resource<wit::Connection>, Error> {
        PostgresState::open(self, &address).await
    }

    async fn query(
        &mut self,
        connection: Resource<wit::Connection>,
        statement: String,
        params: Vec<ParameterValue>,
    ) -> Result<RowSet, Error> {
        PostgresState::query(self, &connection, &statement, &params).await
    }

    async fn execute(
        &mut self,
        connection: Resource<wit::Connection>,
        statement: String,
        params: Vec<ParameterValue>,
    ) -> Result<u64, Error> {
        PostgresState::execute(self, &connection, &statement, &params).await
    }

    async fn drop(&mut self, connection: Resource<wit::Connection>) -> wasmtime::Result<()> {
        self.close(connection);
        Ok(())
    }
}

impl wit::Host for PostgresState {}
