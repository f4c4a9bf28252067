//! The authpool release binary under test: started on loopback with production argon2
//! parameters (the defaults), timed to readiness, its memory read from `/proc`, and stopped.

use std::{
    fs::File,
    net::{SocketAddr, TcpListener},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use http::{Method, StatusCode};

use crate::client::{self, Outcome};

/// The binary cargo built for this bench (release profile under `cargo bench`).
const BIN: &str = env!("CARGO_BIN_EXE_authpool");

/// The app client id the server is given, so the bench can verify its tokens itself.
pub const CLIENT_ID: &str = "authpoolbench";

/// How the server is configured: everything else keeps its production default.
pub struct ServerConfig {
    pub addr: SocketAddr,
    pub database_url: String,
    pub dir: PathBuf,
}

impl ServerConfig {
    pub fn new(database_url: String, dir: &Path) -> std::io::Result<Self> {
        // A free port: bound, read, released (the server binds it a moment later).
        let addr = TcpListener::bind("127.0.0.1:0")?.local_addr()?;
        Ok(Self {
            addr,
            database_url,
            dir: dir.to_path_buf(),
        })
    }

    /// The token issuer: the public URL.
    pub fn issuer(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// A running server; killed when dropped if not stopped before.
pub struct Server {
    child: Child,
    pub pid: u32,
    log: PathBuf,
}

impl Server {
    pub fn spawn(config: &ServerConfig) -> Result<Self, String> {
        let log = config.dir.join("authpool.log");
        let out = File::options()
            .create(true)
            .append(true)
            .open(&log)
            .map_err(|e| format!("{}: {e}", log.display()))?;
        let err = out.try_clone().map_err(|e| e.to_string())?;
        let child = Command::new(BIN)
            .arg("serve")
            .current_dir(&config.dir)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("AUTHPOOL_BIND", config.addr.to_string())
            .env("AUTHPOOL_PUBLIC_URL", config.issuer())
            .env("AUTHPOOL_CLIENT_ID", CLIENT_ID)
            .env("AUTHPOOL_DATABASE_URL", &config.database_url)
            .env(
                "AUTHPOOL_MAIL_URL",
                format!("file://{}", config.dir.join("mail").display()),
            )
            .env("AUTHPOOL_IP_RATE_LIMIT", "0")
            .env("AUTHPOOL_LOG_LEVEL", "warn")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("cannot start {BIN}: {e}"))?;
        Ok(Self {
            pid: child.id(),
            child,
            log,
        })
    }

    /// Polls `GET /health/ready` until it answers 200; returns the time since `since`.
    pub async fn wait_ready(
        &mut self,
        addr: SocketAddr,
        since: Instant,
    ) -> Result<Duration, String> {
        let deadline = since + Duration::from_secs(60);
        loop {
            let request = client::request(Method::GET, "/health/ready", None, None);
            if let Outcome::Reply { status, .. } = client::once(addr, request).await
                && status == StatusCode::OK
            {
                return Ok(since.elapsed());
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!(
                    "authpool exited with {status}; {}",
                    self.log_tail()
                ));
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "authpool not ready after 60 s; {}",
                    self.log_tail()
                ));
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// `VmRSS` and `VmHWM` (peak since start or the last [`Server::reset_peak`]), in KiB.
    pub fn memory(&self) -> Memory {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid)).unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|line| line.strip_prefix(name))
                .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        };
        Memory {
            rss_kib: field("VmRSS:"),
            peak_kib: field("VmHWM:"),
        }
    }

    /// Resets the peak resident set size (`echo 5 > /proc/PID/clear_refs`), so the next
    /// [`Server::memory`] shows the peak of what happened in between.
    pub fn reset_peak(&self) -> bool {
        std::fs::write(format!("/proc/{}/clear_refs", self.pid), "5").is_ok()
    }

    /// SIGTERM, then waits for the exit (SIGKILL after 20 s).
    pub fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        format!(
            "log tail:\n{}",
            lines[lines.len().saturating_sub(20)..].join("\n")
        )
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Memory of the server process, in KiB.
#[derive(Clone, Copy, Debug, Default)]
pub struct Memory {
    pub rss_kib: Option<u64>,
    pub peak_kib: Option<u64>,
}

/// CPU time used so far, in clock ticks (1/100 s): by the server, by this process (the load
/// generator), and by the whole machine.
#[derive(Clone, Copy, Debug, Default)]
pub struct CpuTicks {
    server: u64,
    bench: u64,
    machine: u64,
}

/// Cores kept busy during a phase: the server, the load generator, and everything else.
#[derive(Clone, Copy, Debug, Default)]
pub struct CpuUse {
    pub server: f64,
    pub bench: f64,
    pub other: f64,
}

/// Clock ticks per second of `/proc` times (`getconf CLK_TCK`, 100 on Linux).
const TICKS_PER_S: f64 = 100.0;

/// utime + stime of a process, from `/proc/PID/stat`.
fn process_ticks(pid: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The command name, in parentheses, may hold spaces: count fields after the last ')'.
    let fields: Vec<&str> = text
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let field = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    field(11) + field(12)
}

/// Busy time of all cores, from the first line of `/proc/stat` (everything but idle and iowait).
fn machine_ticks() -> u64 {
    let text = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let values: Vec<u64> = text
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is already in user).
    values.iter().take(8).sum::<u64>()
        - values.get(3).copied().unwrap_or(0)
        - values.get(4).copied().unwrap_or(0)
}

impl Server {
    pub fn cpu_ticks(&self) -> CpuTicks {
        CpuTicks {
            server: process_ticks(&self.pid.to_string()),
            bench: process_ticks("self"),
            machine: machine_ticks(),
        }
    }
}

impl CpuTicks {
    /// Cores used between `self` and `later`, over `seconds` of wall time.
    pub fn cores_until(&self, later: &Self, seconds: f64) -> CpuUse {
        let cores = |a: u64, b: u64| b.saturating_sub(a) as f64 / TICKS_PER_S / seconds;
        let server = cores(self.server, later.server);
        let bench = cores(self.bench, later.bench);
        let machine = cores(self.machine, later.machine);
        CpuUse {
            server,
            bench,
            other: (machine - server - bench).max(0.0),
        }
    }
}
