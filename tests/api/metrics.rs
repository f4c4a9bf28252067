//! `GET /metrics`: Prometheus text that parses, describes every series, and moves with what the
//! server does — without ever showing a raw path.

use std::{collections::BTreeMap, time::Duration};

use entity::mail_outbox;
use poem::http::{Method, StatusCode};
use sea_orm::{ActiveModelTrait, ActiveValue::Set, EntityTrait};
use serde_json::json;

use crate::{
    helpers::{PASSWORD, TestApp, assert_error, json},
    smtp::free_port,
};

const ADA: &str = "ada@example.org";

/// One sample line: `name{labels} value`.
#[derive(Debug, Clone)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// A parsed exposition: its samples, and the `# HELP` / `# TYPE` of each family.
#[derive(Debug)]
struct Exposition {
    samples: Vec<Sample>,
    help: BTreeMap<String, String>,
    types: BTreeMap<String, String>,
}

impl Exposition {
    /// Parses the text format 0.0.4, strictly enough to catch what Prometheus would refuse.
    fn parse(text: &str) -> Exposition {
        let (mut samples, mut help, mut types) = (Vec::new(), BTreeMap::new(), BTreeMap::new());
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let (name, text) = rest.split_once(' ').expect("HELP name text");
                assert!(!text.is_empty(), "empty HELP for {name}");
                assert!(help.insert(name.to_string(), text.to_string()).is_none());
            } else if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').expect("TYPE name kind");
                assert!(
                    ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                    "{line}"
                );
                assert!(
                    !samples
                        .iter()
                        .any(|s: &Sample| family(&s.name, kind) == name),
                    "TYPE after samples: {line}"
                );
                assert!(types.insert(name.to_string(), kind.to_string()).is_none());
            } else {
                assert!(!line.starts_with('#') && !line.is_empty(), "{line:?}");
                samples.push(parse_sample(line));
            }
        }
        Exposition {
            samples,
            help,
            types,
        }
    }

    /// Samples of this name whose labels include all of `labels`.
    fn find<'a>(
        &'a self,
        name: &'a str,
        labels: &'a [(&str, &str)],
    ) -> impl Iterator<Item = &'a Sample> {
        self.samples.iter().filter(move |s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
    }

    /// The value of exactly one sample; panics when there is none or several.
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let found: Vec<_> = self.find(name, labels).collect();
        assert_eq!(found.len(), 1, "{name} {labels:?}: {found:?}");
        found[0].value
    }

    /// Like `value`, 0 when there is no such sample yet.
    fn value_or_zero(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.find(name, labels).map(|s| s.value).sum()
    }
}

/// The family a sample belongs to: histogram samples drop their suffix.
fn family<'a>(name: &'a str, kind: &str) -> &'a str {
    if kind == "histogram" {
        for suffix in ["_bucket", "_sum", "_count"] {
            if let Some(base) = name.strip_suffix(suffix) {
                return base;
            }
        }
    }
    name
}

fn parse_sample(line: &str) -> Sample {
    let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("{line}"));
    let value: f64 = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().unwrap_or_else(|_| panic!("value in {line:?}")),
    };
    let (name, labels) = match series.split_once('{') {
        Some((name, rest)) => {
            let body = rest.strip_suffix('}').unwrap_or_else(|| panic!("{line}"));
            (name, parse_labels(body, line))
        }
        None => (series, BTreeMap::new()),
    };
    assert!(
        !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
        "metric name in {line:?}"
    );
    Sample {
        name: name.to_string(),
        labels,
        value,
    }
}

/// `k="v",k2="v2"` with `\\`, `\"` and `\n` escapes.
fn parse_labels(body: &str, line: &str) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    let mut chars = body.chars().peekable();
    while chars.peek().is_some() {
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        assert_eq!(chars.next(), Some('"'), "{line}");
        let mut value = String::new();
        loop {
            match chars
                .next()
                .unwrap_or_else(|| panic!("unterminated: {line}"))
            {
                '\\' => match chars.next() {
                    Some('n') => value.push('\n'),
                    Some(c @ ('\\' | '"')) => value.push(c),
                    other => panic!("bad escape {other:?} in {line}"),
                },
                '"' => break,
                c => value.push(c),
            }
        }
        assert!(labels.insert(key, value).is_none(), "{line}");
        match chars.next() {
            None | Some(',') => {}
            Some(c) => panic!("unexpected {c:?} in {line}"),
        }
    }
    labels
}

