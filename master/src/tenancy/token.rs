//! Bearer tokens: `wsm_<id>_<secret>`, where the id (12 hex digits) names
//! the stored record and the secret (64 hex digits, 256 random bits) is
//! known only to its holder. The master keeps the secret's SHA-256: a
//! fast hash is enough for a secret with that much entropy (no dictionary
//! to guess from), and checking a request costs a microsecond.

use sha2::{Digest as _, Sha256};

const PREFIX: &str = "wsm_";
const ID_BYTES: usize = 6;
const SECRET_BYTES: usize = 32;

/// A freshly generated token.
pub struct Generated {
    pub id: String,
    /// The whole bearer token, to hand to its holder once.
    pub bearer: String,
    pub secret_sha256: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "not a wasmesos token (expected wsm_<12 hex digits>_<64 hex digits>, as `wasmesos token create` prints)"
)]
pub struct Malformed;

/// A new random token.
pub fn generate() -> Generated {
    let mut id = [0u8; ID_BYTES];
    let mut secret = [0u8; SECRET_BYTES];
    getrandom::getrandom(&mut id).expect("the OS random number generator");
    getrandom::getrandom(&mut secret).expect("the OS random number generator");
    let id = hex::encode(id);
    let secret = hex::encode(secret);
    Generated {
        bearer: format!("{PREFIX}{id}_{secret}"),
        secret_sha256: hash(&secret),
        id,
    }
}

/// The id and secret of a bearer token.
pub fn parse(bearer: &str) -> Result<(&str, &str), Malformed> {
    let rest = bearer.trim().strip_prefix(PREFIX).ok_or(Malformed)?;
    let (id, secret) = rest.split_once('_').ok_or(Malformed)?;
    let hex_of = |s: &str, bytes: usize| {
        s.len() == bytes * 2
            && s.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    };
    if !hex_of(id, ID_BYTES) || !hex_of(secret, SECRET_BYTES) {
        return Err(Malformed);
    }
    Ok((id, secret))
}

/// The stored form of a secret.
pub fn hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Compares two hashes in time independent of where they differ.
pub fn same_hash(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_parse_and_verify() {
        let t = generate();
        let (id, secret) = parse(&t.bearer).unwrap();
        assert_eq!(id, t.id);
        assert!(same_hash(&hash(secret), &t.secret_sha256));
        assert_ne!(generate().bearer, t.bearer);
        // A trailing newline from a token file is fine.
        assert!(parse(&format!("{}\n", t.bearer)).is_ok());
    }

    #[test]
    fn malformed_tokens_are_refused() {
        let t = generate();
        for bad in [
            "",
            "Bearer x",
            &t.bearer[4..],
            &t.bearer[..t.bearer.len() - 1],
            &t.bearer.to_uppercase(),
            &t.bearer.replace('_', "-"),
            &format!("{}0", t.bearer),
        ] {
            assert_eq!(parse(bad), Err(Malformed), "{bad:?}");
        }
        assert!(!same_hash(&hash("a"), &hash("b")));
    }
}
