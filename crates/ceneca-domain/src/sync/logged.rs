//! How a change-log entry keeps the values a change wrote, and how the feed shows them.
//!
//! Values are kept as the API shows them, but for vectors: an embedding's 1,536 numbers
//! written as JSON text take about 30 KB (each `f32` printed with up to 17 digits) and
//! cost more to print, store and clone than the rest of an upsert; kept as the base64 of
//! their little-endian bytes they take 8 KB and are copied, not printed. The feed turns
//! them back into numbers, so clients and nodes never see the difference. An entry
//! written before keeps its array, which is shown as it is: the JSON kind tells the two
//! apart (the API only ever takes a vector as an array).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Map, Value as Json};

use crate::Value;
use crate::output::value_to_json;
use crate::schema::{Entity, Kind};

/// `value` of a field of `kind` as a change-log entry keeps it.
pub fn logged_value(kind: Kind, value: &Value) -> Json {
    match value {
        Value::Bytes(bytes) if kind == Kind::Vector => Json::String(B64.encode(bytes)),
        _ => value_to_json(kind, value),
    }
}

/// A change's logged values of `entity` as the feed shows them: every vector as its
/// numbers. Fails, naming the field, on a kept vector that does not decode (the entry
/// was altered outside Ceneca), rather than show a client something else.
pub fn show_logged_values(entity: &Entity, values: &mut Map<String, Json>) -> Result<(), String> {
    for field in entity.fields.iter().filter(|f| f.kind == Kind::Vector) {
        let Some(Json::String(kept)) = values.get(field.name) else {
            continue;
        };
        let bytes = B64
            .decode(kept)
            .ok()
            .filter(|b| b.len() % 4 == 0)
            .ok_or_else(|| format!("the change log's {} does not decode", field.name))?;
        let numbers = value_to_json(Kind::Vector, &Value::Bytes(bytes));
        values.insert(field.name.to_owned(), numbers);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model;
    use serde_json::json;

    fn vector(numbers: &[f32]) -> Value {
        Value::Bytes(numbers.iter().flat_map(|x| x.to_le_bytes()).collect())
    }

    #[test]
    fn a_vector_is_kept_as_bytes_and_shown_as_its_numbers() {
        let numbers = [0.1f32, -2.5, 3.0e-7, f32::MAX];
        let kept = logged_value(Kind::Vector, &vector(&numbers));
        assert_eq!(
            kept,
            json!(B64.encode(numbers.map(f32::to_le_bytes).concat()))
        );
        let mut values = Map::new();
        values.insert("vector".into(), kept);
        values.insert("model".into(), json!("m"));
        show_logged_values(&model::EMBEDDING_RECORDS, &mut values).unwrap();
        assert_eq!(
            values["vector"],
            value_to_json(Kind::Vector, &vector(&numbers)),
            "the feed shows the numbers the API shows"
        );
        assert_eq!(values["model"], "m");
        // Other kinds are kept as the API shows them.
        assert_eq!(
            logged_value(Kind::Bytes, &Value::Bytes(vec![1, 255])),
            json!("01ff")
        );
    }

    #[test]
    fn an_entry_written_before_keeps_its_array() {
        let mut values = Map::new();
        values.insert("vector".into(), json!([0.5, -1.0]));
        show_logged_values(&model::EMBEDDING_RECORDS, &mut values).unwrap();
        assert_eq!(values["vector"], json!([0.5, -1.0]));
    }

    #[test]
    fn a_kept_vector_that_does_not_decode_is_an_error_naming_it() {
        for bad in ["not base64!", "AAAAAAA="] {
            let mut values = Map::new();
            values.insert("vector".into(), json!(bad));
            let error = show_logged_values(&model::EMBEDDING_RECORDS, &mut values).unwrap_err();
            assert!(error.contains("vector"), "{bad}: {error}");
        }
    }
}
