//! Sign-up with the miniSASS profile, and password reset requests.

use std::{collections::BTreeMap, sync::Arc};

use poem::web::Data;
use poem_openapi::{ApiResponse, Object, OpenApi, payload::Json, types::Example};

use super::metadata::{MetadataErrors, MetadataResponse, OperationIndex};
use crate::{
    api::{
        Tag,
        body::Body,
        error::ApiError,
        pool::{
            Detail,
            account::profile_field,
            password::{ResetErrors, ResetRequest, request_reset},
            signup::SignUpFields,
        },
    },
    errors, pool,
    pool::{display_username, register::Profile},
    state::AppState,
};

const REGISTER_PATH: &str = "/authentication/api/register";

/// A new account with its miniSASS profile. Field names are the miniSASS frontend's.
#[derive(Object, Debug)]
#[oai(rename = "CompatRegisterRequest", example)]
pub struct RegisterRequest {
    /// At most 254 characters; unique, compared case-insensitively.
    pub email: String,
    /// 8-256 characters by default; very common or easily guessed passwords are refused.
    pub password: String,
    /// Optional; unique case-insensitively; may be used instead of the email to sign in.
    #[oai(skip_serializing_if_is_none)]
    pub username: Option<String>,
    /// At most 150 characters. `name` is accepted in its place.
    #[oai(skip_serializing_if_is_none)]
    pub first_name: Option<String>,
    /// Another name for `first_name`. Sending both with different values is refused.
    #[oai(skip_serializing_if_is_none)]
    pub name: Option<String>,
    /// At most 150 characters. `surname` is accepted in its place.
    #[oai(skip_serializing_if_is_none)]
    pub last_name: Option<String>,
    /// Another name for `last_name`. Sending both with different values is refused.
    #[oai(skip_serializing_if_is_none)]
    pub surname: Option<String>,
    /// Required, not blank; at most 255 characters. Stored as `organisation_type`.
    #[oai(rename = "organizationType")]
    pub organization_type: String,
    /// Required, not blank; at most 255 characters. Stored as `organisation_name`.
    #[oai(rename = "organizationName")]
    pub organization_name: String,
    /// Required, not blank; at most 255 characters.
    pub country: String,
    /// Free-form profile data: a JSON object (in form and multipart bodies, a JSON string
    /// holding an object).
    pub additional_fields: Option<BTreeMap<String, serde_json::Value>>,
}

impl Example for RegisterRequest {
    fn example() -> Self {
        Self {
            email: "ada@example.org".into(),
            password: "correct horse battery staple".into(),
            username: Some("ada".into()),
            first_name: None,
            name: Some("Ada".into()),
            last_name: None,
            surname: Some("Lovelace".into()),
            organization_type: "research".into(),
            organization_name: "Analytical Engines Ltd".into(),
            country: "GB".into(),
            additional_fields: Some(BTreeMap::from([(
                "newsletter".to_string(),
                serde_json::json!(false),
            )])),
        }
    }
}

impl RegisterRequest {
    /// Validates every field (the profile first, then what `/api/register` checks), so that an
    /// invalid request creates nothing. Errors name the fields as the request sent them.
    fn into_new_user(self, state: &AppState) -> Result<pool::register::NewUser, ApiError> {
        let profile = Profile {
            organisation_type: Some(required("organizationType", self.organization_type)?),
            organisation_name: Some(required("organizationName", self.organization_name)?),
            country: Some(required("country", self.country)?),
            additional_fields: self.additional_fields.map(|f| f.into_iter().collect()),
        };
        SignUpFields {
            email: &self.email,
            password: &self.password,
            username: self.username.as_deref(),
            first_name: either(
                ("first_name", self.first_name.as_deref()),
                ("name", self.name.as_deref()),
            )?,
            last_name: either(
                ("last_name", self.last_name.as_deref()),
                ("surname", self.surname.as_deref()),
            )?,
        }
        .parse(state, profile)
    }
}

/// A required profile field: not blank, and valid as on `/api/account`.
fn required(field: &'static str, value: String) -> Result<String, ApiError> {
    if value.trim().is_empty() {
        return Err(ApiError::field(field, "This field may not be blank."));
    }
    Ok(profile_field(field, Some(value))?.unwrap_or_default())
}

/// A field and its alias: whichever was sent, with the name it was sent as. Both may be sent
/// only with the same value.
fn either<'a>(
    field: (&'static str, Option<&'a str>),
    alias: (&'static str, Option<&'a str>),
) -> Result<(&'static str, Option<&'a str>), ApiError> {
    match (field.1, alias.1) {
        (Some(a), Some(b)) if a.trim() != b.trim() => Err(ApiError::field(
            alias.0,
            format!("Send either {} or {}, not both.", field.0, alias.0),
        )),
        (None, Some(_)) => Ok(alias),
        _ => Ok(field),
    }
}

