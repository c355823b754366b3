//! Transaction keys: how a message finds its transaction (RFC 3261 §17.1.3, §17.2.3).

use bytes::Bytes;

use crate::message::{Message, Method};

/// Client transactions match on the top Via branch and the CSeq method (§17.1.3).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct ClientKey {
    pub(crate) branch: Bytes,
    pub(crate) method: Method,
}

/// Server transactions match on branch, sent-by and method, with ACK matching INVITE
/// (§17.2.3). Requests without the `z9hG4bK` cookie get a key derived from the fields RFC 2543
/// used (Request-URI, From tag, Call-ID, CSeq number, top Via).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct ServerKey {
    pub(crate) branch: Bytes,
    pub(crate) host: Bytes,
    pub(crate) port: u16,
    pub(crate) method: Method,
}

impl ClientKey {
    /// The key of a response, or `None` when it has no usable top Via or CSeq.
    pub(crate) fn of_response(msg: &Message) -> Option<Self> {
        let via = msg.top_via().ok()?;
        let branch = msg.buffer().slice_ref(via.branch()?);
        Some(Self {
            branch,
            method: msg.cseq()?.method.clone(),
        })
    }
}

impl ServerKey {
    /// The key of a request. `as_method` overrides the method (ACK and CANCEL look up INVITE).
    pub(crate) fn of_request(msg: &Message, as_method: Option<Method>) -> Option<Self> {
        let via = msg.top_via().ok()?;
        let buf = msg.buffer();
        let method = match as_method {
            Some(m) => m,
            None => match msg.method()? {
                Method::Ack => Method::Invite,
                m => m.clone(),
            },
        };
        let branch = match via.branch() {
            Some(b) if via.has_rfc3261_branch() => buf.slice_ref(b),
            _ => Bytes::from(legacy_id(msg).to_le_bytes().to_vec()),
        };
        let host = buf.slice_ref(via.host().as_bytes());
        Some(Self {
            branch,
            host,
            port: via.port().unwrap_or(0),
            method,
        })
    }
}

/// `method` with no reference into a message buffer.
fn detached_method(method: &Method) -> Method {
    match method {
        Method::Extension(name) => Method::Extension(Bytes::copy_from_slice(name)),
        m => m.clone(),
    }
}

impl ServerKey {
    /// A copy that owns its bytes. A key made by [`ServerKey::of_request`] borrows slices of the
    /// request's buffer, which would keep the whole datagram alive for as long as the
    /// transaction lingers (32 s for Timers J and L); the stored key is this compact copy.
    pub(crate) fn detached(&self) -> Self {
        Self {
            branch: Bytes::copy_from_slice(&self.branch),
            host: Bytes::copy_from_slice(&self.host),
            port: self.port,
            method: detached_method(&self.method),
        }
    }
}

/// A stable identifier for requests from RFC 2543 elements, which have no unique branch.
fn legacy_id(msg: &Message) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = foldhash::fast::FixedState::with_seed(0x5349_5032).build_hasher();
    h.write(msg.request_uri_bytes().unwrap_or_default());
    h.write(msg.from_tag().unwrap_or_default());
    h.write(msg.call_id().unwrap_or_default());
    h.write_u32(msg.cseq().map_or(0, |c| c.seq));
    if let Some(Ok(via)) = msg.vias().next() {
        h.write(via.host().as_bytes());
        h.write_u16(via.port().unwrap_or(0));
    }
    h.finish()
}
