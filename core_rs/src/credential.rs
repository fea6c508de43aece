//! The credential-v1 code: text form, 127-byte payload, and the structural
//! rules of section 2 (check step 1). The issuer side encodes and signs.

use crate::base45;
use crate::error::CoreError;
use crate::outcome::Outcome;
use crate::sm::PrivateKey;

pub const PREFIX: &[u8] = b"YB1:";
pub const VERSION: u8 = 1;
pub const PAYLOAD_LEN: usize = 127;
/// Bytes 0..63 are signed; the signature fills 63..127.
pub const SIGNED_LEN: usize = 63;
pub const FLAG_FAMILY: u8 = 0x01;
pub const MAX_TTL_S: u16 = 300;

/// Province-level admdvs codes (GB/T 2260), credential-v1 section 5.
const PROVINCES: [&[u8; 2]; 31] = [
    b"11", b"12", b"13", b"14", b"15", b"21", b"22", b"23", b"31", b"32", b"33", b"34", b"35", b"36", b"37", b"41",
    b"42", b"43", b"44", b"45", b"46", b"50", b"51", b"52", b"53", b"54", b"61", b"62", b"63", b"64", b"65",
];

#[must_use]
pub fn is_province(code: &[u8]) -> bool {
    PROVINCES.iter().any(|p| p.as_slice() == code)
}

/// A payload that passed step 1: every field within its rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credential {
    pub flags: u8,
    pub key_id: [u8; 4],
    pub credential_id: [u8; 16],
    pub presenter_id: [u8; 16],
    pub insured_region: [u8; 6],
    pub channel: u8,
    pub issued_at_ms: u64,
    pub ttl_s: u16,
    pub nonce: [u8; 8],
    pub signed: [u8; SIGNED_LEN],
    pub signature: [u8; 64],
}

impl Credential {
    #[must_use]
    pub fn family(&self) -> bool {
        self.flags & FLAG_FAMILY != 0
    }

    /// `issued_at_ms + 1000·ttl_s`, the first instant the code is expired (before skew).
    #[must_use]
    pub fn expires_at_ms(&self) -> u64 {
        self.issued_at_ms.saturating_add(1000 * u64::from(self.ttl_s))
    }

    #[must_use]
    pub fn province(&self) -> &str {
        // Checked ASCII digits at decode time.
        std::str::from_utf8(&self.insured_region[..2]).unwrap_or("")
    }

    #[must_use]
    pub fn insured_region_str(&self) -> &str {
        std::str::from_utf8(&self.insured_region).unwrap_or("")
    }
}

/// Step 1 of section 4: text to a structurally valid credential, or the
/// outcome (MALFORMED or UNSUPPORTED_VERSION) with the reason.
///
/// # Errors
/// The outcome and a sentence saying which rule broke.
pub fn decode(code: &[u8]) -> Result<Credential, (Outcome, String)> {
    let malformed = |why: String| Err((Outcome::Malformed, why));
    let text = trim_ascii_whitespace(code);
    let Some(body) = text.strip_prefix(PREFIX) else {
        return malformed("the code does not start with YB1:".into());
    };
    if body.is_empty() {
        return malformed("nothing follows the prefix YB1:".into());
    }
    let payload = match base45::decode(body) {
        Ok(p) => p,
        Err(e) => return malformed(e.to_string()),
    };
    if payload[0] != VERSION {
        return Err((Outcome::UnsupportedVersion, format!("version {} is not supported", payload[0])));
    }
    let Ok(p) = <&[u8; PAYLOAD_LEN]>::try_from(payload.as_slice()) else {
        return malformed(format!("payload is {} bytes, version 1 has {PAYLOAD_LEN}", payload.len()));
    };
    parse_fields(p).map_err(|why| (Outcome::Malformed, why))
}

