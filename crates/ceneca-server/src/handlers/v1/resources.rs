//! The routes every entity gets, generated from its declaration:
//! `GET|POST /{path}`, `GET|PATCH|DELETE /{path}/{id}` and, for soft-deleted entities,
//! `POST /{path}/{id}/restore`.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};
use ceneca_domain::Deleted;
use ceneca_domain::Entity;
use ceneca_service::ListParams;
use ceneca_service::resources::Deletion;
use utoipa::openapi::path::Parameter;

use super::Routes;
use crate::AppState;
use crate::error::ApiResult;
use crate::extract::{ContentAuth, Id, JsonBody, NoQuery, QueryPairs};
use crate::openapi::op::{self, Op};

pub fn routes(entity: &'static Entity) -> Routes {
    let mut collection: MethodRouter<AppState> = get(
        move |state: State<AppState>, auth: ContentAuth, query: QueryPairs| {
            list(state, auth, query, entity)
        },
    );
    if std::ptr::eq(entity, &ceneca_domain::model::ATTACHMENTS) {
        // JSON, or the row and its file as `multipart/form-data`.
        collection = collection.post(super::attachments::create);
    } else if entity.api.create {
        collection = collection.post(
            move |state: State<AppState>, _: NoQuery, auth: ContentAuth, body: JsonBody| {
                create(state, auth, body, entity)
            },
        );
    }
    let mut item: MethodRouter<AppState> = get(
        move |state: State<AppState>, auth: ContentAuth, id: Id, query: QueryPairs| {
            read(state, auth, id, query, entity)
        },
    );
    if entity.api.update {
        item = item.patch(
            move |state: State<AppState>, _: NoQuery, auth: ContentAuth, id: Id, body: JsonBody| {
                update(state, auth, id, body, entity)
            },
        );
    }
    if std::ptr::eq(entity, &ceneca_domain::model::USERS) {
        // In the bin, or erased for good (`?erase=true`).
        item = item.delete(super::erasure::delete_user);
    } else if entity.api.delete {
        item = item.delete(
            move |state: State<AppState>, _: NoQuery, auth: ContentAuth, id: Id| {
                delete(state, auth, id, entity)
            },
        );
    }
    let base = format!("/{}", entity.path);
    let docs = Docs::of(entity);
    let mut collection_ops = vec![docs.list()];
    if std::ptr::eq(entity, &ceneca_domain::model::ATTACHMENTS) {
        collection_ops.push(super::attachments::create_docs(docs.create(&[])));
    } else if entity.api.create {
        collection_ops.push(docs.create(&[]));
    }
    let mut item_ops = vec![docs.read()];
    if entity.api.update {
        item_ops.push(docs.update());
    }
    if std::ptr::eq(entity, &ceneca_domain::model::USERS) {
        item_ops.push(super::erasure::delete_user_doc());
    } else if entity.api.delete {
        item_ops.push(docs.delete());
    }
    let mut router = Routes::new()
        .route(&base, collection, collection_ops)
        .route(&format!("{base}/{{id}}"), item, item_ops);
    if entity.soft_delete && entity.api.delete {
        router = router.route(
            &format!("{base}/{{id}}/restore"),
            post(
                move |state: State<AppState>, _: NoQuery, auth: ContentAuth, id: Id| {
                    restore(state, auth, id, entity)
                },
            ),
            [docs.restore()],
        );
    }
    router
}

/// The descriptions of an entity's generic operations, generated from its declaration.
pub(crate) struct Docs {
    entity: &'static Entity,
    name: String,
    what: String,
    /// `OfThread` for routes nested under a thread: operation ids are unique.
    suffix: String,
}

impl Docs {
    pub(crate) fn of(entity: &'static Entity) -> Self {
        Docs {
            entity,
            name: ceneca_wire::entities::schema_name(entity),
            what: entity.name.replace('_', " "),
            suffix: String::new(),
        }
    }

    /// The operations of `entity` under `/{parent_path}/{parent}/...`.
    pub(crate) fn nested(entity: &'static Entity, parent_path: &str) -> Self {
        let parent = parent_path.strip_suffix('s').unwrap_or(parent_path);
        let mut chars = parent.chars();
        let parent: String = chars
            .next()
            .map(|c| c.to_uppercase().chain(chars).collect())
            .unwrap_or_default();
        Docs {
            suffix: format!("Of{parent}"),
            ..Docs::of(entity)
        }
    }

