//! Who is asking, as far as the network tells: the client's address.

use std::{convert::Infallible, net::IpAddr};

use axum::{extract::FromRequestParts, http::request::Parts};

use crate::domain::audit::{ActorKind, AuditContext};

/// The client's address, resolved once per request by the `client_ip` middleware (the socket
/// peer, or the first untrusted `X-Forwarded-For` hop behind a trusted proxy).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        // The middleware always sets it; the unspecified address stands in only for a request
        // that bypassed the stack (never one the server received).
        Ok(parts
            .extensions
            .get::<ClientIp>()
            .copied()
            .unwrap_or(ClientIp(IpAddr::from([0, 0, 0, 0]))))
    }
}

/// Where a request came from, as the audit trail records it: the client's address and the
/// request id (see `middleware::request_id`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub client_ip: IpAddr,
    pub request_id: Option<String>,
}

impl Origin {
    /// The audit context of a request nobody is logged in for (registration, login, refresh).
    pub fn anonymous(&self) -> AuditContext {
        AuditContext {
            actor: ActorKind::Anonymous,
            actor_id: None,
            session_id: None,
            client_ip: Some(self.client_ip.to_string()),
            request_id: self.request_id.clone(),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Origin {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let ClientIp(client_ip) = ClientIp::from_request_parts(parts, state).await?;
        let request_id = parts
            .headers
            // Set on every request by the request-id layer (`middleware::request_id`).
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        Ok(Origin {
            client_ip,
            request_id,
        })
    }
}
