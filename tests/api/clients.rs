//! Clients generated from the committed OpenAPI document (`openapi/openapi.json`) run the whole
//! register → validate → login → account → refresh → logout flow against the real binary:
//! `openapi-python-client` for Python, `openapi-typescript` + `openapi-fetch` for TypeScript
//! (type-checked with `tsc --strict` first, so a spec change that breaks the types fails here).
//!
//! The scripts and pinned tool versions live in `tests/clients/`. The tools are installed on
//! first use under `<target>/test-tools/` (a new folder whenever the pins change), so the tests
//! need `python3` with `pip`, and `node` with `npm`; without them they fail, they do not skip.

use std::{
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
    sync::OnceLock,
    time::{Duration, Instant},
};

use crate::{
    db::TestDb,
    process::{KillOnDrop, authpool, wait_until_live},
    smtp::{free_port, tools_dir},
};

const SPEC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi/openapi.json");
const PYTHON: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients/python");
const TYPESCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients/typescript");

/// Installing from a registry can be slow on a cold cache; anything else is quick.
const INSTALL_TIMEOUT: Duration = Duration::from_secs(600);
const GENERATE_TIMEOUT: Duration = Duration::from_secs(120);
const FLOW_TIMEOUT: Duration = Duration::from_secs(90);

#[tokio::test]
async fn python_client_generated_from_the_spec_runs_the_whole_flow() {
    let tools = python_tools();
    let generated = tempfile::tempdir().unwrap();
    let generate = run(
        "openapi-python-client generate",
        Command::new("python3")
            .args(["-m", "openapi_python_client", "generate", "--path", SPEC])
            .args(["--meta", "none", "--output-path"])
            .arg(generated.path().join("authpool_client"))
            .arg("--config")
            .arg(Path::new(PYTHON).join("config.yaml"))
            .env("PYTHONPATH", tools),
        GENERATE_TIMEOUT,
    );
    // The generator skips what it cannot parse with only a warning (a body type, a model), and
    // the flow may still pass without it: any warning fails the test.
    let said = String::from_utf8_lossy(&generate.stdout).to_string()
        + &String::from_utf8_lossy(&generate.stderr);
    assert!(
        !said.to_ascii_lowercase().contains("warning"),
        "openapi-python-client warned about the spec:\n{said}"
    );

    let server = Server::start().await;
    let python_path =
        std::env::join_paths([generated.path(), tools.as_path()]).expect("PYTHONPATH");
    let flow = run(
        "flow.py",
        Command::new("python3")
            .arg(Path::new(PYTHON).join("flow.py"))
            .env("PYTHONPATH", python_path)
            .env("AUTHPOOL_BASE_URL", &server.base)
            .env("AUTHPOOL_MAIL_DIR", server.mail.path()),
        FLOW_TIMEOUT,
    );
    print!("{}", String::from_utf8_lossy(&flow.stdout));
}

#[tokio::test]
async fn typescript_client_generated_from_the_spec_type_checks_and_runs_the_whole_flow() {
    let modules = node_tools().join("node_modules");
    let work = tempfile::tempdir().unwrap();
    // `package.json` for `"type": "module"`; the modules are found through the link.
    for file in ["flow.ts", "tsconfig.json", "package.json"] {
        std::fs::copy(Path::new(TYPESCRIPT).join(file), work.path().join(file)).unwrap();
    }
    std::os::unix::fs::symlink(&modules, work.path().join("node_modules")).unwrap();
    run(
        "openapi-typescript",
        Command::new("node")
            .arg(modules.join("openapi-typescript/bin/cli.js"))
            .arg(SPEC)
            .arg("--output")
            .arg(work.path().join("schema.ts")),
        GENERATE_TIMEOUT,
    );
    run(
        "tsc (strict)",
        Command::new("node")
            .arg(modules.join("typescript/bin/tsc"))
            .arg("--project")
            .arg(work.path().join("tsconfig.json")),
        GENERATE_TIMEOUT,
    );

    let server = Server::start().await;
    let flow = run(
        "flow.js",
        Command::new("node")
            .arg(work.path().join("out/flow.js"))
            .env("AUTHPOOL_BASE_URL", &server.base)
            .env("AUTHPOOL_MAIL_DIR", server.mail.path()),
        FLOW_TIMEOUT,
    );
    print!("{}", String::from_utf8_lossy(&flow.stdout));
}

/// The binary on a fresh database, writing its mail as `.eml` files; killed on drop, before
/// its folders and database go (fields drop in order).
struct Server {
    _child: KillOnDrop,
    base: String,
    mail: tempfile::TempDir,
    _db: TestDb,
    _dir: tempfile::TempDir,
}

impl Server {
    async fn start() -> Server {
        let db = TestDb::new().await;
        let dir = tempfile::tempdir().unwrap();
        let mail = tempfile::tempdir().unwrap();
        let port = free_port();
        let base = format!("http://127.0.0.1:{port}");
        let mut child = KillOnDrop(
            authpool(dir.path())
                .env("AUTHPOOL_BIND", format!("127.0.0.1:{port}"))
                .env("AUTHPOOL_PUBLIC_URL", &base)
                .env("AUTHPOOL_DATABASE_URL", &db.url)
                .env(
                    "AUTHPOOL_MAIL_URL",
                    format!("file://{}", mail.path().display()),
                )
                .env("AUTHPOOL_ARGON2_MEMORY_KIB", "1024")
                .env("AUTHPOOL_ARGON2_ITERATIONS", "1")
                .env("AUTHPOOL_LOG_LEVEL", "warn")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .spawn()
                .expect("start authpool"),
        );
        wait_until_live(port, &mut child).await;
        Server {
            _child: child,
            base,
            mail,
            _db: db,
            _dir: dir,
        }
    }
}

