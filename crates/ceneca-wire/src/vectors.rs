//! The vector API (`/vectors/{collection}/...`), in the shape of Qdrant's.

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use utoipa::ToSchema;
use uuid::Uuid;

/// `POST /vectors/{collection}/points/batch`: up to 1,000 points; each point is an
/// embedding row without `collection` and `dims` (taken from the URL and the collection).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PointBatch {
    #[schema(value_type = Vec<Object>, min_items = 1, max_items = 1000)]
    #[serde(deserialize_with = "at_most_a_batch")]
    pub points: Vec<PointInput>,
}

/// The most points one batch takes.
pub const MAX_POINTS_PER_BATCH: usize = 1000;

/// The points of a batch, refused as soon as there are more than a batch takes: a body of
/// 64 MB of tiny elements is not read to its end into millions of points first.
fn at_most_a_batch<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<PointInput>, D::Error> {
    struct Visit;
    impl<'de> serde::de::Visitor<'de> for Visit {
        type Value = Vec<PointInput>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            write!(f, "an array of at most {MAX_POINTS_PER_BATCH} points")
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(
            self,
            mut seq: A,
        ) -> Result<Self::Value, A::Error> {
            let mut points = Vec::new();
            while let Some(point) = seq.next_element()? {
                if points.len() == MAX_POINTS_PER_BATCH {
                    return Err(serde::de::Error::custom(format!(
                        "must hold between 1 and {MAX_POINTS_PER_BATCH} points"
                    )));
                }
                points.push(point);
            }
            Ok(points)
        }
    }
    d.deserialize_seq(Visit)
}

/// The points of an upsert, as the service takes them: one point (`/points`) or a batch
/// (`/points/batch`). Each point is an embedding row checked by the model; the two differ
/// in how errors name a field (`vector` or `points[3].vector`).
#[derive(Debug, Clone)]
pub enum Points {
    One(PointInput),
    Batch(Vec<PointInput>),
}

/// One point as sent. Its vector is read straight into `f32`s while the body is parsed: a
/// batch of 100 × 1536 never becomes a tree of 153,600 JSON values. The other fields stay
/// JSON, for the model's validation, which names each one. Nothing here refuses: what is
/// wrong is kept as such, and the service says which point and field.
#[derive(Debug, Clone, PartialEq)]
pub enum PointInput {
    Object {
        vector: VectorInput,
        /// Every field but `vector`.
        fields: serde_json::Map<String, Json>,
    },
    /// Anything but a JSON object.
    NotAnObject,
}

/// A point's `vector` as sent.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum VectorInput {
    #[default]
    Missing,
    /// An array: its numbers as `f32` (beyond the 32-bit range, infinity), anything else
    /// in it as NaN, so the finite-number check refuses it.
    Numbers(Vec<f32>),
    /// Not an array.
    NotAnArray,
}

impl PointInput {
    /// A point from its fields (tests and benchmarks build points as JSON).
    pub fn from_json(value: Json) -> Self {
        serde_json::from_value(value).unwrap_or(Self::NotAnObject)
    }
}

/// Visitor methods that answer `$value` for the JSON kinds listed (`scalars`, `seq`,
/// `map`), reading no more of them than it takes to skip them: arrays and objects are
/// never built.
macro_rules! answer {
    ($de:lifetime, $value:expr; $($kind:ident),+) => { $(answer!(@$kind $de $value);)+ };
    (@scalars $de:lifetime $value:expr) => {
        fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> { Ok($value) }
        fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> { Ok($value) }
        fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> { Ok($value) }
        fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> { Ok($value) }
        fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> { Ok($value) }
        fn visit_unit<E>(self) -> Result<Self::Value, E> { Ok($value) }
    };
    (@seq $de:lifetime $value:expr) => {
        fn visit_seq<A: serde::de::SeqAccess<$de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
            Ok($value)
        }
    };
    (@map $de:lifetime $value:expr) => {
        fn visit_map<A: serde::de::MapAccess<$de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            while map.next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?.is_some() {}
            Ok($value)
        }
    };
}

impl<'de> Deserialize<'de> for PointInput {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = PointInput;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a point")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<PointInput, A::Error> {
                let mut vector = VectorInput::Missing;
                let mut fields = serde_json::Map::new();
                while let Some(key) = map.next_key::<String>()? {
                    if key == "vector" {
                        vector = map.next_value()?;
                    } else {
                        // A key sent twice keeps its last value, as a JSON object does.
                        fields.insert(key, map.next_value::<Shape>()?.into_scalar());
                    }
                }
                Ok(PointInput::Object { vector, fields })
            }
            answer!('de, PointInput::NotAnObject; scalars, seq);
        }
        d.deserialize_any(Visit)
    }
}

/// A JSON value read as far as a point's fields and a vector's numbers need: a scalar as
/// it is, an array or an object skipped without being built, only its kind kept.
enum Shape {
    Scalar(Json),
    Array,
    Object,
}

impl Shape {
    /// A point's field other than its vector: every one is a scalar (ids, names, numbers, a
    /// hash), so an array or object becomes an empty one of its kind, which the model's
    /// validation refuses, naming the field.
    fn into_scalar(self) -> Json {
        match self {
            Shape::Scalar(json) => json,
            Shape::Array => Json::Array(Vec::new()),
            Shape::Object => Json::Object(serde_json::Map::new()),
        }
    }
}

