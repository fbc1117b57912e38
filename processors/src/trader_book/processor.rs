//! The trader book as a [`Processor`]: routes each input to its trader's state, fires due
//! timers first (so the result does not depend on how often the runtime ticks) and again
//! after the input (an order can be routed past its payment window), publishes the capacity
//! of every trader a batch touched once at its end, and tracks which traders to write to the
//! changelog.

use super::calendar::Window;
use super::changelog;
use super::changelog_codec;
use super::handlers::{self, CapacityView, Ctx, Outcome};
use super::settings::BookSettings;
use super::state::TraderState;
use crate::core::{Emit, Input, MasterData, Millis, Processor};
use jivapay_domain::TraderId;
use jivapay_schemas::records::Trader;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use uuid::Uuid;

pub struct TraderBookProcessor {
    master: Arc<dyn MasterData>,
    /// By trader id; ordered, so that `tick` emits in a deterministic order.
    traders: BTreeMap<Uuid, TraderState>,
    /// Traders whose state changed since the last `take_changes`.
    dirty: BTreeSet<Uuid>,
    /// Traders the batch touched, each with the capacity view from before its first input:
    /// `finish_batch` publishes a capacity for those whose view changed.
    capacity_before: BTreeMap<Uuid, CapacityView>,
    /// Per trader, what was last written of each order to the changelog.
    written: BTreeMap<Uuid, BTreeMap<Uuid, changelog::Written>>,
    /// Up to when timers may fire (`Processor::hold_timers_until`); `None`: up to `now`.
    watermark: Option<Millis>,
}

impl TraderBookProcessor {
    pub const NAME: &'static str = "trader-book";

    pub fn new(master: Arc<dyn MasterData>) -> Self {
        Self {
            master,
            traders: BTreeMap::new(),
            dirty: BTreeSet::new(),
            capacity_before: BTreeMap::new(),
            written: BTreeMap::new(),
            watermark: None,
        }
    }

    /// Up to when the timers may fire at `now`.
    fn timers_at(&self, now: Millis) -> Millis {
        self.watermark.map_or(now, |watermark| watermark.min(now))
    }

    /// A trader's state, if the book has one (read-only: for tests, simulations, support).
    pub fn trader(&self, trader_id: TraderId) -> Option<&TraderState> {
        self.traders.get(&trader_id.0)
    }

    /// Like [`Processor::apply`], and also says what became of the input (why a routed order
    /// or a command was refused: that reason is not written anywhere else).
    pub fn apply_explained(&mut self, input: Input, now: Millis) -> (Vec<Emit>, Outcome) {
        let settings = BookSettings::read(&*self.master);
        let trader_id = match &input {
            Input::Routed(r) => r.trader_id.0,
            Input::Command(c) => c.trader_id.0,
            Input::TraderPosting(p) => p.trader_id.0,
            _ => return (Vec::new(), Outcome::NotForThisBook),
        };
        let (out, outcome) = self.run(trader_id, now, &settings, |state, ctx, out| {
            Some(match &input {
                Input::Routed(r) => handlers::on_routed(state, ctx, r, out),
                Input::Command(c) => handlers::on_command(state, ctx, c, out),
                Input::TraderPosting(p) => handlers::on_posting(state, p),
                _ => Outcome::NotForThisBook,
            })
        });
        (out, outcome.unwrap_or(Outcome::NotForThisBook))
    }

    /// Fires `trader_id`'s due timers, then `handle`, then the timers `handle` made due. The
    /// router's view of the trader is taken before the batch's first input of the trader;
    /// `finish_batch` publishes a capacity if it changed.
    fn run(
        &mut self,
        trader_id: Uuid,
        now: Millis,
        settings: &BookSettings,
        handle: impl FnOnce(&mut TraderState, &Ctx, &mut Vec<Emit>) -> Option<Outcome>,
    ) -> (Vec<Emit>, Option<Outcome>) {
        let window = Window::at(now, &settings.time_zone);
        let trader = self.master.trader(trader_id.into());
        let ctx = Ctx {
            trader_id,
            trader: trader.as_ref(),
            settings,
            window,
            now,
            timers_at: self.timers_at(now),
        };
        let state = self.traders.entry(trader_id).or_default();
        if let std::collections::btree_map::Entry::Vacant(before) =
            self.capacity_before.entry(trader_id)
        {
            let requisites = requisite_ids(trader.as_ref());
            before.insert(handlers::capacity_view(state, &requisites, window));
        }

        let mut out = Vec::new();
        let fired = handlers::fire_due(state, &ctx, &mut out);
        let outcome = handle(state, &ctx, &mut out);
        // An order routed after its payment window (a backlog longer than the window) is due
        // at once: it expires in the same step rather than at whichever tick comes next.
        let fired_after = handlers::fire_due(state, &ctx, &mut out);
        let touched =
            fired || fired_after || matches!(outcome, Some(Outcome::Applied | Outcome::Refused(_)));
        if touched {
            self.dirty.insert(trader_id);
        }
        (out, outcome)
    }
}

