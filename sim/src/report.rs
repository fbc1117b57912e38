//! How a run reads on a terminal: one summary line, and for a broken invariant its name, what
//! broke it, the seed and the command that replays it exactly.

use crate::faults::CRASH_POINTS;
use crate::sim::Outcome;
use std::fmt::Write;

impl Outcome {
    pub fn passed(&self) -> bool {
        self.findings.is_empty()
    }

    /// The command that replays this run.
    pub fn reproduce(&self) -> String {
        let mut command = format!(
            "cargo run -p jivapay-sim --release -- --seed {} --orders {}",
            self.config.seed, self.config.orders
        );
        let faults = self.config.faults.arguments();
        if faults != "--faults default" {
            let _ = write!(command, " {faults}");
        }
        if !self.config.dedup {
            command.push_str(" --no-dedup");
        }
        for known in &self.config.known {
            let _ = write!(command, " --known {known}");
        }
        command
    }

    /// Everything a run decided, without timings: two runs of one seed give the same.
    pub fn fingerprint(&self) -> String {
        let findings: Vec<String> = self
            .findings
            .iter()
            .map(|f| format!("{}@{}: {}", f.invariant, f.at, f.detail))
            .collect();
        format!(
            "{:?} {:?} {} {:?} {} {}",
            self.statuses,
            self.stats,
            self.simulated_ms,
            findings,
            self.replayed_batches,
            self.orders
        )
    }

    /// One line: what ran and how it ended.
    pub fn summary(&self) -> String {
        let statuses: Vec<String> = self
            .statuses
            .iter()
            .map(|(status, n)| format!("{status} {n}"))
            .collect();
        let s = &self.stats;
        let crashes: u64 = s.crashes.iter().sum();
        let per_point: Vec<String> = CRASH_POINTS
            .iter()
            .zip(s.crashes)
            .filter(|(_, n)| *n > 0)
            .map(|(p, n)| format!("{p:?} {n}"))
            .collect();
        format!(
            "seed {}: {} orders, {:.0} s simulated in {:.2} s ({:.0} orders/s) — {} — {} batches replayed; {crashes} crashes ({}), {} freezes ({} past the session), {} rebalances, {} restores, {} records resent, {} producer duplicates, {} records dropped by origin, {} fenced records ignored on restore, {} fenced batches, {} commits refused, {} disturbed, {} leases, repaired: {} keys, {} checkpoints, late writes: {} applied, {} kept by a sink, {} ignored; {} second holders (at most {} open twice at once) — {}",
            self.config.seed,
            self.orders,
            self.simulated_ms as f64 / 1000.0,
            self.wall.as_secs_f64(),
            self.orders as f64 / self.wall.as_secs_f64().max(1e-9),
            statuses.join(", "),
            self.replayed_batches,
            per_point.join(", "),
            s.freezes,
            s.zombies,
            s.rebalances,
            s.restores,
            s.resent,
            s.duplicates,
            s.dropped,
            s.fenced_on_restore,
            s.fenced_batches,
            s.commits_refused,
            s.disturbed,
            s.leases,
            s.rewritten,
            s.checkpoints,
            s.late_applied,
            s.late_kept,
            s.late_ignored,
            s.second_holders,
            s.open_twice,
            if !self.passed() {
                "FAILED".to_owned()
            } else if self.stats.known.is_empty() {
                "ok".to_owned()
            } else {
                let known: Vec<String> = self.stats.known.iter().map(|(k, (n, _))| format!("{k} ×{n}")).collect();
                format!("ok but for known failures: {}", known.join(", "))
            },
        )
    }

    /// Every broken invariant, with the seed and how to replay it.
    pub fn failure(&self) -> String {
        let mut out = String::new();
        for (invariant, (count, first)) in &self.stats.known {
            let _ = writeln!(
                out,
                "known `{invariant}`: {count} time(s), first: {}",
                first.replace('\n', "\n  ")
            );
        }
        for finding in &self.findings {
            let _ = writeln!(
                out,
                "invariant `{}` broken (seed {}, at {:.3} s simulated):\n  {}",
                finding.invariant,
                self.config.seed,
                finding.at as f64 / 1000.0,
                finding.detail.replace('\n', "\n  ")
            );
        }
        for example in &self.stats.late_examples {
            let _ = writeln!(out, "late write applied: {example}");
        }
        let _ = write!(out, "reproduce: {}", self.reproduce());
        out
    }
}
