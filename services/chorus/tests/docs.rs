//! The documentation names everything a user can set or receive: every flag and environment
//! variable is in docs/configuration.md, every error code and close code in docs/protocol.md.

use chorus_core::protocol::{ErrorCode, close};
use clap::CommandFactory;

fn doc(name: &str) -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/").to_owned() + name;
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn every_flag_and_variable_is_documented() {
    let configuration = doc("configuration.md");
    let cli = chorus::cli::Cli::command();
    let mut checked = 0;
    for sub in cli.get_subcommands() {
        for arg in sub.get_arguments().chain(cli.get_arguments()) {
            let Some(long) = arg.get_long() else { continue };
            if long == "help" || long == "version" {
                continue;
            }
            assert!(
                configuration.contains(&format!("`--{long}`")),
                "--{long} is missing from docs/configuration.md"
            );
            if let Some(env) = arg.get_env() {
                let env = env.to_string_lossy();
                assert!(
                    configuration.contains(&format!("`{env}`")),
                    "{env} is missing from docs/configuration.md"
                );
            }
            checked += 1;
        }
    }
    assert!(checked >= 15, "only {checked} flags were checked");
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