/// The account just created, waiting for confirmation.
#[derive(Object, Debug)]
#[oai(rename = "CompatRegistered", example)]
pub struct Registered {
    /// The user's permanent id (the tokens' `sub`).
    pub id: String,
    /// The username, or the email when there is none.
    pub username: String,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
}

impl Example for Registered {
    fn example() -> Self {
        Self {
            id: "6f1c2d3e-4b5a-4c6d-8e7f-9a0b1c2d3e4f".into(),
            username: "ada".into(),
            email: "ada@example.org".into(),
            first_name: "Ada".into(),
            last_name: "Lovelace".into(),
        }
    }
}

#[derive(ApiResponse)]
pub enum RegisterResponse {
    /// The account exists and is `UNCONFIRMED`; a confirmation code and link were emailed
    /// (confirm with `POST /api/validate` or the link, then sign in).
    #[oai(status = 201)]
    Created(Json<Registered>),
}

errors!(RegisterErrors {
    400 => "`InvalidParameterException` (a field is missing, blank or invalid; `errors` names \
            it as sent, e.g. `organizationType` or `name`), `InvalidPasswordException` (the \
            password fails the policy), or `UsernameExistsException` (the email or username is \
            taken).",
    413 => "`RequestEntityTooLargeException`: the body is over the limit.",
    415 => "`UnsupportedMediaTypeException`: the body is not JSON, a form or multipart.",
    429 => "`TooManyRequestsException`: too many requests from this address.",
    503 => "`ServiceUnavailableException`: the server is saturated or the database is down.",
});

pub struct CompatSignUpApi;

#[OpenApi(tag = "Tag::Compat")]
impl CompatSignUpApi {
    /// Register (compat)
    ///
    /// Creates an `UNCONFIRMED` account with its profile (`organizationType`,
    /// `organizationName` and `country` are required) and emails a six-digit confirmation code
    /// (valid 24 h) with a link that confirms in one click, exactly as `POST /api/register`.
    /// The account can sign in on either surface once confirmed. An invalid request creates
    /// nothing and sends nothing.
    #[oai(
        path = "/authentication/api/register",
        method = "post",
        operation_id = "compat_register"
    )]
    async fn register(
        &self,
        state: Data<&AppState>,
        body: Body<RegisterRequest>,
    ) -> Result<RegisterResponse, RegisterErrors> {
        let new_user = body.0.into_new_user(&state)?;
        let user = pool::register::register(&state, new_user).await?;
        Ok(RegisterResponse::Created(Json(Registered {
            id: user.uid.to_string(),
            username: display_username(&user),
            email: user.email,
            first_name: user.first_name,
            last_name: user.last_name,
        })))
    }

    /// Describe registration (compat)
    ///
    /// Django REST framework's metadata for `POST register/`: its summary as `name`, its
    /// description, the content types it answers with (`renders`) and accepts (`parses`), and
    /// the methods served at the path. Taken from this OpenAPI document.
    #[oai(
        path = "/authentication/api/register",
        method = "options",
        operation_id = "compat_register_options"
    )]
    async fn register_options(
        &self,
        index: Data<&Arc<OperationIndex>>,
    ) -> Result<MetadataResponse, MetadataErrors> {
        index.respond(REGISTER_PATH, "post")
    }

    /// Request a password reset (compat)
    ///
    /// The same as `POST /api/password/reset`: emails a six-digit reset code (valid 1 h) if an
    /// enabled account uses this email, and always answers the same sentence. Confirm with
    /// `POST /api/password/reset/confirm`.
    #[oai(
        path = "/authentication/api/request-reset",
        method = "post",
        operation_id = "compat_request_reset"
    )]
    async fn request_reset(
        &self,
        state: Data<&AppState>,
        body: Body<ResetRequest>,
    ) -> Result<Json<Detail>, ResetErrors> {
        request_reset(&state, &body).await
    }
}

#[cfg(test)]
mod tests {
    use poem::http::StatusCode;

    use super::*;
    use crate::api::error::ErrorCode;

    #[test]
    fn an_alias_is_used_only_when_the_field_is_absent() {
        let field = ("first_name", Some("Ada"));
        let alias = ("name", Some("Ada "));
        assert_eq!(either(field, alias).unwrap(), ("first_name", Some("Ada")));
        assert_eq!(
            either(("first_name", None), alias).unwrap(),
            ("name", Some("Ada "))
        );
        let err = either(field, ("name", Some("Grace"))).unwrap_err();
        assert!(err.errors.unwrap().contains_key("name"));
    }

    #[test]
    fn required_profile_fields_are_trimmed_and_never_blank() {
        assert_eq!(required("country", " GB ".into()).unwrap(), "GB");
        let err = required("organizationType", " \t".into()).unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidParameter);
        assert_eq!(err.status, StatusCode::BAD_REQUEST);
        assert_eq!(
            err.errors.unwrap()["organizationType"],
            ["This field may not be blank."]
        );
        let err = required("country", "G\nB".into()).unwrap_err();
        assert!(err.errors.unwrap().contains_key("country"));
    }
}
