//! sea-orm entities for authpool's tables: column types only, no logic.

pub mod client;
pub mod mail_outbox;
pub mod signing_key;
