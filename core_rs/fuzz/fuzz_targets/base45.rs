//! Base45 (RFC 9285) on any bytes: decoding never panics, and what decodes
//! encodes back to a text that decodes to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use yibao_core::base45::{decode, encode};

fuzz_target!(|text: &[u8]| {
    if let Ok(bytes) = decode(text) {
        let again = encode(&bytes);
        assert_eq!(decode(again.as_bytes()).expect("our own encoding decodes"), bytes);
    }
});
