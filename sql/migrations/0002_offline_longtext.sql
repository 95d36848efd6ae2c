-- chatd schema, version 2.
-- A stored message is the frame chatd forwards: what the sender sent plus
-- its id, name and time, so it can be up to about 200 bytes longer than
-- max_frame.  MEDIUMTEXT ends at 16777215 bytes, one below the largest
-- max_frame (16 MiB); such a message was refused as "data too long".
-- LONGTEXT holds any.  The ALTER may be applied again.

ALTER TABLE offlinemessages MODIFY message LONGTEXT NOT NULL;

INSERT IGNORE INTO schema_version (version) VALUES (2);
