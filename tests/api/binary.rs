//! The `authpool` binary itself: command line, configuration errors, start and stop.

use std::{
    process::{Output, Stdio},
    time::{Duration, Instant},
};

use crate::{
    db::TestDb,
    process::{KillOnDrop, authpool, run, sigterm, wait_for_exit, wait_until_live},
    smtp::free_port,
};

#[test]
fn help_lists_every_setting_for_the_program_and_serve() {
    let dir = tempfile::tempdir().unwrap();
    for args in [&["--help"][..], &["serve", "--help"]] {
        let output = run(authpool(dir.path()).args(args));
        assert!(output.status.success());
        let help = String::from_utf8(output.stdout).unwrap();
        for spec in authpool::config::SETTINGS {
            assert!(
                help.contains(spec.env),
                "{} missing from {args:?}",
                spec.env
            );
        }
    }
}

/// One line on stderr naming the setting, exit status 2, no panic or backtrace.
fn assert_refused(output: &Output, setting: &str) {
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(stderr.contains(setting), "{stderr}");
    assert!(
        !stderr.contains("panicked") && !stderr.contains("backtrace"),
        "{stderr}"
    );
}

#[test]
fn bad_settings_stop_start_up_with_one_line_naming_them() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("AUTHPOOL_ID_TOKEN_TTL_S", "10"),
        ("AUTHPOOL_PUBLIC_URL", "not a url"),
        ("AUTHPOOL_MAIL_URL", "pigeon://coop"),
        ("AUTHPOOL_BIND", "localhost"),
        ("AUTHPOOL_LOG_FORMAT", "xml"),
    ];
    for (var, value) in cases {
        let output = run(authpool(dir.path()).arg("serve").env(var, value));
        assert_refused(&output, var);
    }
    // The same from a TOML file.
    let file = dir.path().join("authpool.toml");
    std::fs::write(&file, "access_token_ttl_s = 999999\n").unwrap();
    let output = run(authpool(dir.path()).args(["--config", file.to_str().unwrap(), "serve"]));
    assert_refused(&output, "AUTHPOOL_ACCESS_TOKEN_TTL_S");
}

#[test]
fn an_unreachable_database_stops_start_up_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let output = run(authpool(dir.path()).arg("serve").env(
        "AUTHPOOL_DATABASE_URL",
        format!("postgres://nobody@127.0.0.1:{port}/none"),
    ));
    assert_refused(&output, "AUTHPOOL_DATABASE_URL");
}

#[test]
fn openapi_prints_the_committed_spec() {
    let dir = tempfile::tempdir().unwrap();
    let output = run(authpool(dir.path()).arg("openapi"));
    assert!(output.status.success());
    let printed: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let committed: serde_json::Value =
        serde_json::from_str(include_str!("../../openapi/openapi.json")).unwrap();
    assert_eq!(printed, committed);
}

#[tokio::test]
async fn migrate_then_keys_rotate_and_list() {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    let with_db = |args: &[&str]| {
        let output = run(authpool(dir.path())
            .args(args)
            .env("AUTHPOOL_DATABASE_URL", &db.url));
        assert!(output.status.success(), "{args:?}: {output:?}");
        String::from_utf8(output.stdout).unwrap()
    };
    assert!(with_db(&["migrate"]).contains("up to date"));
    let first = with_db(&["keys", "rotate"]);
    let second = with_db(&["keys", "rotate"]);
    assert_ne!(first, second);
    let list = with_db(&["keys", "list"]);
    let rows: Vec<&str> = list.lines().skip(1).collect();
    assert_eq!(rows.len(), 2, "{list}");
    // Exactly one key is not retired: the newest.
    assert_eq!(
        rows.iter().filter(|r| r.trim_end().ends_with(" -")).count(),
        1,
        "{list}"
    );
}

