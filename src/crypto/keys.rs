//! Signing keys: generated on first start, kept in the database so every replica signs with the
//! same key and serves the same JWKS, and cached parsed in memory so nothing parses a key per
//! request.
//!
//! Tokens are signed with a kept `aws-lc-rs` key pair (about three times the rate of
//! `jsonwebtoken::encode`, which re-parses the key on every call) and verified with
//! `jsonwebtoken`, algorithm pinned to RS256.

use std::{
    sync::{Arc, PoisonError, RwLock},
    time::{Duration, Instant},
};

use chrono::{DateTime, SubsecRound, TimeDelta, Utc};
use entity::signing_key;
use jsonwebtoken::{Algorithm, Validation};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr};
use serde::Serialize;
use serde_json::Value;

use super::{
    jwt::TokenError,
    key_material::{self, ALGORITHM},
    keyring::{KeyRing, RingError},
};
use crate::store::signing_keys;

/// How long a retired key stays published beyond the longest token lifetime. Replicas pick up a
/// rotation only at their next reload, so for a short while they may still sign with the old key.
pub const RETIRED_KEY_MARGIN: Duration = Duration::from_secs(5 * 60);

/// A token naming an unknown `kid` makes this process re-read the keys at most this often: a
/// key rotated on another replica verifies at once, while made-up kids cannot hammer the database.
const UNKNOWN_KID_RELOAD_INTERVAL: Duration = Duration::from_secs(1);

/// What the key store needs to know about the tokens it signs and verifies.
#[derive(Clone, Debug)]
pub struct TokenConfig {
    /// `iss` of every token: the public URL.
    pub issuer: String,
    /// `aud` of id tokens and `client_id` of access tokens.
    pub client_id: String,
    /// The longest lifetime of any token: a retired key stays published this long (plus
    /// [`RETIRED_KEY_MARGIN`]), so every token it signed expires before its key disappears.
    pub publish_after_retire: Duration,
}

/// The signing keys of this process, shared as `Arc<KeyStore>`.
pub struct KeyStore {
    config: TokenConfig,
    /// How long after `retired_at` a key stays published.
    retention: TimeDelta,
    /// Built once: RS256 only, zero leeway, `exp`/`iss`/`sub` required, `iss` checked.
    validation: Validation,
    /// Swapped whole on reload; readers clone the `Arc` and release the lock at once.
    ring: RwLock<Arc<KeyRing>>,
    /// When a verification last reloaded the keys for an unknown `kid`. Held during that reload,
    /// so concurrent requests with the new kid wait for it instead of each querying.
    unknown_kid_reload: tokio::sync::Mutex<Option<Instant>>,
}

impl KeyStore {
    /// Loads the published keys, first creating a signing key if none is active. Replicas
    /// starting together take turns here under the setup lock (`store::database::SetupLock`),
    /// so only the first creates one.
    pub async fn load(db: &DatabaseConnection, config: TokenConfig) -> Result<Arc<Self>, DbErr> {
        let retention = retention(config.publish_after_retire);
        let mut rows = published_rows(db, retention).await?;
        if !rows.iter().any(|row| row.retired_at.is_none()) {
            signing_keys::insert(db, new_key_row().await?).await?;
            rows = published_rows(db, retention).await?;
        }
        let ring = KeyRing::build(&rows, retention, Utc::now(), None).map_err(ring_error)?;
        Ok(Arc::new(Self::with_ring(config, retention, ring)))
    }

