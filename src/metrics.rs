//! Prometheus metrics: a small registry of atomics, rendered at `GET /metrics` in the text
//! exposition format 0.0.4.
//!
//! Recording is lock-free on the hot path: counters and histogram buckets are atomics. The HTTP
//! table is laid out once at start-up, one slot per (route template, method); the only lock is
//! a per-slot `RwLock` around its short list of status codes, written once per new status.
//!
//! Each component counts its own events ([`Metrics`] for requests and sign-ins, the mailer's
//! [`MailCounters`], the hasher's permits); [`scrape`] reads them all, plus the outbox and the
//! database pool, when Prometheus asks. Counters are per process: sum them over replicas. The
//! outbox gauges come from the database and are the same on every replica.

use std::{
    fmt::{Display, Write as _},
    sync::{
        OnceLock, RwLock,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use poem::http::Method;
use sea_orm::{DatabaseBackend, DatabaseConnection};

use crate::{state::AppState, store};

/// The content type of the exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The `route` label of a path that matches no route (never the raw path: unbounded, and it may
/// hold secrets).
pub const UNMATCHED: &str = "unmatched";

/// Upper bounds of the request duration buckets, in seconds (Prometheus' defaults: a sign-in
/// spends tens of milliseconds in argon2, a 503 a few microseconds).
pub const DURATION_BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The `method` labels; anything else is `other`, so a client cannot invent label values.
const METHODS: [&str; 8] = [
    "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "other",
];

/// A monotonically increasing count.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Durations in fixed buckets. Each observation increments one bucket; the cumulative counts,
/// `_count` and `_sum` are computed when rendered, so `_count` always equals the `+Inf` bucket.
#[derive(Debug)]
pub struct Histogram {
    /// One per bound in [`DURATION_BUCKETS`], then one for larger values.
    buckets: [AtomicU64; DURATION_BUCKETS.len() + 1],
    sum_nanos: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            sum_nanos: AtomicU64::new(0),
        }
    }
}

impl Histogram {
    pub fn observe(&self, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        let slot = DURATION_BUCKETS
            .iter()
            .position(|bound| seconds <= *bound)
            .unwrap_or(DURATION_BUCKETS.len());
        self.buckets[slot].fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    /// The per-bucket counts (not cumulative), the last one for values above every bound.
    fn counts(&self) -> [u64; DURATION_BUCKETS.len() + 1] {
        std::array::from_fn(|i| self.buckets[i].load(Ordering::Relaxed))
    }
}

/// How a sign-in attempt ended, as the `result` label of `authpool_sign_ins_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignIn {
    /// Tokens issued.
    Succeeded,
    /// Unknown user or wrong password.
    Failed,
    /// Refused by the lockout, before any password check.
    Locked,
    /// Right password, account not confirmed yet.
    Unconfirmed,
    /// Right password, account disabled.
    Disabled,
    /// No answer: hashing queue full or database error (503/500).
    Error,
}

impl SignIn {
    const ALL: [SignIn; 6] = [
        SignIn::Succeeded,
        SignIn::Failed,
        SignIn::Locked,
        SignIn::Unconfirmed,
        SignIn::Disabled,
        SignIn::Error,
    ];

    fn label(self) -> &'static str {
        match self {
            SignIn::Succeeded => "succeeded",
            SignIn::Failed => "failed",
            SignIn::Locked => "locked",
            SignIn::Unconfirmed => "unconfirmed",
            SignIn::Disabled => "disabled",
            SignIn::Error => "error",
        }
    }
}

/// The purposes of emailed codes: the email templates' names.
const CODE_PURPOSES: [&str; 3] = ["confirm_sign_up", "verify_email", "reset_password"];

/// What the mailer counts: codes queued by purpose and the worker's delivery attempts.
#[derive(Debug, Default)]
pub struct MailCounters {
    /// Messages handed over to the transport.
    pub sent: Counter,
    /// Delivery attempts that failed (retried later, or given up).
    pub failed: Counter,
    /// Messages abandoned for good.
    pub given_up: Counter,
    codes: [Counter; CODE_PURPOSES.len()],
}

