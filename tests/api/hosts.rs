//! Allowed hosts on /api: a per-user list of normalised hosts, unique per user and capped, and the
//! matching rule introspection applies to them.

use authpool::{domain::Host, pool::allowed_hosts::is_allowed};
use poem::{
    http::{StatusCode, header},
    test::TestResponse,
};
use sea_orm::prelude::Uuid;
use serde_json::{Value, json};

use crate::helpers::{PASSWORD, TestApp, assert_error, json};

const ADA: &str = "ada@example.org";
const BOB: &str = "bob@example.org";
const HOSTS: &str = "/api/allowed-hosts";

fn token(login: &Value) -> &str {
    login["access_token"].as_str().expect("an access token")
}

fn uid(login: &Value) -> Uuid {
    Uuid::parse_str(login["uid"].as_str().expect("a uid")).expect("a uuid")
}

fn path(host: &str) -> String {
    format!("{HOSTS}/{host}")
}

/// The `host` fields of a list, in order.
fn hosts(list: &Value) -> Vec<&str> {
    list.as_array()
        .expect("a list")
        .iter()
        .map(|h| h["host"].as_str().expect("a host"))
        .collect()
}

#[derive(Clone, Copy, Debug)]
enum Write {
    Put,
    Patch,
}

impl TestApp {
    async fn add_host(&self, token: &str, host: &str) -> TestResponse {
        self.post_as(HOSTS, token, json!({ "host": host })).await
    }

    async fn list_hosts(&self, token: &str) -> Vec<String> {
        let response = self.get_as(HOSTS, token).await;
        response.assert_status_is_ok();
        hosts(&json(response).await)
            .into_iter()
            .map(str::to_string)
            .collect()
    }

    async fn write_host(
        &self,
        method: Write,
        token: &str,
        host: &str,
        body: Value,
    ) -> TestResponse {
        let request = match method {
            Write::Put => self.client.put(path(host)),
            Write::Patch => self.client.patch(path(host)),
        };
        request
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .body_json(&body)
            .send()
            .await
    }

    async fn delete_host(&self, token: &str, host: &str) -> TestResponse {
        self.client
            .delete(path(host))
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .send()
            .await
    }
}

/// Asserts a 400 naming the field `host`.
async fn assert_host_refused(response: TestResponse) -> Value {
    let body = assert_error(response, 400, "InvalidParameterException").await;
    let messages = body["errors"]["host"].as_array().expect("errors.host");
    assert!(!messages.is_empty(), "{body}");
    body
}

#[tokio::test]
async fn a_new_user_has_no_allowed_hosts() {
    let app = TestApp::spawn().await;
    let login = app.signed_in(ADA, PASSWORD).await;

    assert!(app.list_hosts(token(&login)).await.is_empty());
}

#[tokio::test]
async fn adding_a_host_answers_201_with_the_whole_list_oldest_first() {
    let app = TestApp::spawn().await;
    let login = app.signed_in(ADA, PASSWORD).await;
    let token = token(&login);

    let first = app.add_host(token, "b.example.org").await;
    first.assert_status(StatusCode::CREATED);
    let first = json(first).await;
    assert_eq!(hosts(&first), ["b.example.org"]);
    let entry = first[0].as_object().unwrap();
    let mut fields: Vec<&str> = entry.keys().map(|k| &**k).collect();
    fields.sort_unstable();
    assert_eq!(fields, ["created_at", "host"]);
    chrono::DateTime::parse_from_rfc3339(entry["created_at"].as_str().unwrap())
        .expect("an RFC 3339 timestamp");

    // Creation order, not alphabetical.
    let second = app.add_host(token, "a.example.org").await;
    second.assert_status(StatusCode::CREATED);
    assert_eq!(
        hosts(&json(second).await),
        ["b.example.org", "a.example.org"]
    );

    assert_eq!(
        app.list_hosts(token).await,
        ["b.example.org", "a.example.org"]
    );
    // With a trailing slash too.
    let listed = app.get_as(&format!("{HOSTS}/"), token).await;
    listed.assert_status_is_ok();
    assert_eq!(
        hosts(&json(listed).await),
        ["b.example.org", "a.example.org"]
    );
}

