-- Reverts 0003.
DROP TRIGGER embedding_records_outbox ON embedding_records;
DROP FUNCTION ceneca_vector_outbox();
DROP TABLE vector_outbox;
