//! Keys, tokens and secrets.
//!
//! `keys` holds the signing keys (database-backed, cached parsed), `jwt` the token claims and
//! their verification.

pub mod jwt;
mod key_material;
mod keyring;
pub mod keys;
