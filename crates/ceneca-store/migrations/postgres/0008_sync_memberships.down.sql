UPDATE sync_events
SET scope_user_id = NULL
WHERE entity_type IN ('workspace member', 'organization member') AND operation <> 'revoke';
