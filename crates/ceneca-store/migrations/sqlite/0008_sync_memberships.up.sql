-- A membership's change-log entries are also its member's (issue 12, the local node): a
-- device learns its user's roles from them. Entries written before carry no member.
UPDATE sync_events
SET scope_user_id = (
    SELECT user_id FROM workspace_members WHERE workspace_members.id = sync_events.entity_id
)
WHERE entity_type = 'workspace member' AND operation <> 'revoke' AND scope_user_id IS NULL;
UPDATE sync_events
SET scope_user_id = (
    SELECT user_id FROM organization_members
    WHERE organization_members.id = sync_events.entity_id
)
WHERE entity_type = 'organization member' AND operation <> 'revoke' AND scope_user_id IS NULL;
