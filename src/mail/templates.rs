//! The emails authpool sends and their templates.
//!
//! Each email has three templates side by side in `templates/`: `<name>.subject.txt`,
//! `<name>.txt` (the plain-text part) and `<name>.html` (the HTML part). They are embedded in the
//! binary; a file of the same name in the configured templates folder replaces the built-in one.
//! minijinja picks escaping from the file name: `.html` is HTML-escaped, `.txt` is not.
//!
//! Everything is compiled and test-rendered once, in [`Templates::load`], so a broken override
//! stops the server at start-up instead of failing each message later.

use std::path::{Path, PathBuf};

use minijinja::{Environment, HtmlEscape, UndefinedBehavior, Value, context};

use super::MailSetupError;

/// One email authpool sends, with what its templates need. `Debug` shows only which email it
/// is: the values are secrets.
#[derive(Clone, PartialEq, Eq)]
pub enum Email {
    /// After registration: the sign-up confirmation code and a link that confirms with one click.
    ConfirmSignUp { code: String, link: String },
    /// After an email change: the code that proves the new address is the user's.
    VerifyEmail { code: String },
    /// After a password reset request: the code that allows setting a new password.
    ResetPassword { code: String },
}

impl std::fmt::Debug for Email {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let variant = match self {
            Email::ConfirmSignUp { .. } => "ConfirmSignUp",
            Email::VerifyEmail { .. } => "VerifyEmail",
            Email::ResetPassword { .. } => "ResetPassword",
        };
        write!(f, "Email::{variant} {{ .. }}")
    }
}

impl Email {
    /// The template base name: `<name>.subject.txt`, `<name>.txt`, `<name>.html`.
    pub fn template_name(&self) -> &'static str {
        match self {
            Email::ConfirmSignUp { .. } => "confirm_sign_up",
            Email::VerifyEmail { .. } => "verify_email",
            Email::ResetPassword { .. } => "reset_password",
        }
    }

    /// The variables the templates see.
    fn context(&self) -> Value {
        match self {
            Email::ConfirmSignUp { code, link } => context! { code, link },
            Email::VerifyEmail { code } | Email::ResetPassword { code } => context! { code },
        }
    }

    /// The code the email carries; the start-up check makes sure both parts show it.
    fn code(&self) -> &str {
        match self {
            Email::ConfirmSignUp { code, .. }
            | Email::VerifyEmail { code }
            | Email::ResetPassword { code } => code,
        }
    }

    /// One of each email with made-up values, to test-render every template at start-up.
    fn samples() -> [Email; 3] {
        [
            // The link holds a placeholder, not the code, so the check sees whether a template
            // shows `{{ code }}` itself.
            Email::ConfirmSignUp {
                code: "123456".into(),
                link: "https://id.example.org/api/validate?user_name=a%40example.org&confirmation_code=sample"
                    .into(),
            },
            Email::VerifyEmail {
                code: "123456".into(),
            },
            Email::ResetPassword {
                code: "123456".into(),
            },
        ]
    }
}

/// The three rendered parts of one email. No `Debug`: the bodies hold the code.
#[derive(Clone, PartialEq, Eq)]
pub struct Rendered {
    /// One line, surrounding whitespace removed.
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// The built-in templates: (file name, source).
const BUILT_IN: &[(&str, &str)] = &[
    (
        "confirm_sign_up.subject.txt",
        include_str!("../../templates/confirm_sign_up.subject.txt"),
    ),
    (
        "confirm_sign_up.txt",
        include_str!("../../templates/confirm_sign_up.txt"),
    ),
    (
        "confirm_sign_up.html",
        include_str!("../../templates/confirm_sign_up.html"),
    ),
    (
        "verify_email.subject.txt",
        include_str!("../../templates/verify_email.subject.txt"),
    ),
    (
        "verify_email.txt",
        include_str!("../../templates/verify_email.txt"),
    ),
    (
        "verify_email.html",
        include_str!("../../templates/verify_email.html"),
    ),
    (
        "reset_password.subject.txt",
        include_str!("../../templates/reset_password.subject.txt"),
    ),
    (
        "reset_password.txt",
        include_str!("../../templates/reset_password.txt"),
    ),
    (
        "reset_password.html",
        include_str!("../../templates/reset_password.html"),
    ),
];

/// The compiled templates of every email.
pub struct Templates {
    env: Environment<'static>,
}

impl Templates {
    /// Compiles the built-in templates, each replaced by the file of the same name in
    /// `overrides` when there is one, then renders every email once with sample values.
    pub fn load(overrides: Option<&Path>) -> Result<Templates, MailSetupError> {
        let mut env = Environment::new();
        // A misspelt variable in an override must fail the start-up check, not print nothing;
        // `{% if x %}` on a missing variable stays allowed.
        env.set_undefined_behavior(UndefinedBehavior::SemiStrict);
        if let Some(dir) = overrides {
            warn_about_unknown_files(dir)?;
        }
        for &(name, built_in) in BUILT_IN {
            let (source_file, result) = match overrides.map(|dir| dir.join(name)) {
                Some(path) if path.is_file() => {
                    let source = std::fs::read_to_string(&path)
                        .map_err(|e| MailSetupError::template(&path, e))?;
                    let result = env.add_template_owned(name, source);
                    (path, result)
                }
                _ => (
                    PathBuf::from(format!("built-in {name}")),
                    env.add_template(name, built_in),
                ),
            };
            result.map_err(|e| MailSetupError::template(&source_file, one_line(&e)))?;
        }
        let templates = Templates { env };
        for sample in Email::samples() {
            templates.check(&sample, overrides)?;
        }
        Ok(templates)
    }

