//! The lifecycle of one supervised child as a pure function: [`next`]`(state, event) ->
//! actions`.
//!
//! Nothing here touches a process, a clock or a random source: the driver (`unit.rs`) passes
//! the time and the jitter in, and carries out the returned [`Action`]s. That is what lets the
//! whole restart policy be tested below without spawning anything, and what keeps the rules in
//! one place:
//! - the first restart after a crash is immediate; later ones back off exponentially with
//!   jitter, capped; the count resets once a child has stayed up for `stable_after`;
//! - a failure to exec is its own state, retried only at the backoff cap, never in a loop;
//! - once shutdown has begun, nothing restarts;
//! - a child that fails `liveness_failures` consecutive probes once ready (or after its
//!   startup timeout) is stopped and started again.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::retry::Backoff;

/// How a child ended, as the reaper saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ExitKind {
    Code(i32),
    Signal(i32),
}

impl std::fmt::Display for ExitKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Code(c) => write!(f, "exit code {c}"),
            Self::Signal(s) => {
                let name = nix::sys::signal::Signal::try_from(*s)
                    .map(|s| s.as_str())
                    .unwrap_or("?");
                write!(f, "signal {s} ({name})")
            }
        }
    }
}

/// The restart and stop policy of one child.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    /// Waits between restarts of a crash run, after the first restart (which is immediate):
    /// the project's one backoff type, doubling from its `first` up to its `max`.
    pub backoff: Backoff,
    /// A child that lived this long is "stable": its next crash restarts at once again.
    pub stable_after: Duration,
    /// Time between SIGTERM to the group and SIGKILL to the group.
    pub grace_period: Duration,
    /// The same, for a child stopped because it failed its liveness probes (1 s by default): it has already
    /// been broken for several probe periods, so it gets a short grace of its own rather than
    /// the graceful-shutdown one (the shorter of the two applies).
    pub unhealthy_grace: Duration,
    pub liveness_failures: u32,
    /// Probe failures before the first success only count after this long.
    pub startup_timeout: Duration,
    /// Whether the child has a readiness probe; without one it is ready once spawned.
    pub has_probe: bool,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            backoff: restart_backoff(Duration::from_millis(250), Duration::from_secs(30)),
            stable_after: Duration::from_secs(10),
            grace_period: Duration::from_secs(10),
            unhealthy_grace: Duration::from_secs(1),
            liveness_failures: 3,
            startup_timeout: Duration::from_secs(120),
            has_probe: false,
        }
    }
}

/// What to do once a stopping child has exited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterStop {
    Stay,
    Restart,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Phase {
    /// Not started yet: its dependencies are not ready.
    Waiting,
    /// A spawn was requested and has not been confirmed.
    Starting,
    Running {
        pid: i32,
        since: Instant,
        ready: bool,
        /// Passed a probe since this start: failures now mean "dead", not "still starting".
        was_ready: bool,
        failures: u32,
    },
    /// Crashed; restarts at `until`.
    Backoff {
        until: Instant,
    },
    /// The binary could not be executed; retried at `until` (the backoff cap).
    ExecFailed {
        until: Instant,
    },
    Stopping {
        pid: i32,
        killed: bool,
        then: AfterStop,
    },
    Stopped,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitState {
    pub phase: Phase,
    /// Restarts since kubesup started (what `kubesup status` shows).
    pub restarts: u32,
    /// Crashes since the last stable run; drives the backoff.
    pub consecutive: u32,
    pub last_exit: Option<ExitKind>,
    pub last_error: Option<String>,
    /// Shutdown has begun: nothing restarts any more.
    pub shutting_down: bool,
}

impl Default for UnitState {
    fn default() -> Self {
        Self {
            phase: Phase::Waiting,
            restarts: 0,
            consecutive: 0,
            last_exit: None,
            last_error: None,
            shutting_down: false,
        }
    }
}

impl UnitState {
    pub fn pid(&self) -> Option<i32> {
        match self.phase {
            Phase::Running { pid, .. } | Phase::Stopping { pid, .. } => Some(pid),
            _ => None,
        }
    }

    pub fn ready(&self) -> bool {
        matches!(self.phase, Phase::Running { ready: true, .. })
    }

    /// What `kubesup status` shows of the phase.
    pub fn label(&self) -> State {
        match self.phase {
            Phase::Waiting => State::Waiting,
            Phase::Starting | Phase::Running { ready: false, .. } => State::Starting,
            Phase::Running { ready: true, .. } => State::Running,
            Phase::Backoff { .. } if self.consecutive >= 3 => State::CrashLoop,
            Phase::Backoff { .. } => State::Backoff,
            Phase::ExecFailed { .. } => State::ExecFailed,
            Phase::Stopping { .. } => State::Stopping,
            Phase::Stopped => State::Stopped,
        }
    }
}

/// A child's state as `kubesup status` reports it: the operator's view of [`Phase`], without
/// its timers and PIDs. Serialized in kebab-case (`crash-loop`, `exec-failed`), which is what
/// the status table and `--json` print and what scripts match on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum State {
    /// Its dependencies are not ready yet.
    Waiting,
    /// Spawned, not ready yet.
    Starting,
    /// Ready.
    Running,
    /// Crashed, restarting after a backoff.
    Backoff,
    /// Crashed three times or more in a row without a stable run.
    CrashLoop,
    /// The binary could not be executed; retried at the backoff cap.
    ExecFailed,
    /// Being stopped.
    Stopping,
    /// Stopped, and not restarting.
    Stopped,
}