#[tokio::test]
async fn hosts_are_stored_normalised() {
    let app = TestApp::spawn().await;
    let login = app.signed_in(ADA, PASSWORD).await;
    let token = token(&login);

    for (input, stored) in [
        ("https://origin.example:8443", "origin.example:8443"),
        ("https://https.example", "https.example"),
        ("https://https-port.example:443/", "https-port.example"),
        ("http://http-port.example:80", "http-port.example"),
        ("kept.example:443", "kept.example:443"),
        ("B\u{fc}cher.example", "xn--bcher-kva.example"),
        ("  UPPER.Example.ORG ", "upper.example.org"),
        ("*.Wild.Example", "*.wild.example"),
        ("192.0.2.1:8080", "192.0.2.1:8080"),
        ("[2001:DB8:0::1]:8443", "[2001:db8::1]:8443"),
        ("localhost:3000", "localhost:3000"),
    ] {
        let response = app.add_host(token, input).await;
        response.assert_status(StatusCode::CREATED);
        let list = json(response).await;
        assert_eq!(hosts(&list).last(), Some(&stored), "{input}");
    }
}

#[tokio::test]
async fn invalid_hosts_are_refused_naming_host_and_nothing_is_stored() {
    let app = TestApp::spawn().await;
    let login = app.signed_in(ADA, PASSWORD).await;
    let token = token(&login);

    for input in [
        "",
        "   ",
        "example.org/path",
        "https://example.org/path",
        "https://user@example.org",
        "user:secret@example.org",
        "exa_mple.org",
        "example..org",
        ".example.org",
        "-example.org",
        "*",
        "*.org",
        "a.*.example.org",
        "example.org:0",
        "example.org:65536",
        "example.org:http",
        "example.org?q=1",
        "example.org#top",
        "exa mple.org",
        "ftp://example.org",
        "2001:db8::1",
        "256.1.1.1",
    ] {
        let body = assert_host_refused(app.add_host(token, input).await).await;
        assert!(
            !body["detail"].as_str().unwrap().contains("secret"),
            "errors never repeat the input: {body}"
        );
    }
    // A missing host names the field as well.
    assert_host_refused(app.post_as(HOSTS, token, json!({})).await).await;

    assert!(app.list_hosts(token).await.is_empty());
}

#[tokio::test]
async fn a_host_can_be_added_once_compared_after_normalisation() {
    let app = TestApp::spawn().await;
    let login = app.signed_in(ADA, PASSWORD).await;
    let token = token(&login);
    app.add_host(token, "example.org")
        .await
        .assert_status(StatusCode::CREATED);

    for same in [
        "example.org",
        "HTTPS://Example.ORG:443/",
        "http://example.org",
    ] {
        let body = assert_host_refused(app.add_host(token, same).await).await;
        assert!(
            body["errors"]["host"][0]
                .as_str()
                .unwrap()
                .contains("already"),
            "{body}"
        );
    }
    // A port makes it another host.
    app.add_host(token, "example.org:8443")
        .await
        .assert_status(StatusCode::CREATED);

    assert_eq!(
        app.list_hosts(token).await,
        ["example.org", "example.org:8443"]
    );
}

