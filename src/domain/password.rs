//! [`Password`]: a new password that the pool's policy accepts.

use std::fmt;

use zxcvbn::{
    Entropy, Score,
    feedback::Suggestion,
    matching::patterns::{DictionaryPattern, MatchPattern},
};

use super::PasswordError;
use crate::config::PasswordPolicy;

/// Longest password accepted, in characters.
pub const MAX_PASSWORD_CHARS: usize = 256;

/// The characters that count as symbols for [`PasswordPolicy::require_symbol`]: AWS Cognito's set,
/// space included.
pub const PASSWORD_SYMBOLS: &str = "^$*.[]{}()?\"!@#%&/\\,><':;|_~`=+- ";

/// zxcvbn's cost grows with the length of the password; past this many characters a password is
/// strong by length alone, and only its start is estimated.
const ESTIMATED_CHARS: usize = 100;

/// Pieces of the user's own data shorter than this are ignored: they would only make ordinary
/// short words look guessable, or be found inside unrelated words.
const MIN_CONTEXT_PIECE_CHARS: usize = 3;

/// A new password that satisfies the [`PasswordPolicy`]: its length, its character classes, and
/// not being too easy to guess.
///
/// Kept exactly as typed, spaces included (never trimmed). `Debug` shows `Password(********)`,
/// and there is no `Display`: the only way to the text is [`Password::expose`], for hashing.
///
/// Only new passwords (registration, change, reset) are parsed: a password presented at login is
/// checked against its hash as it is, so that a stricter policy never locks anybody out.
#[derive(Clone)]
pub struct Password(String);

impl Password {
    /// Parses a new password.
    ///
    /// `context` is what the user told us about themselves (email, username, names): a password
    /// built from it, such as `alice2024!` for `alice@example.org`, is refused as easy to guess.
    /// The error is about the field `password`.
    pub fn parse(
        input: &str,
        policy: &PasswordPolicy,
        context: &[&str],
    ) -> Result<Self, PasswordError> {
        if input.is_empty() {
            return Err(PasswordError::new("Enter a password."));
        }
        // Counting stops past the maximum, so a huge input costs nothing more.
        let chars = input.chars().take(MAX_PASSWORD_CHARS + 1).count();
        if chars < policy.min_length {
            return Err(PasswordError::new(format!(
                "Passwords must be at least {} characters.",
                policy.min_length
            )));
        }
        if chars > MAX_PASSWORD_CHARS {
            return Err(PasswordError::new(format!(
                "Passwords must be at most {MAX_PASSWORD_CHARS} characters."
            )));
        }
        check_classes(input, policy)?;
        check_guessability(input, context)?;
        Ok(Self(input.to_owned()))
    }

    /// The password itself; call only to hash it, never to log or display it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Fixed width: not even the length is shown.
        f.write_str("Password(********)")
    }
}

/// The optional character-class rules, all missing classes named in one sentence.
///
/// Letters are Unicode letters (`é` is lower-case), digits are `0`–`9`, symbols are
/// [`PASSWORD_SYMBOLS`].
fn check_classes(input: &str, policy: &PasswordPolicy) -> Result<(), PasswordError> {
    let mut missing = Vec::new();
    if policy.require_lowercase && !input.chars().any(char::is_lowercase) {
        missing.push("a lower-case letter");
    }
    if policy.require_uppercase && !input.chars().any(char::is_uppercase) {
        missing.push("an upper-case letter");
    }
    if policy.require_digit && !input.chars().any(|c| c.is_ascii_digit()) {
        missing.push("a digit");
    }
    if policy.require_symbol && !input.chars().any(|c| PASSWORD_SYMBOLS.contains(c)) {
        missing.push("a symbol such as ! # % or a space");
    }
    match missing.as_slice() {
        [] => Ok(()),
        [one] => Err(PasswordError::new(format!(
            "Passwords must contain at least {one}."
        ))),
        [first @ .., last] => Err(PasswordError::new(format!(
            "Passwords must contain at least {} and {last}.",
            first.join(", ")
        ))),
    }
}

