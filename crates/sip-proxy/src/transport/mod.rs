//! The tokio driver around [`Core`]: UDP, TCP and TLS listeners on
//! sockets the caller bound, outbound connections reused per destination, the timer task, and
//! graceful shutdown.
//!
//! The core sits behind one mutex. Socket tasks parse outside it, lock once to hand in every
//! message one wake-up brought (a UDP batch, or the frames one stream read completed), collect
//! the transmits they produced, and send them after unlocking. A timer task sleeps until the
//! core's next deadline and is woken when a message brings that deadline forward.

mod stream;
mod udp;

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::{Notify, mpsc};
use tokio_rustls::{TlsAcceptor, TlsConnector};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::message::Message;
use crate::proxy::{self, Core, Route};
use crate::transaction::{Peer, Transmit, Transport};

pub use udp::bind_udp;

/// A proxy being assembled: register sockets, then [`Proxy::start`].
pub struct Proxy<R> {
    shared: Arc<Shared<R>>,
    udp: Vec<Arc<UdpSocket>>,
    tcp: Vec<TcpListener>,
    tls: Vec<(TcpListener, TlsAcceptor)>,
}

/// A running proxy. Clones share it.
pub struct ProxyHandle<R> {
    shared: Arc<Shared<R>>,
    addrs: Vec<(Transport, SocketAddr)>,
}

/// Driver settings.
#[derive(Clone, Debug)]
pub struct DriverConfig {
    /// Largest message accepted on a stream.
    pub max_message_size: usize,
    /// How long an outbound TCP or TLS connect may take before the branch fails over.
    pub connect_timeout: Duration,
    /// Messages queued per connection before further ones are dropped (and their client
    /// transactions failed over). A connection writes everything queued before it reads more,
    /// so only a peer that stops reading fills it.
    pub connection_queue: usize,
    /// A connection with no traffic either way for this long (at most twice this long) is
    /// closed.
    pub idle_timeout: Duration,
    /// Accepted TCP and TLS connections beyond this are closed at once.
    pub max_connections: usize,
}

impl Default for DriverConfig {
    fn default() -> Self {
        Self {
            max_message_size: 64 * 1024,
            connect_timeout: Duration::from_secs(2),
            connection_queue: 1024,
            idle_timeout: Duration::from_secs(600),
            max_connections: 10_000,
        }
    }
}

pub(crate) struct Shared<R> {
    engine: Mutex<Engine<R>>,
    wake: Notify,
    /// UDP sockets with their local address (looked up once, not per send); set on start,
    /// then read without a lock by every send.
    udp: OnceLock<Vec<(SocketAddr, Arc<UdpSocket>)>>,
    /// Open or opening connections, by remote address; each queue feeds one connection task.
    conns: Mutex<HashMap<Peer, mpsc::Sender<Outgoing>>>,
    connector: Option<TlsConnector>,
    /// The name to verify in a destination's TLS certificate, when it has one.
    tls_names: Mutex<HashMap<SocketAddr, String>>,
    events: Option<mpsc::Sender<proxy::Event>>,
    config: DriverConfig,
    /// Cancelled to stop accepting new connections.
    stop_accepting: CancellationToken,
    /// Cancelled to stop everything.
    stop: CancellationToken,
    tasks: TaskTracker,
}

/// A message queued on a connection, with the client transaction to fail if it is never sent.
pub(crate) type Outgoing = (Bytes, Option<crate::transaction::ClientId>);

struct Engine<R> {
    core: Core<R>,
    /// The deadline the timer task sleeps until.
    armed: Option<Instant>,
}

/// A received message, parsed outside the core's lock. One that fails to parse is kept as bytes
/// and re-parsed inside, to answer it.
// Nearly every one is a `Message`, and a batch is short-lived: boxing it would cost an
// allocation per message to save space in the rare malformed case.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Received {
    Message(Message),
    Malformed(Bytes),
}

impl Received {
    pub(crate) fn parse(bytes: Bytes) -> Self {
        match Message::parse(bytes.clone()) {
            Ok(msg) => Self::Message(msg),
            Err(_) => Self::Malformed(bytes),
        }
    }

    fn hand<R: Route>(self, core: &mut Core<R>, now: Instant, from: Peer) {
        match self {
            Self::Message(msg) => core.handle_message(now, from, msg),
            Self::Malformed(bytes) => core.handle_datagram(now, from, bytes),
        }
    }
}

/// What one call into the core produced.
#[derive(Default)]
struct Output {
    transmits: Vec<Transmit>,
    events: Vec<proxy::Event>,
}

// === impl Proxy ===

