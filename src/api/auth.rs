//! Bearer authentication: the `Authorization` header (with or without `Bearer `) must carry a
//! valid id or access token of a live session of an enabled user. Cookies never authenticate an
//! API call, which also keeps cross-site requests out.

use poem::{Request, RequestBody, http::header};
use poem_openapi::{
    ApiExtractor, ApiExtractorType, ExtractParamOptions,
    registry::{MetaSecurityScheme, Registry},
};

use super::error::{ApiError, ErrorCode};
use crate::{
    pool::session::{self, AuthError, Authenticated},
    state::AppState,
};

const SCHEME: &str = "BearerAuth";

/// The authenticated caller of an operation.
pub struct Caller(pub Authenticated);

/// The credential in the `Authorization` header: `Bearer <value>`, or the bare value (for clients
/// that leave the scheme out). Any other scheme is no credential.
pub fn bearer_value(req: &Request) -> Option<&str> {
    let value = req
        .headers()
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .trim();
    let credential = match value.split_once(' ') {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => rest.trim(),
        Some(_) => return None,
        None => value,
    };
    (!credential.is_empty()).then_some(credential)
}

/// 401 `NotAuthorizedException`, the same for every reason a token is refused.
pub fn not_authorized() -> ApiError {
    ApiError::new(
        poem::http::StatusCode::UNAUTHORIZED,
        ErrorCode::NotAuthorized,
        "Authentication credentials were not provided or are not valid.",
    )
}

impl<'a> ApiExtractor<'a> for Caller {
    const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::SecurityScheme];
    type ParamType = ();
    type ParamRawType = ();

    fn register(registry: &mut Registry) {
        registry.create_security_scheme(
            SCHEME,
            MetaSecurityScheme {
                ty: "http",
                description: Some(
                    "`Authorization: Bearer <id_token or access_token>` from login or refresh \
                     (the `Bearer ` prefix may be left out). Refresh tokens are refused.",
                ),
                name: None,
                key_in: None,
                scheme: Some("bearer"),
                bearer_format: Some("JWT"),
                flows: None,
                openid_connect_url: None,
            },
        );
    }

    fn security_schemes() -> Vec<&'static str> {
        vec![SCHEME]
    }

    async fn from_request(
        req: &'a Request,
        _body: &mut RequestBody,
        _param_opts: ExtractParamOptions<Self::ParamType>,
    ) -> poem::Result<Self> {
        let state = req
            .data::<AppState>()
            .ok_or_else(|| poem::Error::from(ApiError::internal()))?;
        let token = bearer_value(req).ok_or_else(not_authorized)?;
        match session::authenticate(state, token).await {
            Ok(caller) => Ok(Caller(caller)),
            Err(AuthError::NotAuthorized) => Err(not_authorized().into()),
            Err(AuthError::Infra(err)) => Err(ApiError::from(err).into()),
        }
    }
}
