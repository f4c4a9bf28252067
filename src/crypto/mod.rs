//! Keys, tokens and secrets.
//!
//! `keys` holds the signing keys (database-backed, cached parsed), `jwt` the token claims and
//! their verification, `password` the argon2id pool, `secrets` one-time codes and random tokens.

pub mod jwt;
mod key_material;
mod keyring;
pub mod keys;
pub mod password;
pub mod secrets;
