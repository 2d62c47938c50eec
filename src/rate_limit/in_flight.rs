//! Requests in flight per client: one client (a user, or a network) may not hold more than its
//! share of the request slots, however slowly it sends or reads.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use super::ClientKey;

/// Counts of requests in flight, per client. An entry lives only while its client has a
/// request in flight, so the map holds at most as many keys as there are requests in flight.
pub struct InFlight {
    max: usize,
    counts: Arc<Mutex<HashMap<ClientKey, usize>>>,
}

/// One admitted request; dropping it (the request finished, failed or was cancelled) frees
/// the slot.
pub struct Slot {
    key: ClientKey,
    counts: Arc<Mutex<HashMap<ClientKey, usize>>>,
}

impl InFlight {
    /// At most `max` requests in flight per client; `None` when `max` is 0 (no cap).
    pub fn new(max: usize) -> Option<Self> {
        (max > 0).then(|| Self {
            max,
            counts: Arc::default(),
        })
    }

    /// A slot for one more request of `key`, or `None` when it already has `max` in flight.
    pub fn enter(&self, key: ClientKey) -> Option<Slot> {
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let count = counts.entry(key).or_insert(0);
        if *count >= self.max {
            return None;
        }
        *count += 1;
        Some(Slot {
            key,
            counts: Arc::clone(&self.counts),
        })
    }

    /// Clients with a request in flight now.
    pub fn clients(&self) -> usize {
        self.counts.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = counts.get_mut(&self.key) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_gets_at_most_max_slots_and_others_are_unaffected() {
        let in_flight = InFlight::new(2).unwrap();
        let a = ClientKey::User(1);
        let first = in_flight.enter(a).unwrap();
        let _second = in_flight.enter(a).unwrap();
        assert!(in_flight.enter(a).is_none());
        assert!(in_flight.enter(ClientKey::User(2)).is_some());
        drop(first);
        assert!(
            in_flight.enter(a).is_some(),
            "a finished request frees its slot"
        );
    }

    #[test]
    fn idle_clients_leave_no_entry() {
        let in_flight = InFlight::new(1).unwrap();
        drop(in_flight.enter(ClientKey::User(7)));
        assert_eq!(in_flight.clients(), 0);
        assert!(InFlight::new(0).is_none(), "0 disables the cap");
    }
}
