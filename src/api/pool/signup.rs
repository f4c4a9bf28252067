//! Sign-up and its confirmation.

use poem::web::Data;

use poem_openapi::{
    ApiResponse, Object, OpenApi,
    param::Query,
    payload::{Html, Json},
    types::Example,
};

use super::Detail;
use crate::{
    api::{Tag, body::Body, error::ApiError},
    domain::{Code, Email, Password, PersonName, Username},
    errors,
    pool::{
        UserStatus, display_username,
        register::{self, NewUser, Profile},
        verify,
    },
    state::AppState,
};

/// The answer to every resend request, whether or not the email exists or anything was sent.
pub const RESEND_DETAIL: &str =
    "If an unconfirmed account uses this email, a new confirmation code has been sent.";

/// A new account.
#[derive(Object, Debug)]
#[oai(example)]
pub struct RegisterRequest {
    /// At most 254 characters; unique, compared case-insensitively.
    pub email: String,
    /// 8-256 characters by default; very common or easily guessed passwords are refused.
    pub password: String,
    /// Optional; unique case-insensitively; may be used instead of the email to sign in.
    pub username: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    /// Also subscribe the email to the newsletter (default false). A failure of the newsletter
    /// service does not stop the registration: it is reported in `subscription_error`.
    pub subscribe: Option<bool>,
}

impl Example for RegisterRequest {
    fn example() -> Self {
        Self {
            email: "ada@example.org".into(),
            password: "correct horse battery staple".into(),
            username: Some("ada".into()),
            first_name: Some("Ada".into()),
            last_name: Some("Lovelace".into()),
            subscribe: Some(true),
        }
    }
}

impl RegisterRequest {
    fn into_new_user(self, state: &AppState) -> Result<NewUser, ApiError> {
        SignUpFields {
            email: &self.email,
            password: &self.password,
            username: self.username.as_deref(),
            first_name: ("first_name", self.first_name.as_deref()),
            last_name: ("last_name", self.last_name.as_deref()),
        }
        .parse(state, Profile::default())
    }
}

/// The fields every sign-up has, as the request sent them; shared by `/api/register` and the
/// compat surface's `register/`.
pub(crate) struct SignUpFields<'a> {
    pub email: &'a str,
    pub password: &'a str,
    pub username: Option<&'a str>,
    /// The first name, with the name of the field that carried it (errors name it as sent).
    pub first_name: (&'static str, Option<&'a str>),
    /// The last name, with the name of the field that carried it.
    pub last_name: (&'static str, Option<&'a str>),
}

impl SignUpFields<'_> {
    /// Parses every field into its domain type; the password is checked against the others.
    pub(crate) fn parse(self, state: &AppState, profile: Profile) -> Result<NewUser, ApiError> {
        let email = Email::parse(self.email)?;
        let username = self.username.map(Username::parse).transpose()?;
        let name = |(field, value): (&'static str, Option<&str>)| {
            PersonName::parse(value.unwrap_or_default()).map_err(|e| e.for_field(field))
        };
        let first_name = name(self.first_name)?;
        let last_name = name(self.last_name)?;
        let context: Vec<&str> = [email.as_str(), first_name.as_str(), last_name.as_str()]
            .into_iter()
            .chain(username.as_ref().map(Username::as_str))
            .collect();
        let password = Password::parse(self.password, &state.settings.password, &context)?;
        Ok(NewUser {
            email,
            password,
            username,
            first_name,
            last_name,
            profile,
        })
    }
}

/// The account just created, waiting for confirmation.
#[derive(Object, Debug)]
#[oai(example)]
pub struct Registered {
    pub uid: String,
    pub email: String,
    /// The username, or the email when there is none.
    pub username: String,
    /// `UNCONFIRMED`.
    pub status: String,
    pub detail: String,
    /// Present only when `subscribe` was asked for and the newsletter service failed: why, as a
    /// sentence. The account is created all the same, and the subscription is recorded locally.
    #[oai(skip_serializing_if_is_none)]
    pub subscription_error: Option<String>,
}

impl Example for Registered {
    fn example() -> Self {
        Self {
            uid: "6f1c2d3e-4b5a-4c6d-8e7f-9a0b1c2d3e4f".into(),
            email: "ada@example.org".into(),
            username: "ada".into(),
            status: "UNCONFIRMED".into(),
            detail: "A confirmation code has been sent to ada@example.org.".into(),
            subscription_error: None,
        }
    }
}

#[derive(ApiResponse)]
enum RegisterResponse {
    /// The account exists and is `UNCONFIRMED`; a confirmation code and link were emailed.
    /// With `subscribe`, the email is on the newsletter list, or `subscription_error` says why
    /// the newsletter service failed.
    #[oai(status = 201)]
    Created(Json<Registered>),
}

