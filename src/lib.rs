//! authpool: a self-hosted user pool with AWS Cognito semantics.
//!
//! `api` speaks HTTP, `pool` holds the use cases, `store` the only database queries, `crypto` the
//! keys, tokens and hashes, `mail` the templates, outbox and delivery.

pub mod admin;
pub mod api;
pub mod cli;
pub mod config;
pub mod crypto;
pub mod domain;
pub mod housekeeping;
pub mod mail;
pub mod metrics;
pub mod newsletter;
pub mod pool;
pub mod startup;
pub mod state;
pub mod store;
pub mod telemetry;
