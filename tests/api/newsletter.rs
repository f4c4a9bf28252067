//! The newsletter: `subscribe` at registration, `POST /api/subscribe`, `subscribed` in the
//! account, and the Mailchimp upsert, against a local stand-in that checks every request.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use base64::Engine as _;
use entity::{subscription, user};
use md5::{Digest, Md5};
use poem::{
    EndpointExt as _, Request, Response, Server,
    http::StatusCode,
    listener::{Acceptor, Listener, TcpListener},
};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::{Value, json};
use tokio::sync::Notify;

use crate::{
    helpers::{PASSWORD, TestApp, assert_error, json},
    smtp::free_port,
};

const API_KEY: &str = "test-key-us1";
const LIST_ID: &str = "list-4711";

/// How the stand-in answers.
#[derive(Clone, Copy)]
enum Answer {
    /// 200 with a member document, as Mailchimp does.
    Ok,
    /// This status with a problem document whose detail echoes the API key.
    Fail(u16),
    /// Nothing, for longer than any timeout in these tests.
    Hang,
}

/// One request as the stand-in received it.
#[derive(Clone, Debug)]
struct Received {
    method: String,
    path: String,
    authorization: Option<String>,
    content_type: Option<String>,
    body: Value,
}

/// A local HTTP server in Mailchimp's place, recording what it is sent.
struct MailchimpStandIn {
    url: String,
    received: Arc<Mutex<Vec<Received>>>,
    arrived: Arc<Notify>,
}

impl MailchimpStandIn {
    async fn start(answer: Answer) -> Self {
        let acceptor = TcpListener::bind("127.0.0.1:0")
            .into_acceptor()
            .await
            .expect("bind the stand-in");
        let addr = *acceptor.local_addr()[0]
            .as_socket_addr()
            .expect("a socket address");
        let received = Arc::new(Mutex::new(Vec::new()));
        let arrived = Arc::new(Notify::new());
        let endpoint = {
            let received = received.clone();
            let arrived = arrived.clone();
            poem::endpoint::make(move |mut req: Request| {
                let received = received.clone();
                let arrived = arrived.clone();
                async move {
                    let header = |name: &str| {
                        req.headers()
                            .get(name)
                            .and_then(|v| v.to_str().ok())
                            .map(str::to_string)
                    };
                    let (authorization, content_type) =
                        (header("authorization"), header("content-type"));
                    let bytes = req.take_body().into_bytes().await.unwrap_or_default();
                    received.lock().unwrap().push(Received {
                        method: req.method().to_string(),
                        path: req.uri().path().to_string(),
                        authorization,
                        content_type,
                        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
                    });
                    arrived.notify_one();
                    stand_in_answer(answer).await
                }
            })
        };
        tokio::spawn(Server::new_with_acceptor(acceptor).run(endpoint.map_to_response()));
        Self {
            url: format!("http://{addr}"),
            received,
            arrived,
        }
    }

