//! A private PostgreSQL server for one test, made with `initdb` and run with `pg_ctl` on a free
//! loopback port in a temp folder, so the test may stop and start it at will (never the machine's
//! shared server). Stopped when dropped, however the test ends.
//!
//! `initdb` and `postgres` refuse to run as root: as root, they run as the `postgres` user.

use std::{
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
};

use crate::smtp::free_port;

pub struct PrivatePostgres {
    bin: PathBuf,
    port: u16,
    /// Holds `data/` and the server's log and socket; owned by the user the server runs as.
    folder: tempfile::TempDir,
    as_postgres_user: bool,
}

impl PrivatePostgres {
    /// Creates a cluster (user `postgres`, trust authentication) and starts it.
    pub fn start() -> PrivatePostgres {
        let bin = bin_dir();
        let folder = tempfile::tempdir().expect("temp dir for PostgreSQL");
        let as_postgres_user = is_root();
        if as_postgres_user {
            let status = Command::new("chown")
                .arg("postgres:")
                .arg(folder.path())
                .status()
                .expect("run chown");
            assert!(status.success(), "chown of the PostgreSQL folder failed");
        }
        let server = PrivatePostgres {
            bin,
            port: free_port(),
            folder,
            as_postgres_user,
        };
        let data = server.data();
        server.run(
            "initdb",
            &[
                "-D",
                path_str(&data),
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--no-sync",
            ],
        );
        server.start_again();
        server
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Starts the server (again) on the same port and data, and waits until it accepts
    /// connections.
    pub fn start_again(&self) {
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -c unix_socket_directories={} -c fsync=off",
            self.port,
            path_str(self.folder.path())
        );
        let log = self.folder.path().join("postgres.log");
        let output = self.run_unchecked(
            "pg_ctl",
            &[
                "start",
                "-w",
                "-t",
                "60",
                "-D",
                path_str(&self.data()),
                "-l",
                path_str(&log),
                "-o",
                &options,
            ],
        );
        assert!(
            output.status.success(),
            "pg_ctl start failed: {}\n{}",
            String::from_utf8_lossy(&output.stderr),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }

    /// Stops the server at once, as a crash would: open connections are cut, nothing is
    /// checkpointed (the next start recovers from the write-ahead log).
    pub fn stop_immediately(&self) {
        let output = self.stop();
        assert!(
            output.status.success(),
            "pg_ctl stop failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    fn stop(&self) -> Output {
        self.run_unchecked(
            "pg_ctl",
            &[
                "stop",
                "-w",
                "-m",
                "immediate",
                "-D",
                path_str(&self.data()),
            ],
        )
    }

    fn data(&self) -> PathBuf {
        self.folder.path().join("data")
    }

    fn run(&self, program: &str, args: &[&str]) {
        let output = self.run_unchecked(program, args);
        assert!(
            output.status.success(),
            "{program} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    fn run_unchecked(&self, program: &str, args: &[&str]) -> Output {
        let program = self.bin.join(program);
        let mut command = if self.as_postgres_user {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(&program);
            command
        } else {
            Command::new(&program)
        };
        command
            .args(args)
            .current_dir(self.folder.path())
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("run {}: {e}", program.display()))
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        // Already stopped is fine; the folder goes with the TempDir.
        let _ = self.stop();
    }
}

/// The newest `/usr/lib/postgresql/<version>/bin` (Debian), else the folder of `pg_ctl` on the
/// PATH.
fn bin_dir() -> PathBuf {
    let debian = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .max();
    if let Some((_, bin)) = debian {
        return bin;
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .find(|dir| dir.join("pg_ctl").exists() && dir.join("initdb").exists())
        .expect("PostgreSQL's initdb and pg_ctl (in /usr/lib/postgresql/*/bin or on the PATH)")
}

fn is_root() -> bool {
    let output = Command::new("id").arg("-u").output().expect("run id -u");
    String::from_utf8_lossy(&output.stdout).trim() == "0"
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("a UTF-8 temp path")
}
