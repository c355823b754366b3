//! The forwarding editor: writes a received message out again with the proxy's changes
//! (RFC 3261 §16.6, §16.7), copying every untouched header line byte for byte, into a single
//! output buffer.

use std::io::Write as _;
use std::net::IpAddr;

use bytes::{BufMut, Bytes, BytesMut};

use super::lex::{self, CommaSplit};
use super::{HeaderName, Message, Via};

/// Planned changes to a [`Message`]; [`Editor::finish`] writes the result in one pass.
///
/// Inserted values are borrowed and written as given; they must be valid header values.
#[derive(Debug)]
pub struct Editor<'a> {
    msg: &'a Message,
    request_uri: Option<&'a [u8]>,
    via: Option<&'a [u8]>,
    remove_top_via: bool,
    received: Option<(Option<IpAddr>, Option<u16>)>,
    max_forwards: Option<u32>,
    record_routes: [Option<&'a [u8]>; 2],
    pop_routes: usize,
    pop_last_route: bool,
    extra: Vec<(&'a str, &'a [u8])>,
}

impl<'a> Editor<'a> {
    /// Starts an edit of `msg` that, with no changes planned, reproduces it.
    pub fn new(msg: &'a Message) -> Self {
        Self {
            msg,
            request_uri: None,
            via: None,
            remove_top_via: false,
            received: None,
            max_forwards: None,
            record_routes: [None, None],
            pop_routes: 0,
            pop_last_route: false,
            extra: Vec::new(),
        }
    }

    /// Replaces the Request-URI (requests only).
    pub fn request_uri(&mut self, uri: &'a [u8]) -> &mut Self {
        self.request_uri = Some(uri);
        self
    }

    /// Inserts a Via value above the existing ones, e.g. `SIP/2.0/UDP 192.0.2.1:5060;branch=...`.
    pub fn prepend_via(&mut self, value: &'a [u8]) -> &mut Self {
        self.via = Some(value);
        self
    }

    /// Removes the topmost Via value (a proxy forwarding a response, RFC 3261 §16.7 step 3).
    pub fn remove_top_via(&mut self) -> &mut Self {
        self.remove_top_via = true;
        self
    }

    /// Sets `received` and fills `rport` on the topmost Via (RFC 3261 §18.2.1, RFC 3581 §4).
    /// Existing `received`/`rport` parameters are replaced.
    pub fn top_via_received(&mut self, received: Option<IpAddr>, rport: Option<u16>) -> &mut Self {
        self.received = Some((received, rport));
        self
    }

    /// Sets Max-Forwards, adding the header when absent.
    pub fn max_forwards(&mut self, n: u32) -> &mut Self {
        self.max_forwards = Some(n);
        self
    }

    /// Inserts a Record-Route value above the existing ones; call twice for the two entries of
    /// a transport change (the second call's value ends up on top).
    pub fn prepend_record_route(&mut self, value: &'a [u8]) -> &mut Self {
        if self.record_routes[0].is_none() {
            self.record_routes[0] = Some(value);
        } else {
            self.record_routes[1] = Some(value);
        }
        self
    }

    /// Removes the topmost Route value; call again to remove the next one too.
    pub fn pop_route(&mut self) -> &mut Self {
        self.pop_routes += 1;
        self
    }

    /// Removes the last Route value (RFC 3261 §16.4, a request from a strict router).
    pub fn pop_last_route(&mut self) -> &mut Self {
        self.pop_last_route = true;
        self
    }

    /// Appends a header line at the end of the header section.
    pub fn add_header(&mut self, name: &'a str, value: &'a [u8]) -> &mut Self {
        self.extra.push((name, value));
        self
    }

