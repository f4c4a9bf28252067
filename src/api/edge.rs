//! What wraps every route: the body-size limit and the mapping of every error to JSON, with
//! `Allow` on 405. Kept out of the operations so no handler can forget it.

use std::sync::Arc;

use bytes::Bytes;

use poem::{
    Endpoint, IntoResponse, Middleware, Request, Response, Result,
    error::{ReadBodyError, ResponseError},
    http::{HeaderValue, StatusCode, header},
};

use super::{
    error::{ApiError, ErrorCode, to_api_error},
    route_index::RouteIndex,
};

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
async fn limit_body(req: &mut Request, max: usize) -> std::result::Result<Bytes, ApiError> {
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
        Some(0) => return Ok(Bytes::new()),
        Some(n) if n > max as u64 => return Err(too_large()),
        _ => {}
    }
    match req.take_body().into_bytes_limit(max).await {
        Ok(bytes) => {
            req.set_body(bytes.clone());
            Ok(bytes)
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