impl<R: Route + Send + 'static> Proxy<R> {
    /// A proxy over `core`. `connector` enables outbound TLS; `events` receives destination
    /// health and ping results.
    pub fn new(
        core: Core<R>,
        config: DriverConfig,
        connector: Option<TlsConnector>,
        events: Option<mpsc::Sender<proxy::Event>>,
    ) -> Self {
        let shared = Arc::new(Shared {
            engine: Mutex::new(Engine { core, armed: None }),
            wake: Notify::new(),
            udp: OnceLock::new(),
            conns: Mutex::new(HashMap::new()),
            connector,
            tls_names: Mutex::new(HashMap::new()),
            events,
            config,
            stop_accepting: CancellationToken::new(),
            stop: CancellationToken::new(),
            tasks: TaskTracker::new(),
        });
        Self {
            shared,
            udp: Vec::new(),
            tcp: Vec::new(),
            tls: Vec::new(),
        }
    }

    /// Adds a bound UDP socket; returns its local address.
    pub fn register_udp(&mut self, socket: UdpSocket) -> io::Result<SocketAddr> {
        let addr = socket.local_addr()?;
        self.udp.push(Arc::new(socket));
        Ok(addr)
    }

    /// Adds a TCP listener; returns its local address.
    pub fn register_tcp(&mut self, listener: TcpListener) -> io::Result<SocketAddr> {
        let addr = listener.local_addr()?;
        self.tcp.push(listener);
        Ok(addr)
    }

    /// Adds a TLS listener; returns its local address.
    pub fn register_tls(
        &mut self,
        listener: TcpListener,
        acceptor: TlsAcceptor,
    ) -> io::Result<SocketAddr> {
        let addr = listener.local_addr()?;
        self.tls.push((listener, acceptor));
        Ok(addr)
    }

    /// Spawns the socket and timer tasks on the current tokio runtime.
    pub fn start(self) -> io::Result<ProxyHandle<R>> {
        let shared = self.shared;
        let mut addrs = Vec::new();
        let mut udp = Vec::with_capacity(self.udp.len());
        for socket in &self.udp {
            udp.push((socket.local_addr()?, socket.clone()));
        }
        let _ = shared.udp.set(udp);
        for socket in self.udp {
            let addr = socket.local_addr()?;
            tracing::info!(proto = %"udp", addr = %addr, "listening");
            addrs.push((Transport::Udp, addr));
            shared.tasks.spawn(udp::receive(shared.clone(), socket));
        }
        for listener in self.tcp {
            let addr = listener.local_addr()?;
            tracing::info!(proto = %"tcp", addr = %addr, "listening");
            addrs.push((Transport::Tcp, addr));
            shared
                .tasks
                .spawn(stream::accept(shared.clone(), listener, None));
        }
        for (listener, acceptor) in self.tls {
            let addr = listener.local_addr()?;
            tracing::info!(proto = %"tls", addr = %addr, "listening");
            addrs.push((Transport::Tls, addr));
            shared
                .tasks
                .spawn(stream::accept(shared.clone(), listener, Some(acceptor)));
        }
        shared.tasks.spawn(timers(shared.clone()));
        Ok(ProxyHandle { shared, addrs })
    }
}

// === impl ProxyHandle ===

impl<R> Clone for ProxyHandle<R> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
            addrs: self.addrs.clone(),
        }
    }
}

impl<R: Route + Send + 'static> ProxyHandle<R> {
    /// The bound addresses, in registration order.
    pub fn local_addrs(&self) -> &[(Transport, SocketAddr)] {
        &self.addrs
    }

    /// The first bound address of a transport.
    pub fn local_addr(&self, transport: Transport) -> Option<SocketAddr> {
        self.addrs
            .iter()
            .find(|(t, _)| *t == transport)
            .map(|(_, a)| *a)
    }

    /// Replaces the router; requests in progress keep their destinations.
    pub fn set_router(&self, router: R) {
        lock(&self.shared.engine).core.set_router(router);
    }

    /// Runs `f` on the router, e.g. to read trunk state.
    pub fn with_router<T>(&self, f: impl FnOnce(&R) -> T) -> T {
        f(lock(&self.shared.engine).core.router())
    }

    /// Sends an OPTIONS ping; the result arrives on the events channel.
    pub fn ping(&self, to: Peer) {
        self.shared.call(|core, now| {
            core.send_ping(now, to);
        });
    }

    /// Sets the name to verify in the TLS certificate of the destination at `addr` (its host
    /// name, or the SIP domain of an SRV name, RFC 5922 §4). Without one, the certificate must
    /// name the IP address.
    pub fn set_tls_name(&self, addr: SocketAddr, name: &str) {
        lock(&self.shared.tls_names).insert(addr, name.to_owned());
    }

    /// Requests in progress.
    pub fn pending(&self) -> usize {
        lock(&self.shared.engine).core.pending()
    }

    /// The transaction layer's size.
    pub fn transaction_counts(&self) -> crate::proxy::TransactionCounts {
        lock(&self.shared.engine).core.transaction_counts()
    }

    /// Stops accepting connections and new calls (they get `503`), lets requests in progress
    /// finish for up to `grace`, then stops every task and waits for them.
    pub async fn shutdown(self, grace: Duration) {
        lock(&self.shared.engine).core.set_draining(true);
        self.shared.stop_accepting.cancel();
        let deadline = tokio::time::Instant::now() + grace;
        while self.pending() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.shared.stop.cancel();
        self.shared.tasks.close();
        self.shared.tasks.wait().await;
        tracing::info!("proxy stopped");
    }
}

