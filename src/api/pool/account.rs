//! The signed-in user's account, and verification of a changed email.

use poem::web::Data;
use poem_openapi::{Object, OpenApi, payload::Json, types::Example};

use super::{Account, Detail};
use crate::{
    api::{Tag, auth::Caller, body::Body, error::ApiError},
    domain::{Code, Email, PersonName},
    errors,
    pool::{
        account::{self, AccountPatch},
        verify,
    },
    state::AppState,
};

/// The longest organisation type, name or country accepted.
const MAX_PROFILE_FIELD: usize = 255;

/// Fields to change; absent fields are left as they are.
#[derive(Object, Debug, Default)]
#[oai(example)]
pub struct AccountUpdate {
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    /// A new email takes effect at once, is marked unverified, and gets a verification code.
    pub email: Option<String>,
    pub organisation_type: Option<String>,
    pub organisation_name: Option<String>,
    pub country: Option<String>,
    /// Replaces the whole object.
    pub additional_fields: Option<std::collections::BTreeMap<String, serde_json::Value>>,
}

impl Example for AccountUpdate {
    fn example() -> Self {
        Self {
            first_name: Some("Ada".into()),
            organisation_name: Some("Analytical Engines Ltd".into()),
            ..Self::default()
        }
    }
}

/// An organisation type, name or country, trimmed: at most 255 characters, no control
/// characters. Errors name `field`, as the request sent it. Shared with the compat sign-up.
pub(crate) fn profile_field(
    field: &'static str,
    value: Option<String>,
) -> Result<Option<String>, ApiError> {
    match value {
        Some(v) if v.chars().count() > MAX_PROFILE_FIELD || v.chars().any(char::is_control) => {
            Err(ApiError::field(
                field,
                format!("At most {MAX_PROFILE_FIELD} characters, without control characters."),
            ))
        }
        other => Ok(other.map(|v| v.trim().to_string())),
    }
}

impl TryFrom<AccountUpdate> for AccountPatch {
    type Error = ApiError;

    fn try_from(body: AccountUpdate) -> Result<Self, ApiError> {
        let name = |value: Option<String>, field| {
            value
                .map(|v| PersonName::parse(&v).map_err(|e| e.for_field(field)))
                .transpose()
        };
        Ok(Self {
            email: body.email.as_deref().map(Email::parse).transpose()?,
            first_name: name(body.first_name, "first_name")?,
            last_name: name(body.last_name, "last_name")?,
            organisation_type: profile_field("organisation_type", body.organisation_type)?,
            organisation_name: profile_field("organisation_name", body.organisation_name)?,
            country: profile_field("country", body.country)?,
            additional_fields: body.additional_fields.map(|f| f.into_iter().collect()),
        })
    }
}

errors!(AccountReadErrors {
    401 => "`NotAuthorizedException`: missing, invalid, expired or revoked token.",
    503 => "`ServiceUnavailableException`.",
});

errors!(AccountUpdateErrors {
    400 => "`InvalidParameterException` (an invalid field) or `UsernameExistsException` (the \
            new email belongs to another account).",
    401 => "`NotAuthorizedException`: missing, invalid, expired or revoked token.",
    413 => "`RequestEntityTooLargeException`.",
    415 => "`UnsupportedMediaTypeException`.",
    503 => "`ServiceUnavailableException`.",
});

/// The code mailed to a new email address.
#[derive(Object, Debug)]
#[oai(example)]
pub struct VerifyEmailRequest {
    pub verification_code: String,
}

impl Example for VerifyEmailRequest {
    fn example() -> Self {
        Self {
            verification_code: "123456".into(),
        }
    }
}

errors!(VerifyEmailErrors {
    400 => "`InvalidParameterException`, `CodeMismatchException`, `ExpiredCodeException` (codes \
            last 24 h) or `TooManyFailedAttemptsException`.",
    401 => "`NotAuthorizedException`: missing, invalid, expired or revoked token.",
    413 => "`RequestEntityTooLargeException`.",
    415 => "`UnsupportedMediaTypeException`.",
    503 => "`ServiceUnavailableException`.",
});

