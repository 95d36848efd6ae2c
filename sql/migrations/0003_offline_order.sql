-- chatd schema, version 3.
-- Offline messages are delivered in the order chatd accepted them, not
-- in the order their rows were inserted: a message on its way to a
-- session that ends is stored by the recipient's worker (or host) while
-- the sender's next messages, finding the recipient offline, are stored
-- by the sender's, and the two inserts may commit in either order.
-- ord is the stored frame's "tus" (microseconds since 1970, strictly
-- increasing for the messages of one sender; see chat-protocol(7)).
-- Rows stored before this migration get 0 and come first, as they are
-- older than any stored after it.  The index replaces (userid, id) for
-- the fetch and for the foreign key.  The ALTER may be applied again.

ALTER TABLE offlinemessages
	ADD COLUMN IF NOT EXISTS ord BIGINT UNSIGNED NOT NULL DEFAULT 0
		AFTER userid,
	ADD KEY IF NOT EXISTS offlinemessages_order (userid, ord, id),
	DROP KEY IF EXISTS offlinemessages_user;

INSERT IGNORE INTO schema_version (version) VALUES (3);
