//! The console's escapes, read out of what the user types: Ctrl-] detaches at once (as
//! telnet and virsh), and at the start of a line `~` starts an escape as in ssh (and so in
//! EC2's serial console, reached over ssh): `~B` sends a BREAK, `~.` detaches, `~?` lists
//! them, `~~` types one `~`. Any other byte after `~` is typed, the `~` with it.

/// Ctrl-]: the byte a terminal sends for it.
pub const DETACH: u8 = 0x1d;

/// What the user's input asks for, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Bytes for the guest.
    Type(Vec<u8>),
    /// A BREAK on the serial line.
    Break,
    /// Leave the console.
    Detach,
    /// Show the escapes.
    Help,
}

/// The escapes' help, one escape a line.
pub const HELP: &str = "Supported escapes:\n\
    \x20 Ctrl-]  detach\n\
    \x20 ~.      detach\n\
    \x20 ~B      send a BREAK (Linux: the next key is a magic SysRq command)\n\
    \x20 ~~      type ~\n\
    \x20 ~?      this list\n\
    (~ escapes are read at the start of a line)";

/// The escape reader's state, kept across reads.
#[derive(Debug)]
pub struct Escapes {
    /// Whether the next byte starts a line (after CR, LF, an escape, or at the start).
    line_start: bool,
    /// A `~` at a line's start is waiting for the byte that says what it means.
    tilde: bool,
    /// Input comes line by line (not from a terminal): an escape takes its whole line, so
    /// the newline after it is not typed.
    line_mode: bool,
    /// Drop the next byte if it is a newline (see `line_mode`).
    swallow_newline: bool,
}

impl Escapes {
    /// A reader at the start of a line; `line_mode` when input is not a terminal.
    pub fn new(line_mode: bool) -> Self {
        Self {
            line_start: true,
            tilde: false,
            line_mode,
            swallow_newline: false,
        }
    }

    /// The actions that `input` asks for. Nothing after a detach is read.
    pub fn feed(&mut self, input: &[u8]) -> Vec<Action> {
        let mut out = Vec::new();
        let mut typed = Vec::new();
        for &b in input {
            if std::mem::take(&mut self.swallow_newline) && b == b'\n' {
                continue;
            }
            if std::mem::take(&mut self.tilde) {
                let command = match b {
                    b'B' => Some(Action::Break),
                    b'.' => Some(Action::Detach),
                    b'?' => Some(Action::Help),
                    _ => None,
                };
                if let Some(command) = command {
                    flush(&mut typed, &mut out);
                    let detach = command == Action::Detach;
                    out.push(command);
                    if detach {
                        return out;
                    }
                    self.line_start = true;
                    self.swallow_newline = self.line_mode;
                    continue;
                }
                typed.push(b'~');
                if b == b'~' {
                    self.line_start = false;
                    continue;
                }
            }
            if b == DETACH {
                flush(&mut typed, &mut out);
                out.push(Action::Detach);
                return out;
            }
            if self.line_start && b == b'~' {
                self.tilde = true;
                continue;
            }
            typed.push(b);
            self.line_start = b == b'\r' || b == b'\n';
        }
        flush(&mut typed, &mut out);
        out
    }

    /// At the end of input: a `~` still waiting is typed.
    pub fn finish(&mut self) -> Vec<Action> {
        if std::mem::take(&mut self.tilde) {
            vec![Action::Type(b"~".to_vec())]
        } else {
            Vec::new()
        }
    }
}

fn flush(typed: &mut Vec<u8>, out: &mut Vec<Action>) {
    if !typed.is_empty() {
        out.push(Action::Type(std::mem::take(typed)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn typed(s: &str) -> Action {
        Action::Type(s.as_bytes().to_vec())
    }

    #[test]
    fn plain_input_is_typed_as_is() {
        let mut e = Escapes::new(false);
        assert_eq!(e.feed(b"ls -l\r"), [typed("ls -l\r")]);
        assert_eq!(e.feed(b"a~b"), [typed("a~b")], "a ~ inside a line is typed");
        assert!(e.feed(b"").is_empty());
    }

    #[test]
    fn ctrl_bracket_detaches_anywhere_and_ends_reading() {
        let mut e = Escapes::new(false);
        assert_eq!(
            e.feed(b"abc\x1ddef"),
            [typed("abc"), Action::Detach],
            "nothing after the detach is typed"
        );
    }

    #[test]
    fn tilde_escapes_at_a_line_start() {
        let mut e = Escapes::new(false);
        // The start of the session is a line start.
        assert_eq!(e.feed(b"~Bb"), [Action::Break, typed("b")]);
        // Split across reads, as a person types.
        assert_eq!(e.feed(b"x\r"), [typed("x\r")]);
        assert!(e.feed(b"~").is_empty());
        assert_eq!(e.feed(b"B"), [Action::Break]);
        assert_eq!(
            e.feed(b"~B"),
            [Action::Break],
            "an escape leaves a line start"
        );
        assert_eq!(e.feed(b"~?"), [Action::Help]);
        assert_eq!(
            e.feed(b"~~B"),
            [typed("~B")],
            "~~ types one ~ and no escape"
        );
        assert_eq!(
            e.feed(b"\n~x"),
            [typed("\n~x")],
            "an unknown escape is typed"
        );
        assert_eq!(e.feed(b"\r~.more"), [typed("\r"), Action::Detach]);
    }

    #[test]
    fn in_line_mode_an_escape_takes_its_line() {
        let mut e = Escapes::new(true);
        assert_eq!(
            e.feed(b"hello\n~B\nb\n"),
            [typed("hello\n"), Action::Break, typed("b\n")]
        );
        // Without line mode the newline is typed (a person types no newline after ~B).
        let mut e = Escapes::new(false);
        assert_eq!(e.feed(b"~B\nb"), [Action::Break, typed("\nb")]);
    }

    #[test]
    fn a_tilde_left_at_the_end_is_typed() {
        let mut e = Escapes::new(true);
        assert!(e.feed(b"~").is_empty());
        assert_eq!(e.finish(), [typed("~")]);
        assert!(e.finish().is_empty());
    }
}
