//! Shared test helpers: the app under test on its own database, and small request helpers.

use authpool::{
    config::{RawSettings, Settings},
    startup::{build_app, build_state},
    state::AppState,
};
use entity::mail_outbox;
use poem::{
    Response,
    endpoint::BoxEndpoint,
    http::header,
    test::{TestClient, TestResponse},
};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
use serde_json::{Value, json};

use crate::db::TestDb;

/// The real app (same `build_app` as the server) on a fresh database, with mail written to a
/// temp folder and cheap argon2 parameters (one test keeps the production ones).
pub struct TestApp {
    pub client: TestClient<BoxEndpoint<'static, Response>>,
    pub state: AppState,
    /// Where the file transport writes mail; kept for the app's lifetime.
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

impl TestApp {
    /// One hash at a time, none waiting, and a hash slow enough (64 MiB, 4 passes) to be caught
    /// running: for tests of the hashing pool's limits.
    pub async fn with_one_slow_hasher() -> Self {
        Self::with_settings(&[
            ("hash_concurrency", "1"),
            ("hash_queue", "0"),
            ("argon2_memory_kib", "65536"),
            ("argon2_iterations", "4"),
        ])
        .await
    }
}

/// A password the policy accepts.
pub const PASSWORD: &str = "correct horse battery staple";

impl TestApp {
    pub async fn post(&self, path: &str, body: Value) -> TestResponse {
        self.client.post(path).body_json(&body).send().await
    }

    pub async fn post_as(&self, path: &str, token: &str, body: Value) -> TestResponse {
        self.client
            .post(path)
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .body_json(&body)
            .send()
            .await
    }

    pub async fn get_as(&self, path: &str, token: &str) -> TestResponse {
        self.client
            .get(path)
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .send()
            .await
    }

    pub async fn register(&self, email: &str, password: &str) -> TestResponse {
        self.post(
            "/api/register",
            json!({"email": email, "password": password}),
        )
        .await
    }

    pub async fn login(&self, email: &str, password: &str) -> TestResponse {
        self.post("/api/login", json!({"email": email, "password": password}))
            .await
    }

    /// Delivers every queued email (to the test's mail folder) and returns the messages sent to
    /// this address, oldest first.
    pub async fn mails_to(&self, address: &str) -> Vec<mail_outbox::Model> {
        self.state
            .mail
            .deliver_due(&self.state.db)
            .await
            .expect("mail delivery");
        let rows = mail_outbox::Entity::find()
            .filter(mail_outbox::Column::Recipient.eq(address))
            .order_by_asc(mail_outbox::Column::Id)
            .all(&self.state.db)
            .await
            .unwrap();
        assert!(rows.iter().all(|r| r.sent_at.is_some()), "undelivered mail");
        rows
    }

    /// The code in the latest email to this address.
    pub async fn last_code(&self, address: &str) -> String {
        let mail = self.mails_to(address).await.pop().expect("an email");
        code_in(&mail.text_body).expect("a code in the email")
    }

    /// Registers and confirms an account.
    pub async fn confirmed_user(&self, email: &str, password: &str) {
        self.register(email, password)
            .await
            .assert_status(poem::http::StatusCode::CREATED);
        let code = self.last_code(email).await;
        self.post(
            "/api/validate",
            json!({"user_name": email, "confirmation_code": code}),
        )
        .await
        .assert_status_is_ok();
    }

    /// Registers, confirms and signs in; returns the login body.
    pub async fn signed_in(&self, email: &str, password: &str) -> Value {
        self.confirmed_user(email, password).await;
        let response = self.login(email, password).await;
        response.assert_status_is_ok();
        json(response).await
    }
}

/// The first six-digit number in a text.
pub fn code_in(text: &str) -> Option<String> {
    text.split(|c: char| !c.is_ascii_digit())
        .find(|run| run.len() == 6)
        .map(str::to_string)
}

/// Reads a response's JSON body.
pub async fn json(response: TestResponse) -> serde_json::Value {
    response
        .0
        .into_body()
        .into_json()
        .await
        .expect("a JSON body")
}

/// Asserts the API's error shape and returns the body.
pub async fn assert_error(response: TestResponse, status: u16, code: &str) -> serde_json::Value {
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
