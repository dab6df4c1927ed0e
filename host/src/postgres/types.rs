//! Between the interface's values and the driver's: parameters out
//! (`parameter-value` to a `ToSql` of the right PostgreSQL type), columns
//! and values back (PostgreSQL types to `db-data-type`, values to
//! `db-value`).
//!
//! The mapping is Spin's: e.g. `timestamp` and `timestamptz` columns both
//! come back as naive UTC `datetime`s, `timestamp(s)` parameters are whole
//! seconds since the epoch sent as `timestamptz`, an empty range reads as
//! `(none, none)`, and a type without a case is `other(name)` whose values
//! are the server's binary encoding, `unsupported(bytes)`.

use super::wit::{DbDataType, DbValue, Interval, ParameterValue, RangeBoundKind};
use bytes::{Buf, BufMut, BytesMut};
use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, NaiveTime, Timelike, Utc};
use postgres_protocol::types as wire;
use rust_decimal::Decimal;
use std::error::Error as StdError;
use tokio_postgres::Row;
use tokio_postgres::types::{FromSql, IsNull, Kind, ToSql, Type, to_sql_checked};

/// What the driver's conversion traits return as an error.
type BoxError = Box<dyn StdError + Sync + Send>;

/// A parameter ready to bind.
pub(crate) type SqlParameter = Box<dyn ToSql + Send + Sync>;

/// The interface's name for the PostgreSQL type `ty`.
pub(crate) fn data_type(ty: &Type) -> DbDataType {
    match *ty {
        Type::BOOL => DbDataType::Boolean,
        Type::INT2 => DbDataType::Int16,
        Type::INT4 => DbDataType::Int32,
        Type::INT8 => DbDataType::Int64,
        Type::FLOAT4 => DbDataType::Floating32,
        Type::FLOAT8 => DbDataType::Floating64,
        Type::TEXT | Type::VARCHAR | Type::BPCHAR => DbDataType::Str,
        Type::BYTEA => DbDataType::Binary,
        Type::DATE => DbDataType::Date,
        Type::TIME => DbDataType::Time,
        Type::TIMESTAMP | Type::TIMESTAMPTZ => DbDataType::Datetime,
        Type::UUID => DbDataType::Uuid,
        Type::JSONB => DbDataType::Jsonb,
        Type::NUMERIC => DbDataType::Decimal,
        Type::INT4_RANGE => DbDataType::RangeInt32,
        Type::INT8_RANGE => DbDataType::RangeInt64,
        Type::NUM_RANGE => DbDataType::RangeDecimal,
        Type::INT4_ARRAY => DbDataType::ArrayInt32,
        Type::INT8_ARRAY => DbDataType::ArrayInt64,
        Type::NUMERIC_ARRAY => DbDataType::ArrayDecimal,
        Type::TEXT_ARRAY | Type::VARCHAR_ARRAY | Type::BPCHAR_ARRAY => DbDataType::ArrayStr,
        Type::INTERVAL => DbDataType::Interval,
        // Neither `int8` (one byte) nor `timestamp` (epoch seconds) of the
        // interface is ever reported: no PostgreSQL type maps to them.
        _ => DbDataType::Other(ty.name().to_owned()),
    }
}

/// Reads column `index` of `row` as `T`, NULL as `db-null`, and wraps it.
fn read<'a, T: FromSql<'a>>(
    row: &'a Row,
    index: usize,
    wrap: impl FnOnce(T) -> Result<DbValue, BoxError>,
) -> Result<DbValue, BoxError> {
    match row.try_get::<_, Option<T>>(index)? {
        Some(value) => wrap(value),
        None => Ok(DbValue::DbNull),
    }
}

