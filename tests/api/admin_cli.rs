//! `authpool user ...` through the real binary, on a fresh database, beside a real server
//! process where a test needs one: each change is seen by the server at once.

use std::{
    io::Write,
    path::PathBuf,
    process::{Command, Output, Stdio},
    time::{Duration, Instant},
};

use entity::{
    allowed_host, api_token, code, login_failure, refresh_token, session, subscription, user,
};
use sea_orm::{
    ColumnTrait, Database, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter,
};
use serde_json::{Value, json};

use crate::{
    db::TestDb,
    helpers::PASSWORD,
    process::{KillOnDrop, authpool, wait_until_live},
    smtp::{Mail, free_port},
};

const NEW_PASSWORD: &str = "purple monkey dishwasher lamp";

/// A database, a working folder and a mail folder shared by the commands and the server of a
/// test. Dropped after the servers (declared later in each test).
struct Env {
    db: TestDb,
    dir: tempfile::TempDir,
    mail: tempfile::TempDir,
}

impl Env {
    async fn new() -> Env {
        Env {
            db: TestDb::new().await,
            dir: tempfile::tempdir().unwrap(),
            mail: tempfile::tempdir().unwrap(),
        }
    }

    /// The binary with the test's settings: this database, mail as files, cheap argon2.
    fn authpool(&self) -> Command {
        let mut command = authpool(self.dir.path());
        command
            .env("AUTHPOOL_DATABASE_URL", &self.db.url)
            .env(
                "AUTHPOOL_MAIL_URL",
                format!("file://{}", self.mail.path().display()),
            )
            .env("AUTHPOOL_ARGON2_MEMORY_KIB", "1024")
            .env("AUTHPOOL_ARGON2_ITERATIONS", "1");
        command
    }

    /// Runs a command with `input` on a pipe as standard input (`None`: no input at all).
    fn run(&self, args: &[&str], input: Option<&str>) -> Output {
        let mut child = self
            .authpool()
            .args(args)
            .stdin(if input.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("authpool runs");
        if let Some(input) = input {
            let mut stdin = child.stdin.take().unwrap();
            stdin.write_all(input.as_bytes()).unwrap();
        }
        child.wait_with_output().unwrap()
    }

    /// Runs a command that must succeed; returns its standard output.
    fn ok(&self, args: &[&str]) -> String {
        self.ok_with(args, None)
    }

    fn ok_with(&self, args: &[&str], input: Option<&str>) -> String {
        let output = self.run(args, input);
        assert!(output.status.success(), "{args:?}: {output:?}");
        String::from_utf8(output.stdout).unwrap()
    }

    /// Runs a command that must fail with status 1 and one line `error: ...`; returns the line.
    fn fails(&self, args: &[&str]) -> String {
        self.fails_with(args, None)
    }

    fn fails_with(&self, args: &[&str], input: Option<&str>) -> String {
        let output = self.run(args, input);
        assert_eq!(output.status.code(), Some(1), "{args:?}: {output:?}");
        let stderr = String::from_utf8(output.stderr.clone()).unwrap();
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{args:?}: {stderr}");
        assert!(lines[0].starts_with("error: "), "{args:?}: {stderr}");
        assert!(output.stdout.is_empty(), "{args:?}: {output:?}");
        lines[0].to_string()
    }

    /// `user show USER --json`.
    fn show(&self, user: &str) -> Value {
        serde_json::from_str(&self.ok(&["user", "show", user, "--json"])).unwrap()
    }

    async fn conn(&self) -> DatabaseConnection {
        Database::connect(&self.db.url).await.unwrap()
    }

    /// The mail written so far to this address, oldest first.
    fn mails_to(&self, to: &str) -> Vec<Mail> {
        let mut files: Vec<(std::time::SystemTime, PathBuf)> = std::fs::read_dir(self.mail.path())
            .unwrap()
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "eml"))
            .map(|e| (e.metadata().unwrap().modified().unwrap(), e.path()))
            .collect();
        files.sort();
        files
            .iter()
            .map(|(_, path)| Mail::parse(&std::fs::read_to_string(path).unwrap()))
            .filter(|m| m.header("To").is_some_and(|h| h.contains(to)))
            .collect()
    }

    /// Polls until the `n`th message to this address is written; panics after 10 s.
    async fn wait_for_mail(&self, to: &str, n: usize) -> Vec<Mail> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let mails = self.mails_to(to);
            if mails.len() >= n {
                return mails;
            }
            assert!(Instant::now() < deadline, "no mail #{n} to {to}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `authpool serve` on this database and mail folder.
    async fn server(&self) -> Server {
        let port = free_port();
        let mut child = KillOnDrop(
            self.authpool()
                .env("AUTHPOOL_BIND", format!("127.0.0.1:{port}"))
                .env("AUTHPOOL_LOG_LEVEL", "warn")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .spawn()
                .expect("start authpool"),
        );
        wait_until_live(port, &mut child).await;
        Server {
            _child: child,
            base: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::new(),
        }
    }
}

