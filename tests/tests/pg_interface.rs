//! The host's `spin:postgres/postgres@4.0.0` against a real PostgreSQL:
//! the interface's calls made natively, as a guest's would arrive, through
//! the same pools and allow-list checks the host uses for components.

use std::sync::Arc;
use std::time::Duration;
use xtream_host::OutboundPolicy;
use xtream_host::postgres::{
    DbDataType, DbError, DbValue, Error, Interval, MAX_CACHED_STATEMENTS, ParameterValue, PgPools,
    PostgresState, QueryError, RangeBoundKind, RowSet,
};
use xtream_tests::Postgres;

use RangeBoundKind::{Exclusive, Inclusive};

/// An instance of a component whose only allowed host is `entries`.
fn instance(pools: &PgPools, entries: &[String]) -> PostgresState {
    let policy = OutboundPolicy::parse(entries).expect("valid allowed_outbound_hosts");
    PostgresState::new("pg-test".into(), Arc::new(policy), pools.clone())
}

fn allowed_instance(pg: &Postgres, pools: &PgPools) -> PostgresState {
    instance(pools, &[pg.allowed_host()])
}

fn column_types(rows: &RowSet) -> Vec<(String, DbDataType)> {
    rows.columns
        .iter()
        .map(|c| (c.name.clone(), c.data_type.clone()))
        .collect()
}

fn db_error(result: Result<impl std::fmt::Debug, Error>) -> DbError {
    match result {
        Err(Error::QueryFailed(QueryError::DbError(db))) => db,
        other => panic!("expected query-failed(db-error), got {other:?}"),
    }
}

const ALL_TYPES_TABLE: &str = "CREATE TABLE every_type (
    b boolean, ch \"char\", i16 smallint, i32 integer, i64 bigint,
    f32 real, f64 double precision, s text, vc varchar(20), bc char(3),
    bin bytea, d date, t time, dt timestamp, ts timestamptz, u uuid,
    j jsonb, n numeric, r4 int4range, r8 int8range, rn numrange,
    a4 int4[], a8 int8[], an numeric[], ast text[], iv interval
)";

const ALL_TYPES_INSERT: &str = "INSERT INTO every_type VALUES
    ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16,
     $17, $18, $19, $20, $21, $22, $23, $24, $25, $26)";

