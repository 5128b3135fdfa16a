//! Framing on the control stream: each message is its protobuf encoding preceded by its length
//! as a protobuf varint ([`v2x_proto::encode_length_delimited`]). A clean end of stream
//! between messages ends the sequence; anywhere else it is an error.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use v2x_proto::WireMessage;

/// Why a framed message could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The stream failed.
    #[error("stream error: {0}")]
    Io(#[from] std::io::Error),
    /// The length prefix exceeds the limit.
    #[error("message of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// Announced length [bytes].
        len: u64,
        /// Limit [bytes].
        max: usize,
    },
    /// The length prefix is not a valid varint (more than 10 bytes).
    #[error("invalid length prefix")]
    BadLength,
    /// The stream ended inside a message.
    #[error("stream ended inside a message")]
    Truncated,
}

/// Writes `message` length-delimited.
pub async fn write_message<W: AsyncWrite + Unpin>(w: &mut W, message: &impl WireMessage) -> std::io::Result<()> {
    w.write_all(&v2x_proto::encode_length_delimited(message)).await?;
    w.flush().await
}

/// Reads one length-delimited message body of at most `max` bytes. `Ok(None)` when the stream
/// ended cleanly before the first byte of a message.
pub async fn read_message<R: AsyncRead + Unpin>(r: &mut R, max: usize) -> Result<Option<Vec<u8>>, FrameError> {
    let mut len: u64 = 0;
    let mut byte = [0u8; 1];
    for i in 0..10 {
        let n = r.read(&mut byte).await?;
        if n == 0 {
            return if i == 0 { Ok(None) } else { Err(FrameError::Truncated) };
        }
        len |= u64::from(byte[0] & 0x7f) << (7 * i);
        if byte[0] & 0x80 == 0 {
            if len > max as u64 {
                return Err(FrameError::TooLarge { len, max });
            }
            let mut body = vec![0u8; len as usize];
            return match r.read_exact(&mut body).await {
                Ok(_) => Ok(Some(body)),
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Err(FrameError::Truncated),
                Err(e) => Err(e.into()),
            };
        }
    }
    Err(FrameError::BadLength)
}

#[cfg(test)]
mod tests {
    use super::*;
    use v2x_proto::domain::{ClientHello, Role, Subscription};

    fn hello(id: &str) -> ClientHello {
        ClientHello { versions: vec![1], role: Role::Vehicle, id: id.into(), subscription: None }
    }

    fn decode_hello(bytes: &[u8]) -> ClientHello {
        v2x_proto::decode(bytes).expect("decode")
    }

    #[tokio::test]
    async fn messages_round_trip_and_end_cleanly() {
        let (mut a, mut b) = tokio::io::duplex(1 << 16);
        // A polygon of 100 vertices: a two-byte length prefix.
        let polygon: Vec<[f64; 2]> = (0..100).map(|i| [f64::from(i), -f64::from(i)]).collect();
        let long = ClientHello { subscription: Some(Subscription::Polygon(polygon)), ..hello("veh-2") };
        write_message(&mut a, &hello("veh-1")).await.expect("write");
        write_message(&mut a, &long).await.expect("write");
        drop(a);
        let first = read_message(&mut b, 1024).await.expect("read").expect("message");
        assert_eq!(decode_hello(&first).id, "veh-1");
        let second = read_message(&mut b, 1024).await.expect("read").expect("message");
        assert!(second.len() > 127);
        assert_eq!(decode_hello(&second), long);
        assert!(read_message(&mut b, 1024).await.expect("clean end").is_none());
    }

    #[tokio::test]
    async fn the_layout_is_a_varint_length_then_the_message() {
        let (mut a, mut b) = tokio::io::duplex(1 << 16);
        write_message(&mut a, &hello("v")).await.expect("write");
        drop(a);
        let mut raw = Vec::new();
        b.read_to_end(&mut raw).await.expect("read");
        let body = v2x_proto::encode(&hello("v"));
        assert_eq!(usize::from(raw[0]), body.len());
        assert_eq!(raw[1..], body[..]);
        assert_eq!(decode_hello(&raw[1..]), hello("v"));
    }

    #[tokio::test]
    async fn oversized_truncated_and_bad_prefixes_are_errors() {
        let (mut a, mut b) = tokio::io::duplex(1 << 16);
        write_message(&mut a, &hello(&"y".repeat(200))).await.expect("write");
        assert!(matches!(read_message(&mut b, 100).await, Err(FrameError::TooLarge { max: 100, .. })));

        let (mut a, mut b) = tokio::io::duplex(1 << 16);
        a.write_all(&[5, 1, 2]).await.expect("write");
        drop(a);
        assert!(matches!(read_message(&mut b, 100).await, Err(FrameError::Truncated)));

        let (mut a, mut b) = tokio::io::duplex(1 << 16);
        a.write_all(&[0xff; 11]).await.expect("write");
        assert!(matches!(read_message(&mut b, 100).await, Err(FrameError::BadLength)));
    }
}
