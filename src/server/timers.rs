//! The loop's timers: idle connections, late PROXY headers, the memory
//! budget recheck, resuming the listeners, the shutdown deadline, the
//! periodic stats line, the watchdog ping, and bytes held by a fault
//! (`--fault delay`, `rate`) that ripen.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

use tracing::{debug, info};

use super::Worker;
use crate::config::Config;
use crate::conn::Turn;
use crate::stats::{self, Counters};

/// The loop's own deadlines and the state of its periodic work.
#[derive(Debug)]
pub(super) struct Timers {
    /// Shutdown: when the connections that have not finished are closed.
    pub(super) deadline: Option<Instant>,
    /// When the connections the memory budget stopped are next looked at,
    /// and whether any were stopped at the last look (for the log).
    budget_check_at: Instant,
    budget_limited: bool,
    stats_due: Option<Instant>,
    /// The counters and the time of the last stats line.
    stats_before: (Counters, Instant),
    /// Worker 0 only, with `WATCHDOG_USEC`: the next watchdog ping.
    watchdog_due: Option<Instant>,
    pub(super) started: Instant,
    /// Connections with bytes a fault holds, by the instant the first of
    /// them ripens: a heap, so a wakeup costs a logarithm of the number of
    /// delayed connections, never a walk over them. An entry may outlive
    /// its connection (or its key's reuse): its turn then finds nothing
    /// ripe.
    pub(super) faults: BinaryHeap<Reverse<(Instant, usize)>>,
}

impl Timers {
    pub(super) fn new(id: usize, cfg: &Config, now: Instant) -> Timers {
        let first = id == 0;
        Timers {
            deadline: None,
            budget_check_at: now,
            budget_limited: false,
            stats_due: cfg.stats_interval.filter(|_| first).map(|i| now + i),
            stats_before: (Counters::default(), now),
            watchdog_due: cfg.watchdog.filter(|_| first).map(|_| now),
            started: now,
            faults: BinaryHeap::new(),
        }
    }
}

impl Worker {
    pub(super) fn next_timeout(&self) -> Option<Duration> {
        let tables = &self.tables;
        let timers = &self.timers;
        let idle_due = self
            .cfg
            .idle_timeout
            .and_then(|idle| Some(tables.idle.oldest()?.1 + idle));
        let due = [
            idle_due,
            self.intake.resume_at,
            timers.deadline.filter(|_| !tables.conns.is_empty()),
            timers.stats_due,
            self.res.pipes.trim_due(),
            timers.watchdog_due,
            tables
                .headers
                .oldest()
                .map(|(_, at)| at + self.opening_timeout()),
            (self.res.counters.budget_paused > 0).then_some(timers.budget_check_at),
            timers.faults.peek().map(|Reverse((at, _))| *at),
            self.udp.next_due(),
        ];
        due.into_iter()
            .flatten()
            .min()
            .map(|at| at.saturating_duration_since(self.now))
    }

    pub(super) fn on_timers(&mut self) {
        let now = self.now;
        if self.udp.next_due().is_some_and(|at| at <= now) {
            let (budget, counters) = (&self.shared.budget, &mut self.res.counters);
            self.udp.on_timers(now, budget, counters, self.cfg.trace);
        }
        if let Some(idle) = self.cfg.idle_timeout {
            while let Some((key, at)) = self.tables.idle.oldest() {
                if at + idle > now {
                    break;
                }
                if self.cfg.trace {
                    if let Some(conn) = self.tables.conns.get(key) {
                        let peer = conn.peer();
                        info!(target: "trace", %peer, "closing {peer} after {}s idle", idle.as_secs_f64());
                    }
                }
                self.tables.idle.remove(key);
                self.close(key);
            }
        }
        self.res.pipes.trim(now);
        self.ripen_faults();
        self.expire_openings();
        self.recheck_budget();
        if self.intake.resume_at.is_some_and(|at| at <= now) && self.timers.deadline.is_none() {
            self.resume_accepting();
        }
        if self.timers.deadline.is_some_and(|at| at <= now) && !self.tables.conns.is_empty() {
            self.cut_at_deadline();
        }
        let timers = &mut self.timers;
        if let (Some(due), Some(interval)) = (timers.watchdog_due, self.cfg.watchdog) {
            if due <= now {
                crate::notify::watchdog();
                timers.watchdog_due = Some(now + interval);
            }
        }
        if let (Some(due), Some(interval)) = (timers.stats_due, self.cfg.stats_interval) {
            if due <= now {
                self.print_stats(now);
                self.timers.stats_due = Some(now + interval);
            }
        }
    }

    /// Hand [`Turn::Timer`] to the connections whose held bytes ripened.
    fn ripen_faults(&mut self) {
        while let Some(&Reverse((at, key))) = self.timers.faults.peek() {
            if at > self.now {
                break;
            }
            self.timers.faults.pop();
            let Some(conn) = self.tables.conns.get_mut(key) else {
                continue;
            };
            let io = &mut self.res.lend(&self.cfg, &self.shared, self.now);
            let outcome = conn.handle(Turn::Timer, io);
            self.apply(key, outcome);
        }
        if self.timers.faults.is_empty() {
            self.timers.faults.shrink_to_fit();
        }
    }

    /// Connections stopped by the memory budget wait for no event of their
    /// own (memory may come free in another worker), so they are looked at
    /// every `BUDGET_RECHECK` while there are any; and the log says when
    /// the budget starts and stops being the reason reads wait.
    fn recheck_budget(&mut self) {
        const BUDGET_RECHECK: Duration = Duration::from_millis(10);
        let limited = self.res.counters.budget_paused > 0;
        if !limited {
            if !self.tables.starved.is_empty() {
                self.tables.starved.clear(); // only recovered ones were left
            }
        } else if self.timers.budget_check_at <= self.now {
            self.timers.budget_check_at = self.now + BUDGET_RECHECK;
            for key in std::mem::take(&mut self.tables.starved) {
                let Some(conn) = self.tables.conns.get_mut(key) else {
                    continue;
                };
                let io = &mut self.res.lend(&self.cfg, &self.shared, self.now);
                let outcome = conn.handle(Turn::Recheck, io);
                if conn.is_starved() {
                    self.tables.starved.insert(key);
                }
                self.apply(key, outcome);
            }
        }
        let limited = self.res.counters.budget_paused > 0;
        if limited != self.timers.budget_limited {
            self.timers.budget_limited = limited;
            let budget = &self.shared.budget;
            if limited {
                debug!(
                    worker = self.id,
                    connections = self.res.counters.budget_paused,
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
                total.add(&self.res.counters);
            } else {
                total.add(&p.load());
            }
        }
        let (before, at) = self.timers.stats_before;
        let line = stats::line(&total, &before, now.duration_since(at));
        if self.cfg.log_json {
            info!(target: "stats", "{line}");
        } else {
            crate::console::err(format_args!("{line}"));
        }
        crate::notify::status(&line);
        self.timers.stats_before = (total, now);
    }
}
