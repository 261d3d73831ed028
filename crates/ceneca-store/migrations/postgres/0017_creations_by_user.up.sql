-- Who created what, read from the change log (which keeps every row's creation): an
-- export takes a user's documents, files, projects and flows in shared workspaces from
-- it, without a scan of the whole log per entity.
CREATE INDEX sync_events__user_creates ON sync_events (user_id, entity_type, seq)
    WHERE operation = 'create';
