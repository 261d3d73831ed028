//! Organizations: the creator owns the organization and becomes its first owner member.

use ceneca_domain::{Record, Value, model};
use ceneca_store::WriteOp;

use super::{Cx, EntityRules, Extras, me, new_row, new_row_id};
use crate::error::Result;

pub(super) struct Organizations;

impl EntityRules for Organizations {
    fn table(&self) -> Option<&'static str> {
        Some("organizations")
    }

    fn check_create(&self, cx: &Cx<'_>, record: &mut Record) -> Result<()> {
        record.set("owner_user_id", me(cx.caller));
        Ok(())
    }

    fn create_effects(&self, cx: &Cx<'_>, record: &mut Record, extras: &mut Extras) -> Result<()> {
        let id = new_row_id(record)?;
        extras.ops.push(WriteOp::Insert {
            entity: &model::ORGANIZATION_MEMBERS,
            record: new_row(
                &[
                    ("organization_id", Value::Id(id)),
                    ("user_id", me(cx.caller)),
                    ("role", Value::Text("owner".into())),
                ],
                &model::ORGANIZATION_MEMBERS,
            ),
        });
        Ok(())
    }
}
