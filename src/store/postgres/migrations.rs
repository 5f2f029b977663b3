//! PostgreSQL's schema, in versions applied in order and recorded in `callgate_migrations`.
//! Nodes starting together take a session advisory lock first, so one migrates and the others
//! wait and then find nothing to do. Never edit a released version: add a new one.
//!
//! The tables are SQLite's (`crate::store::sqlite::migrations`) in PostgreSQL's types: times
//! and counters `BIGINT` (milliseconds since the epoch, as everywhere in callgate), flags
//! `BOOLEAN`, hashes and ciphertexts `BYTEA`, JSON documents `TEXT` (read and written whole).

use anyhow::Context;
use postgres::Client;

/// `pg_advisory_lock` key for migrations: "callgate" in ASCII, as a number.
const MIGRATION_LOCK: i64 = 0x6361_6c6c_6761_7465;

const V1: &str = r#"
CREATE TABLE accounts (
    id                 TEXT PRIMARY KEY,
    name               TEXT NOT NULL,
    phone              TEXT NOT NULL,
    code_hash          BYTEA UNIQUE,
    code_key_version   BIGINT,
    totp_secret        BYTEA,
    totp_key_version   BIGINT,
    totp_last_step     BIGINT,
    attributes         TEXT NOT NULL DEFAULT '{}',
    failed_count       BIGINT NOT NULL DEFAULT 0,
    locked_until       BIGINT,
    created_at         BIGINT NOT NULL,
    test               BOOLEAN NOT NULL DEFAULT FALSE,
    phone_changed_at   BIGINT,
    last_locked_at     BIGINT
);
CREATE INDEX accounts_by_phone ON accounts(phone);

CREATE TABLE call_codes (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id    TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    code_hash     BYTEA NOT NULL,
    key_version   BIGINT NOT NULL,
    created_at    BIGINT NOT NULL,
    expires_at    BIGINT NOT NULL,
    used_at       BIGINT,
    used_by_call  TEXT
);
CREATE UNIQUE INDEX call_codes_unused ON call_codes(code_hash) WHERE used_at IS NULL;
CREATE INDEX call_codes_by_account ON call_codes(account_id);

CREATE TABLE calls (
    call_sid          TEXT PRIMARY KEY,
    caller            TEXT NOT NULL,
    called            TEXT,
    stir_verstat      TEXT,
    script            TEXT NOT NULL,
    script_version    TEXT NOT NULL,              -- the script's content hash
    language          TEXT NOT NULL,
    step              TEXT NOT NULL,
    step_attempts     BIGINT NOT NULL DEFAULT 0,
    step_silences     BIGINT NOT NULL DEFAULT 0,
    account_id        TEXT REFERENCES accounts(id) ON DELETE SET NULL,
    caller_id_match   BOOLEAN NOT NULL DEFAULT FALSE,
    factors           TEXT NOT NULL DEFAULT '',
    level             TEXT NOT NULL DEFAULT 'none',
    failed_attempts   BIGINT NOT NULL DEFAULT 0,
    category          TEXT,                       -- the department
    handoff           TEXT,
    status            TEXT NOT NULL DEFAULT 'in-progress',
    end_reason        TEXT,
    started_at        BIGINT NOT NULL,
    verified_at       BIGINT,
    handed_off_at     BIGINT,
    ended_at          BIGINT,
    duration_secs     BIGINT,
    updated_at        BIGINT NOT NULL,
    script_version_no BIGINT,                     -- the script's version number
    state             TEXT NOT NULL DEFAULT '{}',
    queue_status      TEXT
);
CREATE INDEX calls_by_account ON calls(account_id, started_at);
CREATE INDEX calls_waiting ON calls(queue_status, handed_off_at) WHERE queue_status = 'waiting';

CREATE TABLE failures (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at          BIGINT NOT NULL,
    caller      TEXT NOT NULL,
    account_id  TEXT,
    call_sid    TEXT NOT NULL,
    kind        TEXT NOT NULL
);
CREATE INDEX failures_by_caller ON failures(caller, at);
CREATE INDEX failures_by_account ON failures(account_id, at);

CREATE TABLE number_locks (
    caller        TEXT PRIMARY KEY,
    locked_until  BIGINT NOT NULL
);

