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
    /// Launching or starting failed before the guest ran.
    BootFailed,
    /// The VM is gone after a stop.
    Halted,
    /// Everything of a terminated instance is released.
    Released,
    /// The guest powered itself off and its shutdown behavior is `stop`.
    GuestStopped,
    /// The guest powered itself off and its shutdown behavior is `terminate`.
    GuestTerminated,
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
        (Stopping, Halted) => To(Stopped),
        (ShuttingDown, Released) => To(Terminated),
        (Running, GuestStopped) => To(Stopping),
        (Running, GuestTerminated) => To(ShuttingDown),
        _ => Illegal,
    }
}

/// The verb for `IncorrectInstanceState` messages ("... from which it can be stopped").
pub fn verb(event: Event) -> &'static str {
    match event {
        Event::Stop | Event::GuestStopped | Event::Halted => "stopped",
        Event::Start | Event::Booted | Event::BootFailed => "started",
        Event::Reboot => "rebooted",
        Event::Terminate | Event::GuestTerminated | Event::Released => "terminated",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Event::*;
    use Outcome::*;
    use State::*;

    const EVENTS: [Event; 10] = [
        Stop,
        Start,
        Reboot,
        Terminate,
        Booted,
        BootFailed,
        Halted,
        Released,
        GuestStopped,
        GuestTerminated,
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
        let table: [(State, [Outcome; 10]); 6] = [
            // Stop, Start, Reboot, Terminate, Booted, BootFailed, Halted, Released, GuestStopped, GuestTerminated
            (Pending, [Illegal, NoOp, Illegal, To(ShuttingDown), To(Running), To(Stopped), Illegal, Illegal, Illegal, Illegal]),
            (Running, [To(Stopping), NoOp, To(Running), To(ShuttingDown), Illegal, Illegal, Illegal, Illegal, To(Stopping), To(ShuttingDown)]),
            (ShuttingDown, [Illegal, Illegal, Illegal, NoOp, Illegal, Illegal, Illegal, To(Terminated), Illegal, Illegal]),
            (Terminated, [Illegal, Illegal, Illegal, NoOp, Illegal, Illegal, Illegal, Illegal, Illegal, Illegal]),
            (Stopping, [NoOp, Illegal, Illegal, To(ShuttingDown), Illegal, Illegal, To(Stopped), Illegal, Illegal, Illegal]),
            (Stopped, [NoOp, To(Pending), Illegal, To(ShuttingDown), Illegal, Illegal, Illegal, Illegal, Illegal, Illegal]),
        ];
        for (state, row) in table {
            for (event, want) in EVENTS.iter().zip(row) {
                assert_eq!(transition(state, *event), want, "{state} on {event:?}");
            }
        }
    }

    #[test]
    fn terminated_is_final() {
        for e in EVENTS {
            assert!(!matches!(transition(Terminated, e), To(_)), "{e:?}");
        }
    }
}