errors!(RegisterErrors {
    400 => "`InvalidParameterException` (a field is missing or invalid; see `errors`), \
            `InvalidPasswordException` (the password fails the policy), or \
            `UsernameExistsException` (the email or username is taken).",
    413 => "`RequestEntityTooLargeException`: the body is over the limit.",
    415 => "`UnsupportedMediaTypeException`: the body is not JSON, a form or multipart.",
    429 => "`TooManyRequestsException`: too many requests from this address.",
    503 => "`ServiceUnavailableException`: the server is saturated or the database is down.",
});

/// A confirmation code.
#[derive(Object, Debug)]
#[oai(example)]
pub struct ValidateRequest {
    /// The email, the username or the uid of the account.
    pub user_name: String,
    /// The six-digit code from the email.
    pub confirmation_code: String,
    /// The app client id (optional; accepted for Cognito compatibility).
    pub client_id: Option<String>,
}

impl Example for ValidateRequest {
    fn example() -> Self {
        Self {
            user_name: "ada@example.org".into(),
            confirmation_code: "123456".into(),
            client_id: None,
        }
    }
}

errors!(ValidateErrors {
    400 => "`InvalidParameterException` (a field is missing or invalid), \
            `CodeMismatchException` (wrong, replaced or used code, or no such user), \
            `ExpiredCodeException`, `TooManyFailedAttemptsException` (5 wrong tries: request \
            a new code), or `NotAuthorizedException` (the account is already confirmed).",
    413 => "`RequestEntityTooLargeException`.",
    415 => "`UnsupportedMediaTypeException`.",
    429 => "`TooManyRequestsException`: too many requests from this address.",
    503 => "`ServiceUnavailableException`.",
});

errors!(ValidateLinkErrors {
    400 => "`InvalidParameterException`, `CodeMismatchException`, `ExpiredCodeException`, \
            `TooManyFailedAttemptsException` or `NotAuthorizedException` (already confirmed). \
            As JSON, or as an HTML page with this status when the request accepts `text/html`.",
    503 => "`ServiceUnavailableException`.",
});

/// The answer to a click on the emailed link: JSON, or a small page for browsers.
pub enum ValidatePage {
    Json(Json<Detail>),
    /// For browsers: the page, with the status of the outcome.
    Html(poem::http::StatusCode, Html<String>),
}

impl poem::IntoResponse for ValidatePage {
    fn into_response(self) -> poem::Response {
        match self {
            Self::Json(json) => json.into_response(),
            Self::Html(status, html) => html.with_status(status).into_response(),
        }
    }
}

impl ApiResponse for ValidatePage {
    fn meta() -> poem_openapi::registry::MetaResponses {
        use poem_openapi::{payload::Payload, registry::*};
        MetaResponses {
            responses: vec![MetaResponse {
                description: "The account is confirmed: JSON `{detail}`, or an HTML page when the \
                              request accepts `text/html` (a click on the emailed link).",
                status: Some(200),
                status_range: None,
                content: vec![
                    MetaMediaType {
                        content_type: Json::<Detail>::CONTENT_TYPE,
                        schema: Json::<Detail>::schema_ref(),
                    },
                    MetaMediaType {
                        content_type: Html::<String>::CONTENT_TYPE,
                        schema: Html::<String>::schema_ref(),
                    },
                ],
                headers: vec![],
            }],
        }
    }

    fn register(registry: &mut poem_openapi::registry::Registry) {
        <Detail as poem_openapi::types::Type>::register(registry);
    }
}

/// The email whose confirmation code should be sent again.
#[derive(Object, Debug)]
#[oai(example)]
pub struct ResendRequest {
    pub email: String,
}

impl Example for ResendRequest {
    fn example() -> Self {
        Self {
            email: "ada@example.org".into(),
        }
    }
}

errors!(ResendErrors {
    400 => "`InvalidParameterException`: the email is missing or invalid.",
    413 => "`RequestEntityTooLargeException`.",
    415 => "`UnsupportedMediaTypeException`.",
    429 => "`TooManyRequestsException`: too many requests from this address.",
    503 => "`ServiceUnavailableException`.",
});

pub struct SignUpApi;

