//! [`Email`]: an address the user can be written to, and the key it is found by.

use std::{borrow::Cow, fmt};

use idna::uts46::{AsciiDenyList, DnsLength, Hyphens, Uts46};

use super::FieldError;

/// Longest address accepted, in characters: the longest forward path SMTP can carry
/// (RFC 5321, 256 octets including the angle brackets).
const MAX_CHARS: usize = 254;
/// Longest local part (before the `@`), RFC 5321.
const MAX_LOCAL_CHARS: usize = 64;
/// Longest domain label, RFC 1035.
const MAX_LABEL_CHARS: usize = 63;

/// The characters besides ASCII letters and digits that the WHATWG "valid e-mail address"
/// grammar allows before the `@`: the grammar browsers check `<input type=email>` with, and a
/// subset of what lettre's `Address` accepts, so every `Email` can be mailed.
const LOCAL_SYMBOLS: &str = ".!#$%&'*+/=?^_`{|}~-";

const FIELD: &str = "email";

/// An email address, trimmed, with its case kept as the user typed it.
///
/// Accepted: at most 254 characters; one `@`; before it 1–64 of the characters the WHATWG/HTML
/// "valid e-mail address" grammar allows (ASCII letters, digits and ``.!#$%&'*+/=?^_`{|}~-``),
/// dots placed as RFC 5321 wants them (not first, not last, never two in a row);
/// after it a domain name of at least two labels (letters, digits and hyphens, 1–63 each, not
/// starting or ending with a hyphen) whose last label is not all digits. International domain
/// names are accepted and stored in their ASCII (punycode) form, e.g. `anna@bücher.example` →
/// `anna@xn--bcher-kva.example`, so every stored address is ASCII and can be mailed as is.
///
/// Two addresses that differ only in case are the same account: compare and look up by
/// [`Email::key`]. `==` compares the address as stored.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Email(String);

impl Email {
    /// Parses an address typed by a person. The error is about the field `email`.
    pub fn parse(input: &str) -> Result<Self, FieldError> {
        let input = input.trim();
        if input.is_empty() {
            return Err(error("Enter an email address."));
        }
        // Bound the work before any Unicode processing: a long input is refused at once.
        if input.chars().nth(MAX_CHARS).is_some() {
            return Err(too_long());
        }
        let Some((local, domain)) = input.split_once('@') else {
            return Err(error(
                "Enter a valid email address: it needs an @ between the name and the domain, \
                 as in name@example.org.",
            ));
        };
        if domain.contains('@') {
            return Err(error(
                "Enter a valid email address: it may contain only one @.",
            ));
        }
        check_local_part(local)?;
        let domain = parse_domain(domain)?;
        let email = format!("{local}@{domain}");
        // An international domain grows when converted to punycode.
        if email.len() > MAX_CHARS {
            return Err(too_long());
        }
        Ok(Self(email))
    }

    /// The address as stored: trimmed, case kept, domain in ASCII.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The lower-cased address, used for uniqueness and lookup.
    ///
    /// Strictly, the local part of an address is case-sensitive; no mail provider in use treats
    /// it so, and two accounts for `Anna@` and `anna@` would be a trap, not a feature.
    pub fn key(&self) -> String {
        // The stored form is ASCII, so ASCII lower-casing is the whole of lower-casing.
        self.0.to_ascii_lowercase()
    }

    /// The address, by value.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for Email {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

fn error(message: &str) -> FieldError {
    FieldError::new(FIELD, message)
}

fn too_long() -> FieldError {
    error("Email addresses must be at most 254 characters.")
}

fn check_local_part(local: &str) -> Result<(), FieldError> {
    if local.is_empty() {
        return Err(error(
            "Enter a valid email address: the name before the @ is missing.",
        ));
    }
    if !local
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || LOCAL_SYMBOLS.contains(c))
    {
        return Err(error(
            "Enter a valid email address: the name before the @ may only contain unaccented \
             letters (a-z), digits and . ! # $ % & ' * + / = ? ^ _ ` { | } ~ -",
        ));
    }
    // The WHATWG grammar lets dots go anywhere; RFC 5321's dot-string, which mail servers and
    // lettre hold to, does not. Refused here rather than failing at delivery.
    if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
        return Err(error(
            "Enter a valid email address: the name before the @ cannot start or end with a dot \
             or have two dots in a row.",
        ));
    }
    // ASCII from here, so bytes are characters.
    if local.len() > MAX_LOCAL_CHARS {
        return Err(error(
            "Enter a valid email address: the name before the @ must be at most 64 characters.",
        ));
    }
    Ok(())
}

