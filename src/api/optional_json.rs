//! An optional JSON request body that may also be left out entirely.

use poem::{Request, RequestBody};
use poem_openapi::{
    ApiExtractor, ApiExtractorType, ExtractParamOptions,
    error::ContentTypeError,
    payload::Json,
    registry::{MetaRequest, Registry},
    types::ParseFromJSON,
};

/// An optional JSON body that may also be left out entirely.
///
/// Why: poem-openapi answers 415 to any request without `Content-Type`, even for an optional
/// `Json<Option<T>>` body, but a browser's `fetch("/api/refresh", {method: "POST", credentials:
/// "include"})` (the cookie flow) and a bodyless logout send neither a body nor a content type.
/// A request with no `Content-Type` and an empty body is read as "no body"; anything else is
/// parsed (and documented in the spec) exactly as `Json<Option<T>>`.
pub struct OptionalJson<T>(pub Option<T>);

impl<'a, T: ParseFromJSON> ApiExtractor<'a> for OptionalJson<T> {
    const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::RequestObject];
    type ParamType = ();
    type ParamRawType = ();

    fn register(registry: &mut Registry) {
        <Json<Option<T>> as ApiExtractor>::register(registry);
    }

    fn request_meta() -> Option<MetaRequest> {
        <Json<Option<T>> as ApiExtractor>::request_meta()
    }

    async fn from_request(
        req: &'a Request,
        body: &mut RequestBody,
        param_opts: ExtractParamOptions<Self::ParamType>,
    ) -> poem::Result<Self> {
        if req.content_type().is_none() {
            let bytes = body.take()?.into_bytes().await?;
            return if bytes.is_empty() {
                Ok(Self(None))
            } else {
                Err(ContentTypeError::ExpectContentType.into())
            };
        }
        let Json(value) = Json::<Option<T>>::from_request(req, body, param_opts).await?;
        Ok(Self(value))
    }
}