/// Column `index` of `row` as the interface's value; the column's
/// [`data_type`] says which case it is.
pub(crate) fn db_value(row: &Row, index: usize) -> Result<DbValue, BoxError> {
    let ty = row.columns()[index].type_();
    match *ty {
        Type::BOOL => read(row, index, |v| Ok(DbValue::Boolean(v))),
        Type::INT2 => read(row, index, |v| Ok(DbValue::Int16(v))),
        Type::INT4 => read(row, index, |v| Ok(DbValue::Int32(v))),
        Type::INT8 => read(row, index, |v| Ok(DbValue::Int64(v))),
        Type::FLOAT4 => read(row, index, |v| Ok(DbValue::Floating32(v))),
        Type::FLOAT8 => read(row, index, |v| Ok(DbValue::Floating64(v))),
        Type::TEXT | Type::VARCHAR | Type::BPCHAR => read(row, index, |v| Ok(DbValue::Str(v))),
        Type::BYTEA => read(row, index, |v| Ok(DbValue::Binary(v))),
        Type::DATE => read(row, index, |v| Ok(DbValue::Date(date_to_wit(v)))),
        Type::TIME => read(row, index, |v| Ok(DbValue::Time(time_to_wit(v)))),
        // A `timestamptz` is an instant: read it in UTC, like `timestamp`.
        Type::TIMESTAMP => read(row, index, |v| Ok(DbValue::Datetime(datetime_to_wit(v)))),
        Type::TIMESTAMPTZ => read(row, index, |v: DateTime<Utc>| {
            Ok(DbValue::Datetime(datetime_to_wit(v.naive_utc())))
        }),
        Type::UUID => read(row, index, |v: uuid::Uuid| Ok(DbValue::Uuid(v.to_string()))),
        Type::JSONB => read(row, index, |v: serde_json::Value| {
            Ok(DbValue::Jsonb(serde_json::to_vec(&v)?))
        }),
        Type::NUMERIC => read(row, index, |v: Decimal| Ok(DbValue::Decimal(v.to_string()))),
        Type::INT4_RANGE => read(row, index, |v: PgRange<i32>| Ok(DbValue::RangeInt32(v.0))),
        Type::INT8_RANGE => read(row, index, |v: PgRange<i64>| Ok(DbValue::RangeInt64(v.0))),
        Type::NUM_RANGE => read(row, index, |v: PgRange<Decimal>| {
            let text = |(d, kind): (Decimal, RangeBoundKind)| (d.to_string(), kind);
            Ok(DbValue::RangeDecimal((v.0.0.map(text), v.0.1.map(text))))
        }),
        Type::INT4_ARRAY => read(row, index, |v| Ok(DbValue::ArrayInt32(v))),
        Type::INT8_ARRAY => read(row, index, |v| Ok(DbValue::ArrayInt64(v))),
        Type::NUMERIC_ARRAY => read(row, index, |v: Vec<Option<Decimal>>| {
            Ok(DbValue::ArrayDecimal(
                v.into_iter().map(|d| d.map(|d| d.to_string())).collect(),
            ))
        }),
        Type::TEXT_ARRAY | Type::VARCHAR_ARRAY | Type::BPCHAR_ARRAY => {
            read(row, index, |v| Ok(DbValue::ArrayStr(v)))
        }
        Type::INTERVAL => read(row, index, |v: PgInterval| Ok(DbValue::Interval(v.0))),
        _ => read(row, index, |v: RawValue| Ok(DbValue::Unsupported(v.0))),
    }
}

