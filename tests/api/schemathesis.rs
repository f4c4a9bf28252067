//! A schema-driven fuzz run over the whole OpenAPI document: schemathesis generates requests for
//! every operation from `openapi/openapi.json` (valid ones, invalid ones, and sequences that
//! follow the links between operations) and sends them to the real binary on loopback. It fails
//! on any 5xx, any response that breaks the documented schema (status code, content type,
//! headers, body), any request the document calls invalid that is answered 2xx, an
//! authenticated operation served without credentials, an unsupported method not answered 405
//! with `Allow`, and a created or deleted resource not found or still found.
//!
//! Ignored by default, because it takes about a minute: `.ci/run` runs it, and so can anyone:
//!
//! ```sh
//! cargo test --test api -- --ignored --exact schemathesis::schemathesis_finds_nothing_wrong
//! ```
//!
//! `AUTHPOOL_FUZZ_EXAMPLES` sets the cases per operation and phase (default 200) and
//! `AUTHPOOL_FUZZ_SEED` replays a run (the seed is printed at the end of each run). The pinned
//! schemathesis (`tests/schemathesis/requirements.txt`) is installed on first use under
//! `<target>/test-tools/`; its hooks, in `tests/schemathesis/authpool_hooks.py`, supply the
//! credentials and drop the two kinds of reported failure that are not the server's.
//!
//! A test rather than a script: it reuses what the other binary tests have (a fresh database,
//! SQLite or the PostgreSQL of `AUTHPOOL_TEST_DATABASE_URL`; a free port; a server killed however
//! the test ends; tools installed once per pin set), and cargo builds the binary it runs.

use std::{
    io::Write,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::OnceLock,
    time::{Duration, Instant},
};

use crate::{
    clients::{pip_tools, run},
    db::TestDb,
    process::{KillOnDrop, authpool, wait_until_live},
    smtp::free_port,
};

const SPEC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi/openapi.json");
const HOOKS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/schemathesis");

/// The whole run, on two busy shared cores with the default 200 examples, takes 40-90 s; the
/// limit is for a hung run, not a slow one.
const RUN_TIMEOUT: Duration = Duration::from_secs(900);

const PASSWORD: &str = "marzipan lantern quokka 7";
const LOGIN: &str = "fuzzer";
const LOGOUT_LOGIN: &str = "fuzzer-logout";
const INTROSPECTION_SECRET: &str = "introspection-secret-for-the-fuzz-run";

/// Every check schemathesis has, but two:
/// - `positive_data_acceptance`, which expects every request the schema allows to succeed. The
///   domain rules are stricter than a JSON schema can say (a well-formed email address, a
///   password that is not easy to guess, the right code, a host that exists in the caller's
///   list), so a schema-valid request is often rightly a 400, 401 or 404.
/// - `object_level_authorization`, which needs a second user's resources to be known to the
///   run; `tests/api/tokens.rs` and `hosts.rs` check that another user's key or host is 404.
const CHECKS: &str = "not_a_server_error,status_code_conformance,content_type_conformance,\
response_headers_conformance,response_schema_conformance,negative_data_rejection,\
missing_required_header,unsupported_method,allow_header_conformance,use_after_free,\
ensure_resource_availability,ignored_auth";