struct Server {
    _child: KillOnDrop,
    base: String,
    http: reqwest::Client,
}

impl Server {
    async fn post(&self, path: &str, token: Option<&str>, body: Value) -> (u16, Value) {
        let mut request = self.http.post(format!("{}{path}", self.base)).json(&body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn login(&self, email: &str, password: &str) -> (u16, Value) {
        self.post(
            "/api/login",
            None,
            json!({"email": email, "password": password}),
        )
        .await
    }

    /// Signs in, which must succeed; returns the tokens.
    async fn signed_in(&self, email: &str, password: &str) -> Value {
        let (status, body) = self.login(email, password).await;
        assert_eq!(status, 200, "{body}");
        body
    }

    /// The status of `GET /api/account` with the access token of a sign-in.
    async fn account_status(&self, tokens: &Value) -> u16 {
        self.http
            .get(format!("{}/api/account", self.base))
            .bearer_auth(tokens["access_token"].as_str().unwrap())
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    async fn refresh_status(&self, tokens: &Value) -> u16 {
        self.post(
            "/api/refresh",
            None,
            json!({"refresh_token": tokens["refresh_token"]}),
        )
        .await
        .0
    }
}

/// The rows an account owns, table by table.
#[derive(Debug, Default, PartialEq, Eq)]
struct Owned {
    user: u64,
    sessions: u64,
    /// Of these sessions (refresh tokens name their session, not the user).
    refresh_tokens: u64,
    codes: u64,
    api_tokens: u64,
    allowed_hosts: u64,
    login_failures: u64,
}

impl Owned {
    async fn count(conn: &DatabaseConnection, uid: uuid::Uuid, sessions: &[uuid::Uuid]) -> Owned {
        Owned {
            user: user::Entity::find_by_id(uid).count(conn).await.unwrap(),
            sessions: session::Entity::find()
                .filter(session::Column::Uid.eq(uid))
                .count(conn)
                .await
                .unwrap(),
            refresh_tokens: refresh_token::Entity::find()
                .filter(refresh_token::Column::SessionId.is_in(sessions.to_vec()))
                .count(conn)
                .await
                .unwrap(),
            codes: code::Entity::find()
                .filter(code::Column::Uid.eq(uid))
                .count(conn)
                .await
                .unwrap(),
            api_tokens: api_token::Entity::find()
                .filter(api_token::Column::Uid.eq(uid))
                .count(conn)
                .await
                .unwrap(),
            allowed_hosts: allowed_host::Entity::find()
                .filter(allowed_host::Column::Uid.eq(uid))
                .count(conn)
                .await
                .unwrap(),
            login_failures: login_failure::Entity::find_by_id(format!("uid:{uid}"))
                .count(conn)
                .await
                .unwrap(),
        }
    }
}

/// The line of `text` that contains `needle`.
fn line_with<'a>(text: &'a str, needle: &str) -> &'a str {
    text.lines()
        .find(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no line with {needle:?} in {text:?}"))
}

#[tokio::test]
async fn a_running_server_sees_disable_enable_sign_out_set_password_and_delete_at_once() {
    let env = Env::new().await;
    let server = env.server().await;
    let email = "ada@example.org";

    // Created confirmed with a password: ready at once, nothing mailed.
    let created = env.ok_with(
        &["user", "create", email, "--password-stdin", "--confirmed"],
        Some(&format!("{PASSWORD}\n")),
    );
    assert!(line_with(&created, "created ada@example.org").contains("status CONFIRMED"));
    assert_eq!(created.lines().count(), 1, "{created}");
    assert!(env.mails_to(email).is_empty());
    let first = server.signed_in(email, PASSWORD).await;
    let uid = first["uid"].as_str().unwrap().to_string();
    assert_eq!(server.account_status(&first).await, 200);

    // Disabled: the token is refused at once, and sign-in says why.
    let out = env.ok(&["user", "disable", email]);
    assert!(
        out.contains("disabled ada@example.org") && out.contains("1 session revoked"),
        "{out}"
    );
    assert_eq!(server.account_status(&first).await, 401);
    assert_eq!(server.refresh_status(&first).await, 401);
    let (status, body) = server.login(email, PASSWORD).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("UserDisabledException"))
    );
    assert_eq!(env.show(&uid)["status"], "DISABLED");

