//! `employee-api healthcheck`: a container health check without curl in the image.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{Failure, failure};
use crate::config::Config;

/// GET /readyz over plain HTTP/1.1 on the configured address.
pub(super) async fn healthcheck(config: &Config) -> Result<(), Failure> {
    let mut addr = config.bind_addr;
    if addr.ip().is_unspecified() {
        addr.set_ip(if addr.is_ipv4() {
            [127, 0, 0, 1].into()
        } else {
            std::net::Ipv6Addr::LOCALHOST.into()
        });
    }
    let check = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await?;
        stream
            .write_all(
                format!("GET /readyz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")
                    .as_bytes(),
            )
            .await?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await?;
        Ok::<_, std::io::Error>(response)
    };
    match tokio::time::timeout(Duration::from_secs(5), check).await {
        Ok(Ok(response)) if response.starts_with(b"HTTP/1.1 200") => super::out("ready"),
        Ok(Ok(response)) => {
            let line = String::from_utf8_lossy(&response)
                .lines()
                .next()
                .unwrap_or_default()
                .to_owned();
            Err(failure(format!("not ready: {line}")))
        }
        Ok(Err(e)) => Err(failure(format!("cannot reach {addr}: {e}"))),
        Err(_) => Err(failure(format!("no answer from {addr} within 5 s"))),
    }
}
