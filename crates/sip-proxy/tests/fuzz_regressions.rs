//! Inputs found by the fuzz targets of `fuzz/` (see `fuzz/README.md`), kept as plain tests.

use bytes::Bytes;
use sip_proxy::message::{Editor, Message};

fn parse(text: &[u8]) -> Message {
    Message::parse(Bytes::copy_from_slice(text)).expect("the input parses")
}

/// `sip_message`: a top Via whose last parameter value ends in a stray `"` (not a token, so not
/// a valid `branch`) passes `Message::parse`; the editor then appends `;received=...` after the
/// quote, and on the next hop the open quote swallows it: the Via comes back without
/// `received`. Either `parse` should refuse the Via (answer 400) or the editor should not
/// append to an unterminated quoted string. Ignored until `src/` is fixed (found by the fuzzer;
/// this crate's `src/` belongs to another engineer).
#[test]
#[ignore = "fuzz finding: Via with an unbalanced quote loses `received` (see doc comment)"]
fn received_is_added_to_a_top_via_with_an_unbalanced_quote() {
    let msg = parse(
        b"OPTIONS sip:user@example.com SIP/2.0\r\n\
          To: sip:user@example.com\r\n\
          From: caller<sip:caller@example.com>;tag=323\r\n\
          Max-Forwards: 70\r\n\
          Call-ID: lwsdisp.1234abcd@funky.example.com\r\n\
          CSeq: 60 OPTIONS\r\n\
          Via: SIP/2.0/UDP funky.example.com;branch=z9hG4bKkdjuw\"\r\n\
          l: 0\r\n\r\n",
    );
    let mut ed = Editor::new(&msg);
    ed.prepend_via(b"SIP/2.0/UDP 203.0.113.1:5060;branch=z9hG4bKie1")
        .top_via_received(Some([192, 0, 2, 7].into()), Some(40000));
    let out = ed.finish();
    let again = Message::parse(out.clone()).expect("the edited message parses");
    let second = again
        .vias()
        .nth(1)
        .expect("two Vias")
        .expect("the old top Via parses");
    assert_eq!(
        second.received(),
        Some([192, 0, 2, 7].into()),
        "edited:\n{}",
        String::from_utf8_lossy(&out)
    );
}

/// `sip_message`: an empty first Via line (`Via:` with no value, which RFC 3261's grammar does
/// not allow) passes `Message::parse`, whose top Via is then the first value of the next Via
/// line; the forwarding editor applies `received`/`rport` to the first Via *line* instead,
/// finds no value there and leaves the real top Via without `received`. The parser and the
/// editor disagree on which Via is on top. `parse` should refuse the empty Via (answer 400),
/// or the editor should edit the same value the parser calls the top one. Ignored until `src/`
/// is fixed (found by the fuzzer; this crate's `src/` belongs to another engineer).
#[test]
#[ignore = "fuzz finding: an empty first Via line makes the editor skip `received` (see doc comment)"]
fn received_is_added_to_the_top_via_after_an_empty_via_line() {
    let msg = parse(
        b"OPTIONS sip:alice@hq.example.com SIP/2.0\r\n\
          Via:\r\n\
          Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK-1\r\n\
          From: <sip:sipp@192.0.2.10>;tag=1\r\n\
          To: <sip:alice@hq.example.com>\r\n\
          Call-ID: empty-via@192.0.2.10\r\n\
          CSeq: 1 OPTIONS\r\n\
          Max-Forwards: 70\r\n\
          Content-Length: 0\r\n\r\n",
    );
    assert_eq!(
        msg.top_via().expect("top Via").branch(),
        Some(&b"z9hG4bK-1"[..]),
        "the parser's top Via is the first value"
    );
    let mut ed = Editor::new(&msg);
    ed.prepend_via(b"SIP/2.0/UDP 203.0.113.1:5060;branch=z9hG4bKie1")
        .top_via_received(Some([192, 0, 2, 7].into()), Some(40000));
    let out = ed.finish();
    let again = Message::parse(out.clone()).expect("the edited message parses");
    let second = again
        .vias()
        .nth(1)
        .expect("two Vias")
        .expect("the old top Via parses");
    assert_eq!(
        second.received(),
        Some([192, 0, 2, 7].into()),
        "edited:\n{}",
        String::from_utf8_lossy(&out)
    );
}