    fn with_ring(config: TokenConfig, retention: TimeDelta, ring: KeyRing) -> Self {
        let mut validation = Validation::new(Algorithm::RS256);
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "iss", "sub"]);
        validation.set_issuer(&[&config.issuer]);
        // Id tokens carry `aud`, access tokens `client_id`: checked per kind in `jwt`.
        validation.validate_aud = false;
        Self {
            config,
            retention,
            validation,
            ring: RwLock::new(Arc::new(ring)),
            unknown_kid_reload: tokio::sync::Mutex::new(None),
        }
    }

    /// Re-reads the keys, to follow rotations made by other processes. On error the keys in use
    /// stay as they were.
    pub async fn reload(&self, db: &DatabaseConnection) -> Result<(), DbErr> {
        let rows = published_rows(db, self.retention).await?;
        let previous = self.ring();
        let ring = KeyRing::build(&rows, self.retention, Utc::now(), Some(&previous))
            .map_err(ring_error)?;
        *self.ring.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(ring);
        Ok(())
    }

    /// `{"keys": [...]}` as served at `/.well-known/jwks.json`: the signing key and every retired
    /// key still published, newest first.
    pub fn jwks(&self) -> Value {
        self.ring().jwks(Utc::now())
    }

    /// How long after `retired_at` a key stays published; after that it can go.
    pub fn retention(&self) -> TimeDelta {
        self.retention
    }

    /// `iss` of every token.
    pub fn issuer(&self) -> &str {
        &self.config.issuer
    }

    /// The app client id: `aud` of id tokens, `client_id` of access tokens.
    pub fn client_id(&self) -> &str {
        &self.config.client_id
    }

    /// The `kid` of the key that signs now.
    pub fn signing_kid(&self) -> String {
        self.ring().signing_kid().to_string()
    }

    /// Signs `claims` with the current key: an RS256 JWT with a `kid` header.
    ///
    /// # Panics
    ///
    /// If `claims` cannot be serialized to JSON (a map with non-string keys, or a failing
    /// `Serialize` impl): a programming error, never caused by input.
    pub fn sign<C: Serialize>(&self, claims: &C) -> String {
        self.ring().sign(claims)
    }

    /// Verifies the signature, `alg`, `kid`, `exp`, `iss` and presence of `sub`, and returns the
    /// claims untyped. When the `kid` is unknown, re-reads the keys (at most once per
    /// [`UNKNOWN_KID_RELOAD_INTERVAL`]) and tries again.
    pub(super) async fn verify_signed(
        &self,
        db: &DatabaseConnection,
        token: &str,
    ) -> Result<Value, TokenError> {
        match self.verify_cached(token) {
            Err(TokenError::UnknownKey) => {}
            verified => return verified,
        }
        self.reload_for_unknown_kid(db).await;
        self.verify_cached(token)
    }

    fn verify_cached(&self, token: &str) -> Result<Value, TokenError> {
        self.ring().verify(token, &self.validation, Utc::now())
    }

    async fn reload_for_unknown_kid(&self, db: &DatabaseConnection) {
        let mut last = self.unknown_kid_reload.lock().await;
        if last.is_some_and(|at| at.elapsed() < UNKNOWN_KID_RELOAD_INTERVAL) {
            return;
        }
        *last = Some(Instant::now());
        if let Err(error) = self.reload(db).await {
            tracing::warn!(%error, "reloading signing keys for an unknown kid failed");
        }
    }

    fn ring(&self) -> Arc<KeyRing> {
        // A panic elsewhere cannot leave a half-written ring: it is swapped whole.
        self.ring
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// Names the keys in use, never their material.
impl std::fmt::Debug for KeyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyStore")
            .field("issuer", &self.config.issuer)
            .field("client_id", &self.config.client_id)
            .field("signing_kid", &self.ring().signing_kid())
            .finish_non_exhaustive()
    }
}

/// What `authpool keys list` shows of a key. Never the private key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct KeyInfo {
    pub kid: String,
    pub algorithm: String,
    pub created_at: DateTime<Utc>,
    pub retired_at: Option<DateTime<Utc>>,
    pub status: KeyStatus,
}

/// A key's role.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyStatus {
    /// Signs new tokens: the newest key not retired.
    Active,
    /// Not retired, but a newer key signs (two processes created a first key at once); still
    /// published, and retired by the next rotation.
    Standby,
    /// Verifies the tokens it signed until they expire, then leaves the JWKS.
    Retired,
}

impl std::fmt::Display for KeyStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Active => "active",
            Self::Standby => "standby",
            Self::Retired => "retired",
        })
    }
}

