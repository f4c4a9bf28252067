//! Process-level tests: real `authpool` processes on one database, a real SMTP server, and
//! requests in parallel, all on loopback.
//!
//! - `scale_out`: two replicas on one PostgreSQL behave as one server (needs
//!   `AUTHPOOL_TEST_DATABASE_URL`).
//! - `concurrency`: races on one server, on whatever database `TestDb` gives (SQLite by default).
//!
//! They are slower than the API suite, so they are ignored by a plain `cargo test`; `.ci/run`
//! runs them with `cargo test --test cluster -- --ignored`.

#[path = "../api/db.rs"]
mod db;
#[path = "../api/process.rs"]
mod process;
#[path = "../api/smtp.rs"]
mod smtp;

mod concurrency;
mod harness;
mod scale_out;