    // Enabled (named by uid): sign-in works again; the old session stays revoked.
    let out = env.ok(&["user", "enable", &uid]);
    assert!(
        out.contains("enabled ada@example.org") && out.contains("status CONFIRMED"),
        "{out}"
    );
    let second = server.signed_in(email, PASSWORD).await;
    let third = server.signed_in(email, PASSWORD).await;
    assert_eq!(server.account_status(&first).await, 401);
    assert_eq!(server.account_status(&second).await, 200);

    // Signed out everywhere: both sessions counted and refused.
    let out = env.ok(&["user", "sign-out", email]);
    assert!(out.contains("2 sessions revoked"), "{out}");
    for tokens in [&second, &third] {
        assert_eq!(server.account_status(tokens).await, 401);
        assert_eq!(server.refresh_status(tokens).await, 401);
    }

    // A weak new password is refused and changes nothing.
    let fourth = server.signed_in(email, PASSWORD).await;
    let refused = env.fails_with(
        &["user", "set-password", email, "--password-stdin"],
        Some("password\n"),
    );
    assert!(refused.starts_with("error: password refused:"), "{refused}");
    assert_eq!(server.account_status(&fourth).await, 200);

    // A new password: every session revoked, the old password refused, the new one works.
    let out = env.ok_with(
        &["user", "set-password", email, "--password-stdin"],
        Some(&format!("{NEW_PASSWORD}\n")),
    );
    assert!(
        out.contains("password set for ada@example.org") && out.contains("1 session revoked"),
        "{out}"
    );
    assert_eq!(server.account_status(&fourth).await, 401);
    assert_eq!(server.login(email, PASSWORD).await.0, 401);
    let last = server.signed_in(email, NEW_PASSWORD).await;
    let token = last["access_token"].as_str().unwrap();

    // Give the account everything deletion must remove (and a subscription it must keep).
    assert_eq!(
        server
            .post("/api/api-tokens", Some(token), json!({"name": "ci"}))
            .await
            .0,
        201
    );
    assert_eq!(
        server
            .post(
                "/api/allowed-hosts",
                Some(token),
                json!({"host": "example.org"})
            )
            .await
            .0,
        201
    );
    assert_eq!(
        server
            .post("/api/subscribe", Some(token), json!({}))
            .await
            .0,
        200
    );
    assert_eq!(
        server
            .post("/api/password/reset", None, json!({"email": email}))
            .await
            .0,
        200
    );
    assert_eq!(server.login(email, "not the password at all").await.0, 401);
    let conn = env.conn().await;
    let uid = uuid::Uuid::parse_str(&uid).unwrap();
    let sessions: Vec<uuid::Uuid> = session::Entity::find()
        .filter(session::Column::Uid.eq(uid))
        .all(&conn)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.id)
        .collect();
    let before = Owned::count(&conn, uid, &sessions).await;
    assert_eq!(before.user, 1);
    assert_eq!(before.sessions, 5);
    assert!(before.refresh_tokens >= 5, "{before:?}");
    assert_eq!((before.api_tokens, before.allowed_hosts), (1, 1));
    assert_eq!((before.codes, before.login_failures), (1, 1));

    // Without --yes and without a terminal to ask on: refused, nothing deleted.
    let refused = env.fails(&["user", "delete", email]);
    assert!(refused.contains("--yes"), "{refused}");
    assert_eq!(server.account_status(&last).await, 200);

    let out = env.ok(&["user", "delete", email, "--yes"]);
    assert!(out.contains("deleted ada@example.org"), "{out}");
    assert!(
        out.contains("5 sessions, 1 API token and 1 allowed host"),
        "{out}"
    );
    assert_eq!(server.account_status(&last).await, 401);
    assert_eq!(server.refresh_status(&last).await, 401);
    let (status, body) = server.login(email, NEW_PASSWORD).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("NotAuthorizedException"))
    );

    // Nothing of the account is left...
    assert_eq!(Owned::count(&conn, uid, &sessions).await, Owned::default());
    // ...but the newsletter subscription of the address, unlinked from it.
    let kept = subscription::Entity::find_by_id(email.to_string())
        .one(&conn)
        .await
        .unwrap();
    assert_eq!(kept.map(|s| s.uid), Some(None));
    conn.close().await.ok();

    let gone = env.fails(&["user", "show", email]);
    assert_eq!(gone, "error: no user ada@example.org");
}

