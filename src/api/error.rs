//! The one error shape of the API, `{detail, code, errors?}`, and the mapping of every failure the
//! framework can produce (unknown path, wrong method, bad body, panic) onto it.

use std::collections::BTreeMap;

use poem::{
    IntoResponse, Response,
    http::{HeaderValue, StatusCode, header},
};
use poem_openapi::Object;

/// Machine-readable error names. Cognito's exception names where one exists, so SDK users
/// recognise them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    InvalidParameter,
    InvalidPassword,
    UsernameExists,
    CodeMismatch,
    ExpiredCode,
    TooManyFailedAttempts,
    NotAuthorized,
    UserNotConfirmed,
    UserDisabled,
    ResourceNotFound,
    MethodNotAllowed,
    RequestEntityTooLarge,
    UnsupportedMediaType,
    PasswordAttemptsExceeded,
    LimitExceeded,
    TooManyRequests,
    InternalError,
    SubscriptionFailed,
    ServiceUnavailable,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidParameter => "InvalidParameterException",
            Self::InvalidPassword => "InvalidPasswordException",
            Self::UsernameExists => "UsernameExistsException",
            Self::CodeMismatch => "CodeMismatchException",
            Self::ExpiredCode => "ExpiredCodeException",
            Self::TooManyFailedAttempts => "TooManyFailedAttemptsException",
            Self::NotAuthorized => "NotAuthorizedException",
            Self::UserNotConfirmed => "UserNotConfirmedException",
            Self::UserDisabled => "UserDisabledException",
            Self::ResourceNotFound => "ResourceNotFoundException",
            Self::MethodNotAllowed => "MethodNotAllowedException",
            Self::RequestEntityTooLarge => "RequestEntityTooLargeException",
            Self::UnsupportedMediaType => "UnsupportedMediaTypeException",
            Self::PasswordAttemptsExceeded => "PasswordAttemptsExceededException",
            Self::LimitExceeded => "LimitExceededException",
            Self::TooManyRequests => "TooManyRequestsException",
            Self::InternalError => "InternalErrorException",
            Self::SubscriptionFailed => "SubscriptionFailedException",
            Self::ServiceUnavailable => "ServiceUnavailableException",
        }
    }
}

/// Every error the API answers with.
#[derive(Object, Clone, Debug, PartialEq)]
#[oai(rename = "Error")]
pub struct ErrorBody {
    /// What went wrong, as a sentence for a person.
    pub detail: String,
    /// The error's name, e.g. `InvalidParameterException` (AWS Cognito's names where one exists).
    pub code: String,
    /// Field validation errors: each invalid field with its messages.
    #[oai(skip_serializing_if_is_none)]
    pub errors: Option<BTreeMap<String, Vec<String>>>,
}

/// An error on its way to becoming a response.
#[derive(Clone, Debug, thiserror::Error)]
#[error("{detail}")]
pub struct ApiError {
    pub status: StatusCode,
    pub code: ErrorCode,
    pub detail: String,
    pub errors: Option<BTreeMap<String, Vec<String>>>,
    /// Whole seconds, at least 1.
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: ErrorCode, detail: impl Into<String>) -> Self {
        Self {
            status,
            code,
            detail: detail.into(),
            errors: None,
            retry_after: None,
        }
    }

    /// 400 `InvalidParameterException` naming one field.
    pub fn field(field: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        let mut errors = BTreeMap::new();
        errors.insert(field.to_string(), vec![message.clone()]);
        Self {
            errors: Some(errors),
            ..Self::new(
                StatusCode::BAD_REQUEST,
                ErrorCode::InvalidParameter,
                format!("{field}: {message}"),
            )
        }
    }

    pub fn not_found() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            ErrorCode::ResourceNotFound,
            "No such resource.",
        )
    }

    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::InternalError,
            "The server failed to complete the request. It has been logged.",
        )
    }

    /// 503 with `Retry-After`: the database is unreachable or the server is saturated.
    pub fn unavailable(detail: impl Into<String>, retry_after_secs: u64) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::ServiceUnavailable,
            detail,
        )
        .retry_after(retry_after_secs)
    }

    pub fn retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs.max(1));
        self
    }

    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            detail: self.detail.clone(),
            code: self.code.as_str().to_string(),
            errors: self.errors.clone(),
        }
    }
}

impl poem::error::ResponseError for ApiError {
    fn status(&self) -> StatusCode {
        self.status
    }

    fn as_response(&self) -> Response {
        let mut response = poem_openapi::payload::Json(self.body())
            .with_status(self.status)
            .into_response();
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

/// Turns any error that reached the edge of the app into the API's JSON error.
///
/// Errors raised as [`ApiError`] keep their meaning; framework errors are classified by status.
/// The causes of 5xx errors are logged here and never sent to the client.
pub fn to_api_error(err: &poem::Error) -> ApiError {
    if let Some(api) = err.downcast_ref::<ApiError>() {
        return api.clone();
    }
    let status = err.status();
    match status {
        StatusCode::NOT_FOUND => ApiError::not_found(),
        StatusCode::METHOD_NOT_ALLOWED => ApiError::new(
            status,
            ErrorCode::MethodNotAllowed,
            "This method is not allowed on this resource; see the Allow header.",
        ),
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
            status,
            ErrorCode::RequestEntityTooLarge,
            "The request body is larger than the server accepts.",
        ),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => super::body::unsupported(),
        StatusCode::UNAUTHORIZED => ApiError::new(
            status,
            ErrorCode::NotAuthorized,
            "Authentication credentials were not provided or are not valid.",
        ),
        s if s.is_client_error() => parse_error(&err.to_string()),
        _ => {
            tracing::error!(status = status.as_u16(), error = %err, "request failed");
            ApiError::internal()
        }
    }
}

/// A body or parameter that could not be parsed: 400, naming the field where the parser did.
fn parse_error(message: &str) -> ApiError {
    if let Some(field) = missing_field(message) {
        return ApiError::field(&field, "This field is required.");
    }
    ApiError::new(
        StatusCode::BAD_REQUEST,
        ErrorCode::InvalidParameter,
        format!("The request could not be parsed: {message}"),
    )
}

/// Finds the field name in the parsers' "missing field `x`" / `field "x"` messages.
fn missing_field(message: &str) -> Option<String> {
    let lower = message.to_ascii_lowercase();
    let at = lower.find("missing field")?;
    let rest = &message[at + "missing field".len()..];
    let rest = rest.trim_start();
    let quote = rest
        .chars()
        .next()
        .filter(|c| matches!(c, '`' | '"' | '\''))?;
    let rest = &rest[quote.len_utf8()..];
    let end = rest.find(['`', '"', '\''])?;
    Some(rest[..end].to_string()).filter(|f| !f.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_field_names_are_found_in_parser_messages() {
        assert_eq!(
            missing_field(
                "parse request payload error: failed to parse \"Login\": missing field `email`"
            ),
            Some("email".into())
        );
        assert_eq!(missing_field("expected value at line 1 column 1"), None);
    }

    #[test]
    fn retry_after_is_at_least_one_second() {
        assert_eq!(ApiError::unavailable("x", 0).retry_after, Some(1));
    }
}
