//! What is particular to each entity, beyond what the model declares: server-set fields,
//! invariants that span fields or rows, secrets, and rows written alongside (an
//! organization's first owner). Each rule is a `match` arm on the table name, so one place
//! lists every special case.

use ceneca_crypto::token;
use ceneca_domain::clock::now;
use ceneca_domain::roles::OrgRole;
use ceneca_domain::schema::{Owner, Tenancy};
use ceneca_domain::scope::{Access, ScopeFilter};
use ceneca_domain::validate::fill_defaults;
use ceneca_domain::{Entity, Record, ValidationError, Value, flow, model, new_id};
use ceneca_store::{Deleted, ListQuery, WriteOp};
use serde_json::{Map, Value as Json};
use uuid::Uuid;

use crate::error::{Result, ServiceError};
use crate::resources::single_owner;
use crate::{Caller, Services};

/// Rows to write in the same transaction, and fields to add to the response.
#[derive(Default)]
pub(crate) struct Extras {
    pub ops: Vec<WriteOp>,
    pub response: Map<String, Json>,
}

fn text<'r>(record: &'r Record, name: &str) -> Option<&'r str> {
    record.get(name).and_then(Value::as_str)
}

fn me(caller: &Caller) -> Value {
    Value::Id(caller.user_id)
}