/// Scrapes `/metrics`, checking the content type and that every series is described.
async fn scrape(app: &TestApp) -> (String, Exposition) {
    let response = app.client.get("/metrics").send().await;
    response.assert_status_is_ok();
    response.assert_header("content-type", "text/plain; version=0.0.4; charset=utf-8");
    let text = response.0.into_body().into_string().await.unwrap();
    let exposition = Exposition::parse(&text);
    for sample in &exposition.samples {
        assert!(
            sample.name.starts_with("authpool_"),
            "unprefixed {}",
            sample.name
        );
        let described = exposition.types.iter().any(|(name, kind)| {
            family(&sample.name, kind) == name && exposition.help.contains_key(name)
        });
        assert!(described, "{} has no HELP/TYPE", sample.name);
    }
    (text, exposition)
}

fn sign_ins(metrics: &Exposition, result: &str) -> f64 {
    metrics.value("authpool_sign_ins_total", &[("result", result)])
}

#[tokio::test]
async fn every_series_is_described_and_the_gauges_of_each_part_are_there() {
    let app = TestApp::spawn().await;
    app.client
        .get("/health/live")
        .send()
        .await
        .assert_status_is_ok();
    let (_, metrics) = scrape(&app).await;

    let expected = [
        ("authpool_http_requests_total", "counter"),
        ("authpool_http_request_duration_seconds", "histogram"),
        ("authpool_sign_ins_total", "counter"),
        ("authpool_codes_sent_total", "counter"),
        ("authpool_mail_sent_total", "counter"),
        ("authpool_mail_failed_total", "counter"),
        ("authpool_hash_in_flight", "gauge"),
        ("authpool_hash_queue_depth", "gauge"),
        ("authpool_hash_rejected_total", "counter"),
        ("authpool_outbox_pending", "gauge"),
        ("authpool_outbox_failed", "gauge"),
        ("authpool_outbox_oldest_pending_age_seconds", "gauge"),
        ("authpool_db_pool_connections", "gauge"),
        ("authpool_db_pool_max_connections", "gauge"),
    ];
    for (name, kind) in expected {
        assert_eq!(
            metrics.types.get(name).map(String::as_str),
            Some(kind),
            "{name}"
        );
    }
    assert_eq!(metrics.value("authpool_hash_in_flight", &[]), 0.0);
    assert_eq!(metrics.value("authpool_hash_queue_depth", &[]), 0.0);
    assert_eq!(metrics.value("authpool_hash_rejected_total", &[]), 0.0);
    for result in ["succeeded", "failed", "locked", "unconfirmed", "disabled"] {
        assert_eq!(sign_ins(&metrics, result), 0.0, "{result}");
    }
    // The scrape itself holds a connection; the pool never has more than its maximum.
    let idle = metrics.value("authpool_db_pool_connections", &[("state", "idle")]);
    let in_use = metrics.value("authpool_db_pool_connections", &[("state", "in_use")]);
    let max = metrics.value("authpool_db_pool_max_connections", &[]);
    assert!(
        max >= 1.0 && idle + in_use <= max,
        "{idle} + {in_use} <= {max}"
    );
    assert_eq!(
        metrics.value(
            "authpool_http_requests_total",
            &[
                ("method", "GET"),
                ("route", "/health/live"),
                ("status", "200")
            ]
        ),
        1.0
    );
}