/// `parameter` as a value the driver can bind; the error says what is
/// wrong with it.
pub(crate) fn sql_parameter(parameter: &ParameterValue) -> Result<SqlParameter, String> {
    Ok(match parameter {
        ParameterValue::Boolean(v) => Box::new(*v),
        // PostgreSQL's one-byte integer is the internal `"char"` type, which
        // is what an `i8` binds as.
        ParameterValue::Int8(v) => Box::new(*v),
        ParameterValue::Int16(v) => Box::new(*v),
        ParameterValue::Int32(v) => Box::new(*v),
        ParameterValue::Int64(v) => Box::new(*v),
        ParameterValue::Floating32(v) => Box::new(*v),
        ParameterValue::Floating64(v) => Box::new(*v),
        ParameterValue::Str(v) => Box::new(v.clone()),
        ParameterValue::Binary(v) => Box::new(v.clone()),
        ParameterValue::Date(v) => Box::new(date_from_wit(*v)?),
        ParameterValue::Time(v) => Box::new(time_from_wit(*v)?),
        ParameterValue::Datetime(v) => Box::new(datetime_from_wit(*v)?),
        ParameterValue::Timestamp(v) => Box::new(timestamp_from_wit(*v)?),
        ParameterValue::Uuid(v) => {
            Box::new(uuid::Uuid::parse_str(v).map_err(|e| format!("invalid UUID `{v}`: {e}"))?)
        }
        ParameterValue::Jsonb(v) => Box::new(
            serde_json::from_slice::<serde_json::Value>(v)
                .map_err(|e| format!("invalid JSON `{}`: {e}", String::from_utf8_lossy(v)))?,
        ),
        ParameterValue::Decimal(v) => Box::new(decimal_from_wit(v)?),
        ParameterValue::RangeInt32(v) => Box::new(PgRange(*v)),
        ParameterValue::RangeInt64(v) => Box::new(PgRange(*v)),
        ParameterValue::RangeDecimal((lower, upper)) => {
            let bound = |b: &Option<(String, RangeBoundKind)>| {
                b.as_ref()
                    .map(|(text, kind)| Ok::<_, String>((decimal_from_wit(text)?, *kind)))
                    .transpose()
            };
            Box::new(PgRange((bound(lower)?, bound(upper)?)))
        }
        ParameterValue::ArrayInt32(v) => Box::new(v.clone()),
        ParameterValue::ArrayInt64(v) => Box::new(v.clone()),
        ParameterValue::ArrayDecimal(v) => Box::new(
            v.iter()
                .map(|d| d.as_deref().map(decimal_from_wit).transpose())
                .collect::<Result<Vec<Option<Decimal>>, String>>()?,
        ),
        ParameterValue::ArrayStr(v) => Box::new(v.clone()),
        ParameterValue::Interval(v) => Box::new(PgInterval(*v)),
        ParameterValue::DbNull => Box::new(AnyNull),
    })
}

/// Converts every parameter, stopping at the first that cannot be.
pub(crate) fn sql_parameters(parameters: &[ParameterValue]) -> Result<Vec<SqlParameter>, String> {
    parameters.iter().map(sql_parameter).collect()
}

fn date_from_wit((year, month, day): (i32, u8, u8)) -> Result<NaiveDate, String> {
    NaiveDate::from_ymd_opt(year, month.into(), day.into())
        .ok_or_else(|| format!("invalid date {year:04}-{month:02}-{day:02}"))
}

fn time_from_wit((hour, minute, second, nano): (u8, u8, u8, u32)) -> Result<NaiveTime, String> {
    NaiveTime::from_hms_nano_opt(hour.into(), minute.into(), second.into(), nano)
        .ok_or_else(|| format!("invalid time {hour:02}:{minute:02}:{second:02}.{nano:09}"))
}

fn datetime_from_wit(
    (year, month, day, hour, minute, second, nano): (i32, u8, u8, u8, u8, u8, u32),
) -> Result<NaiveDateTime, String> {
    Ok(NaiveDateTime::new(
        date_from_wit((year, month, day))?,
        time_from_wit((hour, minute, second, nano))?,
    ))
}

fn timestamp_from_wit(seconds: i64) -> Result<DateTime<Utc>, String> {
    DateTime::from_timestamp(seconds, 0)
        .ok_or_else(|| format!("timestamp {seconds} s since the epoch is out of range"))
}

fn decimal_from_wit(text: &str) -> Result<Decimal, String> {
    // Exact: a guest's digits must not be silently rounded away.
    Decimal::from_str_exact(text).map_err(|e| format!("invalid decimal `{text}`: {e}"))
}

// chrono's calendar fields are always in range for the narrower integer
// types of the interface (month 1-12, hour 0-23, ...), so the casts below
// cannot truncate.
fn date_to_wit(date: NaiveDate) -> (i32, u8, u8) {
    (date.year(), date.month() as u8, date.day() as u8)
}

fn time_to_wit(time: NaiveTime) -> (u8, u8, u8, u32) {
    (
        time.hour() as u8,
        time.minute() as u8,
        time.second() as u8,
        time.nanosecond(),
    )
}

fn datetime_to_wit(at: NaiveDateTime) -> (i32, u8, u8, u8, u8, u8, u32) {
    let (year, month, day) = date_to_wit(at.date());
    let (hour, minute, second, nano) = time_to_wit(at.time());
    (year, month, day, hour, minute, second, nano)
}

