//! Values to and from SQLite: ids and times as text (times in a fixed-width UTC format whose
//! text order is time order), booleans as 0/1, JSON as text, bytes as blobs.

use ceneca_domain::schema::{Field, Kind};
use ceneca_domain::{Record, Value};
use rusqlite::types::{ToSql, ToSqlOutput, Value as SqlValue, ValueRef};
use time::OffsetDateTime;
use time::format_description::BorrowedFormatItem;
use time::macros::format_description;

use crate::StoreError;
use crate::sql::Param;

const TIME_FORMAT: &[BorrowedFormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z");

pub fn format_time(t: OffsetDateTime) -> String {
    t.to_offset(time::UtcOffset::UTC)
        .format(TIME_FORMAT)
        .unwrap_or_default()
}

pub fn parse_time(text: &str) -> Option<OffsetDateTime> {
    time::PrimitiveDateTime::parse(text, TIME_FORMAT)
        .ok()
        .map(|t| t.assume_utc())
}

impl ToSql for Param {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match &self.value {
            Value::Null => ToSqlOutput::Owned(SqlValue::Null),
            Value::Bool(b) => ToSqlOutput::Owned(SqlValue::Integer(*b as i64)),
            Value::Int(i) => ToSqlOutput::Owned(SqlValue::Integer(*i)),
            Value::Text(s) => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
            Value::Id(id) => ToSqlOutput::Owned(SqlValue::Text(id.hyphenated().to_string())),
            Value::IdSet(ids) => {
                let json = serde_json::Value::Array(
                    ids.iter()
                        .map(|i| serde_json::Value::String(i.to_string()))
                        .collect(),
                );
                ToSqlOutput::Owned(SqlValue::Text(json.to_string()))
            }
            Value::Time(t) => ToSqlOutput::Owned(SqlValue::Text(format_time(*t))),
            Value::Json(j) => ToSqlOutput::Owned(SqlValue::Text(j.to_string())),
            Value::Bytes(b) => ToSqlOutput::Borrowed(ValueRef::Blob(b)),
        })
    }
}

fn corrupt(field: &Field) -> StoreError {
    StoreError::Backend(format!(
        "column {} holds a value of the wrong type",
        field.name
    ))
}

/// Decodes one column by the kind the model declares for it.
pub fn decode(field: &Field, raw: ValueRef<'_>) -> Result<Value, StoreError> {
    fn text<'a>(field: &Field, raw: ValueRef<'a>) -> Result<&'a str, StoreError> {
        raw.as_str().map_err(|_| corrupt(field))
    }
    Ok(match raw {
        ValueRef::Null => Value::Null,
        _ => match field.kind {
            Kind::Uuid | Kind::Ref(_) => {
                Value::Id(uuid::Uuid::parse_str(text(field, raw)?).map_err(|_| corrupt(field))?)
            }
            Kind::Time => Value::Time(parse_time(text(field, raw)?).ok_or_else(|| corrupt(field))?),
            Kind::Bool => Value::Bool(raw.as_i64().map_err(|_| corrupt(field))? != 0),
            Kind::Int { .. } => Value::Int(raw.as_i64().map_err(|_| corrupt(field))?),
            Kind::Object | Kind::Array | Kind::Any | Kind::Strings(_) => {
                Value::Json(serde_json::from_str(text(field, raw)?).map_err(|_| corrupt(field))?)
            }
            Kind::Vector | Kind::Bytes => {
                Value::Bytes(raw.as_blob().map_err(|_| corrupt(field))?.to_vec())
            }
            Kind::Text { .. }
            | Kind::Email
            | Kind::Slug
            | Kind::Url
            | Kind::Currency
            | Kind::Sha256
            | Kind::Enum(_)
            | Kind::Secret => Value::Text(text(field, raw)?.to_owned()),
        },
    })
}

/// Decodes a row whose columns are `fields`, in order.
pub fn decode_row(fields: &[&Field], row: &rusqlite::Row<'_>) -> Result<Record, StoreError> {
    let mut record = Record::with_capacity(fields.len());
    for (i, field) in fields.iter().enumerate() {
        let raw = row
            .get_ref(i)
            .map_err(|e| StoreError::Backend(e.to_string()))?;
        record.set(field.name, decode(field, raw)?);
    }
    Ok(record)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_text_is_fixed_width_and_round_trips() {
        let t = ceneca_domain::validate::parse_time_str("2026-03-04T05:06:07.000008Z").unwrap();
        let s = format_time(t);
        assert_eq!(s, "2026-03-04T05:06:07.000008Z");
        assert_eq!(parse_time(&s), Some(t));
        let t2 = ceneca_domain::validate::parse_time_str("0999-01-01T00:00:00Z").unwrap();
        assert!(format_time(t2) < s, "text order is time order");
    }
}