#[tokio::test]
async fn sign_ins_are_counted_by_result_on_both_surfaces() {
    let app = TestApp::spawn().await;
    app.confirmed_user(ADA, PASSWORD).await;
    app.login(ADA, PASSWORD).await.assert_status_is_ok();
    // The compat surface counts through the same use case.
    app.post(
        "/authentication/api/token/",
        json!({"username": ADA, "password": PASSWORD}),
    )
    .await
    .assert_status_is_ok();
    app.register("grace@example.org", PASSWORD)
        .await
        .assert_status(StatusCode::CREATED);
    let unconfirmed = app.login("grace@example.org", PASSWORD).await;
    assert_error(unconfirmed, 403, "UserNotConfirmedException").await;

    let (_, metrics) = scrape(&app).await;
    assert_eq!(sign_ins(&metrics, "succeeded"), 2.0);
    assert_eq!(sign_ins(&metrics, "unconfirmed"), 1.0);
    assert_eq!(sign_ins(&metrics, "failed"), 0.0);

    // Wrong passwords until the lockout answers: each is a failure, the refusal a `locked`.
    let mut failures = 0.0;
    loop {
        let response = app.login(ADA, "not the password at all").await;
        match response.0.status().as_u16() {
            401 => failures += 1.0,
            429 => break,
            other => panic!("status {other}"),
        }
        assert!(failures <= 10.0, "no lockout after {failures} failures");
    }
    assert!(failures >= 5.0);
    let locked = app.login(ADA, PASSWORD).await;
    let locked_count = if locked.0.status() == StatusCode::TOO_MANY_REQUESTS {
        2.0
    } else {
        // The lockout (1 s after the 5th failure) may have run out on a slow machine.
        1.0
    };
    let (_, metrics) = scrape(&app).await;
    assert_eq!(sign_ins(&metrics, "failed"), failures);
    assert_eq!(sign_ins(&metrics, "locked"), locked_count);
    assert_eq!(sign_ins(&metrics, "succeeded"), 2.0 + (2.0 - locked_count));
    assert_eq!(
        metrics.value(
            "authpool_http_requests_total",
            &[
                ("method", "POST"),
                ("route", "/api/login"),
                ("status", "429")
            ]
        ),
        locked_count
    );
}

#[tokio::test]
async fn routes_are_labelled_by_template_never_by_the_raw_path() {
    let app = TestApp::spawn().await;
    let tokens = app.signed_in(ADA, PASSWORD).await;
    let access = tokens["access_token"].as_str().unwrap();

    let mine = app.get_as("/api/api-tokens/SOMESECRETKEY", access).await;
    assert_error(mine, 404, "ResourceNotFoundException").await;
    let anonymous = app
        .client
        .get("/api/api-tokens/SOMESECRETKEY/")
        .send()
        .await;
    assert_error(anonymous, 401, "NotAuthorizedException").await;
    let unknown = app.client.get("/no/such/SOMESECRETPATH").send().await;
    assert_error(unknown, 404, "ResourceNotFoundException").await;
    let wrong_method = app.client.delete("/api/login").send().await;
    assert_error(wrong_method, 405, "MethodNotAllowedException").await;
    let odd_method = app
        .client
        .request(
            Method::from_bytes(b"SOMESECRETMETHOD").unwrap(),
            "/api/login",
        )
        .send()
        .await;
    assert_eq!(odd_method.0.status(), StatusCode::METHOD_NOT_ALLOWED);
    app.client
        .get("/api/validate?user_name=a%40example.org&confirmation_code=SOMESECRETCODE")
        .send()
        .await;
    // A literal segment is its own route, not `{key}`.
    app.client
        .post("/api/api-tokens/introspect")
        .body_json(&json!({"token": "SOMESECRETTOKEN"}))
        .send()
        .await;

    let (text, metrics) = scrape(&app).await;
    assert!(!text.contains("SOMESECRET"), "{text}");
    let count = |method: &str, route: &str, status: &str| {
        metrics.value(
            "authpool_http_requests_total",
            &[("method", method), ("route", route), ("status", status)],
        )
    };
    assert_eq!(count("GET", "/api/api-tokens/{key}", "404"), 1.0);
    assert_eq!(count("GET", "/api/api-tokens/{key}", "401"), 1.0);
    assert_eq!(count("GET", "unmatched", "404"), 1.0);
    assert_eq!(count("DELETE", "/api/login", "405"), 1.0);
    assert_eq!(count("other", "/api/login", "405"), 1.0);
    assert_eq!(
        metrics
            .find(
                "authpool_http_requests_total",
                &[("method", "GET"), ("route", "/api/validate")]
            )
            .count(),
        1
    );
    assert_eq!(
        metrics
            .find(
                "authpool_http_requests_total",
                &[("route", "/api/api-tokens/introspect")]
            )
            .count(),
        1
    );
    // Every route label is a template of the spec, or `unmatched`.
    let spec: serde_json::Value = serde_json::from_str(&authpool::api::spec_json()).unwrap();
    for sample in &metrics.samples {
        if let Some(route) = sample.labels.get("route") {
            assert!(
                route == "unmatched" || spec["paths"].get(route).is_some(),
                "{route}"
            );
        }
    }
}

