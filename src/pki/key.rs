//! Key types, key generation, and the wrapper that keeps private key material out of logs.

use std::fmt;

use rcgen::{KeyPair, PKCS_ECDSA_P256_SHA256, PKCS_RSA_SHA256, RsaKeySize};

use crate::model::KeyType;

/// What the PKI does with a [`KeyType`]: the vocabulary names the algorithm, rcgen makes it.
pub(crate) trait KeyAlgorithm: Sized {
    /// The type of a loaded key, or `None` for an algorithm kubesup never generates (such a key
    /// can still sign as a CA that an operator brought, but a leaf with it is re-keyed).
    fn of(key: &KeyPair) -> Option<Self>;
    fn generate(self) -> Result<KeyPair, rcgen::Error>;
}

impl KeyAlgorithm for KeyType {
    fn of(key: &KeyPair) -> Option<Self> {
        let alg = key.algorithm();
        if alg == &PKCS_ECDSA_P256_SHA256 {
            Some(Self::EcdsaP256)
        } else if alg == &PKCS_RSA_SHA256 {
            Some(Self::Rsa2048)
        } else {
            None
        }
    }

    fn generate(self) -> Result<KeyPair, rcgen::Error> {
        match self {
            Self::EcdsaP256 => KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256),
            // Only rcgen's aws_lc_rs backend can generate RSA keys (ring cannot).
            Self::Rsa2048 => KeyPair::generate_rsa_for(&PKCS_RSA_SHA256, RsaKeySize::_2048),
        }
    }
}

/// Private key material (a PEM key, or a kubeconfig that embeds one). Its `Debug` prints `***`
/// and it has no `Display`, so it cannot end up in a log line by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: String) -> Self {
        Self(s)
    }

    /// The secret text, for writing it to a 0600 file or handing it to a TLS library.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_debug_hides_the_key() {
        let s = Secret::new("-----BEGIN PRIVATE KEY-----\nabc".into());
        assert_eq!(format!("{s:?}"), "***");
        assert_eq!(format!("{:?}", Some(&s)), "Some(***)");
    }

    #[test]
    fn generated_keys_report_their_type() {
        for kt in [KeyType::EcdsaP256, KeyType::Rsa2048] {
            let k = kt.generate().unwrap();
            assert_eq!(KeyType::of(&k), Some(kt));
            let back = KeyPair::from_pem(&k.serialize_pem()).unwrap();
            assert_eq!(KeyType::of(&back), Some(kt));
        }
    }
}
