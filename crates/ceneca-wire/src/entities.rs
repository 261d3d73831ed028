//! The OpenAPI schemas of the entities, generated from their declarations in
//! `ceneca_domain::model` with utoipa's builder: for each entity the row as answered
//! (`Thread`), the body that creates one (`ThreadCreate`), the body that changes one
//! (`ThreadUpdate`) and a page of rows (`ThreadPage`). The model stays the one declaration:
//! a field added there appears here, typed as validation types it.

use ceneca_domain::Entity;
use ceneca_domain::schema::{Field, Input, Kind, Output};
use utoipa::openapi::schema::{
    AdditionalProperties, ArrayBuilder, KnownFormat, ObjectBuilder, Schema, SchemaFormat,
    SchemaType, Type,
};
use utoipa::openapi::{Ref, RefOr};

/// Text the engines can store: PostgreSQL refuses NUL characters, so validation does too.
const NO_NUL: &str = "^[^\\u0000]*$";

/// `thread` → `Thread`, `organization_member` → `OrganizationMember`.
pub fn schema_name(entity: &Entity) -> String {
    entity
        .name
        .split(['_', ' '])
        .map(|w| {
            let mut c = w.chars();
            match c.next() {
                Some(first) => first.to_uppercase().chain(c).collect::<String>(),
                None => String::new(),
            }
        })
        .collect()
}

/// A reference to one of this module's schemas (`suffix`: "", "Create", "Update", "Page").
pub fn schema_ref(entity: &Entity, suffix: &str) -> RefOr<Schema> {
    RefOr::Ref(Ref::from_schema_name(format!(
        "{}{suffix}",
        schema_name(entity)
    )))
}

/// Every schema of `entity`, named, for the document's components. `supplied` lists fields
/// the URL provides (a message's `thread_id` under `/threads/{parent}/messages`), which are
/// then not required in the create body.
pub fn schemas(entity: &Entity) -> Vec<(String, RefOr<Schema>)> {
    let name = schema_name(entity);
    let mut out = vec![
        (name.clone(), output(entity)),
        (format!("{name}Page"), page(schema_ref(entity, ""))),
    ];
    if entity.api.create {
        out.push((format!("{name}Create"), create(entity, &[])));
    }
    if entity.api.update {
        out.push((format!("{name}Update"), update(entity)));
    }
    out
}

/// A row as the API answers it. Fields marked `detail` appear only when one row is
/// answered, so they are not required.
pub fn output(entity: &Entity) -> RefOr<Schema> {
    let mut object = ObjectBuilder::new()
        .schema_type(Type::Object)
        .description(Some(format!("A {}.", entity.name.replace('_', " "))));
    for field in entity.columns() {
        if field.output == Output::Never {
            continue;
        }
        object = object.property(field.name, value_schema(field, false));
        if field.output == Output::Always {
            object = object.required(field.name);
        }
    }
    object.into()
}

/// The body that creates a row: every field a client may set; unknown fields are refused.
pub fn create(entity: &Entity, supplied: &[&str]) -> RefOr<Schema> {
    let mut object = ObjectBuilder::new()
        .schema_type(Type::Object)
        .additional_properties(Some(AdditionalProperties::<Schema>::FreeForm(false)));
    for field in entity.fields.iter().filter(|f| f.input != Input::Server) {
        object = object.property(field.name, value_schema(field, true));
        if field.input == Input::Required && !supplied.contains(&field.name) {
            object = object.required(field.name);
        }
    }
    object.into()
}

/// The body of `PATCH`: the fields that may change; unknown fields are refused.
pub fn update(entity: &Entity) -> RefOr<Schema> {
    let mut object = ObjectBuilder::new()
        .schema_type(Type::Object)
        .additional_properties(Some(AdditionalProperties::<Schema>::FreeForm(false)));
    for field in entity
        .fields
        .iter()
        .filter(|f| f.patch && f.input != Input::Server)
    {
        object = object.property(field.name, value_schema(field, true));
    }
    object.into()
}

/// `{items, next_cursor}`.
pub fn page(item: RefOr<Schema>) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .property("items", ArrayBuilder::new().items(item))
        .required("items")
        .property(
            "next_cursor",
            ObjectBuilder::new()
                .schema_type(SchemaType::Array(vec![Type::String, Type::Null]))
                .description(Some(
                    "Pass as `cursor` for the next page; `null` on the last one.",
                )),
        )
        .required("next_cursor")
        .into()
}

