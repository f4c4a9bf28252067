//! Newtypes that can only be built valid.
//!
//! Each type has private fields and a `parse` constructor, so a value of the type is proof that
//! the input was checked: downstream code (use cases in `pool`, queries in `store`) takes an
//! [`Email`] or a [`Password`], never a raw `String`. Requests are parsed once, at the edge.
//!
//! Parsing is idempotent: whatever parses, parsed again from its `as_str()`, gives the same value.
//! Errors name the field and say why in a sentence for a person: a [`FieldError`] becomes 400
//! `InvalidParameterException`, a [`PasswordError`] 400 `InvalidPasswordException`.

mod code;
mod email;
mod error;
mod host;
mod password;
mod person_name;
mod username;

pub use code::Code;
pub use email::Email;
pub use error::{FieldError, PasswordError};
pub use host::Host;
pub use password::{MAX_PASSWORD_CHARS, PASSWORD_SYMBOLS, Password};
pub use person_name::PersonName;
pub use username::Username;

/// Property-test settings shared by the parsers' tests: `cases` random inputs, and no
/// regression files written into the source tree (a failure prints its shrunk input instead).
#[cfg(test)]
fn proptest_config(cases: u32) -> proptest::prelude::ProptestConfig {
    proptest::prelude::ProptestConfig {
        cases,
        failure_persistence: None,
        ..proptest::prelude::ProptestConfig::default()
    }
}
