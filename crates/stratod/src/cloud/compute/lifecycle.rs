//! The one way an instance changes state: an event, the lifecycle table's answer for the
//! state the database holds, and a compare-and-set of that state.

use crate::cloud::Cloud;
use crate::error::ApiResult;
use crate::lifecycle::{transition, Event, Outcome, State};

impl Cloud {
    /// Applies `event` to instance `id` as the table says for its current state: the new
    /// state when it moved; `None` when the event is a no-op or illegal there, or the state
    /// changed meanwhile (another request won the race), or the instance is gone.
    pub fn advance(&self, id: &str, event: Event, reason: &str) -> ApiResult<Option<State>> {
        let Some(inst) = self.db.instance(id)? else {
            return Ok(None);
        };
        self.advance_from(id, inst.state, event, reason)
    }

    /// As [`Cloud::advance`] from a state the caller read: nothing moves unless the instance
    /// is still in `from`.
    pub fn advance_from(
        &self,
        id: &str,
        from: State,
        event: Event,
        reason: &str,
    ) -> ApiResult<Option<State>> {
        match transition(from, event) {
            Outcome::To(to) => {
                let moved = self.db.set_state(id, &[from], to, reason)?;
                if moved {
                    // The one line per lifecycle event an operator reads in the journal.
                    tracing::info!(
                        instance = id,
                        event = event_name(event),
                        reason = (!reason.is_empty()).then_some(reason),
                        "{from} -> {to}"
                    );
                }
                Ok(moved.then_some(to))
            }
            Outcome::NoOp | Outcome::Illegal => Ok(None),
        }
    }
}

/// How the log names an event.
fn event_name(event: Event) -> &'static str {
    match event {
        Event::Stop => "stop",
        Event::Start => "start",
        Event::Reboot => "reboot",
        Event::Terminate => "terminate",
        Event::Booted => "running",
        Event::BootFailed => "boot failed",
        Event::LaunchFailed => "launch failed",
        Event::Halted => "stopped",
        Event::Released => "terminated",
        Event::GuestStopped => "guest powered off",
        Event::GuestTerminated => "guest powered off",
        Event::GuestRebooted => "guest reset",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::instances::tests::sample;

    #[test]
    fn events_follow_the_table_and_races_move_nothing() {
        let (_dir, cloud) = crate::cloud::test_cloud();
        let mut i = sample("i-0000000000000000a", "111111111111");
        i.state = State::Pending;
        cloud.db.insert_instance(&i).unwrap();
        let id = i.id.as_str();
        // Illegal in pending: nothing changes.
        assert_eq!(cloud.advance(id, Event::Released, "").unwrap(), None);
        assert_eq!(cloud.advance(id, Event::Halted, "").unwrap(), None);
        // A first launch that fails: shutting-down, then terminated once released.
        assert_eq!(
            cloud.advance(id, Event::LaunchFailed, "boom").unwrap(),
            Some(State::ShuttingDown)
        );
        let now = cloud.db.instance(id).unwrap().unwrap();
        assert_eq!(
            (now.state, now.state_reason.as_str()),
            (State::ShuttingDown, "boom")
        );
        // A stale reader loses: it read pending, the instance is shutting down.
        assert_eq!(
            cloud
                .advance_from(id, State::Pending, Event::Booted, "")
                .unwrap(),
            None
        );
        assert_eq!(
            cloud.advance(id, Event::Released, "").unwrap(),
            Some(State::Terminated)
        );
        assert_eq!(cloud.advance(id, Event::Start, "").unwrap(), None);
        assert_eq!(
            cloud
                .advance("i-0000000000000000f", Event::Stop, "")
                .unwrap(),
            None
        );
    }
}
