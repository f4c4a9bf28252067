//! What browsers and reverse proxies see: CORS for the configured origins, security and caching
//! headers on every response, cookie attributes, and the client address behind a trusted proxy.

use std::process::Stdio;

use aws_lc_rs::digest;
use base64::{Engine, engine::general_purpose::STANDARD};
use poem::{
    http::{Method, header},
    test::TestResponse,
};
use serde_json::{Value, json};

use crate::{
    db::TestDb,
    helpers::{PASSWORD, TestApp, assert_error, json},
    login::{cookie, header, set_cookies},
    process::{KillOnDrop, authpool, wait_until_live},
    smtp::free_port,
};

const APP: &str = "https://app.example.org";
const OTHER_APP: &str = "http://localhost:5173";
const EVIL: &str = "https://evil.example.net";

async fn with_cors() -> TestApp {
    TestApp::with_settings(&[("cors_origins", &format!("{APP}, {OTHER_APP}/"))]).await
}

/// The header's comma-separated items, lower-cased.
fn items(response: &TestResponse, name: &str) -> Vec<String> {
    header(response, name)
        .unwrap_or_default()
        .split(',')
        .map(|s| s.trim().to_ascii_lowercase())
        .filter(|s| !s.is_empty())
        .collect()
}

fn assert_cors_for(response: &TestResponse, origin: &str) {
    assert_eq!(
        header(response, "access-control-allow-origin").as_deref(),
        Some(origin)
    );
    assert_eq!(
        header(response, "access-control-allow-credentials").as_deref(),
        Some("true")
    );
    assert!(items(response, "vary").contains(&"origin".into()));
}

fn assert_no_cors(response: &TestResponse) {
    for name in [
        "access-control-allow-origin",
        "access-control-allow-credentials",
        "access-control-allow-methods",
        "access-control-allow-headers",
        "access-control-expose-headers",
    ] {
        assert!(header(response, name).is_none(), "{name} present");
    }
}

#[tokio::test]
async fn an_allowed_origin_may_read_the_answer_with_credentials_and_the_id_token_header() {
    let app = with_cors().await;
    app.confirmed_user("ada@example.org", PASSWORD).await;
    let response = app
        .client
        .post("/api/login")
        .header(header::ORIGIN, APP)
        .body_json(&json!({"email": "ada@example.org", "password": PASSWORD}))
        .send()
        .await;
    response.assert_status_is_ok();
    assert_cors_for(&response, APP);
    let exposed = items(&response, "access-control-expose-headers");
    for name in ["authorization", "x-request-id", "retry-after"] {
        assert!(
            exposed.contains(&name.into()),
            "{name} not exposed: {exposed:?}"
        );
    }
    assert!(header(&response, "authorization").is_some());

    // The second origin, configured with a trailing slash, is matched as browsers send it.
    let response = app
        .client
        .get("/health/live")
        .header(header::ORIGIN, OTHER_APP)
        .send()
        .await;
    assert_cors_for(&response, OTHER_APP);
}

#[tokio::test]
async fn another_origin_gets_no_cors_headers_and_is_still_served() {
    let app = with_cors().await;
    for origin in [EVIL, "https://app.example.org.evil.example.net", "null"] {
        let response = app
            .client
            .get("/.well-known/jwks.json")
            .header(header::ORIGIN, origin)
            .send()
            .await;
        response.assert_status_is_ok();
        assert_no_cors(&response);
        // A cache must not hand this answer to an allowed origin, nor the reverse.
        assert!(items(&response, "vary").contains(&"origin".into()));
    }
    // Without any configured origin, no CORS at all.
    let app = TestApp::spawn().await;
    let response = app
        .client
        .get("/health/live")
        .header(header::ORIGIN, APP)
        .send()
        .await;
    assert_no_cors(&response);
}

