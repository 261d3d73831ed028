DROP INDEX messages__author_id__id;
DROP INDEX messages__created_at__id;
