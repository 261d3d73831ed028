DROP TABLE vector_index_owner;
DROP INDEX vector_outbox__points;
