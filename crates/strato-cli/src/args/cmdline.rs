//! Reading the command line: the global options' environment variables, and what a
//! mistyped command is told.
//!
//! `STRATO_ENDPOINT`, `STRATO_CA_BUNDLE`, `STRATO_OUTPUT` and `STRATO_TOKEN` become the
//! options' defaults rather than clap `env` values: clap counts a value from the
//! environment as given on the command line, so usage lines would show `--endpoint
//! <ENDPOINT>` among the required options, and `--help` would print an empty
//! `[env: STRATO_ENDPOINT=]` when it is unset.

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{CommandFactory, FromArgMatches};

use super::Cli;

/// The global options that the environment may set: (argument ID, variable, whether its
/// value is a secret that `--help` must not print).
const FROM_ENV: [(&str, &str, bool); 4] = [
    ("endpoint", "STRATO_ENDPOINT", false),
    ("ca_bundle", "STRATO_CA_BUNDLE", false),
    ("output", "STRATO_OUTPUT", false),
    ("token", "STRATO_TOKEN", true),
];

/// How many near commands a mistyped one is shown.
const SUGGESTIONS: usize = 3;

/// The command definition with defaults from `env` (a variable's value by name).
pub fn command(env: impl Fn(&str) -> Option<String>) -> clap::Command {
    let mut cmd = Cli::command();
    for (id, var, secret) in FROM_ENV {
        if let Some(value) = env(var).filter(|v| !v.is_empty()) {
            cmd = cmd.mut_arg(id, |a| a.default_value(value).hide_default_value(secret));
        }
    }
    cmd
}

/// Parses `args` (the program name first) with defaults from `env`.
pub fn try_parse<I, T>(args: I, env: impl Fn(&str) -> Option<String>) -> Result<Cli, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let mut cmd = command(env);
    let matches = match cmd.try_get_matches_from_mut(args) {
        Ok(m) => m,
        Err(e) if e.kind() == ErrorKind::InvalidSubcommand => return Err(mistyped(&mut cmd, e)),
        Err(e) => return Err(e),
    };
    Cli::from_arg_matches(&matches).map_err(|e| e.format(&mut cmd))
}

/// Parses the process's command line, exiting with clap's message (status 2) when it is
/// not usable.
pub fn parse() -> Cli {
    try_parse(std::env::args_os(), |v| std::env::var(v).ok()).unwrap_or_else(|e| e.exit())
}

