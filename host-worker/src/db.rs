//! The metadata store: PostgreSQL through a pool of tokio-postgres
//! connections (deadpool-postgres).
//!
//! Every statement comes from [`xtream_core::metadata`]; this module only
//! binds its [`Param`]s to tokio-postgres' types, runs it, and reads the
//! rows back. Connections are plain TCP (`NoTls`) for now: the database is
//! reached inside the cluster network (see `k8s/base/postgres`). TLS would
//! be a `postgres-native-tls` connector in [`Metadata::connect`].

use crate::storage::describe;
use deadpool_postgres::{GenericClient, Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::{NoTls, Row};
use xtream_core::metadata::{self, Param, SqlStateMeaning, Statement};
use xtream_core::{VideoId, VideoRecord, VideoStatus};

/// How long opening a connection may take when the URL does not say
/// (`connect_timeout`): a database that is down is reported in seconds.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a caller waits for a free pooled connection before it is told
/// the database is unavailable.
const POOL_WAIT: Duration = Duration::from_secs(10);

/// Where the database is: `XTREAM_DATABASE_URL`, a `postgres://` URL or a
/// `key=value` string. Its password is never shown: `Display` and `Debug`
/// print the user, hosts and database only.
#[derive(Clone)]
pub struct DatabaseUrl {
    config: tokio_postgres::Config,
}

/// The text is not a connection string.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("is not a postgres:// URL or key=value connection string ({0})")]
pub struct InvalidDatabaseUrl(String);

impl FromStr for DatabaseUrl {
    type Err = InvalidDatabaseUrl;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let mut config = tokio_postgres::Config::from_str(text)
            // tokio-postgres' parse errors name the problem, not the text,
            // so the password cannot leak through them.
            .map_err(|e| InvalidDatabaseUrl(e.to_string()))?;
        if config.get_hosts().is_empty() {
            return Err(InvalidDatabaseUrl("no host".into()));
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name("xtream-worker");
        }
        Ok(Self { config })
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hosts: Vec<String> = self
            .config
            .get_hosts()
            .iter()
            .enumerate()
            .map(|(i, host)| {
                let host = match host {
                    tokio_postgres::config::Host::Tcp(name) => name.clone(),
                    tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
                };
                match self
                    .config
                    .get_ports()
                    .get(i)
                    .or(self.config.get_ports().first())
                {
                    Some(port) => format!("{host}:{port}"),
                    None => host,
                }
            })
            .collect();
        let user = self.config.get_user().unwrap_or("");
        let dbname = self.config.get_dbname().unwrap_or("");
        write!(f, "postgres://{user}@{}/{dbname}", hosts.join(","))
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DatabaseUrl({self})")
    }
}

impl DatabaseUrl {
    /// Opens one connection outside the pool (the migration runner holds a
    /// session lock on it). The connection is driven by a background task
    /// that ends when the client is dropped.
    pub async fn connect_one(&self) -> Result<tokio_postgres::Client, DbError> {
        let (client, connection) = self.config.connect(NoTls).await.map_err(DbError::from)?;
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                tracing::debug!(error = %err, "a database connection ended with an error");
            }
        });
        Ok(client)
    }
}

/// What went wrong talking to the database.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The database could not be reached, dropped the connection, is
    /// starting or shutting down, or no pooled connection came free in
    /// time; trying again later may work.
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    /// The database refused the statement (a bug or a schema that does not
    /// match this worker); trying again will not help.
    #[error("the database refused: {0}")]
    Refused(String),
    /// A row is not what the statement promises.
    #[error("unreadable row: {0}")]
    Unreadable(String),
}

impl DbError {
    /// Whether trying again may help (outages, restarts, conflicts between
    /// transactions), as opposed to a statement the database refuses.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }
}

/// Whether a server error may pass, as the components judge it
/// ([`metadata::sqlstate_meaning`]): the server's state (connection,
/// shutdown, start-up, resources), a race between transactions, or a schema
/// not migrated yet (the migrate Job may be running right now).
fn is_transient_state(code: &SqlState) -> bool {
    match metadata::sqlstate_meaning(code.code()) {
        SqlStateMeaning::Transient | SqlStateMeaning::SchemaMissing => true,
        SqlStateMeaning::Bug => false,
    }
}

impl From<tokio_postgres::Error> for DbError {
    fn from(err: tokio_postgres::Error) -> Self {
        let text = describe(&err);
        match err.code() {
            Some(code) if !is_transient_state(code) => Self::Refused(text),
            Some(code)
                if metadata::sqlstate_meaning(code.code()) == SqlStateMeaning::SchemaMissing =>
            {
                Self::Unavailable(format!(
                    "{text} (the schema is not migrated yet: run `xtream-worker migrate`)"
                ))
            }
            // No SQL state: I/O, a closed connection, a timeout.
            _ => Self::Unavailable(text),
        }
    }
}

