//! Personal API tokens for a separate data API, and their introspection by that API.
//!
//! A token reads `ap_<key>_<secret>`: `key` is 16 base64url characters (96 random bits), the
//! public identifier used in paths; `secret` is 43 base64url characters (256 random bits). Only
//! the SHA-256 of the whole token is stored. Because the token carries its key, introspection
//! finds the row by primary key and compares one hash in constant time — no scan, no argon2
//! (SHA-256 is enough for a secret with this much entropy).

use chrono::{DateTime, Duration as TimeDelta, Utc};
use entity::api_token;
use sea_orm::{ActiveValue::Set, prelude::Uuid};

use super::{Infra, allowed_hosts, session::Authenticated};
use crate::{
    crypto::secrets::{hash_secret, random_token, secret_matches},
    domain::{FieldError, Host},
    state::AppState,
    store,
};

/// Marks authpool API tokens, so secret scanners and people recognise a leaked one.
const PREFIX: &str = "ap_";
/// Random bytes in the key: 16 base64url characters.
const KEY_BYTES: usize = 12;
const KEY_CHARS: usize = 16;
/// Random bytes in the secret part: 43 base64url characters, 256 bits.
const SECRET_BYTES: usize = 32;
const SECRET_CHARS: usize = 43;
/// The longest token name accepted, in characters.
pub const MAX_NAME_CHARS: usize = 100;

/// A token's label for its owner: at most [`MAX_NAME_CHARS`] characters, no control characters,
/// trimmed; may be empty.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenName(String);

