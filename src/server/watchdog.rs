//! Per-connection deadlines that hyper does not enforce itself.
//!
//! hyper-util's auto builder reads up to 24 bytes to tell HTTP/1 from HTTP/2 before any of
//! hyper's timers start, so a connection that sends nothing (or only `P`, the first byte of the
//! HTTP/2 preface) would stay open for ever; and HTTP/2 has no idle timeout at all. Each
//! connection therefore carries an [`Activity`] record, fed by its socket ([`Metered`]) and by
//! its requests ([`RequestGuard`], held by the response body until hyper has written it), and
//! [`expiry`] runs beside the connection and resolves when the connection must close:
//!
//! - no request has started within [`Timeouts::first_request`] of accept;
//! - or nothing is in flight and no byte has moved for [`Timeouts::idle`].
//!
//! A connection with a request in flight (a long streamed export, say) is never closed by
//! these rules; the request's own timeouts apply to it.

use std::{
    io,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use hyper::body::{Body, Frame, SizeHint};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    time::Instant,
};

/// The two deadlines of [`expiry`].
#[derive(Debug, Clone, Copy)]
pub(super) struct Timeouts {
    /// From accept to the first request (its head complete and handed to the router).
    pub first_request: Duration,
    /// With nothing in flight, how long a connection may stay silent.
    pub idle: Duration,
}

/// Why [`expiry`] closed a connection; the metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Expired {
    NoRequest,
    Idle,
}

impl Expired {
    pub(super) fn label(self) -> &'static str {
        match self {
            Expired::NoRequest => "no_request",
            Expired::Idle => "idle",
        }
    }
}

/// What one connection is doing, shared by its socket, its requests and its watchdog.
#[derive(Debug)]
pub(super) struct Activity {
    opened: Instant,
    /// Milliseconds from `opened` to the last byte moved or request started or finished.
    last: AtomicU64,
    in_flight: AtomicU32,
    started: AtomicBool,
}

impl Activity {
    pub(super) fn new() -> Arc<Self> {
        Arc::new(Activity {
            opened: Instant::now(),
            last: AtomicU64::new(0),
            in_flight: AtomicU32::new(0),
            started: AtomicBool::new(false),
        })
    }

    fn touch(&self) {
        let ms = u64::try_from(self.opened.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last.fetch_max(ms, Ordering::Relaxed);
    }

    /// A request has reached the router; it counts as in flight until the guard is dropped.
    pub(super) fn request_started(self: &Arc<Self>) -> RequestGuard {
        self.started.store(true, Ordering::Relaxed);
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.touch();
        RequestGuard(self.clone())
    }

    fn snapshot(&self) -> Snapshot {
        Snapshot {
            started: self.started.load(Ordering::Relaxed),
            in_flight: self.in_flight.load(Ordering::Relaxed),
            last_activity: Duration::from_millis(self.last.load(Ordering::Relaxed)),
        }
    }
}

/// One request in flight on a connection; dropped when its response body has been written
/// (or the request was abandoned).
#[derive(Debug)]
pub(super) struct RequestGuard(Arc<Activity>);

impl Drop for RequestGuard {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.0.touch();
    }
}

/// The state [`verdict`] decides on.
#[derive(Debug, Clone, Copy)]
struct Snapshot {
    started: bool,
    in_flight: u32,
    /// Since the connection opened.
    last_activity: Duration,
}

/// What the watchdog does next.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    Close(Expired),
    /// Look again at this time since the connection opened.
    CheckAt(Duration),
}

/// The rule, on its own so it can be tested without clocks. `elapsed` is the time since the
/// connection opened.
fn verdict(elapsed: Duration, now: Snapshot, limits: Timeouts) -> Verdict {
    if now.in_flight > 0 {
        // Never cut a request; when it ends it touches `last`, and the idle clock restarts.
        return Verdict::CheckAt(elapsed + limits.idle);
    }
    if !now.started {
        return if elapsed >= limits.first_request {
            Verdict::Close(Expired::NoRequest)
        } else {
            Verdict::CheckAt(limits.first_request)
        };
    }
    let idle_deadline = now.last_activity + limits.idle;
    if elapsed >= idle_deadline {
        Verdict::Close(Expired::Idle)
    } else {
        Verdict::CheckAt(idle_deadline)
    }
}

