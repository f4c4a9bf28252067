//! A real SMTP server on loopback for tests: Python's `aiosmtpd`, storing what it receives in a
//! maildir, plus a small reader for the delivered messages.
//!
//! `aiosmtpd` is installed on first use when the machine lacks it (`pip install --target` under
//! the build's target folder), so `cargo test` needs only `python3` with `pip`.

use std::{
    net::{SocketAddr, TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::OnceLock,
    time::{Duration, Instant},
};

use base64::Engine as _;

/// A running `aiosmtpd`, killed on drop.
pub struct SmtpServer {
    child: Child,
    port: u16,
    /// Holds `maildir/`, which aiosmtpd creates (it only creates `tmp`, `new` and `cur` for a
    /// maildir that does not exist yet).
    folder: tempfile::TempDir,
}

impl SmtpServer {
    /// Starts a server on a free loopback port and waits (up to 30 s) until it accepts
    /// connections.
    pub fn start() -> SmtpServer {
        Self::start_on(free_port())
    }

    /// Starts a server on this loopback port, e.g. where an earlier one stopped (an SMTP outage
    /// that ends), with an empty maildir of its own.
    pub fn start_on(port: u16) -> SmtpServer {
        let python_path = aiosmtpd_path();
        let folder = tempfile::tempdir().expect("temp dir for the maildir");
        let mut command = Command::new("python3");
        command
            .args(["-m", "aiosmtpd", "-n", "-l"])
            .arg(format!("127.0.0.1:{port}"))
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(folder.path().join("maildir"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if let Some(path) = python_path {
            command.env("PYTHONPATH", path);
        }
        let child = command.spawn().expect("start python3 -m aiosmtpd");
        let mut server = SmtpServer {
            child,
            port,
            folder,
        };
        server.wait_until_listening(Duration::from_secs(30));
        server
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Every message received so far, as raw RFC 822 text with `\r\n` line ends, oldest first.
    pub fn messages(&self) -> Vec<String> {
        let mut files: Vec<(std::time::SystemTime, PathBuf)> = ["new", "cur"]
            .iter()
            .filter_map(|sub| std::fs::read_dir(self.folder.path().join("maildir").join(sub)).ok())
            .flatten()
            .flatten()
            .map(|e| {
                let modified = e.metadata().and_then(|m| m.modified()).ok();
                (modified.unwrap_or(std::time::UNIX_EPOCH), e.path())
            })
            .collect();
        files.sort();
        files
            .into_iter()
            .filter_map(|(_, path)| std::fs::read_to_string(path).ok())
            .map(|text| text.replace("\r\n", "\n").replace('\n', "\r\n"))
            .collect()
    }

    /// Waits until at least `n` messages have arrived, checking every 50 ms; panics after
    /// `timeout`. Async, so a worker on the same runtime keeps running meanwhile.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let messages = self.messages();
            if messages.len() >= n {
                return messages;
            }
            assert!(
                Instant::now() < deadline,
                "expected {n} messages at the SMTP server within {timeout:?}, got {}",
                messages.len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn wait_until_listening(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            if let Ok(Some(status)) = self.child.try_wait() {
                let mut stderr = String::new();
                if let Some(mut pipe) = self.child.stderr.take() {
                    use std::io::Read;
                    let _ = pipe.read_to_string(&mut stderr);
                }
                panic!("aiosmtpd exited with {status}: {stderr}");
            }
            assert!(
                Instant::now() < deadline,
                "aiosmtpd did not listen within {timeout:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A loopback port nothing listens on (at the moment of the call).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind a free loopback port")
        .port()
}

/// The `PYTHONPATH` that provides `aiosmtpd`: `None` when python3 already has it, else the
/// folder it was installed into (once per machine; once per process for the check).
fn aiosmtpd_path() -> Option<PathBuf> {
    static PATH: OnceLock<Option<PathBuf>> = OnceLock::new();
    PATH.get_or_init(|| {
        if importable(None) {
            return None;
        }
        let dir = tools_dir().join("python");
        if !importable(Some(&dir)) {
            install(&dir);
        }
        Some(dir)
    })
    .clone()
}

fn importable(python_path: Option<&Path>) -> bool {
    let mut command = Command::new("python3");
    command
        .args(["-c", "import aiosmtpd"])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if let Some(path) = python_path {
        command.env("PYTHONPATH", path);
    }
    command.status().is_ok_and(|s| s.success())
}

/// Installs into a fresh folder beside `dir`, then renames it into place: another test process
/// doing the same either wins the rename or finds the complete folder.
fn install(dir: &Path) {
    let parent = dir.parent().expect("tools dir has a parent");
    std::fs::create_dir_all(parent).expect("create the test tools folder");
    let staging = tempfile::tempdir_in(parent).expect("staging folder");
    let status = Command::new("python3")
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--target",
        ])
        .arg(staging.path())
        .arg("aiosmtpd")
        // Tests often run as root in containers; pip would warn about that on every fresh machine.
        .env("PIP_ROOT_USER_ACTION", "ignore")
        .status()
        .expect("run python3 -m pip");
    assert!(status.success(), "pip install aiosmtpd failed ({status})");
    let staged = staging.keep();
    if std::fs::rename(&staged, dir).is_err() {
        // Someone else installed it first; theirs is as good.
        let _ = std::fs::remove_dir_all(&staged);
    }
    assert!(
        importable(Some(dir)),
        "aiosmtpd not importable from {}",
        dir.display()
    );
}

/// `<target>/test-tools`: `CARGO_TARGET_DIR`, else `target` beside the test binary's `deps`.
pub(crate) fn tools_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(dir).join("test-tools");
    }
    // The test binary lives in <target>/<profile>/deps/.
    std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.parent()?.to_path_buf()))
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"))
        .join("test-tools")
}

