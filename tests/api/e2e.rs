//! The whole journey through the real binary and a real SMTP server: register, read the mail,
//! confirm by the emailed link, sign in, refresh, reset the password, sign in again.

use std::{
    process::{Child, Stdio},
    time::Duration,
};

use serde_json::{Value, json};

use crate::{
    db::TestDb,
    helpers::PASSWORD,
    process::{authpool, wait_for_exit, wait_until_live},
    smtp::{Mail, SmtpServer, free_port},
};

/// The server process, stopped with SIGTERM on drop.
struct Server {
    child: Child,
    base: String,
}

impl Server {
    async fn start(db: &TestDb, smtp: &SmtpServer, dir: &std::path::Path) -> Self {
        let port = free_port();
        let base = format!("http://127.0.0.1:{port}");
        let mut child = authpool(dir)
            .env("AUTHPOOL_BIND", format!("127.0.0.1:{port}"))
            .env("AUTHPOOL_PUBLIC_URL", &base)
            .env("AUTHPOOL_DATABASE_URL", &db.url)
            .env(
                "AUTHPOOL_MAIL_URL",
                format!("smtp://127.0.0.1:{}", smtp.port()),
            )
            .env("AUTHPOOL_ARGON2_MEMORY_KIB", "1024")
            .env("AUTHPOOL_ARGON2_ITERATIONS", "1")
            .env("AUTHPOOL_LOG_LEVEL", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("start authpool");
        wait_until_live(port, &mut child).await;
        Self { child, base }
    }

    async fn post(&self, path: &str, body: Value) -> reqwest::Response {
        reqwest::Client::new()
            .post(format!("{}{path}", self.base))
            .json(&body)
            .send()
            .await
            .expect("request")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The messages the SMTP server has for one recipient, waiting up to 10 s for the `n`th.
async fn mails_to(smtp: &SmtpServer, to: &str, n: usize) -> Vec<Mail> {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let mails: Vec<Mail> = smtp
            .messages()
            .iter()
            .map(|raw| Mail::parse(raw))
            .filter(|m| m.header("To").is_some_and(|h| h.contains(to)))
            .collect();
        if mails.len() >= n {
            return mails;
        }
        assert!(std::time::Instant::now() < deadline, "no mail #{n} to {to}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn register_confirm_by_link_login_refresh_reset_login() {
    let db = TestDb::new().await;
    let smtp = SmtpServer::start();
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(&db, &smtp, dir.path()).await;
    let email = "grace@example.org";

    let response = server
        .post(
            "/api/register",
            json!({"email": email, "password": PASSWORD}),
        )
        .await;
    assert_eq!(response.status(), 201);

    // The confirmation email arrives with a text and an HTML part, both with the code.
    let mail = mails_to(&smtp, email, 1).await.remove(0);
    let code = mail.code().expect("a code in the text part");
    assert!(
        mail.part("text/html")
            .expect("an HTML part")
            .contains(&code)
    );
    let text = mail.part("text/plain").unwrap();
    let link = text
        .split_whitespace()
        .find(|w| w.starts_with(&format!("{}/api/validate?", server.base)))
        .expect("a confirmation link");

    // A click on the link confirms the account, with a page for the browser.
    let page = reqwest::Client::new()
        .get(link)
        .header("Accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("confirmed"));

    let login = server
        .post("/api/login", json!({"email": email, "password": PASSWORD}))
        .await;
    assert_eq!(login.status(), 200);
    let tokens: Value = login.json().await.unwrap();

    let refreshed = server
        .post(
            "/api/refresh",
            json!({"refresh_token": tokens["refresh_token"]}),
        )
        .await;
    assert_eq!(refreshed.status(), 200);
    let refreshed: Value = refreshed.json().await.unwrap();
    assert_ne!(refreshed["refresh_token"], tokens["refresh_token"]);

    let reset = server
        .post("/api/password/reset", json!({"email": email}))
        .await;
    assert_eq!(reset.status(), 200);
    let reset_mail = mails_to(&smtp, email, 2).await.remove(1);
    let reset_code = reset_mail.code().expect("a reset code");
    let new_password = "purple monkey dishwasher lamp";
    let confirmed = server
        .post(
            "/api/password/reset/confirm",
            json!({"email": email, "code": reset_code,
                   "new_password1": new_password, "new_password2": new_password}),
        )
        .await;
    assert_eq!(confirmed.status(), 200);

    // The reset revoked every session: the refreshed tokens no longer work.
    let account = reqwest::Client::new()
        .get(format!("{}/api/account", server.base))
        .bearer_auth(refreshed["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(account.status(), 401);

    let old = server
        .post("/api/login", json!({"email": email, "password": PASSWORD}))
        .await;
    assert_eq!(old.status(), 401);
    let new = server
        .post(
            "/api/login",
            json!({"email": email, "password": new_password}),
        )
        .await;
    assert_eq!(new.status(), 200);

    crate::process::sigterm(&server.child);
    assert_eq!(wait_for_exit(&mut server.child).await.code(), Some(0));
}
