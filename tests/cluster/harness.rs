//! Replicas of the real binary on one database, one SMTP server for all of them, and the
//! requests, mail and database reads the tests share.

use std::{
    fs::File,
    future::Future,
    ops::{Deref, Index},
    path::Path,
    process::Stdio,
    sync::Arc,
    time::{Duration, Instant},
};

use base64::Engine as _;
use entity::{mail_outbox, user};
use sea_orm::{
    ColumnTrait, Database, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter,
};
use serde_json::{Value, json};
use tokio::sync::{Barrier, Semaphore, SemaphorePermit};

use crate::{
    db::TestDb,
    process::{KillOnDrop, authpool, run, sigterm, wait_for_exit, wait_until_live},
    smtp::{Mail, SmtpServer, free_port},
};

/// A password the policy accepts.
pub const PASSWORD: &str = "correct horse battery staple";

/// The public URL of every replica. Replicas behind one load balancer share it: it is the
/// issuer each token names and each replica checks.
const PUBLIC_URL: &str = "http://id.authpool.test";

/// The longest a test waits for background work (mail delivery, key reloads) before failing.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// Tests running their processes at once. Each replica may open 16 PostgreSQL connections
/// (the server's default allows 100, shared with whatever else runs), and every process of
/// every test shares the machine's cores, which the tests' timings must survive.
static SLOTS: Semaphore = Semaphore::const_new(2);

/// An HTTP answer: its status and body.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: String,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("a JSON body ({e}): {}", self.body))
    }

    /// The `code` of an error body.
    pub fn code(&self) -> Option<String> {
        serde_json::from_str::<Value>(&self.body)
            .ok()?
            .get("code")?
            .as_str()
            .map(str::to_string)
    }

    /// Status and error code together, for one assertion.
    pub fn error(&self) -> (u16, Option<String>) {
        (self.status, self.code())
    }
}

/// What the tests expect of an error answer, in the shape of [`Answer::error`].
pub fn error(status: u16, code: &str) -> (u16, Option<String>) {
    (status, Some(code.to_string()))
}

/// Requests to one replica; cheap to clone into parallel tasks.
#[derive(Clone)]
pub struct Api {
    pub base: String,
    http: reqwest::Client,
}

impl Api {
    async fn send(&self, request: reqwest::RequestBuilder) -> Answer {
        let response = request.send().await.expect("the replica answers");
        let status = response.status().as_u16();
        let body = response.text().await.expect("a readable body");
        Answer { status, body }
    }

    pub async fn get(&self, path: &str) -> Answer {
        self.send(self.http.get(format!("{}{path}", self.base)))
            .await
    }

    pub async fn get_as(&self, path: &str, token: &str) -> Answer {
        self.send(
            self.http
                .get(format!("{}{path}", self.base))
                .bearer_auth(token),
        )
        .await
    }

    pub async fn post(&self, path: &str, body: Value) -> Answer {
        self.send(self.http.post(format!("{}{path}", self.base)).json(&body))
            .await
    }

    pub async fn post_as(&self, path: &str, token: &str, body: Value) -> Answer {
        self.send(
            self.http
                .post(format!("{}{path}", self.base))
                .bearer_auth(token)
                .json(&body),
        )
        .await
    }

    pub async fn register(&self, email: &str) -> Answer {
        self.post(
            "/api/register",
            json!({"email": email, "password": PASSWORD}),
        )
        .await
    }

    pub async fn login(&self, email: &str, password: &str) -> Answer {
        self.post("/api/login", json!({"email": email, "password": password}))
            .await
    }

    /// Signs in with [`PASSWORD`], which must succeed; returns the tokens.
    pub async fn tokens(&self, email: &str) -> Value {
        let answer = self.login(email, PASSWORD).await;
        assert_eq!(answer.status, 200, "sign-in of {email}: {}", answer.body);
        answer.json()
    }

    pub async fn refresh(&self, refresh_token: &str) -> Answer {
        self.post("/api/refresh", json!({"refresh_token": refresh_token}))
            .await
    }

    pub async fn confirm(&self, email: &str, code: &str) -> Answer {
        self.post(
            "/api/validate",
            json!({"user_name": email, "confirmation_code": code}),
        )
        .await
    }

    /// The sum of a metric's samples in `/metrics`.
    pub async fn metric(&self, name: &str) -> f64 {
        let answer = self.get("/metrics").await;
        assert_eq!(answer.status, 200);
        answer
            .body
            .lines()
            .filter(|line| {
                line.strip_prefix(name)
                    .is_some_and(|rest| rest.starts_with([' ', '{']))
            })
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }
}

/// One `authpool serve` process, killed on drop; its log is printed when a test fails.
pub struct Server {
    api: Api,
    name: String,
    log: std::path::PathBuf,
    child: KillOnDrop,
}

