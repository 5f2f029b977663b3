//! Reading a request's body before the request counts as in flight.
//!
//! The in-flight limit (`--max-in-flight`) protects the line from more work than it can do at
//! once. A request that holds one of its places while its body trickles in does no work and
//! still keeps a caller's webhook out: a few hundred sockets that announce a body and send one
//! byte would shut the line. So every body is read here first, outside the limit:
//!
//! - under a deadline (`--body-read-timeout`, 2 s): Twilio sends its few hundred bytes at once,
//!   a body still arriving after that gets 408 and its connection is closed;
//! - within the size limit (`MAX_BODY_BYTES`): a larger one gets 413 without being read;
//! - at most `--max-body-reads-per-address` at once from one client address: beyond that, 429 at
//!   once, so one address cannot tie up the server's sockets and memory with unfinished bodies.
//!   Only bodies still arriving count: a request whose body is in, or that has none, never
//!   does, so a busy client that sends whole requests (Twilio, a buffering proxy) is never
//!   refused by it.
//!
//! The handler then gets the body from memory, and the signature check that follows costs no
//! more waiting.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;

use crate::metrics::Metrics;

/// The body reading of one application: its settings and the unfinished bodies per address.
pub struct Intake {
    deadline: Duration,
    max_bytes: usize,
    /// 0: no cap.
    per_address: usize,
    reading: Mutex<HashMap<IpAddr, usize>>,
    metrics: Arc<Metrics>,
}

impl Intake {
    pub fn new(
        deadline: Duration,
        max_bytes: usize,
        per_address: usize,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            deadline,
            max_bytes,
            per_address,
            reading: Mutex::default(),
            metrics,
        }
    }

    /// Counts a body being read from `peer`, or `None` when the address already has its share.
    fn start_reading(&self, peer: IpAddr) -> Option<Reading<'_>> {
        let mut reading = self.reading.lock().unwrap_or_else(PoisonError::into_inner);
        let count = reading.entry(peer).or_insert(0);
        if *count >= self.per_address {
            return None;
        }
        *count += 1;
        Some(Reading { intake: self, peer })
    }
}

/// One body being read from `peer`; uncounted when dropped, however the reading ended.
struct Reading<'a> {
    intake: &'a Intake,
    peer: IpAddr,
}

impl Drop for Reading<'_> {
    fn drop(&mut self) {
        let mut reading = self
            .intake
            .reading
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = reading.get_mut(&self.peer) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                reading.remove(&self.peer);
            }
        }
    }
}

/// The address a cap is counted on: an IPv4 address, or an IPv6 /64 (one subscriber's
/// network, which holds more addresses than anyone could exhaust).
fn address_key(peer: IpAddr) -> IpAddr {
    match peer {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & (u128::MAX << 64)).into()),
        },
    }
}

enum Unread {
    TooLarge,
    Broken,
}

/// The whole body, or why not; at most `max` bytes.
async fn collect(body: Body, max: usize) -> Result<Bytes, Unread> {
    let mut stream = body.into_data_stream();
    let mut out = Vec::new();
    while let Some(chunk) =
        std::future::poll_fn(|cx| futures_core::Stream::poll_next(Pin::new(&mut stream), cx)).await
    {
        let chunk = chunk.map_err(|_| Unread::Broken)?;
        if out.len() + chunk.len() > max {
            return Err(Unread::TooLarge);
        }
        out.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(out))
}

/// A refusal that also closes the connection: what is left of the body is never read.
fn refuse(status: StatusCode, reason: &'static str) -> Response {
    let mut response = crate::error::refusal(status, reason);
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// The middleware: reads the body (see the module comment), then passes the request on with
/// the body in memory.
pub async fn read_body(
    State(intake): State<Arc<Intake>>,
    request: Request,
    next: Next,
) -> Response {
    // Nothing to wait for (GETs, empty POSTs): straight on, counted nowhere.
    if request.body().size_hint().exact() == Some(0) {
        return next.run(request).await;
    }
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > intake.max_bytes as u64) {
        return refuse(StatusCode::PAYLOAD_TOO_LARGE, "request body too large");
    }
    // Requests built in-process (tests driving the router with `oneshot`) have no peer: they
    // are counted on no address.
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| address_key(addr.ip()));
    let reading = match peer {
        Some(peer) if intake.per_address > 0 => match intake.start_reading(peer) {
            Some(reading) => Some(reading),
            None => {
                tracing::warn!(
                    %peer,
                    limit = intake.per_address,
                    "too many unfinished request bodies from one address: refused with 429"
                );
                intake.metrics.error("body_reads_per_address");
                return refuse(
                    StatusCode::TOO_MANY_REQUESTS,
                    "too many unfinished requests from this address",
                );
            }
        },
        _ => None,
    };
    let (parts, body) = request.into_parts();
    let bytes = match tokio::time::timeout(intake.deadline, collect(body, intake.max_bytes)).await {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(Unread::TooLarge)) => {
            return refuse(StatusCode::PAYLOAD_TOO_LARGE, "request body too large");
        }
        Ok(Err(Unread::Broken)) => {
            return refuse(StatusCode::BAD_REQUEST, "request body could not be read");
        }
        Err(_) => {
            tracing::warn!(
                path = parts.uri.path(),
                deadline_ms = intake.deadline.as_millis() as u64,
                "request body not received in time: refused with 408"
            );
            intake.metrics.error("slow_body");
            return refuse(
                StatusCode::REQUEST_TIMEOUT,
                "request body not received in time",
            );
        }
    };
    // The body is in: this address's count drops before the request goes on.
    drop(reading);
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_addresses_are_counted_per_64_and_mapped_ipv4_as_ipv4() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(address_key(a), "2001:db8:1:2::".parse::<IpAddr>().unwrap());
        assert_eq!(address_key(a), address_key(b));
        assert_ne!(address_key(a), address_key(c));
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(address_key(mapped), "192.0.2.7".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn an_address_holds_at_most_its_share_and_gets_it_back() {
        let intake = Intake::new(Duration::from_secs(1), 10, 2, Arc::default());
        let peer: IpAddr = "192.0.2.1".parse().unwrap();
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        let first = intake.start_reading(peer);
        let second = intake.start_reading(peer);
        assert!(first.is_some() && second.is_some());
        assert!(intake.start_reading(peer).is_none());
        assert!(intake.start_reading(other).is_some());
        drop(first);
        assert!(intake.start_reading(peer).is_some());
        drop(second);
        assert!(
            intake.reading.lock().unwrap().is_empty(),
            "no address left behind"
        );
    }
}
