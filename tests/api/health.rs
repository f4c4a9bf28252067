//! Liveness and readiness.

use crate::helpers::{TestApp, assert_error, json};

#[tokio::test]
async fn live_and_ready_answer_ok() {
    let app = TestApp::spawn().await;
    for path in ["/health/live", "/health/ready", "/health/ready/"] {
        let response = app.client.get(path).send().await;
        response.assert_status_is_ok();
        assert_eq!(json(response).await["status"], "ok", "{path}");
    }
}

#[tokio::test]
async fn ready_fails_with_503_when_the_database_is_gone_while_live_stays_up() {
    let app = TestApp::spawn().await;
    // Closing the shared pool makes every later query fail, as an unreachable database does.
    app.state.db.clone().close().await.unwrap();
    let response = app.client.get("/health/ready").send().await;
    let retry_after = response.0.headers().get("retry-after").cloned();
    assert_error(response, 503, "ServiceUnavailableException").await;
    assert!(retry_after.is_some_and(|v| v.to_str().unwrap().parse::<u64>().unwrap() >= 1));
    app.client
        .get("/health/live")
        .send()
        .await
        .assert_status_is_ok();
}

#[tokio::test]
async fn sqlite_runs_in_wal_mode_with_a_busy_timeout() {
    use sea_orm::{ConnectionTrait, DatabaseBackend, Statement};

    let app = TestApp::spawn().await;
    let db = &app.state.db;
    if db.get_database_backend() != DatabaseBackend::Sqlite {
        return; // PostgreSQL has neither setting.
    }
    let pragma =
        |name: &str| Statement::from_string(DatabaseBackend::Sqlite, format!("PRAGMA {name}"));
    let mode = db
        .query_one_raw(pragma("journal_mode"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(mode.try_get_by_index::<String>(0).unwrap(), "wal");
    let timeout = db
        .query_one_raw(pragma("busy_timeout"))
        .await
        .unwrap()
        .unwrap();
    assert!(timeout.try_get_by_index::<i64>(0).unwrap() >= 1000);
}
