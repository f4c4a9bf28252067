//! What the OpenAPI document says about each route, read once at start-up: the methods served,
//! for the `Allow` header of 405 answers.

use serde_json::Value;

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
            for (method, _) in operations {
                methods.push(method.to_ascii_uppercase());
            }
            methods.sort_by_key(|m| METHOD_ORDER.iter().position(|o| o == m));
            routes.push(Route {
                template: segments(path),
                methods,
            });
        }
        for (path, methods) in extra {
            routes.push(Route {
                template: segments(path),
                methods: methods.iter().map(|m| m.to_string()).collect(),
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
}
