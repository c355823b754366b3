//! A proxy that forwards every out-of-dialog request to one destination, for trying the
//! driver with SIPp: `cargo run --release --example static_proxy -- 127.0.0.1:5070 127.0.0.3:5060`.
//! It listens on UDP and TCP at the first address and uses the second as the trunk (over the
//! transport the request arrived on). Ctrl-C stops it after a one-second drain.

use std::net::SocketAddr;
use std::time::Duration;

use sip_proxy::proxy::{Config, LocalAddr};
use sip_proxy::transaction::{Peer, Transport};
use sip_proxy::transport::{DriverConfig, bind_udp};
use sip_proxy::{Core, Proxy, Route, RouteRequest, RouteResult, Target};
use tokio::net::TcpListener;

struct Static(SocketAddr);

impl Route for Static {
    fn route(&self, req: &RouteRequest<'_>) -> RouteResult {
        let transport = req.source.transport;
        RouteResult::Forward(Target {
            trunk: "static".into(),
            destinations: vec![Peer {
                transport,
                addr: self.0,
            }],
            headers: vec![],
        })
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: static_proxy LISTEN_ADDR DEST_ADDR";
    let listen: SocketAddr = args.next().ok_or(usage)?.parse()?;
    let dest: SocketAddr = args.next().ok_or(usage)?.parse()?;
    let config = Config {
        local: vec![
            LocalAddr {
                transport: Transport::Udp,
                addr: listen,
            },
            LocalAddr {
                transport: Transport::Tcp,
                addr: listen,
            },
        ],
        ..Config::default()
    };
    let mut proxy = Proxy::new(
        Core::new(config, Static(dest)),
        DriverConfig::default(),
        None,
        None,
    );
    for socket in bind_udp(listen, 1)? {
        proxy.register_udp(socket)?;
    }
    proxy.register_tcp(TcpListener::bind(listen).await?)?;
    let handle = proxy.start()?;
    println!("listening proto=udp addr={listen}");
    tokio::signal::ctrl_c().await?;
    handle.shutdown(Duration::from_secs(1)).await;
    Ok(())
}