    fn requests(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// The settings that send subscriptions here.
    fn settings(&self) -> Vec<(&'static str, String)> {
        mailchimp_settings(&self.url)
    }
}

async fn stand_in_answer(answer: Answer) -> Response {
    match answer {
        Answer::Ok => Response::builder()
            .content_type("application/json")
            .body(json!({"id": "x", "status": "subscribed"}).to_string()),
        Answer::Fail(status) => Response::builder()
            .status(StatusCode::from_u16(status).unwrap())
            .content_type("application/problem+json")
            .body(
                json!({
                    "type": "https://mailchimp.com/developer/marketing/docs/errors/",
                    "title": "Invalid Resource",
                    "status": status,
                    "detail": format!("The key {API_KEY} cannot do this."),
                    "instance": "b0e9-4b6e"
                })
                .to_string(),
            ),
        Answer::Hang => {
            tokio::time::sleep(Duration::from_secs(60)).await;
            Response::builder().finish()
        }
    }
}

fn mailchimp_settings(url: &str) -> Vec<(&'static str, String)> {
    vec![
        ("mailchimp_api_key", API_KEY.to_string()),
        ("mailchimp_list_id", LIST_ID.to_string()),
        ("mailchimp_url", url.to_string()),
        ("mailchimp_timeout_s", "1".to_string()),
    ]
}

async fn app_with(settings: &[(&'static str, String)]) -> TestApp {
    let settings: Vec<(&str, &str)> = settings.iter().map(|(k, v)| (*k, v.as_str())).collect();
    TestApp::with_settings(&settings).await
}

/// The MD5 of the lower-cased address, in lower-case hex, computed here independently.
fn member_hash(email: &str) -> String {
    Md5::digest(email.to_lowercase().as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Checks one request to the stand-in: the upsert of this address's member.
fn assert_member_upsert(request: &Received, email: &str) {
    assert_eq!(request.method, "PUT");
    assert_eq!(
        request.path,
        format!("/3.0/lists/{LIST_ID}/members/{}", member_hash(email))
    );
    let credentials = request
        .authorization
        .as_deref()
        .and_then(|h| h.strip_prefix("Basic "))
        .expect("basic auth");
    let credentials = base64::engine::general_purpose::STANDARD
        .decode(credentials)
        .expect("base64 credentials");
    let credentials = String::from_utf8(credentials).unwrap();
    let (_user, password) = credentials.split_once(':').expect("user:password");
    assert_eq!(password, API_KEY);
    assert!(
        request
            .content_type
            .as_deref()
            .is_some_and(|c| c.starts_with("application/json")),
        "{request:?}"
    );
    assert_eq!(request.body["email_address"], email, "{request:?}");
    assert_eq!(request.body["status_if_new"], "subscribed", "{request:?}");
    assert_eq!(request.body["status"], "subscribed", "{request:?}");
}

/// Reads a body as text, checks that the API key is not in it, and parses it.
async fn body_without_key(response: poem::test::TestResponse) -> Value {
    let text = response.0.into_body().into_string().await.unwrap();
    assert!(!text.contains(API_KEY), "the API key leaked: {text}");
    serde_json::from_str(&text).expect("a JSON body")
}

async fn register(app: &TestApp, email: &str, subscribe: bool) -> poem::test::TestResponse {
    app.post(
        "/api/register",
        json!({"email": email, "password": PASSWORD, "subscribe": subscribe}),
    )
    .await
}

/// Confirms an account registered by the test and signs it in; returns the access token.
async fn confirm_and_sign_in(app: &TestApp, email: &str) -> String {
    let code = app.last_code(email).await;
    app.post(
        "/api/validate",
        json!({"user_name": email, "confirmation_code": code}),
    )
    .await
    .assert_status_is_ok();
    let response = app.login(email, PASSWORD).await;
    response.assert_status_is_ok();
    json(response).await["access_token"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn signed_in(app: &TestApp, email: &str) -> String {
    app.signed_in(email, PASSWORD).await["access_token"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn local_row(app: &TestApp, email: &str) -> Option<subscription::Model> {
    subscription::Entity::find_by_id(email.to_lowercase())
        .one(&app.state.db)
        .await
        .unwrap()
}

async fn uid_of(app: &TestApp, email: &str) -> Option<String> {
    user::Entity::find()
        .filter(user::Column::EmailKey.eq(email.to_lowercase()))
        .one(&app.state.db)
        .await
        .unwrap()
        .map(|u| u.uid.to_string())
}

async fn is_subscribed(app: &TestApp, token: &str) -> bool {
    let response = app.get_as("/api/account", token).await;
    response.assert_status_is_ok();
    json(response).await["subscribed"]
        .as_bool()
        .expect("`subscribed` is a boolean")
}

#[tokio::test]
async fn register_with_subscribe_records_the_address_and_upserts_it_at_mailchimp() {
    let mailchimp = MailchimpStandIn::start(Answer::Ok).await;
    let app = app_with(&mailchimp.settings()).await;
    let email = "Ada.Newsletter@Example.org";

    let response = register(&app, email, true).await;
    response.assert_status(StatusCode::CREATED);
    let body = body_without_key(response).await;
    assert!(body.get("subscription_error").is_none(), "{body}");

    let requests = mailchimp.requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert_member_upsert(&requests[0], email);

    let row = local_row(&app, email).await.expect("a local subscription");
    assert_eq!(row.email, email);
    assert_eq!(
        row.uid.map(|u| u.to_string()),
        body["uid"].as_str().map(str::to_string)
    );
    assert_eq!(row.status, "subscribed");
    assert_eq!(row.remote_status.as_deref(), Some("synced"));

    let token = confirm_and_sign_in(&app, email).await;
    assert!(is_subscribed(&app, &token).await);
}

#[tokio::test]
async fn register_without_subscribe_neither_records_nor_calls_mailchimp() {
    let mailchimp = MailchimpStandIn::start(Answer::Ok).await;
    let app = app_with(&mailchimp.settings()).await;
    let email = "no.news@example.org";

    register(&app, email, false)
        .await
        .assert_status(StatusCode::CREATED);
    assert!(mailchimp.requests().is_empty());
    assert!(local_row(&app, email).await.is_none());
    let token = confirm_and_sign_in(&app, email).await;
    assert!(!is_subscribed(&app, &token).await);
}

#[tokio::test]
async fn register_succeeds_with_subscription_error_when_mailchimp_fails() {
    let mailchimp = MailchimpStandIn::start(Answer::Fail(500)).await;
    let app = app_with(&mailchimp.settings()).await;
    let email = "grace@example.org";

    let response = register(&app, email, true).await;
    response.assert_status(StatusCode::CREATED);
    let body = body_without_key(response).await;
    let error = body["subscription_error"]
        .as_str()
        .expect("a subscription_error");
    assert!(error.contains("500"), "{error}");
    assert!(error.contains("Invalid Resource"), "{error}");

    assert_eq!(mailchimp.requests().len(), 1);
    assert_member_upsert(&mailchimp.requests()[0], email);
    assert_eq!(uid_of(&app, email).await.as_deref(), body["uid"].as_str());
    let row = local_row(&app, email).await.expect("recorded locally");
    assert_eq!(row.remote_status.as_deref(), Some("failed"));
    // The account works as any other.
    let token = confirm_and_sign_in(&app, email).await;
    assert!(is_subscribed(&app, &token).await);
}

#[tokio::test]
async fn register_gives_up_on_a_silent_mailchimp_after_the_timeout() {
    let mailchimp = MailchimpStandIn::start(Answer::Hang).await;
    let app = app_with(&mailchimp.settings()).await;
    let email = "slow@example.org";

    let started = Instant::now();
    let response = register(&app, email, true).await;
    response.assert_status(StatusCode::CREATED);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let body = body_without_key(response).await;
    let error = body["subscription_error"].as_str().expect("an error");
    assert!(error.contains("within 1 s"), "{error}");
    assert!(uid_of(&app, email).await.is_some());
    let row = local_row(&app, email).await.expect("recorded locally");
    assert_eq!(row.remote_status.as_deref(), Some("failed"));
}

#[tokio::test]
async fn a_slow_mailchimp_does_not_hold_up_other_registrations() {
    let mailchimp = MailchimpStandIn::start(Answer::Hang).await;
    let mut settings = mailchimp.settings();
    settings.retain(|(key, _)| *key != "mailchimp_timeout_s");
    settings.push(("mailchimp_timeout_s", "4".to_string()));
    let app = app_with(&settings).await;

    let slow = register(&app, "waits@example.org", true);
    let other = async {
        // Once the first registration is waiting on Mailchimp, a second one must go through
        // at once: nothing holds the database while Mailchimp is called.
        mailchimp.arrived.notified().await;
        let started = Instant::now();
        let response = app.register("meanwhile@example.org", PASSWORD).await;
        (response, started.elapsed())
    };
    let (slow, (other, elapsed)) = tokio::join!(slow, other);
    other.assert_status(StatusCode::CREATED);
    assert!(elapsed < Duration::from_secs(2), "{elapsed:?}");
    slow.assert_status(StatusCode::CREATED);
}

#[tokio::test]
async fn subscribe_upserts_the_account_email_or_another_one() {
    let mailchimp = MailchimpStandIn::start(Answer::Ok).await;
    let app = app_with(&mailchimp.settings()).await;
    let email = "Linus@Example.org";
    let token = signed_in(&app, email).await;
    assert!(!is_subscribed(&app, &token).await);

    let response = app.post_as("/api/subscribe", &token, json!({})).await;
    response.assert_status_is_ok();
    let body = body_without_key(response).await;
    assert!(
        body["detail"].as_str().is_some_and(|d| d.contains(email)),
        "{body}"
    );
    assert_eq!(mailchimp.requests().len(), 1);
    assert_member_upsert(&mailchimp.requests()[0], email);
    assert!(is_subscribed(&app, &token).await);
    let row = local_row(&app, email).await.unwrap();
    assert_eq!(row.remote_status.as_deref(), Some("synced"));

    let other = "Team.Inbox@Example.net";
    let response = app
        .post_as("/api/subscribe", &token, json!({"email": other}))
        .await;
    response.assert_status_is_ok();
    body_without_key(response).await;
    assert_eq!(mailchimp.requests().len(), 2);
    assert_member_upsert(&mailchimp.requests()[1], other);
    let row = local_row(&app, other).await.expect("the other address");
    assert_eq!(row.email, other);
    assert_eq!(
        row.uid.map(|u| u.to_string()),
        uid_of(&app, email).await,
        "linked to the account that subscribed it"
    );
    assert_eq!(row.remote_status.as_deref(), Some("synced"));
}

#[tokio::test]
async fn subscribe_without_a_body_uses_the_account_email() {
    let mailchimp = MailchimpStandIn::start(Answer::Ok).await;
    let app = app_with(&mailchimp.settings()).await;
    let email = "bodyless@example.org";
    let token = signed_in(&app, email).await;

    app.client
        .post("/api/subscribe")
        .header("authorization", format!("Bearer {token}"))
        .send()
        .await
        .assert_status_is_ok();
    assert_member_upsert(&mailchimp.requests()[0], email);
    assert!(local_row(&app, email).await.is_some());
}

#[tokio::test]
async fn subscribe_answers_502_when_mailchimp_refuses() {
    let mailchimp = MailchimpStandIn::start(Answer::Fail(400)).await;
    let app = app_with(&mailchimp.settings()).await;
    let email = "refused@example.org";
    let token = signed_in(&app, email).await;

    let response = app.post_as("/api/subscribe", &token, json!({})).await;
    assert_eq!(response.0.status(), StatusCode::BAD_GATEWAY);
    let body = body_without_key(response).await;
    assert_eq!(body["code"], "SubscriptionFailedException", "{body}");
    let detail = body["detail"].as_str().unwrap();
    assert!(
        detail.contains("400") && detail.contains("Invalid Resource"),
        "{detail}"
    );
    assert_member_upsert(&mailchimp.requests()[0], email);
    let row = local_row(&app, email).await.expect("recorded locally");
    assert_eq!(row.remote_status.as_deref(), Some("failed"));
}

#[tokio::test]
async fn subscribe_answers_502_when_mailchimp_cannot_be_reached() {
    let closed = format!("http://127.0.0.1:{}", free_port());
    let app = app_with(&mailchimp_settings(&closed)).await;
    let email = "unreachable@example.org";
    let token = signed_in(&app, email).await;

    let response = app.post_as("/api/subscribe", &token, json!({})).await;
    let body = assert_error(response, 502, "SubscriptionFailedException").await;
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("could not be reached"),
        "{body}"
    );
    assert!(!body.to_string().contains(API_KEY));
    let row = local_row(&app, email).await.expect("recorded locally");
    assert_eq!(row.remote_status.as_deref(), Some("failed"));
}

#[tokio::test]
async fn without_mailchimp_subscriptions_are_only_recorded_locally() {
    // Running, but not configured: it must hear nothing.
    let mailchimp = MailchimpStandIn::start(Answer::Ok).await;
    let app = TestApp::spawn().await;

    let registered = "local.reg@example.org";
    let response = register(&app, registered, true).await;
    response.assert_status(StatusCode::CREATED);
    assert!(json(response).await.get("subscription_error").is_none());
    let row = local_row(&app, registered).await.expect("recorded locally");
    assert_eq!(row.status, "subscribed");
    assert_eq!(row.remote_status, None);

    let email = "local.sub@example.org";
    let token = signed_in(&app, email).await;
    let response = app.post_as("/api/subscribe", &token, json!({})).await;
    response.assert_status_is_ok();
    assert!(json(response).await["detail"].is_string());
    let row = local_row(&app, email).await.expect("recorded locally");
    assert_eq!(row.remote_status, None);
    assert!(is_subscribed(&app, &token).await);

    assert!(mailchimp.requests().is_empty());
}

#[tokio::test]
async fn subscribing_again_renews_the_one_local_row() {
    let app = TestApp::spawn().await;
    let email = "twice@example.org";
    let token = signed_in(&app, email).await;
    for body in [json!({}), json!({"email": "TWICE@example.org"})] {
        app.post_as("/api/subscribe", &token, body)
            .await
            .assert_status_is_ok();
    }
    let rows = subscription::Entity::find()
        .all(&app.state.db)
        .await
        .unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].email, "TWICE@example.org");
    assert!(rows[0].updated_at >= rows[0].created_at);
}

#[tokio::test]
async fn subscribe_needs_a_valid_token() {
    let app = TestApp::spawn().await;
    let response = app
        .post("/api/subscribe", json!({"email": "anon@example.org"}))
        .await;
    assert_error(response, 401, "NotAuthorizedException").await;
    let response = app
        .post_as("/api/subscribe", "not-a-token", json!({}))
        .await;
    assert_error(response, 401, "NotAuthorizedException").await;
    assert!(local_row(&app, "anon@example.org").await.is_none());
}

#[tokio::test]
async fn subscribe_refuses_an_invalid_email() {
    let mailchimp = MailchimpStandIn::start(Answer::Ok).await;
    let app = app_with(&mailchimp.settings()).await;
    let token = signed_in(&app, "valid@example.org").await;
    for email in ["not-an-email", "", "a,b@example.org"] {
        let response = app
            .post_as("/api/subscribe", &token, json!({"email": email}))
            .await;
        let body = assert_error(response, 400, "InvalidParameterException").await;
        assert!(body["errors"]["email"].is_array(), "{body}");
    }
    assert!(mailchimp.requests().is_empty());
    assert!(
        subscription::Entity::find()
            .all(&app.state.db)
            .await
            .unwrap()
            .is_empty()
    );
}
