//! The load generator: N workers, each on its own HTTP/1.1 keep-alive connection, sending one
//! request at a time for a fixed duration and recording every latency.
//!
//! Requests started before the deadline all count towards latency, errors and timeouts; the
//! request rate counts the answers that arrived in the counted window (from the end of an
//! optional warm-up to the deadline), divided by its length.

use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

use bytes::Bytes;
use http::{Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// How long one request may take before it counts as timed out (and its connection is replaced).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// One keep-alive connection.
pub struct Conn {
    addr: SocketAddr,
    sender: Option<SendRequest<Full<Bytes>>>,
}

/// What came back for one request.
pub enum Outcome {
    Reply {
        status: StatusCode,
        /// The `Retry-After` header, in seconds, when present and numeric.
        retry_after: Option<u64>,
        body: Bytes,
    },
    Timeout,
    Failed(String),
}

impl Conn {
    pub fn new(addr: SocketAddr) -> Self {
        Self { addr, sender: None }
    }

    async fn open(&mut self) -> Result<&mut SendRequest<Full<Bytes>>, String> {
        if self.sender.as_ref().is_none_or(SendRequest::is_closed) {
            let stream = TcpStream::connect(self.addr)
                .await
                .map_err(|e| format!("connect: {e}"))?;
            stream.set_nodelay(true).map_err(|e| e.to_string())?;
            let (sender, connection) = http1::handshake(TokioIo::new(stream))
                .await
                .map_err(|e| format!("handshake: {e}"))?;
            tokio::spawn(async move {
                let _ = connection.await;
            });
            self.sender = Some(sender);
        }
        Ok(self.sender.as_mut().expect("just opened"))
    }

    /// Opens the connection now, so that connecting is not part of the first request's time.
    pub async fn warm(&mut self) -> Result<(), String> {
        self.open().await.map(|_| ())
    }

    /// Sends one request and reads the whole answer, within `timeout`. After a timeout or a
    /// failure the connection is dropped and the next request opens a new one.
    pub async fn send(&mut self, request: Request<Full<Bytes>>, timeout: Duration) -> Outcome {
        let exchange = async {
            let sender = self.open().await?;
            sender.ready().await.map_err(|e| format!("ready: {e}"))?;
            let response = sender
                .send_request(request)
                .await
                .map_err(|e| format!("send: {e}"))?;
            let (parts, body) = response.into_parts();
            let body = body
                .collect()
                .await
                .map_err(|e| format!("body: {e}"))?
                .to_bytes();
            Ok::<_, String>(Outcome::Reply {
                status: parts.status,
                retry_after: parts
                    .headers
                    .get(header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok()?.parse().ok()),
                body,
            })
        };
        let outcome = match tokio::time::timeout(timeout, exchange).await {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(reason)) => Outcome::Failed(reason),
            Err(_) => Outcome::Timeout,
        };
        if !matches!(outcome, Outcome::Reply { .. }) {
            self.sender = None;
        }
        outcome
    }
}