/// One received email, decoded enough for assertions.
#[derive(Debug)]
pub struct Mail {
    pub headers: Vec<(String, String)>,
    /// Every leaf part: (content type without parameters, decoded body).
    pub parts: Vec<(String, String)>,
}

impl Mail {
    /// Parses a raw message; multipart bodies are split into their leaf parts.
    pub fn parse(raw: &str) -> Mail {
        let raw = raw.replace("\r\n", "\n");
        let (headers, body) = split_headers(&raw);
        let mut parts = Vec::new();
        collect_parts(&headers, body, &mut parts);
        Mail { headers, parts }
    }

    /// The first header of that name (case-insensitive), unfolded.
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }

    /// The decoded body of the first part of this content type (`text/plain`, `text/html`).
    pub fn part(&self, content_type: &str) -> Option<&str> {
        self.parts
            .iter()
            .find(|(ct, _)| ct.eq_ignore_ascii_case(content_type))
            .map(|(_, body)| body.as_str())
    }

    /// The first six-digit code in the text part.
    pub fn code(&self) -> Option<String> {
        let text = self.part("text/plain")?;
        let bytes = text.as_bytes();
        (0..bytes.len().saturating_sub(5)).find_map(|i| {
            let window = &bytes[i..i + 6];
            let before = i.checked_sub(1).map(|j| bytes[j]);
            let after = bytes.get(i + 6).copied();
            (window.iter().all(u8::is_ascii_digit)
                && !before.is_some_and(|b| b.is_ascii_digit())
                && !after.is_some_and(|b| b.is_ascii_digit()))
            .then(|| String::from_utf8_lossy(window).into_owned())
        })
    }
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Splits `\n`-separated text into unfolded headers and the body.
fn split_headers(text: &str) -> (Vec<(String, String)>, &str) {
    let (head, body) = text.split_once("\n\n").unwrap_or((text, ""));
    let mut headers: Vec<(String, String)> = Vec::new();
    for line in head.lines() {
        if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = headers.last_mut() {
                value.push(' ');
                value.push_str(line.trim());
            }
        } else if let Some((name, value)) = line.split_once(':') {
            headers.push((name.trim().to_string(), value.trim().to_string()));
        }
    }
    (headers, body)
}

fn collect_parts(headers: &[(String, String)], body: &str, out: &mut Vec<(String, String)>) {
    let content_type = header(headers, "Content-Type").unwrap_or("text/plain");
    let mime = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if mime.starts_with("multipart/") {
        let Some(boundary) = parameter(content_type, "boundary") else {
            return;
        };
        let delimiter = format!("--{boundary}");
        for chunk in body.split(&delimiter).skip(1) {
            if chunk.starts_with("--") {
                break;
            }
            let chunk = chunk.strip_prefix('\n').unwrap_or(chunk);
            let (part_headers, part_body) = split_headers(chunk);
            collect_parts(
                &part_headers,
                part_body.strip_suffix('\n').unwrap_or(part_body),
                out,
            );
        }
        return;
    }
    let encoding = header(headers, "Content-Transfer-Encoding").unwrap_or("7bit");
    out.push((mime, decode(body, encoding)));
}

fn parameter(header_value: &str, name: &str) -> Option<String> {
    header_value.split(';').skip(1).find_map(|p| {
        let (key, value) = p.trim().split_once('=')?;
        key.trim()
            .eq_ignore_ascii_case(name)
            .then(|| value.trim().trim_matches('"').to_string())
    })
}

fn decode(body: &str, encoding: &str) -> String {
    match encoding.trim().to_ascii_lowercase().as_str() {
        "base64" => {
            let compact: String = body.split_whitespace().collect();
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(compact)
                .expect("valid base64 part");
            String::from_utf8_lossy(&bytes).into_owned()
        }
        "quoted-printable" => decode_quoted_printable(body),
        _ => body.to_string(),
    }
}

fn decode_quoted_printable(body: &str) -> String {
    let joined = body.replace("=\n", "");
    let bytes = joined.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'=', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