    pub(crate) fn id(&self, verb: &str) -> String {
        format!("{verb}{}{}", self.name, self.suffix)
    }

    pub(crate) fn list(&self) -> Op {
        op::get(&self.id("list"), &format!("List {}s", self.what))
            .tag(self.entity.path)
            .describe(
                "Newest first unless `sort` says otherwise; pages with `cursor`. Every other \
                 parameter is an equality filter on a field listed here; unknown ones are \
                 refused.",
            )
            .params(list_parameters(self.entity))
            .answers(
                200,
                "A page (fields marked detail are left out of list items).",
                ceneca_wire::entities::schema_ref(self.entity, "Page"),
            )
    }

    /// `supplied`: fields the URL provides (a nested create).
    pub(crate) fn create(&self, supplied: &[&str]) -> Op {
        let body = if supplied.is_empty() {
            ceneca_wire::entities::schema_ref(self.entity, "Create")
        } else {
            ceneca_wire::entities::create(self.entity, supplied)
        };
        let mut op = op::post(&self.id("create"), &format!("Create a {}", self.what))
            .tag(self.entity.path)
            .body(body, None);
        let row = ceneca_wire::entities::schema_ref(self.entity, "");
        if supplied.is_empty() {
            let mut links = vec![(self.id("get"), "id")];
            if self.entity.api.update {
                links.push((self.id("update"), "id"));
            }
            if self.entity.api.delete {
                links.push((self.id("delete"), "id"));
            }
            let links: Vec<(&str, &str)> = links.iter().map(|(o, p)| (o.as_str(), *p)).collect();
            op = op.answers_linked(201, "Created; `Location` names it.", row, &links);
        } else {
            op = op.answers(201, "Created.", row);
        }
        op.empty(409, "A unique field is taken.")
    }

    pub(crate) fn read(&self) -> Op {
        let mut op = op::get(&self.id("get"), &format!("Read a {}", self.what))
            .tag(self.entity.path)
            .answers(
                200,
                "The row.",
                ceneca_wire::entities::schema_ref(self.entity, ""),
            );
        if self.entity.soft_delete {
            op = op.param(deleted_parameter());
        }
        op
    }

    pub(crate) fn update(&self) -> Op {
        op::patch(&self.id("update"), &format!("Change a {}", self.what))
            .tag(self.entity.path)
            .body(
                ceneca_wire::entities::schema_ref(self.entity, "Update"),
                None,
            )
            .answers(
                200,
                "The changed row.",
                ceneca_wire::entities::schema_ref(self.entity, ""),
            )
            .empty(409, "A unique field is taken.")
    }

    /// The delete operation, before its answers.
    pub(crate) fn delete_op(&self) -> Op {
        op::delete(&self.id("delete"), &format!("Delete a {}", self.what)).tag(self.entity.path)
    }

    pub(crate) fn delete(&self) -> Op {
        let op = self.delete_op();
        if self.entity.soft_delete {
            op.answers(
                200,
                "Soft-deleted (restorable): the row with its `deleted_at`.",
                ceneca_wire::entities::schema_ref(self.entity, ""),
            )
        } else {
            op.empty(204, "Deleted.")
        }
    }

    fn restore(&self) -> Op {
        op::post(
            &self.id("restore"),
            &format!("Restore a deleted {}", self.what),
        )
        .tag(self.entity.path)
        .answers(
            200,
            "The restored row.",
            ceneca_wire::entities::schema_ref(self.entity, ""),
        )
    }
}

fn deleted_parameter() -> Parameter {
    op::query(
        "deleted",
        "Live rows (`exclude`, the default), or also (`include`) or only (`only`) deleted ones.",
        op::string().enum_values(Some(Deleted::VALUES)),
    )
}

