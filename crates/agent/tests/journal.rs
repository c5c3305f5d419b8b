//! The order journal against `fleetca serve` (issue 14, defect 1): a renewal
//! SIGKILLed at any step of its order is finished by the next run with
//! exactly one extra certificate issued; `alreadyReplaced` and a `malformed`
//! `replaces` no longer lock the device out.

mod fleetca_server;
mod support;

use std::path::Path;

use fleetca_server::*;
use support::*;

/// Removes the journal from the state file, as if it was lost (state file
/// rebuilt, or written by an agent without one).
fn forget_journal(out: &Path) {
    let p = out.join(".state/state.json");
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
    assert!(
        v.get("journal").is_some_and(|j| !j.is_null()),
        "no journal to forget: {v}"
    );
    v.as_object_mut().unwrap().remove("journal");
    std::fs::write(&p, v.to_string()).unwrap();
}

#[test]
fn sigkill_at_every_order_step_then_renew_force_issues_exactly_one() {
    let Some(srv) = Server::start("journal_sigkill") else {
        return;
    };
    let name = "j1.routers.example.com";
    let out = srv.tmp.path().join("out");
    let reloads = srv.tmp.path().join("reloads.log");
    let reload = format!("echo reload >> {}", reloads.display());
    let flags = ["--domain", name, "--reload-cmd", reload.as_str()];
    let with = |cmd: &[&'static str]| {
        let mut v = flags.to_vec();
        v.extend_from_slice(cmd);
        v
    };
    let (code, _, err) = srv.run(&out, &with(&["issue"]));
    assert_eq!(code, 10, "issue: {err}\n{}", srv.guard.log());
    assert_eq!(srv.issued(name), 1);

    // "mkdir" is the install's first step: the certificate is downloaded
    // and nothing is written yet (a full disk fails right there).
    for step in [
        "mkdir",
        "after-new-order",
        "after-challenge",
        "after-finalize",
        "after-download",
        "after-swap",
    ] {
        let before = srv.issued(name);
        let old = installed_serial(&out);
        let reloads_before = lines(&reloads);
        let (paused, log) = kill_at(srv.command(&out, &with(&["renew", "--force"])), step);
        assert!(paused, "never paused at {step}: {log}");
        let (code, _, err) = srv.run(&out, &with(&["renew", "--force"]));
        assert_eq!(code, 10, "renew --force after a kill at {step}: {err}");
        assert_complete_set(&out, false);
        assert_ne!(installed_serial(&out), old, "{step}: not renewed");
        assert_eq!(
            srv.issued(name),
            before + 1,
            "a kill at {step} then renew --force must issue exactly one certificate: {err}"
        );
        assert_eq!(lines(&reloads), reloads_before + 1, "{step}: one reload");
        let st = status(&srv, &out);
        assert_eq!(st["consecutive_failures"], 0, "{st}");
        assert!(st["renewal_in_progress"].is_null(), "{st}");
    }
}

#[test]
fn already_replaced_finishes_the_open_order_or_orders_without_replaces() {
    let Some(srv) = Server::start("journal_already_replaced") else {
        return;
    };
    let name = "j2.routers.example.com";
    let out = srv.tmp.path().join("out");
    let (code, _, err) = srv.run(&out, &["--domain", name, "issue"]);
    assert_eq!(code, 10, "issue: {err}");

    // An order that replaces the certificate is open (pending) and the
    // journal that knew it is gone: the agent finds it in the account's
    // orders list and finishes it.
    let (paused, log) = kill_at(
        srv.command(&out, &["--domain", name, "renew", "--force"]),
        "after-new-order",
    );
    assert!(paused, "{log}");
    forget_journal(&out);
    let before = srv.issued(name);
    let (code, _, err) = srv.run(&out, &["--domain", name, "renew", "--force"]);
    assert_eq!(
        code, 10,
        "renew after a lost journal (pending order): {err}"
    );
    assert!(err.contains("finishing the open order"), "{err}");
    assert_eq!(srv.issued(name), before + 1);
    assert_complete_set(&out, false);

    // The replacing order is valid (issued, never installed) and its key is
    // lost with the journal: the agent orders again without `replaces`.
    let (paused, log) = kill_at(
        srv.command(&out, &["--domain", name, "renew", "--force"]),
        "mkdir",
    );
    assert!(paused, "{log}");
    forget_journal(&out);
    let before = srv.issued(name);
    let old = installed_serial(&out);
    let (code, _, err) = srv.run(&out, &["--domain", name, "renew", "--force"]);
    assert_eq!(code, 10, "renew after a lost journal (valid order): {err}");
    assert!(err.contains("ordering without replaces"), "{err}");
    assert_eq!(srv.issued(name), before + 1);
    assert_ne!(installed_serial(&out), old);
    assert_complete_set(&out, false);
}

#[test]
fn changed_names_order_without_replaces() {
    let Some(srv) = Server::start("journal_names_changed") else {
        return;
    };
    let out = srv.tmp.path().join("out");
    let (code, _, err) = srv.run(&out, &["--domain", "j3.routers.example.com", "issue"]);
    assert_eq!(code, 10, "issue: {err}");
    // No name in common with the installed certificate: fleetca refuses the
    // `replaces` as malformed (RFC 9773 §5); the agent orders without it.
    let (code, _, err) = srv.run(
        &out,
        &["--domain", "j3-new.routers.example.com", "renew", "--force"],
    );
    assert_eq!(code, 10, "renew with new names: {err}\n{}", srv.guard.log());
    assert!(err.contains("ordering without replaces"), "{err}");
    let pem = assert_complete_set(&out, false).unwrap();
    let der = fleetca_agent::keys::pem_certs(&pem).remove(0);
    let info = fleetca_agent::schedule::CertInfo::parse(&der).unwrap();
    assert_eq!(info.names, ["j3-new.routers.example.com"]);
}

/// A renewal interrupted after newOrder and retried under another
/// `--profile` is not finished with the journaled order (nor with that open
/// order found through `alreadyReplaced`): the certificate and `status`
/// have the profile asked for.
#[test]
fn interrupted_order_is_not_resumed_under_another_profile() {
    let Some(srv) = Server::start("journal_profile") else {
        return;
    };
    let name = "j4.routers.example.com";
    let out = srv.tmp.path().join("out");
    let (code, _, err) = srv.run(&out, &["--domain", name, "issue"]);
    assert_eq!(code, 10, "issue: {err}");
    let cmd = srv.command(&out, &["--domain", name, "renew", "--force"]);
    let (paused, log) = kill_at(cmd, "after-new-order");
    assert!(paused, "{log}");
    let (code, _, err) = srv.run(
        &out,
        &[
            "--domain",
            name,
            "--profile",
            "shortlived",
            "renew",
            "--force",
        ],
    );
    assert_eq!(
        code,
        10,
        "renew under --profile: {err}\n{}",
        srv.guard.log()
    );
    let pem = assert_complete_set(&out, false).unwrap();
    let der = fleetca_agent::keys::pem_certs(&pem).remove(0);
    let info = fleetca_agent::schedule::CertInfo::parse(&der).unwrap();
    // fleetca's shortlived profile: 160 h (BR short-lived: under 7 days).
    let life = info.not_after - info.not_before;
    assert!(
        life <= 7 * 86_400,
        "lifetime {life}s: the old order was finished"
    );
    assert_eq!(status(&srv, &out)["profile"], "shortlived");
}