impl State {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Waiting => "waiting",
            Self::Starting => "starting",
            Self::Running => "running",
            Self::Backoff => "backoff",
            Self::CrashLoop => "crash-loop",
            Self::ExecFailed => "exec-failed",
            Self::Stopping => "stopping",
            Self::Stopped => "stopped",
        }
    }
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Every dependency is ready (sent once, for the first start).
    DepsReady,
    Spawned {
        pid: i32,
        at: Instant,
    },
    SpawnFailed {
        at: Instant,
        error: String,
    },
    Exited {
        pid: i32,
        exit: ExitKind,
        at: Instant,
    },
    Probe {
        pid: i32,
        ok: bool,
        at: Instant,
    },
    Timer {
        at: Instant,
    },
    /// Stop gracefully and stay stopped.
    Stop {
        at: Instant,
    },
    /// SIGKILL now (a second shutdown signal).
    Kill,
    /// Restart with the current spec (config or certificate changed).
    Restart {
        at: Instant,
    },
    /// Shutdown has begun: no more restarts, even before this child's turn to stop.
    Shutdown,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sig {
    Term,
    /// Sent right after every SIGTERM, as systemd does: a stopped process (SIGSTOP, a frozen
    /// cgroup, a debugger) cannot act on SIGTERM until it runs again, and would otherwise sit
    /// out the whole grace period.
    Cont,
    Kill,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Spawn,
    /// Signal the child's whole process group.
    SignalGroup {
        pid: i32,
        sig: Sig,
    },
    SetTimer(Instant),
    ClearTimer,
    Ready(bool),
    /// The child has stopped for good (answers a Stop).
    Stopped,
}

/// The schedule of a crash run's restarts after the first: from `first` doubling up to `max`,
/// less up to a quarter at random, so restarts of several children that crashed together spread
/// out and the cap is never exceeded.
pub const fn restart_backoff(first: Duration, max: Duration) -> Backoff {
    Backoff::exponential(first, max).with_jitter(0.25)
}

/// Delay before restart number `consecutive` (1-based) of a crash run: the first is immediate,
/// the rest follow the policy's backoff. `jitter` is a sample in [0, 1).
pub fn backoff_delay(policy: &Policy, consecutive: u32, jitter: f64) -> Duration {
    if consecutive <= 1 {
        return Duration::ZERO;
    }
    policy.backoff.delay(consecutive - 1, jitter)
}

