//! Housekeeping purges what nothing will read again, in batches, and nothing else.

use std::time::{Duration, Instant};

use authpool::housekeeping::{self, CODE_GRACE, MAIL_RETENTION, SESSION_GRACE};
use chrono::{DateTime, Duration as TimeDelta, Utc};
use entity::{code, login_failure, mail_outbox, refresh_token, session, signing_key, user};
use poem::http::StatusCode;
use sea_orm::{
    ActiveValue::NotSet, ColumnTrait, ConnectionTrait, EntityTrait, IntoActiveModel, QueryFilter,
    prelude::Uuid,
};

use crate::{
    db::TestDb,
    helpers::{PASSWORD, TestApp, json},
    process::{KillOnDrop, authpool, wait_until_live},
    smtp::free_port,
};

fn code_row(uid: Uuid, purpose: &str, expires_at: DateTime<Utc>) -> code::Model {
    code::Model {
        uid,
        purpose: purpose.into(),
        code_hash: "0".repeat(64),
        target: "someone@example.org".into(),
        expires_at,
        attempts: 0,
        sent_at: expires_at - TimeDelta::hours(1),
        resends: 0,
        resend_window_start: None,
        last_resend_at: None,
    }
}

fn session_row(
    uid: Uuid,
    expires_at: DateTime<Utc>,
    revoked_at: Option<DateTime<Utc>>,
) -> session::Model {
    let id = Uuid::new_v4();
    session::Model {
        id,
        uid,
        client_id: "client".into(),
        auth_time: expires_at - TimeDelta::days(30),
        origin_jti: id.to_string(),
        created_at: expires_at - TimeDelta::days(30),
        expires_at,
        revoked_at,
    }
}

fn mail_row(
    created_at: DateTime<Utc>,
    sent_at: Option<DateTime<Utc>>,
    failed_at: Option<DateTime<Utc>>,
) -> mail_outbox::ActiveModel {
    let mut row = mail_outbox::Model {
        id: 0,
        recipient: "someone@example.org".into(),
        subject: "subject".into(),
        text_body: "text".into(),
        html_body: "<p>html</p>".into(),
        attempts: 1,
        next_attempt_at: created_at,
        claimed_until: None,
        claim_token: None,
        created_at,
        sent_at,
        failed_at,
        last_error: None,
    }
    .into_active_model();
    row.id = NotSet;
    row
}

fn failure_row(
    key: &str,
    last_failure_at: DateTime<Utc>,
    locked_until: Option<DateTime<Utc>>,
) -> login_failure::Model {
    login_failure::Model {
        key: key.into(),
        count: 6,
        last_failure_at,
        locked_until,
    }
}

async fn insert<A>(db: &impl ConnectionTrait, row: impl IntoActiveModel<A>)
where
    A: sea_orm::ActiveModelTrait + Send,
{
    A::Entity::insert(row.into_active_model())
        .exec_without_returning(db)
        .await
        .expect("insert a row");
}

async fn uid_of(app: &TestApp, email: &str) -> Uuid {
    user::Entity::find()
        .filter(user::Column::Email.eq(email))
        .one(&app.state.db)
        .await
        .unwrap()
        .expect("the user exists")
        .uid
}

