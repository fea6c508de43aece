//! Any bytes as a trust list (credential-v1 section 6): a list or an error
//! naming what is wrong, never a panic; a list that loads holds keys.
#![no_main]

use libfuzzer_sys::fuzz_target;
use yibao_core::trust::TrustList;

fuzz_target!(|text: &[u8]| {
    if let Ok(list) = TrustList::from_json(text) {
        for key in list.keys() {
            let _ = key.covers(0);
        }
    }
});
