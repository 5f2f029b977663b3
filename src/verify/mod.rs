//! Verifying a caller: the server key and what it protects (`keys`), TOTP (`totp`), one-time
//! call codes (`call_code`), the assurance level the factors add up to (`assurance`), and the
//! limits on guessing (`limits`). The decisions that touch the database are in `crate::store`.

pub mod assurance;
pub mod call_code;
pub mod keys;
pub mod limits;
pub mod totp;

pub use assurance::{AssuranceLevel, Factor, Factors};
pub use keys::{Keyring, LiveKeyring, Purpose};
pub use limits::Limits;
