//! Changing a password, and resetting a forgotten one by emailed code.

use poem::web::Data;
use poem_openapi::{Object, OpenApi, payload::Json, types::Example};

use super::Detail;
use crate::{
    api::{Tag, auth::Caller, body::Body, error::ApiError},
    domain::{Code, Email, Password},
    errors, pool,
    state::AppState,
};

/// The answer to every reset request, whether or not the email exists.
pub const RESET_DETAIL: &str =
    "If an account uses this email, a password reset code has been sent to it.";

/// Checks that both new passwords agree, then the policy (with the user's own data as context).
fn new_password(
    state: &AppState,
    new_password1: &str,
    new_password2: &str,
    context: &[&str],
) -> Result<Password, ApiError> {
    if new_password1 != new_password2 {
        return Err(ApiError::field(
            "new_password2",
            "The two password fields didn't match.",
        ));
    }
    Ok(
        Password::parse(new_password1, &state.settings.password, context)
            .map_err(|e| e.for_field("new_password1"))?,
    )
}

/// A password change.
#[derive(Object, Debug)]
#[oai(example)]
pub struct ChangePasswordRequest {
    pub old_password: String,
    pub new_password1: String,
    /// Must equal `new_password1`.
    pub new_password2: String,
}

impl Example for ChangePasswordRequest {
    fn example() -> Self {
        Self {
            old_password: "correct horse battery staple".into(),
            new_password1: "purple monkey dishwasher lamp".into(),
            new_password2: "purple monkey dishwasher lamp".into(),
        }
    }
}

errors!(ChangePasswordErrors {
    400 => "`InvalidParameterException` (missing field, or the new passwords differ), \
            `InvalidPasswordException` (the new password fails the policy), or \
            `NotAuthorizedException` (wrong old password).",
    401 => "`NotAuthorizedException`: missing, invalid, expired or revoked token.",
    413 => "`RequestEntityTooLargeException`.",
    415 => "`UnsupportedMediaTypeException`.",
    429 => "`PasswordAttemptsExceededException`: wrong old passwords count towards the \
            account's sign-in lockout.",
    503 => "`ServiceUnavailableException`.",
});

/// The email of the account to reset.
#[derive(Object, Debug)]
#[oai(example)]
pub struct ResetRequest {
    pub email: String,
}

impl Example for ResetRequest {
    fn example() -> Self {
        Self {
            email: "ada@example.org".into(),
        }
    }
}

errors!(ResetErrors {
    400 => "`InvalidParameterException`: the email is missing or invalid.",
    413 => "`RequestEntityTooLargeException`.",
    415 => "`UnsupportedMediaTypeException`.",
    429 => "`TooManyRequestsException`: too many requests from this address.",
    503 => "`ServiceUnavailableException`.",
});

/// A new password with the emailed reset code.
#[derive(Object, Debug)]
#[oai(example)]
pub struct ResetConfirmRequest {
    pub email: String,
    /// The six-digit code from the email.
    pub code: String,
    pub new_password1: String,
    /// Must equal `new_password1`.
    pub new_password2: String,
}

impl Example for ResetConfirmRequest {
    fn example() -> Self {
        Self {
            email: "ada@example.org".into(),
            code: "123456".into(),
            new_password1: "purple monkey dishwasher lamp".into(),
            new_password2: "purple monkey dishwasher lamp".into(),
        }
    }
}

errors!(ResetConfirmErrors {
    400 => "`InvalidParameterException` (missing field, or the passwords differ), \
            `InvalidPasswordException`, `CodeMismatchException` (wrong, replaced or used code, \
            or unknown email), `ExpiredCodeException` (codes last 1 h) or \
            `TooManyFailedAttemptsException` (5 wrong tries: request a new code).",
    413 => "`RequestEntityTooLargeException`.",
    415 => "`UnsupportedMediaTypeException`.",
    429 => "`TooManyRequestsException`: too many requests from this address.",
    503 => "`ServiceUnavailableException`.",
});

pub struct PasswordApi;

#[OpenApi(tag = "Tag::Pool")]
impl PasswordApi {
    /// Change the password
    ///
    /// Sets a new password after checking the old one. The user's other sessions are revoked;
    /// this one stays signed in.
    #[oai(
        path = "/api/password/change",
        method = "post",
        operation_id = "password_change"
    )]
    async fn change(
        &self,
        state: Data<&AppState>,
        caller: Caller,
        body: Body<ChangePasswordRequest>,
    ) -> Result<Json<Detail>, ChangePasswordErrors> {
        let context = pool::password_context(&caller.0.user);
        let context: Vec<&str> = context.iter().map(String::as_str).collect();
        let new = new_password(&state, &body.new_password1, &body.new_password2, &context)?;
        pool::password::change(&state, &caller.0, &body.old_password, &new).await?;
        Ok(Json(Detail::new("Your password has been changed.")))
    }

    /// Request a password reset
    ///
    /// Emails a six-digit reset code (valid 1 h) if an enabled account uses this email. Always
    /// answers the same. Repeated requests are resends: the first is always sent, then at most
    /// one per 60 s and 5 per hour, silently.
    #[oai(
        path = "/api/password/reset",
        method = "post",
        operation_id = "password_reset"
    )]
    async fn reset(
        &self,
        state: Data<&AppState>,
        body: Body<ResetRequest>,
    ) -> Result<Json<Detail>, ResetErrors> {
        request_reset(&state, &body).await
    }

    /// Reset the password with the emailed code
    ///
    /// Sets the new password and revokes every session of the account. The code also proves
    /// the mailbox, so an unconfirmed account becomes confirmed, and sign-in lockout is lifted.
    #[oai(
        path = "/api/password/reset/confirm",
        method = "post",
        operation_id = "password_reset_confirm"
    )]
    async fn reset_confirm(
        &self,
        state: Data<&AppState>,
        body: Body<ResetConfirmRequest>,
    ) -> Result<Json<Detail>, ResetConfirmErrors> {
        let email = Email::parse(&body.email)?;
        let code = Code::parse(&body.code)?;
        let new = new_password(
            &state,
            &body.new_password1,
            &body.new_password2,
            &[email.as_str()],
        )?;
        pool::password::confirm_reset(&state, &email, &code, &new).await?;
        Ok(Json(Detail::new(
            "Your password has been reset. Sign in with the new password.",
        )))
    }
}

/// A reset request, answered alike whether or not the email has an account; shared by
/// `/api/password/reset` and the compat `request-reset/`.
pub async fn request_reset(
    state: &AppState,
    body: &ResetRequest,
) -> Result<Json<Detail>, ResetErrors> {
    let email = Email::parse(&body.email)?;
    pool::password::request_reset(state, &email).await?;
    Ok(Json(Detail::new(RESET_DETAIL)))
}
