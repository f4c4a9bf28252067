//! Signing keys kept in the database: created once, shared by replicas, rotated, retired.

use std::{sync::Arc, time::Duration};

use authpool::{
    crypto::{
        jwt::{AccessClaims, TokenError, TokenUse},
        keys::{self, KeyStatus, KeyStore, RETIRED_KEY_MARGIN, TokenConfig},
    },
    store::{database, signing_keys},
};
use entity::signing_key;
use sea_orm::{ActiveModelTrait, ActiveValue::Set, DatabaseConnection, EntityTrait};

use crate::db::TestDb;

const HOUR: Duration = Duration::from_secs(3600);

fn config() -> TokenConfig {
    TokenConfig {
        issuer: "https://auth.example.com".into(),
        client_id: "client-1".into(),
        publish_after_retire: HOUR,
    }
}

async fn database(test_db: &TestDb) -> DatabaseConnection {
    let db = database::connect(&test_db.url).await.expect("connect");
    database::migrate(&db).await.expect("migrate");
    db
}

fn access_token(store: &KeyStore) -> String {
    let now = chrono::Utc::now().timestamp();
    store.sign(&AccessClaims {
        sub: "uid-1".into(),
        client_id: store.client_id().into(),
        iss: store.issuer().into(),
        token_use: TokenUse::Access,
        scope: "aws.cognito.signin.user.admin".into(),
        username: "ada".into(),
        auth_time: now,
        iat: now,
        exp: now + 3600,
        jti: "jti-1".into(),
        origin_jti: "origin-1".into(),
    })
}

fn jwks_kids(store: &KeyStore) -> Vec<String> {
    store.jwks()["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|key| key["kid"].as_str().expect("kid").to_string())
        .collect()
}

async fn load(db: &DatabaseConnection) -> Arc<KeyStore> {
    KeyStore::load(db, config()).await.expect("load keys")
}

#[tokio::test]
async fn the_first_load_creates_one_key_and_later_loads_reuse_it() {
    let test_db = TestDb::new().await;
    let db = database(&test_db).await;

    let first = load(&db).await;
    let second = load(&db).await;

    let listed = keys::list(&db).await.expect("list");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].status, KeyStatus::Active);
    assert_eq!(listed[0].algorithm, "RS256");
    assert_eq!(second.signing_kid(), first.signing_kid());
    assert_eq!(jwks_kids(&second), vec![first.signing_kid()]);
    let token = access_token(&first);
    assert!(second.verify_access(&db, &token).await.is_ok());
}

#[tokio::test]
async fn replicas_racing_on_an_empty_database_converge_on_one_key() {
    let test_db = TestDb::new().await;
    let db = database(&test_db).await;

    let (a, b) = tokio::join!(load(&db), load(&db));
    a.reload(&db).await.expect("reload");
    b.reload(&db).await.expect("reload");

    assert_eq!(a.signing_kid(), b.signing_kid());
    assert_eq!(jwks_kids(&a), jwks_kids(&b));
    let active = keys::list(&db).await.expect("list");
    assert_eq!(active[0].status, KeyStatus::Active);
    assert_eq!(active[0].kid, a.signing_kid());
}

#[tokio::test]
async fn after_a_rotation_the_new_key_signs_and_the_old_one_still_verifies() {
    let test_db = TestDb::new().await;
    let db = database(&test_db).await;
    let store = load(&db).await;
    let old_kid = store.signing_kid();
    let old_token = access_token(&store);

    let rotated = keys::rotate(&db).await.expect("rotate");
    assert_ne!(rotated.kid, old_kid);
    assert_eq!(rotated.status, KeyStatus::Active);
    store.reload(&db).await.expect("reload");

    assert_eq!(store.signing_kid(), rotated.kid);
    let new_token = access_token(&store);
    assert!(new_token.starts_with(&header_b64(&rotated.kid)));
    assert_eq!(
        jwks_kids(&store),
        vec![rotated.kid.clone(), old_kid.clone()]
    );
    assert!(store.verify_access(&db, &old_token).await.is_ok());
    assert!(store.verify_access(&db, &new_token).await.is_ok());

    let listed = keys::list(&db).await.expect("list");
    let statuses: Vec<(&str, KeyStatus)> = listed
        .iter()
        .map(|key| (key.kid.as_str(), key.status))
        .collect();
    assert_eq!(
        statuses,
        vec![
            (rotated.kid.as_str(), KeyStatus::Active),
            (old_kid.as_str(), KeyStatus::Retired)
        ]
    );
    assert!(listed[1].retired_at.is_some());
}

#[tokio::test]
async fn a_key_retired_longer_than_the_longest_token_lifetime_is_withdrawn() {
    let test_db = TestDb::new().await;
    let db = database(&test_db).await;
    let store = load(&db).await;
    let old_kid = store.signing_kid();
    let old_token = access_token(&store);
    keys::rotate(&db).await.expect("rotate");

    let long_ago = chrono::Utc::now()
        - chrono::TimeDelta::from_std(HOUR + RETIRED_KEY_MARGIN).expect("delta")
        - chrono::TimeDelta::seconds(5);
    let row = signing_key::Entity::find_by_id(old_kid.clone())
        .one(&db)
        .await
        .expect("query")
        .expect("old key row");
    let mut row: signing_key::ActiveModel = row.into();
    row.retired_at = Set(Some(long_ago));
    row.update(&db).await.expect("update");
    store.reload(&db).await.expect("reload");

    assert!(!jwks_kids(&store).contains(&old_kid));
    assert_eq!(
        store.verify_access(&db, &old_token).await,
        Err(TokenError::UnknownKey)
    );
    let fresh = load(&db).await;
    assert!(!jwks_kids(&fresh).contains(&old_kid));
    assert_eq!(
        fresh.verify_access(&db, &old_token).await,
        Err(TokenError::UnknownKey)
    );
    // The database itself leaves it out of the published keys (SQLite compares times as text).
    let cutoff = chrono::Utc::now() - chrono::TimeDelta::from_std(HOUR).expect("delta");
    let published = signing_keys::published(&db, Some(cutoff))
        .await
        .expect("published");
    assert_eq!(published.len(), 1);
    assert_ne!(published[0].kid, old_kid);
    // Withdrawn, not deleted: the CLI still lists it.
    assert_eq!(keys::list(&db).await.expect("list").len(), 2);
}

#[tokio::test]
async fn a_replica_verifies_a_key_rotated_elsewhere_without_waiting_for_its_reload() {
    let test_db = TestDb::new().await;
    let db = database(&test_db).await;
    let replica_a = load(&db).await;
    let replica_b = load(&db).await;

    let rotated = keys::rotate(&db).await.expect("rotate");
    replica_a.reload(&db).await.expect("reload");
    let token = access_token(&replica_a);
    assert!(!jwks_kids(&replica_b).contains(&rotated.kid));

    let claims = replica_b
        .verify_access(&db, &token)
        .await
        .expect("verified after reloading for the unknown kid");
    assert_eq!(claims.sub, "uid-1");
    assert!(jwks_kids(&replica_b).contains(&rotated.kid));
    assert_eq!(replica_b.signing_kid(), rotated.kid);
}

/// The encoded header every token of `kid` starts with.
fn header_b64(kid: &str) -> String {
    use base64::Engine;
    let header = serde_json::json!({ "alg": "RS256", "kid": kid }).to_string();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(header)
}
