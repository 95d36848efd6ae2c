-- chatd schema, version 1.
-- Applied once to an empty database (chatd refuses to start unless
-- schema_version holds the version it was built for).  utf8mb4 throughout;
-- InnoDB for foreign keys and transactions.  Table names keep the classic
-- system's meaning with names that are not reserved words.

CREATE TABLE IF NOT EXISTS schema_version (
	version INT UNSIGNED NOT NULL PRIMARY KEY,
	applied_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Names compare byte for byte (utf8mb4_bin): what a user typed is what
-- is unique.  password holds a libsodium argon2id string.
CREATE TABLE IF NOT EXISTS users (
	id INT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
	name VARCHAR(64) NOT NULL,
	password VARCHAR(255) NOT NULL,
	created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
	UNIQUE KEY users_name (name)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Friendship is mutual and stored in both directions, so "friends of X"
-- is one index range on the primary key.
CREATE TABLE IF NOT EXISTS friends (
	userid INT UNSIGNED NOT NULL,
	friendid INT UNSIGNED NOT NULL,
	PRIMARY KEY (userid, friendid),
	KEY friends_friendid (friendid),
	CONSTRAINT friends_user FOREIGN KEY (userid) REFERENCES users (id)
		ON DELETE CASCADE,
	CONSTRAINT friends_friend FOREIGN KEY (friendid) REFERENCES users (id)
		ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS chatgroups (
	id INT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
	groupname VARCHAR(64) NOT NULL,
	groupdesc VARCHAR(255) NOT NULL DEFAULT '',
	created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
	UNIQUE KEY chatgroups_name (groupname)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS groupmembers (
	groupid INT UNSIGNED NOT NULL,
	userid INT UNSIGNED NOT NULL,
	grouprole ENUM('creator', 'normal') NOT NULL DEFAULT 'normal',
	joined_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
	PRIMARY KEY (groupid, userid),
	KEY groupmembers_userid (userid),
	CONSTRAINT groupmembers_group FOREIGN KEY (groupid)
		REFERENCES chatgroups (id) ON DELETE CASCADE,
	CONSTRAINT groupmembers_user FOREIGN KEY (userid)
		REFERENCES users (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- One row per undelivered frame, in arrival order by id.  MEDIUMTEXT was
-- meant to hold any frame up to the largest max_frame; 0002 makes it LONGTEXT.
CREATE TABLE IF NOT EXISTS offlinemessages (
	id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
	userid INT UNSIGNED NOT NULL,
	message MEDIUMTEXT NOT NULL,
	created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
	KEY offlinemessages_user (userid, id),
	CONSTRAINT offlinemessages_user FOREIGN KEY (userid)
		REFERENCES users (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

INSERT IGNORE INTO schema_version (version) VALUES (1);