impl MailCounters {
    /// Counts an email queued; `purpose` is the email's template name.
    pub fn queued(&self, purpose: &str) {
        if let Some(i) = CODE_PURPOSES.iter().position(|p| *p == purpose) {
            self.codes[i].inc();
        }
    }
}

/// The counters of one process, shared by the app state.
#[derive(Debug, Default)]
pub struct Metrics {
    http: OnceLock<HttpTable>,
    sign_ins: [Counter; SignIn::ALL.len()],
}

impl Metrics {
    pub fn new() -> Self {
        Self::default()
    }

    /// Lays out the HTTP table for these route templates (their positions are the route ids
    /// passed to [`Metrics::record_request`]). Later calls keep the first layout.
    pub fn init_routes(&self, templates: Vec<String>) {
        let _ = self.http.set(HttpTable::new(templates));
    }

    /// Counts one answered request. `route` is the position of its template, `None` when the
    /// path matched no route.
    pub fn record_request(
        &self,
        method: &Method,
        route: Option<usize>,
        status: u16,
        elapsed: Duration,
    ) {
        if let Some(table) = self.http.get() {
            table.record(method, route, status, elapsed);
        }
    }

    pub fn sign_in(&self, result: SignIn) {
        let i = SignIn::ALL.iter().position(|r| *r == result).unwrap_or(0);
        self.sign_ins[i].inc();
    }
}

/// The `method` label of a request method.
pub fn method_label(method: &Method) -> &'static str {
    METHODS[method_index(method)]
}

fn method_index(method: &Method) -> usize {
    METHODS
        .iter()
        .position(|m| *m == method.as_str())
        .unwrap_or(METHODS.len() - 1)
}

/// Request counts and durations per (route, method), statuses within.
#[derive(Debug)]
struct HttpTable {
    /// Route templates by id; `UNMATCHED` last.
    routes: Vec<String>,
    /// `routes.len() * METHODS.len()` slots, route-major.
    slots: Vec<HttpSlot>,
}

#[derive(Debug, Default)]
struct HttpSlot {
    duration: Histogram,
    /// Few entries (the statuses this route has answered); written once per new status.
    statuses: RwLock<Vec<(u16, Counter)>>,
}

impl HttpTable {
    fn new(mut routes: Vec<String>) -> Self {
        routes.push(UNMATCHED.to_string());
        let slots = (0..routes.len() * METHODS.len())
            .map(|_| HttpSlot::default())
            .collect();
        Self { routes, slots }
    }

    fn record(&self, method: &Method, route: Option<usize>, status: u16, elapsed: Duration) {
        let unmatched = self.routes.len() - 1;
        let route = route.filter(|r| *r < unmatched).unwrap_or(unmatched);
        let slot = &self.slots[route * METHODS.len() + method_index(method)];
        slot.duration.observe(elapsed);
        {
            let statuses = slot.statuses.read().unwrap_or_else(|e| e.into_inner());
            if let Some((_, counter)) = statuses.iter().find(|(s, _)| *s == status) {
                counter.inc();
                return;
            }
        }
        let mut statuses = slot.statuses.write().unwrap_or_else(|e| e.into_inner());
        match statuses.iter().find(|(s, _)| *s == status) {
            Some((_, counter)) => counter.inc(),
            None => {
                let counter = Counter::default();
                counter.inc();
                statuses.push((status, counter));
                statuses.sort_by_key(|(s, _)| *s);
            }
        }
    }

    /// Every (route, method, slot) that has seen a request.
    fn used(&self) -> impl Iterator<Item = (&str, &'static str, &HttpSlot)> {
        self.slots.iter().enumerate().filter_map(|(i, slot)| {
            let count: u64 = slot.duration.counts().iter().sum();
            (count > 0).then(|| {
                let route = self.routes[i / METHODS.len()].as_str();
                (route, METHODS[i % METHODS.len()], slot)
            })
        })
    }
}

