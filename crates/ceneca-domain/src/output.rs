//! Records as JSON for clients: hidden columns dropped, vectors as numbers, times as RFC 3339.

use serde_json::{Map, Value as Json};
use time::format_description::well_known::Rfc3339;

use crate::schema::{Entity, Kind, Output};
use crate::value::{Record, Value};

/// How much of a row a response shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    /// One object (get, create, update): every visible field.
    Detail,
    /// An item of a list: large fields marked `detail` are left out.
    Summary,
}

pub fn to_json(entity: &Entity, record: &Record, view: View) -> Json {
    let mut out = Map::with_capacity(record.len());
    for field in entity.columns() {
        let show = match field.output {
            Output::Always => true,
            Output::Detail => view == View::Detail,
            Output::Never => false,
        };
        if !show {
            continue;
        }
        if let Some(value) = record.get(field.name) {
            out.insert(field.name.to_owned(), value_to_json(field.kind, value));
        }
    }
    Json::Object(out)
}

pub fn value_to_json(kind: Kind, value: &Value) -> Json {
    match value {
        Value::Null => Json::Null,
        Value::Bool(b) => Json::Bool(*b),
        Value::Int(i) => Json::from(*i),
        Value::Text(s) => Json::String(s.clone()),
        Value::Id(id) => Json::String(id.to_string()),
        Value::IdSet(ids) => Json::Array(ids.iter().map(|i| Json::String(i.to_string())).collect()),
        Value::Time(t) => Json::String(format_time(*t)),
        Value::Json(j) => j.clone(),
        Value::Bytes(b) if kind == Kind::Vector => Json::Array(
            b.chunks_exact(4)
                .map(|c| Json::from(f32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f64))
                .collect(),
        ),
        Value::Bytes(b) => Json::String(hex(b)),
    }
}

pub fn format_time(t: time::OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model;

    #[test]
    fn hidden_fields_never_leave_and_detail_fields_only_singly() {
        let mut r = Record::new();
        r.set("id", Value::Id(uuid::Uuid::nil()));
        r.set("password_hash", Value::Text("secret".into()));
        r.set("email", Value::Text("a@b.c".into()));
        let j = to_json(&model::USERS, &r, View::Detail);
        assert!(j.get("password_hash").is_none());
        assert_eq!(j["email"], "a@b.c");

        let mut d = Record::new();
        d.set("body", Value::Text("long".into()));
        assert!(
            to_json(&model::DOCUMENTS, &d, View::Summary)
                .get("body")
                .is_none()
        );
        assert_eq!(to_json(&model::DOCUMENTS, &d, View::Detail)["body"], "long");
    }

    #[test]
    fn vectors_round_trip_as_numbers() {
        let mut bytes = Vec::new();
        for x in [0.5f32, -2.0] {
            bytes.extend_from_slice(&x.to_le_bytes());
        }
        assert_eq!(
            value_to_json(Kind::Vector, &Value::Bytes(bytes)),
            serde_json::json!([0.5, -2.0])
        );
    }
}
