//! The devices a hardware-reduced ACPI guest touches: the power-management registers the
//! FADT points at ([`pm::AcpiPm`]: sleep control, sleep status, reset) and the generic event
//! device that delivers the power button ([`ged::Ged`]).
//!
//! The tables that describe them (FADT, DSDT) are the monitor's business; this module only
//! fixes the register layout, which both sides share through the constants below.

pub mod ged;
pub mod pm;

pub use ged::Ged;
pub use pm::AcpiPm;
