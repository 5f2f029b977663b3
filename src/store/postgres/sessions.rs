//! sessions on PostgreSQL.

#![allow(unused_imports)]

use super::{PgDb, not_yet};
use crate::store::sessions::*;
use crate::store::users::User;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

impl SessionsDb for PgDb<'_> {
    fn create_session(&self, _user_id: i64, _now: i64) -> anyhow::Result<NewSession> {
        Err(not_yet())
    }

    fn lookup_session(&self, _id: &str, _now: i64) -> anyhow::Result<Lookup> {
        Err(not_yet())
    }

    fn delete_session(&self, _id: &str, _now: i64) -> anyhow::Result<()> {
        Err(not_yet())
    }

    fn delete_expired_sessions(&self, _now: i64) -> anyhow::Result<usize> {
        Err(not_yet())
    }
}
