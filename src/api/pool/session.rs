//! Sign-in, refresh and sign-out.

use poem::{Request, web::Data};
use poem_openapi::{
    ApiResponse, Object, OpenApi,
    payload::{Json, Response},
    types::Example,
};

use super::Detail;
use crate::{
    api::{Tag, auth::Caller, body::Body, cookies},
    errors,
    pool::{login, session, tokens::SignedIn},
    state::AppState,
};

/// Credentials.
#[derive(Object, Debug)]
#[oai(example)]
pub struct LoginRequest {
    /// The email or the username.
    pub email: String,
    pub password: String,
}

impl Example for LoginRequest {
    fn example() -> Self {
        Self {
            email: "ada@example.org".into(),
            password: "correct horse battery staple".into(),
        }
    }
}

/// The tokens of a sign-in or refresh.
#[derive(Object, Debug)]
#[oai(example)]
pub struct Tokens {
    pub uid: String,
    /// RS256 JWT about the user (`token_use: id`), verifiable with the JWKS.
    pub id_token: String,
    /// RS256 JWT for calling APIs (`token_use: access`).
    pub access_token: String,
    /// RS256 JWT to get new tokens from `/api/refresh`; single use (rotated).
    pub refresh_token: String,
    /// `Bearer`.
    pub token_type: String,
    /// Lifetime of the access token, in seconds.
    pub expires_in: u64,
}

impl Example for Tokens {
    fn example() -> Self {
        Self {
            uid: "6f1c2d3e-4b5a-4c6d-8e7f-9a0b1c2d3e4f".into(),
            id_token: "eyJhbGciOiJSUzI1NiIsImtpZCI6Ii4uLiJ9.eyJ0b2tlbl91c2UiOiJpZCJ9.c2ln".into(),
            access_token:
                "eyJhbGciOiJSUzI1NiIsImtpZCI6Ii4uLiJ9.eyJ0b2tlbl91c2UiOiJhY2Nlc3MifQ.c2ln".into(),
            refresh_token:
                "eyJhbGciOiJSUzI1NiIsImtpZCI6Ii4uLiJ9.eyJ0b2tlbl91c2UiOiJyZWZyZXNoIn0.c2ln".into(),
            token_type: "Bearer".into(),
            expires_in: 3600,
        }
    }
}

#[derive(ApiResponse)]
pub enum TokensResponse {
    /// Signed in. The body has the tokens; the `access_token` and `refresh_token` cookies are
    /// set (`HttpOnly; SameSite=Lax; Path=/`, `Max-Age` = their lifetime, `Secure` on https),
    /// and the id token is in the `Authorization` header.
    #[oai(status = 200)]
    Ok(
        Json<Tokens>,
        /// `Bearer <id_token>`.
        #[oai(header = "Authorization")]
        String,
        /// `no-store`: tokens must not be cached.
        #[oai(header = "Cache-Control")]
        String,
    ),
}

/// The tokens as a response: body, header and cookies.
fn tokens_response(state: &AppState, signed_in: SignedIn) -> Response<TokensResponse> {
    let [access_cookie, refresh_cookie] = cookies::for_tokens(&state.settings.cookies, &signed_in);
    let authorization = format!("Bearer {}", signed_in.id_token);
    let body = Tokens {
        uid: signed_in.uid.to_string(),
        id_token: signed_in.id_token,
        access_token: signed_in.access_token,
        refresh_token: signed_in.refresh_token,
        token_type: "Bearer".into(),
        expires_in: signed_in.expires_in,
    };
    Response::new(TokensResponse::Ok(
        Json(body),
        authorization,
        "no-store".into(),
    ))
    .header("Set-Cookie", access_cookie)
    .header("Set-Cookie", refresh_cookie)
}

errors!(LoginErrors {
    400 => "`InvalidParameterException`: a field is missing.",
    401 => "`NotAuthorizedException`: wrong email, username or password (the same answer for \
            an unknown user).",
    403 => "`UserNotConfirmedException` or `UserDisabledException`, only after the right \
            password.",
    413 => "`RequestEntityTooLargeException`.",
    415 => "`UnsupportedMediaTypeException`.",
    429 => "`PasswordAttemptsExceededException` (locked after 5 consecutive failures, for \
            2^(n-5) s up to 15 min) or `TooManyRequestsException` (too many requests from this \
            address).",
    503 => "`ServiceUnavailableException`: the hashing queue is full or the database is down.",
});

