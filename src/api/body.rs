//! The one request-body extractor of the API: the same fields as JSON, as an HTML form
//! (`application/x-www-form-urlencoded`) or as `multipart/form-data`.
//!
//! Why one extractor instead of poem-openapi's `Json`, `Form` and `Multipart` payloads: those
//! parse through three different libraries, each with its own errors and rules (`Form` skips the
//! schema entirely), so one operation would answer one payload three ways. Here a form or
//! multipart body is turned into the JSON object it stands for, guided by the operation's own
//! schema (booleans, numbers, and objects sent as JSON strings), and then parsed exactly like
//! JSON: one parser, one set of errors, whatever the encoding.

use std::collections::BTreeMap;

use poem::{FromRequest, Request, RequestBody, http::StatusCode, web::Multipart};
use poem_openapi::{
    ApiExtractor, ApiExtractorType, ExtractParamOptions,
    registry::{MetaMediaType, MetaRequest, MetaSchema, MetaSchemaRef, Registry},
    types::ParseFromJSON,
};
use serde_json::{Map, Value};

use super::error::{ApiError, ErrorCode};

/// The encodings every body accepts, as listed in the OpenAPI document.
pub const CONTENT_TYPES: [&str; 3] = [
    "application/json",
    "application/x-www-form-urlencoded",
    "multipart/form-data",
];

/// The names of the form and multipart schemas: the JSON schema's name with these suffixes.
///
/// Why each encoding gets a schema of its own rather than sharing the JSON one: a generated
/// client tells the encodings apart by the type of the body it is given. openapi-python-client
/// sends a body whose type matches several content types in all of them at once (JSON, form and
/// multipart fields in one multipart request); with one type per content type it sends exactly
/// the one asked for. The form schemas also tell the truth about object fields.
const FORM_SUFFIXES: [&str; 2] = ["Form", "Multipart"];

/// What the OpenAPI document says of every request body.
const DESCRIPTION: &str = "The same fields as JSON, as a form \
(`application/x-www-form-urlencoded`) or as `multipart/form-data`; the `...Form` and \
`...Multipart` schemas differ from the JSON one only in that object fields are JSON strings. \
In form and multipart bodies booleans are `true`/`false` (also `1`/`0`, `on`/`off`, \
`yes`/`no`) and a blank non-text field is not given; in JSON, `null` for an optional field is \
not given. No field may contain the NUL character (U+0000), nested values included. The \
body itself is optional so that generated clients can offer every encoding: an empty body is \
read as `{}`, and a missing required field is a 400 naming it.";

/// A request body in any of the three encodings, parsed as the JSON schema of `T`.
pub struct Body<T>(pub T);

impl<T> std::ops::Deref for Body<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

impl<'a, T: ParseFromJSON> ApiExtractor<'a> for Body<T> {
    const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::RequestObject];
    type ParamType = ();
    type ParamRawType = ();

    fn register(registry: &mut Registry) {
        T::register(registry);
        let Some(schema) = registry.schemas.get_mut(&*T::name()) else {
            return;
        };
        let form = form_schema(schema.clone());
        nullable_optional_fields(schema);
        for suffix in FORM_SUFFIXES {
            let name = format!("{}{suffix}", T::name());
            // Generators name their types after the title: each needs its own.
            let title = Some(name.clone());
            registry.schemas.entry(name).or_insert_with(|| MetaSchema {
                title,
                ..form.clone()
            });
        }
    }

    fn request_meta() -> Option<MetaRequest> {
        let name = T::name();
        let schema = |suffix: &str| match T::schema_ref() {
            MetaSchemaRef::Reference(_) => MetaSchemaRef::Reference(format!("{name}{suffix}")),
            inline => inline,
        };
        Some(MetaRequest {
            description: Some(DESCRIPTION),
            content: vec![
                MetaMediaType {
                    content_type: CONTENT_TYPES[0],
                    schema: T::schema_ref(),
                },
                MetaMediaType {
                    content_type: CONTENT_TYPES[1],
                    schema: schema(FORM_SUFFIXES[0]),
                },
                MetaMediaType {
                    content_type: CONTENT_TYPES[2],
                    schema: schema(FORM_SUFFIXES[1]),
                },
            ],
            // Not `required`: openapi-python-client cannot import a module generated for a
            // required body with several content types. See DESCRIPTION for what the server does.
            required: false,
        })
    }

    async fn from_request(
        req: &'a Request,
        body: &mut RequestBody,
        _: ExtractParamOptions<Self::ParamType>,
    ) -> poem::Result<Self> {
        let object = read_object::<T>(req, body).await?;
        // The schema first: poem-openapi's own parsing is lenient where the document is not (a
        // `string` field takes `false` or `42` and stringifies it; `null` passes for an
        // optional field), and a request the document calls invalid must not be served.
        if let Some(error) = explain(&schema_of::<T>(), &object) {
            return Err(error.into());
        }
        match T::parse_from_json(Some(Value::Object(object))) {
            Ok(value) => Ok(Self(value)),
            Err(err) => Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                ErrorCode::InvalidParameter,
                format!("The request body is invalid: {}", err.into_message()),
            )
            .into()),
        }
    }
}

