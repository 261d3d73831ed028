-- Reverts 0003.
DROP TRIGGER embedding_records_outbox_insert;
DROP TRIGGER embedding_records_outbox_update;
DROP TRIGGER embedding_records_outbox_delete;
DROP TABLE vector_outbox;