CREATE TABLE failure_minutes (
    minute  BIGINT PRIMARY KEY,
    count   BIGINT NOT NULL
);

CREATE TABLE users (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name         TEXT NOT NULL UNIQUE,
    role         TEXT NOT NULL CHECK (role IN ('agent', 'admin')),
    token_hash   BYTEA NOT NULL UNIQUE,
    created_at   BIGINT NOT NULL,
    departments  TEXT NOT NULL DEFAULT ''
);

CREATE TABLE scripts (
    name               TEXT PRIMARY KEY,
    published_version  BIGINT,
    updated_at         BIGINT NOT NULL
);

CREATE TABLE script_versions (
    name        TEXT NOT NULL REFERENCES scripts(name),
    version     BIGINT NOT NULL,
    source      TEXT NOT NULL,
    sha256      TEXT NOT NULL,
    origin      TEXT NOT NULL,
    author      TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (name, version)
);

CREATE TABLE audit_log (
    seq        BIGINT PRIMARY KEY,
    at         BIGINT NOT NULL,
    actor      TEXT NOT NULL,
    action     TEXT NOT NULL,
    subject    TEXT NOT NULL,
    detail     TEXT NOT NULL,
    prev_hash  TEXT NOT NULL,
    hash       TEXT NOT NULL
);
CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only';
END $$;
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();