#[tokio::test]
async fn a_preflight_from_an_allowed_origin_lists_methods_headers_and_max_age() {
    let app = with_cors().await;
    for path in ["/api/login", "/api/account/", "/api/api-tokens/abc"] {
        let response = app
            .client
            .request(Method::OPTIONS, path)
            .header(header::ORIGIN, APP)
            .header(header::ACCESS_CONTROL_REQUEST_METHOD, "PATCH")
            .header(
                header::ACCESS_CONTROL_REQUEST_HEADERS,
                "authorization, content-type, x-request-id",
            )
            .send()
            .await;
        response.assert_status(poem::http::StatusCode::NO_CONTENT);
        assert_cors_for(&response, APP);
        let methods = items(&response, "access-control-allow-methods");
        for method in ["get", "post", "put", "patch", "delete"] {
            assert!(methods.contains(&method.into()), "{path}: {methods:?}");
        }
        let headers = items(&response, "access-control-allow-headers");
        for name in ["authorization", "content-type", "x-request-id"] {
            assert!(headers.contains(&name.into()), "{path}: {headers:?}");
        }
        let max_age: u64 = header(&response, "access-control-max-age")
            .unwrap()
            .parse()
            .unwrap();
        assert!(max_age >= 600, "{max_age}");
    }
}

#[tokio::test]
async fn a_preflight_from_another_origin_gets_no_cors_headers() {
    let app = with_cors().await;
    let response = app
        .client
        .request(Method::OPTIONS, "/api/login")
        .header(header::ORIGIN, EVIL)
        .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
        .send()
        .await;
    assert_no_cors(&response);
    // It reaches the app like any OPTIONS: /api/login has none.
    assert_error(response, 405, "MethodNotAllowedException").await;
}

#[tokio::test]
async fn compat_options_is_a_preflight_only_with_a_requested_method() {
    let app = with_cors().await;
    for path in [
        "/authentication/api/login/",
        "/authentication/api/register/",
    ] {
        let preflight = app
            .client
            .request(Method::OPTIONS, path)
            .header(header::ORIGIN, APP)
            .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
            .header(header::ACCESS_CONTROL_REQUEST_HEADERS, "content-type")
            .send()
            .await;
        preflight.assert_status(poem::http::StatusCode::NO_CONTENT);
        assert_cors_for(&preflight, APP);
        assert!(header(&preflight, "access-control-allow-methods").is_some());
        let body = preflight.0.into_body().into_bytes().await.unwrap();
        assert!(body.is_empty(), "{body:?}");

        // A plain OPTIONS, from a page of an allowed origin or from no browser at all, is
        // Django REST framework's metadata.
        for origin in [Some(APP), None] {
            let mut request = app.client.request(Method::OPTIONS, path);
            if let Some(origin) = origin {
                request = request.header(header::ORIGIN, origin);
            }
            let response = request.send().await;
            response.assert_status_is_ok();
            if origin.is_some() {
                assert_cors_for(&response, APP);
                assert!(header(&response, "access-control-allow-methods").is_none());
            }
            let metadata = json(response).await;
            assert_eq!(metadata["methods"], json!(["POST", "OPTIONS"]), "{path}");
        }
    }
}

#[tokio::test]
async fn errors_carry_the_cors_headers_so_the_app_can_read_them() {
    let app = TestApp::with_settings(&[("cors_origins", APP), ("ip_rate_limit", "1")]).await;
    let unauthorized = app
        .client
        .get("/api/account")
        .header(header::ORIGIN, APP)
        .send()
        .await;
    assert_cors_for(&unauthorized, APP);
    assert_error(unauthorized, 401, "NotAuthorizedException").await;

    let not_found = app
        .client
        .get("/api/nothing/here")
        .header(header::ORIGIN, APP)
        .send()
        .await;
    assert_cors_for(&not_found, APP);
    assert_error(not_found, 404, "ResourceNotFoundException").await;

    // A burst of ten at one per second, then 429 with Retry-After, readable by the app.
    let resend = || {
        app.client
            .post("/api/validate/resend")
            .header(header::ORIGIN, APP)
            .body_json(&json!({"email": "nobody@example.org"}))
            .send()
    };
    let mut limited = None;
    for _ in 0..30 {
        let response = resend().await;
        if response.0.status() == 429 {
            limited = Some(response);
            break;
        }
    }
    let limited = limited.expect("the rate limit answers 429");
    assert_cors_for(&limited, APP);
    assert!(header(&limited, "retry-after").is_some());
    assert!(items(&limited, "access-control-expose-headers").contains(&"retry-after".into()));
    assert_error(limited, 429, "TooManyRequestsException").await;
}

