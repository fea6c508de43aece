//! The outcomes of credential-v1 section 4, named as the spec names them.

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    Valid,
    Malformed,
    UnsupportedVersion,
    UnknownKey,
    KeyNotValid,
    NotYetValid,
    Expired,
    BadSignature,
    Revoked,
    ChannelRevoked,
    Replayed,
}

impl Outcome {
    pub const ALL: [Outcome; 11] = [
        Self::Valid,
        Self::Malformed,
        Self::UnsupportedVersion,
        Self::UnknownKey,
        Self::KeyNotValid,
        Self::NotYetValid,
        Self::Expired,
        Self::BadSignature,
        Self::Revoked,
        Self::ChannelRevoked,
        Self::Replayed,
    ];

    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Valid => "VALID",
            Self::Malformed => "MALFORMED",
            Self::UnsupportedVersion => "UNSUPPORTED_VERSION",
            Self::UnknownKey => "UNKNOWN_KEY",
            Self::KeyNotValid => "KEY_NOT_VALID",
            Self::NotYetValid => "NOT_YET_VALID",
            Self::Expired => "EXPIRED",
            Self::BadSignature => "BAD_SIGNATURE",
            Self::Revoked => "REVOKED",
            Self::ChannelRevoked => "CHANNEL_REVOKED",
            Self::Replayed => "REPLAYED",
        }
    }

    /// A sentence for the cashier's screen, in Chinese and English.
    #[must_use]
    pub const fn detail(self) -> &'static str {
        match self {
            Self::Valid => "医保码有效 / The code is valid.",
            Self::Malformed => "无法识别的医保码，请重新扫码 / The code could not be read; scan again.",
            Self::UnsupportedVersion => "医保码版本不受支持 / This code version is not supported here.",
            Self::UnknownKey => "医保码签发方未知 / The code was issued by an unknown issuer.",
            Self::KeyNotValid => "签发密钥不在有效期内 / The issuer's key was not valid when the code was made.",
            Self::NotYetValid => "医保码尚未生效，请核对设备时间 / The code is not yet valid; check the device clock.",
            Self::Expired => "医保码已过期，请刷新后重新出示 / The code has expired; refresh it and show it again.",
            Self::BadSignature => "医保码签名无效 / The code's signature is not valid.",
            Self::Revoked => "医保电子凭证已停用 / This credential has been revoked.",
            Self::ChannelRevoked => {
                "该渠道的授权已撤销，请换用其他渠道 / The person withdrew this channel's authorisation; use another."
            }
            Self::Replayed => {
                "该医保码已被使用，请刷新后重新出示 / This code was already used; refresh it and show it again."
            }
        }
    }
}
