//! Who gets which live event: an index from room to the clients watching it, kept in step with every
//! client's [`Watch`].
//!
//! Asking each of a thousand clients "do you watch this room?" for each of the hundreds of readings of a
//! 50 ms batch is half a million questions per batch at 10,000 readings/s. The index asks once per reading:
//! the cost of a batch is its readings plus the deliveries it makes, whatever the number of clients. It is
//! derived from the [`Watch`]es alone and answers exactly as [`Watch::covers`] does (property-tested below).

use std::collections::{HashMap, HashSet};

use setpoint_control::{SensorId, SensorReading};

use super::state::{ClientId, Watch};

/// The index. Kept by the shell, fed with the state's `Output::Watch`.
#[derive(Debug, Default)]
pub struct Fanout {
    watches: HashMap<ClientId, Watch>,
    /// Clients that watch a room, by room (clients with [`Watch::Rooms`] only).
    by_room: HashMap<SensorId, Vec<ClientId>>,
    /// Clients that watch every room.
    everything: HashSet<ClientId>,
}

/// One batch of readings, routed.
#[derive(Debug, Default, PartialEq)]
pub struct Routed {
    /// The clients that take the whole batch (they watch every room).
    pub whole: Vec<ClientId>,
    /// The others' part of the batch, each in the batch's order.
    pub parts: HashMap<ClientId, Vec<SensorReading>>,
}

impl Fanout {
    /// From now on `client` watches `watch`.
    pub fn set(&mut self, client: ClientId, watch: Watch) {
        self.remove(client);
        match &watch {
            Watch::Nothing => return,
            Watch::All => {
                self.everything.insert(client);
            }
            Watch::Rooms(rooms) => {
                for room in rooms {
                    self.by_room.entry(*room).or_default().push(client);
                }
            }
        }
        self.watches.insert(client, watch);
    }

    /// `client` is gone.
    pub fn remove(&mut self, client: ClientId) {
        self.everything.remove(&client);
        if let Some(Watch::Rooms(rooms)) = self.watches.remove(&client) {
            for room in rooms {
                if let Some(clients) = self.by_room.get_mut(&room) {
                    clients.retain(|c| *c != client);
                    if clients.is_empty() {
                        self.by_room.remove(&room);
                    }
                }
            }
        }
    }

    /// The clients watching `room`: those of every room, then those of this one.
    pub fn watching(&self, room: SensorId) -> impl Iterator<Item = ClientId> + '_ {
        self.everything
            .iter()
            .chain(self.by_room.get(&room).into_iter().flatten())
            .copied()
    }

    /// Who gets what of `items`.
    pub fn route(&self, items: &[SensorReading]) -> Routed {
        let mut routed = Routed {
            whole: self.everything.iter().copied().collect(),
            parts: HashMap::new(),
        };
        for item in items {
            for client in self.by_room.get(&item.sensor).into_iter().flatten() {
                routed.parts.entry(*client).or_default().push(*item);
            }
        }
        routed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn watch() -> impl Strategy<Value = Watch> {
        prop_oneof![
            Just(Watch::Nothing),
            Just(Watch::All),
            proptest::collection::vec(0..8i32, 1..5).prop_map(Watch::rooms),
        ]
    }

    proptest! {
        /// However watches change and clients leave, the index routes every reading to exactly the clients
        /// whose watch covers its room, in the batch's order.
        #[test]
        fn the_index_routes_as_each_watch_covers(
            changes in proptest::collection::vec((0..6u64, proptest::option::of(watch())), 1..40),
            rooms in proptest::collection::vec(0..8i32, 0..30),
        ) {
            let mut fanout = Fanout::default();
            let mut reference: HashMap<ClientId, Watch> = HashMap::new();
            for (client, change) in changes {
                match change {
                    Some(w) => { fanout.set(client, w.clone()); reference.insert(client, w); }
                    None => { fanout.remove(client); reference.remove(&client); }
                }
            }
            let items: Vec<SensorReading> = rooms.iter().enumerate().map(|(t, &sensor)| SensorReading { sensor, t_ms: t as i64, temperature: 20.0 }).collect();
            let routed = fanout.route(&items);
            for client in 0..6u64 {
                let watch = reference.get(&client).cloned().unwrap_or_default();
                let want: Vec<SensorReading> = items.iter().copied().filter(|i| watch.covers(i.sensor)).collect();
                let got: Vec<SensorReading> = if routed.whole.contains(&client) {
                    items.clone()
                } else {
                    routed.parts.get(&client).cloned().unwrap_or_default()
                };
                prop_assert_eq!(got, want, "client {}", client);
                for room in 0..8 {
                    let listed = fanout.watching(room).filter(|c| *c == client).count();
                    prop_assert_eq!(listed, usize::from(watch.covers(room)), "client {} room {}", client, room);
                }
            }
        }
    }
}
