//! Shared test helpers: the app under test on its own database, and small request helpers.

use authpool::{
    config::{RawSettings, Settings},
    startup::{build_app, build_state},
    state::AppState,
};
use poem::{Response, endpoint::BoxEndpoint, test::TestClient};

use crate::db::TestDb;

/// The real app (same `build_app` as the server) on a fresh database, with mail written to a
/// temp folder and cheap argon2 parameters (one test keeps the production ones).
pub struct TestApp {
    pub client: TestClient<BoxEndpoint<'static, Response>>,
    pub state: AppState,
    _mail_dir: tempfile::TempDir,
    // Dropped last: the database outlives the app's connections.
    _db: TestDb,
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::with_settings(&[]).await
    }

    /// Starts the app with these settings on top of the test defaults.
    pub async fn with_settings(extra: &[(&str, &str)]) -> Self {
        let db = TestDb::new().await;
        let mail_dir = tempfile::tempdir().expect("temp dir");
        let mut raw = RawSettings::new();
        for (key, value) in [
            ("database_url", db.url.clone()),
            ("mail_url", format!("file://{}", mail_dir.path().display())),
            ("public_url", "http://authpool.test".to_string()),
            ("argon2_memory_kib", "64".to_string()),
            ("argon2_iterations", "1".to_string()),
            ("log_level", "warn".to_string()),
        ] {
            raw.insert(key.to_string(), value);
        }
        for (key, value) in extra {
            raw.insert(key.to_string(), value.to_string());
        }
        let settings = Settings::resolve(&raw).expect("test settings are valid");
        let state = build_state(settings).await.expect("app state builds");
        let client = TestClient::new(build_app(state.clone()));
        Self {
            client,
            state,
            _mail_dir: mail_dir,
            _db: db,
        }
    }
}

/// Reads a response's JSON body.
pub async fn json(response: poem::test::TestResponse) -> serde_json::Value {
    response
        .0
        .into_body()
        .into_json()
        .await
        .expect("a JSON body")
}

/// Asserts the API's error shape and returns the body.
pub async fn assert_error(
    response: poem::test::TestResponse,
    status: u16,
    code: &str,
) -> serde_json::Value {
    assert_eq!(response.0.status().as_u16(), status, "status");
    let content_type = response
        .0
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert!(
        content_type.starts_with("application/json"),
        "content type {content_type:?}"
    );
    let body = json(response).await;
    assert_eq!(body["code"], code, "{body}");
    assert!(
        body["detail"].as_str().is_some_and(|d| !d.is_empty()),
        "{body}"
    );
    body
}