impl Server {
    async fn start(
        name: &str,
        database_url: &str,
        smtp_port: u16,
        dir: &Path,
        extra: &[(&str, &str)],
        http: &reqwest::Client,
    ) -> Server {
        let port = free_port();
        let log = dir.join(format!("{name}.log"));
        let mut command = authpool(dir);
        command
            .env("AUTHPOOL_BIND", format!("127.0.0.1:{port}"))
            .env("AUTHPOOL_PUBLIC_URL", PUBLIC_URL)
            .env("AUTHPOOL_DATABASE_URL", database_url)
            .env("AUTHPOOL_MAIL_URL", format!("smtp://127.0.0.1:{smtp_port}"))
            .env("AUTHPOOL_ARGON2_MEMORY_KIB", "1024")
            .env("AUTHPOOL_ARGON2_ITERATIONS", "1")
            // Every request comes from 127.0.0.1: the per-IP limit would answer bursts with 429.
            .env("AUTHPOOL_IP_RATE_LIMIT", "0")
            .env("AUTHPOOL_LOG_LEVEL", "warn");
        for (key, value) in extra {
            command.env(key, value);
        }
        let mut child = KillOnDrop(
            command
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(File::create(&log).expect("create the server's log file"))
                .spawn()
                .expect("start authpool"),
        );
        wait_until_live(port, &mut child).await;
        Server {
            api: Api {
                base: format!("http://127.0.0.1:{port}"),
                http: http.clone(),
            },
            name: name.to_string(),
            log,
            child,
        }
    }

    pub fn api(&self) -> &Api {
        &self.api
    }
}

impl Deref for Server {
    type Target = Api;

    fn deref(&self) -> &Api {
        &self.api
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            eprintln!("--- log of replica {} ---\n{log}", self.name);
        }
    }
}

/// Replicas on one database, sending mail to one SMTP server.
pub struct Cluster {
    // Dropped in this order: the processes, then what they used.
    servers: Vec<Server>,
    smtp: SmtpServer,
    conn: DatabaseConnection,
    db: TestDb,
    dir: tempfile::TempDir,
    _slot: SemaphorePermit<'static>,
}

impl Cluster {
    /// Starts `replicas` servers on `db`, one after the other: the first creates the schema,
    /// the signing key and the client id, and the others find them, as in a rolling start.
    pub async fn start(db: TestDb, replicas: usize, extra: &[(&str, &str)]) -> Cluster {
        Self::launch(db, replicas, extra, false).await
    }

    /// Starts `replicas` servers on `db` all at the same moment, as an orchestrator does.
    pub async fn start_together(db: TestDb, replicas: usize) -> Cluster {
        Self::launch(db, replicas, &[], true).await
    }

    async fn launch(
        db: TestDb,
        replicas: usize,
        extra: &[(&str, &str)],
        together: bool,
    ) -> Cluster {
        let slot = SLOTS
            .acquire()
            .await
            .expect("the semaphore is never closed");
        let dir = tempfile::tempdir().expect("a working folder");
        let smtp = SmtpServer::start();
        // A hung replica fails the test instead of hanging it.
        let http = reqwest::Client::builder()
            .timeout(DEADLINE)
            .build()
            .expect("an HTTP client");
        let names: Vec<String> = (0..replicas)
            .map(|i| char::from(b'A' + u8::try_from(i).expect("a few replicas")).to_string())
            .collect();
        let start = |name| Server::start(name, &db.url, smtp.port(), dir.path(), extra, &http);
        let servers = if together {
            futures_util::future::join_all(names.iter().map(String::as_str).map(start)).await
        } else {
            let mut servers = Vec::with_capacity(replicas);
            for name in &names {
                servers.push(start(name).await);
            }
            servers
        };
        let conn = Database::connect(&db.url)
            .await
            .expect("connect to the test database");
        Cluster {
            servers,
            smtp,
            conn,
            db,
            dir,
            _slot: slot,
        }
    }

    /// The replicas' database, for checks behind the API.
    pub fn db(&self) -> &DatabaseConnection {
        &self.conn
    }

    /// Runs an `authpool` command (e.g. `keys rotate`) on the replicas' database; it must
    /// succeed. Returns its standard output.
    pub fn command(&self, args: &[&str]) -> String {
        let output = run(authpool(self.dir.path())
            .env("AUTHPOOL_DATABASE_URL", &self.db.url)
            .args(args));
        assert!(output.status.success(), "authpool {args:?}: {output:?}");
        String::from_utf8(output.stdout).expect("UTF-8 output")
    }

    /// Every message the SMTP server has received.
    pub fn mails(&self) -> Vec<Mail> {
        self.smtp
            .messages()
            .iter()
            .map(|raw| Mail::parse(raw))
            .collect()
    }

