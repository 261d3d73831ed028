//! What is particular to each entity, beyond what the model declares: server-set fields,
//! invariants that span fields or rows, secrets, and rows written alongside (an
//! organization's first owner, a device's token).
//!
//! Each entity with behaviour of its own has one file here implementing [`EntityRules`];
//! every other entity gets [`DefaultRules`], which does nothing. [`rules_for`] looks an
//! entity's rules up by table, and a test over `model::ALL` checks the registry, so an
//! entity cannot silently lose its rules.
//!
//! The hooks are split in two kinds, so that a sync replay can run the checks again
//! without repeating what a write did besides its row:
//!
//! - **checks** (`check_*`, `resolve_input`) read the input, the caller and, where needed,
//!   the database; they may complete the row itself (server-set fields, a sealed secret)
//!   but write nothing else, and running them twice is harmless;
//! - **effects** (`*_effects`) add rows written in the same transaction (the owner's
//!   membership, a device's session, rules ended with a member) and fields of the
//!   response (a device token shown once). They run after every check has passed.

mod ai_interactions;
mod ai_provider_configs;
mod attachments;
mod data_sharing_policies;
mod devices;
mod embedding_records;
mod invoices;
mod members;
mod messages;
mod orchestration_flows;
mod orchestration_step_results;
mod organizations;
mod permission_sets;
mod subscription_plans;
mod threads;
mod users;
mod workspaces;

use async_trait::async_trait;
use ceneca_domain::clock::now;
use ceneca_domain::schema::{Owner, Tenancy};
use ceneca_domain::validate::fill_defaults;
use ceneca_domain::{Entity, Record, Value, new_id};
use ceneca_store::WriteOp;
use serde_json::{Map, Value as Json};
use uuid::Uuid;

use crate::error::{Result, ServiceError};
use crate::{Caller, Services};

/// Rows to write in the same transaction, and fields to add to the response.
#[derive(Default)]
pub(crate) struct Extras {
    pub ops: Vec<WriteOp>,
    pub response: Map<String, Json>,
}

/// What a rule sees of the request: the services (configuration, key ring, store for
/// reads), the caller and the entity being written.
pub(crate) struct Cx<'a> {
    pub svc: &'a Services,
    pub caller: &'a Caller,
    pub entity: &'static Entity,
}

/// One entity's behaviour beyond the model. Every hook has a default that does nothing.
#[async_trait]
pub(crate) trait EntityRules: Send + Sync {
    /// The table these rules are for; `None` for [`DefaultRules`].
    fn table(&self) -> Option<&'static str>;

    /// Rewrites a create body before it is validated (members named by e-mail rather than
    /// by id). A check: reads only.
    async fn resolve_input(
        &self,
        _cx: &Cx<'_>,
        _object: &Map<String, Json>,
    ) -> Result<Option<Map<String, Json>>> {
        Ok(None)
    }

    /// Completes and checks a new row, before authorization: fields the server sets from
    /// the caller or the row, invariants over its fields. Pure: no I/O, and nothing but
    /// the row changes.
    fn check_create(&self, _cx: &Cx<'_>, _record: &mut Record) -> Result<()> {
        Ok(())
    }

    /// Checks of a new row that read the database, after authorization and the reference
    /// check. Reads only.
    async fn check_create_in_store(&self, _cx: &Cx<'_>, _record: &Record) -> Result<()> {
        Ok(())
    }

    /// What a create does besides inserting its row: rows written in the same
    /// transaction, credentials issued (set on the row and shown in the response). Runs
    /// once every check has passed; a replay does not run it.
    fn create_effects(
        &self,
        _cx: &Cx<'_>,
        _record: &mut Record,
        _extras: &mut Extras,
    ) -> Result<()> {
        Ok(())
    }

    /// What a change does besides setting its fields, after [`EntityRules::check_update`]:
    /// checks that read the database, and operations for the same transaction (guards the
    /// store checks under its locks). May read; `extras.response` is not shown.
    async fn update_effects(
        &self,
        _cx: &Cx<'_>,
        _current: Option<&Record>,
        _set: &Record,
        _extras: &mut Extras,
    ) -> Result<()> {
        Ok(())
    }

    /// Whether [`EntityRules::check_update`] needs the row as it is.
    fn needs_current_row(&self) -> bool {
        false
    }