/// Runs `command` to completion, killing it at `timeout`; panics with its output unless it
/// succeeded. Blocking: nothing else runs on a test's runtime meanwhile (the server is a process).
pub(crate) fn run(what: &str, command: &mut Command, timeout: Duration) -> Output {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{what}: cannot start {:?}: {e}", command.get_program()));
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let mut child = KillOnDrop(child);
    let deadline = Instant::now() + timeout;
    let finished = loop {
        if child.try_wait().unwrap().is_some() {
            break true;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            break false;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let output = Output {
        status: child.wait().unwrap(),
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    };
    let report = format!(
        "--- stdout\n{}--- stderr\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(finished, "{what}: killed after {timeout:?}\n{report}");
    assert!(
        output.status.success(),
        "{what}: {}\n{report}",
        output.status
    );
    output
}

/// Reads a pipe to its end on a thread of its own, so a full pipe never stalls the child.
fn drain(pipe: Option<impl std::io::Read + Send + 'static>) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_end(&mut bytes);
        }
        bytes
    })
}

/// Fails the test, with what to install, when `program` cannot be run.
pub(crate) fn require(program: &str, needed_for: &str) {
    let found = Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        found,
        "`{program}` is not on PATH; {needed_for}. Install it, this test does not skip."
    );
}

/// `PYTHONPATH` with the pinned openapi-python-client (and so httpx and attrs, which the
/// generated client needs), installed once per machine.
fn python_tools() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        pip_tools(
            "openapi-python-client",
            &Path::new(PYTHON).join("requirements.txt"),
            "the Python client test needs Python 3.10+ with pip",
        )
    })
}

/// A folder for `PYTHONPATH` with the packages pinned in `requirements`, installed once per
/// machine under the test tools folder (a new folder when the pins change).
pub(crate) fn pip_tools(name: &str, requirements: &Path, needed_for: &str) -> PathBuf {
    require("python3", needed_for);
    let pins = std::fs::read(requirements).unwrap();
    let dir = tools_dir().join(format!("{name}-{}", fingerprint(&[&pins])));
    install_once(&dir, |staging| {
        let mut pip = Command::new("python3");
        pip.args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
        ])
        .arg("--target")
        .arg(staging)
        .arg("--requirement")
        .arg(requirements)
        // Tests often run as root in containers; pip would warn about that.
        .env("PIP_ROOT_USER_ACTION", "ignore");
        pip
    });
    dir
}

/// The folder whose `node_modules` has the pinned openapi-typescript, openapi-fetch and
/// typescript (`npm ci` from the committed lock file), installed once per machine.
fn node_tools() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        require("node", "the TypeScript client test needs Node.js 20+");
        require(
            "npm",
            "the TypeScript client test installs its tools with npm",
        );
        let files = ["package.json", "package-lock.json"];
        let contents = files.map(|f| std::fs::read(Path::new(TYPESCRIPT).join(f)).unwrap());
        let dir = tools_dir().join(format!(
            "openapi-typescript-{}",
            fingerprint(&[&contents[0], &contents[1]])
        ));
        install_once(&dir, |staging| {
            for file in files {
                std::fs::copy(Path::new(TYPESCRIPT).join(file), staging.join(file)).unwrap();
            }
            let mut npm = Command::new("npm");
            npm.args(["ci", "--ignore-scripts", "--no-audit", "--no-fund"])
                .args(["--loglevel", "error"])
                .current_dir(staging);
            npm
        });
        dir
    })
}

/// Fills a fresh folder beside `dir` with the command `fill` gives for it, then renames it into
/// place: another test process doing the same either wins the rename or finds the complete
/// folder, and a failed install leaves nothing behind.
pub(crate) fn install_once(dir: &Path, fill: impl FnOnce(&Path) -> Command) {
    if dir.is_dir() {
        return;
    }
    let parent = dir.parent().expect("tools dir has a parent");
    std::fs::create_dir_all(parent).expect("create the test tools folder");
    let staging = tempfile::Builder::new()
        .prefix(".staging-")
        .tempdir_in(parent)
        .expect("staging folder");
    let started = Instant::now();
    run(
        &format!("installing {}", dir.display()),
        &mut fill(staging.path()),
        INSTALL_TIMEOUT,
    );
    eprintln!("installed {} in {:?}", dir.display(), started.elapsed());
    let staged = staging.keep();
    if std::fs::rename(&staged, dir).is_err() {
        // Someone else installed it first; theirs is as good.
        let _ = std::fs::remove_dir_all(&staged);
    }
    assert!(dir.is_dir(), "{} was not installed", dir.display());
}

/// FNV-1a over the pinning files: a stable name for one set of pins.
pub(crate) fn fingerprint(parts: &[&[u8]]) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in parts.iter().flat_map(|p| p.iter().chain([&0xff])) {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{:012x}", hash >> 16)
}
