//! Resolves the client's address once per request and leaves it as a [`ClientIp`] extension,
//! for the rate limits, the login throttle and the logs.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::{
    extract::{ConnectInfo, Request, State},
    http::HeaderMap,
    middleware::Next,
    response::Response,
};
use ipnet::IpNet;

use crate::{app::AppState, domain::client::canonical, extract::client::ClientIp};

/// Sets the [`ClientIp`] extension.
pub async fn resolve(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    let ip = client_ip(peer, req.headers(), &state.config.trusted_proxies);
    req.extensions_mut().insert(ClientIp(ip));
    next.run(req).await
}

/// Finds the client address: the socket peer, or, when the peer is a trusted proxy, the
/// right-most `X-Forwarded-For` entry that is not itself a trusted proxy. Addresses are made
/// canonical (an IPv4-mapped IPv6 address is its IPv4 address).
pub fn client_ip(peer: Option<SocketAddr>, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    // Every address in its canonical form: behind a dual-stack listener an IPv4 proxy appears
    // as `::ffff:a.b.c.d`, and must still match `TRUSTED_PROXIES=a.b.c.d`.
    let Some(peer) = peer.map(|p| canonical(p.ip())) else {
        return IpAddr::V4(Ipv4Addr::UNSPECIFIED);
    };
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let mut client = peer;
    let hops = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect::<Vec<_>>();
    for hop in hops.iter().rev() {
        match hop.parse::<IpAddr>().map(canonical) {
            Ok(ip) if is_trusted(&ip) => client = ip,
            Ok(ip) => return ip,
            Err(_) => return client,
        }
    }
    client
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_for_is_ignored_unless_the_peer_is_trusted() {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", "203.0.113.9, 10.0.0.2".parse().unwrap());
        let peer: SocketAddr = "10.0.0.1:5000".parse().unwrap();
        assert_eq!(client_ip(Some(peer), &headers, &[]), peer.ip());
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        assert_eq!(
            client_ip(Some(peer), &headers, &trusted),
            "203.0.113.9".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn ipv4_mapped_peers_and_hops_are_their_ipv4_addresses() {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", "::ffff:203.0.113.9".parse().unwrap());
        let peer: SocketAddr = "[::ffff:10.0.0.1]:5000".parse().unwrap();
        let trusted: Vec<IpNet> = vec!["10.0.0.1/32".parse().unwrap()];
        assert_eq!(
            client_ip(Some(peer), &headers, &trusted),
            "203.0.113.9".parse::<IpAddr>().unwrap(),
            "the mapped peer is the trusted IPv4 proxy, the mapped hop an IPv4 client"
        );
        assert_eq!(
            client_ip(Some(peer), &HeaderMap::new(), &[]),
            "10.0.0.1".parse::<IpAddr>().unwrap()
        );
    }
}