#[tokio::test]
async fn the_number_of_hosts_per_user_is_capped() {
    let app = TestApp::with_settings(&[("max_allowed_hosts", "2")]).await;
    let ada = app.signed_in(ADA, PASSWORD).await;
    let bob = app.signed_in(BOB, PASSWORD).await;
    for host in ["a.example", "b.example"] {
        app.add_host(token(&ada), host)
            .await
            .assert_status(StatusCode::CREATED);
    }

    let body = assert_error(
        app.add_host(token(&ada), "c.example").await,
        400,
        "InvalidParameterException",
    )
    .await;
    let detail = body["detail"].as_str().unwrap();
    assert!(
        detail.contains('2') && detail.contains("delete"),
        "{detail}"
    );
    assert_eq!(
        app.list_hosts(token(&ada)).await,
        ["a.example", "b.example"]
    );

    // The cap is per user, and a freed place can be used again.
    app.add_host(token(&bob), "c.example")
        .await
        .assert_status(StatusCode::CREATED);
    app.delete_host(token(&ada), "a.example")
        .await
        .assert_status_is_ok();
    app.add_host(token(&ada), "c.example")
        .await
        .assert_status(StatusCode::CREATED);
    assert_eq!(
        app.list_hosts(token(&ada)).await,
        ["b.example", "c.example"]
    );
}

#[tokio::test]
async fn one_host_is_read_by_its_normalised_and_url_encoded_name() {
    let app = TestApp::spawn().await;
    let login = app.signed_in(ADA, PASSWORD).await;
    let token = token(&login);
    let created = json(app.add_host(token, "example.org:8443").await).await;

    for name in [
        "example.org:8443",
        "example.org%3A8443",
        "EXAMPLE.org:8443",
        "https%3A%2F%2FExample.org%3A8443",
        "https%3A%2F%2Fexample.org%3A8443%2F",
    ] {
        let response = app.get_as(&path(name), token).await;
        response.assert_status_is_ok();
        let host = json(response).await;
        assert_eq!(host, created[0], "{name}");
    }

    let bucher = json(app.add_host(token, "xn--bcher-kva.example").await).await;
    let response = app.get_as(&path("b%C3%BCcher.example"), token).await;
    response.assert_status_is_ok();
    assert_eq!(json(response).await, bucher[1]);
}

#[tokio::test]
async fn unknown_and_unparseable_hosts_are_not_found() {
    let app = TestApp::spawn().await;
    let login = app.signed_in(ADA, PASSWORD).await;
    let token = token(&login);
    app.add_host(token, "example.org:8443")
        .await
        .assert_status(StatusCode::CREATED);

    // Without the port it is another host.
    for name in ["example.org", "unknown.example", "exa_mple.org", "%2A"] {
        assert_error(
            app.get_as(&path(name), token).await,
            404,
            "ResourceNotFoundException",
        )
        .await;
    }
}

#[tokio::test]
async fn put_and_patch_replace_a_host_keeping_its_place() {
    for method in [Write::Put, Write::Patch] {
        let app = TestApp::spawn().await;
        let login = app.signed_in(ADA, PASSWORD).await;
        let token = token(&login);
        app.add_host(token, "old.example")
            .await
            .assert_status(StatusCode::CREATED);
        let before = json(app.add_host(token, "other.example").await).await;

        let response = app
            .write_host(
                method,
                token,
                "https%3A%2F%2Fold.example",
                json!({"host": "HTTPS://New.Example:443"}),
            )
            .await;
        response.assert_status_is_ok();
        let renamed = json(response).await;
        assert_eq!(renamed["host"], "new.example", "{method:?}");
        assert_eq!(renamed["created_at"], before[0]["created_at"], "{method:?}");

        assert_eq!(
            app.list_hosts(token).await,
            ["new.example", "other.example"],
            "{method:?}"
        );
        assert_error(
            app.get_as(&path("old.example"), token).await,
            404,
            "ResourceNotFoundException",
        )
        .await;
        let read = app.get_as(&path("new.example"), token).await;
        assert_eq!(json(read).await, renamed, "{method:?}");

        // Replacing a host by itself (in another spelling) changes nothing.
        let same = app
            .write_host(method, token, "new.example", json!({"host": "NEW.example"}))
            .await;
        same.assert_status_is_ok();
        assert_eq!(json(same).await, renamed, "{method:?}");
    }
}