/// The body as a JSON object, whatever its encoding.
async fn read_object<T: ParseFromJSON>(
    req: &Request,
    body: &mut RequestBody,
) -> Result<Map<String, Value>, ApiError> {
    let content_type = req.content_type().map(str::to_ascii_lowercase);
    let essence = content_type
        .as_deref()
        .map(|c| c.split(';').next().unwrap_or_default().trim());
    match essence {
        Some("multipart/form-data") => {
            let multipart = <Multipart as FromRequest>::from_request(req, body)
                .await
                .map_err(|_| malformed("multipart"))?;
            let fields = multipart_fields(multipart).await?;
            Ok(form_object(&schema_of::<T>(), fields)?)
        }
        Some(essence) => {
            let bytes = take_bytes(body).await?;
            if bytes.is_empty() && is_supported(essence) {
                return Ok(Map::new());
            }
            if essence == "application/x-www-form-urlencoded" {
                let fields = url::form_urlencoded::parse(&bytes).into_owned().collect();
                Ok(form_object(&schema_of::<T>(), fields)?)
            } else if is_json(essence) {
                json_object(&bytes)
            } else {
                Err(unsupported())
            }
        }
        // No content type: a bodyless POST (a browser's cookie refresh, a logout) is `{}`;
        // anything else must say what it is.
        None if take_bytes(body).await?.is_empty() => Ok(Map::new()),
        None => Err(unsupported()),
    }
}

fn is_json(essence: &str) -> bool {
    essence == "application/json"
        || essence.starts_with("application/") && essence.ends_with("+json")
}

fn is_supported(essence: &str) -> bool {
    is_json(essence) || CONTENT_TYPES.contains(&essence)
}

async fn take_bytes(body: &mut RequestBody) -> Result<bytes::Bytes, ApiError> {
    // The edge has already read the body into memory under the size limit.
    let taken = body.take().map_err(|_| malformed("request"))?;
    taken.into_bytes().await.map_err(|_| malformed("request"))
}

/// 415, naming the encodings every body accepts.
pub fn unsupported() -> ApiError {
    ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ErrorCode::UnsupportedMediaType,
        "Unsupported content type: send application/json, application/x-www-form-urlencoded \
         or multipart/form-data.",
    )
}

fn malformed(what: &str) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        ErrorCode::InvalidParameter,
        format!("The {what} body could not be parsed."),
    )
}

fn json_object(bytes: &[u8]) -> Result<Map<String, Value>, ApiError> {
    match serde_json::from_slice(bytes) {
        Ok(Value::Object(object)) => Ok(object),
        Ok(_) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidParameter,
            "The request body must be a JSON object.",
        )),
        Err(err) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidParameter,
            format!("The request body is not valid JSON: {err}."),
        )),
    }
}

/// The text fields of a multipart body. Files are refused: no operation takes one.
async fn multipart_fields(mut multipart: Multipart) -> Result<Vec<(String, String)>, ApiError> {
    let mut fields = Vec::new();
    while let Some(field) = multipart
        .next_field()
        .await
        .map_err(|_| malformed("multipart"))?
    {
        let name = field.name().unwrap_or_default().to_string();
        if field.file_name().is_some() {
            return Err(ApiError::field(&name, "Files are not accepted here."));
        }
        let text = field
            .text()
            .await
            .map_err(|_| ApiError::field(&name, "Must be UTF-8 text."))?;
        fields.push((name, text));
    }
    Ok(fields)
}