fn assert_security_headers(response: &TestResponse, what: &str) {
    for (name, value) in [
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "no-referrer"),
        ("x-frame-options", "DENY"),
    ] {
        assert_eq!(
            header(response, name).as_deref(),
            Some(value),
            "{what}: {name}"
        );
    }
    let csp = header(response, "content-security-policy").unwrap_or_default();
    assert!(csp.contains("default-src 'none'"), "{what}: {csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{what}: {csp}");
    assert!(!csp.contains("unsafe-"), "{what}: {csp}");
    assert!(header(response, "cache-control").is_some(), "{what}");
    // The public URL of the tests is http.
    assert!(
        header(response, "strict-transport-security").is_none(),
        "{what}"
    );
}

const API_CSP: &str = "default-src 'none'; frame-ancestors 'none'";

#[tokio::test]
async fn every_response_carries_the_security_headers() {
    let app = TestApp::spawn().await;
    let success = app
        .client
        .get("/.well-known/openid-configuration")
        .send()
        .await;
    success.assert_status_is_ok();
    assert_security_headers(&success, "discovery");
    assert_eq!(
        header(&success, "content-security-policy").as_deref(),
        Some(API_CSP)
    );

    let error = app.post("/api/login", json!({"email": "x"})).await;
    assert_security_headers(&error, "400");
    assert_eq!(header(&error, "cache-control").as_deref(), Some("no-store"));
    assert_error(error, 400, "InvalidParameterException").await;

    let missing = app.client.get("/no/such/thing").send().await;
    assert_security_headers(&missing, "404");
    assert_eq!(
        header(&missing, "content-security-policy").as_deref(),
        Some(API_CSP)
    );
    assert_eq!(
        header(&missing, "cache-control").as_deref(),
        Some("no-store")
    );
    assert_error(missing, 404, "ResourceNotFoundException").await;

    let wrong_method = app.client.delete("/health/live").send().await;
    assert_security_headers(&wrong_method, "405");

    let spec = app.client.get("/openapi.json").send().await;
    spec.assert_status_is_ok();
    assert_security_headers(&spec, "/openapi.json");
    assert_eq!(
        header(&spec, "content-security-policy").as_deref(),
        Some(API_CSP)
    );

    let docs = app.client.get("/docs").send().await;
    docs.assert_status_is_ok();
    assert_security_headers(&docs, "/docs");
}

/// The contents of every inline `<script>` and `<style>` element of a page, read without
/// looking inside them for tags.
fn inline_elements(html: &str) -> Vec<(&'static str, &str)> {
    let mut found = Vec::new();
    let mut rest = html;
    while let Some((at, tag)) = ["script", "style"]
        .into_iter()
        .filter_map(|tag| rest.find(&format!("<{tag}")).map(|at| (at, tag)))
        .min()
    {
        let open = &rest[at..];
        let start = open.find('>').unwrap() + 1;
        let opening_tag = &open[..start];
        assert!(
            !opening_tag.contains("src="),
            "external script: {opening_tag}"
        );
        let end = open[start..].find(&format!("</{tag}>")).unwrap() + start;
        found.push((tag, &open[start..end]));
        rest = &open[end..];
    }
    found
}

