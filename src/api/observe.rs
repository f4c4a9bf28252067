//! The outermost middleware: gives every request an id, runs it inside a `tracing` span that
//! carries the id, counts it in the metrics, and writes one access log line.
//!
//! What is recorded is chosen to hold no secret: the method, the route *template* (never the raw
//! path or query string: `GET /api/validate?confirmation_code=...` carries a code, and
//! `/api/api-tokens/{key}` would make labels unbounded), the status and the latency. Headers and
//! bodies are never read here.

use std::{sync::Arc, time::Instant};

use poem::{
    Endpoint, IntoResponse, Middleware, Request, Response, Result,
    error::ResponseError,
    http::{HeaderMap, HeaderName, HeaderValue},
};
use tracing::Instrument;

use super::{error::to_api_error, route_index::RouteIndex};
use crate::metrics::{self, Metrics};

/// The header carrying the request id, both ways.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The longest client-sent request id kept.
const MAX_REQUEST_ID_LEN: usize = 64;

/// The `tracing` target of access log lines, so they can be filtered on their own
/// (`AUTHPOOL_LOG_LEVEL=info,authpool::access=off`).
pub const ACCESS_TARGET: &str = "authpool::access";

/// Middleware: request ids, the request span, metrics and the access log.
pub struct Observe {
    index: Arc<RouteIndex>,
    metrics: Arc<Metrics>,
}

impl Observe {
    /// Lays out the metrics table for the routes of `index`.
    pub fn new(index: Arc<RouteIndex>, metrics: Arc<Metrics>) -> Self {
        metrics.init_routes(index.templates());
        Self { index, metrics }
    }
}

impl<E: Endpoint> Middleware<E> for Observe {
    type Output = ObserveEndpoint<E>;

    fn transform(&self, inner: E) -> Self::Output {
        ObserveEndpoint {
            inner,
            index: self.index.clone(),
            metrics: self.metrics.clone(),
        }
    }
}

pub struct ObserveEndpoint<E> {
    inner: E,
    index: Arc<RouteIndex>,
    metrics: Arc<Metrics>,
}

impl<E: Endpoint> Endpoint for ObserveEndpoint<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> Result<Response> {
        let started = Instant::now();
        let id = request_id(req.headers());
        let method = req.method().clone();
        let position = self.index.position(req.uri().path());
        let route = position
            .and_then(|i| self.index.template(i))
            .unwrap_or(metrics::UNMATCHED);
        // At error level so the span is enabled whatever the filter: a warning or an error
        // logged while serving the request carries the request id even with
        // `AUTHPOOL_LOG_LEVEL=warn`.
        let span = tracing::error_span!("request", request_id = %id);
        let mut response = match self.inner.call(req).instrument(span.clone()).await {
            Ok(output) => output.into_response(),
            // The edge inside turns every error into JSON already; this catches whatever an
            // outer layer might still return.
            Err(err) => to_api_error(&err).as_response(),
        };
        if let Ok(value) = HeaderValue::from_str(&id) {
            response.headers_mut().insert(REQUEST_ID, value);
        }
        let elapsed = started.elapsed();
        let status = response.status().as_u16();
        self.metrics
            .record_request(&method, position, status, elapsed);
        let latency_ms = (elapsed.as_secs_f64() * 1e6).round() / 1e3;
        span.in_scope(|| {
            tracing::info!(
                target: ACCESS_TARGET,
                method = metrics::method_label(&method),
                route,
                status,
                latency_ms,
                "request"
            );
        });
        Ok(response)
    }
}

/// The client's `X-Request-Id` when it is short and plain (`[A-Za-z0-9._-]{1,64}`, safe in logs
/// and headers), otherwise a new random one (128 bits, hex).
fn request_id(headers: &HeaderMap) -> String {
    headers
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| is_acceptable(v))
        .map_or_else(|| uuid::Uuid::new_v4().simple().to_string(), str::to_string)
}

fn is_acceptable(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_REQUEST_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_ids_are_kept_only_when_short_and_plain() {
        let id = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(REQUEST_ID, HeaderValue::from_str(value).unwrap());
            request_id(&headers)
        };
        assert_eq!(id("abc-123_X.y"), "abc-123_X.y");
        assert_eq!(id(&"a".repeat(64)), "a".repeat(64));
        for refused in ["", "a b", "a\"b", "tok/en", "a=b", &"a".repeat(65)] {
            let generated = id(refused);
            assert_ne!(generated, refused);
            assert_eq!(generated.len(), 32, "{generated}");
            assert!(generated.bytes().all(|b| b.is_ascii_hexdigit()));
        }
        assert_ne!(request_id(&HeaderMap::new()), request_id(&HeaderMap::new()));
    }
}
