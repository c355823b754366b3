//! Inputs found by the fuzz targets of `fuzz/` (see `fuzz/README.md`), kept as plain tests.

use bytes::Bytes;
use sip_proxy::message::{Message, ParseError};

fn parse(text: &[u8]) -> Result<Message, ParseError> {
    Message::parse(Bytes::copy_from_slice(text))
}

/// `sip_message`: a top Via whose last parameter value ends in a stray `"` used to pass
/// `Message::parse`; the editor then appended `;received=...` after the quote and the next hop
/// read it as part of an unterminated quoted-string. Such a Via is refused now (the proxy
/// answers 400 from the lenient split).
#[test]
fn a_via_with_an_unbalanced_quote_is_refused() {
    let err = parse(
        b"OPTIONS sip:user@example.com SIP/2.0\r\n\
          To: sip:user@example.com\r\n\
          From: caller<sip:caller@example.com>;tag=323\r\n\
          Max-Forwards: 70\r\n\
          Call-ID: lwsdisp.1234abcd@funky.example.com\r\n\
          CSeq: 60 OPTIONS\r\n\
          Via: SIP/2.0/UDP funky.example.com;branch=z9hG4bKkdjuw\"\r\n\
          l: 0\r\n\r\n",
    )
    .expect_err("an unbalanced quote in Via");
    assert!(
        matches!(err, ParseError::InvalidHeader { name: "Via" }),
        "{err}"
    );
    // A quoted-string that closes, with an escaped quote inside, is fine.
    parse(
        b"OPTIONS sip:user@example.com SIP/2.0\r\n\
          To: sip:user@example.com\r\n\
          From: <sip:caller@example.com>;tag=323\r\n\
          Call-ID: q@x\r\n\
          CSeq: 1 OPTIONS\r\n\
          Via: SIP/2.0/UDP x.example.com;branch=z9hG4bK1;note=\"a \\\" b\"\r\n\
          l: 0\r\n\r\n",
    )
    .expect("a balanced quoted-string in Via");
}

/// `sip_message`: an empty first Via line (`Via:` with no value, which RFC 3261's grammar does
/// not allow) used to pass `Message::parse`, and the parser and the editor then disagreed on
/// which Via was on top. It is refused now.
#[test]
fn an_empty_via_line_is_refused() {
    let err = parse(
        b"OPTIONS sip:alice@hq.example.com SIP/2.0\r\n\
          Via:\r\n\
          Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK-1\r\n\
          From: <sip:sipp@192.0.2.10>;tag=1\r\n\
          To: <sip:alice@hq.example.com>\r\n\
          Call-ID: empty-via@192.0.2.10\r\n\
          CSeq: 1 OPTIONS\r\n\
          Max-Forwards: 70\r\n\
          Content-Length: 0\r\n\r\n",
    )
    .expect_err("an empty Via line");
    assert!(
        matches!(err, ParseError::InvalidHeader { name: "Via" }),
        "{err}"
    );
}
