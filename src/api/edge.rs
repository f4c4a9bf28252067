//! What wraps every route: the body-size limit and the mapping of every error to JSON, with
//! `Allow` on 405. Kept out of the operations so no handler can forget it.

use std::sync::Arc;

use poem::{
    Endpoint, IntoResponse, Middleware, Request, Response, Result,
    error::{ReadBodyError, ResponseError},
    http::{HeaderValue, StatusCode, header},
};

use super::error::{ApiError, ErrorCode, to_api_error};

/// The paths the app serves and their methods, for the `Allow` header of 405 answers.
#[derive(Debug, Default)]
pub struct RouteIndex {
    /// Path templates split into segments (`{x}` matches any one segment), with their methods.
    routes: Vec<(Vec<String>, Vec<String>)>,
}

impl RouteIndex {
    /// Reads the paths and methods of an OpenAPI document, plus routes served beside it.
    pub fn from_spec(spec: &serde_json::Value, extra: &[(&str, &[&str])]) -> Self {
        let mut routes = Vec::new();
        if let Some(paths) = spec.get("paths").and_then(|p| p.as_object()) {
            for (path, item) in paths {
                let mut methods: Vec<String> = item
                    .as_object()
                    .map(|ops| ops.keys().map(|m| m.to_ascii_uppercase()).collect())
                    .unwrap_or_default();
                methods.sort_by_key(|m| METHOD_ORDER.iter().position(|o| o == m));
                routes.push((segments(path), methods));
            }
        }
        for (path, methods) in extra {
            routes.push((
                segments(path),
                methods.iter().map(|m| m.to_string()).collect(),
            ));
        }
        Self { routes }
    }

    /// The methods served at a concrete path, as an `Allow` value.
    pub fn allow(&self, path: &str) -> Option<String> {
        let wanted = segments(path);
        self.routes
            .iter()
            .find(|(template, _)| {
                template.len() == wanted.len()
                    && template
                        .iter()
                        .zip(&wanted)
                        .all(|(t, w)| t == w || (t.starts_with('{') && t.ends_with('}')))
            })
            .map(|(_, methods)| methods.join(", "))
    }
}

/// The order methods are listed in `Allow`.
const METHOD_ORDER: &[&str] = &["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

fn segments(path: &str) -> Vec<String> {
    path.split('/')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// Middleware: limits bodies and turns every error into the API's JSON error.
pub struct Edge {
    pub index: Arc<RouteIndex>,
    pub max_body_bytes: usize,
}

impl<E: Endpoint> Middleware<E> for Edge {
    type Output = EdgeEndpoint<E>;

    fn transform(&self, inner: E) -> Self::Output {
        EdgeEndpoint {
            inner,
            index: self.index.clone(),
            max_body_bytes: self.max_body_bytes,
        }
    }
}

pub struct EdgeEndpoint<E> {
    inner: E,
    index: Arc<RouteIndex>,
    max_body_bytes: usize,
}

impl<E: Endpoint> Endpoint for EdgeEndpoint<E> {
    type Output = Response;

    async fn call(&self, mut req: Request) -> Result<Response> {
        if let Err(err) = limit_body(&mut req, self.max_body_bytes).await {
            return Ok(err.as_response());
        }
        let path = req.uri().path().to_string();
        match self.inner.call(req).await {
            Ok(output) => Ok(output.into_response()),
            Err(err) => {
                let api = to_api_error(&err);
                let mut response = api.as_response();
                if api.status == StatusCode::METHOD_NOT_ALLOWED
                    && let Some(allow) = self.index.allow(&path)
                    && let Ok(value) = HeaderValue::from_str(&allow)
                {
                    response.headers_mut().insert(header::ALLOW, value);
                }
                Ok(response)
            }
        }
    }
}

/// Reads the body into memory, refusing it past the limit — declared or streamed (chunked).
/// Bodies here are small forms; buffering them keeps every parser behind one limit.
async fn limit_body(req: &mut Request, max: usize) -> std::result::Result<(), ApiError> {
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::RequestEntityTooLarge,
            format!("The request body is larger than {max} bytes."),
        )
    };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    match declared {
        Some(0) => return Ok(()),
        Some(n) if n > max as u64 => return Err(too_large()),
        _ => {}
    }
    match req.take_body().into_bytes_limit(max).await {
        Ok(bytes) => {
            req.set_body(bytes);
            Ok(())
        }
        Err(ReadBodyError::PayloadTooLarge) => Err(too_large()),
        Err(_) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidParameter,
            "The request body could not be read.",
        )),
    }
}

/// The answer to a panic in a handler: a logged 500 that leaks nothing.
pub fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("a request handler panicked");
    ApiError::internal().as_response()
}

#[cfg(test)]
mod tests {
    use super::RouteIndex;

    #[test]
    fn allow_lists_the_methods_of_the_matching_template() {
        let spec = serde_json::json!({"paths": {
            "/api/tokens/{key}": {"get": {}, "delete": {}},
            "/health/live": {"get": {}},
        }});
        let index = RouteIndex::from_spec(&spec, &[("/openapi.json", &["GET"])]);
        assert_eq!(
            index.allow("/api/tokens/abc").as_deref(),
            Some("GET, DELETE")
        );
        assert_eq!(index.allow("/openapi.json").as_deref(), Some("GET"));
        assert_eq!(index.allow("/nowhere"), None);
    }
}
