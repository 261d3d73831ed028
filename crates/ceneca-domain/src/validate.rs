//! Typed validation at the edge: client JSON becomes a [`Record`] of typed [`Value`]s, or a
//! [`ValidationError`] naming each bad field and why.

use serde_json::{Map, Value as Json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::clock::truncate_to_micros;
use crate::error::ValidationError;
use crate::schema::{Entity, Field, Input, Kind};
use crate::value::{Record, Value};

/// Whether the input creates a row or patches one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Create,
    Patch,
}

/// The largest vector accepted (dimensions).
pub const MAX_VECTOR_DIMS: usize = 65_536;

/// Validates a JSON object against `entity` and converts it into a record of the fields it
/// sets. Defaults are not filled in here (see [`fill_defaults`]).
pub fn parse_input(
    entity: &Entity,
    body: &Json,
    mode: Mode,
    system_admin: bool,
) -> Result<Record, ValidationError> {
    let Some(object) = body.as_object() else {
        return Err(ValidationError::field("body", "expected a JSON object"));
    };
    parse_object(entity, object, mode, system_admin, &[])
}

/// Like [`parse_input`], for an object; fields in `supplied` count as present for the
/// required check (a parent id taken from the URL).
pub fn parse_object(
    entity: &Entity,
    object: &Map<String, Json>,
    mode: Mode,
    system_admin: bool,
    supplied: &[&str],
) -> Result<Record, ValidationError> {
    let mut errors = ValidationError::new();
    let mut record = Record::with_capacity(object.len());
    for (key, json) in object {
        let Some(field) = entity.fields.iter().find(|f| f.name == key) else {
            let reason = if entity.has_column(key) {
                "is set by the server"
            } else {
                "is not a field of this resource"
            };
            errors.add(key.as_str(), reason);
            continue;
        };
        if field.input == Input::Server {
            errors.add(key.as_str(), "is set by the server");
            continue;
        }
        if mode == Mode::Patch && !field.patch {
            errors.add(key.as_str(), "cannot be changed after creation");
            continue;
        }
        if field.admin_only && !system_admin {
            errors.add(
                key.as_str(),
                "only system administrators may set this field",
            );
            continue;
        }
        match parse_value(field, json) {
            Ok(value) => record.set(field.name, value),
            Err(reason) => errors.add(key.as_str(), reason),
        }
    }
    if mode == Mode::Create {
        for field in entity.fields.iter().filter(|f| f.input == Input::Required) {
            if !object.contains_key(field.name) && !supplied.contains(&field.name) {
                errors.add(field.name, "is required");
            }
        }
    }
    errors.into_result().map(|()| record)
}

/// Converts one JSON value for `field`, or says why it does not fit.
pub fn parse_value(field: &Field, json: &Json) -> Result<Value, String> {
    if json.is_null() {
        return if field.nullable && field.input != Input::Required {
            Ok(Value::Null)
        } else {
            Err("must not be null".into())
        };
    }
    match field.kind {
        Kind::Uuid | Kind::Ref(_) => parse_uuid(json).map(Value::Id),
        Kind::Text { max } => text(json, max).map(|s| Value::Text(s.to_owned())),
        Kind::Secret => {
            let s = text(json, 4096)?;
            if s.is_empty() {
                return Err("must not be empty".into());
            }
            Ok(Value::Text(s.to_owned()))
        }
        Kind::Email => email(json).map(Value::Text),
        Kind::Slug => slug(json).map(|s| Value::Text(s.to_owned())),
        Kind::Url => url(json).map(|s| Value::Text(s.to_owned())),
        Kind::Currency => {
            let s = text(json, 3)?;
            if s.len() == 3 && s.bytes().all(|b| b.is_ascii_uppercase()) {
                Ok(Value::Text(s.to_owned()))
            } else {
                Err("must be a three-letter upper-case currency code such as USD".into())
            }
        }
        Kind::Sha256 => {
            let s = text(json, 64)?;
            if s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
                Ok(Value::Text(s.to_ascii_lowercase()))
            } else {
                Err("must be a SHA-256 digest: 64 hexadecimal characters".into())
            }
        }
        Kind::Enum(allowed) => {
            let s = json.as_str().ok_or_else(|| expected_one_of(allowed))?;
            if allowed.contains(&s) {
                Ok(Value::Text(s.to_owned()))
            } else {
                Err(expected_one_of(allowed))
            }
        }
        Kind::Int { min, max } => {
            let n = json.as_i64().ok_or("must be an integer")?;
            if n < min || n > max {
                Err(format!("must be between {min} and {max}"))
            } else {
                Ok(Value::Int(n))
            }
        }
        Kind::Bool => json
            .as_bool()
            .map(Value::Bool)
            .ok_or_else(|| "must be true or false".into()),
        Kind::Object => {
            if !json.is_object() {
                return Err("must be a JSON object".into());
            }
            storable_json(json).map(Value::Json)
        }
        Kind::Array => {
            if !json.is_array() {
                return Err("must be a JSON array".into());
            }
            storable_json(json).map(Value::Json)
        }
        Kind::Any => storable_json(json).map(Value::Json),
        Kind::Strings(allowed) => {
            let items = json.as_array().ok_or("must be an array of strings")?;
            for item in items {
                let s = text(item, 200).map_err(|_| {
                    "must be an array of strings of at most 200 characters".to_owned()
                })?;
                if let Some(allowed) = allowed
                    && !allowed.contains(&s)
                {
                    return Err(format!(
                        "'{s}' is not allowed; {}",
                        expected_one_of(allowed)
                    ));
                }
            }
            Ok(Value::Json(json.clone()))
        }
        Kind::Time => parse_time(json).map(Value::Time),
        Kind::Vector => vector(json).map(Value::Bytes),
        Kind::Bytes => Err("is set by the server".into()),
    }
}

