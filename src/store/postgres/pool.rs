//! The pool's connections, made and checked against deadlines, so a database that stops
//! answering costs a caller an apology within seconds rather than a silence Twilio gives up on.
//!
//! What can hang, and what bounds it:
//! - the TCP connect to a host that drops packets: `connect_timeout` ([`CONNECT_DEADLINE`]);
//! - the start-up handshake with a server (or a proxy) that accepts but never answers: the
//!   driver has no bound for it, so [`connect_within`] waits for it on a thread of its own and
//!   gives up at the deadline (the thread ends when the socket does);
//! - a pooled connection whose peer went away while it sat idle: checked on every check-out
//!   with a trivial query under [`CHECK_DEADLINE`] (r2d2's `test_on_check_out`); a dead one is
//!   dropped and the pool connects afresh, so the first job after a database restart runs on a
//!   new connection instead of failing on an old one;
//! - a statement whose answer never comes: the client side has no statement deadline, so the
//!   caller's webhook has its own (`twilio::routes`), and TCP keepalives with a user timeout
//!   make the kernel close a connection to a host that is gone (about 15 s);
//! - the server's side of a node that vanished mid-transaction, holding row and advisory locks
//!   every node needs: `idle_in_transaction_session_timeout` and server keepalives end it.
//!
//! No `statement_timeout`: the retention purge and the migrations may rightly run long, and a
//! caller's wait is bounded on the client side.

use std::io;
use std::sync::mpsc;
use std::time::Duration;

use postgres::{Client, Config, NoTls};

/// The TCP connect and the handshake, each.
pub const CONNECT_DEADLINE: Duration = Duration::from_secs(3);
/// The trivial query that shows a pooled connection alive before a job gets it.
pub const CHECK_DEADLINE: Duration = Duration::from_secs(1);
/// How long a job waits for a connection from the pool, retries of fresh connects included.
pub const CHECKOUT_DEADLINE: Duration = Duration::from_secs(4);

/// Settings asked of the server for every connection of ours: end a session left idle inside
/// a transaction (its node hung or was cut off) so its locks do not block the other nodes, and
/// probe the client's socket so a vanished node's session ends within seconds, not hours.
const SESSION_OPTIONS: &str = "-c idle_in_transaction_session_timeout=60s \
     -c tcp_keepalives_idle=10 -c tcp_keepalives_interval=2 -c tcp_keepalives_count=3";

/// `config` with callgate's deadlines where the URL set none.
pub fn hardened(mut config: Config) -> Config {
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_DEADLINE);
    }
    if config.get_tcp_user_timeout().is_none() {
        // Data the server has not acknowledged for this long: the connection is dead.
        config.tcp_user_timeout(Duration::from_secs(10));
    }
    if config.get_keepalives() && config.get_keepalives_idle() == Duration::from_secs(2 * 3600) {
        // The driver's default (two hours) would keep a dead idle connection for as long.
        config
            .keepalives_idle(Duration::from_secs(5))
            .keepalives_interval(Duration::from_secs(2))
            .keepalives_retries(3);
    }
    let options = match config.get_options() {
        Some(theirs) if !theirs.trim().is_empty() => format!("{SESSION_OPTIONS} {theirs}"),
        _ => SESSION_OPTIONS.to_owned(),
    };
    config.options(&options);
    config
}

/// Connects, the handshake included, within [`CONNECT_DEADLINE`].
pub fn connect_within(config: &Config) -> io::Result<Client> {
    let (tx, rx) = mpsc::sync_channel(1);
    let config = config.clone();
    std::thread::Builder::new()
        .name("pg-connect".into())
        .spawn(move || {
            // Too late, nobody receives: the client is dropped here, on this thread.
            let _ = tx.send(config.connect(NoTls));
        })?;
    match rx.recv_timeout(CONNECT_DEADLINE) {
        Ok(connected) => connected.map_err(io::Error::other),
        Err(mpsc::RecvTimeoutError::Timeout) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!(
                "the database did not complete the connection within {} s",
                CONNECT_DEADLINE.as_secs()
            ),
        )),
        Err(mpsc::RecvTimeoutError::Disconnected) => Err(io::Error::other(
            "the connecting thread ended without an answer",
        )),
    }
}

/// r2d2's manager: [`connect_within`] to connect, a bounded trivial query to check.
pub struct Manager {
    config: Config,
}

impl Manager {
    pub fn new(config: Config) -> Self {
        Self { config }
    }
}

impl r2d2::ManageConnection for Manager {
    type Connection = Client;
    type Error = io::Error;

    fn connect(&self) -> io::Result<Client> {
        connect_within(&self.config)
    }

    fn is_valid(&self, client: &mut Client) -> io::Result<()> {
        client.is_valid(CHECK_DEADLINE).map_err(io::Error::other)
    }

    fn has_broken(&self, client: &mut Client) -> bool {
        client.is_closed()
    }
}