// === impl Shared ===

impl<R: Route + Send + 'static> Shared<R> {
    /// Hands received messages to the core in order under one lock, then sends what they
    /// produced. Empties `batch`.
    pub(crate) fn input_batch(self: &Arc<Self>, batch: &mut Vec<(Peer, Received)>) {
        // Each message guarded on its own, so a bug met in one spares the rest of the batch.
        self.locked(|core, now| {
            for (from, received) in batch.drain(..) {
                guarded(|| received.hand(core, now, from));
            }
        });
    }

    /// Runs one operation on the core (guarded), then sends what it produced.
    fn call(self: &Arc<Self>, f: impl FnOnce(&mut Core<R>, Instant)) {
        self.locked(|core, now| guarded(|| f(core, now)));
    }

    /// Runs `f` under the core's lock, then sends what it produced.
    fn locked(self: &Arc<Self>, f: impl FnOnce(&mut Core<R>, Instant)) {
        let mut out = Output::default();
        {
            let mut engine = lock(&self.engine);
            f(&mut engine.core, Instant::now());
            engine.drain(&mut out);
            // Wake the timer task only when the next deadline moves into an earlier tick.
            let next = engine.core.poll_timeout().map(tick);
            if next.is_some() && (engine.armed.is_none() || next < engine.armed) {
                engine.armed = next;
                self.wake.notify_one();
            }
        }
        self.flush(out);
    }

    fn transport_error(self: &Arc<Self>, client: Option<crate::transaction::ClientId>) {
        if let Some(client) = client {
            self.call(|core, now| core.handle_transport_error(now, client));
        }
    }

    fn flush(self: &Arc<Self>, out: Output) {
        for t in out.transmits {
            match t.to.transport {
                Transport::Udp => udp::send(self, t),
                Transport::Tcp | Transport::Tls => stream::send(self, t),
            }
        }
        if let Some(events) = &self.events {
            for e in out.events {
                let _ = events.try_send(e);
            }
        }
    }
}

impl<R: Route> Engine<R> {
    fn drain(&mut self, out: &mut Output) {
        while let Some(t) = self.core.poll_transmit() {
            out.transmits.push(t);
        }
        while let Some(e) = self.core.poll_event() {
            out.events.push(e);
        }
    }
}

/// Timer granularity: deadlines are rounded up to the next multiple of this, so the timer task
/// wakes once per tick for all the timers due in it rather than once per timer (tens of
/// thousands per second under load). SIP timers are T1 = 500 ms and up; a few milliseconds late
/// is within what RFC 3261 allows.
const TICK: Duration = Duration::from_millis(5);

/// `at` rounded up to the next tick boundary (ticks counted from the first call).
fn tick(at: Instant) -> Instant {
    static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    let epoch = *EPOCH.get_or_init(Instant::now);
    let Some(since) = at.checked_duration_since(epoch) else {
        return at;
    };
    let tick = TICK.as_nanos();
    let rounded = since.as_nanos().div_ceil(tick) * tick;
    epoch + Duration::from_nanos(u64::try_from(rounded).unwrap_or(u64::MAX))
}

/// Fires the core's deadlines.
async fn timers<R: Route + Send + 'static>(shared: Arc<Shared<R>>) {
    loop {
        let next = {
            let mut engine = lock(&shared.engine);
            let next = engine.core.poll_timeout().map(tick);
            engine.armed = next;
            next
        };
        let sleep = async {
            match next {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = shared.stop.cancelled() => return,
            () = shared.wake.notified() => {}
            () = sleep => shared.call(|core, now| core.handle_timeout(now)),
        }
    }
}

/// Runs `f`, logging a panic instead of passing it on: a bug met while handling one message
/// must not take down the listener, connection or timer task that handed it in, nor the rest
/// of a batch. That message is lost; everything else goes on.
fn guarded(f: impl FnOnce()) {
    if std::panic::catch_unwind(AssertUnwindSafe(f)).is_err() {
        tracing::error!("internal error while handling a message or timer; it was dropped");
    }
}

/// Locks a mutex, recovering from poisoning: a panic elsewhere must not stop the proxy.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
