//! The logs never hold a secret: the real binary, at the most verbose level (`trace`) in JSON,
//! runs every flow that handles a password, a code or a token on both surfaces, with mail
//! through an SMTP server that requires a password; then its whole output is searched for every
//! secret it was given or gave out.
//!
//! The test also proves that the logs are not simply empty: every response's `X-Request-Id` has
//! its access line, with the route template and without the query string.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::{
    db::TestDb,
    process::{KillOnDrop, authpool, wait_for_exit, wait_until_live},
    smtp::{Mail, SmtpServer, free_port, tools_dir},
};

const SMTP_USER: &str = "authpool-mailer";
const SMTP_PASSWORD: &str = "Smtp-Pass-9c1e5b7a30d2";
const INTROSPECTION_SECRET: &str = "Introspection-Secret-e4b8a1f0c7d3";
const WRONG_INTROSPECTION_SECRET: &str = "Wrong-Introspection-Secret-1d7c9e2a";
const WRONG_PASSWORD: &str = "Wrong-Guess-Secret-5a9e1c37b2";
const CLIENT_REQUEST_ID: &str = "log-secrets-test.client_id-1";

/// An SMTP server on loopback that takes mail only after `AUTH` with the right password:
/// aiosmtpd's controller with an authenticator (its command line has no AUTH option).
struct AuthSmtp {
    child: Child,
    port: u16,
    folder: tempfile::TempDir,
}

const AUTH_SMTP_SCRIPT: &str = r#"
import os, sys, threading
from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Mailbox
from aiosmtpd.smtp import AuthResult, LoginPassword

user = os.environ["SMTP_USER"].encode()
password = os.environ["SMTP_PASSWORD"].encode()

def authenticator(server, session, envelope, mechanism, auth_data):
    ok = (isinstance(auth_data, LoginPassword)
          and auth_data.login == user and auth_data.password == password)
    return AuthResult(success=ok)

Controller(Mailbox(sys.argv[2]), hostname="127.0.0.1", port=int(sys.argv[1]),
           authenticator=authenticator, auth_required=True, auth_require_tls=False).start()
threading.Event().wait()
"#;

