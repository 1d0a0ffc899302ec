//! The text form of `msg` frames for `chorus tail`: one entry per line, `[seq] from: body`.
//!
//! Entries that are not chat messages say what they are (`edit`, `delete`, `event`, `member`,
//! and any kind a later server adds), so a reader never mistakes them for text. A multi-line
//! body continues on indented lines, so every entry still starts with `[seq]`.

use serde_json::Value;

/// The line (or lines) for one `msg` frame.
pub(super) fn render(m: &Value) -> String {
    let seq = m["seq"].as_u64().unwrap_or(0);
    let from = m["from"].as_str().unwrap_or("?");
    let body = m["body"].as_str().unwrap_or("");
    let target = m["target"].as_u64().unwrap_or(0);
    let mut line = match m["kind"].as_str() {
        None | Some("text") => {
            let mut line = format!("[{seq}] {from}");
            if let Some(to) = m["reply_to"].as_u64() {
                line.push_str(&format!(" (reply to {to})"));
            }
            line.push(':');
            if m["deleted"] == true {
                line.push_str(" (deleted)");
            } else {
                push_body(&mut line, body);
                for a in m["attachments"].as_array().into_iter().flatten() {
                    line.push_str(&format!(
                        " [attachment {} {}]",
                        a["name"].as_str().unwrap_or("?"),
                        a["content_type"].as_str().unwrap_or("?"),
                    ));
                }
                if m["edited_ts"].is_u64() {
                    line.push_str(" (edited)");
                }
            }
            line
        }
        Some("edit") => {
            let mut line = format!("[{seq}] {from} edited [{target}]:");
            push_body(&mut line, body);
            line
        }
        Some("delete") => format!("[{seq}] {from} deleted [{target}]"),
        Some("event") => {
            let mut line = format!(
                "[{seq}] {from} event {}",
                m["event"].as_str().unwrap_or("?")
            );
            if m["deleted"] == true {
                line.push_str(" (deleted)");
            } else if !m["data"].is_null() {
                line.push_str(&format!(" {}", m["data"]));
            }
            line
        }
        Some("member") => format!("[{seq}] * {}", member(from, &m["member"])),
        Some(other) => {
            let mut line = format!("[{seq}] {from} ({other})");
            if !body.is_empty() {
                line.push(':');
                push_body(&mut line, body);
            }
            line
        }
    };
    if line.ends_with(':') {
        line.pop();
    }
    line
}

/// Appends ` body`, continuing each further line of it indented, without carriage returns
/// (which would overwrite the line on a terminal).
fn push_body(line: &mut String, body: &str) {
    if body.is_empty() {
        return;
    }
    line.push(' ');
    for (i, part) in body.split('\n').enumerate() {
        if i > 0 {
            line.push_str("\n    ");
        }
        line.push_str(&part.replace('\r', ""));
    }
}

/// A membership change in words: `alice invited carol as member`.
fn member(from: &str, change: &Value) -> String {
    let action = change["action"].as_str().unwrap_or("?");
    let user = change["user"].as_str().unwrap_or("?");
    let role = change["role"].as_str();
    let mut text = match action {
        "create" => format!(
            "{user} created the room ({})",
            change["visibility"].as_str().unwrap_or("public")
        ),
        "join" => format!("{user} joined"),
        "leave" => format!("{user} left"),
        "invite" => format!("{from} invited {user}"),
        "remove" => format!("{from} removed {user}"),
        "set_role" => format!("{from} made {user} {}", role.unwrap_or("?")),
        "mute" => format!("{from} muted {user}"),
        "unmute" => format!("{from} unmuted {user}"),
        "ban" => format!("{from} banned {user}"),
        "unban" => format!("{from} unbanned {user}"),
        "disconnect" => format!("{from} disconnected {user}"),
        other => format!("{from} {other} {user}"),
    };
    if let (Some(role), true) = (role, action != "set_role") {
        text.push_str(&format!(" as {role}"));
    }
    if let Some(until) = change["until"].as_u64() {
        text.push_str(&format!(" until {}", utc(until)));
    }
    let members: Vec<&str> = change["members"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    if !members.is_empty() {
        text.push_str(&format!(" with {}", members.join(", ")));
    }
    text
}

/// Milliseconds since the epoch as `2026-11-23T20:42:37Z`.
fn utc(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rest) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn each_kind_reads_as_what_it_is() {
        let cases = [
            (json!({"seq":1,"from":"alice","body":"hi"}), "[1] alice: hi"),
            (
                json!({"seq":2,"from":"bob","body":"yes","reply_to":1}),
                "[2] bob (reply to 1): yes",
            ),
            (
                json!({"seq":3,"from":"bob","body":"two\r\nlines"}),
                "[3] bob: two\n    lines",
            ),
            (
                json!({"seq":4,"from":"bob","body":"plan","attachments":[{"name":"p.pdf","content_type":"application/pdf","data":"AA=="}]}),
                "[4] bob: plan [attachment p.pdf application/pdf]",
            ),
            (
                json!({"seq":5,"from":"alice","body":"hi!","kind":"edit","target":1}),
                "[5] alice edited [1]: hi!",
            ),
            (
                json!({"seq":6,"from":"alice","body":"","kind":"delete","target":1}),
                "[6] alice deleted [1]",
            ),
            (
                json!({"seq":7,"from":"carol","body":"","kind":"event","event":"game.move","data":{"piece":"e4"}}),
                r#"[7] carol event game.move {"piece":"e4"}"#,
            ),
            (
                json!({"seq":8,"from":"alice","body":"","kind":"member","member":{"action":"invite","user":"carol","role":"member"}}),
                "[8] * alice invited carol as member",
            ),
            (
                json!({"seq":9,"from":"alice","body":"","kind":"member","member":{"action":"mute","user":"carol","until":1763930557000u64}}),
                "[9] * alice muted carol until 2025-11-23T20:42:37Z",
            ),
            (
                json!({"seq":10,"from":"alice","body":"","kind":"member","member":{"action":"create","user":"alice","visibility":"private","members":["bob","carol"]}}),
                "[10] * alice created the room (private) with bob, carol",
            ),
            (
                json!({"seq":11,"from":"alice","deleted":true}),
                "[11] alice: (deleted)",
            ),
            (
                json!({"seq":12,"from":"alice","body":"new","edited_ts":5,"edits":[13]}),
                "[12] alice: new (edited)",
            ),
            (
                json!({"seq":13,"from":"alice","body":"","kind":"poll"}),
                "[13] alice (poll)",
            ),
        ];
        for (frame, line) in cases {
            assert_eq!(render(&frame), line, "{frame}");
        }
    }

    #[test]
    fn dates_are_utc() {
        assert_eq!(utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc(951_782_400_000), "2000-02-29T00:00:00Z");
        assert_eq!(utc(1_763_930_557_123), "2025-11-23T20:42:37Z");
    }
}