/// NULL, bindable whatever type the server expects there. `Option::None`
/// will not do: the driver still checks the Rust type of the `None`.
#[derive(Debug)]
pub(crate) struct AnyNull;

impl ToSql for AnyNull {
    fn to_sql(&self, _: &Type, _: &mut BytesMut) -> Result<IsNull, BoxError> {
        Ok(IsNull::Yes)
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

/// An `interval` in PostgreSQL's own three parts (they do not convert
/// into one another: a month has no fixed number of days).
#[derive(Debug)]
pub(crate) struct PgInterval(pub(crate) Interval);

impl ToSql for PgInterval {
    fn to_sql(&self, _: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        out.put_i64(self.0.micros);
        out.put_i32(self.0.days);
        out.put_i32(self.0.months);
        Ok(IsNull::No)
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::INTERVAL
    }

    to_sql_checked!();
}

impl FromSql<'_> for PgInterval {
    fn from_sql(_: &Type, mut raw: &[u8]) -> Result<Self, BoxError> {
        if raw.len() != 16 {
            return Err(format!("an interval is 16 bytes, got {}", raw.len()).into());
        }
        let micros = raw.get_i64();
        let days = raw.get_i32();
        let months = raw.get_i32();
        Ok(PgInterval(Interval {
            micros,
            days,
            months,
        }))
    }

    fn accepts(ty: &Type) -> bool {
        *ty == Type::INTERVAL
    }
}

/// A value of a type the interface has no case for: its bytes as the
/// server sent them (binary format).
#[derive(Debug)]
pub(crate) struct RawValue(pub(crate) Vec<u8>);

impl FromSql<'_> for RawValue {
    fn from_sql(_: &Type, raw: &[u8]) -> Result<Self, BoxError> {
        Ok(RawValue(raw.to_vec()))
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

/// One end of a range: `None` is unbounded.
pub(crate) type Bound<T> = Option<(T, RangeBoundKind)>;

/// A range of `T` as the interface shapes it. An empty range has neither
/// bound, so it reads back the same as an unbounded one (as in Spin).
#[derive(Debug)]
pub(crate) struct PgRange<T>(pub(crate) (Bound<T>, Bound<T>));

/// The element type of a range type, e.g. `int4` for `int4range`.
fn range_element(ty: &Type) -> Option<&Type> {
    match ty.kind() {
        Kind::Range(element) => Some(element),
        _ => None,
    }
}

fn bound_to_sql<T: ToSql>(
    bound: &Bound<T>,
    element: &Type,
    out: &mut BytesMut,
) -> Result<wire::RangeBound<postgres_protocol::IsNull>, BoxError> {
    let Some((value, kind)) = bound else {
        return Ok(wire::RangeBound::Unbounded);
    };
    // The wire crate has its own `IsNull`.
    let is_null = match value.to_sql(element, out)? {
        IsNull::Yes => postgres_protocol::IsNull::Yes,
        IsNull::No => postgres_protocol::IsNull::No,
    };
    Ok(match kind {
        RangeBoundKind::Inclusive => wire::RangeBound::Inclusive(is_null),
        RangeBoundKind::Exclusive => wire::RangeBound::Exclusive(is_null),
    })
}

fn bound_from_sql<'a, T: FromSql<'a>>(
    bound: wire::RangeBound<Option<&'a [u8]>>,
    element: &Type,
) -> Result<Bound<T>, BoxError> {
    let (raw, kind) = match bound {
        wire::RangeBound::Unbounded => return Ok(None),
        wire::RangeBound::Inclusive(raw) => (raw, RangeBoundKind::Inclusive),
        wire::RangeBound::Exclusive(raw) => (raw, RangeBoundKind::Exclusive),
    };
    let raw = raw.ok_or("a range bound is NULL")?;
    Ok(Some((T::from_sql(element, raw)?, kind)))
}

impl<T: ToSql + RangeElement> ToSql for PgRange<T> {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        let element = range_element(ty).ok_or_else(|| format!("{ty} is not a range type"))?;
        let (lower, upper) = &self.0;
        wire::range_to_sql(
            |out| bound_to_sql(lower, element, out),
            |out| bound_to_sql(upper, element, out),
            out,
        )?;
        Ok(IsNull::No)
    }

    fn accepts(ty: &Type) -> bool {
        range_element(ty).is_some_and(T::accepts_element)
    }

    to_sql_checked!();
}

impl<'a, T: FromSql<'a> + RangeElement> FromSql<'a> for PgRange<T> {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, BoxError> {
        let element = range_element(ty).ok_or_else(|| format!("{ty} is not a range type"))?;
        Ok(PgRange(match wire::range_from_sql(raw)? {
            wire::Range::Empty => (None, None),
            wire::Range::Nonempty(lower, upper) => (
                bound_from_sql(lower, element)?,
                bound_from_sql(upper, element)?,
            ),
        }))
    }

    fn accepts(ty: &Type) -> bool {
        range_element(ty).is_some_and(T::accepts_element)
    }
}