/// The domain in ASCII: as given when it is ASCII (case kept), else converted with UTS 46.
fn parse_domain(domain: &str) -> Result<Cow<'_, str>, FieldError> {
    if domain.is_empty() {
        return Err(error(
            "Enter a valid email address: the domain after the @ is missing, as in \
             name@example.org.",
        ));
    }
    let ascii = if domain.is_ascii() {
        Cow::Borrowed(domain)
    } else {
        // STD3 rules refuse what DNS host names cannot hold (`_`, spaces, ...); the hyphen and
        // length rules are checked below on the ASCII form, the same way for every domain, so
        // that a converted domain parses again to itself.
        let converted = Uts46::new()
            .to_ascii(
                domain.as_bytes(),
                AsciiDenyList::STD3,
                Hyphens::Allow,
                DnsLength::Verify,
            )
            .map_err(|_| {
                error(
                    "Enter a valid email address: the domain after the @ is not a valid \
                     international domain name.",
                )
            })?;
        Cow::Owned(converted.into_owned())
    };
    check_ascii_domain(&ascii)?;
    Ok(ascii)
}

fn check_ascii_domain(domain: &str) -> Result<(), FieldError> {
    let mut labels = 0;
    let mut last = "";
    for label in domain.split('.') {
        if label.is_empty() {
            return Err(error(
                "Enter a valid email address: the domain after the @ has an empty part (a dot \
                 at the start or end, or two dots in a row).",
            ));
        }
        if !label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return Err(error(
                "Enter a valid email address: the domain after the @ may only contain letters, \
                 digits, hyphens and dots.",
            ));
        }
        if label.len() > MAX_LABEL_CHARS {
            return Err(error(
                "Enter a valid email address: each part of the domain after the @ must be at \
                 most 63 characters.",
            ));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(error(
                "Enter a valid email address: parts of the domain after the @ cannot start or \
                 end with a hyphen.",
            ));
        }
        labels += 1;
        last = label;
    }
    if labels < 2 {
        return Err(error(
            "Enter a valid email address: the domain after the @ needs a dot, as in \
             name@example.org.",
        ));
    }
    // No top-level domain is numeric; this refuses bare IP addresses such as `a@127.0.0.1`.
    if last.chars().all(|c| c.is_ascii_digit()) {
        return Err(error(
            "Enter a valid email address: the domain after the @ must be a name such as \
             example.org, not an IP address.",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn refused(input: &str) -> String {
        match Email::parse(input) {
            Ok(email) => panic!("{input:?} was accepted as {email:?}"),
            Err(e) => {
                assert_eq!(e.field, "email");
                e.message
            }
        }
    }

    fn accepted(input: &str) -> Email {
        Email::parse(input).unwrap_or_else(|e| panic!("{input:?} was refused: {}", e.message))
    }

    #[test]
    fn ordinary_addresses_are_accepted_trimmed_with_their_case() {
        let email = accepted("  Anna.Smith+news@Example.ORG \n");
        assert_eq!(email.as_str(), "Anna.Smith+news@Example.ORG");
        assert_eq!(email.to_string(), "Anna.Smith+news@Example.ORG");
        assert_eq!(email.key(), "anna.smith+news@example.org");
    }

    #[test]
    fn every_symbol_of_the_whatwg_grammar_is_accepted_before_the_at() {
        accepted("a.!#$%&'*+/=?^_`{|}~-z@example.org");
        accepted("x@sub-domain.example.co.uk");
        accepted("1234@123.example");
    }

    #[test]
    fn addresses_of_254_characters_are_accepted_and_255_refused() {
        let local = "l".repeat(64);
        let domain = |last: usize| {
            format!(
                "{}.{}.{}.org",
                "a".repeat(63),
                "b".repeat(63),
                "c".repeat(last)
            )
        };
        let longest = format!("{local}@{}", domain(57));
        assert_eq!(longest.len(), 254);
        accepted(&longest);
        let too_long = format!("{local}@{}", domain(58));
        assert_eq!(too_long.len(), 255);
        assert!(refused(&too_long).contains("at most 254"));
    }

    #[test]
    fn the_name_before_the_at_may_have_64_characters_not_65() {
        accepted(&format!("{}@example.org", "a".repeat(64)));
        assert!(refused(&format!("{}@example.org", "a".repeat(65))).contains("at most 64"));
    }

    #[test]
    fn domain_labels_may_have_63_characters_not_64() {
        accepted(&format!("a@{}.org", "d".repeat(63)));
        assert!(refused(&format!("a@{}.org", "d".repeat(64))).contains("at most 63"));
    }

    #[test]
    fn malformed_addresses_are_refused_with_a_reason() {
        assert!(refused("").contains("Enter an email address"));
        assert!(refused("   ").contains("Enter an email address"));
        assert!(refused("anna.example.org").contains("needs an @"));
        assert!(refused("anna@b@example.org").contains("only one @"));
        assert!(refused("@example.org").contains("name before the @ is missing"));
        assert!(refused("anna@").contains("domain after the @ is missing"));
        assert!(refused("anna smith@example.org").contains("may only contain"));
        assert!(refused("\"anna\"@example.org").contains("may only contain"));
        assert!(refused("anna(x)@example.org").contains("may only contain"));
        for dots in [
            ".anna@example.org",
            "anna.@example.org",
            "an..na@example.org",
        ] {
            assert!(refused(dots).contains("two dots in a row"), "{dots}");
        }
        assert!(refused("anna@localhost").contains("needs a dot"));
        assert!(refused("anna@example..org").contains("empty part"));
        assert!(refused("anna@.example.org").contains("empty part"));
        assert!(refused("anna@example.org.").contains("empty part"));
        assert!(refused("anna@-example.org").contains("hyphen"));
        assert!(refused("anna@example-.org").contains("hyphen"));
        assert!(refused("anna@exa_mple.org").contains("may only contain letters"));
        assert!(refused("anna@[127.0.0.1]").contains("may only contain letters"));
        assert!(refused("anna@127.0.0.1").contains("not an IP address"));
        assert!(refused("anna@example.org\nBcc: x@example.org").contains("only one @"));
    }

    #[test]
    fn non_ascii_names_before_the_at_are_refused() {
        let message = refused("jos\u{e9}@example.org");
        assert!(message.contains("unaccented letters"), "{message}");
    }

    #[test]
    fn international_domains_are_stored_as_punycode() {
        let email = accepted("Anna@B\u{fc}cher.Example");
        assert_eq!(email.as_str(), "Anna@xn--bcher-kva.example");
        assert_eq!(email.key(), "anna@xn--bcher-kva.example");
        assert_eq!(
            accepted("x@\u{4f8b}\u{5b50}.\u{6d4b}\u{8bd5}").as_str(),
            "x@xn--fsqu00a.xn--0zwm56d"
        );
        // Full-width dots and letters are folded by UTS 46.
        assert_eq!(
            accepted("x@\u{ff45}xample\u{3002}org").as_str(),
            "x@example.org"
        );
        assert!(refused("x@b\u{fc}cher_.example").contains("international domain"));
        refused("x@\u{fc}.");
    }

    #[test]
    fn an_international_domain_that_grows_past_254_characters_is_refused() {
        // 60 + 1 + (label of 62 'ü' → far more than 63 ASCII characters).
        let long = format!("{}@{}.org", "a".repeat(60), "\u{fc}".repeat(62));
        refused(&long);
    }

    /// Addresses that are always valid: every symbol the name may have, dots where they may go,
    /// and a domain of two to four labels.
    fn address() -> impl Strategy<Value = String> {
        "[a-zA-Z0-9!#$%&'*+/=?^_`{|}~-]{1,20}(\\.[a-zA-Z0-9!#$%&'*+/=?^_`{|}~-]{1,10}){0,2}@([a-zA-Z0-9]([a-zA-Z0-9-]{0,10}[a-zA-Z0-9])?\\.){1,3}[a-zA-Z]{2,6}"
    }

    /// Characters no address may hold anywhere: controls, whitespace, a second `@`, and the
    /// punctuation of quoted names, comments and address lists.
    fn forbidden() -> impl Strategy<Value = char> {
        prop_oneof![
            proptest::char::range('\u{0}', '\u{20}'),
            Just('\u{7f}'),
            proptest::sample::select(vec![
                '"', '(', ')', ',', ':', ';', '<', '>', '[', ']', '\\', '@'
            ]),
        ]
    }

    proptest! {
        #![proptest_config(crate::domain::proptest_config(256))]

        #[test]
        fn never_panics(input in crate::domain::hostile::any_text()) {
            let _ = Email::parse(&input);
        }

        #[test]
        fn huge_inputs_are_refused(input in crate::domain::hostile::huge()) {
            prop_assert!(Email::parse(&input).is_err());
        }

        #[test]
        fn generated_addresses_are_accepted_as_typed_and_found_whatever_their_case(
            input in address()
        ) {
            let email = Email::parse(&input).map_err(|e| TestCaseError::fail(e.message))?;
            prop_assert_eq!(email.as_str(), input.as_str());
            let shouted = Email::parse(&input.to_ascii_uppercase())
                .map_err(|e| TestCaseError::fail(e.message))?;
            prop_assert_eq!(shouted.key(), email.key());
        }

        #[test]
        fn a_forbidden_character_is_refused_wherever_it_is(
            valid in address(),
            at in any::<proptest::sample::Index>(),
            bad in forbidden(),
        ) {
            let input = crate::domain::hostile::insert_inside(&valid, at, bad);
            prop_assert!(Email::parse(&input).is_err(), "{:?} was accepted", input);
        }

        #[test]
        fn a_non_ascii_character_before_the_at_is_refused(
            valid in address(),
            at in any::<proptest::sample::Index>(),
            bad in any::<char>().prop_filter("not ASCII", |c| !c.is_ascii()),
        ) {
            // Anywhere from after the first character up to the `@`.
            let local = valid.find('@').expect("generated with an @");
            let position = 1 + at.index(local);
            let input = format!("{}{bad}{}", &valid[..position], &valid[position..]);
            prop_assert!(Email::parse(&input).is_err(), "{:?} was accepted", input);
        }

        #[test]
        fn an_accepted_address_is_one_printable_ascii_word_with_one_at(
            input in prop_oneof![crate::domain::hostile::any_text(), address()]
        ) {
            if let Ok(email) = Email::parse(&input) {
                let text = email.as_str();
                prop_assert_eq!(text.matches('@').count(), 1);
                prop_assert!(text.chars().all(|c| c.is_ascii_graphic()), "{:?}", text);
            }
        }

        #[test]
        fn reparsing_gives_the_same_address_and_the_key_is_lower_case(
            input in prop_oneof![
                any::<String>(),
                "[ \t]{0,2}[a-zA-Z0-9.!#$%&'*+/=?^_`{|}~-]{1,70}@([a-zA-Z0-9-]{1,64}\\.){1,4}[a-zA-Z0-9-]{1,10}",
                "[a-z]{1,10}@[a-zA-Z\u{e0}-\u{ff}\u{4e00}-\u{4e20}-]{1,20}\\.[a-z\u{430}-\u{44f}]{2,6}",
            ]
        ) {
            if let Ok(email) = Email::parse(&input) {
                prop_assert_eq!(Email::parse(email.as_str()), Ok(email.clone()));
                prop_assert!(email.as_str().is_ascii());
                prop_assert!(email.as_str().len() <= MAX_CHARS);
                let key = email.key();
                prop_assert_eq!(key.to_lowercase(), key.clone());
                prop_assert_eq!(key, email.as_str().to_lowercase());
                // Every address authpool accepts is one it can send mail to.
                prop_assert!(email.as_str().parse::<lettre::Address>().is_ok());
            }
        }
    }
}
