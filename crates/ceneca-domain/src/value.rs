//! Column values as they cross the boundary between the service and the store.
//!
//! JSON from clients is validated into [`Value`]s by [`crate::validate`], so the store binds
//! typed values and never parses client text itself.

use time::OffsetDateTime;
use uuid::Uuid;

/// One typed column value. Each SQL engine maps these to its own column types.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Text(String),
    Id(Uuid),
    /// A set of ids, bound as one parameter (used for tenant scope filters).
    IdSet(Vec<Uuid>),
    Time(OffsetDateTime),
    Json(serde_json::Value),
    Bytes(Vec<u8>),
}

impl Value {
    pub fn as_id(&self) -> Option<Uuid> {
        match self {
            Value::Id(id) => Some(*id),
            _ => None,
        }
    }
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Text(s) => Some(s),
            _ => None,
        }
    }
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }
    pub fn as_time(&self) -> Option<OffsetDateTime> {
        match self {
            Value::Time(t) => Some(*t),
            _ => None,
        }
    }
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }
}

/// A row: column names (always the static names from the entity model) and values.
///
/// A `Vec` rather than a map: rows have ~20 columns, and insertion order is the column
/// order the SQL was generated with.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Record {
    values: Vec<(&'static str, Value)>,
}

impl Record {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn with_capacity(n: usize) -> Self {
        Self {
            values: Vec::with_capacity(n),
        }
    }
    /// Sets a column, replacing an earlier value of the same column.
    pub fn set(&mut self, name: &'static str, value: Value) {
        match self.values.iter_mut().find(|(n, _)| *n == name) {
            Some(slot) => slot.1 = value,
            None => self.values.push((name, value)),
        }
    }
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.values.iter().find(|(n, _)| *n == name).map(|(_, v)| v)
    }
    pub fn remove(&mut self, name: &str) -> Option<Value> {
        let at = self.values.iter().position(|(n, _)| *n == name)?;
        Some(self.values.remove(at).1)
    }
    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }
    pub fn id(&self) -> Option<Uuid> {
        self.get("id").and_then(Value::as_id)
    }
    /// The id in a column, if the column holds one.
    pub fn id_of(&self, name: &str) -> Option<Uuid> {
        self.get(name).and_then(Value::as_id)
    }
    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.values.iter().map(|(n, _)| *n)
    }
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &Value)> {
        self.values.iter().map(|(n, v)| (*n, v))
    }
    pub fn len(&self) -> usize {
        self.values.len()
    }
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
}