/// An unknown command's error, naming only the few nearest commands.
fn mistyped(cmd: &mut clap::Command, err: clap::Error) -> clap::Error {
    let Some(ContextValue::String(typed)) = err.get(ContextKind::InvalidSubcommand) else {
        return err;
    };
    let typed = typed.clone();
    let names: Vec<String> = cmd
        .get_subcommands()
        .flat_map(|c| std::iter::once(c.get_name()).chain(c.get_visible_aliases()))
        .map(str::to_string)
        .collect();
    let near = nearest(&typed, &names);
    let tip = match near.as_slice() {
        [] => "run 'strato --help' for the list of commands".to_string(),
        [one] => format!("did you mean '{one}'?"),
        many => format!(
            "did you mean one of: {}?",
            many.iter()
                .map(|n| format!("'{n}'"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let mut e = clap::Error::new(ErrorKind::InvalidSubcommand).with_cmd(cmd);
    e.insert(ContextKind::InvalidSubcommand, ContextValue::String(typed));
    e.insert(
        ContextKind::Suggested,
        ContextValue::StyledStrs(vec![tip.into()]),
    );
    e.insert(
        ContextKind::Usage,
        ContextValue::StyledStr(cmd.render_usage()),
    );
    e
}

/// The commands nearest to `typed`, best first, at most [`SUGGESTIONS`] of them: by edit
/// distance, where a name that begins with (nearly) what was typed counts one more than
/// its distance from that beginning (`describe-instance` is near `describe-instance-types`),
/// within a third of the typed length (at least 2).
pub fn nearest(typed: &str, names: &[String]) -> Vec<String> {
    let len = typed.chars().count();
    let limit = (len / 3).max(2);
    let mut scored: Vec<(usize, &String)> = names
        .iter()
        .map(|n| {
            let head: String = n.chars().take(len).collect();
            let prefix = distance(typed, &head) + usize::from(head.len() < n.len());
            (distance(typed, n).min(prefix), n)
        })
        .filter(|(d, _)| *d <= limit)
        .collect();
    scored.sort();
    scored
        .into_iter()
        .take(SUGGESTIONS)
        .map(|(_, n)| n.clone())
        .collect()
}

/// Levenshtein distance, by characters.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diag = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let up = row[j + 1];
            row[j + 1] = (diag + usize::from(ca != cb)).min(up + 1).min(row[j] + 1);
            diag = up;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::Format;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn the_environment_sets_defaults_that_options_override() {
        let env = |v: &str| match v {
            "STRATO_ENDPOINT" => Some("unix:/run/s.sock".to_string()),
            "STRATO_OUTPUT" => Some("json".to_string()),
            "STRATO_TOKEN" => Some("s3cret".to_string()),
            _ => None,
        };
        let cli = try_parse(["strato", "describe-regions"], env).unwrap();
        assert_eq!(cli.endpoint, "unix:/run/s.sock");
        assert_eq!(cli.output, Format::Json);
        assert_eq!(cli.token.as_deref(), Some("s3cret"));
        let cli = try_parse(
            [
                "strato",
                "describe-regions",
                "--endpoint",
                "http://h:1",
                "--output",
                "text",
            ],
            env,
        )
        .unwrap();
        assert_eq!(
            (cli.endpoint.as_str(), cli.output),
            ("http://h:1", Format::Text)
        );
        let cli = try_parse(["strato", "describe-regions"], no_env).unwrap();
        assert_eq!(cli.endpoint, crate::conn::DEFAULT_ENDPOINT);
        assert_eq!(cli.token, None);
        // An empty variable is as good as none.
        let cli = try_parse(["strato", "describe-regions"], |_| Some(String::new())).unwrap();
        assert_eq!(cli.endpoint, crate::conn::DEFAULT_ENDPOINT);
        // A bad value from the environment is a usage error like a bad option.
        let bad = |v: &str| (v == "STRATO_OUTPUT").then(|| "yaml".to_string());
        assert_eq!(
            try_parse(["strato", "describe-regions"], bad)
                .unwrap_err()
                .exit_code(),
            2
        );
    }

    #[test]
    fn usage_and_help_stay_clean_with_the_environment_set() {
        let env = |v: &str| match v {
            "STRATO_ENDPOINT" => Some("unix:/run/s.sock".to_string()),
            "STRATO_TOKEN" => Some("s3cret".to_string()),
            _ => None,
        };
        let err = try_parse(["strato", "attach-volume", "--volume-id", "vol-1"], env)
            .unwrap_err()
            .to_string();
        let usage = err.lines().find(|l| l.starts_with("Usage:")).unwrap();
        assert!(!usage.contains("--endpoint"), "{usage}");
        assert!(!usage.contains("--token"), "{usage}");
        let help = |env: &dyn Fn(&str) -> Option<String>| {
            let mut cmd = command(env);
            cmd.build();
            cmd.find_subcommand_mut("describe-instances")
                .unwrap()
                .render_long_help()
                .to_string()
        };
        let with = help(&env);
        assert!(!with.contains("[env:"), "{with}");
        assert!(!with.contains("s3cret"), "{with}");
        assert!(with.contains("STRATO_ENDPOINT"), "{with}");
        assert!(with.contains("[default: unix:/run/s.sock]"), "{with}");
        let without = help(&no_env);
        assert!(!without.contains("[env:"), "{without}");
    }

    #[test]
    fn a_mistyped_command_gets_the_nearest_few() {
        let err = try_parse(["strato", "describe-instancs"], no_env).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        let text = err.to_string();
        let tip = text.lines().find(|l| l.contains("did you mean")).unwrap();
        assert_eq!(
            tip.trim(),
            "tip: did you mean one of: 'describe-instances', 'describe-instance-status', \
             'describe-instance-types'?",
            "{text}"
        );
        assert!(text.contains("Usage: strato [OPTIONS] <COMMAND>"), "{text}");
        let err = try_parse(["strato", "terminate-instance"], no_env).unwrap_err();
        assert!(err.to_string().contains("'terminate-instances'"), "{err}");
        let err = try_parse(["strato", "qwertyuiop"], no_env).unwrap_err();
        assert!(err.to_string().contains("strato --help"), "{err}");
        let names: Vec<String> = [
            "run-instances",
            "stop-instances",
            "start-instances",
            "usage",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(nearest("stop-instance", &names)[0], "stop-instances");
        assert_eq!(nearest("usag", &names), ["usage"]);
        assert_eq!(distance("kitten", "sitting"), 3);
    }
}
