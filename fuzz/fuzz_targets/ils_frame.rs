//! `ils_frame`: the ILS replication stream on arbitrary bytes. The bytes are cut into frames by
//! `ils::proto::FrameDecoder` (length prefix, protobuf envelope); each frame must encode and
//! decode back to itself, and is then handed to a hub `Node` on an accepted link (open
//! authentication), as the driver would, with the clock moving a second per frame. No panic,
//! and the decoder must consume what it returns.
#![no_main]

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use dialplan::{ClusterId, Role, RouteString};
use ils::learned::MemorySink;
use ils::proto::codec::{self, FrameDecoder};
use ils::proto::{LinkInfo, LocalIdentity, Node, NodeConfig, OpenAuthenticator};
use libfuzzer_sys::fuzz_target;

fn node(now: Instant) -> Node {
    let identity = LocalIdentity {
        cluster_id: ClusterId::new("HQ").expect("cluster id"),
        cluster_name: "hq.example.com".into(),
        role: Role::Hub,
        route_strings: vec![RouteString::new("hq.route").expect("route string")],
        addresses: vec!["127.0.0.1:7501".into()],
        instance: 1,
    };
    let mut config = NodeConfig::new(identity);
    config.batch_records = 16;
    Node::new(
        config,
        Arc::new(MemorySink::new()),
        Arc::new(OpenAuthenticator),
        now,
    )
}

fuzz_target!(|data: &[u8]| {
    let decoder = FrameDecoder::new(64 * 1024);
    let mut buf = BytesMut::from(data);
    let mut now = Instant::now();
    let mut node = node(now);
    let link = node.open_link(
        now,
        None,
        LinkInfo {
            remote: "192.0.2.1:40000".into(),
            tls: None,
            password_only: false,
        },
        [7; ils::proto::NONCE_LEN],
    );
    for _ in 0..256 {
        let before = buf.len();
        match decoder.decode(&mut buf) {
            Ok(Some(frame)) => {
                assert!(
                    buf.len() < before,
                    "a frame was returned without consuming bytes"
                );
                let mut out = BytesMut::new();
                let n = codec::encode(&frame, &mut out);
                assert_eq!(n, out.len());
                assert_eq!(n, codec::encoded_len(&frame));
                let again = decoder
                    .decode(&mut out)
                    .expect("our own encoding decodes")
                    .expect("a whole frame");
                assert!(again == frame, "re-encoded frame differs");
                assert!(out.is_empty());
                now += Duration::from_secs(1);
                node.handle_frame(now, link, frame);
                node.handle_timeout(now);
                while node.poll_frame(link).is_some() {}
                while node.poll_ready().is_some() {}
                while node.poll_event().is_some() {}
            }
            Ok(None) => break,
            Err(e) if e.is_fatal() => break,
            Err(_) => assert!(buf.len() < before, "an unknown frame must be skipped"),
        }
    }
});
