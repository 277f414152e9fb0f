//! The messages of Istio's `istio.v1.auth.IstioCertificateService` (security/proto/istioca.proto),
//! declared by hand with prost, the subset of `google.protobuf.Struct` the request's metadata
//! uses, and gRPC's message framing (a 1-byte compression flag and a 4-byte big-endian length
//! before each message).

use std::collections::HashMap;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use prost::Message;

/// The HTTP/2 path of the `CreateCertificate` method.
pub const CREATE_CERTIFICATE_PATH: &str =
    "/istio.v1.auth.IstioCertificateService/CreateCertificate";

/// The largest message either side accepts (gRPC's default receive limit is 4 MiB).
pub const MAX_MESSAGE_LEN: usize = 4 * 1024 * 1024;

/// `IstioCertificateRequest`: a PEM CSR, the requested validity in seconds, and optional
/// metadata (Istio reads `ImpersonatedIdentity` and `CertSigner` from it).
#[derive(Clone, PartialEq, prost::Message)]
pub struct IstioCertificateRequest {
    /// PEM-encoded certificate signing request.
    #[prost(string, tag = "1")]
    pub csr: String,
    /// Requested validity of the certificate, in seconds.
    #[prost(int64, tag = "3")]
    pub validity_duration: i64,
    /// Optional request metadata.
    #[prost(message, optional, tag = "4")]
    pub metadata: Option<Struct>,
}

/// `IstioCertificateResponse`: PEM certificates, the leaf first, then intermediates, then the
/// root.
#[derive(Clone, PartialEq, prost::Message)]
pub struct IstioCertificateResponse {
    /// The chain, one PEM certificate per element.
    #[prost(string, repeated, tag = "1")]
    pub cert_chain: Vec<String>,
}

/// `google.protobuf.Struct` (only the fields of scalar values are modelled; nested structs and
/// lists are skipped when decoding).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Struct {
    /// The fields by name.
    #[prost(map = "string, message", tag = "1")]
    pub fields: HashMap<String, Value>,
}

/// `google.protobuf.Value`, scalar kinds only.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Value {
    /// The value.
    #[prost(oneof = "Kind", tags = "1, 2, 3, 4")]
    pub kind: Option<Kind>,
}

/// The scalar kinds of `google.protobuf.Value`.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum Kind {
    /// `null_value` (the enum `NullValue`, always 0).
    #[prost(int32, tag = "1")]
    NullValue(i32),
    /// `number_value`.
    #[prost(double, tag = "2")]
    NumberValue(f64),
    /// `string_value`.
    #[prost(string, tag = "3")]
    StringValue(String),
    /// `bool_value`.
    #[prost(bool, tag = "4")]
    BoolValue(bool),
}

impl Struct {
    /// The string value of field `name`, if it is a string.
    pub fn string(&self, name: &str) -> Option<&str> {
        match self.fields.get(name)?.kind.as_ref()? {
            Kind::StringValue(s) => Some(s),
            _ => None,
        }
    }
}

/// Frames one message for a gRPC stream (uncompressed).
pub fn frame<M: Message>(message: &M) -> Bytes {
    let len = message.encoded_len();
    let mut buf = BytesMut::with_capacity(5 + len);
    buf.put_u8(0);
    // Messages are built here and far below 4 GiB; saturate rather than wrap.
    buf.put_u32(u32::try_from(len).unwrap_or(u32::MAX));
    message.encode_raw(&mut buf);
    buf.freeze()
}

/// Why a gRPC body could not be read as exactly one message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The body ended inside a frame.
    #[error("truncated gRPC message")]
    Truncated,
    /// The body holds more than one message (a unary call carries exactly one).
    #[error("more than one gRPC message in a unary call")]
    Trailing,
    /// The body holds no message.
    #[error("no gRPC message")]
    Empty,
    /// The message is compressed; no compression is negotiated.
    #[error("compressed gRPC messages are not supported")]
    Compressed,
    /// The message is larger than [`MAX_MESSAGE_LEN`].
    #[error("gRPC message of {0} bytes exceeds the limit of {MAX_MESSAGE_LEN}")]
    TooLarge(usize),
    /// The message is not valid protobuf for the expected type.
    #[error("invalid protobuf: {0}")]
    Decode(String),
}

/// Reads the single message of a unary call's body.
pub fn unframe<M: Message + Default>(mut body: Bytes) -> Result<M, FrameError> {
    if body.is_empty() {
        return Err(FrameError::Empty);
    }
    if body.len() < 5 {
        return Err(FrameError::Truncated);
    }
    let compressed = body.get_u8();
    let len = usize::try_from(body.get_u32()).map_err(|_| FrameError::TooLarge(usize::MAX))?;
    if compressed != 0 {
        return Err(FrameError::Compressed);
    }
    if len > MAX_MESSAGE_LEN {
        return Err(FrameError::TooLarge(len));
    }
    if body.len() < len {
        return Err(FrameError::Truncated);
    }
    if body.len() > len {
        return Err(FrameError::Trailing);
    }
    M::decode(body).map_err(|e| FrameError::Decode(e.to_string()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn request_round_trips_with_metadata() {
        let mut fields = HashMap::new();
        fields.insert(
            "CertSigner".to_string(),
            Value {
                kind: Some(Kind::StringValue("signer".into())),
            },
        );
        let req = IstioCertificateRequest {
            csr: "-----BEGIN CERTIFICATE REQUEST-----".into(),
            validity_duration: 86400,
            metadata: Some(Struct { fields }),
        };
        let back: IstioCertificateRequest = unframe(frame(&req)).unwrap();
        assert_eq!(back, req);
        assert_eq!(back.metadata.unwrap().string("CertSigner"), Some("signer"));
    }

    #[test]
    fn wire_tags_match_istioca_proto() {
        // csr = 1 (string), validity_duration = 3 (varint).
        let req = IstioCertificateRequest {
            csr: "x".into(),
            validity_duration: 5,
            metadata: None,
        };
        assert_eq!(req.encode_to_vec(), vec![0x0a, 1, b'x', 0x18, 5]);
        // cert_chain = 1 (repeated string).
        let resp = IstioCertificateResponse {
            cert_chain: vec!["a".into(), "b".into()],
        };
        assert_eq!(resp.encode_to_vec(), vec![0x0a, 1, b'a', 0x0a, 1, b'b']);
    }

    #[test]
    fn framing_errors() {
        let resp = IstioCertificateResponse {
            cert_chain: vec!["a".into()],
        };
        let framed = frame(&resp);
        assert_eq!(&framed[..5], &[0, 0, 0, 0, 3]);
        assert_eq!(
            unframe::<IstioCertificateResponse>(Bytes::new()),
            Err(FrameError::Empty)
        );
        assert_eq!(
            unframe::<IstioCertificateResponse>(framed.slice(..6)),
            Err(FrameError::Truncated)
        );
        let mut two = BytesMut::from(&framed[..]);
        two.extend_from_slice(&framed);
        assert_eq!(
            unframe::<IstioCertificateResponse>(two.freeze()),
            Err(FrameError::Trailing)
        );
        let mut compressed = BytesMut::from(&framed[..]);
        compressed[0] = 1;
        assert_eq!(
            unframe::<IstioCertificateResponse>(compressed.freeze()),
            Err(FrameError::Compressed)
        );
        let huge = Bytes::from_static(&[0, 0xff, 0xff, 0xff, 0xff]);
        assert!(matches!(
            unframe::<IstioCertificateResponse>(huge),
            Err(FrameError::TooLarge(_))
        ));
    }
}