#[tokio::test]
async fn request_durations_are_a_cumulative_histogram_counting_every_request() {
    let app = TestApp::spawn().await;
    for _ in 0..7 {
        app.client
            .get("/health/live")
            .send()
            .await
            .assert_status_is_ok();
    }
    app.client
        .get("/health/live/")
        .send()
        .await
        .assert_status_is_ok();
    let labels = [("method", "GET"), ("route", "/health/live")];
    let (_, metrics) = scrape(&app).await;

    let mut buckets: Vec<(f64, f64)> = metrics
        .find("authpool_http_request_duration_seconds_bucket", &labels)
        .map(|s| {
            let le = &s.labels["le"];
            let bound = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().unwrap()
            };
            (bound, s.value)
        })
        .collect();
    assert!(buckets.len() >= 2, "{buckets:?}");
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    assert!(
        buckets.windows(2).all(|w| w[0].1 <= w[1].1),
        "not cumulative: {buckets:?}"
    );
    let (last_bound, infinite) = *buckets.last().unwrap();
    assert_eq!(last_bound, f64::INFINITY);
    let count = metrics.value("authpool_http_request_duration_seconds_count", &labels);
    assert_eq!(count, 8.0);
    assert_eq!(infinite, count);
    let requests: f64 = metrics
        .find("authpool_http_requests_total", &labels)
        .map(|s| s.value)
        .sum();
    assert_eq!(requests, count);
    let sum = metrics.value("authpool_http_request_duration_seconds_sum", &labels);
    assert!(sum > 0.0 && sum < 8.0 * 10.0, "{sum}");
}

#[tokio::test]
async fn outbox_and_mail_counters_follow_a_queued_then_delivered_mail() {
    let app = TestApp::spawn().await;
    app.register(ADA, PASSWORD)
        .await
        .assert_status(StatusCode::CREATED);
    let (_, metrics) = scrape(&app).await;
    assert_eq!(metrics.value("authpool_outbox_pending", &[]), 1.0);
    assert_eq!(metrics.value("authpool_outbox_failed", &[]), 0.0);
    assert!(metrics.value("authpool_outbox_oldest_pending_age_seconds", &[]) >= 0.0);
    assert_eq!(
        metrics.value(
            "authpool_codes_sent_total",
            &[("purpose", "confirm_sign_up")]
        ),
        1.0
    );
    assert_eq!(metrics.value("authpool_mail_sent_total", &[]), 0.0);

    app.mails_to(ADA).await;
    app.post("/api/password/reset", json!({"email": ADA}))
        .await
        .assert_status_is_ok();
    app.mails_to(ADA).await;
    let (_, metrics) = scrape(&app).await;
    assert_eq!(metrics.value("authpool_outbox_pending", &[]), 0.0);
    assert_eq!(
        metrics.value("authpool_outbox_oldest_pending_age_seconds", &[]),
        0.0
    );
    assert_eq!(metrics.value("authpool_mail_sent_total", &[]), 2.0);
    assert_eq!(
        metrics.value(
            "authpool_codes_sent_total",
            &[("purpose", "reset_password")]
        ),
        1.0
    );
}

#[tokio::test]
async fn a_failed_delivery_shows_as_failed_and_still_pending() {
    // Nothing listens on that port: every attempt fails at once.
    let mail_url = format!("smtp://127.0.0.1:{}", free_port());
    let app = TestApp::with_settings(&[("mail_url", &mail_url)]).await;
    app.register(ADA, PASSWORD)
        .await
        .assert_status(StatusCode::CREATED);
    // Queued two seconds ago, as far as the outbox can tell.
    let queued = mail_outbox::Entity::find()
        .one(&app.state.db)
        .await
        .unwrap()
        .expect("the confirmation email");
    let mut row: mail_outbox::ActiveModel = queued.clone().into();
    row.created_at = Set(queued.created_at - chrono::Duration::seconds(2));
    row.next_attempt_at = Set(queued.next_attempt_at - chrono::Duration::seconds(2));
    row.update(&app.state.db).await.unwrap();
    let sent = app.state.mail.deliver_due(&app.state.db).await.unwrap();
    assert_eq!(sent, 0);
    let (_, metrics) = scrape(&app).await;
    assert_eq!(metrics.value("authpool_mail_failed_total", &[]), 1.0);
    assert_eq!(metrics.value("authpool_mail_sent_total", &[]), 0.0);
    assert_eq!(metrics.value("authpool_outbox_pending", &[]), 1.0);
    assert_eq!(metrics.value("authpool_outbox_failed", &[]), 1.0);
    assert!(metrics.value("authpool_outbox_oldest_pending_age_seconds", &[]) >= 2.0);
}

