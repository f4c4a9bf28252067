//! What the OpenAPI document says about each route, read once at start-up: the methods served
//! (for the `Allow` header of 405 answers) and the request-body schemas (to name the fields of a
//! body that could not be parsed).

use std::collections::BTreeMap;

use poem::http::StatusCode;
use serde_json::Value;

use super::error::{ApiError, ErrorCode};

/// The order methods are listed in `Allow`.
const METHOD_ORDER: &[&str] = &["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

#[derive(Debug, Default)]
pub struct RouteIndex {
    routes: Vec<Route>,
}

#[derive(Debug)]
struct Route {
    /// Path template split into segments; `{x}` matches any one segment.
    template: Vec<String>,
    methods: Vec<String>,
    /// Method → the JSON object schema of its request body.
    bodies: BTreeMap<String, Value>,
}

impl RouteIndex {
    /// Reads the paths of an OpenAPI document, plus routes served beside it.
    pub fn from_spec(spec: &Value, extra: &[(&str, &[&str])]) -> Self {
        let mut routes = Vec::new();
        for (path, item) in spec
            .get("paths")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            let operations = item.as_object().into_iter().flatten();
            let mut methods: Vec<String> = Vec::new();
            let mut bodies = BTreeMap::new();
            for (method, operation) in operations {
                let method = method.to_ascii_uppercase();
                if let Some(schema) = json_body_schema(spec, operation) {
                    bodies.insert(method.clone(), schema);
                }
                methods.push(method);
            }
            methods.sort_by_key(|m| METHOD_ORDER.iter().position(|o| o == m));
            routes.push(Route {
                template: segments(path),
                methods,
                bodies,
            });
        }
        for (path, methods) in extra {
            routes.push(Route {
                template: segments(path),
                methods: methods.iter().map(|m| m.to_string()).collect(),
                bodies: BTreeMap::new(),
            });
        }
        Self { routes }
    }

    fn find(&self, path: &str) -> Option<&Route> {
        let wanted = segments(path);
        self.routes.iter().find(|route| {
            route.template.len() == wanted.len()
                && route
                    .template
                    .iter()
                    .zip(&wanted)
                    .all(|(t, w)| t == w || (t.starts_with('{') && t.ends_with('}')))
        })
    }

    /// The methods served at a concrete path, as an `Allow` value.
    pub fn allow(&self, path: &str) -> Option<String> {
        self.find(path).map(|route| route.methods.join(", "))
    }

    /// Explains a JSON body the operation could not parse: invalid JSON, or which required
    /// fields are missing and which fields have the wrong type. `None` when there is nothing
    /// specific to say.
    pub fn explain_body(&self, method: &str, path: &str, body: &[u8]) -> Option<ApiError> {
        let schema = self.find(path)?.bodies.get(method)?;
        let value: Value = match serde_json::from_slice(body) {
            Ok(value) => value,
            Err(err) => {
                return Some(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    ErrorCode::InvalidParameter,
                    format!("The request body is not valid JSON: {err}."),
                ));
            }
        };
        let Some(object) = value.as_object() else {
            return Some(ApiError::new(
                StatusCode::BAD_REQUEST,
                ErrorCode::InvalidParameter,
                "The request body must be a JSON object.",
            ));
        };
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
        let properties = schema.get("properties").and_then(Value::as_object);
        for (field, value) in object {
            let expected = properties
                .and_then(|p| p.get(field))
                .and_then(|p| p.get("type"))
                .and_then(Value::as_str);
            if let Some(expected) = expected
                && !value.is_null()
                && !json_type_matches(expected, value)
            {
                errors.insert(field.clone(), vec![format!("Must be of type {expected}.")]);
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
}

/// The schema of an operation's JSON request body, a `$ref` to the components resolved.
fn json_body_schema(spec: &Value, operation: &Value) -> Option<Value> {
    let content = operation.pointer("/requestBody/content")?.as_object()?;
    let schema = content
        .iter()
        .find(|(content_type, _)| content_type.starts_with("application/json"))?
        .1
        .get("schema")?;
    match schema.get("$ref").and_then(Value::as_str) {
        Some(reference) => {
            let name = reference.rsplit('/').next()?;
            spec.pointer(&format!("/components/schemas/{name}"))
                .cloned()
        }
        None => Some(schema.clone()),
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

fn segments(path: &str) -> Vec<String> {
    path.split('/')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::RouteIndex;

    fn index() -> RouteIndex {
        let spec = json!({
            "paths": {
                "/api/tokens/{key}": {"get": {}, "delete": {}},
                "/api/login": {"post": {"requestBody": {"content": {
                    "application/json; charset=utf-8": {"schema": {"$ref": "#/components/schemas/Login"}}
                }}}},
            },
            "components": {"schemas": {"Login": {
                "type": "object",
                "required": ["email", "password"],
                "properties": {"email": {"type": "string"}, "password": {"type": "string"}},
            }}},
        });
        RouteIndex::from_spec(&spec, &[("/openapi.json", &["GET"])])
    }

    #[test]
    fn allow_lists_the_methods_of_the_matching_template() {
        let index = index();
        assert_eq!(
            index.allow("/api/tokens/abc").as_deref(),
            Some("GET, DELETE")
        );
        assert_eq!(index.allow("/openapi.json").as_deref(), Some("GET"));
        assert_eq!(index.allow("/nowhere"), None);
    }

    #[test]
    fn an_unparsable_body_is_explained_field_by_field() {
        let index = index();
        let err = index
            .explain_body("POST", "/api/login", br#"{"email": 5}"#)
            .unwrap();
        let errors = err.errors.unwrap();
        assert_eq!(errors["email"], ["Must be of type string."]);
        assert_eq!(errors["password"], ["This field is required."]);
        let err = index.explain_body("POST", "/api/login", b"{nope").unwrap();
        assert!(
            err.detail.starts_with("The request body is not valid JSON"),
            "{}",
            err.detail
        );
        assert!(index.explain_body("GET", "/api/tokens/x", b"{}").is_none());
    }
}