/// The whole exposition: this process's counters, the hasher, the mailer, the outbox (one
/// indexed query) and the database pool.
pub async fn scrape(state: &AppState) -> String {
    let outbox = match store::outbox::stats(&state.db).await {
        Ok(stats) => Some(stats),
        Err(err) => {
            tracing::warn!(error = %err, "metrics: cannot read the mail outbox");
            None
        }
    };
    let mut out = Exposition::default();
    out.family(
        "authpool_build_info",
        "gauge",
        "Always 1; the version label is the running authpool version.",
    );
    out.sample(
        "authpool_build_info",
        &[("version", env!("CARGO_PKG_VERSION"))],
        1,
    );
    render_http(&mut out, state.metrics.http.get());
    render_sign_ins(&mut out, &state.metrics);
    render_mail(&mut out, state.mail.counters());
    render_hasher(&mut out, state);
    render_outbox(&mut out, outbox);
    render_pool(&mut out, &state.db);
    out.text
}

fn render_http(out: &mut Exposition, table: Option<&HttpTable>) {
    out.family(
        "authpool_http_requests_total",
        "counter",
        "HTTP requests answered, by method, route (the OpenAPI path template, `unmatched` for \
         unknown paths) and status, errors and rate-limited requests included.",
    );
    for (route, method, slot) in table.into_iter().flat_map(HttpTable::used) {
        let statuses = slot.statuses.read().unwrap_or_else(|e| e.into_inner());
        for (status, counter) in statuses.iter() {
            let status = status.to_string();
            out.sample(
                "authpool_http_requests_total",
                &[("method", method), ("route", route), ("status", &status)],
                counter.get(),
            );
        }
    }
    out.family(
        "authpool_http_request_duration_seconds",
        "histogram",
        "Time from receiving a request to its response head, by method and route.",
    );
    for (route, method, slot) in table.into_iter().flat_map(HttpTable::used) {
        let counts = slot.duration.counts();
        let mut cumulative = 0;
        for (bound, count) in DURATION_BUCKETS.iter().zip(counts) {
            cumulative += count;
            let le = bound.to_string();
            out.sample(
                "authpool_http_request_duration_seconds_bucket",
                &[("method", method), ("route", route), ("le", &le)],
                cumulative,
            );
        }
        cumulative += counts[DURATION_BUCKETS.len()];
        let labels = [("method", method), ("route", route)];
        out.sample(
            "authpool_http_request_duration_seconds_bucket",
            &[labels[0], labels[1], ("le", "+Inf")],
            cumulative,
        );
        let sum = slot.duration.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        out.sample("authpool_http_request_duration_seconds_sum", &labels, sum);
        out.sample(
            "authpool_http_request_duration_seconds_count",
            &labels,
            cumulative,
        );
    }
}

fn render_sign_ins(out: &mut Exposition, metrics: &Metrics) {
    out.family(
        "authpool_sign_ins_total",
        "counter",
        "Sign-in attempts with a password, on both surfaces, by result: succeeded; failed \
         (unknown user or wrong password); locked (refused by the lockout); unconfirmed and \
         disabled (right password, account not usable); error (hashing queue full or database \
         error).",
    );
    for (result, counter) in SignIn::ALL.iter().zip(&metrics.sign_ins) {
        out.sample(
            "authpool_sign_ins_total",
            &[("result", result.label())],
            counter.get(),
        );
    }
}

fn render_mail(out: &mut Exposition, mail: &MailCounters) {
    out.family(
        "authpool_codes_sent_total",
        "counter",
        "Codes emailed, by purpose (confirm_sign_up, verify_email, reset_password); counted \
         when the email is queued in the outbox, with the change that issues the code.",
    );
    for (purpose, counter) in CODE_PURPOSES.iter().zip(&mail.codes) {
        out.sample(
            "authpool_codes_sent_total",
            &[("purpose", purpose)],
            counter.get(),
        );
    }
    let counters = [
        (
            "authpool_mail_sent_total",
            "Emails handed over to the mail transport by this process's delivery worker.",
            &mail.sent,
        ),
        (
            "authpool_mail_failed_total",
            "Email delivery attempts that failed (retried with backoff, or given up).",
            &mail.failed,
        ),
        (
            "authpool_mail_given_up_total",
            "Emails abandoned for good: refused permanently too many times, or unbuildable.",
            &mail.given_up,
        ),
    ];
    for (name, help, counter) in counters {
        out.family(name, "counter", help);
        out.sample(name, &[], counter.get());
    }
}