fn expected_one_of(allowed: &[&str]) -> String {
    format!("must be one of: {}", allowed.join(", "))
}

pub fn parse_uuid(json: &Json) -> Result<uuid::Uuid, String> {
    json.as_str()
        .and_then(|s| uuid::Uuid::parse_str(s).ok())
        .ok_or_else(|| "must be a UUID".into())
}

pub fn parse_time(json: &Json) -> Result<OffsetDateTime, String> {
    let s = json.as_str().ok_or("must be an RFC 3339 timestamp")?;
    parse_time_str(s)
}

/// The earliest and latest times Ceneca stores, in UTC: both engines and every output
/// format hold them, so nothing stored can fail to read back or print.
pub const TIME_RANGE: &str = "must be between 0001-01-01T00:00:00Z and 9999-12-31T23:59:59.999999Z";

/// Parses an RFC 3339 time and converts it to UTC.
///
/// The conversion is checked: a time such as `9999-12-31T23:59:59-23:59` is valid RFC 3339
/// but lies in the year 10000 in UTC, which `time` cannot represent (`to_offset` would
/// panic), so it is refused like any other time outside the range, never a 500.
pub fn parse_time_str(s: &str) -> Result<OffsetDateTime, String> {
    let t = OffsetDateTime::parse(s, &Rfc3339)
        .map_err(|_| "must be an RFC 3339 timestamp such as 2026-01-31T12:00:00Z".to_owned())?
        .checked_to_offset(time::UtcOffset::UTC)
        .ok_or_else(|| TIME_RANGE.to_owned())?;
    if !(1..=9999).contains(&t.year()) {
        return Err(TIME_RANGE.into());
    }
    Ok(truncate_to_micros(t))
}

fn text(json: &Json, max: usize) -> Result<&str, String> {
    let s = json.as_str().ok_or("must be a string")?;
    if s.contains('\0') {
        return Err("must not contain NUL characters".into());
    }
    if s.chars().count() > max {
        return Err(format!("must be at most {max} characters"));
    }
    Ok(s)
}

fn email(json: &Json) -> Result<String, String> {
    let s = text(json, 254)?.trim();
    let valid = match s.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.is_empty()
                && !domain.contains('@')
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !s.chars().any(|c| c.is_whitespace() || c.is_control())
        }
        None => false,
    };
    if valid {
        // Stored lower-cased: uniqueness and log-in are case-insensitive on both engines.
        Ok(s.to_lowercase())
    } else {
        Err("must be an e-mail address such as ada@example.com".into())
    }
}

fn slug(json: &Json) -> Result<&str, String> {
    let s = text(json, 64)?;
    let ok = s.len() >= 2
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
        && !s.contains("--");
    if ok {
        Ok(s)
    } else {
        Err("must be 2-64 lower-case letters, digits and single dashes, such as acme-labs".into())
    }
}

