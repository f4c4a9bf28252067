//! sea-orm entities for authpool's tables: column types only, no logic.

pub mod allowed_host;
pub mod api_token;
pub mod client;
pub mod code;
pub mod login_failure;
pub mod mail_outbox;
pub mod refresh_token;
pub mod session;
pub mod signing_key;
pub mod subscription;
pub mod user;
