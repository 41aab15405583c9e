//! The instance lifecycle as EC2 defines it: six states with their codes and one transition
//! table for both what callers ask (stop, start, reboot, terminate) and what happens to the
//! VM (it booted, it powered itself off, its monitor exited).

use std::fmt;
use std::str::FromStr;

/// An EC2 instance state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// Being launched or started.
    Pending,
    /// The VM runs.
    Running,
    /// Being terminated.
    ShuttingDown,
    /// Gone for good (still listed for a while).
    Terminated,
    /// Being stopped.
    Stopping,
    /// Stopped; volumes and addresses kept.
    Stopped,
}

/// Every state, in code order.
pub const ALL_STATES: [State; 6] = [
    State::Pending,
    State::Running,
    State::ShuttingDown,
    State::Terminated,
    State::Stopping,
    State::Stopped,
];

impl State {
    /// EC2's numeric state code.
    pub fn code(self) -> i32 {
        match self {
            State::Pending => 0,
            State::Running => 16,
            State::ShuttingDown => 32,
            State::Terminated => 48,
            State::Stopping => 64,
            State::Stopped => 80,
        }
    }

    /// EC2's state name.
    pub fn name(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Running => "running",
            State::ShuttingDown => "shutting-down",
            State::Terminated => "terminated",
            State::Stopping => "stopping",
            State::Stopped => "stopped",
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A state name that is not one of the six.
#[derive(Debug, thiserror::Error)]
#[error("unknown instance state {0:?}")]
pub struct UnknownState(String);

impl FromStr for State {
    type Err = UnknownState;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ALL_STATES
            .into_iter()
            .find(|st| st.name() == s)
            .ok_or_else(|| UnknownState(s.to_string()))
    }
}

/// What moves an instance between states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// `StopInstances`.
    Stop,
    /// `StartInstances`.
    Start,
    /// `RebootInstances`.
    Reboot,
    /// `TerminateInstances`.
    Terminate,
    /// The monitor is up and the guest boots.
    Booted,
    /// Starting a stopped instance failed before the guest ran: it is stopped again.
    BootFailed,
    /// The first launch failed before the guest ran: the instance is terminated.
    LaunchFailed,
    /// The VM is gone after a stop.
    Halted,
    /// Everything of a terminated instance is released.
    Released,
    /// The guest powered itself off and its shutdown behavior is `stop`.
    GuestStopped,
    /// The guest powered itself off and its shutdown behavior is `terminate`.
    GuestTerminated,
    /// The guest reset itself: it boots again on a fresh monitor, still `running` (as a
    /// `reboot` inside an EC2 instance does).
    GuestRebooted,
}

/// What an event does in a state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Move to this state (and do the work that leads on from it).
    To(State),
    /// Already there or on the way: nothing to do, and not an error (EC2 answers stop on a
    /// stopped instance and terminate on a terminated one with success).
    NoOp,
    /// The event makes no sense in this state: `IncorrectInstanceState`.
    Illegal,
}

/// The transition table.
pub fn transition(state: State, event: Event) -> Outcome {
    use Event::*;
    use Outcome::*;
    use State::*;
    match (state, event) {
        (Running, Stop) => To(Stopping),
        (Stopping | Stopped, Stop) => NoOp,
        (Stopped, Start) => To(Pending),
        (Pending | Running, Start) => NoOp,
        (Running, Reboot) => To(Running),
        (Pending | Running | Stopping | Stopped, Terminate) => To(ShuttingDown),
        (ShuttingDown | Terminated, Terminate) => NoOp,
        (Pending, Booted) => To(Running),
        (Pending, BootFailed) => To(Stopped),
        (Pending, LaunchFailed) => To(ShuttingDown),
        (Stopping, Halted) => To(Stopped),
        (ShuttingDown, Released) => To(Terminated),
        (Running, GuestStopped) => To(Stopping),
        (Running, GuestTerminated) => To(ShuttingDown),
        (Running, GuestRebooted) => To(Running),
        _ => Illegal,
    }
}

