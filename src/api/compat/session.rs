//! Sign-in, SimpleJWT token pairs, refresh, sign-out and the auth status, on the same sessions
//! as `/api`: every token either surface issues works on both.
//!
//! Sign-in and refresh carry the tokens in the body only (as SimpleJWT does): no cookies and no
//! `Authorization` response header, which a frontend of the compat surface never reads. Sign-out
//! still clears the `/api` cookies, as `/api/logout` does, since it ends the session they hold.

use std::sync::Arc;

use poem::web::Data;
use poem_openapi::{
    ApiResponse, Object, OpenApi,
    payload::{Json, Response},
    types::Example,
};

use super::metadata::{MetadataErrors, MetadataResponse, OperationIndex};
use crate::{
    api::{
        Tag,
        auth::{Caller, not_authorized},
        body::Body,
        cookies,
        error::ApiError,
        pool::{
            Detail,
            account::AccountReadErrors,
            session::{LoginErrors, LoginRequest, LogoutErrors, LogoutResponse},
        },
    },
    errors,
    pool::{
        display_username, login,
        session::{self, AuthError, Authenticated},
        tokens::SignedIn,
    },
    state::AppState,
};

const LOGIN_PATH: &str = "/authentication/api/login";

/// `no-store`: tokens must not be cached.
const NO_STORE: &str = "no-store";

const EXAMPLE_UID: &str = "6f1c2d3e-4b5a-4c6d-8e7f-9a0b1c2d3e4f";
const EXAMPLE_ACCESS: &str =
    "eyJhbGciOiJSUzI1NiIsImtpZCI6Ii4uLiJ9.eyJ0b2tlbl91c2UiOiJhY2Nlc3MifQ.c2ln";
const EXAMPLE_REFRESH: &str =
    "eyJhbGciOiJSUzI1NiIsImtpZCI6Ii4uLiJ9.eyJ0b2tlbl91c2UiOiJyZWZyZXNoIn0.c2ln";

/// A sign-in: who it is, and the tokens.
#[derive(Object, Debug)]
#[oai(rename = "CompatLogin", example)]
pub struct Login {
    /// The user's permanent id (the tokens' `sub`).
    pub user_id: String,
    /// The username, or the email when there is none.
    pub username: String,
    pub email: String,
    /// Always `true`.
    pub is_authenticated: bool,
    /// Always `false`: authpool's user pool has no administrator role (administration is done
    /// with the `authpool` command line, not by pool users).
    pub is_admin: bool,
    /// RS256 JWT for calling APIs (`token_use: access`), accepted as a bearer token by both
    /// surfaces.
    pub access_token: String,
    /// RS256 JWT for `token/refresh/`, `refresh/` or `/api/refresh`; single use (rotated).
    pub refresh_token: String,
}

impl Example for Login {
    fn example() -> Self {
        Self {
            user_id: EXAMPLE_UID.into(),
            username: "ada".into(),
            email: "ada@example.org".into(),
            is_authenticated: true,
            is_admin: false,
            access_token: EXAMPLE_ACCESS.into(),
            refresh_token: EXAMPLE_REFRESH.into(),
        }
    }
}

#[derive(ApiResponse)]
pub enum LoginResponse {
    /// Signed in: a new session, its access and refresh tokens in the body.
    #[oai(status = 200)]
    Ok(
        Json<Login>,
        /// `no-store`: tokens must not be cached.
        #[oai(header = "Cache-Control")]
        String,
    ),
}

/// Credentials for `token/`, as SimpleJWT names them.
#[derive(Object, Debug)]
#[oai(rename = "CompatTokenRequest", example)]
pub struct TokenRequest {
    /// The username or the email.
    pub username: String,
    pub password: String,
}

impl Example for TokenRequest {
    fn example() -> Self {
        Self {
            username: "ada".into(),
            password: "correct horse battery staple".into(),
        }
    }
}

/// A SimpleJWT token pair.
#[derive(Object, Debug)]
#[oai(rename = "CompatTokenPair", example)]
pub struct TokenPair {
    /// RS256 JWT for calling APIs (`token_use: access`), accepted as a bearer token by both
    /// surfaces.
    pub access: String,
    /// RS256 JWT to get a new pair; single use (rotated).
    pub refresh: String,
}

impl Example for TokenPair {
    fn example() -> Self {
        Self {
            access: EXAMPLE_ACCESS.into(),
            refresh: EXAMPLE_REFRESH.into(),
        }
    }
}

impl From<SignedIn> for TokenPair {
    fn from(signed_in: SignedIn) -> Self {
        Self {
            access: signed_in.access_token,
            refresh: signed_in.refresh_token,
        }
    }
}

