//! The ILS equivalent of quinn's `Pair`: a `Mesh` of nodes whose frames it moves by hand,
//! through the real codec, with a fake clock. No sockets, no sleeps.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use dialplan::{ClusterId, DirectoryUri, Role, RouteString, UriLookupPolicy};

use crate::learned::MemorySink;
use crate::proto::codec::{self, FrameDecoder};
use crate::proto::{
    Event, Frame, LinkId, LinkInfo, LocalIdentity, Node, NodeConfig, OpenAuthenticator,
};

/// One frame that crossed a wire.
#[derive(Debug, Clone)]
pub(super) struct Sent {
    pub(super) from: String,
    pub(super) to: String,
    pub(super) name: &'static str,
    pub(super) records: usize,
    pub(super) repair: bool,
    pub(super) bytes: usize,
}

pub(super) struct MeshNode {
    pub(super) node: Node,
    pub(super) sink: Arc<MemorySink>,
    pub(super) events: Vec<Event>,
}

struct Wire {
    a: (String, LinkId),
    b: (String, LinkId),
}

/// Decides whether a frame is lost on the wire.
pub(super) type LossFn = Box<dyn FnMut(&Sent, &Frame) -> bool>;

pub(super) struct Mesh {
    pub(super) now: Instant,
    pub(super) nodes: BTreeMap<String, MeshNode>,
    wires: Vec<Wire>,
    pub(super) log: Vec<Sent>,
    pub(super) lose: Option<LossFn>,
    cut: BTreeSet<(String, String)>,
    nonce: u64,
}

pub(super) const SYNC: Duration = Duration::from_secs(60);

impl Mesh {
    pub(super) fn new() -> Self {
        Self {
            now: Instant::now(),
            nodes: BTreeMap::new(),
            wires: Vec::new(),
            log: Vec::new(),
            lose: None,
            cut: BTreeSet::new(),
            nonce: 0,
        }
    }

    /// The configuration the mesh uses for a cluster: its name is its address.
    pub(super) fn config(id: &str, role: Role, registrar: Option<&str>) -> NodeConfig {
        let identity = LocalIdentity {
            cluster_id: ClusterId::new(id).expect("valid cluster id"),
            cluster_name: format!("{}.example.com", id.to_lowercase()),
            role,
            route_strings: vec![route(id)],
            addresses: vec![id.to_owned()],
            instance: 1,
        };
        let mut c = NodeConfig::new(identity);
        c.registrar = registrar.map(str::to_owned);
        c.sync_interval = SYNC;
        c.batch_records = 100;
        c
    }

    pub(super) fn add(&mut self, config: NodeConfig) -> &mut Self {
        self.add_with_sink(config, Arc::new(MemorySink::new()))
    }

    pub(super) fn add_with_sink(&mut self, config: NodeConfig, sink: Arc<MemorySink>) -> &mut Self {
        let name = config.identity.addresses[0].clone();
        let node = Node::new(config, sink.clone(), Arc::new(OpenAuthenticator), self.now);
        self.nodes.insert(
            name,
            MeshNode {
                node,
                sink,
                events: Vec::new(),
            },
        );
        self
    }

    pub(super) fn hub(&mut self, id: &str, registrar: Option<&str>) -> &mut Self {
        self.add(Self::config(id, Role::Hub, registrar))
    }

    pub(super) fn spoke(&mut self, id: &str, registrar: &str) -> &mut Self {
        self.add(Self::config(id, Role::Spoke, Some(registrar)))
    }

    pub(super) fn node(&mut self, name: &str) -> &mut Node {
        &mut self.nodes.get_mut(name).expect("node exists").node
    }

    /// Advertises `users` (as `user@<id>.example.com`) with the cluster's route string.
    pub(super) fn advertise(&mut self, name: &str, users: &[&str]) {
        let now = self.now;
        let records = users.iter().map(|u| (uri(u, name), route(name)));
        self.node(name).advertise(now, records);
        self.run();
    }

    /// Moves frames and handles dials until nothing moves.
    pub(super) fn run(&mut self) {
        for _ in 0..100_000 {
            if !self.step() {
                return;
            }
        }
        panic!("mesh did not settle");
    }

