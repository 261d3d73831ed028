//! AI provider configurations: the base URL follows the edition's policy, and the API
//! key is sealed (encrypted with the row's identity, answered with a masked hint).

use ceneca_domain::Record;
use uuid::Uuid;

use super::{Cx, EntityRules, new_row_id, text};
use crate::Services;
use crate::error::{Result, ServiceError};
use crate::secrets::seal_secrets;

pub(super) struct AiProviderConfigs;

fn check_url_policy(svc: &Services, record: &Record, field: &str) -> Result<()> {
    if let Some(url) = text(record, field) {
        svc.config
            .edition
            .check_url(&svc.config.internal_hosts, url)
            .map_err(|r| ServiceError::invalid(field, r))?;
    }
    Ok(())
}

/// A provider config without a base URL means the provider's own public host: the
/// zero-sync edition needs one inside the network.
fn require_base_url(svc: &Services, record: &Record) -> Result<()> {
    if svc.config.edition == ceneca_domain::Edition::ZeroSync && text(record, "base_url").is_none()
    {
        return Err(ServiceError::invalid(
            "base_url",
            "is required in the zero-sync edition: without it a client uses the provider's \
             public host; give the address of the model server inside the network (for \
             example http://localhost:11434 for Ollama)",
        ));
    }
    Ok(())
}

impl EntityRules for AiProviderConfigs {
    fn table(&self) -> Option<&'static str> {
        Some("ai_provider_configs")
    }

    fn check_create(&self, cx: &Cx<'_>, record: &mut Record) -> Result<()> {
        let id = new_row_id(record)?;
        require_base_url(cx.svc, record)?;
        check_url_policy(cx.svc, record, "base_url")?;
        let owner_row = record.clone();
        seal_secrets(cx.svc, cx.entity, id, &owner_row, record);
        Ok(())
    }

    fn needs_current_row(&self) -> bool {
        true
    }

    fn check_update(
        &self,
        cx: &Cx<'_>,
        id: Uuid,
        current: Option<&Record>,
        set: &mut Record,
    ) -> Result<()> {
        if set.get("base_url").is_some() {
            // Clearing it would leave the provider's public host.
            require_base_url(cx.svc, set)?;
        }
        check_url_policy(cx.svc, set, "base_url")?;
        let current =
            current.ok_or_else(|| ServiceError::Internal("config row not loaded".into()))?;
        seal_secrets(cx.svc, cx.entity, id, current, set);
        Ok(())
    }
}
