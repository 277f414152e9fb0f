//! Response bodies: a whole JSON document, or a stream of watch events fed through a channel
//! (each message one newline-terminated JSON event, sent as the client can take it).

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::BodyExt;
use http_body_util::combinators::BoxBody;
use hyper::body::{Body as HttpBody, Frame};
use serde_json::Value;
use tokio::sync::mpsc;

/// Every response's body type.
pub type Body = BoxBody<Bytes, Infallible>;

/// A whole body.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    http_body_util::Full::new(bytes.into()).boxed()
}

/// A JSON document, newline-terminated as the API server writes it.
pub fn json(v: &Value) -> Body {
    let mut text = v.to_string();
    text.push('\n');
    full(text)
}

/// A body that yields what is sent on the channel until every sender is gone.
pub struct Stream {
    rx: mpsc::Receiver<Bytes>,
}

impl Stream {
    /// A stream body and the sender that feeds it.
    pub fn channel(capacity: usize) -> (mpsc::Sender<Bytes>, Body) {
        let (tx, rx) = mpsc::channel(capacity);
        (tx, Stream { rx }.boxed())
    }
}

impl HttpBody for Stream {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.rx
            .poll_recv(cx)
            .map(|next| next.map(|b| Ok(Frame::data(b))))
    }
}