/// A new row that belongs to `entity`, complete but for defaults.
fn new_row(fields: &[(&'static str, Value)], entity: &Entity) -> Record {
    let now = now();
    let mut r = Record::new();
    r.set("id", Value::Id(new_id()));
    r.set("created_at", Value::Time(now));
    r.set("updated_at", Value::Time(now));
    for (k, v) in fields {
        r.set(k, v.clone());
    }
    fill_defaults(entity, &mut r, now);
    r
}

/// Exactly one owner; rows that may belong to a user default to the caller.
fn settle_owner(caller: &Caller, entity: &Entity, record: &mut Record) -> Result<()> {
    match single_owner(entity, record).map_err(|reason| ServiceError::invalid("owner", reason))? {
        Some(_) => Ok(()),
        None => {
            let Tenancy::Owners { owners, .. } = entity.tenancy else {
                return Ok(());
            };
            match owners.iter().find_map(|o| match o {
                Owner::User(c) => Some(*c),
                _ => None,
            }) {
                Some(column) => {
                    record.set(column, me(caller));
                    Ok(())
                }
                None => Err(ServiceError::invalid(
                    "owner",
                    format!(
                        "set one of {}",
                        owners
                            .iter()
                            .map(|o| o.column())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                )),
            }
        }
    }
}

/// The encryption context of a secret: the record's identity, so a ciphertext copied to
/// another row, field or tenant does not decrypt.
pub(crate) fn secret_context(entity: &Entity, id: Uuid, field: &str, record: &Record) -> Vec<u8> {
    let tenant = ["user_id", "organization_id", "workspace_id"]
        .iter()
        .find_map(|c| record.id_of(c))
        .map(|t| t.to_string())
        .unwrap_or_default();
    format!("{}/{id}/{field}/{tenant}", entity.table).into_bytes()
}

/// Replaces plaintext secret fields by ciphertext, key id and a masked hint.
fn seal_secrets(svc: &Services, entity: &Entity, id: Uuid, owner_row: &Record, set: &mut Record) {
    for field in entity
        .fields
        .iter()
        .filter(|f| f.kind == ceneca_domain::schema::Kind::Secret)
    {
        let Some(value) = set.remove(field.name) else {
            continue;
        };
        let (ciphertext, key_id, hint) = match value {
            Value::Text(plain) => {
                let ct = svc.keys.encrypt(
                    plain.as_bytes(),
                    &secret_context(entity, id, field.name, owner_row),
                );
                let chars: Vec<char> = plain.chars().collect();
                let hint = if chars.len() >= 12 {
                    format!("…{}", chars[chars.len() - 4..].iter().collect::<String>())
                } else {
                    "…".to_owned()
                };
                (
                    Value::Bytes(ct),
                    Value::Text(svc.keys.active_key_id().to_owned()),
                    Value::Text(hint),
                )
            }
            _ => (Value::Null, Value::Null, Value::Null),
        };
        for (suffix, v) in [
            ("ciphertext", ciphertext),
            ("key_id", key_id),
            ("hint", hint),
        ] {
            if let Some(column) = crate::secrets::column(entity, field.name, suffix) {
                set.set(column, v);
            }
        }
    }
}

fn check_url_policy(svc: &Services, record: &Record, field: &str) -> Result<()> {
    if let Some(url) = text(record, field) {
        svc.config
            .edition
            .check_url(url)
            .map_err(|r| ServiceError::invalid(field, r))?;
    }
    Ok(())
}

/// On create `set` is the new row and carries the scope, which is stored in its one
/// normalised spelling; on update the scope is the stored one (it cannot be patched), and
/// revoking is always allowed, even for a scope written before the list was closed.
fn check_sharing(svc: &Services, record: &Record, set: &mut Record) -> Result<()> {
    let creating = set.get("scope").is_some();
    if let (Some(scope), Some(granted)) = (
        text(record, "scope"),
        set.get("granted").and_then(Value::as_bool),
    ) && (creating || granted)
    {
        let scope = svc
            .config
            .edition
            .check_sharing_scope(scope, granted)
            .map_err(|r| ServiceError::invalid("scope", r))?;
        if creating {
            set.set("scope", Value::Text(scope.to_owned()));
        }
    }
    match set.get("granted").and_then(Value::as_bool) {
        Some(true) => {
            set.set("granted_at", Value::Time(now()));
            set.set("revoked_at", Value::Null);
        }
        Some(false) => set.set("revoked_at", Value::Time(now())),
        None => {}
    }
    Ok(())
}

pub(crate) fn before_create(
    svc: &Services,
    caller: &Caller,
    entity: &'static Entity,
    record: &mut Record,
    extras: &mut Extras,
) -> Result<()> {
    if matches!(entity.tenancy, Tenancy::User) {
        record.set("user_id", me(caller));
    }
    if matches!(entity.tenancy, Tenancy::Owners { .. }) {
        settle_owner(caller, entity, record)?;
    }
    let id = record
        .id()
        .ok_or_else(|| ServiceError::Internal("new row without id".into()))?;
    match entity.table {
        "organizations" => {
            record.set("owner_user_id", me(caller));
            extras.ops.push(WriteOp::Insert {
                entity: &model::ORGANIZATION_MEMBERS,
                record: new_row(
                    &[
                        ("organization_id", Value::Id(id)),
                        ("user_id", me(caller)),
                        ("role", Value::Text("owner".into())),
                    ],
                    &model::ORGANIZATION_MEMBERS,
                ),
            });
        }
        "organization_members" => {
            record.set("invited_by", me(caller));
            let org = record.id_of("organization_id");
            if text(record, "role") == Some("owner")
                && org.and_then(|o| caller.scope.org_role(o)) != Some(OrgRole::Owner)
            {
                return Err(ServiceError::Forbidden("only owners may add owners".into()));
            }
        }
        "workspace_members" => record.set("invited_by", me(caller)),
        "devices" => {
            let device_token = token::generate();
            let digest = token::digest(&device_token);
            record.set("token_hash", Value::Bytes(digest.clone()));
            // Device tokens follow a session policy of their own: a bounded lifetime, an
            // idle timeout (see `authenticate`), revoked with the device.
            let lifetime = time::Duration::try_from(svc.config.device_token_lifetime)
                .unwrap_or(time::Duration::days(90));
            let expires = now() + lifetime;
            extras.ops.push(WriteOp::Insert {
                entity: &model::SESSIONS,
                record: new_row(
                    &[
                        ("user_id", me(caller)),
                        ("token_hash", Value::Bytes(digest)),
                        ("kind", Value::Text("device".into())),
                        ("device_id", Value::Id(id)),
                        ("expires_at", Value::Time(expires)),
                        ("last_used_at", Value::Time(now())),
                    ],
                    &model::SESSIONS,
                ),
            });
            extras
                .response
                .insert("token".into(), Json::String(device_token));
            extras.response.insert(
                "token_expires_at".into(),
                Json::String(ceneca_domain::output::format_time(expires)),
            );
        }
        "workspaces" => match record.id_of("organization_id") {
            None => record.set("owner_user_id", me(caller)),
            Some(_) => extras.ops.push(WriteOp::Insert {
                entity: &model::WORKSPACE_MEMBERS,
                record: new_row(
                    &[
                        ("workspace_id", Value::Id(id)),
                        ("user_id", me(caller)),
                        ("role", Value::Text("admin".into())),
                        ("invited_by", me(caller)),
                    ],
                    &model::WORKSPACE_MEMBERS,
                ),
            }),
        },
        "threads" => record.set("created_by", me(caller)),
        "messages" if text(record, "role") == Some("user") => record.set("author_id", me(caller)),
        "attachments"
            if record.id_of("message_id").is_some() && record.id_of("document_id").is_some() =>
        {
            return Err(ServiceError::invalid(
                "document_id",
                "an attachment belongs to a message or a document, not both",
            ));
        }
        "ai_provider_configs" => {
            check_url_policy(svc, record, "base_url")?;
            let owner_row = record.clone();
            seal_secrets(svc, entity, id, &owner_row, record);
        }
        "ai_interactions" => {
            record.set("user_id", me(caller));
            let total = ["prompt_tokens", "completion_tokens"]
                .iter()
                .map(|f| record.get(f).and_then(Value::as_int).unwrap_or(0))
                .fold(0i64, i64::saturating_add);
            record.set("total_tokens", Value::Int(total));
        }
        "orchestration_flows" => check_definition(record)?,
        "orchestration_step_results" => check_step_times(record)?,
        "embedding_records" => {
            let dims = record.get("dims").and_then(Value::as_int).unwrap_or(0);
            let len = match record.get("vector") {
                Some(Value::Bytes(b)) => b.len() as i64 / 4,
                _ => 0,
            };
            if dims != len {
                return Err(ServiceError::invalid(
                    "vector",
                    format!("has {len} dimensions but dims is {dims}"),
                ));
            }
        }
        "permission_sets" => check_permission_subject(record)?,
        "data_sharing_policies" => {
            let snapshot = record.clone();
            check_sharing(svc, &snapshot, record)?;
        }
        "subscription_plans" => check_limits(record)?,
        "invoices" => {
            if let (Some(start), Some(end)) = (
                record.get("period_start").and_then(Value::as_time),
                record.get("period_end").and_then(Value::as_time),
            ) && end <= start
            {
                return Err(ServiceError::invalid(
                    "period_end",
                    "must be after period_start",
                ));
            }
        }
        _ => {}
    }
    Ok(())
}

fn check_definition(record: &Record) -> Result<()> {
    if let Some(Value::Json(definition)) = record.get("definition") {
        flow::validate_definition(definition)
            .map_err(|r| ServiceError::invalid("definition", r))?;
    }
    Ok(())
}

fn check_step_times(record: &Record) -> Result<()> {
    if let (Some(start), Some(end)) = (
        record.get("started_at").and_then(Value::as_time),
        record.get("finished_at").and_then(Value::as_time),
    ) && end < start
    {
        return Err(ServiceError::invalid(
            "finished_at",
            "must not be before started_at",
        ));
    }
    Ok(())
}

fn check_permission_subject(record: &Record) -> Result<()> {
    let mut errors = ValidationError::new();
    match text(record, "subject_type") {
        Some("user") => {
            if record.id_of("subject_user_id").is_none() {
                errors.add("subject_user_id", "is required when subject_type is user");
            }
            if text(record, "subject_role").is_some() {
                errors.add("subject_role", "must be empty when subject_type is user");
            }
        }
        Some("role") => {
            let role = text(record, "subject_role");
            let known = role.is_some_and(|r| {
                OrgRole::parse(r).is_some()
                    || ceneca_domain::roles::WorkspaceRole::parse(r).is_some()
            });
            if !known {
                errors.add(
                    "subject_role",
                    "must name a role: owner, admin, member, editor or viewer",
                );
            }
            if record.id_of("subject_user_id").is_some() {
                errors.add("subject_user_id", "must be empty when subject_type is role");
            }
        }
        _ => {}
    }
    let resource = text(record, "resource_type");
    if let Some(resource) = resource
        && resource != "*"
        && permission_target(resource).is_none()
    {
        errors.add(
            "resource_type",
            format!(
                "must be '*' or a kind of workspace content: {}",
                model::ALL
                    .iter()
                    .filter(|e| permission_target(e.path).is_some())
                    .map(|e| e.path)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        );
    }
    if record.id_of("resource_id").is_some() && resource == Some("*") {
        errors.add(
            "resource_id",
            "needs resource_type to name the kind of resource it is (such as documents)",
        );
    }
    check_actions(&mut errors, record);
    errors.into_result().map_err(ServiceError::from)
}

/// A rule's actions: at least one, none repeated (on create and on update).
fn check_actions(errors: &mut ValidationError, record: &Record) {
    if let Some(Value::Json(Json::Array(actions))) = record.get("actions") {
        if actions.is_empty() {
            errors.add("actions", "must list at least one action");
        } else if actions
            .iter()
            .enumerate()
            .any(|(i, a)| actions[..i].contains(a))
        {
            errors.add("actions", "must not repeat an action");
        }
    }
}

/// The workspace content a permission rule may name: permission sets refine access to
/// rows of one workspace, nothing else.
fn permission_target(resource_type: &str) -> Option<&'static Entity> {
    model::ALL.iter().copied().find(|e| {
        (e.path == resource_type || e.table == resource_type)
            && matches!(e.tenancy, Tenancy::Workspace { .. })
            && !ceneca_domain::credential::ACCESS_TABLES.contains(&e.table)
    })
}

/// A rule may name only a resource inside its own workspace (or, for an organization
/// rule, a workspace of its organization): whoever administers the rule has authority
/// there and nowhere else (DESIGN.md §3 rule 8). The answer is the same whether the id
/// does not exist or belongs to someone else, so it tells nothing about other tenants.
async fn check_permission_resource(svc: &Services, caller: &Caller, record: &Record) -> Result<()> {
    let (Some(id), Some(entity)) = (
        record.id_of("resource_id"),
        text(record, "resource_type").and_then(permission_target),
    ) else {
        return Ok(());
    };
    let workspaces = match (
        record.id_of("workspace_id"),
        record.id_of("organization_id"),
    ) {
        (Some(ws), _) => vec![ws],
        (None, Some(org)) => caller.scope.org_workspaces(org),
        (None, None) => Vec::new(),
    };
    let found = svc
        .store
        .get(
            entity,
            id,
            ScopeFilter::AnyOf(vec![("workspace_id", workspaces)]),
            Deleted::Include,
        )
        .await?;
    if found.is_none() {
        return Err(ServiceError::invalid(
            "resource_id",
            format!(
                "no {} with this id in the rule's {}",
                entity.name,
                if record.id_of("workspace_id").is_some() {
                    "workspace"
                } else {
                    "organization"
                }
            ),
        ));
    }
    Ok(())
}

fn check_limits(record: &Record) -> Result<()> {
    if let Some(Value::Json(Json::Object(limits))) = record.get("limits") {
        for (key, value) in limits {
            if !matches!(
                key.as_str(),
                "storage_quota_bytes" | "seats" | "monthly_tokens"
            ) {
                return Err(ServiceError::invalid(
                    "limits",
                    format!(
                        "unknown limit '{key}': use storage_quota_bytes, seats, monthly_tokens"
                    ),
                ));
            }
            if value.as_i64().is_none_or(|n| n < 0) {
                return Err(ServiceError::invalid(
                    "limits",
                    format!("{key} must be a non-negative integer"),
                ));
            }
        }
    }
    Ok(())
}

/// Members may be added by e-mail instead of user id: `{"email": "bob@example.com"}`
/// becomes `{"user_id": ...}` when an account with that address exists.
pub(crate) async fn resolve_member_email(
    svc: &Services,
    entity: &Entity,
    object: &Map<String, Json>,
) -> Result<Option<Map<String, Json>>> {
    if !matches!(entity.table, "organization_members" | "workspace_members")
        || !object.contains_key("email")
    {
        return Ok(None);
    }
    if object.contains_key("user_id") {
        return Err(ServiceError::invalid(
            "email",
            "give user_id or email, not both",
        ));
    }
    let field = model::USERS
        .field("email")
        .ok_or_else(|| ServiceError::Internal("users.email".into()))?;
    let email = ceneca_domain::validate::parse_value(field, &object["email"])
        .map_err(|r| ServiceError::invalid("email", r))?;
    let user = svc
        .store
        .lookup_unscoped(&model::USERS, "email", email)
        .await?
        .filter(|u| u.get("deleted_at").is_none_or(Value::is_null))
        .ok_or_else(|| ServiceError::invalid("email", "no account uses this e-mail address"))?;
    let mut rewritten = object.clone();
    rewritten.remove("email");
    let id = user
        .id()
        .ok_or_else(|| ServiceError::Internal("user without id".into()))?;
    rewritten.insert("user_id".into(), Json::String(id.to_string()));
    Ok(Some(rewritten))
}

/// Checks that need the database, after authorization.
pub(crate) async fn check_create(
    svc: &Services,
    caller: &Caller,
    entity: &'static Entity,
    record: &Record,
) -> Result<()> {
    if entity.table == "permission_sets" {
        check_permission_resource(svc, caller, record).await?;
    }
    if entity.table == "embedding_records" {
        let source = match text(record, "collection") {
            Some("messages") => &model::MESSAGES,
            Some("documents") => &model::DOCUMENTS,
            _ => &model::ATTACHMENTS,
        };
        let id = record
            .id_of("source_id")
            .ok_or_else(|| ServiceError::invalid("source_id", "is required"))?;
        let row = svc
            .store
            .get(
                source,
                id,
                caller.filter(source, Access::Read),
                Deleted::Exclude,
            )
            .await?;
        match row {
            None => {
                return Err(ServiceError::invalid(
                    "source_id",
                    format!("no {} with this id exists", source.name),
                ));
            }
            Some(row) if row.id_of("workspace_id") != record.id_of("workspace_id") => {
                return Err(ServiceError::invalid(
                    "source_id",
                    format!("this {} belongs to another workspace", source.name),
                ));
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// Entities whose update rules need the row as it is.
pub(crate) fn needs_current_row(entity: &Entity) -> bool {
    matches!(
        entity.table,
        "ai_provider_configs"
            | "organization_members"
            | "data_sharing_policies"
            | "orchestration_step_results"
    )
}

pub(crate) fn before_update(
    svc: &Services,
    caller: &Caller,
    entity: &'static Entity,
    id: Uuid,
    current: Option<&Record>,
    set: &mut Record,
    _extras: &mut Extras,
) -> Result<()> {
    match entity.table {
        "threads" => match set.get("is_archived").and_then(Value::as_bool) {
            Some(true) => set.set("archived_at", Value::Time(now())),
            Some(false) => set.set("archived_at", Value::Null),
            None => {}
        },
        "users"
            if set.get("status").and_then(Value::as_str) == Some("suspended")
                && id == caller.user_id =>
        {
            return Err(ServiceError::invalid(
                "status",
                "you cannot suspend your own account",
            ));
        }
        "organization_members" => {
            let current =
                current.ok_or_else(|| ServiceError::Internal("member row not loaded".into()))?;
            let org = current.id_of("organization_id");
            let caller_is_owner =
                org.and_then(|o| caller.scope.org_role(o)) == Some(OrgRole::Owner);
            let touches_owner =
                text(current, "role") == Some("owner") || text(set, "role") == Some("owner");
            if touches_owner && !caller_is_owner {
                return Err(ServiceError::Forbidden(
                    "only owners may grant or change the owner role".into(),
                ));
            }
        }
        "ai_provider_configs" => {
            check_url_policy(svc, set, "base_url")?;
            let current =
                current.ok_or_else(|| ServiceError::Internal("config row not loaded".into()))?;
            seal_secrets(svc, entity, id, current, set);
        }
        "orchestration_flows" => check_definition(set)?,
        "orchestration_step_results" => {
            let mut merged = current.cloned().unwrap_or_default();
            for (k, v) in set.iter() {
                merged.set(k, v.clone());
            }
            check_step_times(&merged)?;
        }
        "data_sharing_policies" => {
            let current =
                current.ok_or_else(|| ServiceError::Internal("policy row not loaded".into()))?;
            check_sharing(svc, current, set)?;
        }
        "subscription_plans" => check_limits(set)?,
        "permission_sets" => {
            let mut errors = ValidationError::new();
            check_actions(&mut errors, set);
            errors.into_result()?;
        }
        _ => {}
    }
    Ok(())
}

/// Removing a member ends the permission rules of that workspace (or organization) that
/// name them: a removed member must not keep access through a rule they were given, or
/// wrote for themselves while they were an administrator.
async fn end_rules_of_removed_member(
    svc: &Services,
    entity: &'static Entity,
    member: &Record,
    extras: &mut Extras,
) -> Result<()> {
    let owner_column = match entity.table {
        "workspace_members" => "workspace_id",
        _ => "organization_id",
    };
    let (Some(parent), Some(user)) = (member.id_of(owner_column), member.id_of("user_id")) else {
        return Ok(());
    };
    let mut q = ListQuery::new(
        ScopeFilter::AnyOf(vec![(owner_column, vec![parent])]),
        "created_at",
        false,
        1000,
    );
    q.equals.push(("subject_user_id", Value::Id(user)));
    for rule in svc.store.list(&model::PERMISSION_SETS, q).await? {
        if let Some(rule_id) = rule.id() {
            extras.ops.push(WriteOp::Delete {
                entity: &model::PERMISSION_SETS,
                id: rule_id,
                filter: ScopeFilter::AnyOf(vec![(owner_column, vec![parent])]),
            });
        }
    }
    Ok(())
}

pub(crate) async fn before_delete(
    svc: &Services,
    caller: &Caller,
    entity: &'static Entity,
    id: Uuid,
    extras: &mut Extras,
) -> Result<()> {
    // The member row, loaded once for the checks below (a row the caller cannot read is
    // left to the delete itself to refuse).
    let member = match entity.table {
        "workspace_members" | "organization_members" => {
            let Some(member) = svc
                .store
                .get(
                    entity,
                    id,
                    caller.filter(entity, Access::Read),
                    Deleted::Exclude,
                )
                .await?
            else {
                return Ok(());
            };
            end_rules_of_removed_member(svc, entity, &member, extras).await?;
            Some(member)
        }
        _ => None,
    };
    match entity.table {
        "organization_members" => {
            let Some(member) = member else {
                return Ok(());
            };
            if text(&member, "role") == Some("owner") {
                let org = member
                    .id_of("organization_id")
                    .ok_or_else(|| ServiceError::Internal("member without organization".into()))?;
                if caller.scope.org_role(org) != Some(OrgRole::Owner) {
                    return Err(ServiceError::Forbidden(
                        "only owners may remove an owner".into(),
                    ));
                }
                let mut q = ListQuery::new(
                    ScopeFilter::AnyOf(vec![("organization_id", vec![org])]),
                    "created_at",
                    false,
                    1,
                );
                q.equals.push(("role", Value::Text("owner".into())));
                if svc.store.list(entity, q).await?.len() < 2 {
                    return Err(ServiceError::conflict(
                        "an organization must keep at least one owner",
                    ));
                }
            }
        }
        "devices" => {
            // Deleting a device revokes its token at once. The delete itself is scoped to
            // the caller's devices, and a failed delete rolls this back with it.
            let mut set = Record::new();
            set.set("revoked_at", Value::Time(now()));
            extras.ops.push(WriteOp::UpdateAll {
                entity: &model::SESSIONS,
                filter: ScopeFilter::AnyOf(vec![("device_id", vec![id])]),
                set,
            });
        }
        "users" => {
            // Deleting an account ends its sessions at once.
            let mut set = Record::new();
            set.set("revoked_at", Value::Time(now()));
            extras.ops.push(WriteOp::UpdateAll {
                entity: &model::SESSIONS,
                filter: ScopeFilter::AnyOf(vec![("user_id", vec![id])]),
                set,
            });
        }
        _ => {}
    }
    Ok(())
}
