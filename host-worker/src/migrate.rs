//! `xtream-worker migrate`: brings the database schema up to this worker's
//! [`MIGRATIONS`].
//!
//! Each migration runs in a transaction of its own together with its row in
//! `schema_migrations` (version, name, SHA-256 of its SQL, when), so a
//! migration is either applied and recorded or neither. The whole run holds
//! a session-level advisory lock, so concurrent runs (the migrate Job and
//! every worker pod's init container) apply each migration once: the others
//! wait, then find nothing to do. A migration already applied whose SQL has
//! changed since is an error naming it: a landed migration is never edited.
//!
//! Migrations must be able to run inside a transaction (no `CREATE INDEX
//! CONCURRENTLY`).

use crate::db::{DatabaseUrl, DbError};
use sha2::{Digest, Sha256};
use std::time::{Duration, Instant};
use xtream_core::metadata::MIGRATIONS;

/// The advisory lock every migration run takes: "xtreamdb" in ASCII, so it
/// does not collide with other users of advisory locks by accident.
const MIGRATION_LOCK: i64 = 0x7874_7265_616d_6462;

/// The runner's own bookkeeping.
const CREATE_SCHEMA_MIGRATIONS: &str = "CREATE TABLE IF NOT EXISTS schema_migrations (
    version bigint PRIMARY KEY,
    name text NOT NULL,
    checksum text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)";

/// The longest pause between two tries to reach the database.
const MAX_RETRY_PAUSE: Duration = Duration::from_secs(5);

/// One migration: `(version, name, SQL)`, as in [`MIGRATIONS`].
pub type Migration = (i64, &'static str, &'static str);

/// A migration recorded in `schema_migrations`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedMigration {
    /// Its version.
    pub version: i64,
    /// Its name when it was applied.
    pub name: String,
    /// SHA-256 of its SQL when it was applied, lowercase hex.
    pub checksum: String,
}

/// What a run has to do, decided from what the database has recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Migrations not applied yet, oldest first.
    pub pending: Vec<Migration>,
    /// Versions the database has that this worker does not know: a newer
    /// worker migrated it (a rollback, or a rollout in progress).
    pub unknown: Vec<i64>,
}

/// Why the schema could not be brought up to date.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    /// The database failed or refused the runner's bookkeeping.
    #[error(transparent)]
    Database(#[from] DbError),
    /// A migration's SQL failed; it was rolled back.
    #[error("migration {version} ({name}) failed and was rolled back: {source}")]
    Failed {
        /// Its version.
        version: i64,
        /// Its name.
        name: &'static str,
        /// What the database said.
        source: DbError,
    },
    /// An applied migration's SQL differs from this worker's copy.
    #[error(
        "migration {version} ({name}) was applied with checksum {applied} but this worker's \
         copy has {current}: a migration that has landed must never be edited; add a new one"
    )]
    Edited {
        /// Its version.
        version: i64,
        /// Its name.
        name: &'static str,
        /// The checksum recorded when it was applied.
        applied: String,
        /// The checksum of the SQL this worker has.
        current: String,
    },
    /// The database did not answer within the wait.
    #[error("the database did not come up within {waited:?}: {last}")]
    NotReachable {
        /// How long the runner tried.
        waited: Duration,
        /// The last error.
        last: String,
    },
}

impl MigrateError {
    fn is_transient(&self) -> bool {
        match self {
            Self::Database(err) | Self::Failed { source: err, .. } => err.is_transient(),
            Self::Edited { .. } | Self::NotReachable { .. } => false,
        }
    }
}

