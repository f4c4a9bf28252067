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

/// Hostile inputs shared by the parsers' property tests.
///
/// proptest's `any::<String>()` draws only printable characters (`\PC`), at most 32 of them:
/// no control characters and nothing long. These strategies add what a request can carry.
#[cfg(test)]
mod hostile {
    use proptest::{collection::vec, prelude::*};

    /// Characters that break text-based formats and checks: C0 and C1 controls, DEL, the
    /// Unicode line and paragraph separators, no-break and zero-width spaces, a byte-order mark,
    /// a lone combining mark, right-to-left override, and the ASCII punctuation that URLs,
    /// emails and headers give meaning to.
    pub fn nasty_char() -> impl Strategy<Value = char> {
        prop_oneof![
            proptest::char::range('\u{0}', '\u{1f}'),
            proptest::char::range('\u{7f}', '\u{9f}'),
            proptest::sample::select(vec![
                '\u{a0}',
                '\u{200b}',
                '\u{200d}',
                '\u{2028}',
                '\u{2029}',
                '\u{202e}',
                '\u{feff}',
                '\u{301}',
                '\u{ffff}',
                '\u{10ffff}',
                ' ',
                '"',
                '\'',
                '(',
                ')',
                ',',
                ':',
                ';',
                '<',
                '>',
                '@',
                '[',
                ']',
                '\\',
                '/',
                '?',
                '#',
                '%',
                '&',
                '=',
                '+',
                '*',
                '`',
            ]),
        ]
    }

    /// Any text: printable, any Unicode scalar value, the characters above, and long runs (up
    /// to 40 000 characters) of any of them.
    pub fn any_text() -> impl Strategy<Value = String> {
        let chunk = vec(prop_oneof![any::<char>(), nasty_char()], 1..8);
        prop_oneof![
            any::<String>(),
            vec(any::<char>(), 0..80).prop_map(String::from_iter),
            vec(
                prop_oneof![
                    any::<char>(),
                    nasty_char(),
                    "[a-z0-9.@-]".prop_map(|s| s.chars().next().unwrap_or('a'))
                ],
                0..80
            )
            .prop_map(String::from_iter),
            (chunk, 300usize..40_000).prop_map(|(chunk, len)| chunk
                .into_iter()
                .cycle()
                .take(len)
                .collect()),
        ]
    }

    /// `text` with `c` inserted strictly inside it (never first or last, so trimming cannot
    /// remove it), at a position chosen by `at`.
    pub fn insert_inside(text: &str, at: prop::sample::Index, c: char) -> String {
        let chars: Vec<char> = text.chars().collect();
        assert!(chars.len() >= 2, "needs an inside: {text:?}");
        let position = 1 + at.index(chars.len() - 1);
        let mut out: String = chars[..position].iter().collect();
        out.push(c);
        out.extend(&chars[position..]);
        out
    }

    /// A run of at least 1 000 characters that is not whitespace at either end: longer than
    /// anything any parser accepts.
    pub fn huge() -> impl Strategy<Value = String> {
        (
            vec(prop_oneof![any::<char>(), nasty_char()], 1..8),
            1_000usize..20_000,
        )
            .prop_map(|(chunk, len)| {
                let body: String = chunk.into_iter().cycle().take(len).collect();
                format!("x{body}x")
            })
    }
}
