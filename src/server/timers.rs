//! The loop's timers: idle connections, resuming the listeners, the
//! shutdown deadline, the periodic stats line and the watchdog ping.

use std::time::{Duration, Instant};

use tracing::{debug, info, warn};

use super::Worker;
use crate::proxy;
use crate::stats::{self, Counters};

impl Worker {
    pub(super) fn next_timeout(&self) -> Option<Duration> {
        let idle_due = self
            .cfg
            .idle_timeout
            .and_then(|idle| Some(self.idle.oldest()?.1 + idle));
        let due = [
            idle_due,
            self.resume_at,
            self.deadline.filter(|_| !self.conns.is_empty()),
            self.stats_due,
            self.pipes.trim_due(),
            self.watchdog_due,
            self.headers
                .oldest()
                .map(|(_, at)| at + proxy::HEADER_TIMEOUT),
            (self.counters.budget_paused > 0).then_some(self.budget_check_at),
        ];
        due.into_iter()
            .flatten()
            .min()
            .map(|at| at.saturating_duration_since(self.now))
    }

    pub(super) fn on_timers(&mut self) {
        let now = self.now;
        if let Some(idle) = self.cfg.idle_timeout {
            while let Some((key, at)) = self.idle.oldest() {
                if at + idle > now {
                    break;
                }
                if self.cfg.trace {
                    if let Some(conn) = self.conns.get(key) {
                        let peer = conn.peer();
                        info!(target: "trace", %peer, "closing {peer} after {}s idle", idle.as_secs_f64());
                    }
                }
                self.idle.remove(key);
                self.close(key);
            }
        }
        self.pipes.trim(now);
        while let Some((key, at)) = self.headers.oldest() {
            if at + proxy::HEADER_TIMEOUT > now {
                break;
            }
            if let Some(conn) = self.conns.get(key) {
                let peer = conn.peer();
                debug!(%peer, "closing: no PROXY header within {:?}", proxy::HEADER_TIMEOUT);
            }
            self.counters.refused_proxy += 1;
            self.close(key);
        }
        self.recheck_budget();
        if self.resume_at.is_some_and(|at| at <= now) && self.deadline.is_none() {
            self.resume_accepting();
        }
        if self.deadline.is_some_and(|at| at <= now) && !self.conns.is_empty() {
            let queued = self.conns.iter().filter(|(_, c)| c.pending() > 0).count();
            warn!(
                open = self.conns.len(),
                queued, "shutdown timeout: closing connections that have not finished"
            );
            let keys: Vec<usize> = self.conns.iter().map(|(k, _)| k).collect();
            for key in keys {
                self.close(key);
            }
        }
        if let (Some(due), Some(interval)) = (self.watchdog_due, self.cfg.watchdog) {
            if due <= now {
                crate::notify::watchdog();
                self.watchdog_due = Some(now + interval);
            }
        }
        if let (Some(due), Some(interval)) = (self.stats_due, self.cfg.stats_interval) {
            if due <= now {
                self.print_stats(now);
                self.stats_due = Some(now + interval);
            }
        }
    }

    /// Connections stopped by the memory budget wait for no event of their
    /// own (memory may come free in another worker), so they are looked at
    /// every `BUDGET_RECHECK` while there are any; and the log says when
    /// the budget starts and stops being the reason reads wait.
    fn recheck_budget(&mut self) {
        const BUDGET_RECHECK: Duration = Duration::from_millis(10);
        let limited = self.counters.budget_paused > 0;
        if limited && self.budget_check_at <= self.now {
            self.budget_check_at = self.now + BUDGET_RECHECK;
            let starved: Vec<usize> = self
                .conns
                .iter()
                .filter(|(_, c)| c.is_starved())
                .map(|(k, _)| k)
                .collect();
            for key in starved {
                let step = self.conns[key].recheck(&mut io!(self));
                self.apply(key, step);
            }
        }
        let limited = self.counters.budget_paused > 0;
        if limited != self.budget_limited {
            self.budget_limited = limited;
            let budget = &self.shared.budget;
            if limited {
                debug!(
                    worker = self.id,
                    connections = self.counters.budget_paused,
                    held = budget.used(),
                    max_memory = budget.limit(),
                    "memory budget reached (--max-memory): not reading from the connections holding the most until they drain"
                );
            } else {
                debug!(
                    worker = self.id,
                    held = budget.used(),
                    max_memory = budget.limit(),
                    "memory budget: reading from every connection again"
                );
            }
        }
    }

    /// The periodic stats line: every worker's last published counters.
    fn print_stats(&mut self, now: Instant) {
        let mut total = Counters::default();
        for (i, p) in self.shared.published.iter().enumerate() {
            if i == self.id {
                total.add(&self.counters);
            } else {
                total.add(&p.load());
            }
        }
        let (before, at) = self.stats_before;
        let line = stats::line(&total, &before, now.duration_since(at));
        if self.cfg.log_json {
            info!(target: "stats", "{line}");
        } else {
            crate::console::err(format_args!("{line}"));
        }
        crate::notify::status(&line);
        self.stats_before = (total, now);
    }
}
