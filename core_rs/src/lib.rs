//! yibao-core: the verification core of the medical insurance electronic
//! credential (医保电子凭证), credential-v1.
//!
//! Pure and synchronous: SM2/SM3 ([`sm`], the reference on RustCrypto;
//! [`sm2fast`], verification specialised to the curve with tables per key), Base45 ([`base45`]), the code's
//! bytes ([`credential`]), the trust list ([`trust`]), the state the checks
//! consult ([`revocation`] over a [`fuse`] filter snapshot, [`replay`]) and the checks in order ([`check`]).
//! The Python binding is behind the `python` feature.

pub mod base45;
pub mod bulk;
pub mod check;
pub mod credential;
pub mod error;
pub mod fuse;
pub mod outcome;
pub mod replay;
pub mod revocation;
pub mod sm;
pub mod sm2fast;
pub mod time;
pub mod trust;

#[cfg(feature = "python")]
mod python;