    /// Renders the subject, text and HTML parts of one email.
    pub fn render(&self, email: &Email) -> Result<Rendered, minijinja::Error> {
        let name = email.template_name();
        let ctx = email.context();
        let part = |suffix: &str| {
            self.env
                .get_template(&format!("{name}.{suffix}"))?
                .render(&ctx)
        };
        let subject = part("subject.txt")?;
        Ok(Rendered {
            // A header is one line: fold whatever layout the template has into single spaces.
            subject: subject.split_whitespace().collect::<Vec<_>>().join(" "),
            text: part("txt")?,
            html: part("html")?,
        })
    }

    /// Renders a sample email and checks that its parts are usable: it renders, the subject is
    /// not empty, and the code (and for sign-up the link) is in both the text and the HTML.
    fn check(&self, sample: &Email, overrides: Option<&Path>) -> Result<(), MailSetupError> {
        let name = sample.template_name();
        // Names the override when there is one: that is the file to fix.
        let file = |suffix: &str| {
            let file = format!("{name}.{suffix}");
            match overrides.map(|dir| dir.join(&file)) {
                Some(path) if path.is_file() => path,
                _ => PathBuf::from(format!("built-in {file}")),
            }
        };
        let rendered = self.render(sample).map_err(|e| {
            let suffix = e
                .name()
                .and_then(|n| n.strip_prefix(name))
                .and_then(|s| s.strip_prefix('.'))
                .unwrap_or("txt");
            MailSetupError::template(&file(suffix), one_line(&e))
        })?;
        if rendered.subject.is_empty() {
            return Err(MailSetupError::template(
                &file("subject.txt"),
                "renders an empty subject",
            ));
        }
        let code = sample.code();
        for (suffix, body) in [("txt", &rendered.text), ("html", &rendered.html)] {
            if !body.contains(code) {
                return Err(MailSetupError::template(
                    &file(suffix),
                    "does not show {{ code }}",
                ));
            }
        }
        if let Email::ConfirmSignUp { link, .. } = sample {
            let escaped = HtmlEscape(link).to_string();
            if !rendered.text.contains(link.as_str()) {
                return Err(MailSetupError::template(
                    &file("txt"),
                    "does not show {{ link }}",
                ));
            }
            if !rendered.html.contains(&escaped) {
                return Err(MailSetupError::template(
                    &file("html"),
                    "does not show {{ link }}",
                ));
            }
        }
        Ok(())
    }
}

/// Logs the files of the override folder that replace nothing (a misspelt name would otherwise
/// be ignored without a word); fails when the folder cannot be read at all.
fn warn_about_unknown_files(dir: &Path) -> Result<(), MailSetupError> {
    let entries = std::fs::read_dir(dir).map_err(|e| MailSetupError::TemplatesDir {
        path: dir.to_path_buf(),
        reason: e.to_string(),
    })?;
    for entry in entries.flatten() {
        let file = entry.file_name();
        let file = file.to_string_lossy();
        if !BUILT_IN.iter().any(|(name, _)| *name == file) {
            tracing::warn!(
                file = %entry.path().display(),
                "ignoring a file in the email templates folder that matches no template"
            );
        }
    }
    Ok(())
}

/// A template error on one line, without the debug dump of the render context (which holds the
/// code in real renders).
fn one_line(e: &minijinja::Error) -> String {
    e.to_string()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn confirm() -> Email {
        Email::ConfirmSignUp {
            code: "482913".into(),
            link:
                "https://id.example.org/api/validate?user_name=a%40b.org&confirmation_code=482913"
                    .into(),
        }
    }

    #[test]
    fn every_email_shows_its_code_in_both_parts() {
        let templates = Templates::load(None).unwrap();
        for email in [
            confirm(),
            Email::VerifyEmail {
                code: "048213".into(),
            },
            Email::ResetPassword {
                code: "930417".into(),
            },
        ] {
            let r = templates.render(&email).unwrap();
            assert!(
                !r.subject.is_empty() && !r.subject.contains('\n'),
                "{}",
                r.subject
            );
            assert!(r.text.contains(email.code()), "{email:?}: {}", r.text);
            assert!(r.html.contains(email.code()), "{email:?}: {}", r.html);
            assert!(r.html.contains("<p>"), "HTML part is HTML: {}", r.html);
        }
    }

    #[test]
    fn debug_output_hides_the_code() {
        assert_eq!(format!("{:?}", confirm()), "Email::ConfirmSignUp { .. }");
    }

    #[test]
    fn the_confirmation_link_is_escaped_in_html_only() {
        let r = Templates::load(None).unwrap().render(&confirm()).unwrap();
        let Email::ConfirmSignUp { link, .. } = confirm() else {
            unreachable!()
        };
        assert!(r.text.contains(&link), "{}", r.text);
        assert!(!r.text.contains("&amp;"));
        assert!(
            r.html.contains("&amp;confirmation_code=482913"),
            "{}",
            r.html
        );
        assert!(!r.html.contains(&link), "raw & must not reach the HTML");
    }

    #[test]
    fn markup_in_values_is_escaped_in_html_and_kept_in_text() {
        let email = Email::ResetPassword {
            code: "<b>1&2</b>".into(),
        };
        let r = Templates::load(None).unwrap().render(&email).unwrap();
        assert!(r.text.contains("<b>1&2</b>"));
        assert!(
            r.html.contains("&lt;b&gt;1&amp;2&lt;&#x2f;b&gt;"),
            "{}",
            r.html
        );
        assert!(!r.html.contains("<b>1"));
    }

    #[test]
    fn a_file_in_the_override_folder_replaces_the_built_in_template() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("reset_password.subject.txt"),
            "Reset\n  for {{ code }}\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("reset_password.txt"), "Code: {{ code }}").unwrap();
        let templates = Templates::load(Some(dir.path())).unwrap();
        let r = templates
            .render(&Email::ResetPassword {
                code: "111222".into(),
            })
            .unwrap();
        assert_eq!(r.subject, "Reset for 111222");
        assert_eq!(r.text, "Code: 111222");
        // Not overridden: still the built-in HTML.
        assert!(r.html.contains("<p style"), "{}", r.html);
    }

    #[test]
    fn an_override_that_does_not_compile_is_a_setup_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("verify_email.html"), "<p>{{ code </p>").unwrap();
        let err = Templates::load(Some(dir.path())).err().unwrap().to_string();
        assert!(err.contains("verify_email.html"), "{err}");
        assert!(!err.contains('\n'), "{err}");
    }

    #[test]
    fn an_override_with_an_unknown_variable_or_without_the_code_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("confirm_sign_up.txt"),
            "{{ code }} {{ linq }}",
        )
        .unwrap();
        let err = Templates::load(Some(dir.path())).err().unwrap().to_string();
        assert!(err.contains("confirm_sign_up.txt"), "{err}");

        std::fs::write(
            dir.path().join("confirm_sign_up.txt"),
            "Welcome! {{ link }}",
        )
        .unwrap();
        let err = Templates::load(Some(dir.path())).err().unwrap().to_string();
        assert!(
            err.contains("confirm_sign_up.txt") && err.contains("code"),
            "{err}"
        );
    }

    #[test]
    fn a_missing_override_folder_is_a_setup_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = Templates::load(Some(&dir.path().join("nope")))
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("nope"), "{err}");
    }
}