/// A request builder: `GET` or `POST` with a JSON body, and an optional bearer token.
pub fn request(
    method: Method,
    path: &str,
    bearer: Option<&str>,
    json: Option<String>,
) -> Request<Full<Bytes>> {
    let mut builder = Request::builder()
        .method(method)
        .uri(path)
        .header(header::HOST, "127.0.0.1");
    if let Some(token) = bearer {
        builder = builder.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let body = match json {
        Some(json) => {
            builder = builder.header(header::CONTENT_TYPE, "application/json");
            Full::new(Bytes::from(json))
        }
        None => Full::new(Bytes::new()),
    };
    builder.body(body).expect("a valid request")
}

/// What one worker does, request after request.
pub enum Job {
    /// `POST /api/login` as a random seeded user.
    Login {
        users: u64,
        password: String,
        rng: u64,
        /// On 503, wait as `Retry-After` says before the next attempt, as a client SDK backs
        /// off; otherwise retry at once (a hostile flood).
        polite: bool,
    },
    /// `GET /api/account` with a bearer access token.
    Get { access_token: String },
    /// `POST /api/refresh` with the refresh token this worker last received.
    Refresh { refresh_token: String },
}

impl Job {
    pub fn login(users: u64, password: &str, seed: u64, polite: bool) -> Self {
        Self::Login {
            users,
            password: password.to_string(),
            // xorshift must not start at zero.
            rng: seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1,
            polite,
        }
    }

    /// How long to wait before the next request after a 503 with this `Retry-After`.
    fn back_off(&self, retry_after: Option<u64>) -> Option<Duration> {
        match self {
            Self::Login { polite: true, .. } => retry_after.map(Duration::from_secs),
            _ => None,
        }
    }

    fn request(&mut self) -> Request<Full<Bytes>> {
        match self {
            Self::Login {
                users,
                password,
                rng,
                ..
            } => {
                *rng ^= *rng << 13;
                *rng ^= *rng >> 7;
                *rng ^= *rng << 17;
                let body = serde_json::json!({
                    "email": crate::seed::email(*rng % *users),
                    "password": password,
                });
                request(Method::POST, "/api/login", None, Some(body.to_string()))
            }
            Self::Get { access_token } => {
                request(Method::GET, "/api/account", Some(access_token), None)
            }
            Self::Refresh { refresh_token } => {
                let body = serde_json::json!({ "refresh_token": refresh_token });
                request(Method::POST, "/api/refresh", None, Some(body.to_string()))
            }
        }
    }

    fn observe(&mut self, status: StatusCode, body: &[u8]) {
        if let Self::Refresh { refresh_token } = self
            && status.is_success()
            && let Some(token) = token_field(body, "refresh_token")
        {
            *refresh_token = token;
        }
    }
}

/// A string field of a JSON object body.
pub fn token_field(body: &[u8], name: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    value.get(name)?.as_str().map(str::to_string)
}

/// What a group of workers saw.
#[derive(Default, Clone)]
pub struct Stats {
    /// 2xx answers that arrived before the deadline.
    pub ok_in_window: u64,
    /// Latency of every 2xx answer, in microseconds.
    pub ok_latency_us: Vec<u32>,
    /// 503 answers that arrived before the deadline.
    pub busy_in_window: u64,
    /// Latency of every 503 answer, in microseconds.
    pub busy_latency_us: Vec<u32>,
    /// 503 answers that carried `Retry-After`.
    pub busy_with_retry_after: u64,
    /// Other non-2xx answers and failed connections.
    pub errors: u64,
    pub timeouts: u64,
    /// The first error seen, to explain a non-zero count.
    pub first_error: Option<String>,
    pub duration: Duration,
}

impl Stats {
    /// Adds another group's or slice's answers; [`Stats::finish`] once all are in.
    pub fn merge(&mut self, other: Self) {
        self.ok_in_window += other.ok_in_window;
        self.ok_latency_us.extend(other.ok_latency_us);
        self.busy_in_window += other.busy_in_window;
        self.busy_latency_us.extend(other.busy_latency_us);
        self.busy_with_retry_after += other.busy_with_retry_after;
        self.errors += other.errors;
        self.timeouts += other.timeouts;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }

    /// Sorts the latencies and sets the counted window the rates divide by.
    pub fn finish(&mut self, duration: Duration) {
        self.ok_latency_us.sort_unstable();
        self.busy_latency_us.sort_unstable();
        self.duration = duration;
    }

    pub fn ok_per_s(&self) -> f64 {
        self.ok_in_window as f64 / self.duration.as_secs_f64()
    }

    pub fn busy(&self) -> u64 {
        self.busy_latency_us.len() as u64
    }

    /// Latency percentile of the 2xx answers, in milliseconds.
    pub fn ok_ms(&self, percentile: f64) -> Option<f64> {
        percentile_ms(&self.ok_latency_us, percentile)
    }

    /// Latency percentile of the 503 answers, in milliseconds.
    pub fn busy_ms(&self, percentile: f64) -> Option<f64> {
        percentile_ms(&self.busy_latency_us, percentile)
    }
}

/// Nearest-rank percentile of sorted microseconds, in milliseconds.
fn percentile_ms(sorted_us: &[u32], percentile: f64) -> Option<f64> {
    if sorted_us.is_empty() {
        return None;
    }
    let rank = ((percentile / 100.0) * sorted_us.len() as f64).ceil() as usize;
    let index = rank.clamp(1, sorted_us.len()) - 1;
    Some(f64::from(sorted_us[index]) / 1000.0)
}

async fn worker(
    mut conn: Conn,
    mut job: Job,
    counted_from: Instant,
    deadline: Instant,
) -> (Job, Stats) {
    let mut stats = Stats::default();
    while Instant::now() < deadline {
        let request = job.request();
        let sent = Instant::now();
        let outcome = conn.send(request, REQUEST_TIMEOUT).await;
        let done = Instant::now();
        let micros = u32::try_from(done.duration_since(sent).as_micros()).unwrap_or(u32::MAX);
        let in_window = counted_from <= done && done <= deadline;
        match outcome {
            Outcome::Reply { status, body, .. } if status.is_success() => {
                stats.ok_latency_us.push(micros);
                stats.ok_in_window += u64::from(in_window);
                job.observe(status, &body);
            }
            Outcome::Reply {
                status: StatusCode::SERVICE_UNAVAILABLE,
                retry_after,
                ..
            } => {
                stats.busy_latency_us.push(micros);
                stats.busy_in_window += u64::from(in_window);
                stats.busy_with_retry_after += u64::from(retry_after.is_some());
                if let Some(wait) = job.back_off(retry_after) {
                    let until = (Instant::now() + wait).min(deadline);
                    tokio::time::sleep_until(until.into()).await;
                }
            }
            Outcome::Reply { status, body, .. } => {
                stats.errors += 1;
                stats.first_error.get_or_insert_with(|| {
                    format!(
                        "{status}: {}",
                        String::from_utf8_lossy(&body[..body.len().min(200)])
                    )
                });
            }
            Outcome::Timeout => stats.timeouts += 1,
            Outcome::Failed(reason) => {
                stats.errors += 1;
                stats.first_error.get_or_insert(reason);
                // Do not spin on a refused connection.
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
    (job, stats)
}

/// Runs groups of workers side by side for `duration`, all connected before the clock starts.
/// Returns each group's jobs (so a refresh worker keeps its latest token) and merged stats.
pub async fn run(
    addr: SocketAddr,
    groups: Vec<Vec<Job>>,
    duration: Duration,
) -> Vec<(Vec<Job>, Stats)> {
    run_after_warm_up(addr, groups, duration, Duration::ZERO).await
}

/// [`run`], with rates counting only the answers that arrive after `warm_up`: a short run
/// starts with an empty pipeline (no hash finishes before the first one has run), which would
/// otherwise weigh on its rate. Latencies and errors count from the start. Returns once every
/// request sent has been answered, so the server is idle again.
pub async fn run_after_warm_up(
    addr: SocketAddr,
    groups: Vec<Vec<Job>>,
    duration: Duration,
    warm_up: Duration,
) -> Vec<(Vec<Job>, Stats)> {
    let mut connected = Vec::new();
    for jobs in groups {
        let mut group = Vec::new();
        for job in jobs {
            let mut conn = Conn::new(addr);
            if let Err(reason) = conn.warm().await {
                eprintln!("warning: could not pre-connect to {addr}: {reason}");
            }
            group.push((conn, job));
        }
        connected.push(group);
    }
    let start = Instant::now();
    let counted_from = start + warm_up;
    let deadline = start + duration;
    let handles: Vec<Vec<_>> = connected
        .into_iter()
        .map(|group| {
            group
                .into_iter()
                .map(|(conn, job)| tokio::spawn(worker(conn, job, counted_from, deadline)))
                .collect()
        })
        .collect();
    let mut results = Vec::new();
    for group in handles {
        let mut jobs = Vec::new();
        let mut stats = Stats::default();
        for handle in group {
            let (job, worker_stats) = handle.await.expect("a load worker does not panic");
            jobs.push(job);
            stats.merge(worker_stats);
        }
        stats.finish(duration.saturating_sub(warm_up));
        results.push((jobs, stats));
    }
    results
}

/// One request on a fresh connection, for set-up steps (readiness, pre-login).
pub async fn once(addr: SocketAddr, request: Request<Full<Bytes>>) -> Outcome {
    Conn::new(addr).send(request, REQUEST_TIMEOUT).await
}
