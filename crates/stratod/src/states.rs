//! The states of images, volumes, snapshots and volume attachments, by EC2's names. The
//! instance lifecycle is `crate::lifecycle`. The state store keeps the names in text
//! columns; `crate::db` converts at its boundary.

use std::fmt;
use std::str::FromStr;

/// A state name that names no state of its kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} state {name:?}")]
pub struct UnknownState {
    /// `volume`, `image`, …
    pub kind: &'static str,
    /// The name given.
    pub name: String,
}

/// Declares a state enum with its EC2 names.
macro_rules! states {
    ($(#[doc = $doc:literal])+ $name:ident, $kind:literal {
        $($(#[doc = $vdoc:literal])+ $variant:ident = $text:literal,)+
    }) => {
        $(#[doc = $doc])+
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[doc = $vdoc])+ $variant,)+
        }

        impl $name {
            /// Every state.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// EC2's name of the state.
            pub fn name(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.name())
            }
        }

        impl FromStr for $name {
            type Err = UnknownState;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                $name::ALL
                    .iter()
                    .copied()
                    .find(|v| v.name() == s)
                    .ok_or_else(|| UnknownState { kind: $kind, name: s.to_string() })
            }
        }
    };
}

states! {
    /// An EBS-style volume's state.
    VolumeState, "volume" {
        /// Being made (cloned from its snapshot).
        Creating = "creating",
        /// Free to attach.
        Available = "available",
        /// Attached to an instance.
        InUse = "in-use",
        /// Its file could not be made.
        Error = "error",
    }
}

states! {
    /// The state of a volume's attachment to its instance.
    AttachState, "attachment" {
        /// Recorded; the instance has not got the drive yet.
        Attaching = "attaching",
        /// The instance has the drive (or gets it when it boots).
        Attached = "attached",
        /// Being taken from the running instance.
        Detaching = "detaching",
    }
}

states! {
    /// A snapshot's state.
    SnapshotState, "snapshot" {
        /// Being copied.
        Pending = "pending",
        /// Complete and usable.
        Completed = "completed",
        /// The copy failed.
        Error = "error",
    }
}

states! {
    /// An AMI's state.
    ImageState, "image" {
        /// Being registered, created or copied.
        Pending = "pending",
        /// Ready to launch.
        Available = "available",
        /// Its creation or copy failed.
        Failed = "failed",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_are_refused() {
        for &s in VolumeState::ALL {
            assert_eq!(s.name().parse::<VolumeState>(), Ok(s));
        }
        for &s in AttachState::ALL {
            assert_eq!(s.name().parse::<AttachState>(), Ok(s));
        }
        for &s in SnapshotState::ALL {
            assert_eq!(s.name().parse::<SnapshotState>(), Ok(s));
        }
        for &s in ImageState::ALL {
            assert_eq!(s.name().parse::<ImageState>(), Ok(s));
        }
        assert_eq!(VolumeState::InUse.to_string(), "in-use");
        let e = "gone".parse::<ImageState>().unwrap_err();
        assert_eq!(e.to_string(), "unknown image state \"gone\"");
    }
}