    /// Waits until the SMTP server has received at least `n` messages.
    pub async fn wait_for_mails(&self, n: usize) {
        self.smtp.wait_for(n, DEADLINE).await;
    }

    /// The messages to `to`, once there are at least `n`.
    pub async fn mails_to(&self, to: &str, n: usize) -> Vec<Mail> {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let mails: Vec<Mail> = self
                .mails()
                .into_iter()
                .filter(|m| recipient(m).eq_ignore_ascii_case(to))
                .collect();
            if mails.len() >= n {
                return mails;
            }
            assert!(Instant::now() < deadline, "no mail #{n} to {to} in time");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The code in the `n`th message to `to` (from 1).
    pub async fn code(&self, to: &str, n: usize) -> String {
        self.mails_to(to, n).await[n - 1]
            .code()
            .expect("a code in the mail")
    }

    /// Registers `email` on replica `register_on` and confirms it, with the mailed code, on
    /// replica `confirm_on`.
    pub async fn confirmed_user(&self, email: &str, register_on: usize, confirm_on: usize) {
        let registered = self[register_on].register(email).await;
        assert_eq!(registered.status, 201, "{}", registered.body);
        let code = self.code(email, 1).await;
        let confirmed = self[confirm_on].confirm(email, &code).await;
        assert_eq!(confirmed.status, 200, "{}", confirmed.body);
    }

    /// The user with this email.
    pub async fn user(&self, email: &str) -> user::Model {
        user::Entity::find()
            .filter(user::Column::EmailKey.eq(email.to_lowercase()))
            .one(self.db())
            .await
            .expect("read users")
            .unwrap_or_else(|| panic!("no user {email}"))
    }

    /// Waits until the outbox has nothing left to send: every message sent or given up.
    pub async fn outbox_drained(&self) {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let pending = mail_outbox::Entity::find()
                .filter(mail_outbox::Column::SentAt.is_null())
                .filter(mail_outbox::Column::FailedAt.is_null())
                .count(self.db())
                .await
                .expect("count pending mail");
            if pending == 0 {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{pending} messages still pending in the outbox"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops every replica with SIGTERM and waits for each to exit 0. A stopping replica
    /// finishes the send in progress, so once this returns no message can still arrive.
    pub async fn stop(&mut self) {
        for server in &self.servers {
            sigterm(&server.child);
        }
        for server in &mut self.servers {
            let status = wait_for_exit(&mut server.child).await;
            assert_eq!(status.code(), Some(0), "replica {} exited", server.name);
        }
    }
}

impl Index<usize> for Cluster {
    type Output = Server;

    fn index(&self, i: usize) -> &Server {
        &self.servers[i]
    }
}

/// The address a message was sent to, as written in its `To` header.
pub fn recipient(mail: &Mail) -> String {
    mail.header("To")
        .unwrap_or_default()
        .trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .to_string()
}

/// Sends `n` requests, `request(i)` for each `i`, with all of them in flight together: each
/// task waits until all are ready, then sends. Returns the answers in the order of `i`.
pub async fn all_at_once<F, Fut>(n: usize, request: F) -> Vec<Answer>
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = Answer> + Send + 'static,
{
    let barrier = Arc::new(Barrier::new(n));
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let barrier = barrier.clone();
            let request = request(i);
            tokio::spawn(async move {
                barrier.wait().await;
                request.await
            })
        })
        .collect();
    let mut answers = Vec::with_capacity(n);
    for task in tasks {
        answers.push(task.await.expect("a request task"));
    }
    answers
}

/// How many answers have this status and error code.
pub fn count(answers: &[Answer], status: u16, code: &str) -> usize {
    answers
        .iter()
        .filter(|a| a.error() == error(status, code))
        .count()
}

/// The claims of a JWT the server issued (read, not verified).
pub fn claims(token: &str) -> Value {
    segment(token, 1)
}

/// The `kid` in a JWT's header.
pub fn kid(token: &str) -> String {
    segment(token, 0)["kid"]
        .as_str()
        .expect("a kid in the header")
        .to_string()
}

fn segment(token: &str, index: usize) -> Value {
    let part = token.split('.').nth(index).expect("a JWT has three parts");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .expect("base64url");
    serde_json::from_slice(&bytes).expect("JSON")
}

/// A string field of a JSON value (a token in a sign-in answer).
pub fn field<'a>(value: &'a Value, name: &str) -> &'a str {
    value[name]
        .as_str()
        .unwrap_or_else(|| panic!("no {name} in {value}"))
}

/// A six-digit code that is not `code`: `code` plus `offset` (1 or more), wrapping.
pub fn wrong_code(code: &str, offset: u32) -> String {
    let right: u32 = code.parse().expect("a six-digit code");
    format!("{:06}", (right + offset) % 1_000_000)
}