impl Processor for TraderBookProcessor {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn apply(&mut self, input: Input, now: Millis) -> Vec<Emit> {
        let id = input_id(&input);
        let (out, outcome) = self.apply_explained(input, now);
        match outcome {
            Outcome::Refused(code) => tracing::info!(%id, code, "trader book refused an input"),
            Outcome::Replay => tracing::debug!(%id, "trader book ignored a replayed input"),
            Outcome::Applied | Outcome::NotForThisBook => {}
        }
        out
    }

    fn tick(&mut self, now: Millis) -> Vec<Emit> {
        let settings = BookSettings::read(&*self.master);
        let window = Window::at(now, &settings.time_zone);
        let timers_at = self.timers_at(now);
        let due: Vec<Uuid> = self
            .traders
            .iter()
            .filter(|(_, s)| {
                s.next_deadline().is_some_and(|d| d <= timers_at)
                    || s.needs_new_day_capacity(window)
            })
            .map(|(id, _)| *id)
            .collect();
        let mut out = Vec::new();
        for trader_id in due {
            out.extend(self.run(trader_id, now, &settings, |_, _, _| None).0);
        }
        out
    }

    /// A capacity for each trader whose view the batch changed (or whose published counters
    /// are of an earlier day), with the state as the batch left it: one record per trader
    /// and batch, where it was one per input.
    fn finish_batch(&mut self, now: Millis) -> Vec<Emit> {
        let touched = std::mem::take(&mut self.capacity_before);
        if touched.is_empty() {
            return Vec::new();
        }
        let settings = BookSettings::read(&*self.master);
        let window = Window::at(now, &settings.time_zone);
        let mut out = Vec::new();
        for (trader_id, before) in touched {
            let Some(state) = self.traders.get_mut(&trader_id) else {
                continue;
            };
            let requisites = requisite_ids(self.master.trader(trader_id.into()).as_ref());
            let after = handlers::capacity_view(state, &requisites, window);
            if after == before && !state.needs_new_day_capacity(window) {
                continue;
            }
            out.push(Emit::Capacity(handlers::publish_capacity(
                state, trader_id, after, window, now,
            )));
            self.dirty.insert(trader_id);
        }
        out
    }

    fn take_changes(&mut self) -> Vec<(String, Option<Vec<u8>>)> {
        let mut out = Vec::new();
        for trader_id in std::mem::take(&mut self.dirty) {
            let written = self.written.entry(trader_id).or_default();
            out.extend(changelog::changes(
                trader_id,
                self.traders.get_mut(&trader_id),
                written,
            ));
        }
        out
    }

    fn next_deadline(&self) -> Option<Millis> {
        self.traders
            .values()
            .filter_map(TraderState::next_deadline)
            .min()
    }

    fn hold_timers_until(&mut self, watermark: Millis) {
        self.watermark = Some(self.watermark.map_or(watermark, |w| w.max(watermark)));
    }

    fn restore(&mut self, key: &str, state: Option<&[u8]>) {
        let Some(key) = changelog::parse_key(key) else {
            tracing::error!(
                key,
                "trader book changelog key is not a trader or order; skipped"
            );
            return;
        };
        match key {
            changelog::Key::Trader(trader_id) => match state.map(changelog_codec::decode_trader) {
                None => {
                    self.traders.remove(&trader_id);
                    self.written.remove(&trader_id);
                }
                Some(Ok(record)) => {
                    let state = self.traders.entry(trader_id).or_default();
                    if changelog::restore_trader(state, record) {
                        // Its orders came in the trader's record: give them their own.
                        self.dirty.insert(trader_id);
                    }
                }
                Some(Err(error)) => {
                    tracing::error!(%trader_id, %error, "unreadable trader book state; skipped");
                }
            },
            changelog::Key::Order(trader_id, order_id) => {
                let record = match state.map(changelog_codec::decode_order) {
                    None => None,
                    Some(Ok(record)) => Some(record),
                    Some(Err(error)) => {
                        tracing::error!(%trader_id, %order_id, %error, "unreadable order record; skipped");
                        return;
                    }
                };
                changelog::restore_order(
                    self.traders.entry(trader_id).or_default(),
                    self.written.entry(trader_id).or_default(),
                    order_id,
                    record,
                );
            }
        }
    }
}

/// The requisites of a trader in master data.
fn requisite_ids(trader: Option<&Trader>) -> BTreeSet<Uuid> {
    trader
        .iter()
        .flat_map(|t| t.requisites.iter().map(|r| r.requisite_id.0))
        .collect()
}

/// The id that identifies an input in logs.
fn input_id(input: &Input) -> Uuid {
    match input {
        Input::Routed(r) => r.order_id.0,
        Input::Command(c) => c.command_id,
        Input::TraderPosting(p) => p.posting_id,
        Input::Requested(r) => r.order_id.0,
        Input::Screened(s) => s.order_id.0,
        Input::Event(e) => e.event_id,
        Input::StorePosting(p) => p.posting_id,
    }
}