#[derive(ApiResponse)]
pub enum TokenPairResponse {
    /// The access token and a new refresh token.
    #[oai(status = 200)]
    Ok(
        Json<TokenPair>,
        /// `no-store`: tokens must not be cached.
        #[oai(header = "Cache-Control")]
        String,
    ),
}

impl TokenPairResponse {
    fn new(signed_in: SignedIn) -> Self {
        Self::Ok(Json(signed_in.into()), NO_STORE.into())
    }
}

/// A refresh token.
#[derive(Object, Debug)]
#[oai(rename = "CompatRefreshRequest", example)]
pub struct RefreshRequest {
    /// A refresh token from `login/`, `token/`, a previous refresh, or `/api`.
    pub refresh: String,
}

impl Example for RefreshRequest {
    fn example() -> Self {
        Self {
            refresh: EXAMPLE_REFRESH.into(),
        }
    }
}

errors!(RefreshErrors {
    400 => "`InvalidParameterException`: `refresh` is missing or the body is malformed.",
    401 => "`NotAuthorizedException`: not a refresh token of this pool (an access or id token \
            is refused), or an expired, revoked or reused one (reuse revokes the whole session).",
    413 => "`RequestEntityTooLargeException`.",
    415 => "`UnsupportedMediaTypeException`.",
    429 => "`TooManyRequestsException`: too many requests from this address.",
    503 => "`ServiceUnavailableException`.",
});

/// Who is signed in.
#[derive(Object, Debug)]
#[oai(rename = "CompatAuthStatus", example)]
pub struct AuthStatus {
    /// Always `true` (without valid credentials the answer is 401).
    pub is_authenticated: bool,
    /// The user's permanent id (the tokens' `sub`).
    pub user_id: String,
    /// The username, or the email when there is none.
    pub username: String,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    /// Null until set (accounts made on `/api` without it).
    #[oai(nullable)]
    pub organisation_type: Option<String>,
    #[oai(nullable)]
    pub organisation_name: Option<String>,
    #[oai(nullable)]
    pub country: Option<String>,
}

impl From<&entity::user::Model> for AuthStatus {
    fn from(user: &entity::user::Model) -> Self {
        Self {
            is_authenticated: true,
            user_id: user.uid.to_string(),
            username: display_username(user),
            email: user.email.clone(),
            first_name: user.first_name.clone(),
            last_name: user.last_name.clone(),
            organisation_type: user.organisation_type.clone(),
            organisation_name: user.organisation_name.clone(),
            country: user.country.clone(),
        }
    }
}

impl Example for AuthStatus {
    fn example() -> Self {
        Self {
            is_authenticated: true,
            user_id: EXAMPLE_UID.into(),
            username: "ada".into(),
            email: "ada@example.org".into(),
            first_name: "Ada".into(),
            last_name: "Lovelace".into(),
            organisation_type: Some("research".into()),
            organisation_name: Some("Analytical Engines Ltd".into()),
            country: Some("GB".into()),
        }
    }
}

/// Optionally, the refresh token of another session to end as well.
#[derive(Object, Debug, Default)]
#[oai(rename = "CompatLogoutRequest", example)]
pub struct LogoutRequest {
    /// A refresh token of another of the caller's sessions (e.g. another device) to end too.
    /// A token that is invalid, expired, or of another user is ignored: the answer is the same,
    /// so it tells nothing about the token.
    pub refresh: Option<String>,
}

impl Example for LogoutRequest {
    fn example() -> Self {
        Self {
            refresh: Some(EXAMPLE_REFRESH.into()),
        }
    }
}

pub struct CompatSessionApi;

