//! The VM lifecycle: an explicit state machine, shared by the vCPU threads, the event
//! loop and the API.

use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

pub use strato_vmm_api::control::VmState;
use strato_vmm_api::exit::ExitStatus;

/// What moves the VM between states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VmEvent {
    /// Start the vCPUs.
    Start,
    /// Park the vCPUs.
    Pause,
    /// Unpark them.
    Resume,
    /// End the VM (guest shutdown, crash, API stop or signal).
    Exit,
}

/// An event that the current state does not allow.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("cannot {event:?} a VM that is {}", state.name())]
pub struct TransitionError {
    /// State at the time.
    pub state: VmState,
    /// The refused event.
    pub event: VmEvent,
}

/// The transition table.
pub fn next_state(state: VmState, event: VmEvent) -> Result<VmState, TransitionError> {
    use VmEvent::*;
    use VmState::*;
    match (state, event) {
        (Created, Start) => Ok(Running),
        (Running, Pause) => Ok(Paused),
        (Paused, Resume) => Ok(Running),
        (Created | Running | Paused, Exit) => Ok(Exited),
        _ => Err(TransitionError { state, event }),
    }
}

/// Why the VM ended; decides the process exit status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExitReason {
    /// The guest reset or powered itself off (i8042 reset line, KVM system event).
    GuestShutdown,
    /// Stopped from outside: API `stop`, SIGTERM or SIGINT.
    Stopped,
    /// The guest crashed (triple fault, unhandled emulation failure).
    GuestCrash(String),
    /// The monitor failed while running.
    Error(String),
}

impl ExitReason {
    /// The process exit status (documented in the README).
    pub fn status(&self) -> ExitStatus {
        match self {
            ExitReason::GuestShutdown => ExitStatus::PowerOff,
            ExitReason::Error(_) => ExitStatus::Failed,
            ExitReason::GuestCrash(_) => ExitStatus::Crashed,
            ExitReason::Stopped => ExitStatus::Stopped,
        }
    }
}

struct Inner {
    state: VmState,
    exit: Option<ExitReason>,
    started: Option<Instant>,
    parked: usize,
}

/// The VM's state, shared between threads.
pub struct VmControl {
    inner: Mutex<Inner>,
    changed: Condvar,
}

impl Default for VmControl {
    fn default() -> Self {
        Self::new()
    }
}

impl VmControl {
    /// A VM in `Created`.
    pub fn new() -> Self {
        Self {
            inner: Mutex::new(Inner {
                state: VmState::Created,
                exit: None,
                started: None,
                parked: 0,
            }),
            changed: Condvar::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The current state.
    pub fn state(&self) -> VmState {
        self.lock().state
    }

    /// Applies `event`; `Exit` records `reason` (the first reason wins).
    pub fn apply(
        &self,
        event: VmEvent,
        reason: Option<ExitReason>,
    ) -> Result<VmState, TransitionError> {
        let mut inner = self.lock();
        let next = next_state(inner.state, event)?;
        inner.state = next;
        if event == VmEvent::Start {
            inner.started = Some(Instant::now());
        }
        if next == VmState::Exited && inner.exit.is_none() {
            inner.exit = reason;
        }
        self.changed.notify_all();
        Ok(next)
    }

    /// Ends the VM unless it already ended; returns whether this call ended it.
    pub fn exit(&self, reason: ExitReason) -> bool {
        self.apply(VmEvent::Exit, Some(reason)).is_ok()
    }

    /// Why the VM ended, once it has.
    pub fn exit_reason(&self) -> Option<ExitReason> {
        self.lock().exit.clone()
    }

    /// Time since `Start`.
    pub fn uptime(&self) -> Duration {
        self.lock().started.map(|s| s.elapsed()).unwrap_or_default()
    }

    /// Called by a vCPU thread while the VM is paused: blocks until it is not, and
    /// returns the new state.
    pub fn park(&self) -> VmState {
        let mut inner = self.lock();
        inner.parked += 1;
        self.changed.notify_all();
        while inner.state == VmState::Paused {
            inner = self.changed.wait(inner).unwrap_or_else(|e| e.into_inner());
        }
        inner.parked -= 1;
        inner.state
    }

    /// Waits until `n` vCPUs are parked (or the VM left `Paused`), up to `timeout`.
    pub fn wait_parked(&self, n: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut inner = self.lock();
        while inner.parked < n && inner.state == VmState::Paused {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            inner = self
                .changed
                .wait_timeout(inner, left)
                .map(|(g, _)| g)
                .unwrap_or_else(|e| e.into_inner().0);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use VmEvent::*;
    use VmState::*;

    #[test]
    fn transition_table() {
        let states = [Created, Running, Paused, Exited];
        let events = [Start, Pause, Resume, Exit];
        let expected = |s, e| match (s, e) {
            (Created, Start) => Some(Running),
            (Running, Pause) => Some(Paused),
            (Paused, Resume) => Some(Running),
            (Created, Exit) | (Running, Exit) | (Paused, Exit) => Some(Exited),
            _ => None,
        };
        for s in states {
            for e in events {
                assert_eq!(next_state(s, e).ok(), expected(s, e), "{s:?} + {e:?}");
            }
        }
    }

    #[test]
    fn first_exit_reason_wins() {
        let c = VmControl::new();
        c.apply(Start, None).unwrap();
        assert!(c.exit(ExitReason::GuestShutdown));
        assert!(!c.exit(ExitReason::Stopped));
        assert_eq!(c.exit_reason(), Some(ExitReason::GuestShutdown));
        assert_eq!(c.state(), Exited);
    }

    #[test]
    fn exit_reasons_map_to_the_documented_statuses() {
        let got = [
            ExitReason::GuestShutdown.status(),
            ExitReason::Error(String::new()).status(),
            ExitReason::GuestCrash(String::new()).status(),
            ExitReason::Stopped.status(),
        ];
        assert_eq!(
            got,
            [
                ExitStatus::PowerOff,
                ExitStatus::Failed,
                ExitStatus::Crashed,
                ExitStatus::Stopped
            ]
        );
    }

    #[test]
    fn park_returns_when_resumed() {
        let c = std::sync::Arc::new(VmControl::new());
        c.apply(Start, None).unwrap();
        c.apply(Pause, None).unwrap();
        let c2 = c.clone();
        let t = std::thread::spawn(move || c2.park());
        assert!(c.wait_parked(1, Duration::from_secs(5)));
        c.apply(Resume, None).unwrap();
        assert_eq!(t.join().unwrap(), Running);
    }
}