/// The transition function. `jitter` is a fresh random number in [0, 1).
pub fn next(
    mut s: UnitState,
    event: Event,
    policy: &Policy,
    jitter: f64,
) -> (UnitState, Vec<Action>) {
    let mut actions = Vec::new();
    match (s.phase.clone(), event) {
        (Phase::Waiting, Event::DepsReady) if !s.shutting_down => {
            s.phase = Phase::Starting;
            actions.push(Action::Spawn);
        }
        (Phase::Starting, Event::Spawned { pid, at }) => {
            s.last_error = None;
            s.phase = Phase::Running {
                pid,
                since: at,
                ready: !policy.has_probe,
                was_ready: !policy.has_probe,
                failures: 0,
            };
            if !policy.has_probe {
                actions.push(Action::Ready(true));
            }
        }
        (Phase::Starting, Event::SpawnFailed { at, error }) => {
            s.last_error = Some(error);
            if s.shutting_down {
                s.phase = Phase::Stopped;
                actions.push(Action::Stopped);
            } else {
                let until = at + policy.backoff.max;
                s.phase = Phase::ExecFailed { until };
                actions.push(Action::SetTimer(until));
            }
        }
        (
            Phase::Running {
                pid: running,
                since,
                ready,
                ..
            },
            Event::Exited { pid, exit, at },
        ) if pid == running => {
            s.last_exit = Some(exit);
            if ready {
                actions.push(Action::Ready(false));
            }
            if at.saturating_duration_since(since) >= policy.stable_after {
                s.consecutive = 0;
            }
            s.consecutive += 1;
            if s.shutting_down {
                s.phase = Phase::Stopped;
                actions.push(Action::Stopped);
            } else {
                let delay = backoff_delay(policy, s.consecutive, jitter);
                s.restarts += 1;
                if delay.is_zero() {
                    s.phase = Phase::Starting;
                    actions.push(Action::Spawn);
                } else {
                    s.phase = Phase::Backoff { until: at + delay };
                    actions.push(Action::SetTimer(at + delay));
                }
            }
        }
        (
            Phase::Stopping {
                pid: stopping,
                then,
                ..
            },
            Event::Exited { pid, exit, .. },
        ) if pid == stopping => {
            s.last_exit = Some(exit);
            actions.push(Action::ClearTimer);
            if then == AfterStop::Restart && !s.shutting_down {
                s.restarts += 1;
                s.phase = Phase::Starting;
                actions.push(Action::Spawn);
            } else {
                s.phase = Phase::Stopped;
                actions.push(Action::Stopped);
            }
        }
        (
            Phase::Running {
                pid: running,
                since,
                ready,
                was_ready,
                failures,
            },
            Event::Probe { pid, ok, at },
        ) if pid == running => {
            if ok {
                s.phase = Phase::Running {
                    pid,
                    since,
                    ready: true,
                    was_ready: true,
                    failures: 0,
                };
                if !ready {
                    actions.push(Action::Ready(true));
                }
            } else {
                let counts =
                    was_ready || at.saturating_duration_since(since) >= policy.startup_timeout;
                let failures = if counts { failures + 1 } else { failures };
                if ready {
                    actions.push(Action::Ready(false));
                }
                if failures >= policy.liveness_failures && !s.shutting_down {
                    s.last_error = Some(format!("{failures} consecutive health checks failed"));
                    s.phase = Phase::Stopping {
                        pid,
                        killed: false,
                        then: AfterStop::Restart,
                    };
                    terminate(&mut actions, pid);
                    let grace = policy.unhealthy_grace.min(policy.grace_period);
                    actions.push(Action::SetTimer(at + grace));
                } else {
                    s.phase = Phase::Running {
                        pid,
                        since,
                        ready: false,
                        was_ready,
                        failures,
                    };
                }
            }
        }
        (Phase::Backoff { .. } | Phase::ExecFailed { .. }, Event::Timer { .. })
            if !s.shutting_down =>
        {
            s.phase = Phase::Starting;
            actions.push(Action::Spawn);
        }
        (
            Phase::Stopping {
                pid,
                killed: false,
                then,
            },
            Event::Timer { .. },
        ) => {
            // The grace period is over: escalate to the whole group.
            s.phase = Phase::Stopping {
                pid,
                killed: true,
                then,
            };
            actions.push(Action::SignalGroup {
                pid,
                sig: Sig::Kill,
            });
        }
        (Phase::Running { pid, ready, .. }, Event::Stop { at }) => {
            begin_stop(
                &mut s,
                &mut actions,
                pid,
                ready,
                AfterStop::Stay,
                at,
                policy,
            );
        }
        (Phase::Stopping { pid, killed, .. }, Event::Stop { .. }) => {
            s.phase = Phase::Stopping {
                pid,
                killed,
                then: AfterStop::Stay,
            };
        }
        (Phase::Running { pid, .. } | Phase::Stopping { pid, .. }, Event::Kill) => {
            s.phase = Phase::Stopping {
                pid,
                killed: true,
                then: AfterStop::Stay,
            };
            actions.push(Action::ClearTimer);
            actions.push(Action::SignalGroup {
                pid,
                sig: Sig::Kill,
            });
        }
        (
            Phase::Waiting | Phase::Backoff { .. } | Phase::ExecFailed { .. } | Phase::Stopped,
            Event::Stop { .. } | Event::Kill,
        ) => {
            s.phase = Phase::Stopped;
            actions.push(Action::ClearTimer);
            actions.push(Action::Stopped);
        }
        (_, Event::Shutdown) => {
            s.shutting_down = true;
            if matches!(
                s.phase,
                Phase::Waiting | Phase::Backoff { .. } | Phase::ExecFailed { .. }
            ) {
                s.phase = Phase::Stopped;
                actions.push(Action::ClearTimer);
                actions.push(Action::Stopped);
            }
        }
        (Phase::Running { pid, ready, .. }, Event::Restart { at }) if !s.shutting_down => {
            begin_stop(
                &mut s,
                &mut actions,
                pid,
                ready,
                AfterStop::Restart,
                at,
                policy,
            );
        }
        (
            Phase::Backoff { .. } | Phase::ExecFailed { .. } | Phase::Stopped,
            Event::Restart { .. },
        ) if !s.shutting_down => {
            s.phase = Phase::Starting;
            actions.push(Action::ClearTimer);
            actions.push(Action::Spawn);
        }
        // Everything else is stale (a probe or exit of an earlier pid, a timer that raced a
        // transition) and changes nothing.
        _ => {}
    }
    (s, actions)
}

