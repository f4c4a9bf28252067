//! HTTP only: poem-openapi operations, request and response types, error mapping. The use cases
//! behind them know nothing of HTTP.

pub mod edge;
pub mod error;
pub mod ops;
pub mod wellknown;

use std::sync::Arc;

use poem::{
    Endpoint, EndpointExt, Route,
    middleware::{CatchPanic, NormalizePath, TrailingSlash},
};
use poem_openapi::{OpenApiService, Tags};

use crate::state::AppState;

/// Groups of operations in the OpenAPI document.
#[derive(Tags)]
pub enum Tag {
    /// Public keys and OpenID Connect discovery, for verifying authpool's tokens.
    Discovery,
    /// Liveness and readiness, for load balancers and orchestrators.
    Operations,
}

/// Every OpenAPI-described operation.
pub type Api = (wellknown::WellKnownApi, ops::OpsApi);

const DESCRIPTION: &str = "\
A self-hosted user pool with AWS Cognito semantics.

Every error is JSON: `{\"detail\": \"<sentence>\", \"code\": \"<Name>\"}`, plus \
`\"errors\": {\"<field>\": [\"<message>\"]}` for invalid fields. `code` reuses Cognito's \
exception names. Paths work with and without a trailing slash. Request bodies are limited to \
64 KiB by default (413 `RequestEntityTooLargeException`).";

/// The OpenAPI service: the same for the server, the tests and `authpool openapi`.
pub fn service() -> OpenApiService<Api, ()> {
    OpenApiService::new(
        (wellknown::WellKnownApi, ops::OpsApi),
        "authpool",
        env!("CARGO_PKG_VERSION"),
    )
    .description(DESCRIPTION)
}

/// The OpenAPI document as pretty JSON, as committed in `openapi/openapi.json`.
pub fn spec_json() -> String {
    service().spec()
}

/// Routes served beside the OpenAPI operations.
const EXTRA_ROUTES: &[(&str, &[&str])] = &[("/openapi.json", &["GET"]), ("/docs", &["GET"])];

/// The whole HTTP app: operations, spec, docs, and the edge that makes every error JSON.
pub fn routes(state: AppState) -> impl Endpoint {
    let service = service();
    let spec: serde_json::Value =
        serde_json::from_str(&service.spec()).expect("poem-openapi emits JSON");
    let index = Arc::new(edge::RouteIndex::from_spec(&spec, EXTRA_ROUTES));
    let docs = service.swagger_ui();
    let spec_endpoint = service.spec_endpoint();
    let max_body_bytes = state.settings.max_body_bytes;
    Route::new()
        .at("/openapi.json", spec_endpoint)
        .nest("/docs", docs)
        .nest("/", service)
        .data(state)
        .with(CatchPanic::new().with_handler(edge::panic_response))
        .with(edge::Edge {
            index,
            max_body_bytes,
        })
        .with(NormalizePath::new(TrailingSlash::Trim))
}