impl<'de> Deserialize<'de> for Shape {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Shape;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a value")
            }
            fn visit_bool<E>(self, v: bool) -> Result<Shape, E> {
                Ok(Shape::Scalar(Json::Bool(v)))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Shape, E> {
                Ok(Shape::Scalar(Json::from(v)))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Shape, E> {
                Ok(Shape::Scalar(Json::from(v)))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Shape, E> {
                Ok(Shape::Scalar(Json::from(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Shape, E> {
                Ok(Shape::Scalar(Json::String(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<Shape, E> {
                Ok(Shape::Scalar(Json::String(v)))
            }
            fn visit_unit<E>(self) -> Result<Shape, E> {
                Ok(Shape::Scalar(Json::Null))
            }
            answer!('de, Shape::Array; seq);
            answer!('de, Shape::Object; map);
        }
        d.deserialize_any(Visit)
    }
}

impl<'de> Deserialize<'de> for VectorInput {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = VectorInput;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an array of numbers")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<VectorInput, A::Error> {
                let mut numbers = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(8192));
                while let Some(Element(x)) = seq.next_element()? {
                    numbers.push(x);
                }
                Ok(VectorInput::Numbers(numbers))
            }
            answer!('de, VectorInput::NotAnArray; scalars, map);
        }
        d.deserialize_any(Visit)
    }
}

/// One element of a vector, read straight into an `f32`: a number as the nearest one
/// (beyond its range, infinity), anything else NaN, so the finite-number check refuses
/// it. No JSON value is built for it: a batch holds hundreds of thousands.
struct Element(f32);

impl<'de> Deserialize<'de> for Element {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Element;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a number")
            }
            fn visit_f64<E>(self, v: f64) -> Result<Element, E> {
                Ok(Element(v as f32))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Element, E> {
                Ok(Element(v as f32))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Element, E> {
                Ok(Element(v as f32))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Element, E> {
                Ok(Element(f32::NAN))
            }
            fn visit_str<E>(self, _: &str) -> Result<Element, E> {
                Ok(Element(f32::NAN))
            }
            fn visit_unit<E>(self) -> Result<Element, E> {
                Ok(Element(f32::NAN))
            }
            answer!('de, Element(f32::NAN); seq, map);
        }
        d.deserialize_any(Visit)
    }
}

#[cfg(test)]
mod point_tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_point_is_read_with_its_vector_as_floats_and_nothing_wrong_is_lost() {
        let p: PointInput = serde_json::from_str(
            r#"{"vector": [1, -2.5, 1e300, "x", null], "model": "m", "model": "n"}"#,
        )
        .unwrap();
        let PointInput::Object { vector, fields } = p else {
            panic!("an object")
        };
        let VectorInput::Numbers(v) = vector else {
            panic!("numbers")
        };
        assert_eq!(&v[..2], &[1.0, -2.5]);
        assert!(v[2].is_infinite() && v[3].is_nan() && v[4].is_nan());
        assert_eq!(fields, *json!({"model": "n"}).as_object().unwrap());
        for (body, expected) in [
            (r#"{"vector": "1,2"}"#, Some(VectorInput::NotAnArray)),
            (r#"{"vector": {"a": [1]}}"#, Some(VectorInput::NotAnArray)),
            (r#"{"model": "m"}"#, Some(VectorInput::Missing)),
            (r#"[1, 2]"#, None),
            (r#""point""#, None),
            ("null", None),
        ] {
            let p: PointInput = serde_json::from_str(body).unwrap();
            match (p, expected) {
                (PointInput::Object { vector, .. }, Some(e)) => assert_eq!(vector, e, "{body}"),
                (PointInput::NotAnObject, None) => {}
                (p, e) => panic!("{body}: {p:?}, expected {e:?}"),
            }
        }
        let nested: PointInput = serde_json::from_str(r#"{"vector": [[1], {"a": 2}, 3]}"#).unwrap();
        let PointInput::Object {
            vector: VectorInput::Numbers(v),
            ..
        } = nested
        else {
            panic!("numbers")
        };
        assert!(v[0].is_nan() && v[1].is_nan() && v[2] == 3.0);
        // Malformed JSON is still an error of the body, not a point.
        assert!(serde_json::from_str::<PointInput>(r#"{"vector": [1,"#).is_err());
    }
}

/// How far a write has gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum WriteState {
    /// Durable in SQL; the index follows from the outbox.
    Acknowledged,
    /// Already applied by the index (with `?wait=true`): a search sees it.
    Completed,
}

/// Whether a write is durable only (`acknowledged`: in SQL, the index will follow) or
/// already applied by the index (`completed`, with `?wait=true`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct WriteStatus {
    pub status: WriteState,
    /// The ids of the points written (upserts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ids: Option<Vec<Uuid>>,
    /// How many points were deleted (clear).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted: Option<u64>,
}

/// `POST /vectors/{collection}/search`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VectorSearchRequest {
    /// The query embedding, with the collection's dimensions.
    pub vector: Vec<f32>,
    /// 1 to 100; 10 when omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = -1.0, maximum = 1.0)]
    pub score_threshold: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace_id: Option<Uuid>,
    /// At most 1,000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_ids: Option<Vec<Uuid>>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct VectorHit {
    pub id: Uuid,
    /// Cosine similarity.
    pub score: f32,
    pub source_id: Uuid,
    pub workspace_id: Uuid,
    /// `message`, `document` or `attachment`.
    pub kind: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct VectorHits {
    pub items: Vec<VectorHit>,
}

/// `POST /vectors/{collection}/clear`: every point of one workspace (its administrators).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClearRequest {
    pub workspace_id: Uuid,
}

/// A collection's settings; the index figures only for system administrators.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CollectionInfo {
    pub name: String,
    pub dimension: u32,
    /// Always `cosine`.
    pub distance: String,
    /// `embedded` or `qdrant`.
    pub engine: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_writes: Option<u64>,
    /// `green` (nothing pending) or `yellow`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub points: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub indexed_points: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segments: Option<u64>,
}