fn render_hasher(out: &mut Exposition, state: &AppState) {
    let hasher = &state.hasher;
    let argon2 = &state.settings.argon2;
    let gauges = [
        (
            "authpool_hash_in_flight",
            "Password hashes running now (at most authpool_hash_concurrency).",
            hasher.running() as u64,
        ),
        (
            "authpool_hash_queue_depth",
            "Password hash jobs waiting for a free slot (at most authpool_hash_queue_limit).",
            hasher.waiting() as u64,
        ),
        (
            "authpool_hash_concurrency",
            "Password hashes allowed to run at once (AUTHPOOL_HASH_CONCURRENCY).",
            argon2.concurrency as u64,
        ),
        (
            "authpool_hash_queue_limit",
            "Password hash jobs allowed to wait (AUTHPOOL_HASH_QUEUE); more answer 503.",
            argon2.queue as u64,
        ),
    ];
    for (name, help, value) in gauges {
        out.family(name, "gauge", help);
        out.sample(name, &[], value);
    }
    out.family(
        "authpool_hash_rejected_total",
        "counter",
        "Password hash jobs refused (503 ServiceUnavailableException): the queue was full, or \
         drained too slowly (see the hashing pool in the README).",
    );
    out.sample("authpool_hash_rejected_total", &[], hasher.rejected());
}

fn render_outbox(out: &mut Exposition, stats: Option<store::outbox::OutboxStats>) {
    // Left out when the database cannot be read: a missing series is not a zero.
    let Some(stats) = stats else { return };
    let age = stats.oldest_pending.map_or(0.0, |at| {
        (chrono::Utc::now() - at).num_milliseconds().max(0) as f64 / 1000.0
    });
    let gauges: [(&str, &str, f64); 4] = [
        (
            "authpool_outbox_pending",
            "Emails waiting for delivery (database-wide: the same on every replica).",
            stats.pending as f64,
        ),
        (
            "authpool_outbox_failed",
            "Emails not sent whose last delivery attempt failed: waiting for a retry or given up \
             (database-wide).",
            stats.failed as f64,
        ),
        (
            "authpool_outbox_given_up",
            "Emails abandoned for good, kept in the outbox with their last error (database-wide).",
            stats.given_up as f64,
        ),
        (
            "authpool_outbox_oldest_pending_age_seconds",
            "Age of the oldest email waiting for delivery; 0 when none waits (database-wide).",
            age,
        ),
    ];
    for (name, help, value) in gauges {
        out.family(name, "gauge", help);
        out.sample(name, &[], value);
    }
}

fn render_pool(out: &mut Exposition, db: &DatabaseConnection) {
    let Some((size, idle, max)) = pool_stats(db) else {
        return;
    };
    out.family(
        "authpool_db_pool_connections",
        "gauge",
        "Open database connections of this process, by state (idle, in_use).",
    );
    let in_use = u64::from(size).saturating_sub(idle as u64);
    out.sample(
        "authpool_db_pool_connections",
        &[("state", "idle")],
        idle as u64,
    );
    out.sample(
        "authpool_db_pool_connections",
        &[("state", "in_use")],
        in_use,
    );
    out.family(
        "authpool_db_pool_max_connections",
        "gauge",
        "Most database connections this process opens.",
    );
    out.sample("authpool_db_pool_max_connections", &[], max);
}

