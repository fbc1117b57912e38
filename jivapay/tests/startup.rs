//! A missing or unreachable PostgreSQL or broker at start-up gives one clear line naming what
//! is missing and how to start it, and a non-zero exit — never a panic trace.

use std::process::Command;

fn jivapay(args: &[&str], env: &[(&str, &str)]) -> (bool, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_jivapay"));
    command.args(args);
    for (key, _) in std::env::vars() {
        if key.starts_with("JIVAPAY") {
            command.env_remove(key);
        }
    }
    command.envs(env.iter().copied());
    command.env("JIVAPAY__LOG__FORMAT", "pretty");
    let output = command.output().expect("the binary runs");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    (output.status.success(), stderr)
}

fn assert_one_clear_line(stderr: &str, wanted: &[&str]) {
    assert!(!stderr.contains("panicked"), "panic: {stderr}");
    let last = stderr.lines().last().unwrap_or_default();
    assert!(last.starts_with("jivapay: "), "{stderr}");
    for w in wanted {
        assert!(last.contains(w), "{w:?} not in {last:?}");
    }
}

#[test]
fn unreachable_postgres() {
    let (ok, stderr) = jivapay(
        &["migrate"],
        &[
            (
                "JIVAPAY__DATABASE__URL",
                "postgres://u:secret-pw@127.0.0.1:9/db",
            ),
            ("JIVAPAY__DATABASE__CONNECT_TIMEOUT_SECS", "2"),
        ],
    );
    assert!(!ok);
    assert_one_clear_line(
        &stderr,
        &[
            "PostgreSQL at 127.0.0.1:9/db is not reachable",
            "scripts/stack start postgres",
        ],
    );
    assert!(
        !stderr.contains("secret-pw"),
        "the password leaked: {stderr}"
    );
}

#[test]
fn postgres_not_configured() {
    let (ok, stderr) = jivapay(&["migrate"], &[]);
    assert!(!ok);
    assert_one_clear_line(&stderr, &["JIVAPAY__DATABASE__URL"]);
}

#[test]
fn unreachable_broker() {
    let (ok, stderr) = jivapay(
        &["topics", "create"],
        &[
            ("JIVAPAY__KAFKA__BROKERS", "127.0.0.1:9"),
            ("JIVAPAY__KAFKA__CONNECT_TIMEOUT_SECS", "2"),
        ],
    );
    assert!(!ok);
    assert_one_clear_line(
        &stderr,
        &[
            "Kafka broker at 127.0.0.1:9 is not reachable",
            "scripts/stack start tansu",
        ],
    );
}

#[test]
fn embedded_broker_only_in_the_all_in_one_mode() {
    let (ok, stderr) = jivapay(
        &["processor", "fraud"],
        &[("JIVAPAY__KAFKA__BROKERS", "embedded")],
    );
    assert!(!ok);
    assert_one_clear_line(&stderr, &["JIVAPAY__KAFKA__BROKERS", "processor fraud"]);
}

#[test]
fn unknown_component_and_bad_settings() {
    let (ok, stderr) = jivapay(
        &["processor", "nope"],
        &[("JIVAPAY__KAFKA__BROKERS", "127.0.0.1:9")],
    );
    assert!(!ok);
    assert_one_clear_line(&stderr, &["unknown processor \"nope\"", "fraud"]);

    let (ok, stderr) = jivapay(&["migrate"], &[("JIVAPAY__KAFKA__BROKRES", "x:1")]);
    assert!(!ok);
    assert_one_clear_line(&stderr, &["brokres"]);
}