/// A graceful stop of a running child: SIGTERM to its group now, SIGKILL when the grace
/// period ends (the Timer event), then `then`.
fn begin_stop(
    s: &mut UnitState,
    actions: &mut Vec<Action>,
    pid: i32,
    ready: bool,
    then: AfterStop,
    at: Instant,
    policy: &Policy,
) {
    if ready {
        actions.push(Action::Ready(false));
    }
    s.phase = Phase::Stopping {
        pid,
        killed: false,
        then,
    };
    terminate(actions, pid);
    actions.push(Action::SetTimer(at + policy.grace_period));
}

/// SIGTERM to the group, then SIGCONT so that a stopped member can act on it.
fn terminate(actions: &mut Vec<Action>, pid: i32) {
    actions.push(Action::SignalGroup {
        pid,
        sig: Sig::Term,
    });
    actions.push(Action::SignalGroup {
        pid,
        sig: Sig::Cont,
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> Policy {
        Policy {
            backoff: restart_backoff(Duration::from_millis(100), Duration::from_secs(5)),
            stable_after: Duration::from_secs(10),
            grace_period: Duration::from_secs(2),
            unhealthy_grace: Duration::from_secs(1),
            liveness_failures: 3,
            startup_timeout: Duration::from_secs(30),
            has_probe: true,
        }
    }

    fn running(pid: i32, at: Instant) -> UnitState {
        let p = policy();
        let (s, _) = next(UnitState::default(), Event::DepsReady, &p, 0.0);
        let (s, _) = next(s, Event::Spawned { pid, at }, &p, 0.0);
        s
    }

    #[test]
    fn starts_when_dependencies_are_ready_and_is_ready_after_a_probe() {
        let t0 = Instant::now();
        let s = running(10, t0);
        assert_eq!(s.label(), State::Starting);
        let (s, a) = next(
            s,
            Event::Probe {
                pid: 10,
                ok: true,
                at: t0,
            },
            &policy(),
            0.0,
        );
        assert_eq!(a, vec![Action::Ready(true)]);
        assert_eq!(s.label(), State::Running);
    }

    #[test]
    fn first_restart_after_a_crash_is_immediate() {
        let t0 = Instant::now();
        let s = running(10, t0);
        let exit = Event::Exited {
            pid: 10,
            exit: ExitKind::Signal(9),
            at: t0 + Duration::from_millis(100),
        };
        let (s, a) = next(s, exit, &policy(), 0.5);
        assert_eq!(a, vec![Action::Spawn]);
        assert_eq!(s.restarts, 1);
        assert_eq!(s.last_exit, Some(ExitKind::Signal(9)));
    }

    #[test]
    fn backoff_grows_is_capped_and_resets_after_a_stable_run() {
        let p = policy();
        let mut t = Instant::now();
        let mut s = running(1, t);
        let mut delays = Vec::new();
        for pid in 1..=8 {
            t += Duration::from_millis(50);
            let (s2, a) = next(
                s,
                Event::Exited {
                    pid,
                    exit: ExitKind::Code(1),
                    at: t,
                },
                &p,
                0.0,
            );
            let delay = match a.as_slice() {
                [Action::Spawn] => Duration::ZERO,
                [Action::SetTimer(until)] => *until - t,
                other => panic!("unexpected actions {other:?}"),
            };
            delays.push(delay);
            s = s2;
            if delay > Duration::ZERO {
                assert_eq!(
                    s.label(),
                    if s.consecutive >= 3 {
                        State::CrashLoop
                    } else {
                        State::Backoff
                    }
                );
                t += delay;
                let (s2, a) = next(s, Event::Timer { at: t }, &p, 0.0);
                assert_eq!(a, vec![Action::Spawn]);
                s = s2;
            }
            let (s2, _) = next(
                s,
                Event::Spawned {
                    pid: pid + 1,
                    at: t,
                },
                &p,
                0.0,
            );
            s = s2;
        }
        let ms: Vec<u128> = delays.iter().map(|d| d.as_millis()).collect();
        assert_eq!(ms, vec![0, 100, 200, 400, 800, 1600, 3200, 5000]);
        // Stays up past stable_after: the next crash restarts at once again.
        t += Duration::from_secs(11);
        let (_, a) = next(
            s,
            Event::Exited {
                pid: 9,
                exit: ExitKind::Code(1),
                at: t,
            },
            &p,
            0.0,
        );
        assert_eq!(a, vec![Action::Spawn]);
    }

    #[test]
    fn jitter_only_shortens_and_never_exceeds_the_cap() {
        let p = policy();
        for n in 2..30 {
            for j in [0.0, 0.3, 0.999] {
                let d = backoff_delay(&p, n, j);
                assert!(d <= p.backoff.max);
                assert!(d >= backoff_delay(&p, n, 0.0).mul_f64(0.75));
            }
        }
    }

    #[test]
    fn exec_failure_waits_for_the_cap_and_never_loops() {
        let p = policy();
        let t0 = Instant::now();
        let (s, _) = next(UnitState::default(), Event::DepsReady, &p, 0.0);
        let (s, a) = next(
            s,
            Event::SpawnFailed {
                at: t0,
                error: "ENOENT".into(),
            },
            &p,
            0.0,
        );
        assert_eq!(a, vec![Action::SetTimer(t0 + p.backoff.max)]);
        assert_eq!(s.label(), State::ExecFailed);
        assert_eq!(s.last_error.as_deref(), Some("ENOENT"));
    }

    #[test]
    fn stop_sends_term_then_kill_to_the_group() {
        let p = policy();
        let t0 = Instant::now();
        let s = running(7, t0);
        let (s, a) = next(s, Event::Stop { at: t0 }, &p, 0.0);
        assert_eq!(
            a,
            vec![
                Action::SignalGroup {
                    pid: 7,
                    sig: Sig::Term
                },
                // A stopped child must run to act on SIGTERM.
                Action::SignalGroup {
                    pid: 7,
                    sig: Sig::Cont
                },
                Action::SetTimer(t0 + p.grace_period)
            ]
        );
        let (s, a) = next(
            s,
            Event::Timer {
                at: t0 + p.grace_period,
            },
            &p,
            0.0,
        );
        assert_eq!(
            a,
            vec![Action::SignalGroup {
                pid: 7,
                sig: Sig::Kill
            }]
        );
        let (s, a) = next(
            s,
            Event::Exited {
                pid: 7,
                exit: ExitKind::Signal(9),
                at: t0,
            },
            &p,
            0.0,
        );
        assert_eq!(a, vec![Action::ClearTimer, Action::Stopped]);
        assert_eq!(s.phase, Phase::Stopped);
        assert_eq!(s.restarts, 0);
    }

    #[test]
    fn nothing_restarts_once_shutdown_has_begun() {
        let p = policy();
        let t0 = Instant::now();
        let s = running(7, t0);
        let (s, a) = next(s, Event::Shutdown, &p, 0.0);
        assert!(a.is_empty());
        let (s, a) = next(
            s,
            Event::Exited {
                pid: 7,
                exit: ExitKind::Code(2),
                at: t0,
            },
            &p,
            0.0,
        );
        assert_eq!(a, vec![Action::Stopped]);
        assert_eq!(s.phase, Phase::Stopped);
        // A child waiting out a backoff is dropped at once.
        let b = UnitState {
            phase: Phase::Backoff { until: t0 },
            ..Default::default()
        };
        let (b, a) = next(b, Event::Shutdown, &p, 0.0);
        assert_eq!(a, vec![Action::ClearTimer, Action::Stopped]);
        let (_, a) = next(b, Event::Timer { at: t0 }, &p, 0.0);
        assert!(a.is_empty(), "a late timer must not restart it");
    }

    #[test]
    fn failing_liveness_probes_restart_the_child() {
        let p = policy();
        let t0 = Instant::now();
        let s = running(3, t0);
        let (mut s, _) = next(
            s,
            Event::Probe {
                pid: 3,
                ok: true,
                at: t0,
            },
            &p,
            0.0,
        );
        for i in 1..=3 {
            let (s2, a) = next(
                s,
                Event::Probe {
                    pid: 3,
                    ok: false,
                    at: t0,
                },
                &p,
                0.0,
            );
            s = s2;
            if i < 3 {
                assert!(!a.contains(&Action::SignalGroup {
                    pid: 3,
                    sig: Sig::Term
                }));
            } else {
                // TERM, CONT, and the short grace of a broken child, not the graceful one.
                assert_eq!(
                    a[a.len() - 3..],
                    [
                        Action::SignalGroup {
                            pid: 3,
                            sig: Sig::Term
                        },
                        Action::SignalGroup {
                            pid: 3,
                            sig: Sig::Cont
                        },
                        Action::SetTimer(t0 + p.unhealthy_grace)
                    ]
                );
                assert!(p.unhealthy_grace < p.grace_period);
            }
        }
        let (s, a) = next(
            s,
            Event::Exited {
                pid: 3,
                exit: ExitKind::Code(0),
                at: t0,
            },
            &p,
            0.0,
        );
        assert_eq!(a, vec![Action::ClearTimer, Action::Spawn]);
        assert_eq!(s.restarts, 1);
    }

    #[test]
    fn probe_failures_before_startup_timeout_do_not_count() {
        let p = policy();
        let t0 = Instant::now();
        let mut s = running(3, t0);
        for _ in 0..10 {
            let (s2, a) = next(
                s,
                Event::Probe {
                    pid: 3,
                    ok: false,
                    at: t0 + Duration::from_secs(1),
                },
                &p,
                0.0,
            );
            assert!(a.is_empty());
            s = s2;
        }
        let late = t0 + p.startup_timeout;
        for _ in 0..2 {
            s = next(
                s,
                Event::Probe {
                    pid: 3,
                    ok: false,
                    at: late,
                },
                &p,
                0.0,
            )
            .0;
        }
        let (_, a) = next(
            s,
            Event::Probe {
                pid: 3,
                ok: false,
                at: late,
            },
            &p,
            0.0,
        );
        assert!(a.contains(&Action::SignalGroup {
            pid: 3,
            sig: Sig::Term
        }));
    }

    #[test]
    fn stale_events_of_an_old_pid_are_ignored() {
        let p = policy();
        let t0 = Instant::now();
        let s = running(5, t0);
        let (s2, a) = next(
            s.clone(),
            Event::Exited {
                pid: 4,
                exit: ExitKind::Code(1),
                at: t0,
            },
            &p,
            0.0,
        );
        assert!(a.is_empty());
        assert_eq!(s2, s);
        let (_, a) = next(
            s,
            Event::Probe {
                pid: 4,
                ok: true,
                at: t0,
            },
            &p,
            0.0,
        );
        assert!(a.is_empty());
    }

    #[test]
    fn restart_request_restarts_once_after_a_graceful_stop() {
        let p = policy();
        let t0 = Instant::now();
        let s = running(5, t0);
        let (s, a) = next(s, Event::Restart { at: t0 }, &p, 0.0);
        assert_eq!(
            a[0],
            Action::SignalGroup {
                pid: 5,
                sig: Sig::Term
            }
        );
        let (s, a) = next(
            s,
            Event::Exited {
                pid: 5,
                exit: ExitKind::Code(0),
                at: t0,
            },
            &p,
            0.0,
        );
        assert_eq!(a, vec![Action::ClearTimer, Action::Spawn]);
        assert_eq!(s.phase, Phase::Starting);
    }

    #[test]
    fn a_second_signal_kills_at_once() {
        let p = policy();
        let t0 = Instant::now();
        let s = running(5, t0);
        let (s, _) = next(s, Event::Stop { at: t0 }, &p, 0.0);
        let (_, a) = next(s, Event::Kill, &p, 0.0);
        assert_eq!(
            a,
            vec![
                Action::ClearTimer,
                Action::SignalGroup {
                    pid: 5,
                    sig: Sig::Kill
                }
            ]
        );
    }
}
