//! `fleetca serve` fails fast: a listener it was asked for that cannot bind stops the server
//! with a non-zero exit and a message naming the flag and the address, instead of running
//! without that listener (no admin API, no metrics, no CRLs).

mod support;

use std::net::TcpListener;
use std::process::Command;
use std::time::Duration;

use support::Fleetca;

/// The listener flags of `serve`, each with the address it gets when it is not the one under
/// test (an ephemeral loopback port).
const FLAGS: [&str; 3] = ["--listen", "--http-listen", "--admin-listen"];

#[test]
fn serve_exits_when_a_listener_cannot_bind() {
    let ca = Fleetca::init(&["routers.example.com"]);
    for flag in FLAGS {
        // Held for the whole run: the address is in use.
        let busy = TcpListener::bind("127.0.0.1:0").expect("bind a port to occupy");
        let busy_addr = busy.local_addr().expect("local_addr").to_string();
        let mut cmd = Command::new(Fleetca::bin());
        cmd.arg("serve").arg("--data-dir").arg(ca.data_dir());
        for other in FLAGS {
            let addr = if other == flag {
                busy_addr.as_str()
            } else {
                "127.0.0.1:0"
            };
            cmd.args([other, addr]);
        }
        ca.with_database(&mut cmd);
        let out = support::run(cmd, Duration::from_secs(60));
        assert!(
            out.status.is_some(),
            "serve kept running with {flag} {busy_addr} in use\n{out}"
        );
        assert!(!out.success(), "serve exited 0 with {flag} in use\n{out}");
        let expected = format!("{flag} {busy_addr}: ");
        assert!(
            out.stderr.contains(&expected),
            "the message must name {expected:?}\n{out}"
        );
        assert!(
            out.stderr.to_lowercase().contains("address already in use"),
            "the message must say why\n{out}"
        );
        // Nothing was announced as served.
        assert!(!out.stdout.contains("ACME directory:"), "{out}");
        drop(busy);
    }
}
