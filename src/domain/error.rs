//! The two errors of the domain parsers. Both carry the field they are about, so the HTTP layer
//! can answer `errors: {field: [message]}` without knowing which parser failed.

/// An input that does not parse into a domain value.
///
/// Answered as 400 `InvalidParameterException` with `errors: {field: [message]}`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct FieldError {
    /// The request field at fault, as the parser calls it (`email`, `username`, `code`, `name`).
    /// Use [`FieldError::for_field`] where the request names it otherwise (`first_name`,
    /// `organizationType`, ...): errors must name fields as the request sent them.
    pub field: &'static str,
    /// Why, as a sentence for a person. Never repeats the input.
    pub message: String,
}

impl FieldError {
    /// An error about `field`.
    pub fn new(field: &'static str, message: impl Into<String>) -> Self {
        Self {
            field,
            message: message.into(),
        }
    }

    /// The same error, about the request field `field`.
    #[must_use]
    pub fn for_field(self, field: &'static str) -> Self {
        Self { field, ..self }
    }
}

/// A password that the policy refuses: too short or long, a missing character class, or too
/// easy to guess.
///
/// Answered as 400 `InvalidPasswordException` with `errors: {field: [message]}`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct PasswordError {
    /// The request field at fault: `password` unless renamed with [`PasswordError::for_field`]
    /// (e.g. `new_password1`).
    pub field: &'static str,
    /// Why, as a sentence for a person. Never repeats the password.
    pub message: String,
}

impl PasswordError {
    /// An error about the `password` field.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            field: "password",
            message: message.into(),
        }
    }

    /// The same error, about the request field `field`.
    #[must_use]
    pub fn for_field(self, field: &'static str) -> Self {
        Self { field, ..self }
    }
}
