//! [`Username`]: an optional second name to sign in with.

use std::fmt;

use unicode_normalization::{UnicodeNormalization, char::is_combining_mark};

use super::FieldError;

/// Longest username, in characters (in NFC).
const MAX_CHARS: usize = 128;

/// Longest input looked at before normalising, in characters. One character decomposes into at
/// most four (NFD), so a username of 128 characters typed decomposed still fits, with room.
const MAX_INPUT_CHARS: usize = 8 * MAX_CHARS;

const FIELD: &str = "username";

/// A username: 1–128 letters, digits and `._-+`, trimmed, in Unicode NFC.
///
/// Letters and digits of any script are accepted, with the combining marks they are written with. Login takes an email address, a username or a
/// uid in the same field, so a username can never be mistaken for either: it cannot contain `@`
/// and cannot be a UUID in any form the `uuid` crate parses.
///
/// Usernames are unique case-insensitively: compare and look up by [`Username::key`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Username(String);

impl Username {
    /// Parses a username typed by a person. The error is about the field `username`.
    pub fn parse(input: &str) -> Result<Self, FieldError> {
        let input = input.trim();
        if input.is_empty() {
            return Err(error("Enter a username."));
        }
        // Bound the work before normalising: a long input is refused at once. The limit itself
        // is checked on the NFC form, so that a name typed decomposed counts as composed.
        if input.chars().nth(MAX_INPUT_CHARS).is_some() {
            return Err(too_long());
        }
        if input.contains('@') {
            return Err(error(
                "Usernames cannot contain @, so that they are never mistaken for an email \
                 address.",
            ));
        }
        // NFC, so that "é" typed as one code point or as "e" + accent is the same username.
        let name: String = input.nfc().collect();
        if !allowed_characters(&name) {
            return Err(error(
                "Usernames may only contain letters, digits and . _ - +",
            ));
        }
        if name.chars().nth(MAX_CHARS).is_some() {
            return Err(too_long());
        }
        if uuid::Uuid::try_parse(&name).is_ok() {
            return Err(error(
                "Usernames cannot be a UUID, so that they are never mistaken for a user id.",
            ));
        }
        Ok(Self(name))
    }

    /// The username as stored: trimmed, in NFC, case kept.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The lower-cased username, used for uniqueness and lookup.
    pub fn key(&self) -> String {
        self.0.to_lowercase()
    }

