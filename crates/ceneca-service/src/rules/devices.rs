//! Devices: registering one issues its device token (shown once), which follows a
//! session policy of its own; deleting the device revokes the token.

use async_trait::async_trait;
use ceneca_crypto::token;
use ceneca_domain::clock::now;
use ceneca_domain::scope::ScopeFilter;
use ceneca_domain::{Record, Value, model};
use ceneca_store::WriteOp;
use serde_json::Value as Json;
use uuid::Uuid;

use super::{Cx, EntityRules, Extras, me, new_row, new_row_id};
use crate::error::Result;

pub(super) struct Devices;

#[async_trait]
impl EntityRules for Devices {
    fn table(&self) -> Option<&'static str> {
        Some("devices")
    }

    fn create_effects(&self, cx: &Cx<'_>, record: &mut Record, extras: &mut Extras) -> Result<()> {
        let id = new_row_id(record)?;
        let device_token = token::generate();
        let digest = token::digest(&device_token);
        record.set("token_hash", Value::Bytes(digest.clone()));
        // Device tokens follow a session policy of their own: a bounded lifetime, an idle
        // timeout (see `authenticate`), revoked with the device.
        let lifetime = time::Duration::try_from(cx.svc.config.device_token_lifetime)
            .unwrap_or(time::Duration::days(90));
        let expires = now() + lifetime;
        extras.ops.push(WriteOp::Insert {
            entity: &model::SESSIONS,
            record: new_row(
                &[
                    ("user_id", me(cx.caller)),
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
        Ok(())
    }

    async fn delete_effects(
        &self,
        _cx: &Cx<'_>,
        id: Uuid,
        _row: Option<&Record>,
        extras: &mut Extras,
    ) -> Result<()> {
        // Deleting a device revokes its token at once. The delete itself is scoped to the
        // caller's devices, and a failed delete rolls this back with it.
        let mut set = Record::new();
        set.set("revoked_at", Value::Time(now()));
        extras.ops.push(WriteOp::UpdateAll {
            entity: &model::SESSIONS,
            filter: ScopeFilter::AnyOf(vec![("device_id", vec![id])]),
            set,
        });
        Ok(())
    }
}
