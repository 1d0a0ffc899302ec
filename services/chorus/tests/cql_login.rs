//! A database that requires a login (Cassandra's PasswordAuthenticator, the second node that
//! scripts/with-test-services.sh starts): the `chorus` binary logs in with
//! `--cql-username` and a password from CHORUS_CQL_PASSWORD or `--cql-password-file`, and says
//! clearly when a login is missing or refused, never showing the password.

mod common;

use common::{Client, cluster, procs::ProcCluster, token};
use serde_json::json;
use tokio::process::Command;

/// `chorus migrate` on the login node with extra arguments and environment: (success, stderr).
async fn migrate(args: &[&str], env: &[(&str, &str)]) -> (bool, String) {
    let login = cluster::cql_login();
    let (keyspace, _) = cluster::unique_names();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_chorus"));
    cmd.arg("migrate")
        .args(args)
        .env("CHORUS_CQL_CONTACT_POINTS", &login.contact)
        .env("CHORUS_CQL_KEYSPACE", &keyspace)
        .env_remove("CHORUS_CQL_USERNAME")
        .env_remove("CHORUS_CQL_PASSWORD")
        .env_remove("CHORUS_CQL_PASSWORD_FILE");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().await.expect("chorus migrate runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_login_or_with_a_wrong_one_the_binary_says_so_and_stops() {
    let login = cluster::cql_login();
    let (ok, err) = migrate(&[], &[]).await;
    assert!(!ok);
    assert!(err.contains("requires a login"), "{err}");

    let wrong = "wrong-password-123";
    let (ok, err) = migrate(
        &["--cql-username", &login.user],
        &[("CHORUS_CQL_PASSWORD", wrong)],
    )
    .await;
    assert!(!ok);
    assert!(
        err.contains(&format!("refused the login of CQL user {:?}", login.user)),
        "{err}"
    );
    assert!(!err.contains(wrong), "the password was printed: {err}");

    let (ok, err) = migrate(&["--cql-username", &login.user], &[]).await;
    assert!(!ok);
    assert!(err.contains("needs a password"), "{err}");

    let (ok, err) = migrate(&["--cql-password-file", "/nonexistent/cql-password"], &[]).await;
    assert!(!ok);
    assert!(err.contains("cannot read --cql-password-file"), "{err}");

    // The right login, from the environment: the keyspace is created.
    let (ok, err) = migrate(
        &["--cql-username", &login.user],
        &[("CHORUS_CQL_PASSWORD", &login.password)],
    )
    .await;
    assert!(ok, "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routers_logged_in_with_a_password_file_store_and_serve_messages() {
    let c = ProcCluster::start_with_login("cql-login", cluster::nats_url(), 1).await;
    let room = "login-room";
    let mut writer = Client::connect_with_header(&c.gateway_url(0), &token("writer")).await;
    writer.expect("ready").await;
    writer.join(room, None).await;
    for i in 1..=3 {
        let ack = writer
            .call(json!({"type":"send","room":room,"client_msg_id":format!("m{i}"),"body":format!("hello {i}")}))
            .await;
        assert_eq!(ack["type"], "ack", "{ack}");
        assert_eq!(ack["seq"], json!(i));
    }
    // Read back from the database on the other gateway: the whole log, in order.
    let mut reader = Client::connect_with_header(&c.gateway_url(1), &token("reader")).await;
    reader.expect("ready").await;
    let page = reader
        .call(json!({"type":"history","room":room,"after":0,"limit":10}))
        .await;
    assert_eq!(page["type"], "history", "{page}");
    let bodies: Vec<&str> = page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["body"].as_str().unwrap())
        .collect();
    assert_eq!(bodies, ["hello 1", "hello 2", "hello 3"]);
}
