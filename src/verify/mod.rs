//! Verifying a caller: what counts as proof and what a failure costs.
//!
//! - `checks`: the checks a verify step runs (codes, TOTP, knowledge answers) and crediting the
//!   factors to the call.
//! - `guessing`: counting failures against the limits; locks, their audit entries, the alert.
//! - `limits`: the guessing limits (settings).
//! - `assurance`: the level the factors add up to.
//! - `keys`, `totp`, `call_code`: the server key and what it protects, authenticator codes,
//!   one-time call codes.
//! - `custody`, `kek`: where the master keys are kept (the key file, or the database's key ring
//!   wrapped under a key-encryption key so several nodes share it) and how they change.
//!
//! The store keeps the counts and the secrets; the decisions are made here.

pub mod assurance;
pub mod call_code;
pub mod checks;
pub mod custody;
pub mod guessing;
pub mod kek;
pub mod keys;
pub mod limits;
pub mod totp;

pub use assurance::{AssuranceLevel, Factor, Factors};
pub use checks::{Check, CodeCheck, Refusal, Verifier};
pub use custody::KeyCustody;
pub use guessing::{AlertGate, FailureOutcome, Watch};
pub use keys::{Keyring, LiveKeyring, Purpose};
pub use limits::Limits;
