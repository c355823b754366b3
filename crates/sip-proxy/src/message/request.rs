//! Requests a client transaction derives from the INVITE it sent: the ACK for a non-2xx final
//! response (RFC 3261 §17.1.1.3) and CANCEL (§9.1).

use std::io::Write as _;

use bytes::{BufMut, Bytes, BytesMut};

use super::lex::CommaSplit;
use super::{HeaderName, Message};

/// Builds the ACK for a 3xx–6xx response to `invite`: same Request-URI, top Via, Route,
/// From, Call-ID and CSeq number; the To of the response (with its tag).
pub fn ack_for(invite: &Message, response: &Message) -> Bytes {
    derived(invite, b"ACK", Some(response))
}

/// Builds the CANCEL for `invite`: same Request-URI, top Via, Route, From, To, Call-ID and
/// CSeq number.
pub fn cancel_for(invite: &Message) -> Bytes {
    derived(invite, b"CANCEL", None)
}

fn derived(invite: &Message, method: &[u8], response: Option<&Message>) -> Bytes {
    let mut out = BytesMut::with_capacity(invite.head_end as usize + 64);
    out.put_slice(method);
    out.put_u8(b' ');
    out.put_slice(invite.request_uri_bytes().unwrap_or_default());
    out.put_slice(b" SIP/2.0\r\n");
    if let Some((_, top)) = invite.list_values(HeaderName::Via).next() {
        put(&mut out, b"Via", top);
    }
    for value in invite.header_values(HeaderName::Route) {
        for (a, b) in CommaSplit::new(value) {
            put(&mut out, b"Route", &value[a..b]);
        }
    }
    if let Some(from) = invite.header_values(HeaderName::From).next() {
        put(&mut out, b"From", from);
    }
    let to = match response {
        Some(resp) => resp.header_values(HeaderName::To).next(),
        None => invite.header_values(HeaderName::To).next(),
    };
    if let Some(to) = to {
        put(&mut out, b"To", to);
    }
    if let Some(call_id) = invite.call_id() {
        put(&mut out, b"Call-ID", call_id);
    }
    let seq = invite.cseq().map_or(1, |c| c.seq);
    let mut w = out.writer();
    let _ = write!(w, "CSeq: {seq} ");
    let mut out = w.into_inner();
    out.put_slice(method);
    out.put_slice(b"\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n");
    out.freeze()
}

fn put(out: &mut BytesMut, name: &[u8], value: &[u8]) {
    out.put_slice(name);
    out.put_slice(b": ");
    out.put_slice(value);
    out.put_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Method;

    #[test]
    fn ack_and_cancel_copy_the_right_headers() {
        let invite = Message::parse(Bytes::from_static(
            b"INVITE sip:bob@b.example SIP/2.0\r\nVia: SIP/2.0/UDP p;branch=z9hG4bK1, SIP/2.0/UDP u;branch=z9hG4bK0\r\n\
Route: <sip:r1;lr>, <sip:r2;lr>\r\nFrom: <sip:a@a>;tag=f\r\nTo: <sip:bob@b.example>\r\nCall-ID: c1\r\n\
CSeq: 7 INVITE\r\nMax-Forwards: 69\r\nContent-Length: 0\r\n\r\n",
        ))
        .unwrap();
        let resp = Message::parse(Bytes::from_static(
            b"SIP/2.0 486 Busy\r\nVia: SIP/2.0/UDP p;branch=z9hG4bK1\r\nFrom: <sip:a@a>;tag=f\r\n\
To: <sip:bob@b.example>;tag=t\r\nCall-ID: c1\r\nCSeq: 7 INVITE\r\nContent-Length: 0\r\n\r\n",
        ))
        .unwrap();
        let ack = Message::parse(ack_for(&invite, &resp)).unwrap();
        assert_eq!(ack.method(), Some(&Method::Ack));
        assert_eq!(ack.vias().count(), 1);
        assert_eq!(ack.top_via().unwrap().branch(), Some(&b"z9hG4bK1"[..]));
        assert_eq!(ack.routes().count(), 2);
        assert_eq!(ack.to().unwrap().tag(), Some(&b"t"[..]));
        assert_eq!(ack.cseq().unwrap().seq, 7);
        let cancel = Message::parse(cancel_for(&invite)).unwrap();
        assert_eq!(cancel.method(), Some(&Method::Cancel));
        assert_eq!(cancel.to().unwrap().tag(), None);
        assert_eq!(cancel.request_uri_bytes(), Some(&b"sip:bob@b.example"[..]));
    }
}