/// Refuses what zxcvbn scores 0 or 1 (guessable in under a million tries), and what is built
/// from the user's own data around a weak rest.
fn check_guessability(input: &str, context: &[&str]) -> Result<(), PasswordError> {
    let estimated = match input.char_indices().nth(ESTIMATED_CHARS) {
        Some((end, _)) => &input[..end],
        None => input,
    };
    let user_inputs = user_inputs(context);
    let user_input_refs: Vec<&str> = user_inputs.iter().map(String::as_str).collect();
    let entropy = zxcvbn::zxcvbn(estimated, &user_input_refs);
    if entropy.score() < Score::Two {
        return Err(PasswordError::new(guessable_message(
            &entropy,
            &user_inputs,
        )));
    }
    // zxcvbn scores a user-data word like any dictionary word and adds a large penalty per extra
    // token, so `wojcik2024!` for zbigniew.wojcik@... still scores 2. What is left once the
    // user's own data is taken out must be strong enough on its own.
    let mut rest = estimated.to_lowercase();
    let before = rest.len();
    // Longest first, so that a whole address goes before its pieces.
    for piece in user_inputs.iter().rev() {
        rest = rest.replace(piece.as_str(), "");
    }
    if rest.len() < before
        && (rest.is_empty() || zxcvbn::zxcvbn(&rest, &user_input_refs).score() < Score::Two)
    {
        return Err(PasswordError::new(format!(
            "{TOO_GUESSABLE} {FROM_USER_DATA} Add another word or two. Uncommon words are better."
        )));
    }
    Ok(())
}

const TOO_GUESSABLE: &str = "This password is too common or too easy to guess.";
const FROM_USER_DATA: &str = "It is built from your email address, username or name.";

/// The user's data as zxcvbn dictionary words: each value whole, and its alphanumeric pieces
/// (`anna.smith@example.org` also gives `anna`, `smith`, `example`), since a password is rarely
/// built from a whole address. Lower-cased, as zxcvbn matches them.
fn user_inputs(context: &[&str]) -> Vec<String> {
    let mut inputs = Vec::new();
    for value in context {
        // Context values are short fields (email, names), but bound the work anyway.
        let value: String = value
            .trim()
            .chars()
            .take(MAX_PASSWORD_CHARS)
            .collect::<String>()
            .to_lowercase();
        if value.chars().count() < MIN_CONTEXT_PIECE_CHARS {
            continue;
        }
        inputs.extend(
            value
                .split(|c: char| !c.is_alphanumeric())
                .filter(|piece| piece.chars().count() >= MIN_CONTEXT_PIECE_CHARS)
                .map(str::to_owned),
        );
        inputs.push(value);
    }
    // Shortest first (longest last), for the removal in `check_guessability`.
    inputs.sort_by(|a, b| a.len().cmp(&b.len()).then_with(|| a.cmp(b)));
    inputs.dedup();
    inputs
}

