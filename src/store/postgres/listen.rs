//! Hearing the other nodes: a thread with a connection of its own that LISTENs on the channels
//! the schema's triggers notify (`callgate_events`, `callgate_audit`) and passes what it hears
//! on. When the database goes away it reconnects by itself, with back-off, and says `Resumed`.

use std::time::Duration;

use postgres::Client;
use postgres::fallible_iterator::FallibleIterator;
use tokio::sync::mpsc;

use crate::store::changes::{Change, ChangeFeed};

pub fn spawn(config: postgres::Config) -> ChangeFeed {
    let (tx, rx) = mpsc::unbounded_channel();
    let spawned = std::thread::Builder::new()
        .name("pg-listen".into())
        .spawn(move || listen(config, tx));
    if let Err(e) = spawned {
        tracing::error!("cannot start the PostgreSQL listener: {e}");
    }
    rx
}

fn listen(config: postgres::Config, tx: mpsc::UnboundedSender<Change>) {
    let mut backoff = Duration::from_millis(100);
    let mut first = true;
    while !tx.is_closed() {
        let connected = super::pool::connect_within(&config).and_then(|mut c| {
            c.batch_execute("LISTEN callgate_events; LISTEN callgate_audit")
                .map_err(std::io::Error::other)?;
            Ok(c)
        });
        match connected {
            Ok(client) => {
                backoff = Duration::from_millis(100);
                if !first {
                    tracing::info!("PostgreSQL listener connected again");
                    if tx.send(Change::Resumed).is_err() {
                        return;
                    }
                }
                first = false;
                relay(client, &tx);
            }
            Err(e) => {
                tracing::warn!(error = %e, "PostgreSQL listener cannot connect; retrying");
            }
        }
        std::thread::sleep(backoff);
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

/// Passes notifications on until the connection fails or nobody listens any more.
fn relay(mut client: Client, tx: &mpsc::UnboundedSender<Change>) {
    loop {
        {
            let mut notes = client.notifications();
            let mut heard = notes.timeout_iter(Duration::from_secs(1));
            loop {
                match heard.next() {
                    Ok(Some(n)) => {
                        let change = match n.channel() {
                            "callgate_events" => match n.payload().parse() {
                                Ok(seq) => Change::CallEvent(seq),
                                Err(_) => continue,
                            },
                            "callgate_audit" => Change::Audited(n.payload().to_owned()),
                            _ => continue,
                        };
                        if tx.send(change).is_err() {
                            return;
                        }
                    }
                    // A quiet second: see whether anyone still listens, and that the connection lives.
                    Ok(None) => break,
                    Err(e) => {
                        tracing::warn!(error = %e, "PostgreSQL listener lost its connection");
                        return;
                    }
                }
            }
        }
        if tx.is_closed() || client.is_valid(Duration::from_secs(2)).is_err() {
            return;
        }
    }
}