#[tokio::test]
async fn the_hashing_pool_shows_its_running_job_and_counts_refusals() {
    let app = TestApp::with_one_slow_hasher().await;
    app.confirmed_user(ADA, PASSWORD).await;
    let app = std::sync::Arc::new(app);
    let first = tokio::spawn({
        let app = app.clone();
        async move { app.login(ADA, PASSWORD).await.0.status() }
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while app.state.hasher.running() == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the login never hashed"
        );
        tokio::task::yield_now().await;
    }
    let refused = app.login(ADA, PASSWORD).await;
    assert_error(refused, 503, "ServiceUnavailableException").await;
    let (_, during) = scrape(&app).await;
    let still_running = app.state.hasher.running() == 1;
    assert_eq!(first.await.unwrap(), StatusCode::OK);

    if still_running {
        // Running before and after the scrape, and the only job admitted: seen running.
        assert_eq!(during.value("authpool_hash_in_flight", &[]), 1.0);
    }
    assert_eq!(during.value("authpool_hash_queue_depth", &[]), 0.0);
    assert_eq!(during.value("authpool_hash_concurrency", &[]), 1.0);
    assert_eq!(during.value("authpool_hash_queue_limit", &[]), 0.0);
    let (_, after) = scrape(&app).await;
    assert_eq!(after.value("authpool_hash_in_flight", &[]), 0.0);
    assert_eq!(after.value("authpool_hash_rejected_total", &[]), 1.0);
    assert_eq!(sign_ins(&after, "error"), 1.0);
    assert_eq!(sign_ins(&after, "succeeded"), 1.0);
    assert_eq!(
        after.value(
            "authpool_http_requests_total",
            &[
                ("method", "POST"),
                ("route", "/api/login"),
                ("status", "503")
            ]
        ),
        1.0
    );
}

#[tokio::test]
async fn every_response_carries_a_request_id_errors_included() {
    let app = TestApp::spawn().await;
    let kept = app
        .client
        .get("/health/live")
        .header("x-request-id", "client-id_1.2")
        .send()
        .await;
    kept.assert_header("x-request-id", "client-id_1.2");
    for (method, path) in [
        (Method::GET, "/nowhere"),
        (Method::DELETE, "/api/login"),
        (Method::POST, "/api/login"),
    ] {
        let response = app
            .client
            .request(method.clone(), path)
            .header("x-request-id", "has spaces and \"quotes\"")
            .send()
            .await;
        assert!(response.0.status().is_client_error(), "{method} {path}");
        let id = response.0.headers()["x-request-id"]
            .to_str()
            .unwrap()
            .to_string();
        assert_eq!(id.len(), 32, "{id}");
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
        let body = json(response).await;
        assert!(body["code"].is_string(), "{body}");
    }
}

#[tokio::test]
async fn an_oversized_body_and_a_rate_limit_are_counted_too() {
    let app = TestApp::with_settings(&[("ip_rate_limit", "1"), ("max_body_bytes", "1024")]).await;
    let big = "x".repeat(4096);
    let too_large = app
        .post("/api/register", json!({"email": ADA, "password": big}))
        .await;
    assert_eq!(too_large.0.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let mut limited = 0;
    for _ in 0..30 {
        let response = app
            .post("/api/validate/resend", json!({"email": ADA}))
            .await;
        if response.0.status() == StatusCode::TOO_MANY_REQUESTS {
            limited += 1;
        }
    }
    assert!(limited > 0);
    let (_, metrics) = scrape(&app).await;
    let count = |route: &str, status: &str| {
        metrics.value_or_zero(
            "authpool_http_requests_total",
            &[("method", "POST"), ("route", route), ("status", status)],
        )
    };
    assert_eq!(count("/api/register", "413"), 1.0);
    assert_eq!(count("/api/validate/resend", "429"), f64::from(limited));
}
