//! [`Code`]: a one-time code as the user typed it back.

use std::fmt;

use super::FieldError;

/// Digits in a code.
const LENGTH: usize = 6;

/// A one-time code as typed back by the user: exactly six ASCII digits, trimmed.
///
/// Only the shape is checked here; whether it is the right code is the use case's business.
/// Digits of other scripts (`١٢٣٤٥٦`, full-width `１２３４５６`) are refused rather than
/// translated: the emails only ever contain ASCII digits. `Debug` shows `Code(******)` and there
/// is no `Display`: a code is a short-lived secret and stays out of logs.
#[derive(Clone, PartialEq, Eq)]
pub struct Code(String);

impl Code {
    /// Parses a code. The error is about the field `code`.
    pub fn parse(input: &str) -> Result<Self, FieldError> {
        let input = input.trim();
        if input.len() == LENGTH && input.bytes().all(|b| b.is_ascii_digit()) {
            Ok(Self(input.to_owned()))
        } else {
            Err(FieldError::new(
                "code",
                "Enter the 6-digit code from the email.",
            ))
        }
    }

    /// The six digits; call only to check them against the stored hash.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Code(******)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn six_ascii_digits_are_accepted_trimmed() {
        assert_eq!(Code::parse("012345").unwrap().as_str(), "012345");
        assert_eq!(Code::parse(" 987654\n").unwrap().as_str(), "987654");
        assert_eq!(Code::parse("000000").unwrap().as_str(), "000000");
    }

    #[test]
    fn anything_else_is_refused() {
        for input in [
            "",
            "12345",
            "1234567",
            "123 456",
            "12345a",
            "-12345",
            "+12345",
            "12345\u{0}",
            // Arabic-Indic, full-width and Devanagari digits.
            "\u{661}\u{662}\u{663}\u{664}\u{665}\u{666}",
            "\u{ff11}\u{ff12}\u{ff13}\u{ff14}\u{ff15}\u{ff16}",
            "12345\u{967}",
        ] {
            let error = Code::parse(input).expect_err(input);
            assert_eq!(error.field, "code");
            assert_eq!(error.message, "Enter the 6-digit code from the email.");
        }
    }

    #[test]
    fn debug_never_shows_the_code() {
        assert_eq!(
            format!("{:?}", Code::parse("123456").unwrap()),
            "Code(******)"
        );
    }

    proptest! {
        #![proptest_config(crate::domain::proptest_config(256))]

        #[test]
        fn never_panics(input in crate::domain::hostile::any_text()) {
            let _ = Code::parse(&input);
        }

        #[test]
        fn accepted_exactly_when_six_ascii_digits_remain_after_trimming(
            input in prop_oneof![
                crate::domain::hostile::any_text(),
                "\\s{0,3}[0-9]{6}\\s{0,3}",
                "\\s{0,2}[0-9]{0,3}[^0-9]?[0-9]{0,4}\\s{0,2}",
            ]
        ) {
            let trimmed = input.trim();
            let six_digits = trimmed.len() == 6 && trimmed.bytes().all(|b| b.is_ascii_digit());
            match Code::parse(&input) {
                Ok(code) => {
                    prop_assert!(six_digits, "{:?} was accepted", input);
                    prop_assert_eq!(code.as_str(), trimmed);
                }
                Err(_) => prop_assert!(!six_digits, "{:?} was refused", input),
            }
        }

        #[test]
        fn a_parsed_code_is_six_ascii_digits_and_reparses_to_itself(
            input in prop_oneof![
                any::<String>(),
                "\\s{0,2}[0-9\u{660}-\u{669}\u{ff10}-\u{ff19}]{5,7}\\s{0,2}",
            ]
        ) {
            if let Ok(code) = Code::parse(&input) {
                prop_assert_eq!(code.as_str().len(), 6);
                prop_assert!(code.as_str().bytes().all(|b| b.is_ascii_digit()));
                prop_assert_eq!(Code::parse(code.as_str()), Ok(code.clone()));
            }
        }
    }
}