/// Why a password is too easy to guess, in zxcvbn's words where it has some.
fn guessable_message(entropy: &Entropy, user_inputs: &[String]) -> String {
    let mut message = String::from(TOO_GUESSABLE);
    let from_user_data = entropy.sequence().iter().any(|m| {
        matches!(
            &m.pattern,
            MatchPattern::Dictionary(DictionaryPattern { matched_word, .. })
                if user_inputs.contains(matched_word)
        )
    });
    let feedback = entropy.feedback();
    if from_user_data {
        message.push(' ');
        message.push_str(FROM_USER_DATA);
    } else if let Some(warning) = feedback.and_then(|f| f.warning()) {
        message.push(' ');
        message.push_str(&warning.to_string());
    }
    for suggestion in feedback.map(|f| f.suggestions()).unwrap_or_default() {
        // Contradicts the class rules when they are on; nothing is lost without it.
        if *suggestion != Suggestion::NoNeedForSymbolsDigitsOrUppercaseLetters {
            message.push(' ');
            message.push_str(&suggestion.to_string());
        }
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The default policy: 8 characters, no class rules.
    fn default_policy() -> PasswordPolicy {
        PasswordPolicy {
            min_length: 8,
            require_lowercase: false,
            require_uppercase: false,
            require_digit: false,
            require_symbol: false,
        }
    }

    fn strict_policy() -> PasswordPolicy {
        PasswordPolicy {
            min_length: 12,
            require_lowercase: true,
            require_uppercase: true,
            require_digit: true,
            require_symbol: true,
        }
    }

    const STRONG: &str = "correct horse battery staple 42!";

    fn refused(input: &str, policy: &PasswordPolicy, context: &[&str]) -> String {
        match Password::parse(input, policy, context) {
            Ok(_) => panic!("{input:?} was accepted"),
            Err(e) => {
                assert_eq!(e.field, "password");
                assert!(
                    input.is_empty() || !e.message.contains(input),
                    "the message repeats the password"
                );
                e.message
            }
        }
    }

    fn accepted(input: &str, policy: &PasswordPolicy, context: &[&str]) -> Password {
        Password::parse(input, policy, context)
            .unwrap_or_else(|e| panic!("{input:?} was refused: {}", e.message))
    }

    #[test]
    fn a_long_passphrase_is_accepted_as_typed() {
        let password = accepted(STRONG, &default_policy(), &["anna@example.org"]);
        assert_eq!(password.expose(), STRONG);
        let spaced = accepted("  Tr0mbone-Ziggurat-Quokka  ", &default_policy(), &[]);
        assert_eq!(spaced.expose(), "  Tr0mbone-Ziggurat-Quokka  ");
    }

    #[test]
    fn debug_never_shows_the_password() {
        let password = accepted(STRONG, &default_policy(), &[]);
        assert_eq!(format!("{password:?}"), "Password(********)");
    }

    #[test]
    fn common_passwords_are_refused_with_zxcvbn_reasons() {
        let message = refused("password123", &default_policy(), &[]);
        assert!(
            message.starts_with("This password is too common"),
            "{message}"
        );
        assert!(message.contains("common password"), "{message}");
        for common in [
            "12345678",
            "qwertyuiop",
            "iloveyou",
            "aaaaaaaaaaaa",
            "Password1!",
        ] {
            refused(common, &default_policy(), &[]);
        }
    }

    #[test]
    fn passwords_built_from_the_users_own_data_are_refused() {
        let context = [
            "zbigniew.wojcik@kraftwerk-mail.example",
            "zbyszek77",
            "Zbigniew",
            "",
        ];
        // Each is accepted for somebody else, refused for this user.
        for password in [
            "zbigniewwojcik",
            "wojcik2024!",
            "Wojcik1984",
            "kraftwerk-mail",
            "Zbigniew.Wojcik1",
            "ZBIGNIEW.WOJCIK@KRAFTWERK-MAIL.EXAMPLE",
        ] {
            let message = refused(password, &default_policy(), &context);
            assert!(
                message.contains("your email address, username or name"),
                "{message}"
            );
        }
        for password in ["alice2024", "Alice2024!", "alice@example.org2024"] {
            let message = refused(password, &default_policy(), &["alice@example.org"]);
            assert!(
                message.contains("your email address"),
                "{password}: {message}"
            );
        }
        // Refused too, with zxcvbn's reason: a repeat.
        let message = refused("zbyszek77zbyszek77", &default_policy(), &context);
        assert!(message.contains("Repeats"), "{message}");
        // The user's data with a strong rest is fine.
        accepted(
            "wojcik marzipan lantern quokka",
            &default_policy(),
            &context,
        );
        accepted("Tr0mbone-Ziggurat-Zbigniew", &default_policy(), &context);
        // And the same passwords are fine for somebody else.
        accepted("Zbigniew.Wojcik1", &default_policy(), &["anna@example.org"]);
    }

    #[test]
    fn length_is_counted_in_characters_between_the_minimum_and_256() {
        let policy = default_policy();
        assert_eq!(refused("", &policy, &[]), "Enter a password.");
        assert_eq!(
            refused("Zq8#vLp", &policy, &[]),
            "Passwords must be at least 8 characters."
        );
        accepted("Zq8#vLp!", &policy, &[]);
        // Eight characters, sixteen bytes.
        accepted(
            "\u{17e}\u{3c9}\u{436}\u{5d0}\u{3b8}\u{1fd}\u{444}\u{11f}",
            &policy,
            &[],
        );
        let longest = format!(
            "{STRONG} {}",
            "x".repeat(MAX_PASSWORD_CHARS - STRONG.len() - 1)
        );
        assert_eq!(longest.chars().count(), MAX_PASSWORD_CHARS);
        accepted(&longest, &policy, &[]);
        assert_eq!(
            refused(&format!("{longest}x"), &policy, &[]),
            "Passwords must be at most 256 characters."
        );
        let twelve = PasswordPolicy {
            min_length: 12,
            ..default_policy()
        };
        assert_eq!(
            refused("Zq8#vLp!Tr0", &twelve, &[]),
            "Passwords must be at least 12 characters."
        );
    }

    #[test]
    fn class_rules_name_every_missing_class() {
        let policy = strict_policy();
        assert_eq!(
            refused("marzipan lantern quokka", &policy, &[]),
            "Passwords must contain at least an upper-case letter and a digit."
        );
        assert_eq!(
            refused("MARZIPANLANTERNQUOKKA", &policy, &[]),
            "Passwords must contain at least a lower-case letter, a digit and a symbol such as \
             ! # % or a space."
        );
        assert_eq!(
            refused("MarzipanLanternQuokka7", &policy, &[]),
            "Passwords must contain at least a symbol such as ! # % or a space."
        );
        accepted("Marzipan Lantern Quokka 7", &policy, &[]);
        for symbol in PASSWORD_SYMBOLS.chars() {
            accepted(&format!("MarzipanLantern{symbol}Quokka7"), &policy, &[]);
        }
        // Class rules are off by default.
        accepted("marzipan lantern quokka", &default_policy(), &[]);
    }

    #[test]
    fn class_rules_come_before_the_guessability_estimate() {
        // Both fail; the cheaper, more actionable message wins.
        assert_eq!(
            refused("Password1234", &strict_policy(), &[]),
            "Passwords must contain at least a symbol such as ! # % or a space."
        );
    }

    #[test]
    fn only_the_first_100_characters_are_estimated() {
        // 'a' repeated is hopeless, but a strong start is what counts.
        let input = format!("{STRONG}{}", "a".repeat(200));
        accepted(&input, &default_policy(), &[]);
        let weak_start = format!("{}{STRONG}", "a".repeat(100));
        refused(&weak_start, &default_policy(), &[]);
    }

    proptest! {
        #![proptest_config(crate::domain::proptest_config(64))]

        #[test]
        fn never_panics(
            input in crate::domain::hostile::any_text(),
            context in proptest::collection::vec(crate::domain::hostile::any_text(), 0..4),
        ) {
            let context: Vec<&str> = context.iter().map(String::as_str).collect();
            let _ = Password::parse(&input, &strict_policy(), &context);
            let _ = Password::parse(&input, &default_policy(), &context);
        }

        #[test]
        fn lengths_outside_the_policy_are_refused_whatever_the_characters(
            short in "\\PC{1,7}",
            long in crate::domain::hostile::huge(),
        ) {
            let error = Password::parse(&short, &default_policy(), &[]).err();
            prop_assert_eq!(
                error.map(|e| e.message),
                Some("Passwords must be at least 8 characters.".to_string())
            );
            let error = Password::parse(&long, &default_policy(), &[]).err();
            prop_assert_eq!(
                error.map(|e| e.message),
                Some("Passwords must be at most 256 characters.".to_string())
            );
        }

        #[test]
        fn an_accepted_password_has_every_class_the_policy_requires(
            input in prop_oneof![
                "[a-zA-Z0-9 !#%]{12,40}",
                "[a-z]{4,8} [A-Z][a-z]{4,8} [a-z]{4,8}[0-9!]{0,2}",
                crate::domain::hostile::any_text(),
            ]
        ) {
            if let Ok(password) = Password::parse(&input, &strict_policy(), &[]) {
                let text = password.expose();
                prop_assert!(text.chars().count() >= 12);
                prop_assert!(text.chars().any(char::is_lowercase));
                prop_assert!(text.chars().any(char::is_uppercase));
                prop_assert!(text.chars().any(|c| c.is_ascii_digit()));
                prop_assert!(text.chars().any(|c| PASSWORD_SYMBOLS.contains(c)));
            }
        }

        #[test]
        fn the_users_own_email_username_or_name_is_never_a_password(
            own in prop_oneof![
                "[a-z0-9.]{3,20}@[a-z]{3,12}\\.[a-z]{2,6}",
                "\\PC{8,60}",
            ],
            shout in any::<bool>(),
        ) {
            // Upper-casing and back is the identity for ASCII only (`ß` becomes `ss`).
            let password = if shout && own.is_ascii() { own.to_uppercase() } else { own.clone() };
            prop_assume!(password.chars().count() >= 8);
            prop_assert!(Password::parse(&password, &default_policy(), &[&own]).is_err());
        }

        #[test]
        fn surrounding_spaces_are_kept(
            spaces in "[ \t]{1,3}",
        ) {
            let input = format!("{spaces}{STRONG}{spaces}");
            let password = Password::parse(&input, &default_policy(), &[])
                .map_err(|e| TestCaseError::fail(e.message))?;
            prop_assert_eq!(password.expose(), input.as_str());
        }

        #[test]
        fn reparsing_gives_the_same_password(
            input in prop_oneof![
                any::<String>(),
                "[a-zA-Z0-9 !#%]{8,40}",
                "\\PC{8,300}",
            ]
        ) {
            if let Ok(password) = Password::parse(&input, &default_policy(), &["anna@example.org"]) {
                let again = Password::parse(password.expose(), &default_policy(), &["anna@example.org"]);
                prop_assert_eq!(again.map(|p| p.expose().to_owned()), Ok(input.clone()));
                let count = input.chars().count();
                prop_assert!((8..=MAX_PASSWORD_CHARS).contains(&count));
            }
        }
    }
}