/// (open, idle, max) connections of the sqlx pool behind the connection.
fn pool_stats(db: &DatabaseConnection) -> Option<(u32, usize, u32)> {
    match db.get_database_backend() {
        DatabaseBackend::Sqlite => {
            let pool = db.get_sqlite_connection_pool();
            Some((
                pool.size(),
                pool.num_idle(),
                pool.options().get_max_connections(),
            ))
        }
        DatabaseBackend::Postgres => {
            let pool = db.get_postgres_connection_pool();
            Some((
                pool.size(),
                pool.num_idle(),
                pool.options().get_max_connections(),
            ))
        }
        _ => None,
    }
}

/// The text being built.
#[derive(Default)]
struct Exposition {
    text: String,
}

impl Exposition {
    /// `# HELP` and `# TYPE` of a metric family.
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let help = help.replace('\\', "\\\\").replace('\n', "\\n");
        let _ = writeln!(self.text, "# HELP {name} {help}");
        let _ = writeln!(self.text, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl Display) {
        self.text.push_str(name);
        if !labels.is_empty() {
            self.text.push('{');
            for (i, (key, value)) in labels.iter().enumerate() {
                if i > 0 {
                    self.text.push(',');
                }
                let _ = write!(self.text, "{key}=\"{}\"", escape_label(value));
            }
            self.text.push('}');
        }
        let _ = writeln!(self.text, " {value}");
    }
}

fn escape_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative_and_count_matches() {
        let table = HttpTable::new(vec!["/api/login".into()]);
        for ms in [1, 3, 20, 700, 20_000] {
            table.record(&Method::POST, Some(0), 200, Duration::from_millis(ms));
        }
        table.record(&Method::POST, Some(0), 401, Duration::from_millis(2));
        let mut out = Exposition::default();
        render_http(&mut out, Some(&table));
        let text = out.text;
        assert!(text.contains(
            "authpool_http_requests_total{method=\"POST\",route=\"/api/login\",status=\"200\"} 5\n"
        ));
        assert!(text.contains(
            "authpool_http_requests_total{method=\"POST\",route=\"/api/login\",status=\"401\"} 1\n"
        ));
        let bucket = |le: &str| {
            format!(
                "authpool_http_request_duration_seconds_bucket{{method=\"POST\",route=\"/api/login\",le=\"{le}\"}} "
            )
        };
        let value = |prefix: String| -> u64 {
            let line = text.lines().find(|l| l.starts_with(&prefix)).unwrap();
            line[prefix.len()..].parse().unwrap()
        };
        assert_eq!(value(bucket("0.005")), 3);
        assert_eq!(value(bucket("0.025")), 4);
        assert_eq!(value(bucket("1")), 5);
        assert_eq!(value(bucket("10")), 5);
        assert_eq!(value(bucket("+Inf")), 6);
        assert!(text.contains(
            "authpool_http_request_duration_seconds_count{method=\"POST\",route=\"/api/login\"} 6\n"
        ));
    }

    #[test]
    fn unknown_methods_and_routes_get_bounded_labels() {
        let table = HttpTable::new(vec!["/a".into()]);
        let method = Method::from_bytes(b"BREW").unwrap();
        table.record(&method, None, 404, Duration::ZERO);
        table.record(&Method::GET, Some(99), 404, Duration::ZERO);
        let mut out = Exposition::default();
        render_http(&mut out, Some(&table));
        assert!(out.text.contains(
            "authpool_http_requests_total{method=\"other\",route=\"unmatched\",status=\"404\"} 1\n"
        ));
        assert!(out.text.contains(
            "authpool_http_requests_total{method=\"GET\",route=\"unmatched\",status=\"404\"} 1\n"
        ));
        assert!(!out.text.contains("BREW"));
    }

    #[test]
    fn label_values_and_help_are_escaped() {
        let mut out = Exposition::default();
        out.family("x", "gauge", "a \\ b\nc");
        out.sample("x", &[("l", "q\"\\\n")], 1);
        assert_eq!(
            out.text,
            "# HELP x a \\\\ b\\nc\n# TYPE x gauge\nx{l=\"q\\\"\\\\\\n\"} 1\n"
        );
    }
}