    /// The username, by value.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for Username {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// Letters and digits of any script, with the combining marks some scripts write them with
/// (Devanagari's virama, accents that have no precomposed form), and `._-+`. A mark must follow a
/// letter, a digit or another mark: on its own, or on a `.`, it would only hide or disguise it.
fn allowed_characters(name: &str) -> bool {
    let mut after_letter_or_digit = false;
    name.chars().all(|c| {
        if c.is_alphanumeric() {
            after_letter_or_digit = true;
            true
        } else if is_combining_mark(c) {
            after_letter_or_digit
        } else {
            after_letter_or_digit = false;
            matches!(c, '.' | '_' | '-' | '+')
        }
    })
}

fn error(message: &str) -> FieldError {
    FieldError::new(FIELD, message)
}

fn too_long() -> FieldError {
    error("Usernames must be at most 128 characters.")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn refused(input: &str) -> String {
        match Username::parse(input) {
            Ok(name) => panic!("{input:?} was accepted as {name:?}"),
            Err(e) => {
                assert_eq!(e.field, "username");
                e.message
            }
        }
    }

    fn accepted(input: &str) -> Username {
        Username::parse(input).unwrap_or_else(|e| panic!("{input:?} was refused: {}", e.message))
    }

    #[test]
    fn ordinary_usernames_are_accepted_trimmed_with_their_case() {
        let name = accepted("  Anna.Smith_99+x-y\t");
        assert_eq!(name.as_str(), "Anna.Smith_99+x-y");
        assert_eq!(name.to_string(), "Anna.Smith_99+x-y");
        assert_eq!(name.key(), "anna.smith_99+x-y");
        accepted("a");
        accepted("42");
    }

    #[test]
    fn letters_and_digits_of_any_script_are_accepted() {
        assert_eq!(accepted("Jos\u{e9}").key(), "jos\u{e9}");
        accepted("\u{41c}\u{430}\u{440}\u{438}\u{44f}");
        accepted("\u{5c71}\u{7530}\u{592a}\u{90ce}");
        accepted("user\u{663}\u{664}");
        // Hindi "namaste", whose virama (U+094D) is a combining mark, not a letter.
        accepted("\u{928}\u{92e}\u{938}\u{94d}\u{924}\u{947}");
        // A mark with no precomposed form stays a separate code point after NFC.
        accepted("x\u{301}");
    }

    #[test]
    fn usernames_are_stored_in_nfc() {
        let decomposed = accepted("Jose\u{301}");
        assert_eq!(decomposed.as_str(), "Jos\u{e9}");
        assert_eq!(decomposed, accepted("Jos\u{e9}"));
    }

    #[test]
    fn usernames_of_128_characters_are_accepted_and_129_refused() {
        accepted(&"a".repeat(128));
        accepted(&"\u{e9}".repeat(128));
        assert!(refused(&"a".repeat(129)).contains("at most 128"));
        // Counted composed: 128 `é` typed as `e` and a combining accent are 256 code points.
        assert_eq!(
            accepted(&"e\u{301}".repeat(128)).as_str(),
            "\u{e9}".repeat(128)
        );
        assert!(refused(&"e\u{301}".repeat(129)).contains("at most 128"));
    }

    #[test]
    fn usernames_that_look_like_an_email_are_refused() {
        assert!(refused("anna@example.org").contains("@"));
        assert!(refused("@anna").contains("@"));
    }

    #[test]
    fn usernames_that_parse_as_a_uuid_are_refused() {
        let uid = uuid::Uuid::new_v4();
        for form in [
            uid.hyphenated().to_string(),
            uid.simple().to_string(),
            uid.hyphenated().to_string().to_uppercase(),
            "00000000-0000-0000-0000-000000000000".to_owned(),
        ] {
            assert!(refused(&form).contains("UUID"), "{form}");
        }
        // Almost a UUID is fine.
        accepted("00000000-0000-0000-0000-00000000000");
    }

    #[test]
    fn other_characters_are_refused() {
        for input in [
            "anna smith",
            "anna/smith",
            "anna:x",
            "a\u{0}b",
            "anna\u{200b}",
            "\u{1f600}",
            "\u{301}a",
            "a.\u{301}",
        ] {
            assert!(refused(input).contains("may only contain"), "{input:?}");
        }
        assert!(refused("").contains("Enter a username"));
        assert!(refused("  ").contains("Enter a username"));
    }

    proptest! {
        #![proptest_config(crate::domain::proptest_config(256))]

        #[test]
        fn never_panics(input in crate::domain::hostile::any_text()) {
            let _ = Username::parse(&input);
        }

        #[test]
        fn huge_inputs_are_refused(input in crate::domain::hostile::huge()) {
            prop_assert!(Username::parse(&input).is_err());
        }

        #[test]
        fn the_same_name_typed_decomposed_or_in_another_case_is_the_same_username(
            input in "[\\pL\\pN][\\pL\\pN\\pM._+-]{0,127}"
        ) {
            if let Ok(name) = Username::parse(&input) {
                let decomposed: String = name.as_str().nfd().collect();
                prop_assert_eq!(Username::parse(&decomposed), Ok(name.clone()));
                let upper = Username::parse(&name.as_str().to_uppercase());
                let lower = Username::parse(&name.as_str().to_lowercase());
                if let (Ok(upper), Ok(lower)) = (upper, lower)
                    && name.as_str().is_ascii()
                {
                    prop_assert_eq!(upper.key(), name.key());
                    prop_assert_eq!(lower.key(), name.key());
                }
            }
        }

        #[test]
        fn a_forbidden_character_inside_is_refused(
            name in "[a-zA-Z0-9][a-zA-Z0-9._+-]{0,100}[a-zA-Z0-9]",
            at in any::<proptest::sample::Index>(),
            bad in prop_oneof![
                proptest::char::range('\u{0}', '\u{20}'),
                proptest::sample::select(vec![
                    '\u{7f}', '\u{85}', '\u{a0}', '\u{200b}', '\u{202e}', '\u{feff}', '@', '/',
                    ':', '\\', '"', '\'', '<', '>', '%', '#', '?', '&', '*', ',', ';', '=', '\u{1f600}',
                ]),
            ],
        ) {
            let input = crate::domain::hostile::insert_inside(&name, at, bad);
            prop_assert!(Username::parse(&input).is_err(), "{:?} was accepted", input);
        }

        #[test]
        fn reparsing_gives_the_same_username(
            input in prop_oneof![
                any::<String>(),
                "[\\pL\\pN\\pM._+@-]{1,130}",
                "[0-9a-fA-F-]{32,36}",
            ]
        ) {
            if let Ok(name) = Username::parse(&input) {
                prop_assert_eq!(Username::parse(name.as_str()), Ok(name.clone()));
                prop_assert!(!name.as_str().contains('@'));
                prop_assert!(uuid::Uuid::try_parse(name.as_str()).is_err());
                let count = name.as_str().chars().count();
                prop_assert!((1..=MAX_CHARS).contains(&count));
            }
        }

        #[test]
        fn no_uuid_is_a_username(uid in any::<u128>()) {
            let uid = uuid::Uuid::from_u128(uid);
            prop_assert!(Username::parse(&uid.hyphenated().to_string()).is_err());
            prop_assert!(Username::parse(&uid.simple().to_string()).is_err());
        }
    }
}
