//! Choosing what a client watches: a `view` (a page of the rooms that match a query and filters, in an
//! order) or a `subscribe` (rooms by id, or every room live). Part of [`HubState`]: the answer, the new
//! [`Watch`] and the history of the rooms new to the client are one input, so nothing happens between them.

use setpoint_control::{SensorId, TimeMs};
use setpoint_wire::schedule::{ListPart, SchedulesMsg};
use setpoint_wire::view::{ViewMsg, ViewRequest, ViewSort};
use setpoint_wire::ws::ServerMessage;

use super::state::{watched_steps, ClientId, HubState, Output, Watch};

/// What a room's order is under [`ViewSort::Attention`]: the smallest comes first.
struct AttentionKey {
    /// 0 stale, 1 out of band, 2 the rest.
    class: u8,
    /// Minus the distance from the desired temperature (the farthest first), 0 without a reading.
    nearness: f64,
    sensor: SensorId,
}

impl HubState {
    /// Answers a client's `view` and makes its page what it watches.
    pub fn view(&mut self, client: ClientId, req: &ViewRequest, now: TimeMs) {
        if !self.is_client(client) {
            return;
        }
        let size = req.page_size.max(1) as usize;
        let (total, page, shown) =
            if req.query.trim().is_empty() && req.filters.is_empty() && req.sort == ViewSort::Id {
                // Every room by id: the page is a stretch of the sorted set, and the count is known; no
                // room outside the page is looked at.
                let total = self.history.sensor_count();
                let page = last_page_at_most(req.page, total, size);
                let shown = self.history.sensors().skip(page * size).take(size).collect();
                (total, page, shown)
            } else {
                let mut ids: Vec<SensorId> = self
                    .history
                    .sensors()
                    .filter(|&s| req.matches_query(s))
                    .filter(|&s| req.filters.iter().all(|&f| self.passes(s, f, now)))
                    .collect();
                if req.sort == ViewSort::Attention {
                    let mut keyed: Vec<AttentionKey> = ids.iter().map(|&s| self.attention(s, now)).collect();
                    keyed.sort_by(|a, b| {
                        (a.class.cmp(&b.class))
                            .then(a.nearness.total_cmp(&b.nearness))
                            .then(a.sensor.cmp(&b.sensor))
                    });
                    ids = keyed.into_iter().map(|k| k.sensor).collect();
                }
                let page = last_page_at_most(req.page, ids.len(), size);
                let shown = ids.iter().skip(page * size).take(size).copied().collect();
                (ids.len(), page, shown)
            };
        let pages = total.div_ceil(size).max(1);
        let shown: Vec<SensorId> = shown;
        self.watch(
            client,
            Watch::rooms(shown.iter().copied()),
            &shown,
            total,
            page,
            pages,
        );
    }

    /// Answers a client's `subscribe`: these rooms (known or not yet), or with `None` every room, live
    /// only.
    pub fn subscribe(&mut self, client: ClientId, sensors: Option<Vec<SensorId>>) {
        if !self.is_client(client) {
            return;
        }
        match sensors {
            None => {
                let total = self.history.sensor_count();
                self.watch(client, Watch::All, &[], total, 0, 1);
            }
            Some(list) => {
                let mut seen = std::collections::HashSet::new();
                let list: Vec<SensorId> = list.into_iter().filter(|s| seen.insert(*s)).collect();
                let known: Vec<SensorId> = list.iter().copied().filter(|&s| self.history.knows(s)).collect();
                self.watch(client, Watch::rooms(list), &known, known.len(), 0, 1);
            }
        }
    }

    /// Makes `next` what `client` watches, in one step: the answer with `shown`'s summaries, the watch for
    /// the shell, then the history of every room it did not watch before. Readings not yet flushed are in
    /// no history: they reach the client with the next flush, as live.
    fn watch(
        &mut self,
        client: ClientId,
        next: Watch,
        shown: &[SensorId],
        total: usize,
        page: usize,
        pages: usize,
    ) {
        let before = self.watches.get(&client).cloned().unwrap_or_default();
        let fresh = match &next {
            Watch::All | Watch::Nothing => Vec::new(),
            Watch::Rooms(set) => {
                let mut ids: Vec<SensorId> = set.iter().copied().collect();
                ids.sort_unstable();
                // Viewed rooms are the last the history's budget would thin (before their history is
                // taken, so a newly watched room's history is what it keeps from now on).
                self.history.viewed(ids.iter().copied());
                before.fresh_in(&ids)
            }
        };
        let answer = ViewMsg {
            sensors: shown.iter().filter_map(|&s| self.sensor_view(s)).collect(),
            fresh: fresh.clone(),
            total: total as u64,
            page: page as u32,
            pages: pages as u32,
        };
        self.outputs.push(Output::Watch(client, next.clone()));
        self.send(client, ServerMessage::View(answer));
        for frame in self.history.backfill(&fresh) {
            self.send(client, frame);
        }
        // The next steps shown are those of the rooms watched: the new ones' come with the schedules.
        if !fresh.is_empty() {
            let steps = watched_steps(self.schedules.next_steps(), &next);
            self.send(
                client,
                ServerMessage::Schedules(SchedulesMsg::steps(steps, ListPart::Unchanged)),
            );
        }
        self.watches.insert(client, next);
    }

    fn attention(&self, sensor: SensorId, now: TimeMs) -> AttentionKey {
        use setpoint_wire::api::SensorFilter;
        let class = if self.passes(sensor, SensorFilter::Stale, now) {
            0
        } else if self.passes(sensor, SensorFilter::OutOfBand, now) {
            1
        } else {
            2
        };
        let nearness = match (self.history.newest(sensor), self.setpoint(sensor)) {
            (Some(r), Some(sp)) => -(r.temperature - sp.desired).abs(),
            _ => 0.0,
        };
        AttentionKey {
            class,
            nearness,
            sensor,
        }
    }
}

/// The page asked for, or the last one when the rooms end before it.
fn last_page_at_most(asked: u32, total: usize, size: usize) -> usize {
    (asked as usize).min(total.div_ceil(size).max(1) - 1)
}
