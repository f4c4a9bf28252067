//! [`PersonName`]: a first or last name.

use std::fmt;

use super::FieldError;

/// Longest name, in characters (Django's `first_name` / `last_name` limit).
const MAX_CHARS: usize = 150;

/// A first or last name: trimmed, at most 150 characters, possibly empty.
///
/// Any script and punctuation are accepted, since names are too varied to second-guess; control
/// characters (line breaks, tabs, NUL, ...) and the Unicode line and paragraph separators are
/// refused, because names go into email greetings and tokens' `given_name` / `family_name`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct PersonName(String);

impl PersonName {
    /// Parses a name. The error is about the field `name`: rename it with
    /// [`FieldError::for_field`] (`first_name`, `last_name`, `surname`, ...).
    pub fn parse(input: &str) -> Result<Self, FieldError> {
        let input = input.trim();
        if input.chars().nth(MAX_CHARS).is_some() {
            return Err(FieldError::new(
                "name",
                "Names must be at most 150 characters.",
            ));
        }
        if input
            .chars()
            .any(|c| c.is_control() || matches!(c, '\u{2028}' | '\u{2029}'))
        {
            return Err(FieldError::new(
                "name",
                "Names cannot contain line breaks, tabs or other control characters.",
            ));
        }
        Ok(Self(input.to_owned()))
    }

    /// The name as stored, `""` when none was given.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether no name was given.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The name, by value.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for PersonName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for PersonName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn names_are_accepted_trimmed() {
        assert_eq!(PersonName::parse("  Anna  ").unwrap().as_str(), "Anna");
        assert_eq!(
            PersonName::parse("O'Brien-Smith Jr.").unwrap().to_string(),
            "O'Brien-Smith Jr."
        );
        assert_eq!(
            PersonName::parse("\u{5c71}\u{7530}").unwrap().as_str(),
            "\u{5c71}\u{7530}"
        );
        assert_eq!(
            PersonName::parse("Zo\u{eb} \u{141}ukasz").unwrap().as_str(),
            "Zo\u{eb} \u{141}ukasz"
        );
    }

    #[test]
    fn an_empty_name_is_allowed() {
        let empty = PersonName::parse("   ").unwrap();
        assert!(empty.is_empty());
        assert_eq!(empty, PersonName::default());
    }

    #[test]
    fn names_of_150_characters_are_accepted_and_151_refused() {
        PersonName::parse(&"\u{e9}".repeat(150)).unwrap();
        let error = PersonName::parse(&"a".repeat(151)).unwrap_err();
        assert_eq!(error.field, "name");
        assert!(error.message.contains("at most 150"));
        assert_eq!(error.for_field("first_name").field, "first_name");
    }

    #[test]
    fn control_characters_are_refused() {
        for input in [
            "Anna\nBcc: x",
            "An\tna",
            "A\u{0}",
            "A\u{7f}",
            "A\u{85}b",
            "A\u{2028}b",
        ] {
            let error = PersonName::parse(input).expect_err(input);
            assert!(error.message.contains("control characters"));
        }
    }

    proptest! {
        #![proptest_config(crate::domain::proptest_config(256))]

        #[test]
        fn never_panics(input in crate::domain::hostile::any_text()) {
            let _ = PersonName::parse(&input);
        }

        #[test]
        fn huge_inputs_are_refused(input in crate::domain::hostile::huge()) {
            prop_assert!(PersonName::parse(&input).is_err());
        }

        #[test]
        fn an_accepted_name_is_trimmed_and_holds_no_line_break_or_control(
            input in crate::domain::hostile::any_text()
        ) {
            if let Ok(name) = PersonName::parse(&input) {
                let text = name.as_str();
                prop_assert_eq!(text, text.trim());
                prop_assert!(
                    !text.chars().any(|c| c.is_control() || matches!(c, '\u{2028}' | '\u{2029}')),
                    "{:?}", text
                );
            }
        }

        #[test]
        fn a_control_character_or_line_separator_inside_is_refused(
            // Letters or digits at both ends, so that trimming cannot take what is inserted.
            name in "[\\pL\\pN]\\PC{0,98}[\\pL\\pN]",
            at in any::<proptest::sample::Index>(),
            bad in prop_oneof![
                proptest::char::range('\u{0}', '\u{1f}'),
                proptest::char::range('\u{7f}', '\u{9f}'),
                Just('\u{2028}'),
                Just('\u{2029}'),
            ],
        ) {
            let input = crate::domain::hostile::insert_inside(&name, at, bad);
            prop_assert!(PersonName::parse(&input).is_err(), "{:?} was accepted", input);
        }

        #[test]
        fn reparsing_gives_the_same_name(input in prop_oneof![any::<String>(), "\\PC{0,160}"]) {
            if let Ok(name) = PersonName::parse(&input) {
                prop_assert_eq!(PersonName::parse(name.as_str()), Ok(name.clone()));
                prop_assert!(name.as_str().chars().count() <= MAX_CHARS);
            }
        }
    }
}