#[tokio::test]
async fn serve_on_defaults_creates_its_files_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut child = KillOnDrop(
        authpool(dir.path())
            .env("AUTHPOOL_BIND", format!("127.0.0.1:{port}"))
            .env("AUTHPOOL_LOG_LEVEL", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_until_live(port, &mut child).await;
    assert!(dir.path().join("data/authpool.db").is_file());
    assert!(dir.path().join("data/mail").is_dir());
    let ready = reqwest::get(format!("http://127.0.0.1:{port}/health/ready"))
        .await
        .unwrap();
    assert!(ready.status().is_success());

    sigterm(&child);
    let status = wait_for_exit(&mut child).await;
    assert_eq!(status.code(), Some(0));
}

/// `subscribers export` prints the local list as CSV, beside a running server on the same
/// database, and a reader that closes the pipe early is not an error.
#[tokio::test]
async fn subscribers_export_prints_csv_while_a_server_runs() {
    use entity::subscription;
    use sea_orm::{ActiveValue::Set, EntityTrait};

    let db = TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut server = KillOnDrop(
        authpool(dir.path())
            .env("AUTHPOOL_DATABASE_URL", &db.url)
            .env("AUTHPOOL_BIND", format!("127.0.0.1:{port}"))
            .env("AUTHPOOL_LOG_LEVEL", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_until_live(port, &mut server).await;

    // Written as older versions or other tools might have: a comma and quotes in the local part.
    let odd = r#"o'neil,"jr"@example.org"#;
    let uid = uuid::Uuid::new_v4();
    let at = chrono::DateTime::parse_from_rfc3339("2026-11-22T10:00:00Z")
        .unwrap()
        .to_utc();
    let conn = sea_orm::Database::connect(&db.url).await.unwrap();
    for (email, uid, remote) in [
        ("Ada@Example.org", Some(uid), Some("synced")),
        (odd, None, None),
    ] {
        subscription::Entity::insert(subscription::ActiveModel {
            email_key: Set(email.to_lowercase()),
            email: Set(email.to_string()),
            uid: Set(uid),
            status: Set("subscribed".into()),
            remote_status: Set(remote.map(str::to_string)),
            created_at: Set(at),
            updated_at: Set(at),
        })
        .exec(&conn)
        .await
        .unwrap();
    }
    conn.close().await.ok();

    let output = run(authpool(dir.path())
        .args(["subscribers", "export"])
        .env("AUTHPOOL_DATABASE_URL", &db.url));
    assert!(output.status.success(), "{output:?}");
    let csv = String::from_utf8(output.stdout).unwrap();
    let rows = parse_csv(&csv);
    assert_eq!(
        rows,
        vec![
            vec![
                "email",
                "uid",
                "status",
                "remote_status",
                "created_at",
                "updated_at"
            ],
            vec![
                "Ada@Example.org",
                &uid.to_string(),
                "subscribed",
                "synced",
                "2026-11-22T10:00:00Z",
                "2026-11-22T10:00:00Z"
            ],
            vec![
                odd,
                "",
                "subscribed",
                "",
                "2026-11-22T10:00:00Z",
                "2026-11-22T10:00:00Z"
            ],
        ],
        "{csv}"
    );

    // `| head -0`: the reader is gone before anything is written.
    let mut child = authpool(dir.path())
        .args(["subscribers", "export"])
        .env("AUTHPOOL_DATABASE_URL", &db.url)
        .env("AUTHPOOL_LOG_LEVEL", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{output:?}");
    // No error line (`authpool: ...`) and no panic.
    assert!(output.stderr.is_empty(), "{output:?}");

    sigterm(&server);
    assert_eq!(wait_for_exit(&mut server).await.code(), Some(0));
}

/// An RFC 4180 reader, just enough for the export: quoted fields with doubled quotes.
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let (mut row, mut field) = (Vec::new(), String::new());
    let (mut quoted, mut chars) = (false, text.chars().peekable());
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') if field.is_empty() => quoted = true,
            (false, ',') => row.push(std::mem::take(&mut field)),
            (false, '\r') => {}
            (false, '\n') => {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
            }
            (false, c) => field.push(c),
        }
    }
    assert!(
        !quoted && field.is_empty() && row.is_empty(),
        "unterminated CSV"
    );
    rows
}

#[tokio::test]
async fn sigterm_lets_an_in_flight_request_finish_before_exiting() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    // One slow hash at a time and no queue: while a login hashes, any other login answers 503,
    // which tells the test from outside that a request is in flight.
    let mut child = KillOnDrop(
        authpool(dir.path())
            .env("AUTHPOOL_BIND", format!("127.0.0.1:{port}"))
            .env("AUTHPOOL_ARGON2_MEMORY_KIB", "65536")
            .env("AUTHPOOL_ARGON2_ITERATIONS", "12")
            .env("AUTHPOOL_HASH_CONCURRENCY", "1")
            .env("AUTHPOOL_HASH_QUEUE", "0")
            .env("AUTHPOOL_LOG_LEVEL", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_until_live(port, &mut child).await;

    let login = |email: &'static str| {
        reqwest::Client::new()
            .post(format!("http://127.0.0.1:{port}/api/login"))
            .json(&serde_json::json!({"email": email, "password": "whatever it is"}))
            .send()
    };
    let mut in_flight = tokio::spawn(login("first@example.org"));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let probe = login("probe@example.org").await.unwrap();
        if probe.status() == 503 {
            break; // Someone is hashing, and the only other login is the first one.
        }
        // The probe got the hashing slot first; the first login may have been refused while it
        // did. Send it again.
        if in_flight.is_finished() {
            let refused = in_flight.await.unwrap().unwrap();
            assert_eq!(refused.status(), 503);
            in_flight = tokio::spawn(login("first@example.org"));
        }
        assert!(
            Instant::now() < deadline,
            "the first login never seemed in flight"
        );
    }
    assert!(
        !in_flight.is_finished(),
        "the hash finished before the signal could be sent"
    );

    sigterm(&child);
    // The request that was being served gets its real answer, not a dropped connection.
    let answer = in_flight
        .await
        .unwrap()
        .expect("the in-flight request completes");
    assert_eq!(answer.status(), 401);
    assert_eq!(wait_for_exit(&mut child).await.code(), Some(0));
}