#[tokio::test]
#[ignore = "a minute or more of fuzzing; run by .ci/run (see the module's documentation)"]
async fn schemathesis_finds_nothing_wrong() {
    let tools = schemathesis_tools();
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let env = [
        ("AUTHPOOL_BIND", format!("127.0.0.1:{port}")),
        ("AUTHPOOL_PUBLIC_URL", base.clone()),
        ("AUTHPOOL_DATABASE_URL", db.url.clone()),
        (
            "AUTHPOOL_MAIL_URL",
            format!("file://{}", dir.path().join("mail").display()),
        ),
        ("AUTHPOOL_ARGON2_MEMORY_KIB", "1024".into()),
        ("AUTHPOOL_ARGON2_ITERATIONS", "1".into()),
        ("AUTHPOOL_INTROSPECTION_SECRET", INTROSPECTION_SECRET.into()),
        // Thousands of requests from one address: the per-IP limits would answer most of them
        // 429 and leave the operations behind them untested.
        ("AUTHPOOL_IP_RATE_LIMIT", "0".into()),
        ("AUTHPOOL_INTROSPECTION_RATE_LIMIT", "0".into()),
        ("AUTHPOOL_LOG_LEVEL", "warn".into()),
    ];

    for (email, username) in [
        ("fuzz@example.org", LOGIN),
        ("fuzz-logout@example.org", LOGOUT_LOGIN),
    ] {
        create_confirmed_user(dir.path(), &env, email, username);
    }

    let log_path = dir.path().join("server.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut child = KillOnDrop(
        authpool(dir.path())
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start authpool"),
    );
    wait_until_live(port, &mut child).await;

    let examples = std::env::var("AUTHPOOL_FUZZ_EXAMPLES").unwrap_or_else(|_| "200".into());
    let seed = std::env::var("AUTHPOOL_FUZZ_SEED").ok();
    let work = tempfile::tempdir().unwrap();
    let python_path = std::env::join_paths([tools.as_path(), Path::new(HOOKS)]).unwrap();
    let mut schemathesis = Command::new("python3");
    schemathesis
        .args(["-m", "schemathesis.cli", "run", SPEC, "--url", &base])
        .args(["--checks", CHECKS, "--max-examples", &examples])
        // One worker: the machine's other core runs the server. And schemathesis's workers are
        // threads, whose concurrent `ast.parse` (hypothesis describing its strategies) fails
        // under CPython 3.11 with "AST constructor recursion depth mismatch".
        .args(["--workers", "1"])
        .args([
            "--request-timeout",
            "30",
            "--generation-database",
            "none",
            "--no-color",
        ])
        .args(seed.iter().flat_map(|seed| ["--seed", seed]))
        // A folder of its own for hypothesis's example database and any report.
        .current_dir(work.path())
        .env("PYTHONPATH", python_path)
        .env("SCHEMATHESIS_HOOKS", "authpool_hooks")
        .env("AUTHPOOL_BASE_URL", &base)
        .env("AUTHPOOL_FUZZ_LOGIN", LOGIN)
        .env("AUTHPOOL_FUZZ_LOGOUT_LOGIN", LOGOUT_LOGIN)
        .env("AUTHPOOL_FUZZ_PASSWORD", PASSWORD)
        .env("AUTHPOOL_FUZZ_INTROSPECTION", INTROSPECTION_SECRET);
    let started = Instant::now();
    // Panics with schemathesis's report (each failure with a curl line to reproduce it) unless
    // it found nothing.
    let output = run("schemathesis", &mut schemathesis, RUN_TIMEOUT);
    let report = String::from_utf8_lossy(&output.stdout);
    let summary_start = report.find("SUMMARY").unwrap_or(0);
    println!(
        "schemathesis passed in {:?}:\n{}",
        started.elapsed(),
        &report[summary_start..]
    );

    // A panic is answered 500 (which the run would have reported), but say so plainly too.
    drop(child);
    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
    assert!(
        !log.contains("panicked"),
        "the server panicked during the run:\n{log}"
    );
}

/// `authpool user create EMAIL --password-stdin --confirmed --username USERNAME`.
fn create_confirmed_user(dir: &Path, env: &[(&str, String)], email: &str, username: &str) {
    let mut command = authpool(dir);
    command
        .envs(env.iter().map(|(k, v)| (k, v)))
        .args(["user", "create", email, "--password-stdin", "--confirmed"])
        .args(["--username", username])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().expect("run authpool user create");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(PASSWORD.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "authpool user create {email}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// `PYTHONPATH` with the pinned schemathesis, installed once per machine.
fn schemathesis_tools() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        pip_tools(
            "schemathesis",
            &Path::new(HOOKS).join("requirements.txt"),
            "the schemathesis run needs Python 3.10+ with pip",
        )
    })
}
