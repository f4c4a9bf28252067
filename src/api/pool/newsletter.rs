//! Newsletter subscriptions.

use poem::web::Data;
use poem_openapi::{ApiResponse, Object, OpenApi, payload::Json, types::Example};

use super::Detail;
use crate::{
    api::{Tag, auth::Caller, body::Body},
    domain::Email,
    errors,
    pool::subscribe,
    state::AppState,
};

/// The address to subscribe; the body may be left out.
#[derive(Object, Debug, Default)]
#[oai(example)]
pub struct SubscribeRequest {
    /// Defaults to the account's email. At most 254 characters.
    pub email: Option<String>,
}

impl Example for SubscribeRequest {
    fn example() -> Self {
        Self {
            email: Some("ada@example.org".into()),
        }
    }
}

#[derive(ApiResponse)]
enum SubscribeResponse {
    /// The address is on the list (and on Mailchimp's, when configured).
    #[oai(status = 200)]
    Subscribed(Json<Detail>),
}

errors!(SubscribeErrors {
    400 => "`InvalidParameterException`: the email is invalid (see `errors`).",
    401 => "`NotAuthorizedException`: missing, invalid, expired or revoked token.",
    413 => "`RequestEntityTooLargeException`.",
    415 => "`UnsupportedMediaTypeException`.",
    502 => "`SubscriptionFailedException`: the newsletter service (Mailchimp) failed or refused \
            the address. The subscription is recorded locally all the same; `detail` says what \
            went wrong (a timeout, no connection, or Mailchimp's status and message).",
    503 => "`ServiceUnavailableException`.",
});

pub struct NewsletterApi;

#[OpenApi(tag = "Tag::Newsletter")]
impl NewsletterApi {
    /// Subscribe to the newsletter
    ///
    /// Subscribes the account's email, or the `email` given, to the newsletter. Subscribing an
    /// address that is already on the list renews it. The subscription is always recorded
    /// locally; when the server is configured with a Mailchimp API key and list, the address is
    /// also added to (or re-subscribed on) that list, and a failure there answers 502.
    #[oai(path = "/api/subscribe", method = "post", operation_id = "subscribe")]
    async fn subscribe(
        &self,
        state: Data<&AppState>,
        caller: Caller,
        body: Body<SubscribeRequest>,
    ) -> Result<SubscribeResponse, SubscribeErrors> {
        let user = &caller.0.user;
        let email = match body.0.email {
            Some(email) => Email::parse(&email)?,
            // The stored address was valid when it was stored.
            None => Email::parse(&user.email)?,
        };
        subscribe::subscribe(&state, &email, Some(user.uid)).await?;
        Ok(SubscribeResponse::Subscribed(Json(Detail::new(format!(
            "{email} is subscribed to the newsletter."
        )))))
    }
}