    /// Moves the clock forward by `d`, firing every timer due on the way.
    pub(super) fn advance(&mut self, d: Duration) {
        let target = self.now + d;
        for _ in 0..100_000 {
            let next = self
                .nodes
                .values()
                .filter_map(|n| n.node.poll_timeout())
                .min();
            match next {
                Some(t) if t <= target => {
                    self.now = self.now.max(t);
                    let now = self.now;
                    for n in self.nodes.values_mut() {
                        if n.node.poll_timeout().is_some_and(|t| t <= now) {
                            n.node.handle_timeout(now);
                        }
                    }
                    self.run();
                }
                _ => {
                    self.now = target;
                    return;
                }
            }
        }
        let stuck: Vec<_> = self
            .nodes
            .iter()
            .map(|(k, n)| {
                (
                    k.clone(),
                    n.node
                        .poll_timeout()
                        .map(|t| t.saturating_duration_since(self.now)),
                    format!("{:?}", n.node),
                )
            })
            .collect();
        panic!("timers did not settle: {stuck:?}");
    }

    /// Stops a node: its links drop and dials to it fail until it is added again.
    pub(super) fn kill(&mut self, name: &str) -> MeshNode {
        self.close_wires(|a, b| a == name || b == name);
        self.nodes.remove(name).expect("node exists")
    }

    /// Cuts the network between two nodes (open links drop, dials fail).
    pub(super) fn partition(&mut self, a: &str, b: &str) {
        self.cut.insert((a.to_owned(), b.to_owned()));
        self.cut.insert((b.to_owned(), a.to_owned()));
        self.close_wires(|x, y| (x == a && y == b) || (x == b && y == a));
    }

    pub(super) fn heal(&mut self, a: &str, b: &str) {
        self.cut.remove(&(a.to_owned(), b.to_owned()));
        self.cut.remove(&(b.to_owned(), a.to_owned()));
    }

    /// Records sent from `from` to `to` since the log was last cleared.
    pub(super) fn records_sent(&self, from: &str, to: &str) -> usize {
        self.log
            .iter()
            .filter(|s| s.from == from && s.to == to)
            .map(|s| s.records)
            .sum()
    }

    /// Bytes (frames encoded, prefixes included) sent from `from` to `to`.
    pub(super) fn bytes_sent(&self, from: &str, to: &str) -> usize {
        self.log
            .iter()
            .filter(|s| s.from == from && s.to == to)
            .map(|s| s.bytes)
            .sum()
    }

    pub(super) fn total_records_sent(&self) -> usize {
        self.log.iter().map(|s| s.records).sum()
    }

    /// Up links of a node, by peer cluster ID.
    pub(super) fn links_of(&self, name: &str) -> Vec<String> {
        let mut v: Vec<String> = self.nodes[name]
            .node
            .up_links()
            .into_iter()
            .map(|(_, c)| c.to_string())
            .collect();
        v.sort();
        v
    }

    /// Live records `name` holds from `origin`.
    pub(super) fn records(&self, name: &str, origin: &str) -> Vec<(String, String)> {
        self.nodes[name].node.records_of(origin)
    }

    /// URIs in a node's learned table.
    pub(super) fn learned(&self, name: &str) -> Vec<(String, String, String)> {
        self.nodes[name].sink.entries()
    }

    pub(super) fn events(&self, name: &str) -> &[Event] {
        &self.nodes[name].events
    }

    fn close_wires(&mut self, which: impl Fn(&str, &str) -> bool) {
        let now = self.now;
        let (gone, keep): (Vec<Wire>, Vec<Wire>) =
            self.wires.drain(..).partition(|w| which(&w.a.0, &w.b.0));
        self.wires = keep;
        for w in gone {
            for (name, link) in [w.a, w.b] {
                if let Some(n) = self.nodes.get_mut(&name) {
                    n.node.link_closed(now, link);
                }
            }
        }
        self.run();
    }