#[tokio::test]
async fn a_host_cannot_be_replaced_by_another_of_yours_or_an_invalid_one() {
    for method in [Write::Put, Write::Patch] {
        let app = TestApp::spawn().await;
        let login = app.signed_in(ADA, PASSWORD).await;
        let token = token(&login);
        for host in ["a.example", "b.example"] {
            app.add_host(token, host)
                .await
                .assert_status(StatusCode::CREATED);
        }

        let body = assert_host_refused(
            app.write_host(
                method,
                token,
                "a.example",
                json!({"host": "https://B.example"}),
            )
            .await,
        )
        .await;
        assert!(
            body["errors"]["host"][0]
                .as_str()
                .unwrap()
                .contains("already")
        );
        for invalid in [
            json!({"host": "b.example/x"}),
            json!({"host": ""}),
            json!({}),
        ] {
            assert_host_refused(app.write_host(method, token, "a.example", invalid).await).await;
        }
        assert_error(
            app.write_host(method, token, "c.example", json!({"host": "d.example"}))
                .await,
            404,
            "ResourceNotFoundException",
        )
        .await;

        assert_eq!(
            app.list_hosts(token).await,
            ["a.example", "b.example"],
            "{method:?}"
        );
    }
}

#[tokio::test]
async fn delete_removes_a_host() {
    let app = TestApp::spawn().await;
    let login = app.signed_in(ADA, PASSWORD).await;
    let token = token(&login);
    for host in ["a.example", "*.b.example"] {
        app.add_host(token, host)
            .await
            .assert_status(StatusCode::CREATED);
    }

    let response = app.delete_host(token, "%2A.B.example").await;
    response.assert_status_is_ok();
    let body = json(response).await;
    assert!(
        body["detail"].as_str().is_some_and(|d| !d.is_empty()),
        "{body}"
    );

    assert_eq!(app.list_hosts(token).await, ["a.example"]);
    assert_error(
        app.delete_host(token, "*.b.example").await,
        404,
        "ResourceNotFoundException",
    )
    .await;
    assert_error(
        app.get_as(&path("*.b.example"), token).await,
        404,
        "ResourceNotFoundException",
    )
    .await;
}

#[tokio::test]
async fn another_users_host_is_indistinguishable_from_an_unknown_one() {
    let app = TestApp::spawn().await;
    let ada = app.signed_in(ADA, PASSWORD).await;
    let bob = app.signed_in(BOB, PASSWORD).await;
    app.add_host(token(&ada), "ada.example")
        .await
        .assert_status(StatusCode::CREATED);

    assert!(app.list_hosts(token(&bob)).await.is_empty());
    for host in ["ada.example", "unknown.example"] {
        let mut answers = Vec::new();
        answers.push(app.get_as(&path(host), token(&bob)).await);
        for method in [Write::Put, Write::Patch] {
            answers.push(
                app.write_host(method, token(&bob), host, json!({"host": "bob.example"}))
                    .await,
            );
        }
        answers.push(app.delete_host(token(&bob), host).await);
        for answer in answers {
            let body = assert_error(answer, 404, "ResourceNotFoundException").await;
            assert_eq!(
                body,
                json!({"detail": "No such allowed host.", "code": "ResourceNotFoundException"})
            );
        }
    }

    // Ada's host is untouched, and Bob may allow the same host for himself.
    assert_eq!(app.list_hosts(token(&ada)).await, ["ada.example"]);
    app.add_host(token(&bob), "ada.example")
        .await
        .assert_status(StatusCode::CREATED);
    assert_eq!(app.list_hosts(token(&bob)).await, ["ada.example"]);
    assert_eq!(app.list_hosts(token(&ada)).await, ["ada.example"]);
}

#[tokio::test]
async fn every_operation_needs_a_bearer_token() {
    let app = TestApp::spawn().await;
    let responses = [
        app.client.get(HOSTS).send().await,
        app.client
            .post(HOSTS)
            .body_json(&json!({"host": "example.org"}))
            .send()
            .await,
        app.client.get(path("example.org")).send().await,
        app.client
            .put(path("example.org"))
            .body_json(&json!({"host": "example.org"}))
            .send()
            .await,
        app.client
            .patch(path("example.org"))
            .body_json(&json!({"host": "example.org"}))
            .send()
            .await,
        app.client.delete(path("example.org")).send().await,
        app.get_as(HOSTS, "not-a-token").await,
    ];
    for response in responses {
        assert_error(response, 401, "NotAuthorizedException").await;
    }
}

