//! Spin's PostgreSQL interface, `spin:postgres/postgres@4.0.0`, so that
//! components built with `spin_sdk::pg4` run in this host as under Spin.
//!
//! The parts, as in Spin's `factor-outbound-pg`: `host` implements the
//! `connection` resource, `types` converts values, `client` pools the
//! connections (one pool per address and component, shared by every
//! instance of that component, as Spin keeps a pool cache per component)
//! and `allowed_hosts` checks addresses against a component's
//! `allowed_outbound_hosts` (`postgres://host[:port]`, port 5432 when
//! omitted) before anything connects.
//!
//! Behaviour a guest can observe follows Spin's, including its quirks,
//! because the same component must behave the same under both hosts:
//!
//! - `open`: an address not allowed, one that does not parse, a failure to
//!   connect or authenticate, and an instance past
//!   [`MAX_CONNECTIONS_PER_INSTANCE`] are all `connection-failed`.
//! - `query`: a parameter that cannot be converted is `bad-parameter`; a
//!   failure PostgreSQL reports before the first row is
//!   `query-failed(db-error)` (SQLSTATE in `code`); a failure while rows
//!   stream (e.g. a division by zero, or a unique violation of an
//!   `INSERT ... RETURNING`), a column value that cannot be converted (a
//!   `NaN` numeric, an infinite timestamp) and a result over
//!   [`MAX_RESULT_BYTES`] are `query-failed(text)`. Columns are described
//!   by the first row, so an empty result has no columns.
//! - `execute`: a parameter that cannot be converted is
//!   `value-conversion-failed`; a failed statement is
//!   `query-failed(db-error)` when PostgreSQL said why.
//!
//! TLS is as in Spin: `sslmode=disable` connects in plaintext; any other
//! mode (the default is `prefer`) uses native-tls with the system's roots,
//! `prefer` falling back to plaintext when the server offers no TLS.
//!
//! Two differences, neither visible to a guest that works: an address
//! without `connect_timeout` gets 10 s, where Spin waits for the operating
//! system's TCP timeout; and a statement stays prepared on its pooled
//! connection, where Spin prepares it anew each time (see
//! `host::prepare_cached` for how a failure falls back to Spin's path).

mod allowed_hosts;
mod client;
mod host;
mod types;

pub use allowed_hosts::SCHEME;
pub use client::{CONNECTIONS_PER_ADDRESS, MAX_POOLED_ADDRESSES, PgPools};
pub use deadpool_postgres::Status as PoolStatus;
pub use host::{
    MAX_CACHED_STATEMENTS, MAX_CONNECTIONS_PER_INSTANCE, MAX_RESULT_BYTES, PostgresState,
};
pub use wasmtime::component::Resource;
pub use wit::{
    Column, Connection, DbDataType, DbError, DbValue, Error, Interval, ParameterValue, QueryError,
    RangeBoundKind, Row, RowSet,
};

mod bindings {
    // The published `spin:postgres@4.0.0` interface, item for item: a
    // component links only if every name and type matches.
    wasmtime::component::bindgen!({
        inline: r#"
            package spin:postgres@4.0.0;

            interface postgres {
                variant error {
                    connection-failed(string),
                    bad-parameter(string),
                    query-failed(query-error),
                    value-conversion-failed(string),
                    other(string)
                }

                variant query-error {
                    text(string),
                    db-error(db-error),
                }

                record db-error {
                    as-text: string,
                    severity: string,
                    code: string,
                    message: string,
                    detail: option<string>,
                    extras: list<tuple<string, string>>,
                }

                variant db-data-type {
                    boolean,
                    int8,
                    int16,
                    int32,
                    int64,
                    floating32,
                    floating64,
                    str,
                    binary,
                    date,
                    time,
                    datetime,
                    timestamp,
                    uuid,
                    jsonb,
                    decimal,
                    range-int32,
                    range-int64,
                    range-decimal,
                    array-int32,
                    array-int64,
                    array-decimal,
                    array-str,
                    interval,
                    other(string),
                }

                variant db-value {
                    boolean(bool),
                    int8(s8),
                    int16(s16),
                    int32(s32),
                    int64(s64),
                    floating32(f32),
                    floating64(f64),
                    str(string),
                    binary(list<u8>),
                    date(tuple<s32, u8, u8>),
                    time(tuple<u8, u8, u8, u32>),
                    datetime(tuple<s32, u8, u8, u8, u8, u8, u32>),
                    timestamp(s64),
                    uuid(string),
                    jsonb(list<u8>),
                    decimal(string),
                    range-int32(tuple<option<tuple<s32, range-bound-kind>>, option<tuple<s32, range-bound-kind>>>),
                    range-int64(tuple<option<tuple<s64, range-bound-kind>>, option<tuple<s64, range-bound-kind>>>),
                    range-decimal(tuple<option<tuple<string, range-bound-kind>>, option<tuple<string, range-bound-kind>>>),
                    array-int32(list<option<s32>>),
                    array-int64(list<option<s64>>),
                    array-decimal(list<option<string>>),
                    array-str(list<option<string>>),
                    interval(interval),
                    db-null,
                    unsupported(list<u8>),
                }

                variant parameter-value {
                    boolean(bool),
                    int8(s8),
                    int16(s16),
                    int32(s32),
                    int64(s64),
                    floating32(f32),
                    floating64(f64),
                    str(string),
                    binary(list<u8>),
                    date(tuple<s32, u8, u8>),
                    time(tuple<u8, u8, u8, u32>),
                    datetime(tuple<s32, u8, u8, u8, u8, u8, u32>),
                    timestamp(s64),
                    uuid(string),
                    jsonb(list<u8>),
                    decimal(string),
                    range-int32(tuple<option<tuple<s32, range-bound-kind>>, option<tuple<s32, range-bound-kind>>>),
                    range-int64(tuple<option<tuple<s64, range-bound-kind>>, option<tuple<s64, range-bound-kind>>>),
                    range-decimal(tuple<option<tuple<string, range-bound-kind>>, option<tuple<string, range-bound-kind>>>),
                    array-int32(list<option<s32>>),
                    array-int64(list<option<s64>>),
                    array-decimal(list<option<string>>),
                    array-str(list<option<string>>),
                    interval(interval),
                    db-null,
                }

                record interval {
                    micros: s64,
                    days: s32,
                    months: s32,
                }

                record column {
                    name: string,
                    data-type: db-data-type,
                }

                type row = list<db-value>;

                record row-set {
                    columns: list<column>,
                    rows: list<row>,
                }

                enum range-bound-kind {
                    inclusive,
                    exclusive,
                }

                resource connection {
                    open: static func(address: string) -> result<connection, error>;
                    query: func(statement: string, params: list<parameter-value>) -> result<row-set, error>;
                    execute: func(statement: string, params: list<parameter-value>) -> result<u64, error>;
                }
            }

            world host {
                import postgres;
            }
        "#,
        imports: { default: async },
        additional_derives: [PartialEq],
    });
}

use bindings::spin::postgres::postgres as wit;

/// Adds `spin:postgres/postgres@4.0.0` to `linker`, reaching each store's
/// [`PostgresState`] through `getter`.
pub(crate) fn add_to_linker<T: Send + 'static>(
    linker: &mut wasmtime::component::Linker<T>,
    getter: fn(&mut T) -> &mut PostgresState,
) -> wasmtime::Result<()> {
    wit::add_to_linker::<T, wasmtime::component::HasSelf<PostgresState>>(linker, getter)
}
