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
