//! Process-level tests of what authpool claims about failures: killed with SIGKILL it loses
//! nothing it acknowledged, an SMTP outage delays mail but loses none, and a database outage
//! answers 503 and heals by itself.
//!
//! They run the real binary against real servers on loopback, take a minute or two each, and
//! are therefore `#[ignore]`d: `.ci/run` runs them with `cargo test --test outages -- --ignored`,
//! on SQLite and again on PostgreSQL (`AUTHPOOL_TEST_DATABASE_URL`).

#[allow(dead_code)]
#[path = "../api/db.rs"]
mod db;
#[path = "../api/process.rs"]
mod process;
#[allow(dead_code)]
#[path = "../api/smtp.rs"]
mod smtp;

mod crash;
mod database_outage;
mod postgres;
mod smtp_outage;

use std::{
    fs::{File, OpenOptions},
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

use serde_json::Value;

use crate::process::{KillOnDrop, authpool, wait_until_live};

/// A password the policy accepts.
pub const PASSWORD: &str = "correct horse battery staple";

/// One test at a time: each loads the machine on purpose and some assert response times.
/// (A tokio mutex: the guard is held across awaits, and is released even by a failing test.)
pub async fn one_at_a_time() -> tokio::sync::MutexGuard<'static, ()> {
    static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    SERIAL.lock().await
}

/// How the binary is started: the settings every start of one test shares.
pub struct Config {
    pub database_url: String,
    pub mail_url: String,
    /// Further `AUTHPOOL_*` variables.
    pub extra: Vec<(&'static str, String)>,
}

/// The `authpool` binary serving on a fixed loopback port, its standard error appended to a log
/// file that outlives restarts (so a panic in any generation is found at the end).
pub struct Authpool {
    pub child: KillOnDrop,
    pub port: u16,
    pub base: String,
    config: Config,
    dir: PathBuf,
}

impl Authpool {
    /// Starts the binary in `dir` on `port` and waits until it is live.
    pub async fn start(dir: &Path, port: u16, config: Config) -> Authpool {
        let child = spawn(dir, port, &config).await;
        Authpool {
            child,
            port,
            base: format!("http://127.0.0.1:{port}"),
            config,
            dir: dir.to_path_buf(),
        }
    }

    /// SIGKILL (what `Child::kill` sends): no shutdown code runs, as in a crash or an OOM kill.
    pub fn kill(&mut self) {
        self.child.kill().expect("SIGKILL authpool");
        self.child.wait().expect("reap authpool");
    }

    /// Starts a new process on the same port, database and log, and waits until it is live.
    pub async fn restart(&mut self) {
        self.child = spawn(&self.dir, self.port, &self.config).await;
    }

    /// Everything the processes wrote to standard error so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(log_path(&self.dir)).unwrap_or_default()
    }

    /// Fails when any generation of the process panicked.
    pub fn assert_no_panic(&self) {
        let log = self.log();
        assert!(
            !log.contains("panicked"),
            "authpool panicked; its standard error:\n{log}"
        );
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

fn log_path(dir: &Path) -> PathBuf {
    dir.join("authpool.stderr")
}

async fn spawn(dir: &Path, port: u16, config: &Config) -> KillOnDrop {
    let log: File = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log_path(dir))
        .expect("open the server log");
    let mut command = authpool(dir);
    command
        .env("AUTHPOOL_BIND", format!("127.0.0.1:{port}"))
        .env("AUTHPOOL_PUBLIC_URL", format!("http://127.0.0.1:{port}"))
        .env("AUTHPOOL_DATABASE_URL", &config.database_url)
        .env("AUTHPOOL_MAIL_URL", &config.mail_url)
        .env("AUTHPOOL_ARGON2_MEMORY_KIB", "64")
        .env("AUTHPOOL_ARGON2_ITERATIONS", "1")
        // The load comes from one loopback address, far above the default per-IP limit.
        .env("AUTHPOOL_IP_RATE_LIMIT", "0")
        .env("AUTHPOOL_LOG_LEVEL", "warn");
    for (key, value) in &config.extra {
        command.env(key, value);
    }
    let child = command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(log))
        .spawn()
        .expect("start authpool");
    let mut child = KillOnDrop(child);
    wait_until_live(port, &mut child).await;
    child
}

/// A client that never waits forever on a request.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("HTTP client")
}

/// POSTs JSON; `None` when no answer came (connection refused or cut).
pub async fn post(client: &reqwest::Client, url: &str, body: &Value) -> Option<(u16, Value)> {
    let response = client.post(url).json(body).send().await.ok()?;
    let status = response.status().as_u16();
    let body = response.json().await.unwrap_or(Value::Null);
    Some((status, body))
}

/// The bare address in a `To:` header (`Name <a@b>` or `a@b`).
pub fn address(header: &str) -> String {
    let header = header.trim();
    match (header.rfind('<'), header.rfind('>')) {
        (Some(start), Some(end)) if start < end => header[start + 1..end].to_string(),
        _ => header.to_string(),
    }
}