    fn step(&mut self) -> bool {
        let now = self.now;
        let mut moved = false;
        // Events, and dials.
        let names: Vec<String> = self.nodes.keys().cloned().collect();
        for name in &names {
            let mut dials = Vec::new();
            if let Some(n) = self.nodes.get_mut(name) {
                while let Some(ev) = n.node.poll_event() {
                    moved = true;
                    if let Event::Dial { addr } = &ev {
                        dials.push(addr.clone());
                    }
                    n.events.push(ev);
                }
            }
            for addr in dials {
                self.dial(name, &addr);
            }
        }
        // Frames, through the codec.
        let dec = FrameDecoder::default();
        for i in 0..self.wires.len() {
            for dir in [false, true] {
                let (src, dst) = {
                    let w = &self.wires[i];
                    if dir {
                        (w.b.clone(), w.a.clone())
                    } else {
                        (w.a.clone(), w.b.clone())
                    }
                };
                while let Some(frame) = self
                    .nodes
                    .get_mut(&src.0)
                    .and_then(|n| n.node.poll_frame(src.1))
                {
                    moved = true;
                    let mut buf = BytesMut::new();
                    let bytes = codec::encode(&frame, &mut buf);
                    let frame = dec
                        .decode(&mut buf)
                        .expect("valid frame")
                        .expect("whole frame");
                    let (records, repair) = match &frame {
                        Frame::Records(r) => (r.records.len(), r.repair),
                        _ => (0, false),
                    };
                    let sent = Sent {
                        from: src.0.clone(),
                        to: dst.0.clone(),
                        name: frame.name(),
                        records,
                        repair,
                        bytes,
                    };
                    let lost = self.lose.as_mut().is_some_and(|f| f(&sent, &frame));
                    self.log.push(sent);
                    if !lost && let Some(n) = self.nodes.get_mut(&dst.0) {
                        n.node.handle_frame(now, dst.1, frame);
                    }
                }
            }
        }
        // Links a node has finished: close the transport at both ends.
        let finished: Vec<usize> = (0..self.wires.len())
            .filter(|&i| {
                let w = &self.wires[i];
                [&w.a, &w.b]
                    .iter()
                    .any(|(n, l)| self.nodes.get(n).is_none_or(|x| x.node.is_finished(*l)))
            })
            .collect();
        for i in finished.into_iter().rev() {
            moved = true;
            let w = self.wires.remove(i);
            for (name, link) in [w.a, w.b] {
                if let Some(n) = self.nodes.get_mut(&name) {
                    // Deliver what was queued (a Refuse, a Goodbye) before the close.
                    n.node.link_closed(now, link);
                }
            }
        }
        moved
    }

    fn dial(&mut self, from: &str, addr: &str) {
        let now = self.now;
        let reachable = self.nodes.contains_key(addr)
            && !self.cut.contains(&(from.to_owned(), addr.to_owned()));
        if !reachable {
            self.node(from).dial_failed(now, addr);
            return;
        }
        self.nonce += 1;
        let n1 = nonce(self.nonce);
        self.nonce += 1;
        let n2 = nonce(self.nonce);
        let a = self.node(from).open_link(
            now,
            Some(addr),
            LinkInfo {
                remote: addr.to_owned(),
                tls: None,
                password_only: false,
            },
            n1,
        );
        let b = self.node(addr).open_link(
            now,
            None,
            LinkInfo {
                remote: from.to_owned(),
                tls: None,
                password_only: false,
            },
            n2,
        );
        self.wires.push(Wire {
            a: (from.to_owned(), a),
            b: (addr.to_owned(), b),
        });
    }
}

fn nonce(n: u64) -> [u8; 32] {
    let mut out = [0u8; 32];
    out[..8].copy_from_slice(&n.to_le_bytes());
    out
}

/// `user@<cluster>.example.com`.
pub(super) fn uri(user: &str, cluster: &str) -> DirectoryUri {
    DirectoryUri::parse(
        &format!("{user}@{}.example.com", cluster.to_lowercase()),
        UriLookupPolicy::CaseSensitive,
    )
    .expect("valid uri")
}

/// `<cluster>.route`.
pub(super) fn route(cluster: &str) -> RouteString {
    RouteString::new(&format!("{}.route", cluster.to_lowercase())).expect("valid route")
}
