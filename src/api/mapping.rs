//! The one place where the use cases' errors become HTTP errors.

use poem::http::StatusCode;
use sea_orm::DbErr;

use super::{
    auth::not_authorized,
    error::{ApiError, ErrorCode},
};
use crate::{
    domain::{FieldError, PasswordError},
    pool::{
        Infra,
        account::AccountError,
        codes::CodeError,
        lockout::retry_after_secs,
        login::LoginError,
        password::{ChangePasswordError, ResetError},
        register::RegisterError,
        session::RefreshError,
        verify::{ConfirmError, ResendError},
    },
};

/// Seconds a client should wait when the database is unreachable.
const DATABASE_RETRY_AFTER: u64 = 5;
/// Seconds a client should wait when the hashing queue is full: about one hash.
const BUSY_RETRY_AFTER: u64 = 1;

impl From<Infra> for ApiError {
    fn from(err: Infra) -> Self {
        match err {
            Infra::Busy => {
                ApiError::unavailable("The server is busy; try again shortly.", BUSY_RETRY_AFTER)
            }
            Infra::Db(err) if is_unreachable(&err) => {
                tracing::warn!(error = %err, "database unreachable");
                ApiError::unavailable("The database is unreachable.", DATABASE_RETRY_AFTER)
            }
            err => {
                tracing::error!(error = %err, "request failed");
                ApiError::internal()
            }
        }
    }
}

/// Connection failures (as opposed to a bad query): the request may succeed later.
fn is_unreachable(err: &DbErr) -> bool {
    matches!(err, DbErr::Conn(_) | DbErr::ConnectionAcquire(_))
        || err.to_string().to_lowercase().contains("connection")
}

impl From<DbErr> for ApiError {
    fn from(err: DbErr) -> Self {
        Infra::Db(err).into()
    }
}

impl From<FieldError> for ApiError {
    fn from(err: FieldError) -> Self {
        ApiError::field(err.field, err.message)
    }
}

impl From<PasswordError> for ApiError {
    fn from(err: PasswordError) -> Self {
        ApiError {
            code: ErrorCode::InvalidPassword,
            ..ApiError::field(err.field, err.message)
        }
    }
}

impl From<CodeError> for ApiError {
    fn from(err: CodeError) -> Self {
        let code = match err {
            CodeError::Mismatch => ErrorCode::CodeMismatch,
            CodeError::Expired => ErrorCode::ExpiredCode,
            CodeError::TooManyAttempts => ErrorCode::TooManyFailedAttempts,
        };
        ApiError::new(StatusCode::BAD_REQUEST, code, err.to_string())
    }
}

impl From<RegisterError> for ApiError {
    fn from(err: RegisterError) -> Self {
        match err {
            RegisterError::EmailExists => exists("email", &err),
            RegisterError::UsernameExists => exists("username", &err),
            RegisterError::Infra(infra) => infra.into(),
        }
    }
}

impl From<AccountError> for ApiError {
    fn from(err: AccountError) -> Self {
        match err {
            AccountError::EmailExists => exists("email", &err),
            AccountError::Infra(infra) => infra.into(),
        }
    }
}

fn exists(field: &str, err: &dyn std::error::Error) -> ApiError {
    ApiError {
        code: ErrorCode::UsernameExists,
        ..ApiError::field(field, err.to_string())
    }
}

impl From<LoginError> for ApiError {
    fn from(err: LoginError) -> Self {
        let detail = err.to_string();
        match err {
            LoginError::NotAuthorized => {
                ApiError::new(StatusCode::UNAUTHORIZED, ErrorCode::NotAuthorized, detail)
            }
            LoginError::UserNotConfirmed => {
                ApiError::new(StatusCode::FORBIDDEN, ErrorCode::UserNotConfirmed, detail)
            }
            LoginError::UserDisabled => {
                ApiError::new(StatusCode::FORBIDDEN, ErrorCode::UserDisabled, detail)
            }
            LoginError::LockedOut(wait) => ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                ErrorCode::PasswordAttemptsExceeded,
                detail,
            )
            .retry_after(retry_after_secs(wait)),
            LoginError::Infra(infra) => infra.into(),
        }
    }
}

