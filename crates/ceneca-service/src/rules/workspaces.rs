//! Workspaces: a personal workspace (no organization) is owned by its creator; in an
//! organization, the creator becomes the workspace's first administrator.

use ceneca_domain::{Record, Value, model};
use ceneca_store::WriteOp;

use super::{Cx, EntityRules, Extras, me, new_row, new_row_id};
use crate::error::Result;

pub(super) struct Workspaces;

impl EntityRules for Workspaces {
    fn table(&self) -> Option<&'static str> {
        Some("workspaces")
    }

    fn check_create(&self, cx: &Cx<'_>, record: &mut Record) -> Result<()> {
        if record.id_of("organization_id").is_none() {
            record.set("owner_user_id", me(cx.caller));
        }
        Ok(())
    }

    fn create_effects(&self, cx: &Cx<'_>, record: &mut Record, extras: &mut Extras) -> Result<()> {
        if record.id_of("organization_id").is_some() {
            let id = new_row_id(record)?;
            extras.ops.push(WriteOp::Insert {
                entity: &model::WORKSPACE_MEMBERS,
                record: new_row(
                    &[
                        ("workspace_id", Value::Id(id)),
                        ("user_id", me(cx.caller)),
                        ("role", Value::Text("admin".into())),
                        ("invited_by", me(cx.caller)),
                    ],
                    &model::WORKSPACE_MEMBERS,
                ),
            });
        }
        Ok(())
    }
}