fn url(json: &Json) -> Result<&str, String> {
    let s = text(json, 2048)?;
    if !(s.starts_with("https://") || s.starts_with("http://")) {
        return Err("must be an http:// or https:// URL".into());
    }
    // Read as clients read it (WHATWG and RFC 3986), so the host the edition's policy
    // judges is the one a connection would reach.
    let hosts = crate::network::url_hosts(s)?;
    if hosts.is_empty() || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("must be an http:// or https:// URL with a host".into());
    }
    Ok(s)
}

fn vector(json: &Json) -> Result<Vec<u8>, String> {
    let items = json.as_array().ok_or("must be an array of numbers")?;
    if items.is_empty() || items.len() > MAX_VECTOR_DIMS {
        return Err(format!("must have between 1 and {MAX_VECTOR_DIMS} numbers"));
    }
    let mut bytes = Vec::with_capacity(items.len() * 4);
    for item in items {
        let x = item.as_f64().ok_or("must be an array of numbers")? as f32;
        if !x.is_finite() {
            return Err("must contain finite numbers that fit a 32-bit float".into());
        }
        bytes.extend_from_slice(&x.to_le_bytes());
    }
    Ok(bytes)
}

/// The largest magnitude a number in stored JSON may have. PostgreSQL keeps JSON numbers
/// as exact decimals and writes them back in full (`-1.79e308` comes back as 309 digits),
/// which JSON parsers need not read back as the same finite `f64`: past this bound a value
/// could be stored and then fail to load. Both engines refuse it alike.
pub const MAX_JSON_NUMBER: f64 = 1e300;

/// Rejects JSON that PostgreSQL's `jsonb` cannot store (NUL characters) or give back
/// intact (numbers past [`MAX_JSON_NUMBER`]), so both engines accept exactly the same
/// documents and every stored document loads again.
fn storable_json(json: &Json) -> Result<Json, String> {
    fn check(j: &Json) -> Result<(), String> {
        match j {
            Json::String(s) if s.contains('\0') => Err("must not contain NUL characters".into()),
            Json::Number(n) if n.as_f64().is_some_and(|x| x.abs() >= MAX_JSON_NUMBER) => Err(
                format!("numbers must be smaller than {MAX_JSON_NUMBER:e} in magnitude"),
            ),
            Json::Array(a) => a.iter().try_for_each(check),
            Json::Object(o) => o.iter().try_for_each(|(k, v)| {
                if k.contains('\0') {
                    Err("must not contain NUL characters".into())
                } else {
                    check(v)
                }
            }),
            _ => Ok(()),
        }
    }
    check(json)?;
    let mut json = json.clone();
    as_both_engines_give_back(&mut json);
    Ok(json)
}

/// Spells numbers as PostgreSQL's exact decimals give them back, so a value reads back as
/// it was measured for the quotas (and both engines store the same): `-0.0` is `0.0` (a
/// decimal has no negative zero), and a whole number from 1e16 that an integer holds is
/// that integer (`1e16` comes back as its 17 digits).
fn as_both_engines_give_back(j: &mut Json) {
    match j {
        Json::Number(n) if n.is_f64() => {
            let x = n.as_f64().unwrap_or_default();
            if x == 0.0 && x.is_sign_negative() {
                *n = serde_json::Number::from_f64(0.0).unwrap_or_else(|| 0.into());
            } else if x.fract() == 0.0 && x.abs() >= 1e16 {
                // `as` saturates: only a value inside the range is exact.
                if x >= i64::MIN as f64 && x < i64::MAX as f64 {
                    *n = (x as i64).into();
                } else if x > 0.0 && x < u64::MAX as f64 {
                    *n = (x as u64).into();
                }
            }
        }
        Json::Array(a) => a.iter_mut().for_each(as_both_engines_give_back),
        Json::Object(o) => o.values_mut().for_each(as_both_engines_give_back),
        _ => {}
    }
}

