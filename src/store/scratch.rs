//! A scratch database in memory with the full schema and copies of the test accounts: the admin
//! page's call simulator runs the real engine on it, so a simulated call never touches a real
//! call, lockout counter or one-time code.

use std::path::Path;

use anyhow::Context;
use rusqlite::Connection;

pub fn with_test_accounts(live_db: &Path) -> anyhow::Result<Connection> {
    let mut conn = Connection::open_in_memory().context("scratch database")?;
    conn.execute_batch("PRAGMA foreign_keys = ON;")?;
    super::migrations::apply(&mut conn).context("scratch schema")?;
    let path = live_db
        .to_str()
        .context("database path is not UTF-8")?
        .to_owned();
    conn.execute("ATTACH DATABASE ?1 AS live", [path])
        .context("reading the test accounts")?;
    // Same migrations, same column order: whole rows copy across.
    let copied = conn.execute_batch(
        "INSERT INTO main.accounts SELECT * FROM live.accounts WHERE test = 1;
         INSERT INTO main.account_knowledge
             SELECT k.* FROM live.account_knowledge k JOIN main.accounts a ON a.id = k.account_id;
         INSERT INTO main.call_codes
             SELECT c.* FROM live.call_codes c JOIN main.accounts a ON a.id = c.account_id
             WHERE c.used_at IS NULL;",
    );
    conn.execute_batch("DETACH DATABASE live;")?;
    copied.context("copying the test accounts")?;
    Ok(conn)
}
