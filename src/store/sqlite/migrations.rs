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

/// Issue 3 and 4: scripts as versions in the database, an append-only audit trail chained by
/// hash, knowledge answers, test accounts for the simulator, web sessions, agents' departments.
const V3: &str = r#"
CREATE TABLE scripts (
    name               TEXT PRIMARY KEY,
    published_version  INTEGER,                -- NULL until a version is published
    updated_at         INTEGER NOT NULL
) STRICT;

CREATE TABLE script_versions (
    name        TEXT NOT NULL REFERENCES scripts(name),
    version     INTEGER NOT NULL,              -- 1, 2, 3 ... per script
    source      TEXT NOT NULL,                 -- the TOML text exactly as written
    sha256      TEXT NOT NULL,                 -- of the source, to see a file changed
    origin      TEXT NOT NULL,                 -- 'file', 'api', 'rollback'
    author      TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (name, version)
) STRICT;

-- Append-only: every change an admin or an import makes. Each row's hash covers the previous
-- row's hash, so a deleted or edited row breaks the chain (`callgate audit verify`).
CREATE TABLE audit_log (
    seq        INTEGER PRIMARY KEY,            -- 1, 2, 3 ... without holes
    at         INTEGER NOT NULL,
    actor      TEXT NOT NULL,
    action     TEXT NOT NULL,
    subject    TEXT NOT NULL,
    detail     TEXT NOT NULL,                  -- a diff or a JSON description; never a secret
    prev_hash  TEXT NOT NULL,
    hash       TEXT NOT NULL
) STRICT;
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
    BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
    BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;

-- Knowledge answers (date of birth as DDMMYYYY, ...) as keyed hashes.
CREATE TABLE account_knowledge (
    account_id   TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    question     TEXT NOT NULL,
    answer_hash  BLOB NOT NULL,
    key_version  INTEGER NOT NULL,
    PRIMARY KEY (account_id, question)
) STRICT;

-- Test accounts: the only accounts the admin page's call simulator sees.
ALTER TABLE accounts ADD COLUMN test INTEGER NOT NULL DEFAULT 0;

-- Browser sessions of agents and admins (cookie holds the id; only its SHA-256 is stored).
CREATE TABLE web_sessions (
    id_hash     BLOB PRIMARY KEY,
    user_id     INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    csrf_token  TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL
) STRICT;

-- The departments (categories) an agent serves, comma-separated; empty for admins.
ALTER TABLE users ADD COLUMN departments TEXT NOT NULL DEFAULT '';

-- Where a call is in its script's graph, and the numbered script version it runs.
ALTER TABLE calls ADD COLUMN script_version_no INTEGER;
ALTER TABLE calls ADD COLUMN state TEXT NOT NULL DEFAULT '{}';
"#;

/// Issue 4, the agent side: what happened to a call after the IVR (queue status, the agent's
/// outcome), the numbered events the agent console follows live and catches up on, which
/// account attributes agents see, the screen-pop URLs' one-session binding, the CRM webhook's
/// outbox, and the account facts behind two risk flags.
const V4: &str = r#"
-- How the hand-off went: waiting, answered, abandoned (hung up in the queue), unanswered, ended.
ALTER TABLE calls ADD COLUMN queue_status TEXT;
CREATE INDEX calls_waiting ON calls(queue_status, handed_off_at) WHERE queue_status = 'waiting';

-- Every change an agent console shows, numbered: the SSE event id. A console that reconnects
-- sends the last number it saw and is sent what came after.
CREATE TABLE call_events (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    call_sid    TEXT NOT NULL,
    kind        TEXT NOT NULL,               -- handoff, status, outcome
    department  TEXT,                        -- the call's category when it happened
    at          INTEGER NOT NULL
) STRICT;
CREATE INDEX call_events_by_call ON call_events(call_sid, seq);
CREATE INDEX call_events_by_time ON call_events(at);

-- What the agent recorded (one per call; a correction replaces it).
CREATE TABLE call_outcomes (
    call_sid    TEXT PRIMARY KEY REFERENCES calls(call_sid) ON DELETE CASCADE,
    resolved    INTEGER NOT NULL,
    category    TEXT NOT NULL,               -- the confirmed department
    note        TEXT NOT NULL DEFAULT '',
    recurring   INTEGER NOT NULL DEFAULT 0,  -- the "recurring problem" tag
    agent       TEXT NOT NULL,
    at          INTEGER NOT NULL
) STRICT;
CREATE INDEX call_outcomes_by_category ON call_outcomes(category, at);

-- Server-wide settings an admin changes at run time (`visible_attributes`: a JSON list).
CREATE TABLE settings (
    key         TEXT PRIMARY KEY,
    value       TEXT NOT NULL,
    updated_at  INTEGER NOT NULL
) STRICT;

-- A screen-pop URL is bound to the browser session that opened it first (both as SHA-256).
CREATE TABLE pop_opens (
    token_hash    BLOB PRIMARY KEY,
    binding_hash  BLOB NOT NULL,
    call_sid      TEXT NOT NULL,
    opened_at     INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL
) STRICT;

-- Screen-pops waiting to be POSTed to the CRM webhook; survives restarts.
CREATE TABLE crm_outbox (
    id            INTEGER PRIMARY KEY,
    call_sid      TEXT NOT NULL,
    body          TEXT NOT NULL,
    attempts      INTEGER NOT NULL DEFAULT 0,
    next_at       INTEGER NOT NULL,
    delivered_at  INTEGER,
    failed_at     INTEGER,                   -- gave up after the last retry
    last_error    TEXT,
    created_at    INTEGER NOT NULL
) STRICT;
CREATE INDEX crm_outbox_due ON crm_outbox(next_at) WHERE delivered_at IS NULL AND failed_at IS NULL;

-- Risk flags: the registered phone changed recently; the account was locked recently.
ALTER TABLE accounts ADD COLUMN phone_changed_at INTEGER;
ALTER TABLE accounts ADD COLUMN last_locked_at INTEGER;
"#;

/// Issue 7: the retention purge may drop the oldest audit entries; the anchor keeps the hash
/// and number of the last one dropped, so the rest of the chain still verifies from there.
const V5: &str = r#"
CREATE TABLE audit_anchor (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    seq   INTEGER NOT NULL,
    hash  TEXT NOT NULL,
    at    INTEGER NOT NULL
) STRICT;
"#;

/// Issue 7: speech-routing models trained from the categories agents confirmed.
const V6: &str = r#"
CREATE TABLE routing_models (
    id                 INTEGER PRIMARY KEY,
    created_at         INTEGER NOT NULL,
    examples           INTEGER NOT NULL,   -- utterances trained on
    held_out           INTEGER NOT NULL,   -- utterances kept aside to measure it
    accuracy           REAL,               -- on the held-out ones, with the script phrases
    baseline_accuracy  REAL,               -- the script phrases alone, on the same ones
    model              TEXT NOT NULL       -- JSON
) STRICT;
"#;

/// Issue 13: when the guessing alert was last raised, in the database, so that several servers
/// on one database raise it once per period between them, not once each.
const V7: &str = r#"
CREATE TABLE alert_gate (
    id              INTEGER PRIMARY KEY CHECK (id = 1),
    last_raised_at  INTEGER NOT NULL
) STRICT;
"#;

fn migrations() -> Migrations<'static> {
    Migrations::new(vec![
        M::up(V1),
        M::up(V2),
        M::up(V3),
        M::up(V4),
        M::up(V5),
        M::up(V6),
        M::up(V7),
    ])
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
