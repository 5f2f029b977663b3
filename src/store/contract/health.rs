//! Health: what `/healthz` asks of the storage.

use super::both_backends;
use crate::store::Store;

fn a_reachable_store_answers_the_ping(store: &Store) {
    store.read_sync(|db| db.ping()).unwrap();
    // In a write transaction too, and the ping changes nothing.
    store.write_sync(|db| db.ping()).unwrap();
    assert_eq!(store.read_sync(|db| db.last_event_seq()).unwrap(), 0);
}

both_backends!(a_reachable_store_answers_the_ping);
