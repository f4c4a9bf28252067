//! CORS for the configured browser origins (`AUTHPOOL_CORS_ORIGINS`), with credentials.
//!
//! Not poem's `Cors`: with an origin list it refuses other origins server-side with a
//! non-JSON error, treats every `OPTIONS` that has an `Origin` as a preflight (the compat
//! surface serves real `OPTIONS` operations), and sends no `Vary: Origin` for listed origins.
//!
//! Here: an `OPTIONS` with `Origin` and `Access-Control-Request-Method` from a listed origin is
//! a preflight and answered at once (204); every other request goes through untouched, and its
//! response — errors included — gets the CORS headers when the origin is listed. An unlisted
//! origin gets no CORS headers at all and its request is served as usual (the browser is the
//! one that enforces CORS). Every response varies by `Origin`, so every one says so.

use std::sync::Arc;

use poem::{
    Endpoint, Middleware, Request, Response, Result,
    http::{HeaderMap, HeaderValue, Method, StatusCode, header},
};

/// Methods a listed origin may use.
const ALLOW_METHODS: &str = "GET, POST, PUT, PATCH, DELETE, OPTIONS";
/// Request headers a listed origin may send, beyond the CORS-safelisted ones.
const ALLOW_HEADERS: &str = "Authorization, Content-Type, X-Request-Id";
/// Response headers a browser app may read: the id token after sign-in, the request id, and
/// how long to wait after a 429 or 503.
const EXPOSE_HEADERS: &str = "Authorization, X-Request-Id, Retry-After";
/// How long a browser may cache a preflight answer, in seconds (Chromium caps it at 7200).
const MAX_AGE: &str = "7200";

pub struct Cors {
    origins: Arc<[String]>,
}

impl Cors {
    /// Exact origins, as in [`crate::config::Settings::cors_origins`]; none turns CORS off.
    pub fn new(origins: &[String]) -> Self {
        Self {
            origins: origins.into(),
        }
    }
}

impl<E: Endpoint> Middleware<E> for Cors {
    type Output = CorsEndpoint<E>;

    fn transform(&self, inner: E) -> Self::Output {
        CorsEndpoint {
            inner,
            origins: self.origins.clone(),
        }
    }
}

pub struct CorsEndpoint<E> {
    inner: E,
    origins: Arc<[String]>,
}

impl<E: Endpoint> CorsEndpoint<E> {
    /// The request's `Origin`, when it is listed.
    fn allowed(&self, req: &Request) -> Option<HeaderValue> {
        let origin = req.headers().get(header::ORIGIN)?;
        let text = origin.to_str().ok()?;
        self.origins
            .iter()
            .any(|o| o == text)
            .then(|| origin.clone())
    }
}

impl<E: Endpoint> Endpoint for CorsEndpoint<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> Result<Response> {
        if self.origins.is_empty() {
            return Ok(self.inner.get_response(req).await);
        }
        let allowed = self.allowed(&req);
        let preflight = req.method() == Method::OPTIONS
            && req
                .headers()
                .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
        let mut response = match &allowed {
            Some(_) if preflight => Response::builder()
                .status(StatusCode::NO_CONTENT)
                .header(header::ACCESS_CONTROL_ALLOW_METHODS, ALLOW_METHODS)
                .header(header::ACCESS_CONTROL_ALLOW_HEADERS, ALLOW_HEADERS)
                .header(header::ACCESS_CONTROL_MAX_AGE, MAX_AGE)
                .finish(),
            _ => self.inner.get_response(req).await,
        };
        let headers = response.headers_mut();
        if let Some(origin) = allowed {
            headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
            headers.insert(
                header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
            if !preflight {
                headers.insert(
                    header::ACCESS_CONTROL_EXPOSE_HEADERS,
                    HeaderValue::from_static(EXPOSE_HEADERS),
                );
            }
        }
        add_vary_origin(headers);
        Ok(response)
    }
}

/// Adds `Origin` to `Vary`, keeping what is there.
fn add_vary_origin(headers: &mut HeaderMap) {
    let present = headers
        .get_all(header::VARY)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|v| {
            let v = v.trim();
            v == "*" || v.eq_ignore_ascii_case("origin")
        });
    if !present {
        headers.append(header::VARY, HeaderValue::from_static("Origin"));
    }
}