/// Which element type a Rust type stands for inside a range. The element
/// types' own `accepts` would also let e.g. an `i64` range bind where an
/// `int4range` is expected, which is not what the guest asked for.
pub(crate) trait RangeElement {
    fn accepts_element(ty: &Type) -> bool;
}

impl RangeElement for i32 {
    fn accepts_element(ty: &Type) -> bool {
        *ty == Type::INT4
    }
}

impl RangeElement for i64 {
    fn accepts_element(ty: &Type) -> bool {
        *ty == Type::INT8
    }
}

impl RangeElement for Decimal {
    fn accepts_element(ty: &Type) -> bool {
        *ty == Type::NUMERIC
    }
}

/// A rough count of the bytes `value` occupies once handed to the guest,
/// to bound how much one query may buffer in the host.
pub(crate) fn approximate_size(value: &DbValue) -> usize {
    let strings = |v: &[Option<String>]| v.iter().flatten().map(String::len).sum::<usize>();
    std::mem::size_of::<DbValue>()
        + match value {
            DbValue::Str(s) | DbValue::Uuid(s) | DbValue::Decimal(s) => s.len(),
            DbValue::Binary(b) | DbValue::Jsonb(b) | DbValue::Unsupported(b) => b.len(),
            DbValue::RangeDecimal((lower, upper)) => {
                lower.as_ref().map_or(0, |(s, _)| s.len())
                    + upper.as_ref().map_or(0, |(s, _)| s.len())
            }
            DbValue::ArrayInt32(v) => v.len() * std::mem::size_of::<Option<i32>>(),
            DbValue::ArrayInt64(v) => v.len() * std::mem::size_of::<Option<i64>>(),
            DbValue::ArrayDecimal(v) | DbValue::ArrayStr(v) => {
                v.len() * std::mem::size_of::<Option<String>>() + strings(v)
            }
            _ => 0,
        }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Encodes `parameter` as for a slot of type `ty`.
    fn encode(parameter: &ParameterValue, ty: &Type) -> Result<Option<Vec<u8>>, BoxError> {
        let value = sql_parameter(parameter).map_err(BoxError::from)?;
        let mut out = BytesMut::new();
        match value.to_sql_checked(ty, &mut out)? {
            IsNull::Yes => Ok(None),
            IsNull::No => Ok(Some(out.to_vec())),
        }
    }

    fn decode<'a, T: FromSql<'a>>(ty: &Type, raw: &'a [u8]) -> T {
        T::from_sql(ty, raw).unwrap()
    }

    #[test]
    fn timestamps_are_whole_seconds_since_the_epoch() {
        let at = timestamp_from_wit(3_723).unwrap();
        assert_eq!(
            at.naive_utc(),
            datetime_from_wit((1970, 1, 1, 1, 2, 3, 0)).unwrap()
        );
        let before = timestamp_from_wit(-86_400).unwrap();
        assert_eq!(date_to_wit(before.date_naive()), (1969, 12, 31));
        assert!(timestamp_from_wit(i64::MAX).is_err());
        let raw = encode(&ParameterValue::Timestamp(0), &Type::TIMESTAMPTZ)
            .unwrap()
            .unwrap();
        let back: DateTime<Utc> = decode(&Type::TIMESTAMPTZ, &raw);
        assert_eq!(back.timestamp(), 0);
    }

    #[test]
    fn dates_and_times_convert_both_ways() {
        let date = date_from_wit((2024, 2, 29)).unwrap();
        assert_eq!(date_to_wit(date), (2024, 2, 29));
        let time = time_from_wit((23, 59, 58, 123_456_000)).unwrap();
        assert_eq!(time_to_wit(time), (23, 59, 58, 123_456_000));
        let at = (1999, 12, 31, 23, 59, 59, 999_999_000);
        assert_eq!(datetime_to_wit(datetime_from_wit(at).unwrap()), at);
    }

    #[test]
    fn impossible_dates_and_times_are_rejected_with_a_reason() {
        let err = date_from_wit((2023, 2, 29)).unwrap_err();
        assert!(err.contains("2023-02-29"), "{err}");
        assert!(time_from_wit((24, 0, 0, 0)).is_err());
        assert!(datetime_from_wit((2024, 13, 1, 0, 0, 0, 0)).is_err());
        assert!(sql_parameter(&ParameterValue::Date((2024, 0, 1))).is_err());
    }

    #[test]
    fn malformed_text_parameters_are_rejected() {
        for bad in [
            ParameterValue::Uuid("not-a-uuid".into()),
            ParameterValue::Jsonb(b"{oops".to_vec()),
            ParameterValue::Decimal("1.2.3".into()),
            ParameterValue::ArrayDecimal(vec![Some("1".into()), Some("x".into())]),
            ParameterValue::RangeDecimal((Some(("abc".into(), RangeBoundKind::Inclusive)), None)),
        ] {
            assert!(sql_parameter(&bad).is_err(), "{bad:?}");
        }
        let err = sql_parameters(&[ParameterValue::Int32(1), ParameterValue::Uuid("x".into())])
            .err()
            .unwrap();
        assert!(err.contains("invalid UUID"), "{err}");
    }

    #[test]
    fn null_binds_as_any_type() {
        for ty in [
            Type::INT4,
            Type::TEXT,
            Type::JSONB,
            Type::INET,
            Type::INT4_ARRAY,
        ] {
            assert_eq!(encode(&ParameterValue::DbNull, &ty).unwrap(), None, "{ty}");
        }
    }

    #[test]
    fn parameters_refuse_slots_of_another_type() {
        assert!(encode(&ParameterValue::Int32(1), &Type::INT8).is_err());
        assert!(encode(&ParameterValue::Str("x".into()), &Type::INT4).is_err());
        let range = ParameterValue::RangeInt64((None, None));
        assert!(encode(&range, &Type::INT4_RANGE).is_err());
        assert!(encode(&range, &Type::INT8_RANGE).is_ok());
        let interval = ParameterValue::Interval(Interval {
            micros: 0,
            days: 0,
            months: 0,
        });
        assert!(encode(&interval, &Type::TIME).is_err());
    }

    #[test]
    fn intervals_keep_their_three_parts() {
        let interval = Interval {
            micros: -1_500_000,
            days: 3,
            months: 14,
        };
        let raw = encode(&ParameterValue::Interval(interval), &Type::INTERVAL)
            .unwrap()
            .unwrap();
        assert_eq!(raw.len(), 16);
        let back: PgInterval = decode(&Type::INTERVAL, &raw);
        assert_eq!(back.0, interval);
        assert!(PgInterval::from_sql(&Type::INTERVAL, &raw[..15]).is_err());
    }

    #[test]
    fn ranges_keep_bounds_and_kinds() {
        use RangeBoundKind::{Exclusive, Inclusive};
        let range = (Some((-3, Inclusive)), Some((7, Exclusive)));
        let raw = encode(&ParameterValue::RangeInt32(range), &Type::INT4_RANGE)
            .unwrap()
            .unwrap();
        let back: PgRange<i32> = decode(&Type::INT4_RANGE, &raw);
        assert_eq!(back.0, range);

        let half_open = (None, Some((1i64 << 40, Inclusive)));
        let raw = encode(&ParameterValue::RangeInt64(half_open), &Type::INT8_RANGE)
            .unwrap()
            .unwrap();
        let back: PgRange<i64> = decode(&Type::INT8_RANGE, &raw);
        assert_eq!(back.0, half_open);

        let decimals = (Some(("1.50".to_string(), Exclusive)), None);
        let raw = encode(
            &ParameterValue::RangeDecimal(decimals.clone()),
            &Type::NUM_RANGE,
        )
        .unwrap()
        .unwrap();
        let back: PgRange<Decimal> = decode(&Type::NUM_RANGE, &raw);
        assert_eq!(back.0, (Some((Decimal::new(150, 2), Exclusive)), None));

        // PostgreSQL's encoding of `'empty'::int4range`.
        let empty: PgRange<i32> = decode(&Type::INT4_RANGE, &[0x01]);
        assert_eq!(empty.0, (None, None));
    }

    #[test]
    fn decimals_are_exact() {
        let raw = encode(&ParameterValue::Decimal("-12.3400".into()), &Type::NUMERIC)
            .unwrap()
            .unwrap();
        let back: Decimal = decode(&Type::NUMERIC, &raw);
        assert_eq!(back.to_string(), "-12.3400");
        let array = ParameterValue::ArrayDecimal(vec![Some("0.1".into()), None]);
        let raw = encode(&array, &Type::NUMERIC_ARRAY).unwrap().unwrap();
        let back: Vec<Option<Decimal>> = decode(&Type::NUMERIC_ARRAY, &raw);
        assert_eq!(back, vec![Some(Decimal::new(1, 1)), None]);
    }

    #[test]
    fn jsonb_and_uuid_parameters_round_trip() {
        let raw = encode(
            &ParameterValue::Jsonb(br#"{"a":[1,2]}"#.to_vec()),
            &Type::JSONB,
        )
        .unwrap()
        .unwrap();
        let back: serde_json::Value = decode(&Type::JSONB, &raw);
        assert_eq!(back, serde_json::json!({"a": [1, 2]}));
        let id = "67e55044-10b1-426f-9247-bb680e5fe0c8";
        let raw = encode(&ParameterValue::Uuid(id.into()), &Type::UUID)
            .unwrap()
            .unwrap();
        let back: uuid::Uuid = decode(&Type::UUID, &raw);
        assert_eq!(back.to_string(), id);
    }

    #[test]
    fn column_types_map_as_in_spin() {
        let cases = [
            (Type::BOOL, DbDataType::Boolean),
            (Type::INT2, DbDataType::Int16),
            (Type::INT4, DbDataType::Int32),
            (Type::INT8, DbDataType::Int64),
            (Type::FLOAT4, DbDataType::Floating32),
            (Type::FLOAT8, DbDataType::Floating64),
            (Type::VARCHAR, DbDataType::Str),
            (Type::BPCHAR, DbDataType::Str),
            (Type::BYTEA, DbDataType::Binary),
            (Type::DATE, DbDataType::Date),
            (Type::TIME, DbDataType::Time),
            (Type::TIMESTAMP, DbDataType::Datetime),
            (Type::TIMESTAMPTZ, DbDataType::Datetime),
            (Type::UUID, DbDataType::Uuid),
            (Type::JSONB, DbDataType::Jsonb),
            (Type::NUMERIC, DbDataType::Decimal),
            (Type::INT4_RANGE, DbDataType::RangeInt32),
            (Type::INT8_RANGE, DbDataType::RangeInt64),
            (Type::NUM_RANGE, DbDataType::RangeDecimal),
            (Type::INT4_ARRAY, DbDataType::ArrayInt32),
            (Type::INT8_ARRAY, DbDataType::ArrayInt64),
            (Type::NUMERIC_ARRAY, DbDataType::ArrayDecimal),
            (Type::VARCHAR_ARRAY, DbDataType::ArrayStr),
            (Type::INTERVAL, DbDataType::Interval),
            (Type::JSON, DbDataType::Other("json".into())),
            (Type::INET, DbDataType::Other("inet".into())),
            (Type::TIMETZ, DbDataType::Other("timetz".into())),
            (Type::INT2_ARRAY, DbDataType::Other("_int2".into())),
        ];
        for (ty, expected) in cases {
            assert_eq!(data_type(&ty), expected, "{ty}");
        }
    }

    #[test]
    fn sizes_grow_with_content() {
        let small = approximate_size(&DbValue::Str(String::new()));
        let big = approximate_size(&DbValue::Str("x".repeat(1000)));
        assert_eq!(big - small, 1000);
        let array = approximate_size(&DbValue::ArrayStr(vec![Some("abc".into()), None]));
        assert!(array > small + 3);
    }
}
