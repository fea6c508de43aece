//! Base45 (RFC 9285): two bytes to three characters, a trailing byte to two,
//! least significant digit first. It fits the QR code alphanumeric mode.

use crate::error::CoreError;

const ALPHABET: &[u8; 45] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:";

/// Digit value of each byte, or 0xFF for bytes outside the alphabet.
const DIGITS: [u8; 256] = {
    let mut t = [0xFFu8; 256];
    let mut i = 0;
    while i < 45 {
        t[ALPHABET[i] as usize] = i as u8;
        i += 1;
    }
    t
};

#[must_use]
pub fn encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(2) * 3);
    let mut push = |mut n: u32, digits: usize| {
        for _ in 0..digits {
            out.push(ALPHABET[(n % 45) as usize] as char);
            n /= 45;
        }
    };
    let mut chunks = data.chunks_exact(2);
    for pair in &mut chunks {
        push(u32::from(pair[0]) << 8 | u32::from(pair[1]), 3);
    }
    if let [last] = chunks.remainder() {
        push(u32::from(*last), 2);
    }
    out
}

/// Decode Base45 text.
///
/// # Errors
/// `InvalidBase45` naming the position of a character outside the alphabet,
/// a lone trailing character, or a group whose value does not fit its bytes.
pub fn decode(text: &[u8]) -> Result<Vec<u8>, CoreError> {
    if text.len() % 3 == 1 {
        return Err(CoreError::InvalidBase45(format!("length {} leaves a single character at the end", text.len())));
    }
    let mut out = Vec::with_capacity(text.len() / 3 * 2 + 1);
    for (group, chunk) in text.chunks(3).enumerate() {
        let mut n: u32 = 0;
        for (i, &c) in chunk.iter().enumerate().rev() {
            let d = DIGITS[c as usize];
            if d == 0xFF {
                return Err(CoreError::InvalidBase45(format!(
                    "character {:?} at position {} is not a Base45 digit",
                    char::from(c),
                    group * 3 + i
                )));
            }
            n = n * 45 + u32::from(d);
        }
        if chunk.len() == 3 {
            if n > 0xFFFF {
                return Err(CoreError::InvalidBase45(format!("group at position {} exceeds 65535", group * 3)));
            }
            out.extend_from_slice(&(n as u16).to_be_bytes());
        } else {
            if n > 0xFF {
                return Err(CoreError::InvalidBase45(format!("final group at position {} exceeds 255", group * 3)));
            }
            out.push(n as u8);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rfc9285_examples() {
        for (raw, text) in [
            (&b"AB"[..], "BB8"),
            (b"Hello!!", "%69 VD92EX0"),
            (b"base-45", "UJCLQE7W581"),
            (b"ietf!", "QED8WEX0"),
            (b"", ""),
        ] {
            assert_eq!(encode(raw), text);
            assert_eq!(decode(text.as_bytes()).unwrap(), raw);
        }
    }

    #[test]
    fn rejects_bad_text() {
        assert!(decode(b"GGW").is_err()); // 65536 + ... overflows two bytes
        assert!(decode(b"ZZZZ").is_err()); // dangling single character
        assert!(decode(b"BB8a").is_err());
        assert!(decode(b"bb8").is_err()); // lower case is not in the alphabet
        assert!(decode(b"B#8").is_err());
        assert!(decode(b":Z").is_err()); // trailing pair above 255
    }

    proptest! {
        #[test]
        fn round_trip(data in proptest::collection::vec(any::<u8>(), 0..300)) {
            prop_assert_eq!(decode(encode(&data).as_bytes()).unwrap(), data);
        }

        #[test]
        fn decode_never_panics(text in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = decode(&text);
        }
    }
}
