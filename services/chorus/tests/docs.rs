//! The documentation names everything a user can set or receive: every flag of every command,
//! with its environment variable and default, is in that command's table in
//! docs/configuration.md, and every error code and close code is in docs/protocol.md.

use std::collections::BTreeMap;

use chorus_core::protocol::{ErrorCode, close};
use clap::{Arg, CommandFactory};

fn doc(name: &str) -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/").to_owned() + name;
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The lines under `heading` (a whole `## ...` line), up to the next `## ` heading.
fn section<'a>(page: &'a str, heading: &str) -> Option<Vec<&'a str>> {
    let mut lines = page.lines().skip_while(|l| *l != heading);
    lines.next()?;
    Some(lines.take_while(|l| !l.starts_with("## ")).collect())
}

/// The rows of a section's flag table, by flag: `| `--flag` | environment | default | meaning |`.
fn table_rows(section: &[&str]) -> BTreeMap<String, Vec<String>> {
    section
        .iter()
        .filter(|l| l.starts_with("| `--"))
        .map(|l| {
            let cells: Vec<String> = l
                .split(" | ")
                .map(|c| c.trim_matches(['|', ' ']).to_owned())
                .collect();
            let flag = cells[0]
                .trim_matches('`')
                .trim_start_matches("--")
                .to_owned();
            (flag, cells)
        })
        .collect()
}

/// Checks one command's table: every flag in it, with its variable and its default, and
/// nothing that `--help` does not have. Returns how many flags it checked.
fn check_table(page: &str, heading: &str, args: &[&Arg]) -> usize {
    let section = section(page, heading)
        .unwrap_or_else(|| panic!("docs/configuration.md has no section {heading:?}"));
    let rows = table_rows(&section);
    for arg in args {
        let long = arg.get_long().expect("only long flags are passed here");
        let row = rows.get(long).unwrap_or_else(|| {
            panic!("--{long} is missing from {heading:?} in docs/configuration.md")
        });
        assert_eq!(
            row.len(),
            4,
            "{heading}: the row of --{long} needs 4 cells: {row:?}"
        );
        let (env, default) = (&row[1], &row[2]);
        match arg.get_env() {
            Some(var) => assert_eq!(
                *env,
                format!("`{}`", var.to_string_lossy()),
                "{heading}: --{long} has the wrong environment variable"
            ),
            None => assert_eq!(
                env, "—",
                "{heading}: --{long} reads no environment variable"
            ),
        }
        let defaults: Vec<String> = arg
            .get_default_values()
            .iter()
            .map(|v| v.to_string_lossy().into_owned())
            .collect();
        if !arg.get_action().takes_values() {
            assert_eq!(
                default, "off",
                "{heading}: the switch --{long} is off by default"
            );
        } else if defaults.is_empty() {
            assert!(
                default.starts_with('—'),
                "{heading}: --{long} has no default, the page says {default:?}"
            );
            if arg.is_required_set() {
                assert!(
                    default.contains("required"),
                    "{heading}: --{long} is required; its default column should say so"
                );
            }
        } else {
            assert_eq!(
                *default,
                format!("`{}`", defaults.join(",")),
                "{heading}: the default of --{long} differs from --help"
            );
        }
    }
    for flag in rows.keys() {
        assert!(
            args.iter().any(|a| a.get_long() == Some(flag.as_str())),
            "{heading} in docs/configuration.md documents --{flag}, which the command does not have"
        );
    }
    rows.len()
}

fn documented(arg: &&Arg) -> bool {
    arg.get_long()
        .is_some_and(|l| l != "help" && l != "version")
}

#[test]
fn every_flag_and_variable_is_documented() {
    let page = doc("configuration.md");
    let cli = chorus::cli::Cli::command();
    // Flags of every command (--log, --log-format) have a table of their own.
    let global: Vec<&Arg> = cli
        .get_arguments()
        .filter(documented)
        .filter(|a| a.is_global_set())
        .collect();
    let mut checked = check_table(&page, "## Every command", &global);
    let mut commands = Vec::new();
    for sub in cli.get_subcommands() {
        let heading = format!("## `chorus {}`", sub.get_name());
        let args: Vec<&Arg> = sub
            .get_arguments()
            .filter(documented)
            .filter(|a| !a.is_global_set())
            .collect();
        checked += check_table(&page, &heading, &args);
        commands.push(heading);
    }
    for heading in page.lines().filter(|l| l.starts_with("## `chorus ")) {
        assert!(
            commands.iter().any(|c| c == heading),
            "docs/configuration.md has {heading:?}, but chorus has no such command"
        );
    }
    assert!(checked >= 50, "only {checked} flags were checked");
}

#[test]
fn every_error_code_and_close_code_is_documented() {
    let protocol = doc("protocol.md");
    for code in ErrorCode::ALL {
        assert!(
            protocol.contains(&format!("| `{}` |", code.as_str())),
            "{} missing from the error table",
            code.as_str()
        );
    }
    for code in [
        close::NORMAL,
        close::GOING_AWAY,
        close::TOO_BIG,
        close::INTERNAL,
        close::TRY_AGAIN_LATER,
        close::UNAUTHORIZED,
        close::SLOW_CONSUMER,
    ] {
        assert!(
            protocol.contains(&format!("| {code} |")),
            "close code {code} missing from the close table"
        );
    }
}