CREATE TABLE audit_anchor (
    id    BIGINT PRIMARY KEY CHECK (id = 1),
    seq   BIGINT NOT NULL,
    hash  TEXT NOT NULL,
    at    BIGINT NOT NULL
);
-- A delete goes through only for entries the anchor covers: the retention purge moves the
-- anchor first, then drops what it covers, and nothing else can leave a hole in the chain.
-- (SQLite drops and recreates its trigger inside the purge instead; here that DDL would lock
-- audit_log against every node's reads and appends until the purge commits.)
CREATE FUNCTION audit_log_delete_anchored() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.seq <= (SELECT seq FROM audit_anchor WHERE id = 1) THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'audit_log is append-only';
END $$;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_delete_anchored();

CREATE TABLE account_knowledge (
    account_id   TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    question     TEXT NOT NULL,
    answer_hash  BYTEA NOT NULL,
    key_version  BIGINT NOT NULL,
    PRIMARY KEY (account_id, question)
);

CREATE TABLE web_sessions (
    id_hash     BYTEA PRIMARY KEY,
    user_id     BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    csrf_token  TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL
);

CREATE TABLE call_events (
    seq         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    call_sid    TEXT NOT NULL,
    kind        TEXT NOT NULL,
    department  TEXT,
    at          BIGINT NOT NULL
);
CREATE INDEX call_events_by_call ON call_events(call_sid, seq);
CREATE INDEX call_events_by_time ON call_events(at);

CREATE TABLE call_outcomes (
    call_sid    TEXT PRIMARY KEY REFERENCES calls(call_sid) ON DELETE CASCADE,
    resolved    BOOLEAN NOT NULL,
    category    TEXT NOT NULL,
    note        TEXT NOT NULL DEFAULT '',
    recurring   BOOLEAN NOT NULL DEFAULT FALSE,
    agent       TEXT NOT NULL,
    at          BIGINT NOT NULL
);
CREATE INDEX call_outcomes_by_category ON call_outcomes(category, at);

CREATE TABLE settings (
    key         TEXT PRIMARY KEY,
    value       TEXT NOT NULL,
    updated_at  BIGINT NOT NULL
);

CREATE TABLE pop_opens (
    token_hash    BYTEA PRIMARY KEY,
    binding_hash  BYTEA NOT NULL,
    call_sid      TEXT NOT NULL,
    opened_at     BIGINT NOT NULL,
    expires_at    BIGINT NOT NULL
);

CREATE TABLE crm_outbox (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    call_sid      TEXT NOT NULL,
    body          TEXT NOT NULL,
    attempts      BIGINT NOT NULL DEFAULT 0,
    next_at       BIGINT NOT NULL,
    delivered_at  BIGINT,
    failed_at     BIGINT,
    last_error    TEXT,
    created_at    BIGINT NOT NULL
);
CREATE INDEX crm_outbox_due ON crm_outbox(next_at) WHERE delivered_at IS NULL AND failed_at IS NULL;

CREATE TABLE routing_models (
    id                 BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    created_at         BIGINT NOT NULL,
    examples           BIGINT NOT NULL,
    held_out           BIGINT NOT NULL,
    accuracy           DOUBLE PRECISION,
    baseline_accuracy  DOUBLE PRECISION,
    model              TEXT NOT NULL
);

-- Other nodes learn of changes by LISTEN (crate::store::postgres::listen): ids and names only,
-- sent when the writing transaction commits; the tables stay the truth.
CREATE FUNCTION notify_call_event() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('callgate_events', NEW.seq::text);
    RETURN NULL;
END $$;
CREATE TRIGGER call_events_notify AFTER INSERT ON call_events
    FOR EACH ROW EXECUTE FUNCTION notify_call_event();
CREATE FUNCTION notify_audit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('callgate_audit', NEW.action);
    RETURN NULL;
END $$;
CREATE TRIGGER audit_log_notify AFTER INSERT ON audit_log
    FOR EACH ROW EXECUTE FUNCTION notify_audit();
-- A trained speech model is stored by `callgate routing train`, without an audit entry.
CREATE FUNCTION notify_routing_model() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('callgate_audit', 'routing.model');
    RETURN NULL;
END $$;
CREATE TRIGGER routing_models_notify AFTER INSERT ON routing_models
    FOR EACH ROW EXECUTE FUNCTION notify_routing_model();
"#;

/// When the guessing alert was last raised: one row every node reads and claims, so the alert
/// goes out once per period for the desk, not once per node.
const V2: &str = r#"
CREATE TABLE alert_gate (
    id              BIGINT PRIMARY KEY CHECK (id = 1),
    last_raised_at  BIGINT NOT NULL
);
"#;

/// The key ring kept in the database, so every node has the same keys (`verify::custody`):
/// each master key version wrapped under the key-encryption key the nodes read from their
/// environment or key-encryption key file. `key_ring_versions` remembers every number ever
/// given, so a retired version's number is never reused. A change tells every node at commit.
const V3: &str = r#"
CREATE TABLE key_ring (
    version     BIGINT PRIMARY KEY CHECK (version > 0),
    wrapped     BYTEA NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE TABLE key_ring_versions (
    version     BIGINT PRIMARY KEY,
    created_at  BIGINT NOT NULL
);
CREATE FUNCTION notify_key_ring() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('callgate_audit', 'keys.ring');
    RETURN NULL;
END $$;
CREATE TRIGGER key_ring_notify AFTER INSERT OR UPDATE OR DELETE ON key_ring
    FOR EACH STATEMENT EXECUTE FUNCTION notify_key_ring();
"#;

const VERSIONS: &[&str] = &[V1, V2, V3];

/// Brings the schema up to date under the migration lock; returns the version it is at.
pub fn apply(client: &mut Client) -> anyhow::Result<usize> {
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .context("waiting for the migration lock")?;
    let result = apply_locked(client);
    // Released whatever happened; a dropped connection releases it too.
    let unlocked = client.execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK]);
    let version = result?;
    unlocked.context("releasing the migration lock")?;
    Ok(version)
}

fn apply_locked(client: &mut Client) -> anyhow::Result<usize> {
    client.batch_execute(
        "CREATE TABLE IF NOT EXISTS callgate_migrations (
             version     BIGINT PRIMARY KEY,
             applied_at  TIMESTAMPTZ NOT NULL DEFAULT now()
         )",
    )?;
    let done: i64 = client
        .query_one(
            "SELECT COALESCE(MAX(version), 0) FROM callgate_migrations",
            &[],
        )?
        .get(0);
    let done = usize::try_from(done).unwrap_or(0);
    if done > VERSIONS.len() {
        anyhow::bail!(
            "the database's schema is version {done}, newer than this callgate knows ({}): run a newer callgate",
            VERSIONS.len()
        );
    }
    for (i, sql) in VERSIONS.iter().enumerate().skip(done) {
        let version = i64::try_from(i + 1)?;
        let mut tx = client.transaction()?;
        tx.batch_execute(sql)
            .with_context(|| format!("applying schema version {version}"))?;
        tx.execute(
            "INSERT INTO callgate_migrations (version) VALUES ($1)",
            &[&version],
        )?;
        tx.commit()?;
    }
    Ok(VERSIONS.len())
}