    /// Completes and checks a patch (`set`), given the row as it is when
    /// [`EntityRules::needs_current_row`] says so. Pure: nothing but `set` changes.
    fn check_update(
        &self,
        _cx: &Cx<'_>,
        _id: Uuid,
        _current: Option<&Record>,
        _set: &mut Record,
    ) -> Result<()> {
        Ok(())
    }

    /// Whether the delete hooks need the row: it is then loaded once, inside the caller's
    /// read scope, and handed to both (`None` when the caller cannot read it, which the
    /// delete itself then refuses).
    fn loads_row_on_delete(&self) -> bool {
        false
    }

    /// Checks before a delete. Reads only.
    async fn check_delete(&self, _cx: &Cx<'_>, _id: Uuid, _row: Option<&Record>) -> Result<()> {
        Ok(())
    }

    /// Writes that go with a delete (sessions revoked, rules ended); may read to find them.
    async fn delete_effects(
        &self,
        _cx: &Cx<'_>,
        _id: Uuid,
        _row: Option<&Record>,
        _extras: &mut Extras,
    ) -> Result<()> {
        Ok(())
    }
}

/// The rules of an entity with no behaviour of its own: the model says it all.
pub(crate) struct DefaultRules;

impl EntityRules for DefaultRules {
    fn table(&self) -> Option<&'static str> {
        None
    }
}

/// Every entity with rules of its own.
static REGISTRY: &[&dyn EntityRules] = &[
    &users::Users,
    &organizations::Organizations,
    &members::OrganizationMembers,
    &devices::Devices,
    &workspaces::Workspaces,
    &members::WorkspaceMembers,
    &threads::Threads,
    &messages::Messages,
    &attachments::Attachments,
    &ai_provider_configs::AiProviderConfigs,
    &ai_interactions::AiInteractions,
    &orchestration_flows::OrchestrationFlows,
    &orchestration_step_results::OrchestrationStepResults,
    &embedding_records::EmbeddingRecords,
    &permission_sets::PermissionSets,
    &data_sharing_policies::DataSharingPolicies,
    &subscription_plans::SubscriptionPlans,
    &invoices::Invoices,
];

/// The rules of `entity`: its own, or [`DefaultRules`].
pub(crate) fn rules_for(entity: &Entity) -> &'static dyn EntityRules {
    REGISTRY
        .iter()
        .copied()
        .find(|r| r.table() == Some(entity.table))
        .unwrap_or(&DefaultRules)
}

pub(crate) fn text<'r>(record: &'r Record, name: &str) -> Option<&'r str> {
    record.get(name).and_then(Value::as_str)
}

pub(crate) fn me(caller: &Caller) -> Value {
    Value::Id(caller.user_id)
}