#[tokio::test]
async fn a_run_purges_only_rows_past_their_retention_in_batches() {
    let app = TestApp::spawn().await;
    let db = &app.state.db;
    let now = Utc::now();
    let tokens = app.signed_in("ada@example.org", PASSWORD).await;
    let ada = uid_of(&app, "ada@example.org").await;
    app.confirmed_user("bob@example.org", PASSWORD).await;
    let bob = uid_of(&app, "bob@example.org").await;
    app.confirmed_user("cy@example.org", PASSWORD).await;
    let cy = uid_of(&app, "cy@example.org").await;
    // What the sign-ups left behind (sent mail, spent codes) is recent, so it stays.
    let mail_before = mail_outbox::Entity::find().all(db).await.unwrap().len();
    let codes_before = code::Entity::find().all(db).await.unwrap().len();

    let long_ago = now - TimeDelta::days(30);
    let just_past = |grace: TimeDelta| now - grace + TimeDelta::minutes(5);
    // Codes: three expired beyond the grace (purged), one expired within it and one live (kept).
    insert(db, code_row(ada, "reset_password", long_ago)).await;
    insert(db, code_row(bob, "reset_password", long_ago)).await;
    insert(
        db,
        code_row(
            cy,
            "reset_password",
            now - CODE_GRACE - TimeDelta::seconds(1),
        ),
    )
    .await;
    insert(db, code_row(ada, "verify_email", just_past(CODE_GRACE))).await;
    insert(db, code_row(bob, "verify_email", now + TimeDelta::hours(1))).await;

    // Sessions: expired and long-revoked (purged, with their refresh tokens); recently revoked
    // and live (kept).
    let expired = session_row(ada, long_ago, None);
    let long_revoked = session_row(ada, now + TimeDelta::days(10), Some(long_ago));
    let recently_revoked = session_row(
        bob,
        now + TimeDelta::days(10),
        Some(just_past(SESSION_GRACE)),
    );
    let live = session_row(bob, now + TimeDelta::days(10), None);
    for session in [&expired, &long_revoked, &recently_revoked, &live] {
        insert(db, session.clone()).await;
    }
    insert(
        db,
        refresh_token::Model {
            jti: "old-refresh".into(),
            session_id: expired.id,
            issued_at: long_ago - TimeDelta::days(1),
            expires_at: long_ago,
            used_at: None,
        },
    )
    .await;

    // Mail: sent or abandoned beyond the retention (purged); sent recently, and never sent even
    // if old (kept: it is still to be delivered).
    let old = now - MAIL_RETENTION - TimeDelta::hours(1);
    mail_outbox::Entity::insert_many([
        mail_row(old, Some(old), None),
        mail_row(old, None, Some(old)),
        mail_row(old, Some(old), None),
        mail_row(now, Some(just_past(MAIL_RETENTION)), None),
        mail_row(old, None, None),
    ])
    .exec_without_returning(db)
    .await
    .unwrap();

    // Sign-in failure counters: stale (purged); recent, or still locking (kept).
    insert(
        db,
        failure_row(
            "name:stale",
            now - TimeDelta::hours(2),
            Some(now - TimeDelta::hours(1)),
        ),
    )
    .await;
    insert(
        db,
        failure_row("name:recent", now - TimeDelta::minutes(5), None),
    )
    .await;
    insert(
        db,
        failure_row(
            "name:locked",
            now - TimeDelta::minutes(40),
            Some(now + TimeDelta::minutes(5)),
        ),
    )
    .await;

    // A signing key retired long before any token it signed could still be alive.
    insert(
        db,
        signing_key::Model {
            kid: "long-retired".into(),
            algorithm: "RS256".into(),
            private_key: vec![0; 8],
            public_jwk: "{}".into(),
            created_at: now - TimeDelta::days(400),
            retired_at: Some(now - TimeDelta::days(300)),
        },
    )
    .await;

    let purged = housekeeping::run_once(&app.state, now, 2).await.unwrap();
    assert_eq!(purged.codes, 3, "{purged:?}");
    assert_eq!(purged.sessions, 2, "{purged:?}");
    assert_eq!(purged.mail, 3, "{purged:?}");
    assert_eq!(purged.login_failures, 1, "{purged:?}");
    assert_eq!(purged.signing_keys, 1, "{purged:?}");
    // In batches of two: codes 2 + 1, sessions 2 + 0, mail 2 + 1 (two statements each), one
    // for the counters, one for the keys.
    assert_eq!(purged.statements, 8, "{purged:?}");

    let codes = code::Entity::find().all(db).await.unwrap();
    assert_eq!(codes.len(), codes_before + 2);
    assert!(codes.iter().all(|c| c.expires_at > now - CODE_GRACE));
    let sessions: Vec<Uuid> = session::Entity::find()
        .all(db)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert!(sessions.contains(&recently_revoked.id) && sessions.contains(&live.id));
    assert!(!sessions.contains(&expired.id) && !sessions.contains(&long_revoked.id));
    assert!(
        refresh_token::Entity::find_by_id("old-refresh".to_string())
            .one(db)
            .await
            .unwrap()
            .is_none(),
        "refresh tokens go with their session"
    );
    let mail = mail_outbox::Entity::find().all(db).await.unwrap();
    assert_eq!(mail.len(), mail_before + 2);
    assert!(
        mail.iter()
            .any(|m| m.sent_at.is_none() && m.failed_at.is_none())
    );
    let mut failures: Vec<String> = login_failure::Entity::find()
        .all(db)
        .await
        .unwrap()
        .into_iter()
        .map(|f| f.key)
        .collect();
    failures.sort();
    assert_eq!(failures, ["name:locked", "name:recent"]);
    let keys = signing_key::Entity::find().all(db).await.unwrap();
    assert!(keys.iter().all(|k| k.kid != "long-retired"));
    assert!(
        keys.iter().any(|k| k.retired_at.is_none()),
        "the signing key stays"
    );

    // The signed-in user's session was untouched: its token still works.
    let access = tokens["access_token"].as_str().unwrap();
    app.get_as("/api/account", access)
        .await
        .assert_status_is_ok();
    // A second run finds nothing.
    let again = housekeeping::run_once(&app.state, now, 2).await.unwrap();
    assert_eq!(
        (
            again.codes,
            again.sessions,
            again.mail,
            again.login_failures,
            again.signing_keys
        ),
        (0, 0, 0, 0, 0)
    );
}