impl From<deadpool_postgres::PoolError> for DbError {
    fn from(err: deadpool_postgres::PoolError) -> Self {
        match err {
            deadpool_postgres::PoolError::Backend(err) => err.into(),
            other => Self::Unavailable(other.to_string()),
        }
    }
}

/// What a compare-and-set of a video's status did.
#[derive(Debug, Clone, PartialEq)]
pub enum Transition {
    /// Written; the record as stored now.
    Saved(VideoRecord),
    /// The video has no row any more: it was deleted.
    Gone,
    /// Another writer moved the video on first; its record as stored now.
    Moved(VideoRecord),
}

/// A parameter as tokio-postgres binds it.
type Bound = Box<dyn ToSql + Sync + Send>;

/// Binds one parameter to the Rust type tokio-postgres maps to its SQL type
/// (the statement casts each placeholder to [`Param::sql_type`]).
fn bind(param: &Param) -> Bound {
    match param {
        Param::Uuid(id) => Box::new(uuid_of(*id)),
        Param::Text(text) => Box::new(text.clone()),
        Param::NullableText(text) => Box::new(text.clone()),
        Param::BigInt(n) => Box::new(*n),
        Param::NullableBigInt(n) => Box::new(*n),
        Param::NullableFloat(x) => Box::new(*x),
        Param::Jsonb(value) => Box::new(value.clone()),
    }
}

/// The UUID of a video id (the core keeps its UUID private; its canonical
/// text form always parses).
fn uuid_of(id: VideoId) -> uuid::Uuid {
    uuid::Uuid::parse_str(&id.to_string()).expect("a video id is a UUID")
}

/// Runs `statement` on `client` (a pooled connection or a transaction) and
/// returns its rows.
pub async fn query_on(
    client: &impl GenericClient,
    statement: &Statement,
) -> Result<Vec<Row>, DbError> {
    let bound: Vec<Bound> = statement.params.iter().map(bind).collect();
    let params: Vec<&(dyn ToSql + Sync)> = bound
        .iter()
        .map(|b| b.as_ref() as &(dyn ToSql + Sync))
        .collect();
    let prepared = client.prepare_cached(&statement.sql).await?;
    Ok(client.query(&prepared, &params).await?)
}

/// Runs `statement` on `client` and returns how many rows it changed.
pub async fn execute_on(
    client: &impl GenericClient,
    statement: &Statement,
) -> Result<u64, DbError> {
    let bound: Vec<Bound> = statement.params.iter().map(bind).collect();
    let params: Vec<&(dyn ToSql + Sync)> = bound
        .iter()
        .map(|b| b.as_ref() as &(dyn ToSql + Sync))
        .collect();
    let prepared = client.prepare_cached(&statement.sql).await?;
    Ok(client.execute(&prepared, &params).await?)
}

/// Column `index` of `row` as `T`, or why not.
pub fn column<'a, T: tokio_postgres::types::FromSql<'a>>(
    row: &'a Row,
    index: usize,
) -> Result<T, DbError> {
    row.try_get(index)
        .map_err(|e| DbError::Unreadable(describe(&e)))
}

/// The record in column 0 of `row` (the JSON text the statements build).
pub fn record_of(row: &Row) -> Result<VideoRecord, DbError> {
    let json: String = column(row, 0)?;
    metadata::decode_record(&json).map_err(|e| DbError::Unreadable(e.message))
}

/// The metadata store: a pool of connections to the database.
#[derive(Clone)]
pub struct Metadata {
    pool: Pool,
}

impl Metadata {
    /// A pool of at most `max_connections` connections to `url`. Makes no
    /// connection: the first statement does, so the worker starts whether
    /// or not the database is up yet.
    pub fn connect(url: &DatabaseUrl, max_connections: usize) -> Result<Self, DbError> {
        let manager = Manager::from_config(
            url.config.clone(),
            NoTls,
            // Fast recycling: a broken connection shows up as an
            // `Unavailable` error on its next statement, which callers
            // retry on a fresh one; checking each checkout costs a round
            // trip per statement.
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(max_connections.max(1))
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(POOL_WAIT))
            .create_timeout(Some(CONNECT_TIMEOUT))
            .recycle_timeout(Some(CONNECT_TIMEOUT))
            .build()
            .map_err(|e| DbError::Refused(format!("cannot set up the connection pool: {e}")))?;
        Ok(Self { pool })
    }

    /// A pooled connection, for several statements in one transaction.
    pub async fn client(&self) -> Result<deadpool_postgres::Object, DbError> {
        Ok(self.pool.get().await?)
    }

    /// Runs `statement` and returns its rows.
    pub async fn query(&self, statement: &Statement) -> Result<Vec<Row>, DbError> {
        let client = self.client().await?;
        query_on(&client, statement).await
    }