/// The id of a new row (set before any rule runs).
fn new_row_id(record: &Record) -> Result<Uuid> {
    record
        .id()
        .ok_or_else(|| ServiceError::Internal("new row without id".into()))
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

/// What every entity's new row gets before its own rules: rows of one user belong to
/// the caller, and a row with several possible owners has exactly one (the caller by
/// default, where a user may own it). A check: it changes only the row.
pub(crate) fn settle_tenancy(cx: &Cx<'_>, record: &mut Record) -> Result<()> {
    if matches!(cx.entity.tenancy, Tenancy::User) {
        record.set("user_id", me(cx.caller));
    }
    if matches!(cx.entity.tenancy, Tenancy::Owners { .. }) {
        settle_owner(cx.caller, cx.entity, record)?;
    }
    Ok(())
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

/// The owner column of an `Owners` row that is set, if exactly one is.
fn single_owner(entity: &Entity, record: &Record) -> std::result::Result<Option<Owner>, String> {
    let Tenancy::Owners { owners, .. } = entity.tenancy else {
        return Ok(None);
    };
    let set: Vec<Owner> = owners
        .iter()
        .copied()
        .filter(|o| record.id_of(o.column()).is_some())
        .collect();
    match set.as_slice() {
        [] => Ok(None),
        [one] => Ok(Some(*one)),
        _ => Err(format!(
            "set only one of {}",
            owners
                .iter()
                .map(|o| o.column())
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ceneca_domain::model;

    /// The entities whose behaviour goes beyond the model. Adding an entry here without
    /// registering rules, or renaming a table the registry names, fails below.
    const SPECIAL: &[&str] = &[
        "users",
        "organizations",
        "organization_members",
        "devices",
        "workspaces",
        "workspace_members",
        "threads",
        "messages",
        "attachments",
        "ai_provider_configs",
        "ai_interactions",
        "orchestration_flows",
        "orchestration_step_results",
        "embedding_records",
        "permission_sets",
        "data_sharing_policies",
        "subscription_plans",
        "invoices",
    ];

    #[test]
    fn every_entity_resolves_to_its_own_rules_or_the_default() {
        for entity in model::ALL {
            let rules = rules_for(entity);
            match rules.table() {
                Some(table) => assert_eq!(table, entity.table, "rules of {}", entity.table),
                None => assert!(
                    !SPECIAL.contains(&entity.table),
                    "{} has behaviour of its own but resolves to the default rules",
                    entity.table
                ),
            }
            assert_eq!(
                rules.table().is_some(),
                SPECIAL.contains(&entity.table),
                "{}: registered rules and the list of special entities disagree",
                entity.table
            );
        }
    }

    #[test]
    fn every_registered_rule_names_one_entity_of_the_model_once() {
        let mut seen = Vec::new();
        for rules in REGISTRY {
            let table = rules.table().expect("registered rules name their table");
            assert!(
                model::by_table(table).is_some(),
                "rules for {table}, which the model does not have"
            );
            assert!(!seen.contains(&table), "two rules for {table}");
            seen.push(table);
        }
        assert_eq!(seen.len(), SPECIAL.len());
    }
}

/// The rules at work through the services, on a real store.
#[cfg(test)]
mod store_tests {
    use ceneca_domain::model;
    use ceneca_store::Deleted;
    use serde_json::json;

    use super::{Cx, Extras, rules_for};
    use crate::ListParams;
    use crate::audit::RequestMeta;
    use crate::error::ServiceError;
    use crate::resources::ParentRef;
    use crate::testing::{id_of, refresh, services, sign_up};

    #[tokio::test]
    async fn an_organization_gets_its_creator_as_owner_who_cannot_leave_it_ownerless() {
        let t = services().await;
        let svc = &t.svc;
        let (ann, token) = sign_up(svc, "ann@example.com").await;
        let org = svc
            .create(
                &ann,
                &model::ORGANIZATIONS,
                &json!({"name": "Acme", "slug": "acme"}),
                None,
            )
            .await
            .unwrap();
        assert_eq!(org["owner_user_id"], json!(ann.user_id.to_string()));
        let ann = refresh(svc, &token).await;
        let under = ParentRef {
            field: "organization_id",
            id: id_of(&org),
        };
        let members = svc
            .list(
                &ann,
                &model::ORGANIZATION_MEMBERS,
                &ListParams::default(),
                Some(under),
            )
            .await
            .unwrap();
        assert_eq!(members.items.len(), 1);
        assert_eq!(members.items[0]["role"], "owner");
        let last_owner = id_of(&members.items[0]);
        assert!(matches!(
            svc.delete(&ann, &model::ORGANIZATION_MEMBERS, last_owner)
                .await,
            Err(ServiceError::Conflict { .. })
        ));
    }

    /// Second attack on the owner guard, finding 2: whether a change touched an owner was
    /// decided on the membership as read before the write. An administrator who read a
    /// membership just before it became an owner's demoted that owner (and the last owner
    /// could leave behind it). The store now decides on the membership as committed: the
    /// batch such a request builds is refused.
    #[tokio::test]
    async fn regression_an_ownership_change_is_decided_on_the_committed_membership() {
        use ceneca_domain::Record;
        use ceneca_domain::scope::ScopeFilter;
        use ceneca_store::{StoreError, WriteOp};

        let t = services().await;
        let svc = &t.svc;
        let (ann, ann_token) = sign_up(svc, "ann@example.com").await;
        let (bob, _) = sign_up(svc, "bob@example.com").await;
        let (cat, cat_token) = sign_up(svc, "cat@example.com").await;
        let org = svc
            .create(
                &ann,
                &model::ORGANIZATIONS,
                &json!({"name": "Acme", "slug": "acme"}),
                None,
            )
            .await
            .unwrap();
        let ann = refresh(svc, &ann_token).await;
        let under = || {
            Some(ParentRef {
                field: "organization_id",
                id: id_of(&org),
            })
        };
        let member = |user: uuid::Uuid, role: &str| json!({"user_id": user, "role": role});
        let bobs = svc
            .create(
                &ann,
                &model::ORGANIZATION_MEMBERS,
                &member(bob.user_id, "admin"),
                under(),
            )
            .await
            .unwrap();
        svc.create(
            &ann,
            &model::ORGANIZATION_MEMBERS,
            &member(cat.user_id, "admin"),
            under(),
        )
        .await
        .unwrap();
        let cat = refresh(svc, &cat_token).await;
        // Bob is made an owner; cat's request had read him as an administrator.
        svc.update(
            &ann,
            &model::ORGANIZATION_MEMBERS,
            id_of(&bobs),
            &json!({"role": "owner"}),
        )
        .await
        .unwrap();
        let mut set = Record::new();
        set.set("role", ceneca_domain::Value::Text("viewer".into()));
        let stale = ceneca_store::WriteBatch::new(ceneca_store::Actor::default())
            .push(WriteOp::OwnershipChange {
                organization: id_of(&org),
                member: Some(id_of(&bobs)),
                actor: Some(cat.user_id),
                grants_owner: false,
                grantee: None,
            })
            .push(WriteOp::Update {
                entity: &model::ORGANIZATION_MEMBERS,
                id: id_of(&bobs),
                filter: ScopeFilter::All,
                set,
            });
        assert!(matches!(
            svc.store.apply(stale).await,
            Err(StoreError::Refused(_))
        ));
        // Through the API, cat is refused too, and bob is still an owner.
        assert!(matches!(
            svc.update(
                &cat,
                &model::ORGANIZATION_MEMBERS,
                id_of(&bobs),
                &json!({"role": "viewer"})
            )
            .await,
            Err(ServiceError::Forbidden(_))
        ));
        let owners = svc
            .list(
                &ann,
                &model::ORGANIZATION_MEMBERS,
                &ListParams::default(),
                under(),
            )
            .await
            .unwrap()
            .items
            .iter()
            .filter(|m| m["role"] == "owner")
            .count();
        assert_eq!(owners, 2);
    }

    #[tokio::test]
    async fn a_device_token_is_issued_once_and_revoked_with_the_device() {
        let t = services().await;
        let svc = &t.svc;
        let (ann, _) = sign_up(svc, "ann@example.com").await;
        let device = svc
            .create(
                &ann,
                &model::DEVICES,
                &json!({"name": "laptop", "platform": "desktop"}),
                None,
            )
            .await
            .unwrap();
        let token = device["token"].as_str().expect("the token, shown once");
        let as_device = svc
            .authenticate(token, &RequestMeta::default())
            .await
            .unwrap();
        assert_eq!(as_device.user_id, ann.user_id);
        let again = svc
            .get(&ann, &model::DEVICES, id_of(&device), Deleted::Exclude)
            .await
            .unwrap();
        assert!(again.get("token").is_none(), "never shown again");
        svc.delete(&ann, &model::DEVICES, id_of(&device))
            .await
            .unwrap();
        assert!(matches!(
            svc.authenticate(token, &RequestMeta::default()).await,
            Err(ServiceError::Unauthorized(_))
        ));
    }

    /// What a sync replay relies on: the checks complete and refuse rows without writing
    /// anything else; only the effects add rows.
    #[tokio::test]
    async fn checks_alone_write_nothing_besides_the_row() {
        let t = services().await;
        let svc = &t.svc;
        let (ann, _) = sign_up(svc, "ann@example.com").await;
        let cx = Cx {
            svc,
            caller: &ann,
            entity: &model::WORKSPACES,
        };
        let mut row = ceneca_domain::Record::new();
        row.set("id", ceneca_domain::Value::Id(ceneca_domain::new_id()));
        row.set("name", ceneca_domain::Value::Text("Lab".into()));
        let rules = rules_for(&model::WORKSPACES);
        rules.check_create(&cx, &mut row).unwrap();
        rules.check_create(&cx, &mut row).unwrap();
        assert_eq!(
            row.id_of("owner_user_id"),
            Some(ann.user_id),
            "a personal workspace belongs to its creator"
        );
        // In an organization the creator becomes an administrator: an effect.
        row.set(
            "organization_id",
            ceneca_domain::Value::Id(ceneca_domain::new_id()),
        );
        let mut extras = Extras::default();
        rules.create_effects(&cx, &mut row, &mut extras).unwrap();
        assert_eq!(extras.ops.len(), 1);

        let cx = Cx {
            entity: &model::INVOICES,
            ..cx
        };
        let mut invoice = ceneca_domain::Record::new();
        let now = ceneca_domain::clock::now();
        invoice.set("period_start", ceneca_domain::Value::Time(now));
        invoice.set("period_end", ceneca_domain::Value::Time(now));
        assert!(matches!(
            rules_for(&model::INVOICES).check_create(&cx, &mut invoice),
            Err(ServiceError::Validation(_))
        ));
    }
}
