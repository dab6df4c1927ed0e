//! Pooled PostgreSQL connections, shared by every instance of every
//! component of a host.
//!
//! Instances live for one request; connecting (TCP, maybe TLS, and
//! authentication) per request would cost more than most queries. So, as
//! in Spin, each distinct address gets a deadpool pool, and an instance's
//! `connection` borrows one of its connections until the guest drops the
//! resource or the instance ends.

use anyhow::{Context, Result};
use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod, Status};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_postgres::config::SslMode;

/// Most connections one address's pool holds (Spin's number).
pub const CONNECTIONS_PER_ADDRESS: usize = 64;

/// Most addresses with a pool at once; the least recently used pool is
/// dropped beyond this (its connections close once returned). Components
/// use one or two databases; the bound is for guests that build addresses.
pub const MAX_POOLED_ADDRESSES: usize = 16;

/// How long connecting may take when the address sets no
/// `connect_timeout`: without one an unreachable host holds the guest for
/// the operating system's TCP timeout, minutes.
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// One component's PostgreSQL pools, one per connection address; every
/// instance of the component shares them. Components do not share pools
/// (Spin's `factor-outbound-pg` keeps a pool cache per component). Cheap to
/// clone: clones share the pools.
#[derive(Clone, Default)]
pub struct PgPools {
    inner: Arc<Mutex<Pools>>,
}

#[derive(Default)]
struct Pools {
    by_address: HashMap<String, PooledAddress>,
    /// Advances on every use, to find the least recently used pool.
    clock: u64,
}

struct PooledAddress {
    pool: Pool,
    last_used: u64,
}

impl std::fmt::Debug for PgPools {
    // Addresses may hold passwords: show only how many there are.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let count = self.lock().by_address.len();
        f.debug_struct("PgPools")
            .field("addresses", &count)
            .finish()
    }
}

impl PgPools {
    /// No pools yet; they are made on first use of each address.
    pub fn new() -> PgPools {
        PgPools::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Pools> {
        // A panic elsewhere cannot leave the map half-updated.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A connection to `address` (a URL or key=value connection string),
    /// from its pool: an idle one if there is one, else a new one; waits
    /// when the pool is at [`CONNECTIONS_PER_ADDRESS`].
    pub(crate) async fn connect(&self, address: &str) -> Result<Object> {
        let pool = self.pool(address)?;
        pool.get()
            .await
            .map_err(|e| anyhow::anyhow!(ErrorChain(&e).to_string()))
            .context("connecting to PostgreSQL")
    }

    fn pool(&self, address: &str) -> Result<Pool> {
        let mut pools = self.lock();
        pools.clock += 1;
        let now = pools.clock;
        if let Some(entry) = pools.by_address.get_mut(address) {
            entry.last_used = now;
            return Ok(entry.pool.clone());
        }
        let pool = new_pool(address)?;
        if pools.by_address.len() >= MAX_POOLED_ADDRESSES
            && let Some(oldest) = pools
                .by_address
                .iter()
                .min_by_key(|(_, entry)| entry.last_used)
                .map(|(address, _)| address.clone())
        {
            pools.by_address.remove(&oldest);
        }
        pools.by_address.insert(
            address.to_owned(),
            PooledAddress {
                pool: pool.clone(),
                last_used: now,
            },
        );
        Ok(pool)
    }

    /// The state of `address`'s pool (connections open, idle, waiters), if
    /// it has one.
    pub fn status(&self, address: &str) -> Option<Status> {
        self.lock()
            .by_address
            .get(address)
            .map(|entry| entry.pool.status())
    }
}

fn new_pool(address: &str) -> Result<Pool> {
    let mut config = address
        .parse::<tokio_postgres::Config>()
        .context("invalid PostgreSQL connection address")?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(DEFAULT_CONNECT_TIMEOUT);
    }
    // `Clean` resets session state (settings, temporary tables, advisory
    // locks, prepared statements) before a connection is handed to the
    // next instance, which may belong to another component.
    let manager_config = ManagerConfig {
        recycling_method: RecyclingMethod::Clean,
    };
    let manager = if config.get_ssl_mode() == SslMode::Disable {
        Manager::from_config(config, tokio_postgres::NoTls, manager_config)
    } else {
        // `prefer` (the driver's default) tries TLS and falls back to
        // plaintext when the server has none; `require` insists. Roots are
        // the system's, as in Spin.
        let tls = native_tls::TlsConnector::new().context("cannot set up TLS")?;
        let tls = postgres_native_tls::MakeTlsConnector::new(tls);
        Manager::from_config(config, tls, manager_config)
    };
    Pool::builder(manager)
        .max_size(CONNECTIONS_PER_ADDRESS)
        .build()
        .context("cannot build the PostgreSQL connection pool")
}

/// An error and its sources on one line: deadpool's own message is only
/// its outermost layer ("Backend error"), the cause is below.
pub(crate) struct ErrorChain<'a>(pub(crate) &'a dyn std::error::Error);

impl std::fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(cause) = source {
            write!(f, ": {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pools_are_made_once_per_address_and_bounded() {
        let pools = PgPools::new();
        let first = "postgres://u@127.0.0.1:1/a";
        pools.pool(first).unwrap();
        pools.pool(first).unwrap();
        assert_eq!(pools.lock().by_address.len(), 1);
        for i in 0..MAX_POOLED_ADDRESSES + 4 {
            pools
                .pool(&format!("host=127.0.0.1 port={} user=u", 2 + i))
                .unwrap();
            // Keep the first one in use: it must survive eviction.
            pools.pool(first).unwrap();
        }
        let guard = pools.lock();
        assert_eq!(guard.by_address.len(), MAX_POOLED_ADDRESSES);
        assert!(guard.by_address.contains_key(first));
    }

    #[test]
    fn a_malformed_address_makes_no_pool() {
        let pools = PgPools::new();
        let err = pools
            .pool("postgres://u@127.0.0.1:notaport/db")
            .unwrap_err();
        assert!(format!("{err:#}").contains("invalid"), "{err:#}");
        assert!(pools.status("postgres://u@127.0.0.1:notaport/db").is_none());
    }

    #[test]
    fn plaintext_and_tls_addresses_both_get_pools() {
        for address in [
            "host=h user=u sslmode=disable",
            "host=h user=u sslmode=prefer connect_timeout=3",
            "postgres://u@h/db?sslmode=require",
        ] {
            assert!(new_pool(address).is_ok(), "{address}");
        }
    }
}