/// Optionally, a corrected email address.
#[derive(Object, Debug, Default)]
#[oai(example)]
pub struct VerifyEmailResendRequest {
    /// Replaces a mistyped new email first (the code then goes to this address).
    pub email: Option<String>,
}

impl Example for VerifyEmailResendRequest {
    fn example() -> Self {
        Self { email: None }
    }
}

errors!(VerifyEmailResendErrors {
    400 => "`InvalidParameterException` (invalid email, or the email is already verified) or \
            `UsernameExistsException` (the corrected email belongs to another account).",
    401 => "`NotAuthorizedException`: missing, invalid, expired or revoked token.",
    413 => "`RequestEntityTooLargeException`.",
    415 => "`UnsupportedMediaTypeException`.",
    429 => "`LimitExceededException`: resent too soon or too often (one per 60 s, 5 per hour \
            after the first); see `Retry-After`.",
    503 => "`ServiceUnavailableException`.",
});

pub struct AccountApi;

#[OpenApi(tag = "Tag::Pool")]
impl AccountApi {
    /// Read the account
    ///
    /// The signed-in user's account.
    #[oai(path = "/api/account", method = "get", operation_id = "account_read")]
    async fn read(&self, caller: Caller) -> Result<Json<Account>, AccountReadErrors> {
        // The newsletter flag was read with the session: one query for the whole request.
        Ok(Json(Account::new(&caller.0.user, caller.0.subscribed)))
    }

    /// Update the account
    ///
    /// Changes only the fields sent. A new email takes effect at once (sign in with it from now
    /// on), is marked unverified, and gets a verification code for `POST /api/verify/email`.
    #[oai(path = "/api/account", method = "put", operation_id = "account_update")]
    async fn update(
        &self,
        state: Data<&AppState>,
        caller: Caller,
        body: Body<AccountUpdate>,
    ) -> Result<Json<Account>, AccountUpdateErrors> {
        let patch = AccountPatch::try_from(body.0)?;
        let user = account::update(&state, &caller.0, patch).await?;
        Ok(Json(Account::load(&state, &user).await?))
    }

    /// Update the account (partial)
    ///
    /// The same as `PUT /api/account`: only the fields sent change.
    #[oai(
        path = "/api/account",
        method = "patch",
        operation_id = "account_patch"
    )]
    async fn patch(
        &self,
        state: Data<&AppState>,
        caller: Caller,
        body: Body<AccountUpdate>,
    ) -> Result<Json<Account>, AccountUpdateErrors> {
        self.update(state, caller, body).await
    }

    /// Verify the email
    ///
    /// Marks the current email verified with the code mailed to it.
    #[oai(
        path = "/api/verify/email",
        method = "post",
        operation_id = "verify_email"
    )]
    async fn verify_email(
        &self,
        state: Data<&AppState>,
        caller: Caller,
        body: Body<VerifyEmailRequest>,
    ) -> Result<Json<Detail>, VerifyEmailErrors> {
        let code =
            Code::parse(&body.verification_code).map_err(|e| e.for_field("verification_code"))?;
        verify::verify_email(&state, &caller.0, &code).await?;
        Ok(Json(Detail::new("Your email address is verified.")))
    }

    /// Resend the email verification code
    ///
    /// Mails a new verification code to the current (unverified) email. With `email`, first
    /// corrects a mistyped new address, which then gets the code.
    #[oai(
        path = "/api/verify/email/resend",
        method = "post",
        operation_id = "verify_email_resend"
    )]
    async fn resend(
        &self,
        state: Data<&AppState>,
        caller: Caller,
        body: Body<VerifyEmailResendRequest>,
    ) -> Result<Json<Detail>, VerifyEmailResendErrors> {
        let email = body.email.as_deref().map(Email::parse).transpose()?;
        verify::resend_verification(&state, &caller.0, email).await?;
        Ok(Json(Detail::new("A verification code has been sent.")))
    }
}
