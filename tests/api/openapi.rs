//! The committed OpenAPI document is the one the code generates, and it is complete.

use crate::helpers::{TestApp, json};

const COMMITTED: &str = include_str!("../../openapi/openapi.json");

#[test]
fn committed_spec_is_up_to_date() {
    let generated = authpool::api::spec_json();
    if std::env::var_os("AUTHPOOL_UPDATE_OPENAPI").is_some() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi/openapi.json");
        std::fs::write(path, format!("{generated}\n")).unwrap();
        return;
    }
    assert!(
        COMMITTED.trim_end() == generated.trim_end(),
        "openapi/openapi.json is stale: regenerate it with \
         `cargo run -- openapi > openapi/openapi.json` \
         (or `AUTHPOOL_UPDATE_OPENAPI=1 cargo test --test api openapi`) and commit it"
    );
}

#[test]
fn every_operation_is_named_summarised_described_and_lists_its_responses() {
    let spec: serde_json::Value = serde_json::from_str(&authpool::api::spec_json()).unwrap();
    let paths = spec["paths"].as_object().unwrap();
    assert!(!paths.is_empty());
    for (path, item) in paths {
        assert!(!path.ends_with('/'), "{path} has a trailing slash");
        for (method, op) in item.as_object().unwrap() {
            let at = format!("{method} {path}");
            for field in ["operationId", "summary", "description"] {
                assert!(
                    op[field].as_str().is_some_and(|s| !s.is_empty()),
                    "{at} has no {field}"
                );
            }
            assert!(
                op["responses"].as_object().is_some_and(|r| !r.is_empty()),
                "{at}"
            );
        }
    }
}

#[tokio::test]
async fn the_server_serves_its_spec_and_swagger_ui_without_outside_urls() {
    let app = TestApp::spawn().await;
    let response = app.client.get("/openapi.json").send().await;
    response.assert_status_is_ok();
    let served = json(response).await;
    let generated: serde_json::Value = serde_json::from_str(&authpool::api::spec_json()).unwrap();
    assert_eq!(served, generated);

    for path in ["/docs", "/docs/"] {
        let response = app.client.get(path).send().await;
        response.assert_status_is_ok();
        let html = response.0.into_body().into_string().await.unwrap();
        assert!(html.contains("SwaggerUIBundle"), "{path}");
        // Everything is inline: no script or stylesheet fetched from anywhere.
        assert!(!html.contains("src=\"http"), "{path} loads a remote script");
        assert!(
            !html.contains("href=\"http"),
            "{path} loads a remote stylesheet"
        );
    }
}