/// The JSON object a form stands for: each field converted to the type its schema gives it.
/// A value that does not convert stays a string, so the schema check names the field.
fn form_object(
    schema: &Value,
    fields: Vec<(String, String)>,
) -> Result<Map<String, Value>, ApiError> {
    let mut object = Map::new();
    let mut seen = std::collections::BTreeSet::new();
    for (name, text) in fields {
        if !seen.insert(name.clone()) {
            // One value per field: which of two would count is a question nobody should
            // have to guess the answer to.
            return Err(ApiError::field(&name, "Given more than once."));
        }
        if let Some(value) = form_value(property_type(schema, &name), text) {
            object.insert(name, value);
        }
    }
    Ok(object)
}

/// The JSON value of one form field; `None` for a field left blank, which counts as not given.
fn form_value(ty: Option<&str>, text: String) -> Option<Value> {
    Some(match ty {
        None | Some("string") => Value::String(text),
        // An empty form field of another type is a field left blank: not given.
        Some(_) if text.is_empty() => return None,
        Some("boolean") => match text.to_ascii_lowercase().as_str() {
            "true" | "1" | "on" | "yes" => Value::Bool(true),
            "false" | "0" | "off" | "no" => Value::Bool(false),
            _ => Value::String(text),
        },
        Some(_) => serde_json::from_str(&text).unwrap_or(Value::String(text)),
    })
}

/// Marks the optional fields of a JSON body `nullable`: `null` is read as "not given" (what a
/// client that serialises an unset option sends), and the document says so. Form and multipart
/// bodies have no null; there a blank non-text field is "not given".
fn nullable_optional_fields(schema: &mut MetaSchema) {
    let required = schema.required.clone();
    for (name, property) in &mut schema.properties {
        if required.contains(name) {
            continue;
        }
        match property {
            MetaSchemaRef::Inline(inline) => inline.nullable = true,
            MetaSchemaRef::Reference(reference) => {
                *property = MetaSchemaRef::Inline(Box::new(MetaSchema {
                    all_of: vec![MetaSchemaRef::Reference(reference.clone())],
                    nullable: true,
                    ..MetaSchema::ANY
                }));
            }
        }
    }
}

/// The schema of a body as a form or multipart sends it: object fields become JSON strings.
fn form_schema(mut schema: MetaSchema) -> MetaSchema {
    for (_, property) in &mut schema.properties {
        let is_object = match property {
            MetaSchemaRef::Reference(_) => true,
            MetaSchemaRef::Inline(inline) => inline.ty == "object" || !inline.all_of.is_empty(),
        };
        if is_object {
            let description = match property {
                MetaSchemaRef::Inline(inline) => inline.description,
                MetaSchemaRef::Reference(_) => None,
            };
            *property = MetaSchemaRef::Inline(Box::new(MetaSchema {
                description: description.or(Some("A JSON object, as a string.")),
                ..MetaSchema::new("string")
            }));
        }
    }
    schema
}

/// The JSON schema of `T` (the object itself, not a `$ref` to it).
fn schema_of<T: ParseFromJSON>() -> Value {
    let mut registry = Registry::new();
    T::register(&mut registry);
    let schema = match T::schema_ref() {
        MetaSchemaRef::Inline(schema) => Some(*schema),
        MetaSchemaRef::Reference(name) => registry.schemas.remove(&name),
    };
    schema
        .and_then(|schema| serde_json::to_value(schema).ok())
        .unwrap_or(Value::Null)
}

/// The JSON type of a property: its `type`, or `object` for a `$ref` to another schema.
fn property_type<'s>(schema: &'s Value, field: &str) -> Option<&'s str> {
    let property = schema.get("properties")?.get(field)?;
    match property.get("type").and_then(Value::as_str) {
        Some(ty) => Some(ty),
        None if property.get("$ref").is_some() || property.get("allOf").is_some() => Some("object"),
        None => None,
    }
}

