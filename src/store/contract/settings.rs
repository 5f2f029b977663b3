//! Settings: which attributes agents see, unset until an admin chooses.

use super::both_backends;
use crate::store::Store;

fn visible_attributes_are_set_replaced_and_cleared(store: &Store) {
    let read = || store.read_sync(|db| db.visible_attributes()).unwrap();
    assert_eq!(read(), None, "unset: every attribute shows");
    let keys = ["tier".to_owned(), "branch".to_owned()];
    store
        .write_sync(|db| db.set_visible_attributes(Some(&keys), 1_000))
        .unwrap();
    assert_eq!(read(), Some(keys.to_vec()), "in the order chosen");
    store
        .write_sync(|db| db.set_visible_attributes(Some(&["tier".to_owned()]), 2_000))
        .unwrap();
    assert_eq!(read(), Some(vec!["tier".to_owned()]));
    store
        .write_sync(|db| db.set_visible_attributes(Some(&[]), 3_000))
        .unwrap();
    assert_eq!(read(), Some(Vec::new()), "none is a choice too");
    store
        .write_sync(|db| db.set_visible_attributes(None, 4_000))
        .unwrap();
    assert_eq!(read(), None);
    store
        .write_sync(|db| db.set_visible_attributes(None, 5_000))
        .unwrap();
    assert_eq!(read(), None, "clearing twice is fine");
}

both_backends!(visible_attributes_are_set_replaced_and_cleared);
