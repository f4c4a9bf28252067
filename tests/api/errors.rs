//! Every failure the framework can produce answers the API's JSON error.

use poem::http::header;

use crate::helpers::{TestApp, assert_error};

#[tokio::test]
async fn unknown_path_is_404_json() {
    let app = TestApp::spawn().await;
    let response = app.client.get("/no/such/thing").send().await;
    assert_error(response, 404, "ResourceNotFoundException").await;
}

#[tokio::test]
async fn wrong_method_is_405_json_with_allow() {
    let app = TestApp::spawn().await;
    let response = app.client.post("/health/live").send().await;
    let allow = response.0.headers().get(header::ALLOW).cloned();
    assert_error(response, 405, "MethodNotAllowedException").await;
    assert_eq!(allow.unwrap(), "GET");
}

#[tokio::test]
async fn declared_body_over_the_limit_is_413_json() {
    let app = TestApp::spawn().await;
    let body = vec![b'x'; 64 * 1024 + 1];
    let response = app
        .client
        .post("/health/live")
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CONTENT_LENGTH, body.len())
        .body(body)
        .send()
        .await;
    assert_error(response, 413, "RequestEntityTooLargeException").await;
}

#[tokio::test]
async fn streamed_body_over_the_limit_is_413_json() {
    let app = TestApp::spawn().await;
    // No Content-Length: the body arrives as a stream of chunks and is counted as it comes.
    let chunks = (0..70).map(|_| Ok::<_, std::io::Error>(bytes::Bytes::from(vec![b'x'; 1024])));
    let body = poem::Body::from_bytes_stream(futures_util::stream::iter(chunks));
    let response = app
        .client
        .post("/health/live")
        .header(header::CONTENT_TYPE, "application/json")
        .body(body)
        .send()
        .await;
    assert_error(response, 413, "RequestEntityTooLargeException").await;
}

#[tokio::test]
async fn the_limit_is_configurable() {
    let app = TestApp::with_settings(&[("max_body_bytes", "2048")]).await;
    let response = app
        .client
        .post("/health/live")
        .body(vec![b'x'; 4096])
        .send()
        .await;
    assert_error(response, 413, "RequestEntityTooLargeException").await;
}

#[tokio::test]
async fn malformed_json_is_400_json() {
    let app = TestApp::spawn().await;
    let response = app
        .client
        .post("/api/login")
        .header(header::CONTENT_TYPE, "application/json")
        .body("{\"email\": \"a@b.org\",")
        .send()
        .await;
    let body = assert_error(response, 400, "InvalidParameterException").await;
    assert!(
        body["detail"].as_str().unwrap().contains("not valid JSON"),
        "{body}"
    );
}

#[tokio::test]
async fn missing_and_mistyped_fields_are_named() {
    let app = TestApp::spawn().await;
    let response = app
        .post("/api/register", serde_json::json!({"email": 42}))
        .await;
    let body = assert_error(response, 400, "InvalidParameterException").await;
    assert_eq!(body["errors"]["password"][0], "This field is required.");
    assert_eq!(body["errors"]["email"][0], "Must be of type string.");
}

#[tokio::test]
async fn wrong_content_type_is_415_json() {
    let app = TestApp::spawn().await;
    let response = app
        .client
        .post("/api/login")
        .header(header::CONTENT_TYPE, "application/xml")
        .body("<login/>")
        .send()
        .await;
    assert_error(response, 415, "UnsupportedMediaTypeException").await;
}

#[tokio::test]
async fn an_internal_error_is_500_json_and_discloses_nothing() {
    use sea_orm::ConnectionTrait;

    let app = TestApp::spawn().await;
    // A broken schema makes every query on users fail with an error that is not the client's.
    app.state
        .db
        .execute_unprepared("ALTER TABLE users RENAME TO users_gone")
        .await
        .unwrap();
    let response = app
        .post(
            "/api/login",
            serde_json::json!({"email": "a@b.org", "password": "x"}),
        )
        .await;
    let body = assert_error(response, 500, "InternalErrorException").await;
    let text = body.to_string().to_lowercase();
    for leak in ["users", "table", "sql", "relation"] {
        assert!(!text.contains(leak), "{body} discloses {leak}");
    }
}

#[tokio::test]
async fn unauthenticated_posts_are_rate_limited_per_address() {
    // 1 per second with a burst of 10.
    let app = TestApp::with_settings(&[("ip_rate_limit", "1")]).await;
    let body = serde_json::json!({"email": "nobody@example.org"});
    for _ in 0..10 {
        app.post("/api/validate/resend", body.clone())
            .await
            .assert_status_is_ok();
    }
    let response = app.post("/api/validate/resend", body.clone()).await;
    let retry_after = response.0.headers().get("retry-after").cloned();
    assert_error(response, 429, "TooManyRequestsException").await;
    assert_eq!(retry_after.unwrap(), "1");
    // Reads and authenticated calls are not counted.
    app.client
        .get("/health/live")
        .send()
        .await
        .assert_status_is_ok();
    let response = app
        .post_as("/api/logout", "not-a-token", serde_json::json!({}))
        .await;
    assert_error(response, 401, "NotAuthorizedException").await;
}
