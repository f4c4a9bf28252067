//! RSA keys that sign tokens. Kept in the database so every replica signs with the same key.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "signing_keys")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub kid: String,
    /// JWS algorithm name, `RS256`.
    pub algorithm: String,
    /// Unencrypted PKCS#8 DER.
    pub private_key: Vec<u8>,
    /// The public JWK as JSON text, as served at `/.well-known/jwks.json`.
    pub public_jwk: String,
    pub created_at: DateTimeUtc,
    /// Set when a newer key took over signing; the key stays published until its tokens expire.
    pub retired_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