fn parse_fields(p: &[u8; PAYLOAD_LEN]) -> Result<Credential, String> {
    let flags = p[1];
    let key_id: [u8; 4] = p[2..6].try_into().unwrap_or_default();
    let credential_id: [u8; 16] = p[6..22].try_into().unwrap_or_default();
    let presenter_id: [u8; 16] = p[22..38].try_into().unwrap_or_default();
    let insured_region: [u8; 6] = p[38..44].try_into().unwrap_or_default();
    let channel = p[44];
    let issued_at_ms = u64::from_be_bytes(p[45..53].try_into().unwrap_or_default());
    let ttl_s = u16::from_be_bytes([p[53], p[54]]);
    let nonce: [u8; 8] = p[55..63].try_into().unwrap_or_default();
    let signed: [u8; SIGNED_LEN] = p[..SIGNED_LEN].try_into().unwrap_or([0; SIGNED_LEN]);
    let signature: [u8; 64] = p[SIGNED_LEN..].try_into().unwrap_or([0; 64]);
    let c = Credential {
        flags,
        key_id,
        credential_id,
        presenter_id,
        insured_region,
        channel,
        issued_at_ms,
        ttl_s,
        nonce,
        signed,
        signature,
    };
    check_field_rules(&c).map_err(|(field, why)| format!("{field}: {why}"))?;
    Ok(c)
}

/// The rules of section 2 that do not need a key or a clock.
fn check_field_rules(c: &Credential) -> Result<(), (&'static str, String)> {
    if c.flags & !FLAG_FAMILY != 0 {
        return Err(("flags", format!("reserved bits set in {:#04x}", c.flags)));
    }
    if c.credential_id == [0; 16] {
        return Err(("credential_id", "all zero".into()));
    }
    if c.family() {
        if c.presenter_id == [0; 16] {
            return Err(("presenter_id", "all zero although the family flag is set".into()));
        }
        if c.presenter_id == c.credential_id {
            return Err(("presenter_id", "equals credential_id".into()));
        }
    } else if c.presenter_id != [0; 16] {
        return Err(("presenter_id", "set although the family flag is clear".into()));
    }
    if !c.insured_region.iter().all(u8::is_ascii_digit) {
        return Err((
            "insured_region",
            format!("{:?} is not six ASCII digits", String::from_utf8_lossy(&c.insured_region)),
        ));
    }
    if !is_province(&c.insured_region[..2]) {
        return Err((
            "insured_region",
            format!("{} does not start with a province-level code", String::from_utf8_lossy(&c.insured_region)),
        ));
    }
    if !(1..=5).contains(&c.channel) {
        return Err(("channel", format!("{} is not 1 to 5", c.channel)));
    }
    if !(1..=MAX_TTL_S).contains(&c.ttl_s) {
        return Err(("ttl_s", format!("{} is not 1 to {MAX_TTL_S}", c.ttl_s)));
    }
    Ok(())
}

/// Leading and trailing ASCII white space, as scanners add (CR/LF and the like).
fn trim_ascii_whitespace(s: &[u8]) -> &[u8] {
    let ws = |b: &u8| matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0B | 0x0C);
    let start = s.iter().position(|b| !ws(b)).unwrap_or(s.len());
    let end = s.iter().rposition(|b| !ws(b)).map_or(start, |i| i + 1);
    &s[start..end]
}

/// What the issuer puts in a code; the family flag follows `presenter_id`.
#[derive(Clone, Debug)]
pub struct Fields {
    pub credential_id: [u8; 16],
    pub presenter_id: Option<[u8; 16]>,
    pub insured_region: String,
    pub channel: u8,
    pub issued_at_ms: u64,
    pub ttl_s: u16,
    pub nonce: [u8; 8],
}