/// The verb for `IncorrectInstanceState` messages ("... from which it can be stopped").
pub fn verb(event: Event) -> &'static str {
    match event {
        Event::Stop | Event::GuestStopped | Event::Halted => "stopped",
        Event::Start | Event::Booted | Event::BootFailed => "started",
        Event::LaunchFailed => "launched",
        Event::Reboot | Event::GuestRebooted => "rebooted",
        Event::Terminate | Event::GuestTerminated | Event::Released => "terminated",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Event::*;
    use Outcome::*;
    use State::*;

    const EVENTS: [Event; 12] = [
        Stop,
        Start,
        Reboot,
        Terminate,
        Booted,
        BootFailed,
        LaunchFailed,
        Halted,
        Released,
        GuestStopped,
        GuestTerminated,
        GuestRebooted,
    ];

    #[test]
    fn codes_and_names_are_ec2s() {
        let got: Vec<(i32, &str)> = ALL_STATES.iter().map(|s| (s.code(), s.name())).collect();
        assert_eq!(
            got,
            [
                (0, "pending"),
                (16, "running"),
                (32, "shutting-down"),
                (48, "terminated"),
                (64, "stopping"),
                (80, "stopped")
            ]
        );
        for s in ALL_STATES {
            assert_eq!(s.name().parse::<State>().unwrap(), s);
        }
        assert!("rebooting".parse::<State>().is_err());
    }

    /// The whole table, written out: every (state, event) pair is listed once.
    #[test]
    #[rustfmt::skip]
    fn transition_table() {
        let table: [(State, [Outcome; 12]); 6] = [
            // Stop, Start, Reboot, Terminate, Booted, BootFailed, LaunchFailed, Halted, Released, GuestStopped, GuestTerminated, GuestRebooted
            (Pending, [Illegal, NoOp, Illegal, To(ShuttingDown), To(Running), To(Stopped), To(ShuttingDown), Illegal, Illegal, Illegal, Illegal, Illegal]),
            (Running, [To(Stopping), NoOp, To(Running), To(ShuttingDown), Illegal, Illegal, Illegal, Illegal, Illegal, To(Stopping), To(ShuttingDown), To(Running)]),
            (ShuttingDown, [Illegal, Illegal, Illegal, NoOp, Illegal, Illegal, Illegal, Illegal, To(Terminated), Illegal, Illegal, Illegal]),
            (Terminated, [Illegal, Illegal, Illegal, NoOp, Illegal, Illegal, Illegal, Illegal, Illegal, Illegal, Illegal, Illegal]),
            (Stopping, [NoOp, Illegal, Illegal, To(ShuttingDown), Illegal, Illegal, Illegal, To(Stopped), Illegal, Illegal, Illegal, Illegal]),
            (Stopped, [NoOp, To(Pending), Illegal, To(ShuttingDown), Illegal, Illegal, Illegal, Illegal, Illegal, Illegal, Illegal, Illegal]),
        ];
        for (state, row) in table {
            for (event, want) in EVENTS.iter().zip(row) {
                assert_eq!(transition(state, *event), want, "{state} on {event:?}");
            }
        }
    }

    /// Outside the database layer and its tests, an instance's state changes only through
    /// `Cloud::advance`, which asks the table: no code path sets a state the table would
    /// not.
    #[test]
    fn state_changes_go_through_the_table() {
        fn scan(dir: &std::path::Path, out: &mut Vec<String>) {
            for e in std::fs::read_dir(dir).unwrap().flatten() {
                let p = e.path();
                if p.is_dir() {
                    scan(&p, out);
                } else if p.extension().is_some_and(|x| x == "rs") {
                    let text = std::fs::read_to_string(&p).unwrap();
                    // Test modules (at a file's end by convention) may set states directly.
                    let code = text.split("#[cfg(test)]").next().unwrap_or("");
                    if code.contains(".set_state(") {
                        out.push(p.display().to_string());
                    }
                }
            }
        }
        let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut found = Vec::new();
        scan(&src, &mut found);
        found.retain(|p| {
            !p.ends_with("db/instances.rs")
                && !p.ends_with("cloud/compute/lifecycle.rs")
                && !p.ends_with("tests.rs")
        });
        assert!(found.is_empty(), "state set outside the table: {found:?}");
    }

    #[test]
    fn terminated_is_final() {
        for e in EVENTS {
            assert!(!matches!(transition(Terminated, e), To(_)), "{e:?}");
        }
    }
}