/// SHA-256 of a migration's SQL, lowercase hex.
pub fn checksum(sql: &str) -> String {
    Sha256::digest(sql.as_bytes())
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// Which of `known` to apply, given what the database recorded; an error
/// when a recorded migration's SQL has changed since.
pub fn plan(known: &[Migration], applied: &[AppliedMigration]) -> Result<Plan, MigrateError> {
    let mut pending = Vec::new();
    for &(version, name, sql) in known {
        let current = checksum(sql);
        match applied.iter().find(|a| a.version == version) {
            Some(recorded) if recorded.checksum != current => {
                return Err(MigrateError::Edited {
                    version,
                    name,
                    applied: recorded.checksum.clone(),
                    current,
                });
            }
            Some(_) => {}
            None => pending.push((version, name, sql)),
        }
    }
    let unknown = applied
        .iter()
        .map(|a| a.version)
        .filter(|v| !known.iter().any(|(known, _, _)| known == v))
        .collect();
    Ok(Plan { pending, unknown })
}

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MigrationReport {
    /// Migrations applied by this run: `(version, name)`.
    pub applied: Vec<(i64, &'static str)>,
    /// Migrations found applied already.
    pub already_applied: usize,
}

/// Applies every pending migration of [`MIGRATIONS`], waiting up to `wait`
/// for the database to come up (and retrying a run cut short by an outage
/// within that time: each migration is all or nothing).
pub async fn migrate(url: &DatabaseUrl, wait: Duration) -> Result<MigrationReport, MigrateError> {
    let started = Instant::now();
    let mut pause = Duration::from_millis(500);
    loop {
        match migrate_once(url).await {
            Ok(report) => return Ok(report),
            Err(err) if err.is_transient() => {
                let remaining = wait.saturating_sub(started.elapsed());
                if remaining.is_zero() {
                    return Err(MigrateError::NotReachable {
                        waited: started.elapsed(),
                        last: err.to_string(),
                    });
                }
                let pause_now = pause.min(remaining);
                tracing::info!(database = %url, error = %err, pause = ?pause_now, "waiting for the database");
                tokio::time::sleep(pause_now).await;
                pause = (pause * 2).min(MAX_RETRY_PAUSE);
            }
            Err(err) => return Err(err),
        }
    }
}

/// One run on one connection, under the migration lock.
async fn migrate_once(url: &DatabaseUrl) -> Result<MigrationReport, MigrateError> {
    let mut client = url.connect_one().await?;
    // "relation already exists, skipping" and the like are not news.
    client
        .batch_execute("SET client_min_messages = warning")
        .await
        .map_err(DbError::from)?;
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(DbError::from)?;
    let result = apply_locked(&mut client).await;
    // Closing the session releases the lock too; unlocking says so sooner
    // to a run waiting on it.
    if let Err(err) = client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
        .await
    {
        tracing::debug!(error = %err, "cannot release the migration lock; closing the session does");
    }
    result
}

async fn apply_locked(
    client: &mut tokio_postgres::Client,
) -> Result<MigrationReport, MigrateError> {
    client
        .batch_execute(CREATE_SCHEMA_MIGRATIONS)
        .await
        .map_err(DbError::from)?;
    let applied: Vec<AppliedMigration> = client
        .query(
            "SELECT version, name, checksum FROM schema_migrations ORDER BY version",
            &[],
        )
        .await
        .map_err(DbError::from)?
        .iter()
        .map(|row| {
            Ok(AppliedMigration {
                version: row.try_get(0)?,
                name: row.try_get(1)?,
                checksum: row.try_get(2)?,
            })
        })
        .collect::<Result<_, tokio_postgres::Error>>()
        .map_err(DbError::from)?;
    let plan = plan(MIGRATIONS, &applied)?;
    if !plan.unknown.is_empty() {
        tracing::warn!(
            versions = ?plan.unknown,
            "the database has migrations this worker does not know (a newer worker applied them)"
        );
    }
    let mut report = MigrationReport {
        applied: Vec::new(),
        already_applied: MIGRATIONS.len() - plan.pending.len(),
    };
    for (version, name, sql) in plan.pending {
        let failed = |source: tokio_postgres::Error| MigrateError::Failed {
            version,
            name,
            source: source.into(),
        };
        let transaction = client.transaction().await.map_err(DbError::from)?;
        transaction.batch_execute(sql).await.map_err(failed)?;
        transaction
            .execute(
                "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                &[&version, &name, &checksum(sql)],
            )
            .await
            .map_err(failed)?;
        transaction.commit().await.map_err(failed)?;
        tracing::info!(version, name, "applied a migration");
        report.applied.push((version, name));
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIRST: Migration = (1, "metadata", "CREATE TABLE a (id int);");
    const SECOND: Migration = (2, "more", "CREATE TABLE b (id int);");

    fn applied(migration: Migration) -> AppliedMigration {
        AppliedMigration {
            version: migration.0,
            name: migration.1.to_owned(),
            checksum: checksum(migration.2),
        }
    }

    #[test]
    fn checksums_are_sha256_hex() {
        assert_eq!(
            checksum(""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_ne!(checksum("a"), checksum("a "));
    }

    #[test]
    fn a_fresh_database_gets_every_migration_in_order() {
        let plan = plan(&[FIRST, SECOND], &[]).unwrap();
        assert_eq!(plan.pending, [FIRST, SECOND]);
        assert!(plan.unknown.is_empty());
    }

    #[test]
    fn applied_migrations_are_not_applied_again() {
        let plan = plan(&[FIRST, SECOND], &[applied(FIRST)]).unwrap();
        assert_eq!(plan.pending, [SECOND]);
        let plan = super::plan(&[FIRST, SECOND], &[applied(FIRST), applied(SECOND)]).unwrap();
        assert!(plan.pending.is_empty());
    }

    #[test]
    fn an_edited_migration_is_an_error_naming_it() {
        let mut edited = applied(FIRST);
        edited.checksum = checksum("CREATE TABLE a (id bigint);");
        let err = plan(&[FIRST, SECOND], &[edited]).unwrap_err();
        assert!(matches!(err, MigrateError::Edited { version: 1, .. }));
        let text = err.to_string();
        assert!(text.contains("migration 1 (metadata)"), "{text}");
        assert!(text.contains("never be edited"), "{text}");
    }

    #[test]
    fn migrations_of_a_newer_worker_are_reported_not_refused() {
        let newer = (3, "future", "SELECT 1;");
        let plan = plan(&[FIRST], &[applied(FIRST), applied(newer)]).unwrap();
        assert!(plan.pending.is_empty());
        assert_eq!(plan.unknown, [3]);
    }

    #[test]
    fn the_shipped_migrations_plan_cleanly() {
        let plan = plan(MIGRATIONS, &[]).unwrap();
        assert_eq!(plan.pending.len(), MIGRATIONS.len());
    }
}