/// Creates a new signing key and retires every other one. Processes sign with it from their
/// next reload; the retired keys stay published until their tokens have expired.
pub async fn rotate(db: &impl ConnectionTrait) -> Result<KeyInfo, DbErr> {
    let row = new_key_row().await?;
    // Insert before retiring: at every moment some key is active, even without a transaction.
    signing_keys::insert(db, row.clone()).await?;
    signing_keys::retire_all_except(db, &row.kid, now()).await?;
    Ok(info(row, KeyStatus::Active))
}

/// Every stored key, newest first, including keys no longer published.
pub async fn list(db: &impl ConnectionTrait) -> Result<Vec<KeyInfo>, DbErr> {
    let mut rows = signing_keys::all(db).await?;
    rows.sort_by(|a, b| (b.created_at, &b.kid).cmp(&(a.created_at, &a.kid)));
    let mut seen_active = false;
    Ok(rows
        .into_iter()
        .map(|row| {
            let status = match row.retired_at {
                Some(_) => KeyStatus::Retired,
                None if seen_active => KeyStatus::Standby,
                None => {
                    seen_active = true;
                    KeyStatus::Active
                }
            };
            info(row, status)
        })
        .collect())
}

fn info(row: signing_key::Model, status: KeyStatus) -> KeyInfo {
    KeyInfo {
        kid: row.kid,
        algorithm: row.algorithm,
        created_at: row.created_at,
        retired_at: row.retired_at,
        status,
    }
}

/// Generates a key (off the async workers: RSA generation takes tens of milliseconds).
async fn new_key_row() -> Result<signing_key::Model, DbErr> {
    tokio::task::spawn_blocking(generate_row)
        .await
        .map_err(|_| DbErr::Custom("signing key generation was interrupted".into()))?
        .map_err(|_| DbErr::Custom("cannot generate a signing key".into()))
}

/// A new, active key as stored.
fn generate_row() -> Result<signing_key::Model, aws_lc_rs::error::Unspecified> {
    let generated = key_material::generate()?;
    Ok(signing_key::Model {
        kid: generated.jwk.kid.clone(),
        algorithm: ALGORITHM.to_string(),
        private_key: generated.pkcs8,
        public_jwk: generated.jwk.to_json().to_string(),
        created_at: now(),
        retired_at: None,
    })
}

/// Rows of keys published now: active, or retired less than `retention` ago.
async fn published_rows(
    db: &impl ConnectionTrait,
    retention: TimeDelta,
) -> Result<Vec<signing_key::Model>, DbErr> {
    signing_keys::published(db, Utc::now().checked_sub_signed(retention)).await
}

/// How long after `retired_at` a key stays published; saturates instead of overflowing.
fn retention(publish_after_retire: Duration) -> TimeDelta {
    TimeDelta::from_std(publish_after_retire.saturating_add(RETIRED_KEY_MARGIN))
        .unwrap_or(TimeDelta::MAX)
}

/// Now, to the microsecond: what PostgreSQL keeps, so a stored time reads back unchanged.
fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

fn ring_error(error: RingError) -> DbErr {
    DbErr::Custom(error.to_string())
}

#[cfg(test)]
impl KeyStore {
    /// A store over rows built in memory, for tests that need no database.
    pub(crate) fn from_rows(
        config: TokenConfig,
        rows: &[signing_key::Model],
    ) -> Result<Self, DbErr> {
        let retention = retention(config.publish_after_retire);
        let ring = KeyRing::build(rows, retention, Utc::now(), None).map_err(ring_error)?;
        Ok(Self::with_ring(config, retention, ring))
    }
}

#[cfg(test)]
pub(crate) mod testing {
    //! Keys generated once per test binary: RSA generation is slow.

    use std::sync::LazyLock;

    use super::*;

    fn generate() -> signing_key::Model {
        generate_row().expect("RSA key generation")
    }

    /// The key the test store signs with.
    pub static KEY_A: LazyLock<signing_key::Model> = LazyLock::new(generate);
    /// A second key: published as retired in some tests, unknown in others.
    pub static KEY_B: LazyLock<signing_key::Model> = LazyLock::new(generate);
}