impl From<RefreshError> for ApiError {
    fn from(err: RefreshError) -> Self {
        match err {
            RefreshError::NotAuthorized => ApiError {
                detail: err.to_string(),
                ..not_authorized()
            },
            RefreshError::Infra(infra) => infra.into(),
        }
    }
}

impl From<ChangePasswordError> for ApiError {
    fn from(err: ChangePasswordError) -> Self {
        match err {
            ChangePasswordError::WrongOldPassword => ApiError {
                code: ErrorCode::NotAuthorized,
                ..ApiError::field("old_password", err.to_string())
            },
            ChangePasswordError::LockedOut(wait) => ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                ErrorCode::PasswordAttemptsExceeded,
                err.to_string(),
            )
            .retry_after(retry_after_secs(wait)),
            ChangePasswordError::Infra(infra) => infra.into(),
        }
    }
}

impl From<ResetError> for ApiError {
    fn from(err: ResetError) -> Self {
        match err {
            ResetError::Code(code) => code.into(),
            ResetError::Password(password) => password.into(),
            ResetError::Infra(infra) => infra.into(),
        }
    }
}

impl From<ConfirmError> for ApiError {
    fn from(err: ConfirmError) -> Self {
        match err {
            ConfirmError::Code(code) => code.into(),
            ConfirmError::AlreadyConfirmed => ApiError::new(
                StatusCode::BAD_REQUEST,
                ErrorCode::NotAuthorized,
                err.to_string(),
            ),
            ConfirmError::Infra(infra) => infra.into(),
        }
    }
}

impl From<ResendError> for ApiError {
    fn from(err: ResendError) -> Self {
        let detail = err.to_string();
        match err {
            ResendError::Limited(wait) => ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                ErrorCode::LimitExceeded,
                detail,
            )
            .retry_after(retry_after_secs(wait)),
            ResendError::AlreadyVerified => {
                ApiError::new(StatusCode::BAD_REQUEST, ErrorCode::InvalidParameter, detail)
            }
            ResendError::Account(account) => account.into(),
            ResendError::Infra(infra) => infra.into(),
        }
    }
}

impl From<crate::pool::api_tokens::ApiTokenError> for ApiError {
    fn from(err: crate::pool::api_tokens::ApiTokenError) -> Self {
        use crate::pool::api_tokens::ApiTokenError;
        match err {
            ApiTokenError::NotFound => ApiError::not_found(),
            // A limit the client can resolve itself (by deleting a token): a 400, as Cognito's
            // `LimitExceededException` is, but named like the table's other 400s.
            ApiTokenError::LimitReached(_) => ApiError::new(
                StatusCode::BAD_REQUEST,
                ErrorCode::InvalidParameter,
                err.to_string(),
            ),
            ApiTokenError::Infra(infra) => infra.into(),
        }
    }
}

impl From<crate::pool::subscribe::SubscribeError> for ApiError {
    fn from(err: crate::pool::subscribe::SubscribeError) -> Self {
        use crate::pool::subscribe::SubscribeError;
        match err {
            // The message names the failure (timeout, unreachable, Mailchimp's status, title and
            // detail) and never holds the API key.
            SubscribeError::Remote(remote) => ApiError::new(
                StatusCode::BAD_GATEWAY,
                ErrorCode::SubscriptionFailed,
                format!(
                    "Your subscription is recorded, but the newsletter service failed: {remote}"
                ),
            ),
            SubscribeError::Infra(infra) => infra.into(),
        }
    }
}

impl From<crate::pool::allowed_hosts::AllowedHostError> for ApiError {
    fn from(err: crate::pool::allowed_hosts::AllowedHostError) -> Self {
        use crate::pool::allowed_hosts::AllowedHostError;
        let detail = err.to_string();
        match err {
            AllowedHostError::NotFound => {
                ApiError::new(StatusCode::NOT_FOUND, ErrorCode::ResourceNotFound, detail)
            }
            AllowedHostError::Duplicate => ApiError::field("host", detail),
            // Not a field's fault: the list is full, whatever the host.
            AllowedHostError::LimitReached(_) => {
                ApiError::new(StatusCode::BAD_REQUEST, ErrorCode::InvalidParameter, detail)
            }
            AllowedHostError::Infra(infra) => infra.into(),
        }
    }
}
