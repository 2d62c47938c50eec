//! Loopback plumbing for black-box tests: HTTP/1.1 written by hand (for requests a client
//! library will not send: half a head, a head too large), the kernel's view of a TCP socket
//! (so a test can wait until the server has read what it was sent, instead of sleeping), and
//! a TCP proxy that can cut its connections on demand (an outage of the service behind it).

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::watch,
    task::JoinHandle,
};

/// One line of `/proc/net/tcp`: an IPv4 TCP socket.
#[derive(Debug, Clone, Copy)]
struct SocketEntry {
    local: SocketAddr,
    remote: SocketAddr,
    listening: bool,
    /// The TCP state, as the kernel numbers it (01 established, 06 time-wait, 0A listen, ...).
    state: u8,
    unread: u64,
    inode: u64,
}

/// `0100007F:1F90` -> 127.0.0.1:8080 (the address as the host-order u32 of network bytes).
fn parse_addr(hex: &str) -> Option<SocketAddr> {
    let (ip, port) = hex.split_once(':')?;
    let ip = u32::from_str_radix(ip, 16).ok()?;
    let port = u16::from_str_radix(port, 16).ok()?;
    Some(SocketAddr::new(
        IpAddr::V4(Ipv4Addr::from(ip.to_le_bytes())),
        port,
    ))
}

fn tcp_sockets() -> Vec<SocketEntry> {
    let table = std::fs::read_to_string("/proc/net/tcp").expect("/proc/net/tcp is readable");
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (_, rx) = f.get(4)?.split_once(':')?;
            Some(SocketEntry {
                local: parse_addr(f.get(1)?)?,
                remote: parse_addr(f.get(2)?)?,
                listening: *f.get(3)? == "0A",
                state: u8::from_str_radix(f.get(3)?, 16).ok()?,
                unread: u64::from_str_radix(rx, 16).ok()?,
                inode: f.get(9)?.parse().ok()?,
            })
        })
        .collect()
}

/// Waits (at most 10 s) until the server end of `client`'s connection to `server` has read
/// every byte sent on it: the kernel shows nothing left in that socket's receive queue. Before
/// that the bytes may still wait in the queue, or the connection in the accept backlog.
pub async fn wait_until_server_has_read(server: SocketAddr, client: &TcpStream) {
    let client_addr = client.local_addr().expect("client socket address");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let server_end = tcp_sockets()
            .into_iter()
            .find(|s| s.local == server && s.remote == client_addr);
        if server_end.is_some_and(|s| s.unread == 0) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the server never read what {client_addr} sent: {server_end:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Connections the server at `server` still holds open (its end of each, in any state but
/// listening, time-wait or closed: those have no descriptor any more).
pub fn server_connections(server: SocketAddr) -> usize {
    tcp_sockets()
        .into_iter()
        .filter(|s| s.local == server && !s.listening && !matches!(s.state, 0x06 | 0x07))
        .count()
}

/// The addresses process `pid` listens on (its socket inodes, matched in `/proc/net/tcp`).
pub fn listening_addrs(pid: u32) -> Vec<SocketAddr> {
    let inodes: Vec<u64> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|dir| {
            dir.filter_map(|fd| {
                let link = std::fs::read_link(fd.ok()?.path()).ok()?;
                let link = link.to_str()?;
                link.strip_prefix("socket:[")?
                    .strip_suffix(']')?
                    .parse()
                    .ok()
            })
            .collect()
        })
        .unwrap_or_default();
    tcp_sockets()
        .into_iter()
        .filter(|s| s.listening && inodes.contains(&s.inode))
        .map(|s| s.local)
        .collect()
}

/// Whether a TCP connection to `addr` is refused (nothing listens there any more).
pub async fn connection_refused(addr: SocketAddr) -> bool {
    match tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(addr)).await {
        Ok(Err(e)) => e.kind() == std::io::ErrorKind::ConnectionRefused,
        _ => false,
    }
}

/// An HTTP/1.1 answer read off a raw connection.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    /// Header lines, names lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {:?}", self.body))
    }
}

/// Reads an answer until the server closes the connection (at most 30 s) and parses it.
/// Bytes received before a reset still count: a server may answer, then reset a connection
/// whose request it did not read to the end.
pub async fn read_response(stream: &mut TcpStream) -> RawResponse {
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => raw.extend_from_slice(&buf[..n]),
            Err(_) => panic!(
                "no end of the answer within 30 s; so far: {:?}",
                String::from_utf8_lossy(&raw)
            ),
        }
    }
    parse_response(&raw)
}

/// Parses an HTTP/1.1 answer from its first bytes: the head must be complete, the body is
/// whatever follows it.
pub fn parse_response(raw: &[u8]) -> RawResponse {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no complete HTTP answer: {text:?}"));
    let mut lines = head.lines();
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {status_line:?}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    RawResponse {
        status,
        headers,
        body: body.to_owned(),
    }
}

/// A TCP connection to `to` from the loopback address `from` (127.0.0.0/8 gives each test
/// client an address of its own).
pub async fn connect_from(from: IpAddr, to: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(from, 0))?;
    socket.connect(to).await
}

/// Writes `bytes`, tolerating a server that closes before reading them all.
pub async fn write_lenient(stream: &mut TcpStream, bytes: &[u8]) {
    let _ = stream.write_all(bytes).await;
    let _ = stream.flush().await;
}

/// A TCP proxy on 127.0.0.1 in front of `upstream`, for a test to cut and restore.
pub struct Proxy {
    pub addr: SocketAddr,
    up: Arc<AtomicBool>,
    cut: watch::Sender<u64>,
    accept: JoinHandle<()>,
}

impl Proxy {
    pub async fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the proxy");
        let addr = listener.local_addr().expect("proxy address");
        let up = Arc::new(AtomicBool::new(true));
        let (cut, cuts) = watch::channel(0_u64);
        let accept = {
            let up = up.clone();
            tokio::spawn(async move {
                loop {
                    let Ok((mut client, _)) = listener.accept().await else {
                        continue;
                    };
                    if !up.load(Ordering::SeqCst) {
                        drop(client); // refused at once, as a dead service would be
                        continue;
                    }
                    let mut cuts = cuts.clone();
                    cuts.borrow_and_update();
                    tokio::spawn(async move {
                        let Ok(mut server) = TcpStream::connect(upstream).await else {
                            return;
                        };
                        tokio::select! {
                            _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                            _ = cuts.changed() => {}
                        }
                    });
                }
            })
        };
        Proxy {
            addr,
            up,
            cut,
            accept,
        }
    }

    /// Drops every open connection and closes new ones at once, until [`Proxy::restore`].
    pub fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        self.cut.send_modify(|n| *n += 1);
    }

    pub fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut.send_modify(|n| *n += 1);
    }
}
