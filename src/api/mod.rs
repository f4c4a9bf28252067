//! HTTP only: poem-openapi operations, request and response types, error mapping. The use cases
//! behind them know nothing of HTTP.

pub mod auth;
pub mod body;
pub mod client_ip;
pub mod compat;
pub mod cookies;
pub mod cors;
pub mod edge;
pub mod error;
pub mod headers;
pub mod mapping;
pub mod observe;
pub mod ops;
pub mod pool;
pub mod rate_limit;
pub mod responses;
pub mod route_index;
pub mod wellknown;

use std::sync::Arc;

use poem::{
    Endpoint, EndpointExt, Route,
    middleware::{CatchPanic, NormalizePath, TrailingSlash},
};
use poem_openapi::{OpenApi, OpenApiService, Tags};

use crate::state::AppState;

/// Groups of operations in the OpenAPI document.
#[derive(Tags)]
pub enum Tag {
    /// `/api`: sign-up, confirmation, sign-in, sessions, passwords and the account.
    Pool,
    /// `/api`: personal API tokens for a separate data API, the hosts they may be used from, and
    /// their introspection by that API.
    Tokens,
    /// `/api`: newsletter subscription.
    Newsletter,
    /// `/authentication/api`: the miniSASS / SimpleJWT-compatible surface, on the same users and
    /// sessions as `/api`.
    Compat,
    /// Public keys and OpenID Connect discovery, for verifying authpool's tokens.
    Discovery,
    /// Liveness and readiness, for load balancers and orchestrators.
    Operations,
}

const DESCRIPTION: &str = "\
A self-hosted user pool with AWS Cognito semantics.

Every error is JSON: `{\"detail\": \"<sentence>\", \"code\": \"<Name>\"}`, plus \
`\"errors\": {\"<field>\": [\"<message>\"]}` for invalid fields. `code` reuses Cognito's \
exception names. Paths work with and without a trailing slash. Request bodies are limited to \
64 KiB by default (413 `RequestEntityTooLargeException`).

Browsers: responses under `/api` and `/authentication/api` are `Cache-Control: no-store`. A \
browser app on another origin needs that origin in the server's `AUTHPOOL_CORS_ORIGINS` \
(credentials allowed; `Authorization`, `X-Request-Id` and `Retry-After` are exposed). The \
cookies are `SameSite=Lax`, for apps on the same site; a cross-site app uses the tokens in \
the body.

Every response carries an `X-Request-Id` header, also written on the server's log lines for \
that request: the client's own `X-Request-Id` when it is at most 64 characters of \
`A-Z a-z 0-9 . _ -`, otherwise a new random one. Quote it when reporting a problem.";

/// The OpenAPI service: the same for the server, the tests and `authpool openapi`.
pub fn service() -> OpenApiService<impl OpenApi + 'static, ()> {
    let operations = (
        pool::signup::SignUpApi,
        pool::session::SessionApi,
        pool::password::PasswordApi,
        pool::account::AccountApi,
        pool::tokens::ApiTokensApi,
        pool::hosts::AllowedHostsApi,
        pool::newsletter::NewsletterApi,
        compat::session::CompatSessionApi,
        compat::signup::CompatSignUpApi,
        wellknown::WellKnownApi,
        ops::OpsApi,
    );
    OpenApiService::new(operations, "authpool", env!("CARGO_PKG_VERSION")).description(DESCRIPTION)
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
    let index = Arc::new(route_index::RouteIndex::from_spec(&spec, EXTRA_ROUTES));
    // Outermost, so it sees every answer (404, 405, 413, 429, panics) and stamps its request id.
    let observe = observe::Observe::new(index.clone(), state.metrics.clone());
    let operations = Arc::new(compat::metadata::OperationIndex::from_spec(&spec));
    let docs = service.swagger_ui();
    let spec_endpoint = service.spec_endpoint();
    let max_body_bytes = state.settings.max_body_bytes;
    let rate_limit = rate_limit::IpRateLimit::new(
        state.settings.ip_rate_limit,
        state.settings.introspection_rate_limit,
    )
    .behind(state.settings.trusted_proxies.clone());
    let cors = cors::Cors::new(&state.settings.cors_origins);
    // Hashes the Swagger UI page as `docs` serves it (the same function of the same spec).
    let security_headers = headers::SecurityHeaders::new(
        &service.swagger_ui_html(),
        state.settings.public_url.scheme() == "https",
    );
    Route::new()
        .at("/openapi.json", spec_endpoint)
        .nest("/docs", docs)
        .nest("/", service)
        .data(state)
        .data(operations)
        .with(CatchPanic::new().with_handler(edge::panic_response))
        .with(edge::Edge {
            index,
            max_body_bytes,
        })
        .with(rate_limit)
        .with(cors)
        .with(security_headers)
        .with(NormalizePath::new(TrailingSlash::Trim))
        .with(observe)
}