#[OpenApi(tag = "Tag::Compat")]
impl CompatSessionApi {
    /// Sign in (compat)
    ///
    /// Checks the password of a `CONFIRMED` account (by email or username) and starts a session,
    /// exactly as `POST /api/login`: an unknown user and a wrong password get the same answer,
    /// five consecutive failures lock sign-in for that account, and an unconfirmed account is
    /// told so only after the right password. Answers who signed in with the access and refresh
    /// tokens.
    #[oai(
        path = "/authentication/api/login",
        method = "post",
        operation_id = "compat_login"
    )]
    async fn login(
        &self,
        state: Data<&AppState>,
        body: Body<LoginRequest>,
    ) -> Result<LoginResponse, LoginErrors> {
        let signed_in = login::login(&state, &body.email, &body.password).await?;
        // The session just started names its user; reading it through the token keeps this
        // layer off the store.
        let user = authenticated(&state, &signed_in.access_token).await?.user;
        let body = Login {
            user_id: user.uid.to_string(),
            username: display_username(&user),
            email: user.email,
            is_authenticated: true,
            is_admin: false,
            access_token: signed_in.access_token,
            refresh_token: signed_in.refresh_token,
        };
        Ok(LoginResponse::Ok(Json(body), NO_STORE.into()))
    }

    /// Describe sign-in (compat)
    ///
    /// Django REST framework's metadata for `POST login/`: its summary as `name`, its
    /// description, the content types it answers with (`renders`) and accepts (`parses`), and
    /// the methods served at the path. Taken from this OpenAPI document.
    #[oai(
        path = "/authentication/api/login",
        method = "options",
        operation_id = "compat_login_options"
    )]
    async fn login_options(
        &self,
        index: Data<&Arc<OperationIndex>>,
    ) -> Result<MetadataResponse, MetadataErrors> {
        index.respond(LOGIN_PATH, "post")
    }

    /// Obtain a token pair (compat)
    ///
    /// SimpleJWT's `TokenObtainPairView`: the same sign-in as `login/` (a `CONFIRMED` account,
    /// by username or email; the same lockout and answers), returning only `{access, refresh}`.
    #[oai(
        path = "/authentication/api/token",
        method = "post",
        operation_id = "compat_token"
    )]
    async fn token(
        &self,
        state: Data<&AppState>,
        body: Body<TokenRequest>,
    ) -> Result<TokenPairResponse, LoginErrors> {
        let signed_in = login::login(&state, &body.username, &body.password).await?;
        Ok(TokenPairResponse::new(signed_in))
    }

    /// Refresh a token pair (compat)
    ///
    /// SimpleJWT's `TokenRefreshView`, with rotation: exchanges a refresh token for a new access
    /// token and a new refresh token, exactly as `POST /api/refresh`. The old refresh token is
    /// retired: presenting it again revokes the whole session.
    #[oai(
        path = "/authentication/api/token/refresh",
        method = "post",
        operation_id = "compat_token_refresh"
    )]
    async fn token_refresh(
        &self,
        state: Data<&AppState>,
        body: Body<RefreshRequest>,
    ) -> Result<TokenPairResponse, RefreshErrors> {
        refresh(&state, &body.refresh).await
    }

    /// Refresh a token pair (compat alias)
    ///
    /// The same as `POST token/refresh/`: a new access token and a new refresh token (rotated;
    /// reusing a retired refresh token revokes the whole session).
    #[oai(
        path = "/authentication/api/refresh",
        method = "post",
        operation_id = "compat_refresh"
    )]
    async fn refresh(
        &self,
        state: Data<&AppState>,
        body: Body<RefreshRequest>,
    ) -> Result<TokenPairResponse, RefreshErrors> {
        refresh(&state, &body.refresh).await
    }

    /// Check the auth status (compat)
    ///
    /// Who the bearer token belongs to, with the profile. Without a valid id or access token of
    /// a live session the answer is 401.
    #[oai(
        path = "/authentication/api/check-auth-status",
        method = "get",
        operation_id = "compat_check_auth_status"
    )]
    async fn check_auth_status(
        &self,
        caller: Caller,
    ) -> Result<Json<AuthStatus>, AccountReadErrors> {
        Ok(Json(AuthStatus::from(&caller.0.user)))
    }

    /// Sign out (compat)
    ///
    /// Revokes the caller's session at once: its tokens are refused from then on, on both
    /// surfaces. With `refresh`, the session of that refresh token is revoked too when it is
    /// another session of the same user; any other token (invalid, expired, another user's) is
    /// ignored and the answer is the same. To end every session, use `POST /api/logout` with
    /// `everywhere`.
    #[oai(
        path = "/authentication/api/logout",
        method = "post",
        operation_id = "compat_logout"
    )]
    async fn logout(
        &self,
        state: Data<&AppState>,
        caller: Caller,
        body: Body<LogoutRequest>,
    ) -> Result<Response<LogoutResponse>, LogoutErrors> {
        if let Some(token) = body.refresh.as_deref().filter(|t| !t.is_empty()) {
            session::revoke_own_session_of(&state, &caller.0, token).await?;
        }
        session::logout(&state, &caller.0, false).await?;
        let [access, refresh] = cookies::cleared(&state.settings.cookies);
        Ok(
            Response::new(LogoutResponse::Ok(Json(Detail::new("Signed out."))))
                .header("Set-Cookie", access)
                .header("Set-Cookie", refresh),
        )
    }
}

/// The one refresh of both refresh paths: the `/api/refresh` use case, rotation and reuse
/// detection included.
async fn refresh(state: &AppState, token: &str) -> Result<TokenPairResponse, RefreshErrors> {
    let signed_in = session::refresh(state, token).await?;
    Ok(TokenPairResponse::new(signed_in))
}

/// The caller behind a token just issued.
async fn authenticated(state: &AppState, token: &str) -> Result<Authenticated, ApiError> {
    match session::authenticate(state, token).await {
        Ok(caller) => Ok(caller),
        Err(AuthError::NotAuthorized) => Err(not_authorized()),
        Err(AuthError::Infra(err)) => Err(err.into()),
    }
}
