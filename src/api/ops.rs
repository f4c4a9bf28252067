//! Health checks and metrics.

use poem::web::Data;
use poem_openapi::{
    ApiResponse, Object, OpenApi,
    payload::{Json, PlainText},
};

use super::{Tag, error::ErrorBody};
use crate::{api::error::ApiError, state::AppState};

/// How long a client should wait before asking again when the database is down.
const READY_RETRY_AFTER_SECS: u64 = 5;

/// The process or its dependencies are fine.
#[derive(Object, Debug)]
pub struct Health {
    /// `ok`.
    pub status: String,
}

#[derive(ApiResponse)]
enum ReadyResponse {
    /// The server can serve requests: the database answers.
    #[oai(status = 200)]
    Ready(Json<Health>),
    /// `ServiceUnavailableException`: the database cannot be reached.
    #[oai(status = 503)]
    Unavailable(Json<ErrorBody>, #[oai(header = "Retry-After")] u64),
}

#[derive(ApiResponse)]
enum MetricsResponse {
    /// Prometheus text exposition format, version 0.0.4.
    #[oai(
        status = 200,
        content_type = "text/plain; version=0.0.4; charset=utf-8"
    )]
    Metrics(PlainText<String>),
}

pub struct OpsApi;

#[OpenApi(tag = "Tag::Operations")]
impl OpsApi {
    /// Liveness
    ///
    /// 200 while the process runs, whatever the state of the database.
    #[oai(path = "/health/live", method = "get", operation_id = "health_live")]
    async fn live(&self) -> Json<Health> {
        Json(Health {
            status: "ok".into(),
        })
    }

    /// Readiness
    ///
    /// 200 when the database answers; 503 `ServiceUnavailableException` with `Retry-After`
    /// when it does not, so a load balancer can take this replica out of rotation.
    #[oai(path = "/health/ready", method = "get", operation_id = "health_ready")]
    async fn ready(&self, state: Data<&AppState>) -> ReadyResponse {
        match state.db.ping().await {
            Ok(()) => ReadyResponse::Ready(Json(Health {
                status: "ok".into(),
            })),
            Err(err) => {
                tracing::warn!(error = %err, "readiness check: database unreachable");
                let error =
                    ApiError::unavailable("The database is unreachable.", READY_RETRY_AFTER_SECS);
                ReadyResponse::Unavailable(Json(error.body()), READY_RETRY_AFTER_SECS)
            }
        }
    }

    /// Prometheus metrics
    ///
    /// This process's counters and gauges in the Prometheus text format (0.0.4), every series
    /// prefixed `authpool_` and described by its `# HELP` line: HTTP requests and their
    /// durations by method, route template and status; sign-ins by result; codes emailed by
    /// purpose; mail delivery attempts; the password-hashing pool (running, queued, refused);
    /// the mail outbox (pending, failed, oldest pending age: read from the database, so the same
    /// on every replica); and the database connection pool.
    ///
    /// **Unauthenticated**, like the health checks: it tells nothing about users, tokens or
    /// paths beyond route templates, but expose it only to the monitoring network (bind
    /// authpool to an internal address, or have the reverse proxy refuse `/metrics` from
    /// outside).
    #[oai(path = "/metrics", method = "get", operation_id = "metrics")]
    async fn metrics(&self, state: Data<&AppState>) -> MetricsResponse {
        MetricsResponse::Metrics(PlainText(crate::metrics::scrape(&state).await))
    }
}