/// Fills every stored column the record lacks with its declared default, so inserts always
/// bind the full column list (one prepared statement per entity).
pub fn fill_defaults(entity: &Entity, record: &mut Record, now: OffsetDateTime) {
    use crate::schema::Default as D;
    for field in entity.columns() {
        if record.contains(field.name) {
            continue;
        }
        let value = match field.default {
            D::Null => Value::Null,
            D::Bool(b) => Value::Bool(b),
            D::Int(i) => Value::Int(i),
            D::Text(s) => Value::Text(s.to_owned()),
            D::EmptyObject => Value::Json(Json::Object(Map::new())),
            D::EmptyArray => Value::Json(Json::Array(Vec::new())),
            D::Now => Value::Time(now),
            D::Generated => continue,
        };
        record.set(field.name, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model;
    use serde_json::json;

    #[test]
    fn create_requires_required_fields_and_rejects_unknown_ones() {
        let err =
            parse_input(&model::THREADS, &json!({"titel": "x"}), Mode::Create, false).unwrap_err();
        assert_eq!(err.fields["workspace_id"], "is required");
        assert_eq!(err.fields["titel"], "is not a field of this resource");
    }

    #[test]
    fn server_fields_and_frozen_fields_are_refused() {
        let err = parse_input(
            &model::THREADS,
            &json!({"id": "x", "message_count": 3}),
            Mode::Patch,
            false,
        )
        .unwrap_err();
        assert_eq!(err.fields["id"], "is set by the server");
        assert_eq!(err.fields["message_count"], "is set by the server");
        let err = parse_input(
            &model::MESSAGES,
            &json!({"role": "user"}),
            Mode::Patch,
            false,
        )
        .unwrap_err();
        assert_eq!(err.fields["role"], "cannot be changed after creation");
    }

    #[test]
    fn values_are_typed() {
        let ws = uuid::Uuid::now_v7();
        let r = parse_input(
            &model::THREADS,
            &json!({"workspace_id": ws.to_string(), "title": "t", "pinned": true}),
            Mode::Create,
            false,
        )
        .unwrap();
        assert_eq!(r.get("workspace_id"), Some(&Value::Id(ws)));
        assert_eq!(r.get("pinned"), Some(&Value::Bool(true)));
        let err = parse_input(
            &model::THREADS,
            &json!({"workspace_id": 5, "pinned": "yes"}),
            Mode::Create,
            false,
        )
        .unwrap_err();
        assert_eq!(err.fields["workspace_id"], "must be a UUID");
        assert_eq!(err.fields["pinned"], "must be true or false");
    }

    #[test]
    fn emails_slugs_urls_and_text() {
        let f = model::USERS.field("email").unwrap();
        assert_eq!(
            parse_value(f, &json!(" Ada@Example.COM ")),
            Ok(Value::Text("ada@example.com".into()))
        );
        assert!(parse_value(f, &json!("ada@localhost")).is_err());
        assert!(parse_value(f, &json!("a b@example.com")).is_err());
        let f = model::ORGANIZATIONS.field("slug").unwrap();
        assert!(parse_value(f, &json!("acme-labs")).is_ok());
        assert!(parse_value(f, &json!("Acme")).is_err());
        assert!(parse_value(f, &json!("-a")).is_err());
        let f = model::AI_PROVIDER_CONFIGS.field("base_url").unwrap();
        assert!(parse_value(f, &json!("https://llm.internal:8443/v1")).is_ok());
        assert!(parse_value(f, &json!("ftp://x")).is_err());
        assert!(parse_value(f, &json!("https:///path")).is_err());
        let f = model::MESSAGES.field("content").unwrap();
        assert_eq!(
            parse_value(f, &json!("a\u{0}b")),
            Err("must not contain NUL characters".into())
        );
    }

    #[test]
    fn urls_need_a_host_clients_can_read() {
        let f = model::AI_PROVIDER_CONFIGS.field("base_url").unwrap();
        assert!(parse_value(f, &json!("https://llm.internal/v1")).is_ok());
        assert!(parse_value(f, &json!("http://[::1]:8080/")).is_ok());
        for bad in [
            "ftp://x.internal",
            "https://",
            "https://a b",
            "https://[::1/",
            "http://x:99999/",
        ] {
            assert!(parse_value(f, &json!(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn vectors_must_be_finite_numbers() {
        let f = model::EMBEDDING_RECORDS.field("vector").unwrap();
        assert!(matches!(parse_value(f, &json!([0.5, -1.0])), Ok(Value::Bytes(b)) if b.len() == 8));
        assert!(parse_value(f, &json!([])).is_err());
        assert!(parse_value(f, &json!([1e300])).is_err());
        assert!(parse_value(f, &json!(["1"])).is_err());
    }

    #[test]
    fn json_numbers_too_large_to_load_again_are_refused() {
        let f = crate::schema::field("metadata", Kind::Object);
        for bad in [
            serde_json::json!({"a": -1.7976931348623157e308}),
            serde_json::json!({"a": [1e300]}),
            serde_json::json!({"a": {"b": 5e307}}),
        ] {
            assert!(parse_value(&f, &bad).is_err(), "{bad}");
        }
        for good in [
            serde_json::json!({"a": 9.99e299, "b": -1.330097872626748e-76, "c": u64::MAX}),
            serde_json::json!({"a": i64::MIN}),
        ] {
            assert!(parse_value(&f, &good).is_ok(), "{good}");
        }
    }

    #[test]
    fn a_negative_zero_in_json_is_stored_as_zero() {
        let value: Json =
            serde_json::from_str(r#"{"a": [-0.0, 1.5, {"b": -0.0}], "c": -1}"#).unwrap();
        let stored = storable_json(&value).unwrap();
        assert_eq!(stored.to_string(), r#"{"a":[0.0,1.5,{"b":0.0}],"c":-1}"#);
    }

    #[test]
    fn whole_numbers_from_1e16_are_stored_as_the_integers_postgresql_gives_back() {
        let value: Json = serde_json::from_str(
            r#"[1e16, -1e16, 1.5e17, 1.8e19, 1e20, 1e15, 1.0, 0.1, 12345678901234567890]"#,
        )
        .unwrap();
        let stored = storable_json(&value).unwrap();
        assert_eq!(
            stored.to_string(),
            "[10000000000000000,-10000000000000000,150000000000000000,18000000000000000000,1e+20,1000000000000000.0,1.0,0.1,12345678901234567890]"
        );
    }

    #[test]
    fn json_with_nul_is_refused_everywhere() {
        let f = model::MESSAGES.field("metadata").unwrap();
        assert!(parse_value(f, &json!({"k": ["a\u{0}"]})).is_err());
        assert!(parse_value(f, &json!([1])).is_err());
    }

    #[test]
    fn times_are_utc_microseconds() {
        let t = parse_time_str("2026-01-31T12:00:00.123456789+02:00").unwrap();
        assert_eq!(t.hour(), 10);
        assert_eq!(t.nanosecond(), 123_456_000);
        assert!(parse_time_str("yesterday").is_err());
    }

    #[test]
    fn times_outside_the_range_are_refused_not_panics() {
        for bad in [
            "9999-12-31T23:59:59-23:59",
            "9999-12-31T23:59:59.999999999-00:01",
            "9999-12-31T00:01:00-23:59",
            "0000-01-01T00:00:00Z",
            "0001-01-01T00:00:00+00:01",
            "0001-01-01T00:00:00+23:59",
            "-0001-01-01T00:00:00Z",
            "+10000-01-01T00:00:00Z",
            "10000-01-01T00:00:00Z",
        ] {
            let err = parse_time_str(bad).unwrap_err();
            assert!(!err.is_empty(), "{bad}");
        }
        for good in [
            "0001-01-01T00:00:00Z",
            "0001-01-01T00:00:00-23:59",
            "9999-12-31T23:59:59.999999Z",
            "9999-12-31T23:59:59.999999999Z",
            "9999-12-31T23:59:59+23:59",
            "9999-12-31T00:00:00-23:59",
            "0000-12-31T23:59:59-23:59",
        ] {
            let t = parse_time_str(good).unwrap_or_else(|e| panic!("{good}: {e}"));
            assert!((1..=9999).contains(&t.year()), "{good}");
            assert!(
                !crate::output::format_time(t).is_empty(),
                "{good} prints back"
            );
        }
    }

    #[test]
    fn defaults_fill_every_column() {
        let mut r = Record::new();
        let now = crate::clock::now();
        fill_defaults(&model::THREADS, &mut r, now);
        assert_eq!(r.get("pinned"), Some(&Value::Bool(false)));
        assert_eq!(r.get("last_message_at"), Some(&Value::Time(now)));
        assert_eq!(r.get("project_id"), Some(&Value::Null));
        assert_eq!(r.len(), model::THREADS.columns().count());
        let mut e = Record::new();
        fill_defaults(&model::SYNC_EVENTS, &mut e, now);
        assert!(
            !e.contains("seq"),
            "identity columns are left to the database"
        );
    }
}
