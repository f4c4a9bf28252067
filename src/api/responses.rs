//! Documented error sets: each operation lists exactly the errors it can answer, all with the
//! one JSON error shape, while handlers simply return an [`ApiError`](super::error::ApiError).

use poem_openapi::registry::{MetaHeader, MetaMediaType, MetaResponse, MetaSchemaRef};

use super::error::ErrorBody;

/// The OpenAPI description of one error response.
pub fn error_response(status: u16, description: &'static str) -> MetaResponse {
    use poem_openapi::types::Type;
    let mut headers = Vec::new();
    if matches!(status, 429 | 503) {
        headers.push(MetaHeader {
            name: "Retry-After".to_string(),
            description: Some("Whole seconds to wait before trying again (at least 1).".into()),
            required: true,
            deprecated: false,
            schema: <u64 as Type>::schema_ref(),
        });
    }
    MetaResponse {
        description,
        status: Some(status),
        status_range: None,
        content: vec![MetaMediaType {
            content_type: "application/json; charset=utf-8",
            schema: MetaSchemaRef::Reference(<ErrorBody as Type>::name().into_owned()),
        }],
        headers,
    }
}

/// Declares an error type for operations: `errors!(LoginErrors { 401 => "...", ... })`.
/// It wraps an [`ApiError`](crate::api::error::ApiError) and documents the listed statuses.
#[macro_export]
macro_rules! errors {
    ($(#[$meta:meta])* $name:ident { $($status:literal => $description:literal),* $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug)]
        pub struct $name(pub $crate::api::error::ApiError);

        impl<E: Into<$crate::api::error::ApiError>> From<E> for $name {
            fn from(error: E) -> Self {
                Self(error.into())
            }
        }

        impl From<$name> for poem::Error {
            fn from(error: $name) -> Self {
                error.0.into()
            }
        }

        impl poem_openapi::ApiResponse for $name {
            fn meta() -> poem_openapi::registry::MetaResponses {
                poem_openapi::registry::MetaResponses {
                    responses: vec![
                        $($crate::api::responses::error_response($status, $description)),*
                    ],
                }
            }

            fn register(registry: &mut poem_openapi::registry::Registry) {
                <$crate::api::error::ErrorBody as poem_openapi::types::Type>::register(registry);
            }
        }
    };
}
