//! Hosts a user's API tokens may be used from.

use poem::web::Data;
use poem_openapi::{ApiResponse, Object, OpenApi, param::Path, payload::Json, types::Example};

use super::Detail;
use crate::{
    api::{Tag, auth::Caller, body::Body, error::ApiError},
    domain::Host,
    errors,
    pool::allowed_hosts::{self, AllowedHostError},
    state::AppState,
};

/// A host the signed-in user's API tokens may be used from.
#[derive(Object, Debug, Clone)]
#[oai(example)]
pub struct AllowedHost {
    /// The host in canonical form: lower-case ASCII (international names in punycode), no
    /// scheme, no default port; e.g. `example.org`, `example.org:8443`, `*.example.org`,
    /// `192.0.2.1`, `[2001:db8::1]:8443`.
    pub host: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

impl From<entity::allowed_host::Model> for AllowedHost {
    fn from(row: entity::allowed_host::Model) -> Self {
        Self {
            host: row.host,
            created_at: row.created_at,
        }
    }
}

impl Example for AllowedHost {
    fn example() -> Self {
        Self {
            host: "example.org:8443".into(),
            created_at: chrono::DateTime::parse_from_rfc3339("2026-11-22T10:00:00Z")
                .expect("valid example time")
                .to_utc(),
        }
    }
}

/// A host to allow, or the new value of one.
#[derive(Object, Debug)]
#[oai(example)]
pub struct AllowedHostRequest {
    /// A DNS name (international names are converted to punycode; letters, digits and
    /// hyphens, no underscores), an IPv4 address, a bracketed IPv6 address, or a wildcard
    /// `*.example.org` (a leading `*.` over a domain of at least two labels; it covers every
    /// name below that domain, not the domain itself) — optionally with `:port` (1–65535).
    /// An `http://` or `https://` origin, with at most a trailing `/`, is reduced to its host
    /// and port and the scheme's default port is dropped: `https://example.org:443` →
    /// `example.org`; without a scheme a port is kept (`example.org:443`). Case does not
    /// matter. Paths, queries, fragments, user information and other schemes are refused.
    pub host: String,
}

impl Example for AllowedHostRequest {
    fn example() -> Self {
        Self {
            host: "https://example.org:8443".into(),
        }
    }
}

impl AllowedHostRequest {
    fn host(&self) -> Result<Host, ApiError> {
        Ok(Host::parse(&self.host)?)
    }
}

/// The host named in a path. It is URL-decoded and normalised like a body's `host`, so
/// `https%3A%2F%2FExample.org` names `example.org`. One that does not parse cannot be any of
/// the caller's hosts, so it answers 404 like an unknown one.
fn path_host(host: &str) -> Result<Host, ApiError> {
    Host::parse(host).map_err(|_| AllowedHostError::NotFound.into())
}

#[derive(ApiResponse)]
enum CreateResponse {
    /// All of your allowed hosts, oldest first, the new one included.
    #[oai(status = 201)]
    Created(Json<Vec<AllowedHost>>),
}

errors!(ListErrors {
    401 => "`NotAuthorizedException`: missing, invalid, expired or revoked token.",
    503 => "`ServiceUnavailableException`.",
});

errors!(CreateErrors {
    400 => "`InvalidParameterException`: `host` missing or invalid, already in your list \
            (after normalisation; with `errors.host`), or the per-user limit of allowed hosts \
            reached (`AUTHPOOL_MAX_ALLOWED_HOSTS`, default 100).",
    401 => "`NotAuthorizedException`: missing, invalid, expired or revoked token.",
    413 => "`RequestEntityTooLargeException`.",
    415 => "`UnsupportedMediaTypeException`.",
    503 => "`ServiceUnavailableException`.",
});

errors!(ReadErrors {
    401 => "`NotAuthorizedException`: missing, invalid, expired or revoked token.",
    404 => "`ResourceNotFoundException`: no allowed host of yours is this host.",
    503 => "`ServiceUnavailableException`.",
});

errors!(UpdateErrors {
    400 => "`InvalidParameterException`: `host` missing or invalid, or another of your \
            allowed hosts already (after normalisation; with `errors.host`).",
    401 => "`NotAuthorizedException`: missing, invalid, expired or revoked token.",
    404 => "`ResourceNotFoundException`: no allowed host of yours is the host in the path.",
    413 => "`RequestEntityTooLargeException`.",
    415 => "`UnsupportedMediaTypeException`.",
    503 => "`ServiceUnavailableException`.",
});

pub struct AllowedHostsApi;

#[OpenApi(tag = "Tag::Tokens")]
impl AllowedHostsApi {
    /// List your allowed hosts
    ///
    /// The hosts the signed-in user's API tokens may be used from, oldest first. Introspection
    /// of one of the user's tokens with a `host` answers `host_allowed: true` only when one of
    /// these matches it: `*.example.org` matches every name below `example.org` at any depth,
    /// but not `example.org` itself; a host without a port matches that host on any port, one
    /// with a port only that port; IP addresses match exactly.
    #[oai(
        path = "/api/allowed-hosts",
        method = "get",
        operation_id = "allowed_hosts_list"
    )]
    async fn list(
        &self,
        state: Data<&AppState>,
        caller: Caller,
    ) -> Result<Json<Vec<AllowedHost>>, ListErrors> {
        let rows = allowed_hosts::list(&state, &caller.0).await?;
        Ok(Json(rows.into_iter().map(AllowedHost::from).collect()))
    }

    /// Allow a host
    ///
    /// Adds a host (or an origin, reduced to its host and port) to your list and answers the
    /// whole list, oldest first. Each host may appear once, compared after normalisation
    /// (`https://Example.org` and `example.org` are the same host). Each user may hold up to
    /// `AUTHPOOL_MAX_ALLOWED_HOSTS` (default 100).
    #[oai(
        path = "/api/allowed-hosts",
        method = "post",
        operation_id = "allowed_hosts_create"
    )]
    async fn create(
        &self,
        state: Data<&AppState>,
        caller: Caller,
        body: Body<AllowedHostRequest>,
    ) -> Result<CreateResponse, CreateErrors> {
        let host = body.host()?;
        let rows = allowed_hosts::create(&state, &caller.0, &host).await?;
        Ok(CreateResponse::Created(Json(
            rows.into_iter().map(AllowedHost::from).collect(),
        )))
    }

    /// Read an allowed host
    ///
    /// One of your allowed hosts. The path's host is URL-decoded and normalised like a body's
    /// `host` (`/api/allowed-hosts/https%3A%2F%2Fexample.org` names `example.org`). Another
    /// user's host, an unknown one and one that does not parse all answer 404.
    #[oai(
        path = "/api/allowed-hosts/:host",
        method = "get",
        operation_id = "allowed_host_read"
    )]
    async fn read(
        &self,
        state: Data<&AppState>,
        caller: Caller,
        /// The host, URL-encoded; normalised like a body's `host`.
        #[oai(validator(min_length = 1))]
        host: Path<String>,
    ) -> Result<Json<AllowedHost>, ReadErrors> {
        let host = path_host(&host)?;
        let row = allowed_hosts::read(&state, &caller.0, &host).await?;
        Ok(Json(row.into()))
    }

    /// Change an allowed host
    ///
    /// Replaces one of your allowed hosts (named in the path as for reading) by the body's
    /// `host`, keeping its place in the list. Replacing a host by itself changes nothing.
    #[oai(
        path = "/api/allowed-hosts/:host",
        method = "put",
        operation_id = "allowed_host_update"
    )]
    async fn update(
        &self,
        state: Data<&AppState>,
        caller: Caller,
        /// The host, URL-encoded; normalised like a body's `host`.
        #[oai(validator(min_length = 1))]
        host: Path<String>,
        body: Body<AllowedHostRequest>,
    ) -> Result<Json<AllowedHost>, UpdateErrors> {
        // The body is checked first: a bad request is a bad request whatever the path names.
        let to = body.host()?;
        let from = path_host(&host)?;
        let row = allowed_hosts::rename(&state, &caller.0, &from, &to).await?;
        Ok(Json(row.into()))
    }

    /// Change an allowed host (partial)
    ///
    /// The same as `PUT /api/allowed-hosts/{host}`: an allowed host has only one field to
    /// change.
    #[oai(
        path = "/api/allowed-hosts/:host",
        method = "patch",
        operation_id = "allowed_host_patch"
    )]
    async fn patch(
        &self,
        state: Data<&AppState>,
        caller: Caller,
        /// The host, URL-encoded; normalised like a body's `host`.
        #[oai(validator(min_length = 1))]
        host: Path<String>,
        body: Body<AllowedHostRequest>,
    ) -> Result<Json<AllowedHost>, UpdateErrors> {
        self.update(state, caller, host, body).await
    }

    /// Remove an allowed host
    ///
    /// Removes one of your allowed hosts (named in the path as for reading); introspection no
    /// longer matches it.
    #[oai(
        path = "/api/allowed-hosts/:host",
        method = "delete",
        operation_id = "allowed_host_delete"
    )]
    async fn delete(
        &self,
        state: Data<&AppState>,
        caller: Caller,
        /// The host, URL-encoded; normalised like a body's `host`.
        #[oai(validator(min_length = 1))]
        host: Path<String>,
    ) -> Result<Json<Detail>, ReadErrors> {
        let host = path_host(&host)?;
        allowed_hosts::delete(&state, &caller.0, &host).await?;
        Ok(Json(Detail::new("The allowed host was removed.")))
    }
}