/// Introspection's rule, through the pool function on the real database.
#[tokio::test]
async fn is_allowed_applies_the_matching_rules_to_the_users_own_hosts() {
    let app = TestApp::spawn().await;
    let ada = app.signed_in(ADA, PASSWORD).await;
    let bob = app.signed_in(BOB, PASSWORD).await;
    let allowed = |uid: Uuid, requested: &'static str| {
        let db = app.state.db.clone();
        async move {
            let requested = Host::parse(requested).expect("a valid host");
            is_allowed(&db, uid, &requested).await.expect("the query")
        }
    };

    // Nothing is allowed before a host is added.
    assert!(!allowed(uid(&ada), "example.org").await);

    for host in [
        "*.example.org",
        "exact.example",
        "ported.example:8443",
        "192.0.2.1",
        "[2001:db8::1]:3000",
    ] {
        app.add_host(token(&ada), host)
            .await
            .assert_status(StatusCode::CREATED);
    }
    app.add_host(token(&bob), "bob.example")
        .await
        .assert_status(StatusCode::CREATED);

    let ada_uid = uid(&ada);
    for (requested, expected) in [
        // A wildcard: any depth below, never the apex.
        ("a.example.org", true),
        ("a.b.c.example.org", true),
        ("https://App.Example.org:8443", true),
        ("example.org", false),
        ("badexample.org", false),
        ("a.example.org.evil.test", false),
        // A host without a port: any port.
        ("exact.example", true),
        ("exact.example:1234", true),
        ("https://exact.example", true),
        ("sub.exact.example", false),
        // A host with a port: only that port.
        ("ported.example:8443", true),
        ("https://ported.example:8443/", true),
        ("ported.example", false),
        ("ported.example:8444", false),
        // IP addresses: exactly.
        ("192.0.2.1", true),
        ("192.0.2.1:80", true),
        ("192.0.2.10", false),
        ("[::ffff:192.0.2.1]", false),
        ("[2001:db8:0::1]:3000", true),
        ("[2001:db8::1]", false),
        // Another user's host does not count.
        ("bob.example", false),
    ] {
        assert_eq!(allowed(ada_uid, requested).await, expected, "{requested}");
    }
    assert!(allowed(uid(&bob), "bob.example").await);
    assert!(!allowed(uid(&bob), "a.example.org").await);

    // A removed host no longer matches.
    app.delete_host(token(&ada), "*.example.org")
        .await
        .assert_status_is_ok();
    assert!(!allowed(ada_uid, "a.example.org").await);
}

#[tokio::test]
async fn concurrent_additions_respect_uniqueness_and_the_cap() {
    let app = TestApp::with_settings(&[("max_allowed_hosts", "3")]).await;
    let login = app.signed_in(ADA, PASSWORD).await;
    let token = token(&login);
    app.add_host(token, "first.example")
        .await
        .assert_status(StatusCode::CREATED);

    // The same host twice at once: the database's uniqueness decides.
    let (one, two) = tokio::join!(
        app.add_host(token, "same.example"),
        app.add_host(token, "https://SAME.example")
    );
    let mut statuses = [one.0.status().as_u16(), two.0.status().as_u16()];
    statuses.sort_unstable();
    assert_eq!(statuses, [201, 400]);

    // Two different hosts for the last place: one gets it.
    let (one, two) = tokio::join!(
        app.add_host(token, "x.example"),
        app.add_host(token, "y.example")
    );
    let mut statuses = [one.0.status().as_u16(), two.0.status().as_u16()];
    statuses.sort_unstable();
    assert_eq!(statuses, [201, 400]);
    assert_eq!(app.list_hosts(token).await.len(), 3);
}
