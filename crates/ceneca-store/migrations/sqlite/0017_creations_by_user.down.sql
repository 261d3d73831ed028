DROP INDEX sync_events__user_creates;