#[tokio::test]
async fn the_docs_policy_allows_exactly_the_inline_code_the_page_has() {
    let app = TestApp::spawn().await;
    let docs = app.client.get("/docs/").send().await;
    docs.assert_status_is_ok();
    let csp = header(&docs, "content-security-policy").unwrap();
    let html = docs.0.into_body().into_string().await.unwrap();

    let directives: Vec<(&str, Vec<&str>)> = csp
        .split(';')
        .map(|d| {
            let mut words = d.split_whitespace();
            (words.next().unwrap(), words.collect())
        })
        .collect();
    let sources = |name: &str| {
        directives
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, s)| s.clone())
            .unwrap_or_else(|| panic!("no {name} in {csp}"))
    };
    assert_eq!(sources("default-src"), ["'none'"]);
    assert_eq!(sources("img-src"), ["'self'", "data:"]);
    assert_eq!(sources("connect-src"), ["'self'"]);
    assert_eq!(sources("frame-ancestors"), ["'none'"]);

    let elements = inline_elements(&html);
    assert!(
        elements.iter().any(|(tag, _)| *tag == "script"),
        "{html:.200}"
    );
    assert!(elements.iter().any(|(tag, _)| *tag == "style"));
    let (mut scripts, mut styles) = (Vec::new(), Vec::new());
    for (tag, content) in elements {
        let hash = STANDARD.encode(digest::digest(&digest::SHA256, content.as_bytes()));
        let source = format!("'sha256-{hash}'");
        let list = if tag == "script" {
            &mut scripts
        } else {
            &mut styles
        };
        list.push(source);
    }
    // Each inline element is allowed by its hash, and nothing else is allowed.
    assert_eq!(sources("script-src"), scripts);
    assert_eq!(sources("style-src"), styles);
    // Served from the binary: nothing is loaded from elsewhere.
    assert!(!html.contains("src=\"http") && !html.contains("href=\"http"));
}

#[tokio::test]
async fn strict_transport_security_only_when_the_public_url_is_https() {
    let app = TestApp::with_settings(&[("public_url", "https://id.example.org")]).await;
    for path in ["/health/live", "/no/such/thing", "/docs"] {
        let response = app.client.get(path).send().await;
        assert_eq!(
            header(&response, "strict-transport-security").as_deref(),
            Some("max-age=31536000"),
            "{path}"
        );
    }
}

fn assert_no_store(response: &TestResponse, what: &str) {
    assert_eq!(
        header(response, "cache-control").as_deref(),
        Some("no-store"),
        "{what}"
    );
}

#[tokio::test]
async fn answers_with_tokens_or_personal_data_are_never_stored() {
    let app = TestApp::spawn().await;
    let email = "ada@example.org";
    let login = app.login("nobody@example.org", PASSWORD).await;
    assert_no_store(&login, "failed login");
    app.confirmed_user(email, PASSWORD).await;
    let login = app.login(email, PASSWORD).await;
    assert_no_store(&login, "login");
    let tokens = json(login).await;
    let access = tokens["access_token"].as_str().unwrap();
    let refresh = app
        .post(
            "/api/refresh",
            json!({"refresh_token": tokens["refresh_token"]}),
        )
        .await;
    assert_no_store(&refresh, "refresh");
    refresh.assert_status_is_ok();

    for path in ["/api/account", "/api/api-tokens", "/api/allowed-hosts"] {
        let response = app.get_as(path, access).await;
        response.assert_status_is_ok();
        assert_no_store(&response, path);
    }
    let created = app.post_as("/api/api-tokens", access, json!({})).await;
    assert_no_store(&created, "new API token");
    let status = app
        .get_as("/authentication/api/check-auth-status/", access)
        .await;
    status.assert_status_is_ok();
    assert_no_store(&status, "check-auth-status");

    let compat = app
        .post(
            "/authentication/api/login/",
            json!({"email": email, "password": PASSWORD}),
        )
        .await;
    compat.assert_status_is_ok();
    assert_no_store(&compat, "compat login");
    let pair = app
        .post(
            "/authentication/api/token/",
            json!({"username": email, "password": PASSWORD}),
        )
        .await;
    assert_no_store(&pair, "compat token");
    let pair: Value = json(pair).await;
    for path in [
        "/authentication/api/token/refresh/",
        "/authentication/api/refresh/",
    ] {
        let response = app.post(path, json!({"refresh": pair["refresh"]})).await;
        assert_no_store(&response, path);
    }

    // Public keys and discovery may be cached, briefly.
    for path in [
        "/.well-known/jwks.json",
        "/.well-known/openid-configuration",
    ] {
        let response = app.client.get(path).send().await;
        assert_eq!(
            header(&response, "cache-control").as_deref(),
            Some("public, max-age=300"),
            "{path}"
        );
    }
}

