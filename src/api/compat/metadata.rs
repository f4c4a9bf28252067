//! What `OPTIONS` answers on the compat surface, as Django REST framework's metadata does:
//! `{name, description, renders, parses, methods}` of an operation. Read once at start-up from
//! the OpenAPI document itself, so the answer can never drift from the spec.

use std::collections::BTreeMap;

use poem_openapi::{ApiResponse, Object, payload::Json, types::Example};
use serde_json::Value;

use crate::{api::error::ApiError, errors};

/// The order methods are listed in.
const METHOD_ORDER: &[&str] = &["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

/// An operation as `OPTIONS` describes it.
#[derive(Object, Debug, Clone, PartialEq)]
#[oai(rename = "CompatMetadata", example)]
pub struct Metadata {
    /// The operation's summary in the OpenAPI document.
    pub name: String,
    /// The operation's description in the OpenAPI document.
    pub description: String,
    /// The content types of its success response.
    pub renders: Vec<String>,
    /// The content types its request body may be sent as.
    pub parses: Vec<String>,
    /// The methods served at this path, `OPTIONS` included.
    pub methods: Vec<String>,
}

impl Example for Metadata {
    fn example() -> Self {
        Self {
            name: "Sign in (compat)".into(),
            description: "Checks the password and starts a session.".into(),
            renders: vec!["application/json; charset=utf-8".into()],
            parses: crate::api::body::CONTENT_TYPES
                .iter()
                .map(|c| c.to_string())
                .collect(),
            methods: vec!["POST".into(), "OPTIONS".into()],
        }
    }
}

#[derive(ApiResponse)]
pub enum MetadataResponse {
    /// The operation's name, description, content types and the methods served at its path.
    #[oai(status = 200)]
    Ok(Json<Metadata>),
}

errors!(MetadataErrors {
    500 => "`InternalErrorException`: the operation is missing from the OpenAPI document (a bug).",
});

/// Every operation of the OpenAPI document, by path and method.
#[derive(Debug, Default)]
pub struct OperationIndex {
    paths: BTreeMap<String, PathItem>,
}

#[derive(Debug, Default)]
struct PathItem {
    methods: Vec<String>,
    /// By upper-case method.
    operations: BTreeMap<String, Operation>,
}

#[derive(Debug)]
struct Operation {
    summary: String,
    description: String,
    renders: Vec<String>,
    parses: Vec<String>,
}

impl OperationIndex {
    /// Reads the operations of an OpenAPI document (as poem-openapi emits it).
    pub fn from_spec(spec: &Value) -> Self {
        let mut paths = BTreeMap::new();
        for (path, item) in objects(spec.get("paths")) {
            let mut entry = PathItem::default();
            for (method, operation) in objects(Some(item)) {
                let method = method.to_ascii_uppercase();
                entry.methods.push(method.clone());
                entry.operations.insert(method, Operation::read(operation));
            }
            entry
                .methods
                .sort_by_key(|m| METHOD_ORDER.iter().position(|o| o == m));
            paths.insert(path.clone(), entry);
        }
        Self { paths }
    }

    /// What `OPTIONS` says of the `method` operation at `path`; `None` if there is none.
    pub fn describe(&self, path: &str, method: &str) -> Option<Metadata> {
        let item = self.paths.get(path)?;
        let operation = item.operations.get(&method.to_ascii_uppercase())?;
        Some(Metadata {
            name: operation.summary.clone(),
            description: operation.description.clone(),
            renders: operation.renders.clone(),
            parses: operation.parses.clone(),
            methods: item.methods.clone(),
        })
    }

    /// [`Self::describe`] as an operation's answer: a missing operation is a bug, so a 500.
    pub fn respond(&self, path: &str, method: &str) -> Result<MetadataResponse, MetadataErrors> {
        match self.describe(path, method) {
            Some(metadata) => Ok(MetadataResponse::Ok(Json(metadata))),
            None => {
                tracing::error!(path, method, "no OpenAPI operation to describe");
                Err(ApiError::internal().into())
            }
        }
    }
}

impl Operation {
    fn read(operation: &Value) -> Self {
        let text = |name: &str| {
            operation
                .get(name)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let mut renders: Vec<String> = Vec::new();
        for (status, response) in objects(operation.get("responses")) {
            if status.starts_with('2') {
                for (content_type, _) in objects(response.get("content")) {
                    if !renders.contains(content_type) {
                        renders.push(content_type.clone());
                    }
                }
            }
        }
        let parses = objects(operation.get("requestBody").and_then(|b| b.get("content")))
            .map(|(content_type, _)| content_type.clone())
            .collect();
        Self {
            summary: text("summary"),
            description: text("description"),
            renders,
            parses,
        }
    }
}

/// The entries of a JSON object, none when it is absent or not an object.
fn objects(value: Option<&Value>) -> impl Iterator<Item = (&String, &Value)> {
    value.and_then(Value::as_object).into_iter().flatten()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn index() -> OperationIndex {
        OperationIndex::from_spec(&json!({
            "paths": {
                "/authentication/api/login": {
                    "options": {"summary": "Describe", "description": "Metadata.",
                                "responses": {"200": {"content": {"application/json": {}}}}},
                    "post": {
                        "summary": "Sign in",
                        "description": "Checks the password.",
                        "requestBody": {"content": {
                            "application/json": {}, "multipart/form-data": {}
                        }},
                        "responses": {
                            "200": {"content": {"application/json; charset=utf-8": {}}},
                            "401": {"content": {"application/problem+json": {}}},
                        },
                    },
                },
            },
        }))
    }

    #[test]
    fn an_operation_is_described_by_its_summary_description_and_content_types() {
        let metadata = index()
            .describe("/authentication/api/login", "post")
            .unwrap();
        assert_eq!(
            metadata,
            Metadata {
                name: "Sign in".into(),
                description: "Checks the password.".into(),
                renders: vec!["application/json; charset=utf-8".into()],
                parses: vec!["application/json".into(), "multipart/form-data".into()],
                methods: vec!["POST".into(), "OPTIONS".into()],
            }
        );
    }

    #[test]
    fn an_unknown_path_or_method_has_no_description() {
        let index = index();
        assert_eq!(index.describe("/authentication/api/nowhere", "post"), None);
        assert_eq!(index.describe("/authentication/api/login", "get"), None);
        assert!(index.respond("/nowhere", "post").is_err());
    }

    #[test]
    fn the_real_spec_describes_the_compat_login() {
        let spec: Value = serde_json::from_str(&crate::api::spec_json()).unwrap();
        let metadata = OperationIndex::from_spec(&spec)
            .describe("/authentication/api/login", "POST")
            .unwrap();
        assert!(!metadata.name.is_empty());
        assert_eq!(metadata.parses, crate::api::body::CONTENT_TYPES);
        assert_eq!(metadata.methods, ["POST", "OPTIONS"]);
    }
}
