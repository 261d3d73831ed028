//! List parameters as clients send them, and opaque keyset cursors.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ceneca_domain::output::value_to_json;
use ceneca_domain::schema::{Entity, Kind};
use ceneca_domain::validate::parse_value;
use ceneca_domain::{Record, Value};
use ceneca_store::{Deleted, ListQuery};
use serde_json::{Value as Json, json};
use uuid::Uuid;

use crate::error::{Result, ServiceError};

pub use ceneca_wire::ListParams;
pub use ceneca_wire::params::{DEFAULT_LIMIT, MAX_LIMIT};

/// A page of results.
#[derive(Debug, Clone)]
pub struct Page {
    pub items: Vec<Json>,
    pub next_cursor: Option<String>,
}

impl Page {
    pub fn to_json(&self) -> Json {
        json!({ "items": self.items, "next_cursor": self.next_cursor })
    }
}

/// Builds the store query for `entity` from client parameters (the scope filter is set by
/// the caller of this function).
pub fn build_query(
    entity: &'static Entity,
    params: &ListParams,
    query: &mut ListQuery,
) -> Result<()> {
    query.limit = params.limit;
    let (sort, descending) = match params.sort.as_deref() {
        None => (entity.sort, entity.sort_desc),
        Some(text) => {
            let (name, desc) = match text.strip_prefix('-') {
                Some(name) => (name, true),
                None => (text, false),
            };
            let field = entity
                .columns()
                .find(|f| f.name == name && (f.sort || f.name == "id"))
                .ok_or_else(|| {
                    let allowed: Vec<_> = entity
                        .columns()
                        .filter(|f| f.sort)
                        .map(|f| f.name)
                        .collect();
                    ServiceError::bad_request(
                        "sort",
                        format!("cannot sort by '{name}'; sortable: {}", allowed.join(", ")),
                    )
                })?;
            (field.name, desc)
        }
    };
    query.sort = sort;
    query.descending = descending;
    query.deleted = match params.deleted {
        None | Some(Deleted::Exclude) => Deleted::Exclude,
        Some(_) if !entity.soft_delete => {
            return Err(ServiceError::bad_request(
                "deleted",
                format!("{}s are not soft-deleted", entity.name),
            ));
        }
        Some(deleted) => deleted,
    };
    query.created_after = params.created_after;
    query.created_before = params.created_before;
    for (name, text) in &params.filters {
        let field = entity
            .columns()
            .find(|f| f.name == name && f.filter)
            .ok_or_else(|| {
                let allowed: Vec<_> = entity
                    .columns()
                    .filter(|f| f.filter)
                    .map(|f| f.name)
                    .collect();
                ServiceError::bad_request(
                    name,
                    format!("unknown filter '{name}'; filters: {}", allowed.join(", ")),
                )
            })?;
        let value = if text == "null" && field.nullable {
            Value::Null
        } else {
            let json = match field.kind {
                Kind::Bool => match text.as_str() {
                    "true" => Json::Bool(true),
                    "false" => Json::Bool(false),
                    _ => Json::String(text.clone()),
                },
                Kind::Int { .. } => text
                    .parse::<i64>()
                    .map(Json::from)
                    .unwrap_or_else(|_| Json::String(text.clone())),
                _ => Json::String(text.clone()),
            };
            let mut lenient = *field;
            lenient.input = ceneca_domain::schema::Input::Optional;
            parse_value(&lenient, &json)
                .map_err(|reason| ServiceError::bad_request(name, format!("{name} {reason}")))?
        };
        query.equals.push((field.name, value));
    }
    if let Some(cursor) = &params.cursor {
        query.after = Some(decode_cursor(entity, cursor, sort, descending)?);
    }
    Ok(())
}

/// The cursor after `last` in this order: opaque to clients, checked on the way back.
pub fn encode_cursor(
    entity: &Entity,
    last: &Record,
    sort: &str,
    descending: bool,
) -> Option<String> {
    let field = entity.field(sort)?;
    let value = value_to_json(field.kind, last.get(sort)?);
    let id = last.id()?;
    let payload = json!({ "s": sort, "d": descending, "v": value, "i": id.to_string() });
    Some(URL_SAFE_NO_PAD.encode(payload.to_string()))
}

fn decode_cursor(
    entity: &Entity,
    cursor: &str,
    sort: &str,
    descending: bool,
) -> Result<(Value, Uuid)> {
    let bad = || {
        ServiceError::bad_request(
            "cursor",
            "cursor is not valid for this list; start again without it",
        )
    };
    let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| bad())?;
    let payload: Json = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    if payload["s"] != sort || payload["d"] != descending {
        return Err(ServiceError::bad_request(
            "cursor",
            "cursor belongs to a different sort order",
        ));
    }
    let id = payload["i"]
        .as_str()
        .and_then(|s| Uuid::parse_str(s).ok())
        .ok_or_else(bad)?;
    let field = entity.field(sort).ok_or_else(bad)?;
    let mut lenient = *field;
    lenient.input = ceneca_domain::schema::Input::Optional;
    lenient.nullable = false;
    let value = parse_value(&lenient, &payload["v"]).map_err(|_| bad())?;
    Ok((value, id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ceneca_domain::model;
    use ceneca_domain::scope::ScopeFilter;

    fn query() -> ListQuery {
        ListQuery::new(ScopeFilter::All, "created_at", false, 50)
    }

    #[test]
    fn filters_sorts_and_limits_are_checked() {
        let p = ListParams::from_pairs([
            ("role".into(), "user".into()),
            ("sort".into(), "-created_at".into()),
        ])
        .unwrap();
        let mut q = query();
        build_query(&model::MESSAGES, &p, &mut q).unwrap();
        assert_eq!(q.equals, vec![("role", Value::Text("user".into()))]);
        assert!(q.descending);

        // Malformed values are refused by the wire types; what only the entity can tell
        // (sortable and filterable fields, their values, soft delete) by the query builder.
        for (k, v) in [("sort", "content"), ("content", "x"), ("role", "robot")] {
            let p = ListParams::from_pairs([(k.to_owned(), v.to_owned())]).unwrap();
            let err = build_query(&model::MESSAGES, &p, &mut query()).unwrap_err();
            assert!(matches!(err, ServiceError::BadRequest { .. }), "{k}={v}");
        }
        let p = ListParams::from_pairs([("deleted".to_owned(), "only".to_owned())]).unwrap();
        let err = build_query(&model::AUDIT_LOG, &p, &mut query()).unwrap_err();
        assert!(matches!(err, ServiceError::BadRequest { .. }));
    }

    #[test]
    fn cursors_round_trip_and_reject_tampering() {
        let mut r = Record::new();
        let now = ceneca_domain::clock::now();
        r.set("id", Value::Id(Uuid::from_u128(5)));
        r.set("created_at", Value::Time(now));
        let c = encode_cursor(&model::MESSAGES, &r, "created_at", false).unwrap();
        let (v, id) = decode_cursor(&model::MESSAGES, &c, "created_at", false).unwrap();
        assert_eq!((v, id), (Value::Time(now), Uuid::from_u128(5)));
        assert!(decode_cursor(&model::MESSAGES, &c, "created_at", true).is_err());
        assert!(decode_cursor(&model::MESSAGES, "!!", "created_at", false).is_err());
        assert!(decode_cursor(&model::MESSAGES, "e30", "created_at", false).is_err());
    }
}
