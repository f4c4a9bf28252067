//! What every request handler shares.

use std::sync::Arc;

use sea_orm::DatabaseConnection;

use crate::{
    config::Settings,
    crypto::{keys::KeyStore, password::Hasher},
    mail::Mailer,
    metrics::Metrics,
    store::reads::Reads,
};

/// Cheap to clone: everything inside is shared.
#[derive(Clone)]
pub struct AppState {
    pub settings: Arc<Settings>,
    pub db: DatabaseConnection,
    /// The same database, for the hottest reads (see `store::reads`).
    pub reads: Reads,
    /// The app client id: `aud` of id tokens, `client_id` of access tokens.
    pub client_id: Arc<str>,
    pub keys: Arc<KeyStore>,
    pub mail: Mailer,
    /// The bounded argon2id pool.
    pub hasher: Hasher,
    /// This process's request and sign-in counters (`GET /metrics`).
    pub metrics: Arc<Metrics>,
}