/// One field's value. `input` schemas carry validation's limits (lengths, patterns,
/// ranges); output schemas describe what is stored, which older rows may exceed.
pub fn value_schema(field: &Field, input: bool) -> RefOr<Schema> {
    let nullable = field.nullable || field.output == Output::Never;
    let typed = |t: Type| -> SchemaType {
        if nullable {
            SchemaType::Array(vec![t, Type::Null])
        } else {
            SchemaType::Type(t)
        }
    };
    let string = || ObjectBuilder::new().schema_type(typed(Type::String));
    let format = |f: KnownFormat| Some(SchemaFormat::KnownFormat(f));
    let mut schema: RefOr<Schema> = match field.kind {
        Kind::Uuid | Kind::Ref(_) => string().format(format(KnownFormat::Uuid)).into(),
        Kind::Text { max } if input => string().max_length(Some(max)).pattern(Some(NO_NUL)).into(),
        Kind::Text { .. } | Kind::Bytes => string().into(),
        Kind::Secret => string()
            .max_length(Some(4096))
            .pattern(Some(NO_NUL))
            .write_only(true)
            .into(),
        Kind::Email if input => string()
            .max_length(Some(254))
            .pattern(Some("^[^@\\s]+@[^@\\s.][^@\\s]*\\.[^@\\s]*[^@\\s.]$"))
            .into(),
        Kind::Email => string().into(),
        Kind::Slug => string()
            .pattern(Some("^[a-z0-9]+(-[a-z0-9]+)*$"))
            .min_length(Some(2))
            .max_length(Some(64))
            .into(),
        Kind::Url if input => string()
            .pattern(Some("^https?://[^\\s/?#@]+([/?#][^\\s]*)?$"))
            .max_length(Some(2048))
            .into(),
        Kind::Url => string().into(),
        Kind::Currency => string().pattern(Some("^[A-Z]{3}$")).into(),
        Kind::Sha256 => string().pattern(Some("^[0-9a-f]{64}$")).into(),
        Kind::Enum(values) => {
            let mut all: Vec<serde_json::Value> = values.iter().map(|v| (*v).into()).collect();
            if nullable {
                all.push(serde_json::Value::Null);
            }
            string().enum_values(Some(all)).into()
        }
        Kind::Int { min, max } => ObjectBuilder::new()
            .schema_type(typed(Type::Integer))
            .format(format(KnownFormat::Int64))
            .minimum(Some(min as f64))
            .maximum(Some(max as f64))
            .into(),
        Kind::Bool => ObjectBuilder::new()
            .schema_type(typed(Type::Boolean))
            .into(),
        Kind::Object => ObjectBuilder::new().schema_type(typed(Type::Object)).into(),
        Kind::Array => ObjectBuilder::new().schema_type(typed(Type::Array)).into(),
        Kind::Any => ObjectBuilder::new()
            .schema_type(SchemaType::AnyValue)
            .into(),
        Kind::Strings(allowed) => {
            let item = match allowed {
                Some(values) => ObjectBuilder::new()
                    .schema_type(Type::String)
                    .enum_values(Some(values.iter().copied())),
                None => ObjectBuilder::new()
                    .schema_type(Type::String)
                    .pattern(Some(NO_NUL)),
            };
            ArrayBuilder::new()
                .schema_type(typed(Type::Array))
                .items(item)
                .into()
        }
        Kind::Time => string().format(format(KnownFormat::DateTime)).into(),
        Kind::Vector => ArrayBuilder::new()
            .schema_type(typed(Type::Array))
            .items(ObjectBuilder::new().schema_type(Type::Number))
            .min_items(Some(1))
            .max_items(Some(ceneca_domain::validate::MAX_VECTOR_DIMS))
            .into(),
    };
    if let RefOr::T(Schema::Object(object)) = &mut schema
        && field.admin_only
    {
        object.description = Some("Only system administrators may set it.".into());
    }
    schema
}

#[cfg(test)]
mod tests {
    use super::*;
    use ceneca_domain::model;

    #[test]
    fn every_entity_has_schemas_named_after_it() {
        for entity in model::ALL.iter().copied() {
            let all = schemas(entity);
            assert_eq!(all[0].0, schema_name(entity));
            assert!(
                !schema_name(entity).contains('_'),
                "{}: a schema name is PascalCase",
                entity.name
            );
            let json = serde_json::to_value(&all[0].1).unwrap();
            for field in entity.columns().filter(|f| f.output != Output::Never) {
                assert!(
                    json["properties"].get(field.name).is_some(),
                    "{}.{} is answered, so documented",
                    entity.name,
                    field.name
                );
            }
            for field in entity.columns().filter(|f| f.output == Output::Never) {
                assert!(
                    json["properties"].get(field.name).is_none(),
                    "{}.{} is hidden, so never documented as an answer",
                    entity.name,
                    field.name
                );
            }
        }
    }

    #[test]
    fn create_bodies_require_what_validation_requires_and_refuse_server_fields() {
        let json = serde_json::to_value(create(&model::MESSAGES, &[])).unwrap();
        let required: Vec<&str> = json["required"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        for field in model::MESSAGES.fields {
            assert_eq!(
                required.contains(&field.name),
                field.input == Input::Required,
                "{}",
                field.name
            );
            assert_eq!(
                json["properties"].get(field.name).is_some(),
                field.input != Input::Server,
                "{}",
                field.name
            );
        }
        assert_eq!(json["additionalProperties"], false);
        let nested = serde_json::to_value(create(&model::MESSAGES, &["thread_id"])).unwrap();
        assert!(
            !nested["required"]
                .as_array()
                .unwrap()
                .contains(&"thread_id".into())
        );
    }
}