/// Resolves when the connection has broken one of the rules (see the module docs). One timer
/// per connection, woken at most once per deadline.
pub(super) async fn expiry(activity: &Activity, limits: Timeouts) -> Expired {
    loop {
        match verdict(activity.opened.elapsed(), activity.snapshot(), limits) {
            Verdict::Close(why) => return why,
            Verdict::CheckAt(at) => tokio::time::sleep_until(activity.opened + at).await,
        }
    }
}

/// A socket that notes in its [`Activity`] every time bytes move.
#[derive(Debug)]
pub(super) struct Metered<IO> {
    io: IO,
    activity: Arc<Activity>,
}

impl<IO> Metered<IO> {
    pub(super) fn new(io: IO, activity: Arc<Activity>) -> Self {
        Metered { io, activity }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Metered<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.io).poll_read(cx, buf);
        if buf.filled().len() > before {
            this.activity.touch();
        }
        polled
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Metered<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.io).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            this.activity.touch();
        }
        polled
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            this.activity.touch();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

/// A response body that keeps its request counted as in flight until hyper drops it, which
/// is once the last frame is written (or the connection is gone): a streamed export is in
/// flight for as long as it streams.
#[derive(Debug)]
pub(super) struct InFlight<B> {
    body: B,
    _request: RequestGuard,
}

impl<B> InFlight<B> {
    pub(super) fn new(body: B, request: RequestGuard) -> Self {
        InFlight {
            body,
            _request: request,
        }
    }
}

impl<B: Body + Unpin> Body for InFlight<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Timeouts = Timeouts {
        first_request: Duration::from_secs(10),
        idle: Duration::from_secs(60),
    };

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    fn state(started: bool, in_flight: u32, last: u64) -> Snapshot {
        Snapshot {
            started,
            in_flight,
            last_activity: secs(last),
        }
    }

    #[test]
    fn a_connection_without_a_request_closes_at_the_first_request_deadline() {
        // Silent, or bytes that never make a request (`P`, half a head): bytes do not count.
        assert_eq!(
            verdict(secs(3), state(false, 0, 3), LIMITS),
            Verdict::CheckAt(secs(10))
        );
        assert_eq!(
            verdict(secs(10), state(false, 0, 9), LIMITS),
            Verdict::Close(Expired::NoRequest)
        );
    }

    #[test]
    fn an_idle_connection_closes_after_the_idle_timeout_since_its_last_activity() {
        assert_eq!(
            verdict(secs(30), state(true, 0, 20), LIMITS),
            Verdict::CheckAt(secs(80))
        );
        assert_eq!(
            verdict(secs(80), state(true, 0, 20), LIMITS),
            Verdict::Close(Expired::Idle)
        );
        // Bytes moving (HTTP/2 frames between requests) keep it open.
        assert_eq!(
            verdict(secs(80), state(true, 0, 79), LIMITS),
            Verdict::CheckAt(secs(139))
        );
    }

    #[test]
    fn a_request_in_flight_is_never_cut_however_long_it_is_silent() {
        for elapsed in [5, 11, 61, 3_600] {
            assert!(matches!(
                verdict(secs(elapsed), state(true, 1, 1), LIMITS),
                Verdict::CheckAt(_)
            ));
        }
    }

    #[test]
    fn a_request_counts_as_in_flight_until_its_response_body_is_dropped() {
        let activity = Activity::new();
        let body = InFlight::new(
            http_body_util::Empty::<axum::body::Bytes>::new(),
            activity.request_started(),
        );
        assert_eq!(activity.snapshot().in_flight, 1);
        assert!(activity.snapshot().started);
        let second = activity.request_started();
        assert_eq!(activity.snapshot().in_flight, 2);
        drop(body);
        assert_eq!(activity.snapshot().in_flight, 1);
        drop(second);
        assert_eq!(activity.snapshot().in_flight, 0);
    }
}
