//! Logging: `tracing` to standard error, as text or JSON lines (`AUTHPOOL_LOG_FORMAT`).
//!
//! Every request runs inside a `request` span carrying its `request_id` (the `X-Request-Id` it
//! is answered with, see `api::observe`), so every line logged while serving it, a 500's cause
//! included, names the request. Each request ends with one access line at `info`, target
//! `authpool::access`: method, route template, status, `latency_ms` — never the raw path, query
//! string, headers or body, which can hold codes and tokens. `authpool::access=off` in
//! `AUTHPOOL_LOG_LEVEL` turns access lines off.
//!
//! No per-crate filter is needed to keep secrets out, at any level up to `trace`
//! (`tests/api/log_secrets.rs` runs every flow at `trace` and searches the output): sqlx's
//! statement logging is off (`store::database::connect`; it would log SQL text with
//! placeholders, not bound values); sea-orm's `debug-print` feature, which logs statements with
//! their values inlined, is not enabled and must stay so; lettre is built without its `tracing`
//! feature, which would log the SMTP dialogue, `AUTH` included.

use tracing_subscriber::{EnvFilter, fmt};

use crate::config::{LogFormat, Settings};

/// Installs the global subscriber once; later calls (tests) are ignored.
pub fn init(settings: &Settings) {
    let filter = EnvFilter::try_new(&settings.log_level).unwrap_or_else(|_| EnvFilter::new("info"));
    // Colours only for a person at a terminal, never into files or log collectors.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    let _ = match settings.log_format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}