    /// Runs `statement` and returns how many rows it changed.
    pub async fn execute(&self, statement: &Statement) -> Result<u64, DbError> {
        let client = self.client().await?;
        execute_on(&client, statement).await
    }

    /// Whether the database answers and has the schema (for `/health`),
    /// as the components' readiness checks it.
    pub async fn check(&self) -> Result<(), DbError> {
        self.query(&metadata::ping()).await?;
        Ok(())
    }

    /// The record of video `id`, or `None` when it has no row.
    pub async fn record(&self, id: VideoId) -> Result<Option<VideoRecord>, DbError> {
        let rows = self.query(&metadata::select_record(id)).await?;
        rows.first().map(record_of).transpose()
    }

    /// Writes `record` if its row is still in `expected` (compare-and-set).
    /// When it is not, reads the row again to tell a deleted video from one
    /// another writer moved on.
    pub async fn save_transition(
        &self,
        record: &VideoRecord,
        expected: VideoStatus,
    ) -> Result<Transition, DbError> {
        let rows = self
            .query(&metadata::save_transition(record, expected))
            .await?;
        if let Some(row) = rows.first() {
            return Ok(Transition::Saved(record_of(row)?));
        }
        Ok(match self.record(record.id).await? {
            None => Transition::Gone,
            Some(current) => Transition::Moved(current),
        })
    }

    /// Whether video `id` has a row.
    pub async fn video_exists(&self, id: VideoId) -> Result<bool, DbError> {
        Ok(!self.query(&metadata::video_exists(id)).await?.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_key_value_strings_parse() {
        let url: DatabaseUrl = "postgres://app:s3cret@db.example:5433/xtream"
            .parse()
            .unwrap();
        assert_eq!(url.config.get_dbname(), Some("xtream"));
        assert_eq!(url.config.get_ports(), [5433]);
        assert_eq!(url.config.get_connect_timeout(), Some(&CONNECT_TIMEOUT));
        let kv: DatabaseUrl = "host=127.0.0.1 port=55432 user=postgres connect_timeout=2"
            .parse()
            .unwrap();
        assert_eq!(
            kv.config.get_connect_timeout(),
            Some(&Duration::from_secs(2))
        );
        assert!("postgres://app@/xtream".parse::<DatabaseUrl>().is_err());
        assert!("host=a port=notaport".parse::<DatabaseUrl>().is_err());
    }

    #[test]
    fn the_password_is_never_shown() {
        let url: DatabaseUrl = "postgres://app:s3cret@db.example:5433/xtream"
            .parse()
            .unwrap();
        assert_eq!(url.to_string(), "postgres://app@db.example:5433/xtream");
        assert!(!format!("{url:?}").contains("s3cret"));
        let err = "postgres://app:s3cret@db.example:port/x"
            .parse::<DatabaseUrl>()
            .unwrap_err();
        assert!(!err.to_string().contains("s3cret"), "{err}");
    }

    #[test]
    fn server_states_that_pass_are_transient() {
        for transient in [
            SqlState::CONNECTION_FAILURE,
            SqlState::ADMIN_SHUTDOWN,
            SqlState::CANNOT_CONNECT_NOW,
            SqlState::T_R_SERIALIZATION_FAILURE,
            SqlState::T_R_DEADLOCK_DETECTED,
            SqlState::TOO_MANY_CONNECTIONS,
            SqlState::UNDEFINED_TABLE,
        ] {
            assert!(is_transient_state(&transient), "{transient:?}");
        }
        for refused in [
            SqlState::SYNTAX_ERROR,
            SqlState::INVALID_PASSWORD,
            SqlState::UNIQUE_VIOLATION,
        ] {
            assert!(!is_transient_state(&refused), "{refused:?}");
        }
        assert!(DbError::Unavailable("down".into()).is_transient());
        assert!(!DbError::Refused("no such table".into()).is_transient());
    }

    #[test]
    fn every_param_binds_to_a_type_postgres_accepts_for_its_cast() {
        use tokio_postgres::types::Type;
        let cases = [
            (Param::Uuid(VideoId::random()), Type::UUID),
            (Param::Text("a".into()), Type::TEXT),
            (Param::NullableText(None), Type::TEXT),
            (Param::BigInt(1), Type::INT8),
            (Param::NullableBigInt(Some(2)), Type::INT8),
            (Param::NullableFloat(Some(0.5)), Type::FLOAT8),
            (Param::Jsonb(serde_json::json!({"a": 1})), Type::JSONB),
        ];
        for (param, ty) in cases {
            let bound = bind(&param);
            let mut out = bytes::BytesMut::new();
            bound
                .to_sql_checked(&ty, &mut out)
                .unwrap_or_else(|e| panic!("{param:?} as {ty}: {e}"));
        }
    }
}
