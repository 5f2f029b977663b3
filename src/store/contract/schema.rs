//! Opening a store: the schema is created once and opening again changes nothing.

use super::both_backends;
use crate::store::Store;

fn a_new_store_is_empty_and_answers(store: &Store) {
    let (users, accounts) = store
        .read_sync(|db| Ok((db.users()?.len(), db.count_accounts()?)))
        .unwrap();
    assert_eq!((users, accounts), (0, 0));
}

fn a_failing_write_changes_nothing(store: &Store) {
    let result: anyhow::Result<()> = store.write_sync(|db| {
        db.add_user("ada", crate::store::users::Role::Admin, &[], 1)?;
        anyhow::bail!("refused after the insert")
    });
    assert!(result.is_err());
    let users = store.read_sync(|db| db.users()).unwrap();
    assert!(users.is_empty(), "{:?}", users.len());
}

both_backends!(
    a_new_store_is_empty_and_answers,
    a_failing_write_changes_nothing
);