#[OpenApi(tag = "Tag::Pool")]
impl SignUpApi {
    /// Register
    ///
    /// Creates an `UNCONFIRMED` account and emails a six-digit confirmation code (valid 24 h)
    /// with a link that confirms in one click. The account can sign in once confirmed. Only this
    /// operation reveals that an email is taken. With `subscribe: true` the email is also
    /// subscribed to the newsletter once the account exists; if the newsletter service fails,
    /// the account is still created and `subscription_error` says why.
    #[oai(path = "/api/register", method = "post", operation_id = "register")]
    async fn register(
        &self,
        state: Data<&AppState>,
        body: Body<RegisterRequest>,
    ) -> Result<RegisterResponse, RegisterErrors> {
        let subscribe = body.subscribe.unwrap_or(false);
        let new_user = body.0.into_new_user(&state)?;
        let registration = register::register_and_subscribe(&state, new_user, subscribe).await?;
        let user = registration.user;
        // The same sentence `POST /api/subscribe` would answer with (the conversion logs
        // database failures; the newsletter client logged its own).
        let subscription_error = registration
            .subscription_error
            .map(|err| ApiError::from(err).detail);
        Ok(RegisterResponse::Created(Json(Registered {
            uid: user.uid.to_string(),
            detail: format!("A confirmation code has been sent to {}.", user.email),
            username: display_username(&user),
            email: user.email,
            status: UserStatus::Unconfirmed.as_str().into(),
            subscription_error,
        })))
    }

    /// Confirm a sign-up
    ///
    /// Confirms the account with the emailed code: it becomes `CONFIRMED` and its email
    /// verified. A wrong code counts an attempt; after 5 the code is dead.
    #[oai(path = "/api/validate", method = "post", operation_id = "validate")]
    async fn validate(
        &self,
        state: Data<&AppState>,
        body: Body<ValidateRequest>,
    ) -> Result<Json<Detail>, ValidateErrors> {
        confirm(&state, &body.user_name, &body.confirmation_code).await?;
        Ok(Json(Detail::new(CONFIRMED)))
    }

    /// Confirm a sign-up from the emailed link
    ///
    /// The same as `POST /api/validate` with query parameters. A browser (`Accept: text/html`)
    /// gets a small HTML page instead of JSON, for success and failure alike (a failure page
    /// carries the error's status).
    #[oai(path = "/api/validate", method = "get", operation_id = "validate_link")]
    async fn validate_link(
        &self,
        state: Data<&AppState>,
        req: &poem::Request,
        /// The email, the username or the uid of the account.
        user_name: Query<String>,
        /// The six-digit code from the email.
        confirmation_code: Query<String>,
        /// The app client id (optional).
        #[oai(name = "client_id")]
        _client_id: Query<Option<String>>,
    ) -> Result<ValidatePage, ValidateLinkErrors> {
        let wants_html = req
            .header(poem::http::header::ACCEPT)
            .is_some_and(|accept| accept.contains("text/html"));
        match confirm(&state, &user_name, &confirmation_code).await {
            Ok(()) if wants_html => Ok(ValidatePage::Html(
                poem::http::StatusCode::OK,
                Html(page("Account confirmed", CONFIRMED)),
            )),
            Ok(()) => Ok(ValidatePage::Json(Json(Detail::new(CONFIRMED)))),
            // A person clicked the link: tell them in a page, with the error's status.
            Err(err) if wants_html => Ok(ValidatePage::Html(
                err.status,
                Html(page("Confirmation failed", &err.detail)),
            )),
            Err(err) => Err(err.into()),
        }
    }

    /// Resend the confirmation code
    ///
    /// Emails a new code (replacing the previous one) to an unconfirmed account. Always answers
    /// the same, whether or not the email exists: the first resend is always sent, then at most
    /// one per 60 s and 5 per hour, silently.
    #[oai(
        path = "/api/validate/resend",
        method = "post",
        operation_id = "validate_resend"
    )]
    async fn resend(
        &self,
        state: Data<&AppState>,
        body: Body<ResendRequest>,
    ) -> Result<Json<Detail>, ResendErrors> {
        let email = Email::parse(&body.email)?;
        verify::resend_confirmation(&state, &email).await?;
        Ok(Json(Detail::new(RESEND_DETAIL)))
    }
}

const CONFIRMED: &str = "Your account is confirmed. You can now sign in.";

async fn confirm(state: &AppState, user_name: &str, code: &str) -> Result<(), ApiError> {
    let code = Code::parse(code).map_err(|e| e.for_field("confirmation_code"))?;
    verify::confirm_sign_up(state, user_name, &code).await?;
    Ok(())
}

/// A minimal self-contained page (no scripts, no outside resources).
fn page(title: &str, message: &str) -> String {
    let escape = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
    };
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title>\
         </head><body><h1>{title}</h1><p>{message}</p></body></html>",
        title = escape(title),
        message = escape(message),
    )
}