/// Encode and sign a code with `key`, refusing fields that break their rule.
///
/// # Errors
/// `InvalidField` naming the field; `Signing` in the negligible case.
pub fn issue(key: &PrivateKey, fields: &Fields) -> Result<String, CoreError> {
    let region: [u8; 6] = fields.insured_region.as_bytes().try_into().map_err(|_| {
        CoreError::InvalidField("insured_region", format!("{:?} is not six ASCII digits", fields.insured_region))
    })?;
    let mut c = Credential {
        flags: if fields.presenter_id.is_some() { FLAG_FAMILY } else { 0 },
        key_id: crate::sm::key_id(key.public_key().sec1()),
        credential_id: fields.credential_id,
        presenter_id: fields.presenter_id.unwrap_or([0; 16]),
        insured_region: region,
        channel: fields.channel,
        issued_at_ms: fields.issued_at_ms,
        ttl_s: fields.ttl_s,
        nonce: fields.nonce,
        signed: [0; SIGNED_LEN],
        signature: [0; 64],
    };
    check_field_rules(&c).map_err(|(field, why)| CoreError::InvalidField(field, why))?;
    c.signed = signed_bytes(&c);
    c.signature = key.sign(&c.signed)?;
    let mut payload = Vec::with_capacity(PAYLOAD_LEN);
    payload.extend_from_slice(&c.signed);
    payload.extend_from_slice(&c.signature);
    let mut text = String::from("YB1:");
    text.push_str(&base45::encode(&payload));
    Ok(text)
}

fn signed_bytes(c: &Credential) -> [u8; SIGNED_LEN] {
    let mut b = [0u8; SIGNED_LEN];
    b[0] = VERSION;
    b[1] = c.flags;
    b[2..6].copy_from_slice(&c.key_id);
    b[6..22].copy_from_slice(&c.credential_id);
    b[22..38].copy_from_slice(&c.presenter_id);
    b[38..44].copy_from_slice(&c.insured_region);
    b[44] = c.channel;
    b[45..53].copy_from_slice(&c.issued_at_ms.to_be_bytes());
    b[53..55].copy_from_slice(&c.ttl_s.to_be_bytes());
    b[55..63].copy_from_slice(&c.nonce);
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields() -> Fields {
        Fields {
            credential_id: [0x3A; 16],
            presenter_id: None,
            insured_region: "440300".into(),
            channel: 2,
            issued_at_ms: 1_790_000_000_000,
            ttl_s: 60,
            nonce: [7; 8],
        }
    }

    #[test]
    fn issued_code_decodes_to_its_fields() {
        let (key, _) = PrivateKey::generate().unwrap();
        let code = issue(&key, &fields()).unwrap();
        assert_eq!(code.len(), 195);
        let c = decode(code.as_bytes()).unwrap();
        assert_eq!(c.credential_id, [0x3A; 16]);
        assert_eq!(c.insured_region_str(), "440300");
        assert_eq!(c.province(), "44");
        assert_eq!(c.expires_at_ms(), 1_790_000_060_000);
        assert!(key.public_key().verify(&c.signed, &c.signature));
    }

    #[test]
    fn issuer_refuses_broken_fields() {
        let (key, _) = PrivateKey::generate().unwrap();
        type Breaker = fn(&mut Fields);
        let cases: [(&str, Breaker); 6] = [
            ("ttl_s", |f| f.ttl_s = 0),
            ("ttl_s", |f| f.ttl_s = 301),
            ("channel", |f| f.channel = 6),
            ("insured_region", |f| f.insured_region = "990000".into()),
            ("credential_id", |f| f.credential_id = [0; 16]),
            ("presenter_id", |f| f.presenter_id = Some([0x3A; 16])),
        ];
        for (field, break_it) in cases {
            let mut f = fields();
            break_it(&mut f);
            match issue(&key, &f) {
                Err(CoreError::InvalidField(name, _)) => assert_eq!(name, field),
                other => panic!("{field}: expected InvalidField, got {other:?}"),
            }
        }
    }

    #[test]
    fn step_one_outcomes() {
        assert_eq!(decode(b"").unwrap_err().0, Outcome::Malformed);
        assert_eq!(decode(b"YB1:").unwrap_err().0, Outcome::Malformed);
        assert_eq!(decode(b"YB1:\r\n").unwrap_err().0, Outcome::Malformed);
        // A single byte 0x02 is "2" in Base45 pairs: version 2, any length.
        let v2 = format!("YB1:{}", base45::encode(&[2, 0, 0]));
        assert_eq!(decode(v2.as_bytes()).unwrap_err().0, Outcome::UnsupportedVersion);
        let short = format!("YB1:{}", base45::encode(&[1; 126]));
        assert_eq!(decode(short.as_bytes()).unwrap_err().0, Outcome::Malformed);
    }
}
