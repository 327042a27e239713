//! Join tokens: one string that pins the cluster CA and carries a bootstrap secret.
//!
//! Format: `K10<pin>::<id>.<secret>`
//! - `K10` marks the format version;
//! - `<pin>` is the hex SHA-256 of the cluster CA's SubjectPublicKeyInfo (DER). Like kubeadm's
//!   `--discovery-token-ca-cert-hash`, it pins the *public key*, not the PEM bytes, so a
//!   re-encoded or re-issued CA file with the same key keeps every token valid;
//! - `<id>` is `[a-z0-9]{6}`, public (it names the token in `token list` and in logs);
//! - `<secret>` is `[a-z0-9]{16}` (about 82 bits), never logged, never stored: the master keeps
//!   only its SHA-256 and compares in constant time.
//!
//! A worker checks the CA bundle it downloads against the pin *before* sending the secret.

use std::fmt;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::pki::CertError;

const PREFIX: &str = "K10";
const ALPHABET: &[u8; 36] = b"abcdefghijklmnopqrstuvwxyz0123456789";

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error(
        "the join token is malformed ({0}); it looks like K10<64 hex>::<6 chars>.<16 chars>, as printed by `kubesup token create`"
    )]
    Malformed(&'static str),
    #[error("cannot read the cluster CA certificate")]
    Ca(#[source] CertError),
}

/// A join token. Debug and Display never show the secret; [`Token::expose`] does.
#[derive(Clone, PartialEq, Eq)]
pub struct Token {
    pub ca_pin: String,
    pub id: String,
    secret: String,
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Token({PREFIX}{}::{}.***)", self.ca_pin, self.id)
    }
}

impl Token {
    /// A new random token for the CA whose pin is `ca_pin`.
    pub fn generate(ca_pin: &str) -> Self {
        Self {
            ca_pin: ca_pin.to_string(),
            id: random_string(6),
            secret: random_string(16),
        }
    }

    pub fn parse(s: &str) -> Result<Self, TokenError> {
        let s = s.trim();
        let rest = s
            .strip_prefix(PREFIX)
            .ok_or(TokenError::Malformed("it does not start with K10"))?;
        let (pin, cred) = rest
            .split_once("::")
            .ok_or(TokenError::Malformed("no '::' after the CA pin"))?;
        if pin.len() != 64 || !pin.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(TokenError::Malformed("the CA pin is not 64 hex digits"));
        }
        let (id, secret) = cred
            .split_once('.')
            .ok_or(TokenError::Malformed("no '.' between id and secret"))?;
        let ok = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| ALPHABET.contains(&b));
        if !ok(id, 6) {
            return Err(TokenError::Malformed("the id is not 6 of [a-z0-9]"));
        }
        if !ok(secret, 16) {
            return Err(TokenError::Malformed("the secret is not 16 of [a-z0-9]"));
        }
        Ok(Self {
            ca_pin: pin.to_ascii_lowercase(),
            id: id.to_string(),
            secret: secret.to_string(),
        })
    }

    /// The whole token, secret included: only for printing it once to the operator and for
    /// sending it over verified TLS.
    pub fn expose(&self) -> String {
        format!("{PREFIX}{}::{}.{}", self.ca_pin, self.id, self.secret)
    }

    pub fn secret_hash(&self) -> String {
        hash_secret(&self.secret)
    }
}

/// SHA-256 of a secret, as the store keeps it.
pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Whether `secret` matches the stored hash, in constant time.
pub fn secret_matches(secret: &str, stored_hash: &str) -> bool {
    hash_secret(secret)
        .as_bytes()
        .ct_eq(stored_hash.as_bytes())
        .into()
}

/// The pin of a CA: hex SHA-256 of its SubjectPublicKeyInfo.
pub fn ca_pin(ca_pem: &str) -> Result<String, TokenError> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(ca_pem.as_bytes())
        .map_err(|e| TokenError::Ca(CertError::NotPem(e)))?;
    let cert = pem
        .parse_x509()
        .map_err(|e| TokenError::Ca(CertError::NotX509(e)))?;
    Ok(hex::encode(Sha256::digest(
        cert.tbs_certificate.subject_pki.raw,
    )))
}

/// Uniform over the alphabet: bytes at or above the largest multiple of 36 are rejected
/// rather than folded, which would favour the first letters.
fn random_string(n: usize) -> String {
    let mut out = String::with_capacity(n);
    while out.len() < n {
        let b: u8 = rand::random();
        if b < 252 {
            out.push(ALPHABET[(b % 36) as usize] as char);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const PIN: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn round_trips_and_hides_the_secret() {
        let t = Token::generate(PIN);
        let s = t.expose();
        assert!(s.starts_with("K10") && s.contains("::"));
        assert_eq!(Token::parse(&s).unwrap(), t);
        assert!(!format!("{t:?}").contains(&t.secret));
        assert!(secret_matches(&t.secret, &t.secret_hash()));
        assert!(!secret_matches("aaaaaaaaaaaaaaaa", &t.secret_hash()));
    }

    #[test]
    fn malformed_tokens_say_what_is_wrong() {
        let cases = [
            ("X10abc", "does not start with K10"),
            ("K10abc.def", "no '::'"),
            ("K10abc::abcdef.0123456789abcdef", "not 64 hex"),
            (&format!("K10{PIN}::abcdef0123456789abcdef"), "no '.'"),
            (&format!("K10{PIN}::ABCDEF.0123456789abcdef"), "id is not"),
            (&format!("K10{PIN}::abcdef.short"), "secret is not"),
        ];
        for (t, why) in cases {
            let e = Token::parse(t).unwrap_err().to_string();
            assert!(e.contains(why), "{t}: {e}");
        }
    }

    #[test]
    fn the_pin_is_of_the_public_key_not_the_pem() {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec![]).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let a = params.self_signed(&key).unwrap().pem();
        params.serial_number = Some(rcgen::SerialNumber::from(7u64));
        let b = params.self_signed(&key).unwrap().pem();
        assert_ne!(a, b);
        assert_eq!(ca_pin(&a).unwrap(), ca_pin(&b).unwrap());
        // CRLF line endings are another encoding of the same certificate.
        assert_eq!(
            ca_pin(&a.replace('\n', "\r\n")).unwrap(),
            ca_pin(&a).unwrap()
        );
        let other = rcgen::KeyPair::generate().unwrap();
        assert_ne!(
            ca_pin(&params.self_signed(&other).unwrap().pem()).unwrap(),
            ca_pin(&a).unwrap()
        );
    }
}
