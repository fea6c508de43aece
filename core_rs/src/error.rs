//! One error type for everything the core refuses. Each message names the
//! field or argument and the offending value, because an integrator reads it.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CoreError {
    InvalidPublicKey(String),
    InvalidPrivateKey(String),
    InvalidBase45(String),
    /// A field given to the issuer breaks its credential-v1 rule: (field, why).
    InvalidField(&'static str, String),
    /// A trust list that cannot be used: what is wrong, naming the key.
    TrustList(String),
    Random(String),
    Signing,
}

impl fmt::Display for CoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidPublicKey(why) => write!(f, "public_key: {why}"),
            Self::InvalidPrivateKey(why) => write!(f, "private_key: {why}"),
            Self::InvalidBase45(why) => write!(f, "base45: {why}"),
            Self::InvalidField(field, why) => write!(f, "{field}: {why}"),
            Self::TrustList(why) => write!(f, "trust list: {why}"),
            Self::Random(why) => write!(f, "the OS random source failed: {why}"),
            Self::Signing => write!(f, "SM2 signing found no valid nonce"),
        }
    }
}

impl std::error::Error for CoreError {}