    /// Writes the edited message.
    pub fn finish(&self) -> Bytes {
        let msg = self.msg;
        let buf = &msg.buf[..];
        let extra_len: usize = self.via.map_or(0, |v| v.len() + 7)
            + self
                .record_routes
                .iter()
                .flatten()
                .map(|v| v.len() + 16)
                .sum::<usize>()
            + self
                .extra
                .iter()
                .map(|(n, v)| n.len() + v.len() + 4)
                .sum::<usize>()
            + self.request_uri.map_or(0, <[u8]>::len)
            + 96;
        let mut out = BytesMut::with_capacity(msg.as_bytes().len() + extra_len);

        match (self.request_uri, msg.method()) {
            (Some(uri), Some(method)) => {
                out.put_slice(method.as_bytes());
                out.put_u8(b' ');
                out.put_slice(uri);
                out.put_slice(b" SIP/2.0\r\n");
            }
            _ => out.put_slice(&buf[msg.start_pos as usize..msg.start_end as usize]),
        }

        let first_via = msg.headers.iter().position(|h| h.name == HeaderName::Via);
        let last_via = msg.headers.iter().rposition(|h| h.name == HeaderName::Via);
        let first_rr = msg
            .headers
            .iter()
            .position(|h| h.name == HeaderName::RecordRoute);
        let first_mf = msg
            .headers
            .iter()
            .position(|h| h.name == HeaderName::MaxForwards);
        let last_route = if self.pop_last_route {
            self.last_route()
        } else {
            None
        };
        let mut routes_to_pop = self.pop_routes;

        if first_via.is_none() {
            self.write_via(&mut out);
        }
        for (i, h) in msg.headers.iter().enumerate() {
            let line = &buf[h.start as usize..h.end as usize];
            if Some(i) == first_via {
                self.write_via(&mut out);
                self.write_top_via(&mut out, h);
            } else if Some(i) == first_mf && self.max_forwards.is_some() {
                self.write_max_forwards(&mut out);
            } else if h.name == HeaderName::Route
                && (routes_to_pop > 0 || Some(i) == last_route.map(|l| l.0))
            {
                let value = msg.slice(h.value);
                let values: Vec<(usize, usize)> = CommaSplit::new(value).collect();
                let skip_front = routes_to_pop.min(values.len());
                routes_to_pop -= skip_front;
                let mut keep = &values[skip_front..];
                if Some(i) == last_route.map(|l| l.0) && !keep.is_empty() {
                    keep = &keep[..keep.len() - 1];
                }
                if let (Some(first), Some(last)) = (keep.first(), keep.last()) {
                    out.put_slice(&buf[h.start as usize..h.name_end as usize]);
                    out.put_slice(b": ");
                    out.put_slice(&value[first.0..last.1]);
                    out.put_slice(b"\r\n");
                }
            } else {
                if Some(i) == first_rr {
                    self.write_record_routes(&mut out);
                }
                out.put_slice(line);
            }
            if Some(i) == last_via {
                if first_rr.is_none() {
                    self.write_record_routes(&mut out);
                }
                if first_mf.is_none() {
                    self.write_max_forwards(&mut out);
                }
            }
        }
        if last_via.is_none() {
            if first_rr.is_none() {
                self.write_record_routes(&mut out);
            }
            if first_mf.is_none() {
                self.write_max_forwards(&mut out);
            }
        }
        for (name, value) in &self.extra {
            put_header(&mut out, name.as_bytes(), value);
        }
        let body = msg.body();
        if msg.content_length.is_none() && !msg.has(HeaderName::ContentLength) {
            // Streams need Content-Length (RFC 3261 §18.3); add it when forwarding.
            out.put_slice(b"Content-Length: ");
            put_decimal(&mut out, body.len() as u64);
            out.put_slice(b"\r\n");
        }
        out.put_slice(b"\r\n");
        out.put_slice(body);
        out.freeze()
    }

    fn write_via(&self, out: &mut BytesMut) {
        if let Some(via) = self.via {
            put_header(out, b"Via", via);
        }
    }