impl TokenName {
    pub fn parse(value: &str) -> Result<Self, FieldError> {
        let value = value.trim();
        if value.chars().count() > MAX_NAME_CHARS || value.chars().any(char::is_control) {
            return Err(FieldError::new(
                "name",
                format!("At most {MAX_NAME_CHARS} characters, without control characters."),
            ));
        }
        Ok(Self(value.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A token to create.
#[derive(Debug, Clone)]
pub struct NewToken {
    pub name: TokenName,
    pub is_active: bool,
}

/// The fields to change; `None` leaves a field as it is (PUT and PATCH alike).
#[derive(Debug, Clone, Default)]
pub struct TokenPatch {
    pub name: Option<TokenName>,
    pub is_active: Option<bool>,
}

/// A token just created, with the whole secret token: the only time it exists in clear.
pub struct Created {
    pub row: api_token::Model,
    pub token: String,
}

// The secret stays out of `{:?}` output, and so out of logs.
impl std::fmt::Debug for Created {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Created")
            .field("row", &self.row)
            .field("token", &"<redacted>")
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApiTokenError {
    /// Unknown, or another user's: the same answer, so keys of others cannot be probed.
    #[error("No such API token.")]
    NotFound,
    #[error("You already have {0} API tokens, the most allowed; delete one first.")]
    LimitReached(u64),
    #[error(transparent)]
    Infra(#[from] Infra),
}

db_errors_are_infra!(ApiTokenError);

/// The caller's tokens, oldest first.
pub async fn list(
    state: &AppState,
    caller: &Authenticated,
) -> Result<Vec<api_token::Model>, ApiTokenError> {
    Ok(store::api_tokens::owned(&state.db, caller.user.uid).await?)
}

/// Creates a token, within the per-user cap, and returns it with its secret.
pub async fn create(
    state: &AppState,
    caller: &Authenticated,
    new: NewToken,
) -> Result<Created, ApiTokenError> {
    let uid = caller.user.uid;
    let max = state.settings.max_api_tokens;
    let (key, token) = generate();
    let row = api_token::ActiveModel {
        key: Set(key),
        uid: Set(uid),
        name: Set(new.name.0),
        secret_hash: Set(hash_secret(&token)),
        is_active: Set(new.is_active),
        created_at: Set(Utc::now()),
        last_used_at: Set(None),
    };
    let txn = store::begin_write(&state.db).await?;
    // Concurrent creations for one user wait here, so counting then inserting cannot overshoot.
    store::users::lock(&txn, uid).await?;
    if store::api_tokens::count_owned(&txn, uid).await? >= max {
        return Err(ApiTokenError::LimitReached(max));
    }
    let row = store::api_tokens::insert(&txn, row).await?;
    txn.commit().await?;
    Ok(Created { row, token })
}

pub async fn read(
    state: &AppState,
    caller: &Authenticated,
    key: &str,
) -> Result<api_token::Model, ApiTokenError> {
    if !is_key(key) {
        return Err(ApiTokenError::NotFound);
    }
    store::api_tokens::owned_by_key(&state.db, caller.user.uid, key)
        .await?
        .ok_or(ApiTokenError::NotFound)
}

/// Renames, enables or disables one of the caller's tokens.
pub async fn update(
    state: &AppState,
    caller: &Authenticated,
    key: &str,
    patch: TokenPatch,
) -> Result<api_token::Model, ApiTokenError> {
    if !is_key(key) {
        return Err(ApiTokenError::NotFound);
    }
    let txn = store::begin_write(&state.db).await?;
    let current = store::api_tokens::owned_by_key(&txn, caller.user.uid, key)
        .await?
        .ok_or(ApiTokenError::NotFound)?;
    if patch.name.is_none() && patch.is_active.is_none() {
        return Ok(current);
    }
    let mut row = api_token::ActiveModel {
        key: sea_orm::ActiveValue::Unchanged(current.key),
        ..Default::default()
    };
    if let Some(name) = patch.name {
        row.name = Set(name.0);
    }
    if let Some(is_active) = patch.is_active {
        row.is_active = Set(is_active);
    }
    let updated = store::api_tokens::update(&txn, row).await?;
    txn.commit().await?;
    Ok(updated)
}

/// Deletes one of the caller's tokens; it stops working at once.
pub async fn delete(
    state: &AppState,
    caller: &Authenticated,
    key: &str,
) -> Result<(), ApiTokenError> {
    if !is_key(key) {
        return Err(ApiTokenError::NotFound);
    }
    if store::api_tokens::delete_owned(&state.db, caller.user.uid, key).await? {
        Ok(())
    } else {
        Err(ApiTokenError::NotFound)
    }
}

/// What introspection says about a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Introspection {
    /// Unusable, for whatever reason: which one is not said, so nothing helps guessing.
    Inactive,
    Active {
        uid: Uuid,
        key: String,
        /// `None` when no host was asked about; only ever `Some(true)` (a host not allowed
        /// makes the answer [`Introspection::Inactive`]).
        host_allowed: Option<bool>,
    },
}

/// Whether `token` is a live token of an enabled user, usable from `host` when one is given.
///
/// Malformed input is not an error here: a token or host that does not parse is simply not
/// active. An active answer records the use in `last_used_at`.
pub async fn introspect(
    state: &AppState,
    token: &str,
    host: Option<&str>,
) -> Result<Introspection, Infra> {
    let Some(key) = key_of(token) else {
        return Ok(Introspection::Inactive);
    };
    // The key is public, so the timing difference between "no such key" and "wrong secret"
    // tells nothing; the secret itself is compared in constant time.
    let Some(row) = store::api_tokens::usable_by_key(&state.db, key).await? else {
        return Ok(Introspection::Inactive);
    };
    if !secret_matches(token, &row.secret_hash) {
        return Ok(Introspection::Inactive);
    }
    let host_allowed = match host {
        None => None,
        Some(host) => {
            // A host that does not parse is treated like one that is not allowed.
            let Ok(host) = Host::parse(host) else {
                return Ok(Introspection::Inactive);
            };
            if !allowed_hosts::is_allowed(&state.db, row.uid, &host).await? {
                return Ok(Introspection::Inactive);
            }
            Some(true)
        }
    };
    record_use(state, &row, Utc::now()).await?;
    Ok(Introspection::Active {
        uid: row.uid,
        key: row.key,
        host_allowed,
    })
}

/// How stale `last_used_at` may get. Introspection is a read that apps call on every request
/// they serve; writing the time on each call would make every one a database write, queued
/// behind SQLite's single writer. To the minute is what an owner reviewing tokens needs.
pub const LAST_USED_PRECISION: TimeDelta = TimeDelta::seconds(60);

/// Records that the token answered active, unless that was recorded less than
/// [`LAST_USED_PRECISION`] ago.
async fn record_use(
    state: &AppState,
    row: &api_token::Model,
    now: DateTime<Utc>,
) -> Result<(), Infra> {
    if row
        .last_used_at
        .is_some_and(|at| now - at < LAST_USED_PRECISION)
    {
        return Ok(());
    }
    let txn = store::begin_write(&state.db).await?;
    store::api_tokens::touch(&txn, &row.key, now).await?;
    txn.commit().await?;
    Ok(())
}

/// A new key and the whole token that embeds it.
fn generate() -> (String, String) {
    let key = random_token(KEY_BYTES);
    let secret = random_token(SECRET_BYTES);
    debug_assert_eq!((key.len(), secret.len()), (KEY_CHARS, SECRET_CHARS));
    let token = format!("{PREFIX}{key}_{secret}");
    (key, token)
}

/// The key inside a well-formed token. Both parts have fixed lengths, so the `_` that base64url
/// may contain inside them cannot be mistaken for the separator.
fn key_of(token: &str) -> Option<&str> {
    let rest = token.strip_prefix(PREFIX)?;
    if rest.len() != KEY_CHARS + 1 + SECRET_CHARS || !rest.is_ascii() {
        return None;
    }
    let (key, rest) = rest.split_at(KEY_CHARS);
    let secret = rest.strip_prefix('_')?;
    (is_key(key) && is_base64url(secret)).then_some(key)
}

/// Whether `key` can be a token's key: 16 base64url characters. Anything else names no token
/// and is answered without a query (PostgreSQL would refuse a NUL in it with an error).
fn is_key(key: &str) -> bool {
    key.len() == KEY_CHARS && is_base64url(key)
}

fn is_base64url(text: &str) -> bool {
    text.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_token_carries_its_key() {
        let (key, token) = generate();
        assert_eq!(key.len(), KEY_CHARS);
        assert_eq!(token.len(), PREFIX.len() + KEY_CHARS + 1 + SECRET_CHARS);
        assert_eq!(key_of(&token), Some(key.as_str()));
    }

    #[test]
    fn malformed_tokens_have_no_key() {
        let (_, token) = generate();
        for bad in [
            "",
            "ap_",
            &token[1..],
            &token[..token.len() - 1],
            &format!("{token}x"),
            &token.replacen("ap_", "xx_", 1),
            &format!("{}.{}", &token[..19], &token[20..]),
            &format!("{}é", &token[..token.len() - 2]),
        ] {
            assert_eq!(key_of(bad), None, "{bad}");
        }
    }

    #[test]
    fn only_sixteen_base64url_characters_can_be_a_key() {
        let (key, _) = generate();
        assert!(is_key(&key));
        for bad in [
            "",
            "abc",
            "abcdefghijklmno\u{0}",
            "abcdefghijklmnop1",
            "abcdefgh.jklmnop",
        ] {
            assert!(!is_key(bad), "{bad:?}");
        }
    }

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(TokenName::parse("  ci  ").unwrap().as_str(), "ci");
        assert!(TokenName::parse(&"x".repeat(MAX_NAME_CHARS)).is_ok());
        assert!(TokenName::parse(&"x".repeat(MAX_NAME_CHARS + 1)).is_err());
        assert!(TokenName::parse("a\nb").is_err());
    }
}