#[tokio::test]
async fn a_purged_session_refuses_its_tokens_like_a_revoked_one() {
    let app = TestApp::spawn().await;
    let tokens = app.signed_in("ada@example.org", PASSWORD).await;
    let access = tokens["access_token"].as_str().unwrap().to_string();
    let refresh = tokens["refresh_token"].as_str().unwrap().to_string();
    app.post_as("/api/logout", &access, serde_json::json!({}))
        .await
        .assert_status_is_ok();
    let later = Utc::now() + SESSION_GRACE + TimeDelta::minutes(1);
    let purged = housekeeping::run_once(&app.state, later, 100)
        .await
        .unwrap();
    assert_eq!(purged.sessions, 1);
    app.get_as("/api/account", &access)
        .await
        .assert_status(StatusCode::UNAUTHORIZED);
    let response = app
        .post(
            "/api/refresh",
            serde_json::json!({"refresh_token": refresh}),
        )
        .await;
    response.assert_status(StatusCode::UNAUTHORIZED);
    let body = json(response).await;
    assert_eq!(body["code"], "NotAuthorizedException");
}

#[tokio::test]
async fn the_server_runs_housekeeping_on_its_interval() {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut server = KillOnDrop(
        authpool(dir.path())
            .env("AUTHPOOL_BIND", format!("127.0.0.1:{port}"))
            .env("AUTHPOOL_DATABASE_URL", &db.url)
            .env("AUTHPOOL_MAIL_URL", "log")
            .env("AUTHPOOL_LOG_LEVEL", "warn")
            .env("AUTHPOOL_HOUSEKEEPING_INTERVAL_S", "1")
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("start authpool"),
    );
    wait_until_live(port, &mut server).await;
    let connection = sea_orm::Database::connect(&db.url).await.unwrap();
    insert(
        &connection,
        failure_row("name:stale", Utc::now() - TimeDelta::days(2), None),
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left = login_failure::Entity::find_by_id("name:stale".to_string())
            .one(&connection)
            .await
            .unwrap();
        if left.is_none() {
            break;
        }
        assert!(Instant::now() < deadline, "the stale row was never purged");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