    fn write_max_forwards(&self, out: &mut BytesMut) {
        if let Some(n) = self.max_forwards {
            out.put_slice(b"Max-Forwards: ");
            put_decimal(out, u64::from(n));
            out.put_slice(b"\r\n");
        }
    }

    fn write_record_routes(&self, out: &mut BytesMut) {
        for rr in self.record_routes.iter().rev().flatten() {
            put_header(out, b"Record-Route", rr);
        }
    }

    /// Writes the first Via line with the top value removed or its parameters updated.
    fn write_top_via(&self, out: &mut BytesMut, h: &super::Header) {
        let msg = self.msg;
        let buf = &msg.buf[..];
        let line = &buf[h.start as usize..h.end as usize];
        let value = msg.slice(h.value);
        let Some((a, b)) = CommaSplit::new(value).next() else {
            out.put_slice(line);
            return;
        };
        let value_at = h.value.0 as usize;
        if self.remove_top_via {
            let rest = lex::trim(&value[b..]);
            let rest = rest.strip_prefix(b",").map_or(rest, lex::trim);
            if !rest.is_empty() {
                out.put_slice(&buf[h.start as usize..h.name_end as usize]);
                out.put_slice(b": ");
                out.put_slice(rest);
                out.put_slice(b"\r\n");
            }
            return;
        }
        let Some((received, rport)) = self.received else {
            out.put_slice(line);
            return;
        };
        let top = &value[a..b];
        let Ok(via) = Via::parse(top) else {
            out.put_slice(line);
            return;
        };
        let params = via.params().as_bytes();
        // `params` borrows from `top`; its offset tells where the sent-by part ends.
        let params_at = (params.as_ptr() as usize).wrapping_sub(top.as_ptr() as usize);
        let head_end = if params.is_empty() {
            top.len()
        } else {
            params_at.saturating_sub(1)
        };
        out.put_slice(&buf[h.start as usize..value_at + a]);
        out.put_slice(lex::trim(&top[..head_end.min(top.len())]));
        for (name, v) in via.params() {
            if name.eq_ignore_ascii_case(b"received") || name.eq_ignore_ascii_case(b"rport") {
                continue;
            }
            out.put_u8(b';');
            out.put_slice(name);
            if let Some(v) = v {
                out.put_u8(b'=');
                out.put_slice(v);
            }
        }
        if let Some(ip) = received {
            out.put_slice(b";received=");
            match ip {
                IpAddr::V4(v4) => {
                    for (i, octet) in v4.octets().into_iter().enumerate() {
                        if i > 0 {
                            out.put_u8(b'.');
                        }
                        put_decimal(out, u64::from(octet));
                    }
                }
                IpAddr::V6(v6) => {
                    let _ = write!(out.writer(), "{v6}");
                }
            }
        }
        match (rport, via.rport()) {
            (Some(port), Some(_)) | (_, Some(Some(port))) => {
                out.put_slice(b";rport=");
                put_decimal(out, u64::from(port));
            }
            (_, Some(None)) => out.put_slice(b";rport"),
            _ => {}
        }
        out.put_slice(&buf[value_at + b..h.end as usize]);
    }

    /// The header index and value range of the last Route value.
    fn last_route(&self) -> Option<(usize, (usize, usize))> {
        let (i, h) = self
            .msg
            .headers
            .iter()
            .enumerate()
            .rfind(|(_, h)| h.name == HeaderName::Route)?;
        let last = CommaSplit::new(self.msg.slice(h.value)).last()?;
        Some((i, last))
    }
}

/// Writes a decimal number without the formatting machinery (this is on the hot path).
fn put_decimal(out: &mut BytesMut, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.put_slice(&digits[i..]);
}

fn put_header(out: &mut BytesMut, name: &[u8], value: &[u8]) {
    out.put_slice(name);
    out.put_slice(b": ");
    out.put_slice(value);
    out.put_slice(b"\r\n");
}
