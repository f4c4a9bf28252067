//! The only place that builds database queries. Functions take `&impl ConnectionTrait` so they run
//! alike on a pool or inside a caller's transaction.

pub mod clients;
pub mod database;
pub mod outbox;
pub mod signing_keys;

