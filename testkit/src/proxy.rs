//! A link that can be cut, partitioned or slowed.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

/// What the link does with the bytes it is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Link {
    Up,
    /// Every connection closed, new ones closed as they come.
    Cut,
    /// Nothing passes and nothing is closed: both ends wait, as across a network partition.
    /// What was sent meanwhile arrives once the link is up again, as TCP's retransmissions do.
    Partitioned,
    /// Every chunk arrives this much later, each way.
    Delayed(Duration),
}

/// A TCP proxy to a server, for faults of the network between one client and it while both run
/// on and the server stays reachable for everyone else (the shared Postgres, a master's other
/// clients): cut (connections closed: what a client sees when a peer or a firewall resets),
/// partitioned (connections hang), or slowed.
#[derive(Debug)]
pub struct Proxy {
    pub addr: SocketAddr,
    link: watch::Sender<Link>,
}

impl Proxy {
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bound");
        let addr = listener.local_addr().expect("address");
        let (link, watcher) = watch::channel(Link::Up);
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                if *watcher.borrow() == Link::Cut {
                    continue;
                }
                let watcher = watcher.clone();
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    let (client_reads, client_writes) = client.into_split();
                    let (server_reads, server_writes) = server.into_split();
                    tokio::join!(
                        pump(client_reads, server_writes, watcher.clone()),
                        pump(server_reads, client_writes, watcher),
                    );
                });
            }
        });
        Self { addr, link }
    }

    /// Closes every connection and refuses new ones until [`Proxy::restore`].
    pub fn cut(&self) {
        self.link.send_replace(Link::Cut);
    }

    /// Lets nothing through and closes nothing until [`Proxy::restore`].
    pub fn partition(&self) {
        self.link.send_replace(Link::Partitioned);
    }

    /// Delays what passes by `latency` each way until [`Proxy::restore`].
    pub fn delay(&self, latency: Duration) {
        self.link.send_replace(Link::Delayed(latency));
    }

    pub fn restore(&self) {
        self.link.send_replace(Link::Up);
    }
}

/// Forwards one direction of a connection as the link says, until either end closes or the link
/// is cut. A chunk is due `latency` after it was read, so a delay adds to each chunk once, however
/// many are in flight.
async fn pump(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, link: watch::Receiver<Link>) {
    let (chunks, mut in_flight) = mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    let mut reader_link = link.clone();
    let reader = async move {
        let mut buffer = vec![0; 64 * 1024];
        loop {
            let read = tokio::select! {
                read = from.read(&mut buffer) => read,
                _ = reader_link.wait_for(|link| *link == Link::Cut) => return,
            };
            let Ok(length @ 1..) = read else {
                return;
            };
            let latency = match *reader_link.borrow() {
                Link::Delayed(latency) => latency,
                Link::Up | Link::Cut | Link::Partitioned => Duration::ZERO,
            };
            if chunks
                .send((Instant::now() + latency, buffer[..length].to_vec()))
                .is_err()
            {
                return;
            }
        }
    };
    let mut writer_link = link;
    let writer = async move {
        while let Some((due, chunk)) = in_flight.recv().await {
            tokio::time::sleep_until(due).await;
            let passing = writer_link
                .wait_for(|link| *link != Link::Partitioned)
                .await
                .map(|now| *now);
            if !matches!(passing, Ok(Link::Up | Link::Delayed(_))) {
                return;
            }
            if to.write_all(&chunk).await.is_err() {
                return;
            }
        }
    };
    tokio::join!(reader, writer);
}
