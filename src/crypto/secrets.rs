//! One-time codes and other random secrets: generation from the system CSPRNG, storage as
//! SHA-256, comparison in constant time.
//!
//! SHA-256 suffices for stored secrets that are high-entropy (API tokens); six-digit codes are
//! not, so their use is also limited by attempt counters and lifetimes.

use aws_lc_rs::{constant_time, digest, rand};

/// Six decimal digits, uniformly distributed (no modulo bias).
pub fn generate_code() -> String {
    // The largest multiple of 1 000 000 that fits in a u32: values at or above it are redrawn.
    const LIMIT: u32 = u32::MAX - (u32::MAX % 1_000_000);
    loop {
        let mut bytes = [0u8; 4];
        rand::fill(&mut bytes).expect("the system random generator works");
        let value = u32::from_le_bytes(bytes);
        if value < LIMIT {
            return format!("{:06}", value % 1_000_000);
        }
    }
}

/// `len` random bytes as unpadded base64url.
pub fn random_token(len: usize) -> String {
    use base64::Engine;
    let mut bytes = vec![0u8; len];
    rand::fill(&mut bytes).expect("the system random generator works");
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// SHA-256 of a secret, lower-case hex: what is stored instead of the secret.
pub fn hash_secret(secret: &str) -> String {
    let digest = digest::digest(&digest::SHA256, secret.as_bytes());
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether `secret` hashes to `stored`, compared in constant time.
pub fn secret_matches(secret: &str, stored: &str) -> bool {
    constant_time::verify_slices_are_equal(hash_secret(secret).as_bytes(), stored.as_bytes())
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_six_digits_and_vary() {
        let codes: std::collections::HashSet<String> = (0..200).map(|_| generate_code()).collect();
        assert!(
            codes
                .iter()
                .all(|c| c.len() == 6 && c.bytes().all(|b| b.is_ascii_digit()))
        );
        assert!(codes.len() > 190, "codes repeat too often");
    }

    #[test]
    fn a_secret_matches_its_hash_only() {
        let stored = hash_secret("123456");
        assert_eq!(stored.len(), 64);
        assert!(secret_matches("123456", &stored));
        assert!(!secret_matches("123457", &stored));
        assert!(!secret_matches("123456", "short"));
    }

    #[test]
    fn random_tokens_carry_the_requested_entropy() {
        let token = random_token(16);
        assert_eq!(token.len(), 22);
        assert_ne!(token, random_token(16));
    }
}