/// The parameters of a list: paging, order, time range, soft-deleted rows, and an equality
/// filter per filterable field (typed as the field; `null` matches rows without a value).
pub(crate) fn list_parameters(entity: &'static Entity) -> Vec<Parameter> {
    use ceneca_domain::schema::Kind;
    use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, OneOfBuilder, SchemaFormat, Type};
    let mut out = vec![
        op::query(
            "limit",
            "Items per page, 1 to 200 (50).",
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .minimum(Some(1))
                .maximum(Some(ceneca_wire::params::MAX_LIMIT)),
        ),
        op::query("cursor", "The previous page's `next_cursor`.", op::string()),
    ];
    let sortable: Vec<String> = entity
        .columns()
        .filter(|f| f.sort || f.name == "id")
        .flat_map(|f| [f.name.to_owned(), format!("-{}", f.name)])
        .collect();
    out.push(op::query(
        "sort",
        "A sortable field; `-` in front for descending.",
        op::string().enum_values(Some(sortable)),
    ));
    for name in ["created_after", "created_before"] {
        out.push(op::query(
            name,
            "RFC 3339.",
            op::string().format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime))),
        ));
    }
    if entity.soft_delete {
        out.push(deleted_parameter());
    }
    for field in entity.columns().filter(|f| f.filter) {
        let typed: ObjectBuilder = match field.kind {
            Kind::Bool => ObjectBuilder::new().schema_type(Type::Boolean),
            Kind::Int { min, max } => ObjectBuilder::new()
                .schema_type(Type::Integer)
                .minimum(Some(min as f64))
                .maximum(Some(max as f64)),
            Kind::Uuid | Kind::Ref(_) => {
                op::string().format(Some(SchemaFormat::KnownFormat(KnownFormat::Uuid)))
            }
            Kind::Enum(values) => op::string().enum_values(Some(values.iter().copied())),
            Kind::Time => {
                op::string().format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
            }
            Kind::Text { max } => op::string()
                .max_length(Some(max))
                .pattern(Some("^[^\\u0000]*$")),
            _ => op::string(),
        };
        let description = format!("Rows whose `{}` equals this.", field.name);
        out.push(if field.nullable {
            op::query(
                field.name,
                &format!("{description} `null` matches rows without one."),
                OneOfBuilder::new()
                    .item(typed)
                    .item(op::string().enum_values(Some(["null"]))),
            )
        } else {
            op::query(field.name, &description, typed)
        });
    }
    out
}

async fn list(
    State(state): State<AppState>,
    ContentAuth(caller): ContentAuth,
    QueryPairs(pairs): QueryPairs,
    entity: &'static Entity,
) -> ApiResult<Response> {
    let page = state
        .services
        .list(&caller, entity, &ListParams::from_pairs(pairs)?, None)
        .await?;
    Ok(Json(page.to_json()).into_response())
}

pub(super) async fn create(
    State(state): State<AppState>,
    ContentAuth(caller): ContentAuth,
    JsonBody(body): JsonBody,
    entity: &'static Entity,
) -> ApiResult<Response> {
    let created = state.services.create(&caller, entity, &body, None).await?;
    let location = created["id"]
        .as_str()
        .map(|id| format!("/api/v1/{}/{id}", entity.path));
    let mut response = (StatusCode::CREATED, Json(created)).into_response();
    if let Some(value) = location.and_then(|l| l.parse().ok()) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    Ok(response)
}

async fn read(
    State(state): State<AppState>,
    ContentAuth(caller): ContentAuth,
    Id(id): Id,
    QueryPairs(pairs): QueryPairs,
    entity: &'static Entity,
) -> ApiResult<Response> {
    let deleted = ceneca_wire::params::deleted_param(&pairs)?;
    Ok(Json(state.services.get(&caller, entity, id, deleted).await?).into_response())
}

async fn update(
    State(state): State<AppState>,
    ContentAuth(caller): ContentAuth,
    Id(id): Id,
    JsonBody(body): JsonBody,
    entity: &'static Entity,
) -> ApiResult<Response> {
    Ok(Json(state.services.update(&caller, entity, id, &body).await?).into_response())
}

pub(crate) fn deletion_response(deletion: Deletion) -> Response {
    match deletion {
        Deletion::Soft(row) => Json(row).into_response(),
        Deletion::Hard => StatusCode::NO_CONTENT.into_response(),
    }
}

async fn delete(
    State(state): State<AppState>,
    ContentAuth(caller): ContentAuth,
    Id(id): Id,
    entity: &'static Entity,
) -> ApiResult<Response> {
    Ok(deletion_response(
        state.services.delete(&caller, entity, id).await?,
    ))
}

async fn restore(
    State(state): State<AppState>,
    ContentAuth(caller): ContentAuth,
    Id(id): Id,
    entity: &'static Entity,
) -> ApiResult<Response> {
    Ok(Json(state.services.restore(&caller, entity, id).await?).into_response())
}
