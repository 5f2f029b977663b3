//! Schema versions, applied in order by rusqlite_migration (tracked in `user_version`).
//! Never edit a released migration: add a new one.

use rusqlite::Connection;
use rusqlite_migration::{M, Migrations};

const V1: &str = r#"
CREATE TABLE accounts (
    id                 TEXT PRIMARY KEY,
    name               TEXT NOT NULL,
    phone              TEXT NOT NULL,            -- E.164
    code_hash          BLOB UNIQUE,              -- HMAC-SHA256 of the account code
    code_key_version   INTEGER,
    totp_secret        BLOB,                     -- AES-256-GCM nonce || ciphertext, AAD = id
    totp_key_version   INTEGER,
    totp_last_step     INTEGER,                  -- last accepted TOTP step (replay guard)
    attributes         TEXT NOT NULL DEFAULT '{}',
    failed_count       INTEGER NOT NULL DEFAULT 0,
    locked_until       INTEGER,                  -- ms; keypad verification refused until then
    created_at         INTEGER NOT NULL
) STRICT;
CREATE INDEX accounts_by_phone ON accounts(phone);

CREATE TABLE call_codes (
    id            INTEGER PRIMARY KEY,
    account_id    TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    code_hash     BLOB NOT NULL,
    key_version   INTEGER NOT NULL,
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL,
    used_at       INTEGER,
    used_by_call  TEXT
) STRICT;
-- An unused code is unique, so a typed code names one account.
CREATE UNIQUE INDEX call_codes_unused ON call_codes(code_hash) WHERE used_at IS NULL;
CREATE INDEX call_codes_by_account ON call_codes(account_id);

CREATE TABLE calls (
    call_sid          TEXT PRIMARY KEY,
    caller            TEXT NOT NULL,             -- E.164 or 'withheld'
    called            TEXT,
    stir_verstat      TEXT,
    script            TEXT NOT NULL,
    script_version    TEXT NOT NULL,
    language          TEXT NOT NULL,
    step              TEXT NOT NULL,
    step_attempts     INTEGER NOT NULL DEFAULT 0,
    step_silences     INTEGER NOT NULL DEFAULT 0,
    account_id        TEXT REFERENCES accounts(id) ON DELETE SET NULL,
    caller_id_match   INTEGER NOT NULL DEFAULT 0,
    factors           TEXT NOT NULL DEFAULT '',
    level             TEXT NOT NULL DEFAULT 'none',
    failed_attempts   INTEGER NOT NULL DEFAULT 0,
    category          TEXT,
    handoff           TEXT,
    status            TEXT NOT NULL DEFAULT 'in-progress',
    end_reason        TEXT,
    started_at        INTEGER NOT NULL,
    verified_at       INTEGER,
    handed_off_at     INTEGER,
    ended_at          INTEGER,
    duration_secs     INTEGER,
    updated_at        INTEGER NOT NULL
) STRICT;
CREATE INDEX calls_by_account ON calls(account_id, started_at);

-- Failed verifications, the memory of the per-number and global limits.
CREATE TABLE failures (
    id          INTEGER PRIMARY KEY,
    at          INTEGER NOT NULL,
    caller      TEXT NOT NULL,
    account_id  TEXT,
    call_sid    TEXT NOT NULL,
    kind        TEXT NOT NULL
) STRICT;
CREATE INDEX failures_by_caller ON failures(caller, at);
CREATE INDEX failures_by_time ON failures(at);
CREATE INDEX failures_by_account ON failures(account_id, at);

CREATE TABLE number_locks (
    caller        TEXT PRIMARY KEY,
    locked_until  INTEGER NOT NULL
) STRICT;

CREATE TABLE users (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    role        TEXT NOT NULL CHECK (role IN ('agent', 'admin')),
    token_hash  BLOB NOT NULL UNIQUE,           -- SHA-256 of a 256-bit random token
    created_at  INTEGER NOT NULL
) STRICT;
"#;

/// Failures per minute across the system, for the global alert. Counting the `failures` rows of
/// the last minute on every failure cost O(failures per minute) and was 18% of the server's CPU
/// under a guessing-heavy load; a counter per minute is O(1).
const V2: &str = r#"
CREATE TABLE failure_minutes (
    minute  INTEGER PRIMARY KEY,   -- ms since the epoch / 60000
    count   INTEGER NOT NULL
) STRICT;
-- Only the old global count read it; every failure paid for keeping it.
DROP INDEX failures_by_time;
"#;

fn migrations() -> Migrations<'static> {
    Migrations::new(vec![M::up(V1), M::up(V2)])
}

pub fn apply(conn: &mut Connection) -> Result<(), rusqlite_migration::Error> {
    migrations().to_latest(conn)
}

#[cfg(test)]
mod tests {
    #[test]
    fn migrations_are_valid() {
        let mut conn = rusqlite::Connection::open_in_memory().unwrap();
        super::apply(&mut conn).unwrap();
        super::migrations().validate().unwrap();
    }
}