#[tokio::test]
async fn cookie_secure_and_domain_come_from_the_settings_on_set_and_cleared_cookies() {
    let app =
        TestApp::with_settings(&[("cookie_secure", "true"), ("cookie_domain", "example.org")])
            .await;
    let tokens = app.signed_in("ada@example.org", PASSWORD).await;
    let login = app.login("ada@example.org", PASSWORD).await;
    let logout = app
        .post_as(
            "/api/logout",
            tokens["access_token"].as_str().unwrap(),
            json!({}),
        )
        .await;
    logout.assert_status_is_ok();
    for (what, response) in [("login", &login), ("logout", &logout)] {
        let cookies = set_cookies(response);
        for name in ["access_token", "refresh_token"] {
            let cookie = cookie(&cookies, name);
            assert!(cookie.has("Secure"), "{what} {name}: {cookie:?}");
            assert!(
                cookie.has("Domain=example.org"),
                "{what} {name}: {cookie:?}"
            );
            assert!(cookie.has("SameSite=Lax"), "{what} {name}: {cookie:?}");
        }
    }

    // By default (an http public URL): neither.
    let app = TestApp::spawn().await;
    app.confirmed_user("ada@example.org", PASSWORD).await;
    let login = app.login("ada@example.org", PASSWORD).await;
    let cookies = set_cookies(&login);
    for name in ["access_token", "refresh_token"] {
        let cookie = cookie(&cookies, name);
        assert!(!cookie.has("Secure"), "{cookie:?}");
        assert!(
            !cookies.iter().any(|c| c.contains("Domain=")),
            "{cookies:?}"
        );
    }
}

/// A real server on loopback (the peer is 127.0.0.1), one request per second per client with a
/// burst of ten. Returns the statuses of five requests from client B, sent right after client A
/// was refused.
async fn statuses_of_b_after_a_is_limited(trusted_proxies: Option<&str>) -> Vec<u16> {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut command = authpool(dir.path());
    command
        .env("AUTHPOOL_DATABASE_URL", &db.url)
        .env("AUTHPOOL_BIND", format!("127.0.0.1:{port}"))
        .env("AUTHPOOL_IP_RATE_LIMIT", "1")
        .env("AUTHPOOL_LOG_LEVEL", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    if let Some(proxies) = trusted_proxies {
        command.env("AUTHPOOL_TRUSTED_PROXIES", proxies);
    }
    let mut server = KillOnDrop(command.spawn().unwrap());
    wait_until_live(port, &mut server).await;

    let http = reqwest::Client::new();
    let resend = |client: &'static str| {
        http.post(format!("http://127.0.0.1:{port}/api/validate/resend"))
            .header("X-Forwarded-For", format!("{client}, 127.0.0.1"))
            .json(&json!({"email": "nobody@example.org"}))
            .send()
    };
    let mut a_limited = false;
    for _ in 0..50 {
        if resend("198.51.100.1").await.unwrap().status() == 429 {
            a_limited = true;
            break;
        }
    }
    assert!(a_limited, "client A was never limited");
    let mut statuses = Vec::new();
    for _ in 0..5 {
        statuses.push(resend("198.51.100.2").await.unwrap().status().as_u16());
    }
    statuses
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_forwarded_client_has_its_own_bucket() {
    let statuses = statuses_of_b_after_a_is_limited(Some("127.0.0.1")).await;
    assert_eq!(statuses, [200; 5]);
}

#[tokio::test]
async fn without_trusted_proxies_forwarded_for_is_ignored() {
    // The same headers from a peer that is not a trusted proxy: one bucket, the peer's. Five
    // more requests could only all pass if five seconds went by.
    let statuses = statuses_of_b_after_a_is_limited(None).await;
    assert!(
        statuses.iter().filter(|s| **s == 429).count() >= 3,
        "{statuses:?}"
    );
}