/// A refresh token, when not sent as the `refresh_token` cookie.
#[derive(Object, Debug, Default)]
#[oai(example)]
pub struct RefreshRequest {
    pub refresh_token: Option<String>,
}

impl Example for RefreshRequest {
    fn example() -> Self {
        Self {
            refresh_token: Some(Tokens::example().refresh_token),
        }
    }
}

errors!(RefreshErrors {
    400 => "`InvalidParameterException`: the body is malformed.",
    401 => "`NotAuthorizedException`: no refresh token, or an invalid, expired, revoked or \
            reused one (reuse revokes the whole session).",
    413 => "`RequestEntityTooLargeException`.",
    415 => "`UnsupportedMediaTypeException`.",
    429 => "`TooManyRequestsException`: too many requests from this address.",
    503 => "`ServiceUnavailableException`.",
});

/// Which sessions to end.
#[derive(Object, Debug, Default)]
#[oai(example)]
pub struct LogoutRequest {
    /// End every session of the user, not only this one.
    #[oai(default)]
    pub everywhere: bool,
}

impl Example for LogoutRequest {
    fn example() -> Self {
        Self { everywhere: false }
    }
}

#[derive(ApiResponse)]
pub enum LogoutResponse {
    /// Signed out: the session is revoked (its tokens are refused from now on) and both cookies
    /// are cleared.
    #[oai(status = 200)]
    Ok(Json<Detail>),
}

errors!(LogoutErrors {
    400 => "`InvalidParameterException`: the body is malformed.",
    401 => "`NotAuthorizedException`: missing, invalid, expired or revoked token.",
    413 => "`RequestEntityTooLargeException`.",
    415 => "`UnsupportedMediaTypeException`.",
    503 => "`ServiceUnavailableException`.",
});

pub struct SessionApi;

#[OpenApi(tag = "Tag::Pool")]
impl SessionApi {
    /// Sign in
    ///
    /// Checks the password of a `CONFIRMED` account (by email or username) and starts a session.
    /// An unknown user and a wrong password get the same answer; five consecutive failures lock
    /// sign-in for that account.
    #[oai(path = "/api/login", method = "post", operation_id = "login")]
    async fn login(
        &self,
        state: Data<&AppState>,
        body: Body<LoginRequest>,
    ) -> Result<Response<TokensResponse>, LoginErrors> {
        let signed_in = login::login(&state, &body.email, &body.password).await?;
        Ok(tokens_response(&state, signed_in))
    }

    /// Refresh the tokens
    ///
    /// Exchanges a refresh token (from the `refresh_token` cookie, or the body) for new id and
    /// access tokens and a new refresh token. The old refresh token is retired: presenting it
    /// again revokes the session. `auth_time` and `origin_jti` stay those of the sign-in.
    #[oai(path = "/api/refresh", method = "post", operation_id = "refresh")]
    async fn refresh(
        &self,
        state: Data<&AppState>,
        req: &Request,
        body: Body<RefreshRequest>,
    ) -> Result<Response<TokensResponse>, RefreshErrors> {
        let token = body
            .0
            .refresh_token
            .filter(|t| !t.is_empty())
            .or_else(|| cookies::refresh_token(req))
            .ok_or_else(crate::api::auth::not_authorized)?;
        let signed_in = session::refresh(&state, &token).await?;
        Ok(tokens_response(&state, signed_in))
    }

    /// Sign out
    ///
    /// Revokes this session (or, with `everywhere`, all of the user's sessions) at once: its id
    /// and access tokens are refused from then on, and its refresh token too. Clears the cookies.
    #[oai(path = "/api/logout", method = "post", operation_id = "logout")]
    async fn logout(
        &self,
        state: Data<&AppState>,
        caller: Caller,
        body: Body<LogoutRequest>,
    ) -> Result<Response<LogoutResponse>, LogoutErrors> {
        let everywhere = body.everywhere;
        session::logout(&state, &caller.0, everywhere).await?;
        let [access, refresh] = cookies::cleared(&state.settings.cookies);
        Ok(Response::new(LogoutResponse::Ok(Json(Detail::new(
            "Signed out.",
        )))))
        .map(|r| r.header("Set-Cookie", access).header("Set-Cookie", refresh))
    }
}