#[tokio::test]
async fn every_parameter_type_round_trips_through_a_table() {
    let pg = Postgres::start().await.unwrap();
    let pools = PgPools::new();
    let mut db = allowed_instance(&pg, &pools);
    let conn = db.open(&pg.url()).await.unwrap();
    assert_eq!(db.execute(&conn, ALL_TYPES_TABLE, &[]).await.unwrap(), 0);

    let interval = Interval {
        micros: 3_723_000_456,
        days: -2,
        months: 13,
    };
    let params = vec![
        ParameterValue::Boolean(true),
        ParameterValue::Int8(65),
        ParameterValue::Int16(-32768),
        ParameterValue::Int32(2_000_000_000),
        ParameterValue::Int64(-9_000_000_000_000),
        ParameterValue::Floating32(1.5),
        ParameterValue::Floating64(-2.25e100),
        ParameterValue::Str("héllo, wörld".into()),
        ParameterValue::Str("varchar".into()),
        ParameterValue::Str("abc".into()),
        ParameterValue::Binary(vec![0, 1, 2, 255]),
        ParameterValue::Date((2024, 2, 29)),
        ParameterValue::Time((23, 59, 58, 123_456_000)),
        ParameterValue::Datetime((1999, 12, 31, 23, 59, 59, 500_000_000)),
        // 2009-02-13 23:31:30 UTC.
        ParameterValue::Timestamp(1_234_567_890),
        ParameterValue::Uuid("67e55044-10b1-426f-9247-bb680e5fe0c8".into()),
        ParameterValue::Jsonb(br#"{"title": "clip", "tags": ["a", "b"]}"#.to_vec()),
        ParameterValue::Decimal("-1234.5600".into()),
        ParameterValue::RangeInt32((Some((1, Inclusive)), Some((10, Inclusive)))),
        ParameterValue::RangeInt64((None, Some((1 << 40, Exclusive)))),
        ParameterValue::RangeDecimal((
            Some(("0.5".into(), Exclusive)),
            Some(("2.75".into(), Inclusive)),
        )),
        ParameterValue::ArrayInt32(vec![Some(1), None, Some(-3)]),
        ParameterValue::ArrayInt64(vec![Some(i64::MAX), None]),
        ParameterValue::ArrayDecimal(vec![Some("3.14".into()), None]),
        ParameterValue::ArrayStr(vec![Some("x".into()), None, Some("".into())]),
        ParameterValue::Interval(interval),
    ];
    assert_eq!(
        db.execute(&conn, ALL_TYPES_INSERT, &params).await.unwrap(),
        1
    );
    let nulls = vec![ParameterValue::DbNull; params.len()];
    assert_eq!(
        db.execute(&conn, ALL_TYPES_INSERT, &nulls).await.unwrap(),
        1
    );

    let rows = db
        .query(&conn, "SELECT * FROM every_type ORDER BY b NULLS LAST", &[])
        .await
        .unwrap();
    let expected_types = [
        ("b", DbDataType::Boolean),
        ("ch", DbDataType::Other("char".into())),
        ("i16", DbDataType::Int16),
        ("i32", DbDataType::Int32),
        ("i64", DbDataType::Int64),
        ("f32", DbDataType::Floating32),
        ("f64", DbDataType::Floating64),
        ("s", DbDataType::Str),
        ("vc", DbDataType::Str),
        ("bc", DbDataType::Str),
        ("bin", DbDataType::Binary),
        ("d", DbDataType::Date),
        ("t", DbDataType::Time),
        ("dt", DbDataType::Datetime),
        ("ts", DbDataType::Datetime),
        ("u", DbDataType::Uuid),
        ("j", DbDataType::Jsonb),
        ("n", DbDataType::Decimal),
        ("r4", DbDataType::RangeInt32),
        ("r8", DbDataType::RangeInt64),
        ("rn", DbDataType::RangeDecimal),
        ("a4", DbDataType::ArrayInt32),
        ("a8", DbDataType::ArrayInt64),
        ("an", DbDataType::ArrayDecimal),
        ("ast", DbDataType::ArrayStr),
        ("iv", DbDataType::Interval),
    ];
    let expected_types: Vec<(String, DbDataType)> = expected_types
        .into_iter()
        .map(|(n, t)| (n.to_owned(), t))
        .collect();
    assert_eq!(column_types(&rows), expected_types);
    assert_eq!(rows.rows.len(), 2);

    let expected = vec![
        DbValue::Boolean(true),
        // `"char"` has no case in the interface: its raw byte comes back.
        DbValue::Unsupported(vec![65]),
        DbValue::Int16(-32768),
        DbValue::Int32(2_000_000_000),
        DbValue::Int64(-9_000_000_000_000),
        DbValue::Floating32(1.5),
        DbValue::Floating64(-2.25e100),
        DbValue::Str("héllo, wörld".into()),
        DbValue::Str("varchar".into()),
        DbValue::Str("abc".into()),
        DbValue::Binary(vec![0, 1, 2, 255]),
        DbValue::Date((2024, 2, 29)),
        DbValue::Time((23, 59, 58, 123_456_000)),
        DbValue::Datetime((1999, 12, 31, 23, 59, 59, 500_000_000)),
        DbValue::Datetime((2009, 2, 13, 23, 31, 30, 0)),
        DbValue::Uuid("67e55044-10b1-426f-9247-bb680e5fe0c8".into()),
        DbValue::Jsonb(br#"{"tags":["a","b"],"title":"clip"}"#.to_vec()),
        DbValue::Decimal("-1234.5600".into()),
        // PostgreSQL keeps discrete ranges as [lower, upper).
        DbValue::RangeInt32((Some((1, Inclusive)), Some((11, Exclusive)))),
        DbValue::RangeInt64((None, Some((1 << 40, Exclusive)))),
        DbValue::RangeDecimal((
            Some(("0.5".into(), Exclusive)),
            Some(("2.75".into(), Inclusive)),
        )),
        DbValue::ArrayInt32(vec![Some(1), None, Some(-3)]),
        DbValue::ArrayInt64(vec![Some(i64::MAX), None]),
        DbValue::ArrayDecimal(vec![Some("3.14".into()), None]),
        DbValue::ArrayStr(vec![Some("x".into()), None, Some("".into())]),
        DbValue::Interval(interval),
    ];
    assert_eq!(rows.rows[0], expected);
    assert_eq!(rows.rows[1], vec![DbValue::DbNull; expected.len()]);

    // Parameters also filter: the same values find the row again.
    let found = db
        .query(
            &conn,
            "SELECT count(*) FROM every_type WHERE ts = $1 AND u = $2 AND n = $3 AND iv = $4",
            &[
                params[14].clone(),
                params[15].clone(),
                params[17].clone(),
                params[25].clone(),
            ],
        )
        .await
        .unwrap();
    assert_eq!(found.rows, vec![vec![DbValue::Int64(1)]]);
}

#[tokio::test]
async fn expressions_come_back_with_spins_types_and_unknown_types_as_other() {
    let pg = Postgres::start().await.unwrap();
    let pools = PgPools::new();
    let mut db = allowed_instance(&pg, &pools);
    let conn = db.open(&pg.key_value()).await.unwrap();
    let rows = db
        .query(
            &conn,
            "SELECT '127.0.0.1'::inet AS addr, point(1, 2) AS p, '{\"a\":1}'::json AS js,
                    'empty'::int4range AS nothing, '[1.5,)'::numrange AS open_ended,
                    interval '1 year 2 mons 3 days 04:05:06.5' AS iv,
                    '2024-01-02 03:04:05+02'::timestamptz AS at,
                    NULL::integer AS missing, NULL::inet AS missing_addr,
                    ARRAY['a', NULL]::varchar[] AS names",
            &[],
        )
        .await
        .unwrap();
    let types: Vec<DbDataType> = rows.columns.iter().map(|c| c.data_type.clone()).collect();
    assert_eq!(
        types,
        vec![
            DbDataType::Other("inet".into()),
            DbDataType::Other("point".into()),
            DbDataType::Other("json".into()),
            DbDataType::RangeInt32,
            DbDataType::RangeDecimal,
            DbDataType::Interval,
            DbDataType::Datetime,
            DbDataType::Int32,
            DbDataType::Other("inet".into()),
            DbDataType::ArrayStr,
        ]
    );
    let mut point = 1.0f64.to_be_bytes().to_vec();
    point.extend(2.0f64.to_be_bytes());
    assert_eq!(
        rows.rows,
        vec![vec![
            // inet's binary form: family, prefix bits, is-cidr, length, bytes.
            DbValue::Unsupported(vec![2, 32, 0, 4, 127, 0, 0, 1]),
            DbValue::Unsupported(point),
            DbValue::Unsupported(br#"{"a":1}"#.to_vec()),
            DbValue::RangeInt32((None, None)),
            DbValue::RangeDecimal((Some(("1.5".into(), Inclusive)), None)),
            DbValue::Interval(Interval {
                micros: 14_706_500_000,
                days: 3,
                months: 14,
            }),
            DbValue::Datetime((2024, 1, 2, 1, 4, 5, 0)),
            DbValue::DbNull,
            DbValue::DbNull,
            DbValue::ArrayStr(vec![Some("a".into()), None]),
        ]]
    );
}

#[tokio::test]
async fn a_result_without_rows_has_no_columns_as_in_spin() {
    let pg = Postgres::start().await.unwrap();
    let pools = PgPools::new();
    let mut db = allowed_instance(&pg, &pools);
    let conn = db.open(&pg.url()).await.unwrap();
    let rows = db
        .query(&conn, "SELECT 1 AS one WHERE false", &[])
        .await
        .unwrap();
    assert!(rows.columns.is_empty() && rows.rows.is_empty(), "{rows:?}");
}

#[tokio::test]
async fn a_unique_violation_is_a_structured_db_error() {
    let pg = Postgres::start().await.unwrap();
    let pools = PgPools::new();
    let mut db = allowed_instance(&pg, &pools);
    let conn = db.open(&pg.url()).await.unwrap();
    db.execute(
        &conn,
        "CREATE TABLE videos (id uuid CONSTRAINT videos_pkey PRIMARY KEY, title text)",
        &[],
    )
    .await
    .unwrap();
    let insert = "INSERT INTO videos VALUES ($1, $2)";
    let id = ParameterValue::Uuid("0b7e7f2a-3c1d-4e5f-8a9b-0c1d2e3f4a5b".into());
    let row = [id.clone(), ParameterValue::Str("first".into())];
    assert_eq!(db.execute(&conn, insert, &row).await.unwrap(), 1);

    let again = [id, ParameterValue::Str("second".into())];
    let db_err = db_error(db.execute(&conn, insert, &again).await);
    assert_eq!(db_err.code, "23505");
    assert_eq!(db_err.severity, "ERROR");
    assert!(db_err.message.contains("videos_pkey"), "{db_err:?}");
    assert!(
        db_err
            .detail
            .as_deref()
            .unwrap_or_default()
            .contains("already exists"),
        "{db_err:?}"
    );
    assert!(
        db_err
            .extras
            .contains(&("constraint".into(), "videos_pkey".into())),
        "{db_err:?}"
    );
    assert!(db_err.extras.contains(&("table".into(), "videos".into())));
    assert!(db_err.as_text.contains("23505") || db_err.as_text.contains("duplicate key"));

    // A failure before any row (here: planning) is structured in `query` too.
    let db_err = db_error(db.query(&conn, "SELECT * FROM no_such_table", &[]).await);
    assert_eq!(db_err.code, "42P01");
    let db_err = db_error(db.query(&conn, "SELEC 1", &[]).await);
    assert_eq!(db_err.code, "42601");

    // One raised while rows stream is flattened to text, as Spin does.
    match db
        .query(
            &conn,
            "SELECT 1 / (n - 1) FROM generate_series(1, 2) n",
            &[],
        )
        .await
    {
        Err(Error::QueryFailed(QueryError::Text(text))) => {
            assert!(text.contains("division by zero"), "{text}")
        }
        other => panic!("expected query-failed(text), got {other:?}"),
    }
    // The connection is still usable after failures.
    let count = db
        .query(&conn, "SELECT count(*) FROM videos", &[])
        .await
        .unwrap();
    assert_eq!(count.rows, vec![vec![DbValue::Int64(1)]]);
}

#[tokio::test]
async fn parameters_that_cannot_be_converted_are_refused_before_the_server_sees_them() {
    let pg = Postgres::start().await.unwrap();
    let pools = PgPools::new();
    let mut db = allowed_instance(&pg, &pools);
    let conn = db.open(&pg.url()).await.unwrap();
    for bad in [
        ParameterValue::Uuid("not-a-uuid".into()),
        ParameterValue::Date((2023, 2, 29)),
        ParameterValue::Decimal("12,5".into()),
        ParameterValue::Jsonb(b"{".to_vec()),
    ] {
        match db
            .query(&conn, "SELECT $1", std::slice::from_ref(&bad))
            .await
        {
            Err(Error::BadParameter(_)) => {}
            other => panic!("query with {bad:?}: expected bad-parameter, got {other:?}"),
        }
        // Spin's `execute` names the same failure differently.
        match db
            .execute(&conn, "SELECT $1", std::slice::from_ref(&bad))
            .await
        {
            Err(Error::ValueConversionFailed(_)) => {}
            other => {
                panic!("execute with {bad:?}: expected value-conversion-failed, got {other:?}")
            }
        }
    }
    // A well-formed value of the wrong type is the driver's refusal: text.
    match db
        .query(&conn, "SELECT $1::bigint", &[ParameterValue::Int32(1)])
        .await
    {
        Err(Error::QueryFailed(QueryError::Text(text))) => assert!(text.contains("int8"), "{text}"),
        other => panic!("expected query-failed(text), got {other:?}"),
    }
}

#[tokio::test]
async fn a_column_value_that_cannot_be_converted_fails_the_query() {
    let pg = Postgres::start().await.unwrap();
    let pools = PgPools::new();
    let mut db = allowed_instance(&pg, &pools);
    let conn = db.open(&pg.url()).await.unwrap();
    for statement in ["SELECT 'NaN'::numeric", "SELECT 'infinity'::timestamp"] {
        match db.query(&conn, statement, &[]).await {
            Err(Error::QueryFailed(QueryError::Text(text))) => {
                assert!(text.contains("convert"), "{statement}: {text}")
            }
            other => panic!("{statement}: expected query-failed(text), got {other:?}"),
        }
    }
}

/// A TCP listener that counts the connections made to it.
async fn counting_listener() -> (u16, Arc<std::sync::atomic::AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = accepted.clone();
    tokio::spawn(async move {
        while let Ok((_stream, _)) = listener.accept().await {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    });
    (port, accepted)
}

#[tokio::test]
async fn an_address_not_allowed_is_refused_without_connecting() {
    let (port, accepted) = counting_listener().await;
    let pools = PgPools::new();
    let addresses = [
        format!("postgres://u:p@127.0.0.1:{port}/db"),
        format!("host=127.0.0.1 port={port} user=u dbname=db"),
        // No port: 5432, which the entries below do not allow either.
        "postgres://u@127.0.0.1/db".to_owned(),
    ];
    let entries = [
        format!("postgres://127.0.0.1:{}", port.wrapping_add(1)),
        format!("http://127.0.0.1:{port}"),
        "postgres://localhost".to_owned(),
    ];
    let mut db = instance(&pools, &entries);
    for address in &addresses {
        match db.open(address).await {
            Err(Error::ConnectionFailed(why)) => {
                assert!(why.contains("not permitted"), "{address}: {why}")
            }
            other => panic!("{address}: expected connection-failed, got {other:?}"),
        }
        assert!(
            pools.status(address).is_none(),
            "{address}: a pool was made"
        );
    }
    match db.open("this is not a connection string").await {
        Err(Error::ConnectionFailed(_)) => {}
        other => panic!("expected connection-failed, got {other:?}"),
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        accepted.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "a refused address was connected to"
    );
    assert_eq!(db.open_connections(), 0);
}

#[tokio::test]
async fn an_unreachable_or_refusing_server_is_connection_failed() {
    let pg = Postgres::start().await.unwrap();
    let pools = PgPools::new();
    let closed_port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let entries = [
        pg.allowed_host(),
        format!("postgres://127.0.0.1:{closed_port}"),
    ];
    let mut db = instance(&pools, &entries);
    let wrong_password = pg.url().replace(&pg.password, "wrong");
    // The test server offers no TLS, so insisting on it must fail.
    let tls_required = format!("{} sslmode=require", pg.key_value());
    for address in [
        format!("postgres://u:p@127.0.0.1:{closed_port}/db"),
        wrong_password,
        tls_required,
    ] {
        match db.open(&address).await {
            Err(Error::ConnectionFailed(why)) => assert!(!why.is_empty()),
            other => panic!("{address}: expected connection-failed, got {other:?}"),
        }
    }
    assert_eq!(db.open_connections(), 0);
    // `prefer` (the default) falls back to plaintext on this server.
    let preferred = format!("{} sslmode=prefer", pg.key_value());
    db.open(&preferred).await.unwrap();
}

async fn backend_pid(
    db: &mut PostgresState,
    address: &str,
) -> (
    i32,
    xtream_host::postgres::Resource<xtream_host::postgres::Connection>,
) {
    let conn = db.open(address).await.unwrap();
    let rows = db
        .query(&conn, "SELECT pg_backend_pid()", &[])
        .await
        .unwrap();
    match rows.rows[0][0] {
        DbValue::Int32(pid) => (pid, conn),
        ref other => panic!("pg_backend_pid() gave {other:?}"),
    }
}

#[tokio::test]
async fn connections_are_pooled_across_opens_and_instances() {
    let pg = Postgres::start().await.unwrap();
    let pools = PgPools::new();
    let address = pg.url();

    let mut first = allowed_instance(&pg, &pools);
    let (pid, conn) = backend_pid(&mut first, &address).await;
    first.close(conn);
    let (again, conn) = backend_pid(&mut first, &address).await;
    assert_eq!(again, pid, "a closed connection was not reused");
    // Held by `first`, so a second instance needs its own connection...
    let mut second = allowed_instance(&pg, &pools);
    let (other, _held) = backend_pid(&mut second, &address).await;
    assert_ne!(other, pid);
    first.close(conn);
    drop(second);
    assert_eq!(pools.status(&address).unwrap().size, 2);

    // ...and once instances end, later ones take the idle connections.
    let mut third = allowed_instance(&pg, &pools);
    let (a, _) = backend_pid(&mut third, &address).await;
    let (b, _) = backend_pid(&mut third, &address).await;
    assert_eq!(
        [a.min(b), a.max(b)],
        [pid.min(other), pid.max(other)],
        "new connections were made instead of reusing idle ones"
    );
    drop(third);
    let status = pools.status(&address).unwrap();
    assert_eq!((status.size, status.available), (2, 2));

    // Session state does not leak from one instance to the next.
    let mut fourth = allowed_instance(&pg, &pools);
    let conn = fourth.open(&address).await.unwrap();
    fourth
        .execute(&conn, "SET application_name = 'leaky'", &[])
        .await
        .unwrap();
    drop(fourth);
    let mut fifth = allowed_instance(&pg, &pools);
    let conn = fifth.open(&address).await.unwrap();
    let name = fifth
        .query(&conn, "SELECT current_setting('application_name')", &[])
        .await
        .unwrap();
    assert_ne!(name.rows[0][0], DbValue::Str("leaky".into()));
}

/// Statements stay prepared on a pooled connection (a shortcut Spin does
/// not take), which must never show: a table changed under a kept
/// statement, a guest's `DEALLOCATE ALL`, or thousands of distinct
/// statements all behave as when every statement is prepared anew.
#[tokio::test]
async fn statements_kept_prepared_never_show_to_the_guest() {
    let pg = Postgres::start().await.unwrap();
    let pools = PgPools::new();
    let address = pg.url();
    let mut db = allowed_instance(&pg, &pools);
    let conn = db.open(&address).await.unwrap();
    db.execute(&conn, "CREATE TABLE kept (a integer)", &[])
        .await
        .unwrap();
    db.execute(&conn, "INSERT INTO kept VALUES (1)", &[])
        .await
        .unwrap();
    let select = "SELECT * FROM kept";
    assert_eq!(db.query(&conn, select, &[]).await.unwrap().columns.len(), 1);
    let kept = db
        .query(
            &conn,
            "SELECT count(*) FROM pg_prepared_statements WHERE statement = $1",
            &[ParameterValue::Str(select.into())],
        )
        .await
        .unwrap();
    assert_eq!(
        kept.rows[0][0],
        DbValue::Int64(1),
        "the statement was not kept"
    );

    // A migration changes the table the kept statement reads.
    db.execute(&conn, "ALTER TABLE kept ADD COLUMN b text DEFAULT 'x'", &[])
        .await
        .unwrap();
    let rows = db.query(&conn, select, &[]).await.unwrap();
    assert_eq!(
        rows.rows,
        vec![vec![DbValue::Int32(1), DbValue::Str("x".into())]]
    );
    let insert = "INSERT INTO kept (a) VALUES ($1)";
    assert_eq!(
        db.execute(&conn, insert, &[ParameterValue::Int32(2)])
            .await
            .unwrap(),
        1
    );
    db.execute(&conn, "ALTER TABLE kept ALTER COLUMN a TYPE bigint", &[])
        .await
        .unwrap();
    let rows = db.query(&conn, "SELECT a FROM kept ORDER BY a", &[]).await;
    assert_eq!(
        rows.unwrap().rows,
        vec![vec![DbValue::Int64(1)], vec![DbValue::Int64(2)]]
    );
    assert_eq!(
        db.execute(&conn, insert, &[ParameterValue::Int64(3)])
            .await
            .unwrap(),
        1
    );

    // The guest drops every prepared statement of its session.
    db.execute(&conn, "DEALLOCATE ALL", &[]).await.unwrap();
    assert_eq!(db.query(&conn, select, &[]).await.unwrap().rows.len(), 3);

    // A syntax error is the error Spin's unprepared path gives.
    let error = db_error(db.query(&conn, "SELEC 1", &[]).await);
    assert_eq!(error.code, "42601");

    // Distinct statements do not pile up on the server.
    for n in 0..(3 * MAX_CACHED_STATEMENTS) {
        db.query(&conn, &format!("SELECT {n}::bigint"), &[])
            .await
            .unwrap();
    }
    let kept = db
        .query(&conn, "SELECT count(*) FROM pg_prepared_statements", &[])
        .await
        .unwrap();
    match kept.rows[0][0] {
        DbValue::Int64(count) => assert!(
            count <= MAX_CACHED_STATEMENTS as i64 + 1,
            "{count} statements prepared on one connection"
        ),
        ref other => panic!("count(*) gave {other:?}"),
    }
}

#[tokio::test]
async fn an_outage_fails_opens_and_recovery_needs_no_restart() {
    let mut pg = Postgres::start_private().await.unwrap();
    let pools = PgPools::new();
    let address = pg.url();
    let mut db = allowed_instance(&pg, &pools);
    let (_, conn) = backend_pid(&mut db, &address).await;
    db.close(conn);
    drop(db);

    pg.stop().unwrap();
    let mut db = allowed_instance(&pg, &pools);
    match db.open(&address).await {
        Err(Error::ConnectionFailed(_)) => {}
        other => panic!("expected connection-failed while the server is down, got {other:?}"),
    }
    drop(db);

    pg.resume().await.unwrap();
    let mut db = allowed_instance(&pg, &pools);
    let conn = db.open(&address).await.unwrap();
    let one = db.query(&conn, "SELECT 1", &[]).await.unwrap();
    assert_eq!(one.rows, vec![vec![DbValue::Int32(1)]]);
}