impl AuthSmtp {
    fn start() -> AuthSmtp {
        // Installs aiosmtpd under the target folder when python3 lacks it.
        drop(SmtpServer::start());
        let folder = tempfile::tempdir().unwrap();
        let port = free_port();
        let child = Command::new("python3")
            .args(["-W", "ignore", "-c", AUTH_SMTP_SCRIPT])
            .arg(port.to_string())
            .arg(folder.path().join("maildir"))
            .env("PYTHONPATH", tools_dir().join("python"))
            .env("SMTP_USER", SMTP_USER)
            .env("SMTP_PASSWORD", SMTP_PASSWORD)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start python3 with aiosmtpd");
        let mut server = AuthSmtp {
            child,
            port,
            folder,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        while std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            assert!(
                server.child.try_wait().unwrap().is_none(),
                "the SMTP server exited"
            );
            assert!(Instant::now() < deadline, "the SMTP server did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    fn messages(&self) -> Vec<Mail> {
        let maildir = self.folder.path().join("maildir");
        let mut files: Vec<PathBuf> = ["new", "cur"]
            .iter()
            .filter_map(|sub| std::fs::read_dir(maildir.join(sub)).ok())
            .flatten()
            .flatten()
            .map(|entry| entry.path())
            .collect();
        files.sort_by_key(|path| {
            std::fs::metadata(path)
                .and_then(|m| m.modified())
                .unwrap_or(std::time::UNIX_EPOCH)
        });
        files
            .iter()
            .filter_map(|path| std::fs::read_to_string(path).ok())
            .map(|raw| Mail::parse(&raw.replace("\r\n", "\n").replace('\n', "\r\n")))
            .collect()
    }

    /// The `n`th message (from 1) to this address, waiting up to 10 s for it.
    async fn mail(&self, to: &str, n: usize) -> Mail {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let mut mails: Vec<Mail> = self
                .messages()
                .into_iter()
                .filter(|m| m.header("To").is_some_and(|h| h.contains(to)))
                .collect();
            if mails.len() >= n {
                return mails.swap_remove(n - 1);
            }
            assert!(Instant::now() < deadline, "no mail #{n} to {to}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for AuthSmtp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One answer: status, JSON body (Null when not JSON), and the headers that matter here.
struct Answer {
    status: StatusCode,
    body: Value,
    headers: reqwest::header::HeaderMap,
}

/// The client side of the run: remembers every secret it handles and every request id.
struct Run {
    base: String,
    http: reqwest::Client,
    /// (what, value)
    secrets: Vec<(String, String)>,
    /// Six-digit codes, searched for apart (they are short; see `assert_absent`).
    codes: Vec<(String, String)>,
    /// Request id → (method, path as sent).
    requests: BTreeMap<String, (String, String)>,
}

impl Run {
    fn secret(&mut self, what: &str, value: &str) {
        assert!(!value.is_empty(), "{what} is empty");
        self.secrets.push((what.to_string(), value.to_string()));
    }

    /// A JWT: the whole token, and its payload and signature apart (a log could show a part).
    fn token(&mut self, what: &str, value: &Value) -> String {
        let token = value
            .as_str()
            .unwrap_or_else(|| panic!("{what}: {value}"))
            .to_string();
        self.secret(what, &token);
        let parts: Vec<&str> = token.split('.').collect();
        assert_eq!(parts.len(), 3, "{what} is a JWT");
        self.secret(&format!("{what} payload"), parts[1]);
        self.secret(&format!("{what} signature"), parts[2]);
        token
    }

    fn code(&mut self, what: &str, code: &str) {
        assert_eq!(code.len(), 6, "{what}");
        self.codes.push((what.to_string(), code.to_string()));
    }

    async fn send(
        &mut self,
        method: Method,
        path: &str,
        bearer: Option<&str>,
        body: Option<Value>,
        extra: &[(&str, &str)],
    ) -> Answer {
        let mut request = self
            .http
            .request(method.clone(), format!("{}{path}", self.base));
        if let Some(token) = bearer {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        for (name, value) in extra {
            request = request.header(*name, *value);
        }
        let response = request.send().await.expect("request");
        let status = response.status();
        let headers = response.headers().clone();
        let id = headers
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_else(|| panic!("{method} {path}: no X-Request-Id"))
            .to_string();
        assert!(
            self.requests
                .insert(id.clone(), (method.to_string(), path.to_string()))
                .is_none(),
            "request id {id} given twice"
        );
        let text = response.text().await.unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Answer {
            status,
            body,
            headers,
        }
    }

    async fn post(&mut self, path: &str, body: Value) -> Answer {
        self.send(Method::POST, path, None, Some(body), &[]).await
    }

    async fn post_as(&mut self, path: &str, token: &str, body: Value) -> Answer {
        self.send(Method::POST, path, Some(token), Some(body), &[])
            .await
    }

    async fn get_as(&mut self, path: &str, token: &str) -> Answer {
        self.send(Method::GET, path, Some(token), None, &[]).await
    }
}

fn expect(answer: &Answer, status: u16, what: &str) {
    assert_eq!(answer.status.as_u16(), status, "{what}: {}", answer.body);
}

/// A six-digit code other than `code`, for wrong attempts.
fn other_code(code: &str) -> String {
    let n: u32 = code.parse().unwrap();
    format!("{:06}", (n + 500_001) % 1_000_000)
}

/// The link to `/api/validate` in a confirmation email.
fn link_in(mail: &Mail, base: &str) -> String {
    mail.part("text/plain")
        .unwrap()
        .split_whitespace()
        .find(|w| w.starts_with(&format!("{base}/api/validate?")))
        .expect("a confirmation link")
        .to_string()
}

fn start_server(dir: &Path, db: &TestDb, smtp: &AuthSmtp, base: &str, port: u16) -> KillOnDrop {
    let stdout = std::fs::File::create(dir.join("stdout.log")).unwrap();
    let stderr = std::fs::File::create(dir.join("stderr.log")).unwrap();
    KillOnDrop(
        authpool(dir)
            .env("AUTHPOOL_BIND", format!("127.0.0.1:{port}"))
            .env("AUTHPOOL_PUBLIC_URL", base)
            .env("AUTHPOOL_DATABASE_URL", &db.url)
            .env(
                "AUTHPOOL_MAIL_URL",
                format!("smtp://{SMTP_USER}:{SMTP_PASSWORD}@127.0.0.1:{}", smtp.port),
            )
            .env("AUTHPOOL_INTROSPECTION_SECRET", INTROSPECTION_SECRET)
            .env("AUTHPOOL_ARGON2_MEMORY_KIB", "1024")
            .env("AUTHPOOL_ARGON2_ITERATIONS", "1")
            .env("AUTHPOOL_LOG_LEVEL", "trace")
            .env("AUTHPOOL_LOG_FORMAT", "json")
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .expect("start authpool"),
    )
}

#[tokio::test]
async fn no_secret_reaches_the_logs_even_at_trace_level() {
    let db = TestDb::new().await;
    let smtp = AuthSmtp::start();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut server = start_server(dir.path(), &db, &smtp, &base, port);
    wait_until_live(port, &mut server).await;

    let mut run = Run {
        base: base.clone(),
        http: reqwest::Client::new(),
        secrets: Vec::new(),
        codes: Vec::new(),
        requests: BTreeMap::new(),
    };
    for (what, value) in [
        ("SMTP password", SMTP_PASSWORD),
        ("introspection secret", INTROSPECTION_SECRET),
        ("wrong introspection secret", WRONG_INTROSPECTION_SECRET),
        ("wrong password", WRONG_PASSWORD),
    ] {
        run.secret(what, value);
    }
    let ada = "ada@example.org";
    let ada_old = "Ada-Old-Secret-4f1d9b2c71";
    let ada_new = "Ada-New-Secret-8e3a7c5106";
    let ada_reset = "Ada-Reset-Secret-2b6f0d9453";
    let grace = "grace@example.org";
    let grace_password = "Grace-Secret-7d2e9a4c18";
    let lin = "lin@example.org";
    let lin_password = "Lin-Secret-3c8f1b6e52";
    for (what, value) in [
        ("ada's first password", ada_old),
        ("ada's changed password", ada_new),
        ("ada's reset password", ada_reset),
        ("grace's password", grace_password),
        ("lin's password", lin_password),
    ] {
        run.secret(what, value);
    }

    // --- /api: register, confirm by code (a wrong one first) ------------------------------
    let answer = run
        .post("/api/register", json!({"email": ada, "password": ada_old}))
        .await;
    expect(&answer, 201, "register ada");
    let code = smtp.mail(ada, 1).await.code().expect("a code");
    run.code("ada's sign-up code", &code);
    let wrong = other_code(&code);
    run.code("a wrong sign-up code", &wrong);
    let answer = run
        .post(
            "/api/validate",
            json!({"user_name": ada, "confirmation_code": wrong}),
        )
        .await;
    expect(&answer, 400, "wrong code");
    let answer = run
        .post(
            "/api/validate",
            json!({"user_name": ada, "confirmation_code": code}),
        )
        .await;
    expect(&answer, 200, "confirm ada by code");

    // --- confirm by the emailed link: the code in the query string -------------------------
    let answer = run
        .post(
            "/api/register",
            json!({"email": grace, "password": grace_password}),
        )
        .await;
    expect(&answer, 201, "register grace");
    let mail = smtp.mail(grace, 1).await;
    run.code("grace's sign-up code", &mail.code().unwrap());
    let link = link_in(&mail, &base);
    let path = link.strip_prefix(&base).unwrap().to_string();
    let answer = run
        .send(Method::GET, &path, None, None, &[("accept", "text/html")])
        .await;
    expect(&answer, 200, "confirm grace by link");

    // --- sign-in, refresh, account ---------------------------------------------------------
    let answer = run
        .post(
            "/api/login",
            json!({"email": ada, "password": WRONG_PASSWORD}),
        )
        .await;
    expect(&answer, 401, "wrong password");
    let answer = run
        .post("/api/login", json!({"email": ada, "password": ada_old}))
        .await;
    expect(&answer, 200, "login ada");
    run.token("login id token", &answer.body["id_token"]);
    let access = run.token("login access token", &answer.body["access_token"]);
    let refresh = run.token("login refresh token", &answer.body["refresh_token"]);
    assert!(answer.headers.get("set-cookie").is_some());

    let answer = run
        .post("/api/refresh", json!({"refresh_token": refresh}))
        .await;
    expect(&answer, 200, "refresh");
    let id_token = run.token("refreshed id token", &answer.body["id_token"]);
    let access2 = run.token("refreshed access token", &answer.body["access_token"]);
    run.token("refreshed refresh token", &answer.body["refresh_token"]);
    let answer = run.get_as("/api/account", &access2).await;
    expect(&answer, 200, "account by access token");
    let answer = run.get_as("/api/account", &id_token).await;
    expect(&answer, 200, "account by id token");
    // The first access token still works: refresh keeps the session.
    let answer = run.get_as("/api/account", &access).await;
    expect(&answer, 200, "account by the first access token");

    // --- password change (a wrong old password first) --------------------------------------
    let change = |old: &str| json!({"old_password": old, "new_password1": ada_new, "new_password2": ada_new});
    let answer = run
        .post_as("/api/password/change", &access2, change(WRONG_PASSWORD))
        .await;
    expect(&answer, 400, "change with a wrong old password");
    let answer = run
        .post_as("/api/password/change", &access2, change(ada_old))
        .await;
    expect(&answer, 200, "change password");

    // --- reset request and confirmation (a wrong code first) -------------------------------
    let answer = run.post("/api/password/reset", json!({"email": ada})).await;
    expect(&answer, 200, "reset request");
    let reset_code = smtp.mail(ada, 2).await.code().unwrap();
    run.code("ada's reset code", &reset_code);
    let confirm = |code: &str| {
        json!({"email": ada, "code": code,
               "new_password1": ada_reset, "new_password2": ada_reset})
    };
    let wrong = other_code(&reset_code);
    run.code("a wrong reset code", &wrong);
    let answer = run
        .post("/api/password/reset/confirm", confirm(&wrong))
        .await;
    expect(&answer, 400, "reset with a wrong code");
    let answer = run
        .post("/api/password/reset/confirm", confirm(&reset_code))
        .await;
    expect(&answer, 200, "reset");

    let answer = run
        .post("/api/login", json!({"email": ada, "password": ada_reset}))
        .await;
    expect(&answer, 200, "login after reset");
    run.token("second login id token", &answer.body["id_token"]);
    let access3 = run.token("second login access token", &answer.body["access_token"]);
    run.token("second login refresh token", &answer.body["refresh_token"]);

    // --- API token: create, use it in a path, introspect -----------------------------------
    let answer = run
        .post_as("/api/api-tokens", &access3, json!({"name": "ci"}))
        .await;
    expect(&answer, 201, "create an API token");
    let api_token = answer.body["token"].as_str().unwrap().to_string();
    run.secret("API token", &api_token);
    let key = answer.body["key"].as_str().unwrap().to_string();
    let answer = run
        .get_as(&format!("/api/api-tokens/{key}"), &access3)
        .await;
    expect(&answer, 200, "read the API token");
    let answer = run
        .post_as(
            "/api/api-tokens/introspect",
            INTROSPECTION_SECRET,
            json!({"token": api_token}),
        )
        .await;
    expect(&answer, 200, "introspect");
    assert_eq!(answer.body["active"], true);
    let answer = run
        .post_as(
            "/api/api-tokens/introspect",
            WRONG_INTROSPECTION_SECRET,
            json!({"token": api_token}),
        )
        .await;
    assert!(
        answer.status.is_client_error(),
        "a wrong introspection secret"
    );

    // --- email change and its verification code --------------------------------------------
    let ada2 = "ada.lovelace@example.org";
    let answer = run
        .send(
            Method::PATCH,
            "/api/account",
            Some(&access3),
            Some(json!({"email": ada2})),
            &[],
        )
        .await;
    expect(&answer, 200, "change email");
    let verify_code = smtp.mail(ada2, 1).await.code().unwrap();
    run.code("ada's verification code", &verify_code);
    let answer = run
        .post_as(
            "/api/verify/email",
            &access3,
            json!({"verification_code": verify_code}),
        )
        .await;
    expect(&answer, 200, "verify email");
    let answer = run.post_as("/api/logout", &access3, json!({})).await;
    expect(&answer, 200, "logout");
    let answer = run.get_as("/api/account", &access3).await;
    expect(&answer, 401, "a revoked token");

    // --- compat surface ----------------------------------------------------------------------
    let compat = |path: &str| format!("/authentication/api/{path}");
    let answer = run
        .post(
            &compat("register/"),
            json!({"email": lin, "password": lin_password, "username": "lin",
                   "first_name": "Lin", "last_name": "Huiyin",
                   "organizationType": "research", "organizationName": "Tsinghua",
                   "country": "CN"}),
        )
        .await;
    expect(&answer, 201, "compat register");
    let code = smtp.mail(lin, 1).await.code().unwrap();
    run.code("lin's sign-up code", &code);
    let answer = run
        .post(
            "/api/validate",
            json!({"user_name": lin, "confirmation_code": code}),
        )
        .await;
    expect(&answer, 200, "confirm lin");
    let answer = run
        .post(
            &compat("login/"),
            json!({"email": lin, "password": WRONG_PASSWORD}),
        )
        .await;
    expect(&answer, 401, "compat wrong password");
    let answer = run
        .post(
            &compat("login/"),
            json!({"email": lin, "password": lin_password}),
        )
        .await;
    expect(&answer, 200, "compat login");
    let login_access = run.token("compat login access token", &answer.body["access_token"]);
    let login_refresh = run.token("compat login refresh token", &answer.body["refresh_token"]);
    let answer = run
        .post(
            &compat("token/"),
            json!({"username": "lin", "password": lin_password}),
        )
        .await;
    expect(&answer, 200, "compat token");
    run.token("compat access", &answer.body["access"]);
    let first_refresh = run.token("compat refresh", &answer.body["refresh"]);
    let answer = run
        .post(&compat("token/refresh/"), json!({"refresh": first_refresh}))
        .await;
    expect(&answer, 200, "compat token refresh");
    run.token("compat refreshed access", &answer.body["access"]);
    let second_refresh = run.token("compat refreshed refresh", &answer.body["refresh"]);
    let answer = run
        .post(&compat("refresh/"), json!({"refresh": second_refresh}))
        .await;
    expect(&answer, 200, "compat refresh");
    let access = run.token("compat refreshed access 2", &answer.body["access"]);
    run.token("compat refreshed refresh 2", &answer.body["refresh"]);
    let answer = run.get_as(&compat("check-auth-status/"), &access).await;
    expect(&answer, 200, "check auth status");
    // A retired refresh token again: reuse detection revokes that session (and logs it).
    let answer = run
        .post(&compat("token/refresh/"), json!({"refresh": first_refresh}))
        .await;
    expect(&answer, 401, "reused refresh token");
    let answer = run
        .post(&compat("request-reset/"), json!({"email": lin}))
        .await;
    expect(&answer, 200, "compat reset request");
    let code = smtp.mail(lin, 2).await.code().unwrap();
    run.code("lin's reset code", &code);
    let answer = run
        .post_as(
            &compat("logout/"),
            &login_access,
            json!({"refresh": login_refresh}),
        )
        .await;
    expect(&answer, 200, "compat logout");

    // --- a client's own request id is kept ----------------------------------------------------
    let answer = run
        .send(
            Method::GET,
            "/health/ready",
            None,
            None,
            &[("x-request-id", CLIENT_REQUEST_ID)],
        )
        .await;
    expect(&answer, 200, "ready");
    assert_eq!(answer.headers["x-request-id"], CLIENT_REQUEST_ID);

    // --- stop, then search everything the process wrote ---------------------------------------
    crate::process::sigterm(&server);
    assert_eq!(wait_for_exit(&mut server).await.code(), Some(0));
    let stdout = std::fs::read_to_string(dir.path().join("stdout.log")).unwrap();
    let stderr = std::fs::read_to_string(dir.path().join("stderr.log")).unwrap();
    let output = format!("{stdout}\n{stderr}");

    let lines: Vec<Value> = stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("not a JSON line: {l}")))
        .collect();
    assert!(
        stdout.trim().is_empty(),
        "unexpected standard output: {stdout}"
    );

    for (what, secret) in &run.secrets {
        if let Some(at) = output.find(secret.as_str()) {
            let line = output[..at].rsplit('\n').next().unwrap_or_default();
            panic!("{what} is in the logs, in the line starting: {line}");
        }
    }
    assert_codes_absent(&run.codes, &lines);
    assert_access_lines(&run, &lines);
}

/// Codes are six digits: a log line may hold six digits by chance (a timestamp's microseconds).
/// So the `timestamp` field is left out, and a code counts only as a whole number.
fn assert_codes_absent(codes: &[(String, String)], lines: &[Value]) {
    for line in lines {
        let mut line = line.clone();
        line.as_object_mut().unwrap().remove("timestamp");
        let text = line.to_string();
        let numbers: Vec<&str> = text
            .split(|c: char| !c.is_ascii_digit())
            .filter(|n| !n.is_empty())
            .collect();
        for (what, code) in codes {
            assert!(
                !numbers.contains(&code.as_str()),
                "{what} in the log line {text}"
            );
        }
    }
}

/// Every request made has exactly one access line, under its request id, naming the route
/// template and nothing of the raw path.
fn assert_access_lines(run: &Run, lines: &[Value]) {
    let access: Vec<&Value> = lines
        .iter()
        .filter(|l| l["target"] == "authpool::access")
        .collect();
    assert!(
        access.len() >= run.requests.len(),
        "{} access lines",
        access.len()
    );
    let spec: Value = serde_json::from_str(&authpool::api::spec_json()).unwrap();
    for line in &access {
        for field in ["method", "route", "status", "latency_ms"] {
            assert!(!line[field].is_null(), "{field} missing: {line}");
        }
        assert_eq!(line["level"], "INFO", "{line}");
        let route = line["route"].as_str().unwrap();
        assert!(
            route == "unmatched" || spec["paths"].get(route).is_some(),
            "{route} is not a template"
        );
    }
    for (id, (method, path)) in &run.requests {
        let matching: Vec<&&Value> = access
            .iter()
            .filter(|l| l["span"]["request_id"] == id.as_str())
            .collect();
        assert_eq!(matching.len(), 1, "access line of {method} {path} ({id})");
        let line = matching[0];
        assert_eq!(line["method"], method.as_str(), "{line}");
        let template = line["route"].as_str().unwrap();
        let bare = path.split('?').next().unwrap().trim_end_matches('/');
        let fits = template.split('/').count() == bare.split('/').count()
            && template
                .split('/')
                .zip(bare.split('/'))
                .all(|(t, p)| t == p || t.starts_with('{'));
        assert!(fits, "{path} logged as {template}");
    }
    assert!(
        run.requests.contains_key(CLIENT_REQUEST_ID),
        "the client's request id was not kept"
    );
    // The confirmation link, query string and all, is logged as its bare route.
    assert!(
        access
            .iter()
            .any(|l| l["method"] == "GET" && l["route"] == "/api/validate")
    );
}
