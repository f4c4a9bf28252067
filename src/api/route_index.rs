//! What the OpenAPI document says about each route, read once at start-up: the methods served,
//! for the `Allow` header of 405 answers, and the path template, for metrics and access logs.

use serde_json::Value;

/// The order methods are listed in `Allow`.
const METHOD_ORDER: &[&str] = &["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

#[derive(Debug, Default)]
pub struct RouteIndex {
    routes: Vec<Route>,
}

#[derive(Debug)]
struct Route {
    /// The path template as written in the spec, e.g. `/api/api-tokens/{key}`.
    path: String,
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
                path: path.clone(),
                template: segments(path),
                methods,
            });
        }
        for (path, methods) in extra {
            routes.push(Route {
                path: path.to_string(),
                template: segments(path),
                methods: methods.iter().map(|m| m.to_string()).collect(),
            });
        }
        Self { routes }
    }

    fn find(&self, path: &str) -> Option<&Route> {
        self.position(path).map(|i| &self.routes[i])
    }

    /// The position of the route serving a concrete path. A literal segment wins over a
    /// parameter (`/api/api-tokens/introspect` over `/api/api-tokens/{key}`), as in the router.
    pub fn position(&self, path: &str) -> Option<usize> {
        let wanted = segments(path);
        let is_param = |t: &str| t.starts_with('{') && t.ends_with('}');
        self.routes
            .iter()
            .enumerate()
            .filter(|(_, route)| {
                route.template.len() == wanted.len()
                    && route
                        .template
                        .iter()
                        .zip(&wanted)
                        .all(|(t, w)| t == w || is_param(t))
            })
            .max_by_key(|(i, route)| {
                let literals = route.template.iter().filter(|t| !is_param(t)).count();
                (literals, std::cmp::Reverse(*i))
            })
            .map(|(i, _)| i)
    }

    /// Every path template, in the order of [`RouteIndex::position`].
    pub fn templates(&self) -> Vec<String> {
        self.routes.iter().map(|r| r.path.clone()).collect()
    }

    /// The path template at a position.
    pub fn template(&self, position: usize) -> Option<&str> {
        self.routes.get(position).map(|r| r.path.as_str())
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

    #[test]
    fn concrete_paths_map_to_their_template_literal_segments_first() {
        let spec = json!({"paths": {
            "/api/tokens/{key}": {"get": {}},
            "/api/tokens/introspect": {"post": {}},
        }});
        let index = RouteIndex::from_spec(&spec, &[]);
        let template = |path| index.position(path).and_then(|i| index.template(i));
        assert_eq!(template("/api/tokens/SECRET"), Some("/api/tokens/{key}"));
        assert_eq!(template("/api/tokens/SECRET/"), Some("/api/tokens/{key}"));
        assert_eq!(
            template("/api/tokens/introspect"),
            Some("/api/tokens/introspect")
        );
        assert_eq!(template("/api/tokens/a/b"), None);
    }
}