#[tokio::test]
async fn create_without_a_password_mails_an_invitation_that_sets_one_and_confirms() {
    let env = Env::new().await;
    let server = env.server().await;
    let email = "grace@example.org";

    let out = env.ok(&["user", "create", email]);
    assert!(
        line_with(&out, "created grace@example.org").contains("status UNCONFIRMED"),
        "{out}"
    );
    // Sent by the command itself, or by the server's worker if it claimed the message first.
    assert!(
        line_with(&out, "password-reset code").contains(email),
        "{out}"
    );
    assert!(!out.contains("could not"), "{out}");
    let mail = env.wait_for_mail(email, 1).await.remove(0);
    let code = mail.code().expect("a code in the mail");
    assert!(!out.contains(&code), "the code is never printed");

    let (status, body) = server
        .post(
            "/api/password/reset/confirm",
            None,
            json!({"email": email, "code": code,
                   "new_password1": PASSWORD, "new_password2": PASSWORD}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let tokens = server.signed_in(email, PASSWORD).await;
    assert_eq!(server.account_status(&tokens).await, 200);
    let shown = env.show(email);
    assert_eq!(shown["status"], "CONFIRMED");
    assert_eq!(shown["email_verified"], true);
}

#[tokio::test]
async fn create_with_a_password_mails_the_sign_up_code_as_registration_does() {
    let env = Env::new().await;
    let out = env.ok_with(
        &[
            "user",
            "create",
            "Ada@Example.org",
            "--password-stdin",
            "--username",
            "ada",
            "--first-name",
            "Ada",
            "--last-name",
            "Lovelace",
        ],
        Some(PASSWORD),
    );
    assert!(
        line_with(&out, "created Ada@Example.org").contains("status UNCONFIRMED"),
        "{out}"
    );
    // No server runs: the command delivered the mail itself before it exited.
    assert!(
        out.contains("mailed a sign-up confirmation code to Ada@Example.org"),
        "{out}"
    );
    let mail = env.mails_to("Ada@Example.org").remove(0);
    let code = mail.code().expect("a code in the mail");
    assert!(mail.part("text/plain").unwrap().contains("/api/validate?"));

    // Found by username; every field but the hash.
    let shown = env.show("ADA");
    assert_eq!(shown["email"], "Ada@Example.org");
    assert_eq!(shown["username"], "ada");
    assert_eq!(shown["first_name"], "Ada");
    assert_eq!(shown["last_name"], "Lovelace");
    assert_eq!(shown["status"], "UNCONFIRMED");
    assert_eq!(shown["email_verified"], false);
    assert_eq!(shown["confirmed_at"], Value::Null);
    for field in ["uid", "created_at", "updated_at", "password_changed_at"] {
        assert!(shown[field].is_string(), "{field}: {shown}");
    }
    let table = env.ok(&["user", "show", "ada@example.org"]);
    assert!(
        line_with(&table, "status").ends_with("UNCONFIRMED"),
        "{table}"
    );
    for text in [shown.to_string(), table] {
        assert!(
            !text.contains("argon2") && !text.contains("password_hash"),
            "{text}"
        );
    }

    // The mailed code confirms the account over HTTP, as after registration.
    let server = env.server().await;
    let (status, body) = server
        .post(
            "/api/validate",
            None,
            json!({"user_name": "ada", "confirmation_code": code}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(env.show("ada")["status"], "CONFIRMED");
    server.signed_in("ada", PASSWORD).await;
}

#[tokio::test]
async fn confirm_confirms_once_and_then_says_so() {
    let env = Env::new().await;
    env.ok_with(
        &["user", "create", "bob@example.org", "--password-stdin"],
        Some(PASSWORD),
    );
    let out = env.ok(&["user", "confirm", "bob@example.org"]);
    assert!(
        out.contains("confirmed bob@example.org") && out.contains("status CONFIRMED"),
        "{out}"
    );
    let shown = env.show("bob@example.org");
    assert_eq!(shown["status"], "CONFIRMED");
    assert_eq!(shown["email_verified"], true);
    assert!(shown["confirmed_at"].is_string());
    // The sign-up code is dropped with the confirmation.
    let conn = env.conn().await;
    let uid = uuid::Uuid::parse_str(shown["uid"].as_str().unwrap()).unwrap();
    assert!(
        code::Entity::find()
            .filter(code::Column::Uid.eq(uid))
            .all(&conn)
            .await
            .unwrap()
            .is_empty()
    );
    conn.close().await.ok();

    let again = env.fails(&["user", "confirm", "BOB@example.org"]);
    assert_eq!(again, "error: user bob@example.org is already confirmed");
}

#[tokio::test]
async fn failed_commands_exit_1_with_one_line_and_change_nothing() {
    let env = Env::new().await;
    // Unknown users, by email, username and uid, for every command that names one.
    let uid = uuid::Uuid::new_v4().to_string();
    for name in ["nobody@example.org", "nobody", uid.as_str()] {
        for command in ["show", "confirm", "disable", "enable", "sign-out"] {
            assert_eq!(
                env.fails(&["user", command, name]),
                format!("error: no user {name}")
            );
        }
        assert_eq!(
            env.fails(&["user", "delete", name, "--yes"]),
            format!("error: no user {name}")
        );
        assert_eq!(
            env.fails_with(
                &["user", "set-password", name, "--password-stdin"],
                Some(NEW_PASSWORD)
            ),
            format!("error: no user {name}")
        );
    }

    // Refused inputs create nothing.
    let weak = env.fails_with(
        &["user", "create", "eve@example.org", "--password-stdin"],
        Some("password"),
    );
    assert!(weak.starts_with("error: password refused:"), "{weak}");
    let own = env.fails_with(
        &[
            "user",
            "create",
            "eve.smith@example.org",
            "--password-stdin",
        ],
        Some("eve.smith2024"),
    );
    assert!(own.starts_with("error: password refused:"), "{own}");
    let empty = env.fails_with(
        &["user", "create", "eve@example.org", "--password-stdin"],
        Some("\n"),
    );
    assert!(empty.starts_with("error: password refused:"), "{empty}");
    let bad = env.fails(&["user", "create", "not an email"]);
    assert!(bad.starts_with("error: email refused:"), "{bad}");
    let listed: Vec<Value> = serde_json::from_str(&env.ok(&["user", "list", "--json"])).unwrap();
    assert!(listed.is_empty(), "{listed:?}");
    assert!(
        std::fs::read_dir(env.mail.path()).unwrap().next().is_none(),
        "no mail"
    );

    // A taken email (in any case) or username.
    env.ok_with(
        &[
            "user",
            "create",
            "eve@example.org",
            "--password-stdin",
            "--username",
            "eve",
        ],
        Some(PASSWORD),
    );
    let taken = env.fails(&["user", "create", "EVE@example.org"]);
    assert_eq!(taken, "error: an account with this email already exists");
    let taken = env.fails(&["user", "create", "other@example.org", "--username", "Eve"]);
    assert_eq!(taken, "error: an account with this username already exists");

    // Delete without --yes, standard input not a terminal: refused, nothing deleted.
    let refused = env.fails(&["user", "delete", "eve"]);
    assert!(
        refused.contains("--yes") && refused.contains("eve@example.org"),
        "{refused}"
    );
    assert_eq!(env.show("eve")["email"], "eve@example.org");

    // Usage errors are clap's: status 2. A password is never an argument.
    let output = env.run(&["user", "set-password", "eve"], None);
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let output = env.run(
        &["user", "create", "x@example.org", "--password", "secret"],
        None,
    );
    assert_eq!(output.status.code(), Some(2), "{output:?}");
}

#[tokio::test]
async fn list_filters_by_prefix_and_status_and_pages_with_a_cursor() {
    let env = Env::new().await;
    for (email, confirmed) in [
        ("amy@example.org", true),
        ("Bob@Example.org", false),
        ("bea@example.org", true),
        ("b_x@example.org", false),
        ("carl@example.org", true),
    ] {
        let mut args = vec!["user", "create", email, "--password-stdin"];
        if confirmed {
            args.push("--confirmed");
        }
        env.ok_with(&args, Some(PASSWORD));
    }
    env.ok(&["user", "disable", "bea@example.org"]);

    let list = |args: &[&str]| -> (Vec<Value>, Option<String>) {
        let mut full = vec!["user", "list", "--json"];
        full.extend_from_slice(args);
        let output = env.run(&full, None);
        assert!(output.status.success(), "{output:?}");
        let rows: Vec<Value> = serde_json::from_slice(&output.stdout).unwrap();
        let stderr = String::from_utf8(output.stderr.clone()).unwrap();
        let next = stderr
            .lines()
            .find_map(|l| l.strip_prefix("more users follow: continue with --after "))
            .map(str::to_string);
        (rows, next)
    };
    let emails = |rows: &[Value]| -> Vec<String> {
        rows.iter()
            .map(|r| r["email"].as_str().unwrap().to_string())
            .collect()
    };

    // Everything, in one page: every field, in email order.
    let (all, next) = list(&[]);
    assert_eq!(next, None);
    assert_eq!(all.len(), 5);
    for row in &all {
        let mut keys: Vec<&String> = row.as_object().unwrap().keys().collect();
        keys.sort();
        let expected = [
            "created_at",
            "email",
            "email_verified",
            "status",
            "uid",
            "username",
        ];
        assert_eq!(keys, expected, "{row}");
    }
    let all_emails = emails(&all);
    let simple: Vec<&String> = all_emails.iter().filter(|e| !e.contains('_')).collect();
    assert_eq!(
        simple,
        [
            "amy@example.org",
            "bea@example.org",
            "Bob@Example.org",
            "carl@example.org"
        ]
    );

    // Pages of two, continued with the printed cursor, give the same listing.
    let mut paged = Vec::new();
    let mut after: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut args = vec!["--limit", "2"];
        if let Some(after) = &after {
            args.extend_from_slice(&["--after", after]);
        }
        let (rows, next) = list(&args);
        assert!(rows.len() <= 2);
        paged.extend(emails(&rows));
        pages += 1;
        match next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(paged, all_emails);

    // Filters: status (any case), prefix (matched on the lower-cased email, `_` literally).
    let (disabled, _) = list(&["--status", "DISABLED"]);
    assert_eq!(emails(&disabled), ["bea@example.org"]);
    assert_eq!(disabled[0]["status"], "DISABLED");
    let (unconfirmed, _) = list(&["--status", "unconfirmed"]);
    let mut unconfirmed = emails(&unconfirmed);
    unconfirmed.sort();
    assert_eq!(unconfirmed, ["Bob@Example.org", "b_x@example.org"]);
    let (b, _) = list(&["--email-prefix", "B"]);
    assert_eq!(b.len(), 3);
    let (b_, _) = list(&["--email-prefix", "b_"]);
    assert_eq!(emails(&b_), ["b_x@example.org"]);
    let (confirmed_b, _) = list(&["--email-prefix", "b", "--status", "CONFIRMED"]);
    assert!(confirmed_b.is_empty());

    // The table: a header and one line per account, columns aligned.
    let table = env.ok(&["user", "list", "--email-prefix", "b"]);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 4, "{table}");
    assert!(
        lines[0].starts_with("UID") && lines[0].contains("EMAIL") && lines[0].contains("STATUS")
    );
    let status_at = lines[0].find("STATUS").unwrap();
    let bea = line_with(&table, "bea@example.org");
    assert_eq!(&bea[status_at..status_at + 8], "DISABLED", "{table}");

    // Out of range limits are usage errors.
    for limit in ["0", "1001"] {
        assert_eq!(
            env.run(&["user", "list", "--limit", limit], None)
                .status
                .code(),
            Some(2)
        );
    }
}

#[tokio::test]
async fn mail_the_command_cannot_send_stays_queued_for_a_server() {
    let env = Env::new().await;
    // Nothing listens on this port: the command's own delivery attempt fails.
    let smtp = format!("smtp://127.0.0.1:{}", free_port());
    let output = env
        .authpool()
        .args(["user", "create", "hal@example.org"])
        .env("AUTHPOOL_MAIL_URL", &smtp)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let out = String::from_utf8(output.stdout).unwrap();
    assert!(
        line_with(&out, "created hal@example.org").contains("UNCONFIRMED"),
        "{out}"
    );
    let line = line_with(&out, "password-reset code");
    assert!(
        line.contains("could not be sent now") && line.contains("stays queued"),
        "{out}"
    );
    assert!(env.mails_to("hal@example.org").is_empty());

    // A server with a working transport delivers it.
    let _server = env.server().await;
    let mail = env.wait_for_mail("hal@example.org", 1).await.remove(0);
    assert!(mail.code().is_some());
}

/// Runs `authpool <args>` on a pseudo-terminal (util-linux `script`), typing `input`; `None`
/// when `script` is not installed.
fn on_a_terminal(env: &Env, args: &[&str], input: &str) -> Option<Output> {
    let available = Command::new("script")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !available {
        eprintln!("skipped: util-linux `script` is not installed");
        return None;
    }
    let quoted: Vec<String> = std::iter::once(env!("CARGO_BIN_EXE_authpool"))
        .chain(args.iter().copied())
        .map(|a| format!("'{}'", a.replace('\'', r"'\''")))
        .collect();
    let mut child = env
        .authpool()
        .get_envs()
        .fold(Command::new("script"), |mut command, (key, value)| {
            if let Some(value) = value {
                command.env(key, value);
            }
            command
        })
        .current_dir(env.dir.path())
        .args(["-q", "-e", "-c", &quoted.join(" "), "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    Some(child.wait_with_output().unwrap())
}

#[tokio::test]
async fn on_a_terminal_delete_asks_for_the_email_and_passwords_are_not_read() {
    let env = Env::new().await;
    env.ok_with(
        &["user", "create", "zed@example.org", "--password-stdin"],
        Some(PASSWORD),
    );

    let Some(wrong) = on_a_terminal(
        &env,
        &["user", "delete", "zed@example.org"],
        "zoe@example.org\n",
    ) else {
        return;
    };
    assert_eq!(wrong.status.code(), Some(1), "{wrong:?}");
    let text = String::from_utf8_lossy(&wrong.stdout);
    assert!(text.contains("Type its email to confirm"), "{text}");
    assert!(
        text.contains("error: not deleted: the email typed does not match"),
        "{text}"
    );
    assert_eq!(env.show("zed@example.org")["email"], "zed@example.org");

    let typed = on_a_terminal(
        &env,
        &["user", "delete", "zed@example.org"],
        "ZED@example.org\n",
    )
    .unwrap();
    assert!(typed.status.success(), "{typed:?}");
    assert!(String::from_utf8_lossy(&typed.stdout).contains("deleted zed@example.org"));
    assert!(
        env.fails(&["user", "show", "zed@example.org"])
            .contains("no user")
    );

    // A password typed on a terminal would be echoed: refused before anything is read.
    let refused = on_a_terminal(
        &env,
        &["user", "create", "amy@example.org", "--password-stdin"],
        &format!("{PASSWORD}\n"),
    )
    .unwrap();
    assert_eq!(refused.status.code(), Some(1), "{refused:?}");
    let text = String::from_utf8_lossy(&refused.stdout);
    assert!(
        text.contains("error: --password-stdin reads the password from a pipe"),
        "{text}"
    );
    assert!(
        env.fails(&["user", "show", "amy@example.org"])
            .contains("no user")
    );
}