/// Names the fields of an object its schema refuses: required ones missing or null, others of
/// the wrong type (`null` for an optional field is "not given") or holding a NUL character
/// anywhere, nested keys and values included. Fields the schema does not know are ignored.
/// `None` when the object is fine.
///
/// NUL is refused for every field because no text or JSON column of PostgreSQL can hold it (and
/// a query comparing with it fails), so it would otherwise be a 500 there; no field means
/// anything with it. Django REST framework refuses it too, with the same sentence.
fn explain(schema: &Value, object: &Map<String, Value>) -> Option<ApiError> {
    let mut errors = BTreeMap::new();
    let required = schema.get("required").and_then(Value::as_array);
    for field in required.into_iter().flatten().filter_map(Value::as_str) {
        if object.get(field).is_none_or(Value::is_null) {
            errors.insert(
                field.to_string(),
                vec!["This field is required.".to_string()],
            );
        }
    }
    for (field, value) in object {
        let Some(expected) = property_type(schema, field) else {
            continue;
        };
        if !value.is_null() && !json_type_matches(expected, value) {
            errors.insert(field.clone(), vec![format!("Must be of type {expected}.")]);
        } else if contains_nul(value) {
            errors.insert(
                field.clone(),
                vec!["Null characters are not allowed.".to_string()],
            );
        }
    }
    (!errors.is_empty()).then(|| ApiError {
        errors: Some(errors),
        ..ApiError::new(
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidParameter,
            "Some fields are missing or invalid; see errors.",
        )
    })
}

/// Whether a NUL character (U+0000) is in a value, or in any string or key nested in it.
fn contains_nul(value: &Value) -> bool {
    match value {
        Value::String(text) => text.contains('\0'),
        Value::Array(items) => items.iter().any(contains_nul),
        Value::Object(fields) => fields
            .iter()
            .any(|(key, value)| key.contains('\0') || contains_nul(value)),
        Value::Null | Value::Bool(_) | Value::Number(_) => false,
    }
}

