//! Every body-taking operation accepts JSON, `application/x-www-form-urlencoded` and
//! `multipart/form-data` with the same field names, and answers them alike.
//!
//! One scenario walks through every such operation; it runs once per encoding, each time on a
//! fresh database, and the three transcripts (operation, status, body with volatile values
//! masked) must be identical. The scenario must cover every operation the OpenAPI document
//! gives a request body, so a new operation cannot be left out.

use std::collections::BTreeSet;

use poem::http::Method;
use sea_orm::EntityTrait;
use serde_json::{Map, Value, json};

use crate::helpers::{PASSWORD, TestApp, assert_error, json};

const SECRET: &str = "introspection-secret-for-the-encodings-test";
const BOUNDARY: &str = "authpool-test-boundary-7MA4YWxkTrZu0gW";

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Encoding {
    Json,
    Form,
    Multipart,
}

const ENCODINGS: [Encoding; 3] = [Encoding::Json, Encoding::Form, Encoding::Multipart];

/// A field's value as a form sends it: text, objects as JSON strings; `null` is left out.
fn form_text(value: &Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// The content type and bytes of a JSON object in an encoding.
pub fn encode(encoding: Encoding, body: &Value) -> (String, Vec<u8>) {
    let fields: Vec<(String, String)> = body
        .as_object()
        .expect("a body is an object")
        .iter()
        .filter_map(|(k, v)| Some((k.clone(), form_text(v)?)))
        .collect();
    match encoding {
        Encoding::Json => ("application/json".into(), body.to_string().into_bytes()),
        Encoding::Form => {
            let mut form = url::form_urlencoded::Serializer::new(String::new());
            for (name, value) in &fields {
                form.append_pair(name, value);
            }
            (
                "application/x-www-form-urlencoded".into(),
                form.finish().into_bytes(),
            )
        }
        Encoding::Multipart => {
            let mut out = String::new();
            for (name, value) in &fields {
                out.push_str(&format!(
                    "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n\
                     {value}\r\n"
                ));
            }
            out.push_str(&format!("--{BOUNDARY}--\r\n"));
            (
                format!("multipart/form-data; boundary={BOUNDARY}"),
                out.into_bytes(),
            )
        }
    }
}

/// One run of the scenario in one encoding.
struct Run {
    app: TestApp,
    encoding: Encoding,
    /// (operation id, status, body with volatile values masked)
    transcript: Vec<(String, u16, Value)>,
}

impl Run {
    async fn new(encoding: Encoding) -> Self {
        let app = TestApp::with_settings(&[("introspection_secret", SECRET)]).await;
        Self {
            app,
            encoding,
            transcript: Vec::new(),
        }
    }

    /// Sends `body` in this run's encoding and records the answer; returns status and body.
    async fn call(
        &mut self,
        operation: &str,
        method: Method,
        path: &str,
        bearer: Option<&str>,
        body: Value,
    ) -> (u16, Value) {
        let (content_type, bytes) = encode(self.encoding, &body);
        let mut request = self
            .app
            .client
            .request(method, path)
            .content_type(content_type)
            .body(bytes);
        if let Some(token) = bearer {
            request = request.header("Authorization", format!("Bearer {token}"));
        }
        let response = request.send().await;
        let status = response.0.status().as_u16();
        let body = json(response).await;
        self.transcript
            .push((operation.to_string(), status, masked(&body)));
        (status, body)
    }
}

/// The body with values that differ between runs (ids, tokens, times) replaced by a marker.
fn masked(value: &Value) -> Value {
    const VOLATILE: &[&str] = &[
        "uid",
        "id",
        "user_id",
        "id_token",
        "access_token",
        "refresh_token",
        "access",
        "refresh",
        "token",
        "key",
        "created_at",
        "updated_at",
        "last_used_at",
    ];
    match value {
        Value::Object(object) => Value::Object(
            object
                .iter()
                .map(|(k, v)| {
                    let v = if VOLATILE.contains(&k.as_str()) && !v.is_null() {
                        json!("<volatile>")
                    } else {
                        masked(v)
                    };
                    (k.clone(), v)
                })
                .collect::<Map<_, _>>(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(masked).collect()),
        other => other.clone(),
    }
}

fn text(value: &Value, field: &str) -> String {
    value[field]
        .as_str()
        .unwrap_or_else(|| panic!("{field} in {value}"))
        .to_string()
}

/// Every body-taking operation, in an order where each step's preconditions hold.
async fn scenario(run: &mut Run) {
    let email = "ada@example.org";
    let post = Method::POST;

    // Field errors are the same whatever the encoding.
    run.call(
        "register",
        post.clone(),
        "/api/register",
        None,
        json!({"email": email, "subscribe": "perhaps"}),
    )
    .await;
    run.call(
        "register",
        post.clone(),
        "/api/register",
        None,
        json!({"email": email, "password": PASSWORD, "username": "ada",
               "first_name": "Ada", "last_name": "Lovelace", "subscribe": true}),
    )
    .await;
    run.call(
        "validate_resend",
        post.clone(),
        "/api/validate/resend",
        None,
        json!({"email": email}),
    )
    .await;
    let code = run.app.last_code(email).await;
    run.call(
        "validate",
        post.clone(),
        "/api/validate",
        None,
        json!({"user_name": email, "confirmation_code": code}),
    )
    .await;
    let (_, tokens) = run
        .call(
            "login",
            post.clone(),
            "/api/login",
            None,
            json!({"email": "ada", "password": PASSWORD}),
        )
        .await;
    let (_, tokens) = run
        .call(
            "refresh",
            post.clone(),
            "/api/refresh",
            None,
            json!({"refresh_token": text(&tokens, "refresh_token")}),
        )
        .await;
    let access = text(&tokens, "access_token");
    let bearer = Some(access.as_str());

    run.call(
        "account_update",
        Method::PUT,
        "/api/account",
        bearer,
        json!({"last_name": "King", "country": "GB",
               "additional_fields": {"team": "engines", "seats": 2}}),
    )
    .await;
    let new_email = "ada.king@example.org";
    run.call(
        "account_patch",
        Method::PATCH,
        "/api/account",
        bearer,
        json!({"email": new_email}),
    )
    .await;
    // No fields at all: an empty form, an empty multipart body, `{}`.
    run.call(
        "verify_email_resend",
        post.clone(),
        "/api/verify/email/resend",
        bearer,
        json!({}),
    )
    .await;
    let code = run.app.last_code(new_email).await;
    run.call(
        "verify_email",
        post.clone(),
        "/api/verify/email",
        bearer,
        json!({"verification_code": code}),
    )
    .await;
    run.call(
        "subscribe",
        post.clone(),
        "/api/subscribe",
        bearer,
        json!({"email": "news@example.org"}),
    )
    .await;

    let (_, created) = run
        .call(
            "api_tokens_create",
            post.clone(),
            "/api/api-tokens",
            bearer,
            json!({"name": "reports", "is_active": false}),
        )
        .await;
    let key = text(&created, "key");
    let secret = text(&created, "token");
    let token_path = format!("/api/api-tokens/{key}");
    run.call(
        "api_token_update",
        Method::PUT,
        &token_path,
        bearer,
        json!({"enable": true}),
    )
    .await;
    run.call(
        "api_token_patch",
        Method::PATCH,
        &token_path,
        bearer,
        json!({"name": "nightly reports", "is_active": true}),
    )
    .await;
    run.call(
        "allowed_hosts_create",
        post.clone(),
        "/api/allowed-hosts",
        bearer,
        json!({"host": "https://Example.org:443"}),
    )
    .await;
    run.call(
        "allowed_host_update",
        Method::PUT,
        "/api/allowed-hosts/example.org",
        bearer,
        json!({"host": "*.example.org"}),
    )
    .await;
    run.call(
        "allowed_host_patch",
        Method::PATCH,
        "/api/allowed-hosts/*.example.org",
        bearer,
        json!({"host": "*.example.com"}),
    )
    .await;
    run.call(
        "api_tokens_introspect",
        post.clone(),
        "/api/api-tokens/introspect",
        Some(SECRET),
        json!({"token": secret, "host": "data.example.com"}),
    )
    .await;

    let new_password = "a different horse battery staple";
    run.call(
        "password_change",
        post.clone(),
        "/api/password/change",
        bearer,
        json!({"old_password": PASSWORD, "new_password1": new_password,
               "new_password2": new_password}),
    )
    .await;
    run.call(
        "password_reset",
        post.clone(),
        "/api/password/reset",
        None,
        json!({"email": new_email}),
    )
    .await;
    let code = run.app.last_code(new_email).await;
    run.call(
        "password_reset_confirm",
        post.clone(),
        "/api/password/reset/confirm",
        None,
        json!({"email": new_email, "code": code, "new_password1": PASSWORD,
               "new_password2": PASSWORD}),
    )
    .await;
    let (_, tokens) = run
        .call(
            "login",
            post.clone(),
            "/api/login",
            None,
            json!({"email": new_email, "password": PASSWORD}),
        )
        .await;
    run.call(
        "logout",
        post.clone(),
        "/api/logout",
        Some(&text(&tokens, "access_token")),
        json!({"everywhere": true}),
    )
    .await;

    // The compat surface, with its own field names.
    let grace = "grace@example.org";
    run.call(
        "compat_register",
        post.clone(),
        "/authentication/api/register/",
        None,
        json!({"email": grace, "password": PASSWORD, "name": "Grace", "surname": "Hopper",
               "organizationType": "navy", "organizationName": "US Navy", "country": "US",
               "additional_fields": {"rank": "rear admiral"}}),
    )
    .await;
    let code = run.app.last_code(grace).await;
    run.call(
        "validate",
        post.clone(),
        "/api/validate",
        None,
        json!({"user_name": grace, "confirmation_code": code}),
    )
    .await;
    run.call(
        "compat_login",
        post.clone(),
        "/authentication/api/login/",
        None,
        json!({"email": grace, "password": PASSWORD}),
    )
    .await;
    let (_, pair) = run
        .call(
            "compat_token",
            post.clone(),
            "/authentication/api/token/",
            None,
            json!({"username": grace, "password": PASSWORD}),
        )
        .await;
    let (_, pair) = run
        .call(
            "compat_token_refresh",
            post.clone(),
            "/authentication/api/token/refresh/",
            None,
            json!({"refresh": text(&pair, "refresh")}),
        )
        .await;
    let (_, pair) = run
        .call(
            "compat_refresh",
            post.clone(),
            "/authentication/api/refresh/",
            None,
            json!({"refresh": text(&pair, "refresh")}),
        )
        .await;
    run.call(
        "compat_logout",
        post.clone(),
        "/authentication/api/logout/",
        Some(&text(&pair, "access")),
        json!({"refresh": text(&pair, "refresh")}),
    )
    .await;
    run.call(
        "compat_request_reset",
        post.clone(),
        "/authentication/api/request-reset/",
        None,
        json!({"email": grace}),
    )
    .await;
}

/// What the scenario must answer, step by step (the JSON run is checked against it, the
/// others against the JSON run).
const EXPECTED: &[(&str, u16)] = &[
    ("register", 400),
    ("register", 201),
    ("validate_resend", 200),
    ("validate", 200),
    ("login", 200),
    ("refresh", 200),
    ("account_update", 200),
    ("account_patch", 200),
    ("verify_email_resend", 200),
    ("verify_email", 200),
    ("subscribe", 200),
    ("api_tokens_create", 201),
    ("api_token_update", 200),
    ("api_token_patch", 200),
    ("allowed_hosts_create", 201),
    ("allowed_host_update", 200),
    ("allowed_host_patch", 200),
    ("api_tokens_introspect", 200),
    ("password_change", 200),
    ("password_reset", 200),
    ("password_reset_confirm", 200),
    ("login", 200),
    ("logout", 200),
    ("compat_register", 201),
    ("validate", 200),
    ("compat_login", 200),
    ("compat_token", 200),
    ("compat_token_refresh", 200),
    ("compat_refresh", 200),
    ("compat_logout", 200),
    ("compat_request_reset", 200),
];

/// Operation ids of every operation the OpenAPI document gives a request body.
fn body_taking_operations() -> BTreeSet<String> {
    let spec: Value = serde_json::from_str(&authpool::api::spec_json()).unwrap();
    let mut ids = BTreeSet::new();
    for item in spec["paths"].as_object().unwrap().values() {
        for operation in item.as_object().unwrap().values() {
            if let Some(content) = operation["requestBody"]["content"].as_object() {
                let types: BTreeSet<&str> = content.keys().map(String::as_str).collect();
                assert_eq!(
                    types,
                    BTreeSet::from([
                        "application/json",
                        "application/x-www-form-urlencoded",
                        "multipart/form-data"
                    ]),
                    "{}",
                    operation["operationId"]
                );
                ids.insert(operation["operationId"].as_str().unwrap().to_string());
            }
        }
    }
    ids
}

#[tokio::test]
async fn every_operation_answers_the_same_payload_alike_in_all_three_encodings() {
    let mut transcripts = Vec::new();
    for encoding in ENCODINGS {
        let mut run = Run::new(encoding).await;
        scenario(&mut run).await;
        transcripts.push((encoding, run.transcript));
    }
    let (_, reference) = &transcripts[0];
    let statuses: Vec<(&str, u16)> = reference
        .iter()
        .map(|(op, status, _)| (op.as_str(), *status))
        .collect();
    assert_eq!(statuses, EXPECTED, "{reference:#?}");
    // The invalid registration names its fields the same way in every encoding.
    assert_eq!(
        reference[0].2["errors"],
        json!({"password": ["This field is required."],
               "subscribe": ["Must be of type boolean."]})
    );
    // Objects and booleans sent as form text arrive typed.
    let account = &reference[6].2;
    assert_eq!(
        account["additional_fields"],
        json!({"team": "engines", "seats": 2})
    );
    assert_eq!(reference[12].2["is_active"], json!(true));
    assert_eq!(reference[17].2["active"], json!(true), "{reference:#?}");
    let grace = &reference[23].2;
    assert_eq!(grace["first_name"], json!("Grace"), "{grace}");
    assert_eq!(grace["last_name"], json!("Hopper"), "{grace}");
    for (encoding, transcript) in &transcripts[1..] {
        for (expected, got) in reference.iter().zip(transcript) {
            assert_eq!(expected, got, "{encoding:?} differs from JSON");
        }
        assert_eq!(reference.len(), transcript.len());
    }
    let covered: BTreeSet<String> = reference.iter().map(|(op, _, _)| op.clone()).collect();
    assert_eq!(
        covered,
        body_taking_operations(),
        "the scenario must cover every operation with a request body"
    );
}

#[tokio::test]
async fn a_body_in_an_unsupported_content_type_is_415_on_every_operation() {
    let app = TestApp::with_settings(&[("introspection_secret", SECRET)]).await;
    let tokens = app.signed_in("ada@example.org", PASSWORD).await;
    let access = tokens["access_token"].as_str().unwrap().to_string();
    let spec: Value = serde_json::from_str(&authpool::api::spec_json()).unwrap();
    let mut checked = 0;
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            if operation.get("requestBody").is_none() {
                continue;
            }
            let path = path
                .replace("{key}", "nokey")
                .replace("{host}", "example.org");
            let bearer = if path.ends_with("/introspect") {
                SECRET
            } else {
                &access
            };
            for (content_type, body) in [
                ("text/plain", "email=ada@example.org"),
                ("application/xml", "<email/>"),
            ] {
                let response = app
                    .client
                    .request(method.to_uppercase().parse().unwrap(), &path)
                    .header("Authorization", format!("Bearer {bearer}"))
                    .content_type(content_type)
                    .body(body)
                    .send()
                    .await;
                let error = assert_error(response, 415, "UnsupportedMediaTypeException").await;
                assert!(
                    error["detail"]
                        .as_str()
                        .unwrap()
                        .contains("multipart/form-data"),
                    "{error}"
                );
            }
            // A body with no content type at all must say what it is.
            let response = app
                .client
                .request(method.to_uppercase().parse().unwrap(), &path)
                .header("Authorization", format!("Bearer {bearer}"))
                .body(r#"{"email": "ada@example.org"}"#)
                .send()
                .await;
            assert_error(response, 415, "UnsupportedMediaTypeException").await;
            checked += 1;
        }
    }
    assert_eq!(checked, body_taking_operations().len());
}

#[tokio::test]
async fn form_bodies_name_missing_and_mistyped_fields() {
    let app = TestApp::spawn().await;
    for encoding in [Encoding::Form, Encoding::Multipart] {
        let (content_type, bytes) = encode(
            encoding,
            &json!({"email": "ada@example.org", "subscribe": "sometimes"}),
        );
        let response = app
            .client
            .post("/api/register")
            .content_type(content_type)
            .body(bytes)
            .send()
            .await;
        let error = assert_error(response, 400, "InvalidParameterException").await;
        assert_eq!(
            error["errors"],
            json!({"password": ["This field is required."],
                   "subscribe": ["Must be of type boolean."]}),
            "{encoding:?}"
        );
    }
    let users = entity::user::Entity::find()
        .all(&app.state.db)
        .await
        .unwrap();
    assert!(users.is_empty(), "nothing was created");
}

#[tokio::test]
async fn json_fields_of_the_wrong_type_are_refused_not_converted() {
    let app = TestApp::spawn().await;
    // poem-openapi alone reads `false` and `12345678` as the strings "false" and "12345678".
    let response = app
        .post(
            "/api/register",
            json!({"email": "ada@example.org", "password": 12345678, "username": false,
                   "first_name": null}),
        )
        .await;
    let error = assert_error(response, 400, "InvalidParameterException").await;
    assert_eq!(
        error["errors"],
        json!({"password": ["Must be of type string."],
               "username": ["Must be of type string."]})
    );
    let users = entity::user::Entity::find()
        .all(&app.state.db)
        .await
        .unwrap();
    assert!(users.is_empty(), "nothing was created");

    // A host that is a JSON boolean is not the host named "false".
    let token = app.signed_in("ada@example.org", PASSWORD).await;
    let token = token["access_token"].as_str().unwrap();
    let response = app
        .post_as("/api/allowed-hosts", token, json!({"host": false}))
        .await;
    let error = assert_error(response, 400, "InvalidParameterException").await;
    assert_eq!(
        error["errors"],
        json!({"host": ["Must be of type string."]})
    );
    let hosts = entity::allowed_host::Entity::find()
        .all(&app.state.db)
        .await
        .unwrap();
    assert!(hosts.is_empty(), "nothing was stored");

    // `null` for an optional field is the field left out, as the document says (nullable).
    app.post(
        "/api/register",
        json!({"email": "bob@example.org", "password": PASSWORD, "username": null}),
    )
    .await
    .assert_status(poem::http::StatusCode::CREATED);
}

/// PostgreSQL cannot store or compare text with NUL in it: before these were refused, each of
/// these requests was a 500 there (found by schemathesis on PostgreSQL).
#[tokio::test]
async fn a_nul_character_is_refused_in_any_field_and_names_no_api_token() {
    let app = TestApp::spawn().await;
    let ada = app.signed_in("ada@example.org", PASSWORD).await;
    let token = ada["access_token"].as_str().unwrap();

    let response = app
        .post(
            "/api/login",
            json!({"email": "ada\u{0}@example.org", "password": PASSWORD}),
        )
        .await;
    let error = assert_error(response, 400, "InvalidParameterException").await;
    assert_eq!(
        error["errors"],
        json!({"email": ["Null characters are not allowed."]})
    );
    let response = app
        .post(
            "/authentication/api/token/",
            json!({"username": "ada\u{0}", "password": PASSWORD}),
        )
        .await;
    assert_error(response, 400, "InvalidParameterException").await;

    for body in [
        json!({"additional_fields": {"key\u{0}": 1}}),
        json!({"additional_fields": {"a": ["b", {"c": "d\u{0}"}]}}),
    ] {
        let response = app
            .client
            .put("/api/account")
            .header("Authorization", format!("Bearer {token}"))
            .body_json(&body)
            .send()
            .await;
        let error = assert_error(response, 400, "InvalidParameterException").await;
        assert_eq!(
            error["errors"],
            json!({"additional_fields": ["Null characters are not allowed."]})
        );
    }
    let account = json(app.get_as("/api/account", token).await).await;
    assert_eq!(account["additional_fields"], json!({}), "nothing changed");

    for method in [Method::GET, Method::PATCH, Method::DELETE] {
        let response = app
            .client
            .request(method.clone(), "/api/api-tokens/abcdefgh%00jklmno")
            .header("Authorization", format!("Bearer {token}"))
            .body_json(&json!({"name": "x"}))
            .send()
            .await;
        assert_error(response, 404, "ResourceNotFoundException").await;
    }
}

#[tokio::test]
async fn a_field_sent_twice_is_refused_rather_than_guessed() {
    let app = TestApp::spawn().await;
    let response = app
        .client
        .post("/api/login")
        .content_type("application/x-www-form-urlencoded")
        .body("email=ada%40example.org&password=one&password=two")
        .send()
        .await;
    let error = assert_error(response, 400, "InvalidParameterException").await;
    assert_eq!(
        error["errors"]["password"],
        json!(["Given more than once."])
    );
}

#[tokio::test]
async fn a_file_in_a_multipart_body_is_refused() {
    let app = TestApp::spawn().await;
    let body = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"email\"; filename=\"e.txt\"\r\n\
         Content-Type: text/plain\r\n\r\nada@example.org\r\n--{BOUNDARY}--\r\n"
    );
    let response = app
        .client
        .post("/api/password/reset")
        .content_type(format!("multipart/form-data; boundary={BOUNDARY}"))
        .body(body)
        .send()
        .await;
    let error = assert_error(response, 400, "InvalidParameterException").await;
    assert_eq!(
        error["errors"]["email"],
        json!(["Files are not accepted here."])
    );
}

#[tokio::test]
async fn a_malformed_multipart_body_is_400_not_500() {
    let app = TestApp::spawn().await;
    for (content_type, body) in [
        (
            format!("multipart/form-data; boundary={BOUNDARY}"),
            "garbage".to_string(),
        ),
        (
            "multipart/form-data".to_string(),
            format!("--{BOUNDARY}--\r\n"),
        ),
        (
            format!("multipart/form-data; boundary={BOUNDARY}"),
            format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"email\"\r\n\r\nada"),
        ),
    ] {
        let response = app
            .client
            .post("/api/password/reset")
            .content_type(content_type)
            .body(body)
            .send()
            .await;
        assert_error(response, 400, "InvalidParameterException").await;
    }
}

#[tokio::test]
async fn a_multipart_body_over_the_limit_is_413() {
    let app = TestApp::spawn().await;
    let (content_type, bytes) = encode(
        Encoding::Multipart,
        &json!({"email": "a".repeat(70 * 1024)}),
    );
    let response = app
        .client
        .post("/api/password/reset")
        .content_type(content_type)
        .body(bytes)
        .send()
        .await;
    assert_error(response, 413, "RequestEntityTooLargeException").await;
}
