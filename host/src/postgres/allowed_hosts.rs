//! Whether a component may connect to a PostgreSQL address: every host the
//! address names must be allowed as `postgres://host[:port]` by the
//! component's `allowed_outbound_hosts`.

use super::wit::Error;
use crate::outbound::OutboundPolicy;
use tokio_postgres::config::Host;

/// The scheme `allowed_outbound_hosts` entries use for PostgreSQL.
pub const SCHEME: &str = "postgres";

/// Checks `address` (URL or key=value form, parsed as the driver will
/// parse it to connect) against `policy`. Every failure is
/// `connection-failed`, before anything touches the network.
#[allow(
    clippy::result_large_err,
    reason = "the interface's own error type, handed to the guest as it is"
)]
pub(crate) fn check_address(policy: &OutboundPolicy, address: &str) -> Result<(), Error> {
    let config = address
        .parse::<tokio_postgres::Config>()
        .map_err(|e| Error::ConnectionFailed(e.to_string()))?;
    let ports = config.get_ports();
    for (index, host) in config.get_hosts().iter().enumerate() {
        match host {
            Host::Tcp(name) => {
                // The driver pairs hosts and ports by position, and one
                // port serves every host; anything else leaves this host
                // on the default port.
                let port = match ports {
                    [single] => Some(*single),
                    _ => ports.get(index).copied(),
                };
                if !policy.allows(SCHEME, name, port) {
                    let port = port.map(|p| format!(":{p}")).unwrap_or_default();
                    return Err(Error::ConnectionFailed(format!(
                        "address {SCHEME}://{name}{port} is not permitted"
                    )));
                }
            }
            // A guest has no filesystem to share a socket with; Spin refuses
            // these too.
            #[cfg(unix)]
            Host::Unix(_) => {
                return Err(Error::ConnectionFailed(
                    "Unix sockets are not supported on WebAssembly".into(),
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed(entries: &[&str], address: &str) -> Result<(), String> {
        let policy = OutboundPolicy::parse(entries).unwrap();
        check_address(&policy, address).map_err(|e| match e {
            Error::ConnectionFailed(why) => why,
            other => panic!("not connection-failed: {other:?}"),
        })
    }

    #[test]
    fn urls_and_key_value_strings_are_both_checked() {
        let entries = ["postgres://db:5433", "postgres://127.0.0.1"];
        assert!(allowed(&entries, "postgres://u:p@db:5433/videos").is_ok());
        assert!(allowed(&entries, "host=db port=5433 user=u dbname=videos").is_ok());
        assert!(allowed(&entries, "postgres://u@127.0.0.1/videos").is_ok());
        assert!(allowed(&entries, "host=127.0.0.1 user=u").is_ok());
        let why = allowed(&entries, "postgres://u@db/videos").unwrap_err();
        // The driver fills in the default port.
        assert_eq!(why, "address postgres://db:5432 is not permitted");
        let why = allowed(&entries, "host=evil port=5433 user=u").unwrap_err();
        assert_eq!(why, "address postgres://evil:5433 is not permitted");
    }

    #[test]
    fn every_host_of_a_multi_host_address_must_be_allowed() {
        let entries = ["postgres://a:1", "postgres://b:2"];
        assert!(allowed(&entries, "host=a,b port=1,2 user=u").is_ok());
        assert!(allowed(&entries, "host=a,c port=1,2 user=u").is_err());
        // One port for all hosts.
        assert!(allowed(&["postgres://*:7"], "host=a,b port=7 user=u").is_ok());
    }

    #[test]
    fn http_entries_do_not_allow_postgres() {
        assert!(allowed(&["http://db:5432"], "postgres://u@db:5432/x").is_err());
        assert!(allowed(&["*://db:5432"], "postgres://u@db:5432/x").is_ok());
    }

    #[test]
    fn unparsable_addresses_and_sockets_are_refused() {
        assert!(allowed(&["*://*:*"], "postgres://u@db:port/x").is_err());
        assert!(allowed(&["*://*:*"], "not a connection string").is_err());
        let why = allowed(&["*://*:*"], "host=/var/run/postgresql user=u").unwrap_err();
        assert!(why.contains("Unix sockets"), "{why}");
    }
}