fn json_type_matches(expected: &str, value: &Value) -> bool {
    match expected {
        "string" => value.is_string(),
        "boolean" => value.is_boolean(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        "object" => value.is_object(),
        "array" => value.is_array(),
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn schema() -> Value {
        json!({
            "type": "object",
            "required": ["email", "password"],
            "properties": {
                "email": {"type": "string"},
                "password": {"type": "string"},
                "subscribe": {"type": "boolean"},
                "extra": {"type": "object"},
            },
        })
    }

    fn fields(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn form_fields_take_the_types_of_their_schema() {
        let object = form_object(
            &schema(),
            fields(&[
                ("email", "a@example.org"),
                ("password", "1234"),
                ("subscribe", "on"),
                ("extra", r#"{"a": 1}"#),
                ("unknown", "true"),
            ]),
        )
        .unwrap();
        assert_eq!(
            Value::Object(object),
            json!({"email": "a@example.org", "password": "1234", "subscribe": true,
                   "extra": {"a": 1}, "unknown": "true"})
        );
    }

    #[test]
    fn form_values_that_do_not_convert_are_named_by_the_schema_check() {
        let object = form_object(
            &schema(),
            fields(&[("subscribe", "perhaps"), ("extra", "{nope")]),
        )
        .unwrap();
        let errors = explain(&schema(), &object).unwrap().errors.unwrap();
        assert_eq!(errors["subscribe"], ["Must be of type boolean."]);
        assert_eq!(errors["extra"], ["Must be of type object."]);
        assert_eq!(errors["email"], ["This field is required."]);
        assert_eq!(errors["password"], ["This field is required."]);
    }

    #[test]
    fn a_blank_non_string_form_field_is_not_given() {
        let object = form_object(&schema(), fields(&[("subscribe", "")])).unwrap();
        assert!(!object.contains_key("subscribe"));
        let object = form_object(&schema(), fields(&[("email", "")])).unwrap();
        assert_eq!(object["email"], json!(""));
        // Still one value per field, blank or not.
        let err =
            form_object(&schema(), fields(&[("subscribe", ""), ("subscribe", "on")])).unwrap_err();
        assert_eq!(err.errors.unwrap()["subscribe"], ["Given more than once."]);
    }

    #[test]
    fn json_values_must_have_the_type_of_their_schema() {
        let object = |value: Value| value.as_object().unwrap().clone();
        let fine = json!({"email": "a@example.org", "password": "x", "subscribe": false,
                          "extra": {"a": 1}, "unknown": 42});
        assert!(explain(&schema(), &object(fine)).is_none());
        // What poem-openapi alone would take, stringified, as a string.
        let wrong = json!({"email": false, "password": 12345678, "subscribe": "yes",
                           "extra": [1]});
        let errors = explain(&schema(), &object(wrong)).unwrap().errors.unwrap();
        assert_eq!(errors["email"], ["Must be of type string."]);
        assert_eq!(errors["password"], ["Must be of type string."]);
        assert_eq!(errors["subscribe"], ["Must be of type boolean."]);
        assert_eq!(errors["extra"], ["Must be of type object."]);
    }

    #[test]
    fn a_nul_character_anywhere_in_a_known_field_is_refused() {
        let object = |value: Value| value.as_object().unwrap().clone();
        let nul = json!({"email": "a\u{0}@example.org", "password": "x",
                         "extra": {"fine": ["a", {"k\u{0}": 1}]}, "unknown\u{0}": "\u{0}"});
        let errors = explain(&schema(), &object(nul)).unwrap().errors.unwrap();
        assert_eq!(errors["email"], ["Null characters are not allowed."]);
        assert_eq!(errors["extra"], ["Null characters are not allowed."]);
        assert_eq!(errors.len(), 2, "{errors:?}");
        let value = json!({"extra": {"a": [1, "b\u{0}"]}});
        assert!(contains_nul(&value));
        assert!(!contains_nul(&json!({"a": ["\u{1}", 2, null]})));
    }

    #[test]
    fn null_is_a_missing_required_field_and_an_optional_field_not_given() {
        let object = |value: Value| value.as_object().unwrap().clone();
        let nulls = json!({"email": null, "password": "x", "subscribe": null});
        let errors = explain(&schema(), &object(nulls)).unwrap().errors.unwrap();
        assert_eq!(errors["email"], ["This field is required."]);
        assert_eq!(errors.len(), 1, "{errors:?}");
    }

    #[test]
    fn the_document_marks_optional_json_fields_nullable_and_form_fields_not() {
        let inline = |ty| MetaSchemaRef::Inline(Box::new(MetaSchema::new(ty)));
        let mut schema = MetaSchema {
            required: vec!["email"],
            properties: vec![
                ("email", inline("string")),
                ("subscribe", inline("boolean")),
                ("extra", MetaSchemaRef::Reference("Extra".into())),
            ],
            ..MetaSchema::new("object")
        };
        let form = form_schema(schema.clone());
        nullable_optional_fields(&mut schema);
        let nullable = |schema: &MetaSchema, name: &str| {
            schema.properties.iter().any(|(n, property)| {
                *n == name && matches!(property, MetaSchemaRef::Inline(i) if i.nullable)
            })
        };
        assert!(!nullable(&schema, "email"));
        assert!(nullable(&schema, "subscribe"));
        assert!(nullable(&schema, "extra"));
        for name in ["email", "subscribe", "extra"] {
            assert!(!nullable(&form, name), "{name}");
        }
    }

    #[test]
    fn a_form_field_given_twice_is_refused() {
        let err = form_object(&schema(), fields(&[("email", "a"), ("email", "b")])).unwrap_err();
        assert_eq!(err.errors.unwrap()["email"], ["Given more than once."]);
    }

    #[test]
    fn json_bodies_must_be_objects() {
        assert!(json_object(b"[1]").is_err());
        assert!(
            json_object(b"{nope")
                .unwrap_err()
                .detail
                .contains("not valid JSON")
        );
        assert_eq!(json_object(br#"{"a": 1}"#).unwrap()["a"], json!(1));
    }

    #[test]
    fn content_types_are_recognised_by_their_essence() {
        assert!(is_supported("application/json"));
        assert!(is_supported("application/merge-patch+json"));
        assert!(is_supported("multipart/form-data"));
        assert!(!is_supported("text/plain"));
        assert!(!is_supported("application/xml"));
    }
}
